// @vitest-environment jsdom
// Imaging on a patient's page and the reconciliation list: studies shown with their preview and
// read again when the core says imaging changed; an order sent as typed; a study that matched
// nobody linked to the patient found by name.
import { act } from "react";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { vi } from "vitest";
import type { ImagingStudy } from "../bindings/ImagingStudy";
import type { PatientImaging } from "../bindings/PatientImaging";
import { answers, emit, find, invoked, mount, resetTauri, settle, tap, type, unmount } from "../testing";
import { CiteStudy, PatientImagingView, Reconciliation } from "./Imaging";

vi.mock("@tauri-apps/api/core", async () => (await import("../testing")).tauriCore);
vi.mock("@tauri-apps/api/event", async () => (await import("../testing")).tauriEvent);

const PATIENT = "0190a000-0000-7000-8000-000000000001";
const PNG = "data:image/png;base64,iVBORw0KGgo=";

function study(id: string, description: string, patient: string | null): ImagingStudy {
  return {
    id,
    study_uid: `2.25.${id.length}`,
    patient_id: patient,
    order_id: null,
    ordered_by: null,
    matched_by: patient ? "accession" : "unmatched",
    accession: patient ? "CB0000000001" : "X99",
    dicom_patient_id: patient ? "MRN00000001" : "EXT-4711",
    dicom_issuer: patient ? "st-marys.example" : "elsewhere.example",
    dicom_patient_name: "Jansen^Eva",
    modalities: ["CT"],
    description,
    study_date: "2026-12-07",
    series_count: 1,
    instance_count: 12,
    received_at: "2026-12-07T09:40:00Z",
    version: 1,
    viewer_url: null,
  };
}

const text = () => document.body.textContent ?? "";

describe("a patient's imaging", () => {
  let imaging: PatientImaging;
  beforeEach(async () => {
    resetTauri();
    imaging = { mrn: "MRN00000001", orders: [], studies: [study("s1", "CT head", PATIENT)], pacs: true };
    answers.set("patient_imaging", () => imaging);
    answers.set("study_preview", () => PNG);
    await mount(() => <PatientImagingView patientId={PATIENT} timeZone="Europe/Amsterdam" />);
  });
  afterEach(unmount);

  it("shows each study with its preview, and a new one when imaging changes", async () => {
    expect(text()).toContain("Medical record number MRN00000001");
    expect(text()).toContain("CT head");
    expect(text()).toContain("12 image(s)");
    expect(find<HTMLImageElement>("img.study-preview").src).toBe(PNG);
    imaging = { ...imaging, studies: [study("s2", "CT chest", PATIENT), ...imaging.studies] };
    // Another kind of change does not read again; an imaging change does.
    await act(async () => emit("changed", { everything: false, kinds: ["report"], ids: [], transmissions: [], received: [], admin_updates: [] }));
    await settle();
    expect(text()).not.toContain("CT chest");
    await act(async () => emit("changed", { everything: false, kinds: ["imaging"], ids: [PATIENT], transmissions: [], received: [], admin_updates: [] }));
    await settle();
    expect(text()).toContain("CT chest");
    expect(document.querySelectorAll("img.study-preview")).toHaveLength(2);
  });

  it("sends an order as typed and says its accession number", async () => {
    let sent: unknown = null;
    answers.set("order_imaging", (args) => {
      sent = (args as { order: unknown }).order;
      return { accession: "CB0000000007" };
    });
    await tap(find("#order-open"));
    const select = find<HTMLSelectElement>("#order-modality");
    await act(async () => {
      select.value = "MR";
      select.dispatchEvent(new Event("change", { bubbles: true }));
    });
    await type(find<HTMLInputElement>("#order-procedure"), "MRI knee");
    await type(find<HTMLInputElement>("#order-reason"), "Pain after a fall");
    const when = find<HTMLInputElement>("#order-when");
    await act(async () => {
      const setValue = Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, "value")?.set;
      setValue?.call(when, "2026-12-08T10:30");
      when.dispatchEvent(new Event("input", { bubbles: true }));
    });
    await settle();
    await tap(find("#order-submit"));
    expect(sent).toMatchObject({ patient_id: PATIENT, modality: "MR", procedure: "MRI knee", reason: "Pain after a fall" });
    // 10:30 where the node is (Amsterdam, UTC+1 in December), whatever the workstation's zone.
    expect((sent as { scheduled_at: string }).scheduled_at).toBe("2026-12-08T09:30:00.000Z");
    expect(text()).toContain("accession CB0000000007");
  });
});

