// @vitest-environment jsdom
// Access across hospitals on a patient's page: the doctor's code passed on as typed, the
// granted section marked as another hospital's and read again when the request changes, nothing
// shown once revoked; the front desk allowing a narrower grant, declining, revoking, and seeing
// who read the record.
import { act } from "react";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { PatientPermissions } from "../access";
import type { IncomingAccess } from "../bindings/IncomingAccess";
import type { RemoteAccess } from "../bindings/RemoteAccess";
import type { RemoteRecordView } from "../bindings/RemoteRecordView";
import { answers, emit, find, invoked, mount, resetTauri, settle, tap, type, unmount } from "../testing";
import { RemoteRecordsView } from "./Access";

vi.mock("@tauri-apps/api/core", async () => (await import("../testing")).tauriCore);
vi.mock("@tauri-apps/api/event", async () => (await import("../testing")).tauriEvent);

const PATIENT = "0190a000-0000-7000-8000-000000000001";
const REQUEST = "0190a000-0000-7000-8000-0000000000a1";
const text = () => document.body.textContent ?? "";
const button = (label: string) => Array.from(document.querySelectorAll("button")).find((b) => b.textContent === label) as HTMLElement;
const changedAccess = () =>
  act(async () => emit("changed", { everything: false, kinds: ["access"], ids: [PATIENT], transmissions: [], received: [], admin_updates: [] }));

function remote(state: RemoteAccess["state"], version: number): RemoteAccess {
  return {
    id: REQUEST,
    patient_id: PATIENT,
    peer: "st-marys.example",
    organisation: "St Mary's Hospital",
    practitioner_id: "d1",
    practitioner_name: "Dr. Ada Moreau",
    purpose: "treatment",
    scopes: ["patient/DiagnosticReport.rs", "patient/Patient.r"],
    hours: 24,
    state,
    tries_left: state === "pending" ? 4 : 0,
    grant_id: state === "pending" ? null : "0190a000-0000-7000-8000-0000000000g1",
    patient: null,
    expires_at: state === "pending" ? null : "2026-12-08T09:00:00Z",
    created_at: "2026-12-07T09:00:00Z",
    updated_at: "2026-12-07T09:00:00Z",
    version,
  };
}

const RECORDS: RemoteRecordView = {
  organisation: "St Mary's Hospital",
  read_at: "2026-12-07T09:05:00Z",
  patient: { name: "Jane Doe", birth_date: "1980-01-01" },
  reports: [{ title: "Knee MRI", status: "final", issued: "2026-12-01T10:00:00Z", author: "Dr. Lee", findings: "Meniscal tear.", conclusion: "Refer." }],
  appointments: [],
  documents: [],
};

describe("records at other hospitals (doctor)", () => {
  beforeEach(() => resetTauri());
  afterEach(unmount);

  it("passes the code on, then shows the granted records as the other hospital's, and hides them once revoked", async () => {
    let state = remote("pending", 1);
    let sent: unknown = null;
    answers.set("remote_access", () => [state]);
    answers.set("send_access_code", (args) => {
      sent = args;
      return state;
    });
    answers.set("remote_records", () => RECORDS);
    await mount(() => <RemoteRecordsView patientId={PATIENT} timeZone="Europe/Amsterdam" />);
    expect(text()).toContain("Waiting for the patient");
    expect(text()).toContain("4 tries left");
    await type(find<HTMLInputElement>(`#code-${REQUEST}`), "4821 7730");
    await tap(button("Send code"));
    expect(sent).toEqual({ requestId: REQUEST, code: "4821 7730" });
    expect(text()).toContain("Sent. The answer appears here.");
    expect(invoked).not.toContain("remote_records");

    state = remote("granted", 2);
    await changedAccess();
    await settle();
    expect(text()).toContain("From St Mary's Hospital");
    expect(text()).toContain("Knee MRI");
    expect(text()).toContain("Meniscal tear.");
    expect(text()).toContain("Jane Doe");
    expect(document.querySelector(".remote-records")).not.toBeNull();
    const reads = () => invoked.filter((c) => c === "remote_records").length;
    expect(reads(), "each read is a line in the patient's \"who looked\": read once").toBe(1);
    // Another change of the request reads nothing again; the doctor's own ask does.
    state = remote("granted", 3);
    await changedAccess();
    await settle();
    expect(reads()).toBe(1);
    await tap(button("Read again"));
    await settle();
    expect(reads()).toBe(2);

    state = remote("revoked", 4);
    await changedAccess();
    await settle();
    expect(text()).toContain("Revoked by the patient");
    expect(text()).not.toContain("Knee MRI");
    expect(document.querySelector(".remote-records")).toBeNull();
  });
});

