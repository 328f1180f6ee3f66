// @vitest-environment jsdom
// Documents on a patient's page and the import folder: versions listed and read again when the
// core says documents changed; reception files without a list; a print's outcome in words; a
// file whose name gave no patient sent for the patient the user picked.
import { act } from "react";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { FolderImportView } from "../bindings/FolderImportView";
import type { PatientDocument } from "../bindings/PatientDocument";
import { answers, emit, find, invoked, mount, resetTauri, settle, tap, type, unmount } from "../testing";
import { FolderImportPanel, PatientDocumentsView, printoutText } from "./Documents";

vi.mock("@tauri-apps/api/core", async () => (await import("../testing")).tauriCore);
vi.mock("@tauri-apps/api/event", async () => (await import("../testing")).tauriEvent);

const PATIENT = "0190a000-0000-7000-8000-000000000001";
const DOCTOR = "0190a000-0000-7000-8000-0000000000d1";
const text = () => document.body.textContent ?? "";
const button = (label: string) => Array.from(document.querySelectorAll("button")).find((b) => b.textContent === label) as HTMLElement;

function doc(title: string, versions: number): PatientDocument {
  return {
    id: `doc-${title}`,
    patient_id: PATIENT,
    title,
    tags: ["cardiology"],
    versions: Array.from({ length: versions }, (_, i) => ({
      version: versions - i,
      media_type: i === 0 ? "image/png" : "application/pdf",
      file_name: `scan-${versions - i}.pdf`,
      size: 2048,
      sha256: "ab",
      added_by: DOCTOR,
      added_by_name: "Dr. Ada Moreau",
      added_at: "2026-12-07T09:40:00Z",
    })),
  };
}

describe("a patient's documents", () => {
  beforeEach(() => resetTauri());
  afterEach(unmount);

  it("lists each document's newest version, every version on asking, and reads again on a change", async () => {
    let docs = [doc("Discharge letter", 2)];
    answers.set("patient_documents", () => docs);
    await mount(() => <PatientDocumentsView patientId={PATIENT} timeZone="Europe/Amsterdam" reads />);
    expect(text()).toContain("Discharge letter");
    expect(text()).toContain("cardiology");
    expect(text()).toContain("Version 2 · PNG image · 2 KiB");
    expect(text()).not.toContain("Version 1");
    await tap(button("All 2 versions"));
    expect(text()).toContain("Version 1 · PDF");
    docs = [doc("Referral", 1), ...docs];
    await act(async () => emit("changed", { everything: false, kinds: ["document"], ids: [PATIENT], transmissions: [], received: [], admin_updates: [] }));
    await settle();
    expect(text()).toContain("Referral");
  });

  it("says where a print went", async () => {
    answers.set("patient_documents", () => [doc("Discharge letter", 1)]);
    answers.set("print_document", () => ({ printer: "ward-printer", job: "ward-printer-7", printerProblem: null, opened: false }));
    await mount(() => <PatientDocumentsView patientId={PATIENT} timeZone="Europe/Amsterdam" reads />);
    await tap(document.querySelector("button[aria-label^='Print: Discharge letter']") as HTMLElement);
    expect(text()).toContain("Sent to ward-printer (job ward-printer-7).");
    expect(printoutText({ printer: "ward", job: null, printerProblem: "the printer or class does not exist", opened: true })).toBe(
      "The printer did not take it (the printer or class does not exist). Opened in the system viewer.",
    );
  });

  it("lets reception file a document without reading the list", async () => {
    await mount(() => <PatientDocumentsView patientId={PATIENT} timeZone="Europe/Amsterdam" reads={false} />);
    expect(invoked).not.toContain("patient_documents");
    expect(find("#document-open-form").textContent).toBe("File a document");
  });
});

describe("the import folder", () => {
  beforeEach(() => resetTauri());
  afterEach(unmount);

  it("shows the files and sends one for the patient the user picked", async () => {
    let view: FolderImportView = {
      folder: "/srv/scans",
      watching: true,
      problem: null,
      files: [
        { name: "scan 0001.pdf", kind: "document", state: "needs-patient", detail: "the file's name gives no card number: choose the patient", title: "scan 0001", patient_id: null },
        { name: "notes.txt", kind: "other", state: "failed", detail: "not a DICOM file, PDF or image", title: null, patient_id: null },
      ],
    };
    let assigned: unknown = null;
    answers.set("import_files", () => view);
    answers.set("workstation_settings", () => ({ import_folder: "/srv/scans" }));
    answers.set("printers", () => ["ward-printer"]);
    answers.set("search", () => [
      { kind: "patient", patient: { id: PATIENT, given_name: "Eva", family_name: "Jansen", birth_date: "1980-05-10", card_number: "C1234567" }, pending: false },
    ]);
    answers.set("assign_import", (args) => {
      assigned = args;
      view = { ...view, files: [{ ...view.files[0], state: "imported", detail: "filed as version 1; moved to imported/scan 0001.pdf" }, view.files[1]] };
      return null;
    });
    await mount(() => <FolderImportPanel />);
    expect(text()).toContain("Watching /srv/scans.");
    expect(text()).toContain("Needs a patient");
    expect(text()).toContain("not a DICOM file, PDF or image");
    expect(find<HTMLSelectElement>("#printer").textContent).toContain("ward-printer");
    await tap(button("Choose the patient"));
    await type(find<HTMLInputElement>(".assign-search"), "Jansen");
    await tap(button("Eva Jansen"));
    expect(text()).toContain("For Eva Jansen, 1980-05-10, Card C1234567.");
    const title = document.querySelectorAll<HTMLInputElement>(".assign input")[0];
    await act(async () => {
      const setValue = Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, "value")?.set;
      setValue?.call(title, "Lab results");
      title.dispatchEvent(new Event("input", { bubbles: true }));
    });
    await settle();
    await tap(button("Send"));
    expect(assigned).toEqual({ name: "scan 0001.pdf", assignment: { patient_id: PATIENT, title: "Lab results", tags: [] } });
    await act(async () => emit("changed", { everything: false, kinds: ["folder-import"], ids: [], transmissions: [], received: [], admin_updates: [] }));
    await settle();
    expect(text()).toContain("filed as version 1");
  });
});