describe("the reconciliation list", () => {
  beforeEach(() => resetTauri());
  afterEach(unmount);

  it("links a study to the patient found by name", async () => {
    let unmatched = [study("s9", "MR brain", null)];
    let linked: unknown = null;
    answers.set("unmatched_studies", () => unmatched);
    answers.set("study_preview", () => PNG);
    answers.set("search", () => [
      { kind: "patient", patient: { id: PATIENT, given_name: "Eva", family_name: "Jansen", birth_date: "1980-05-10", card_number: "C1234567" }, pending: false },
    ]);
    answers.set("link_study", (args) => {
      linked = args;
      unmatched = [];
      return { ...study("s9", "MR brain", PATIENT), matched_by: "hand" };
    });
    await mount(() => <Reconciliation timeZone="Europe/Amsterdam" />);
    expect(text()).toContain("Jansen Eva");
    // Reception's list: no images.
    expect(document.querySelector("img.study-preview")).toBeNull();
    expect(invoked).not.toContain("study_preview");
    expect(text()).toContain("Sent as patient EXT-4711 of elsewhere.example, accession X99");
    const link = Array.from(document.querySelectorAll("button")).find((b) => b.textContent === "Link to a patient");
    await tap(link as HTMLElement);
    await type(find<HTMLInputElement>("#reconcile-search"), "Jansen");
    const to = Array.from(document.querySelectorAll("button")).find((b) => b.textContent === "Link to Eva Jansen");
    await tap(to as HTMLElement);
    // Nothing is linked until the user confirms who is who.
    expect(linked).toBeNull();
    expect(text()).toContain("Link the study sent for Jansen Eva (patient number EXT-4711) to Eva Jansen, born 1980-05-10, card C1234567?");
    await tap(find("#link-confirm-yes"));
    expect(linked).toEqual({ studyId: "s9", patientId: PATIENT });
    await act(async () => emit("changed", { everything: false, kinds: ["imaging"], ids: ["s9"], transmissions: [], received: [], admin_updates: [] }));
    await settle();
    expect(text()).toContain("Every study has its patient.");
    expect(invoked.filter((c) => c === "unmatched_studies").length).toBeGreaterThanOrEqual(2);
  });
});

describe("citing a study in a report", () => {
  beforeEach(() => resetTauri());
  afterEach(unmount);

  it("offers the patient's studies and cites the chosen one by accession and UID", async () => {
    const cited: string[] = [];
    answers.set("patient_imaging", () => ({
      mrn: "MRN00000001",
      orders: [],
      studies: [study("s1", "CT head", PATIENT), { ...study("s22", "CT chest", PATIENT), study_uid: "2.25.77", accession: "CB0000000002" }],
      pacs: true,
    }));
    await mount(() => <CiteStudy patientId={PATIENT} onCite={(c) => cited.push(c)} />);
    const select = find<HTMLSelectElement>("#cite-study");
    await act(async () => {
      select.value = "s22";
      select.dispatchEvent(new Event("change", { bubbles: true }));
    });
    await tap(find("#cite-study-add"));
    expect(cited).toEqual(["Imaging: CT chest (CT, 2026-12-07), accession CB0000000002, StudyInstanceUID 2.25.77."]);
  });

  it("offers nothing when the patient has no study", async () => {
    answers.set("patient_imaging", () => ({ mrn: null, orders: [], studies: [], pacs: true }));
    await mount(() => <CiteStudy patientId={PATIENT} onCite={() => {}} />);
    expect(document.querySelector("#cite-study")).toBeNull();
  });
});