function incoming(state: IncomingAccess["state"]): IncomingAccess {
  return {
    id: REQUEST,
    patient_id: PATIENT,
    peer: "general.example",
    organisation: "General Hospital",
    practitioner_name: "Dr. Ünal",
    purpose: "treatment",
    scopes: ["patient/Appointment.rs", "patient/DiagnosticReport.rs"],
    hours: 24,
    state,
    grant_id: state === "granted" ? "g1" : null,
    approved_by: state === "granted" ? "front-desk" : null,
    starts_at: state === "granted" ? "2026-12-07T09:00:00Z" : null,
    expires_at: state === "granted" ? "2026-12-08T09:00:00Z" : null,
    revoked_at: null,
    created_at: "2026-12-07T09:00:00Z",
    version: state === "granted" ? 2 : 1,
  };
}

describe("other hospitals' requests (front desk)", () => {
  beforeEach(() => resetTauri());
  afterEach(unmount);

  it("allows a narrower grant, revokes it, and lists who read the record", async () => {
    let state = incoming("pending");
    let decided: unknown = null;
    answers.set("incoming_access", () => [state]);
    answers.set("decide_access", (args) => {
      decided = args;
      state = incoming("granted");
      return state;
    });
    answers.set("revoke_access", () => {
      state = incoming("revoked");
      return state;
    });
    answers.set("access_reads", () => [
      { grant_id: "g1", organisation: "General Hospital", practitioner_name: "Dr. Ünal", resource: "DiagnosticReport", count: 3, read_at: "2026-12-07T09:10:00Z" },
    ]);
    await mount(() => <PatientPermissions patientId={PATIENT} timeZone="Europe/Amsterdam" />);
    expect(text()).toContain("Dr. Ünal, General Hospital (general.example), asks to read: Appointments, Reports, for 24 hours.");
    expect(text()).toContain("Reports (3)");
    // Untick appointments: only reports are allowed.
    const boxes = Array.from(document.querySelectorAll<HTMLInputElement>(".permissions input[type=checkbox]"));
    expect(boxes).toHaveLength(2);
    await act(async () => boxes[0].click());
    await tap(button("Allow"));
    expect(decided).toEqual({ requestId: REQUEST, decision: { allow: true, scopes: ["patient/DiagnosticReport.rs"], hours: null } });
    await changedAccess();
    await settle();
    expect(text()).toContain("approved at the front desk");
    await tap(button("Withdraw permission"));
    expect(invoked).toContain("revoke_access");
    await changedAccess();
    await settle();
    expect(text()).toContain("Revoked by the patient");
    expect(button("Withdraw permission")).toBeUndefined();
  });

  it("declines", async () => {
    let decided: unknown = null;
    answers.set("incoming_access", () => [incoming("pending")]);
    answers.set("decide_access", (args) => {
      decided = args;
      return incoming("declined");
    });
    await mount(() => <PatientPermissions patientId={PATIENT} timeZone="Europe/Amsterdam" big />);
    expect(text()).toContain("No other hospital has read this record.");
    await tap(button("Decline"));
    expect(decided).toEqual({ requestId: REQUEST, decision: { allow: false, scopes: null, hours: null } });
  });
});
