// @vitest-environment jsdom
// Moving a record on a patient's page: the front desk may move it only once the patient asked,
// sends the hospital and the identity document chosen, follows the parts live and sees a
// refusal's reason; a record that moved says where it lives; a doctor reads what another
// hospital moved here, marked as coming from there.
import { act } from "react";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { PatientTransfer } from "../bindings/PatientTransfer";
import type { RemoteRecordView } from "../bindings/RemoteRecordView";
import { answers, emit, find, invoked, mount, resetTauri, settle, tap, unmount } from "../testing";
import { MovedNotice, PatientTransferView, TransferredRecordsView } from "./Transfer";

vi.mock("@tauri-apps/api/core", async () => (await import("../testing")).tauriCore);
vi.mock("@tauri-apps/api/event", async () => (await import("../testing")).tauriEvent);

const PATIENT = "0190a000-0000-7000-8000-000000000001";
const TRANSFER = "0190a000-0000-7000-8000-0000000000t1";
const text = () => document.body.textContent ?? "";
const changedPatient = () =>
  act(async () => emit("changed", { everything: false, kinds: ["patient"], ids: [PATIENT], transmissions: [], received: [], admin_updates: [] }));

function transfer(state: PatientTransfer["state"], delivered: number): PatientTransfer {
  return {
    id: TRANSFER,
    patient_id: PATIENT,
    peer: "general.example",
    organisation: state === "confirmed" ? "General Hospital" : null,
    state,
    parts: 4,
    parts_delivered: delivered,
    bytes: 1_600_000,
    sha256: "ab".repeat(32),
    identity_document: "passport",
    authorised_by: "Sam Front",
    new_global_id: state === "confirmed" ? "0190b000-0000-7000-8000-000000000009@general.example" : null,
    reason: state === "refused" ? "chunk 0 does not match the manifest's hash" : null,
    created_at: "2026-12-07T09:00:00Z",
    updated_at: "2026-12-07T09:00:00Z",
  };
}

describe("moving a record (front desk)", () => {
  beforeEach(() => resetTauri());
  afterEach(unmount);

  it("moves it only once the patient asked, then follows its parts and shows a refusal's reason", async () => {
    let list: PatientTransfer[] = [];
    let sent: unknown = null;
    answers.set("transfers", () => list);
    answers.set("peers", () => [
      { name: "general.example", kind: "hospital", accepts_from_it: [] },
      { name: "insurer.example", kind: "insurer", accepts_from_it: [] },
    ]);
    answers.set("start_transfer", (args) => {
      sent = args;
      list = [transfer("sending", 0)];
      return list[0];
    });
    await mount(() => <PatientTransferView patientId={PATIENT} movedTo={undefined} timeZone="Europe/Amsterdam" />);
    await tap(find("#transfer-open"));
    const options = Array.from(find<HTMLSelectElement>("#transfer-peer").options).map((o) => o.value);
    expect(options).toEqual(["general.example"]);
    const submit = find<HTMLButtonElement>("#transfer-submit");
    expect(submit.disabled).toBe(true);
    expect(find<HTMLSelectElement>("#transfer-document").value).toBe("");
    const documentChoice = find<HTMLSelectElement>("#transfer-document");
    await act(async () => {
      documentChoice.value = "identity-card";
      documentChoice.dispatchEvent(new Event("change", { bubbles: true }));
    });
    await tap(find("#transfer-asked"));
    expect(text()).toContain("asked to move their record to general.example");
    expect(find<HTMLButtonElement>("#transfer-submit").disabled).toBe(false);
    await tap(find("#transfer-submit"));
    expect(sent).toEqual({ patientId: PATIENT, transfer: { peer: "general.example", identity_document: "identity-card" } });

    await changedPatient();
    await settle();
    expect(text()).toContain("Sending to general.example: 0 of 4 parts delivered");
    expect(document.querySelector("#transfer-open")).toBeNull();
    list = [transfer("sending", 3)];
    await changedPatient();
    await settle();
    expect(text()).toContain("3 of 4 parts delivered");
    list = [transfer("sending", 4)];
    await changedPatient();
    await settle();
    expect(text()).toContain("All 4 parts delivered to general.example: waiting for it to confirm.");

    list = [transfer("refused", 0)];
    await changedPatient();
    await settle();
    expect(text()).toContain("general.example refused it: chunk 0 does not match the manifest's hash. Nothing changed here.");
    expect(document.querySelector("#transfer-open")).not.toBeNull();
  });

  it("says where a moved record lives and offers no second move", async () => {
    answers.set("transfers", () => [transfer("confirmed", 4)]);
    const to = {
      global_id: "0190b000-0000-7000-8000-000000000009@general.example",
      peer: "general.example",
      organisation: "General Hospital",
      at: "2026-12-07T09:02:00Z",
    };
    await mount(() => (
      <>
        <MovedNotice to={to} timeZone="Europe/Amsterdam" />
        <PatientTransferView patientId={PATIENT} movedTo={to} timeZone="Europe/Amsterdam" />
      </>
    ));
    expect(text()).toContain("This record moved to General Hospital on");
    expect(text()).toContain("0190b000-0000-7000-8000-000000000009@general.example");
    expect(text()).toContain("Moved to General Hospital");
    expect(document.querySelector("#transfer-open")).toBeNull();
  });
});

describe("records moved here (doctor)", () => {
  beforeEach(() => resetTauri());
  afterEach(unmount);

  it("shows each moved record as the other hospital's, and nothing when there is none", async () => {
    let records: RemoteRecordView[] = [];
    answers.set("transferred_records", () => records);
    await mount(() => <TransferredRecordsView patientId={PATIENT} timeZone="Europe/Amsterdam" />);
    expect(invoked).toContain("transferred_records");
    expect(text()).toBe("");
    records = [
      {
        organisation: "St Mary's Hospital",
        read_at: "2026-12-07T09:02:00Z",
        patient: { name: "Jane Doe", birth_date: "1980-01-01" },
        reports: [{ title: "Knee MRI", status: "final", issued: "2026-12-01T10:00:00Z", author: "Dr. Lee", findings: "Meniscal tear.", conclusion: "Refer." }],
        appointments: [{ start: "2026-12-02T09:00:00Z", status: "fulfilled", description: "Knee pain", practitioner: "Dr. Lee" }],
        documents: [{ title: "Scanned referral letter", date: "2026-11-30T08:00:00Z", content_type: "application/pdf", size: 1500016 }],
      },
    ];
    await changedPatient();
    await settle();
    expect(text()).toContain("Records moved from other hospitals");
    expect(text()).toContain("From St Mary's Hospital");
    expect(text()).toContain("Knee MRI");
    expect(text()).toContain("Knee pain");
    expect(text()).toContain("Scanned referral letter");
  });
});
