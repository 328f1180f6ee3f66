// @vitest-environment jsdom
// The admin's import of records: the chosen file's text reaches the command, the progress the
// back end reports moves the bar, and the summary lists each refusal with its reason.
import { act } from "react";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { ImportSummary } from "../bindings/ImportSummary";
import { answers, emit, find, mount, resetTauri, settle, tap, unmount } from "../testing";
import { ImportRecords } from "./Admin";

vi.mock("@tauri-apps/api/core", async () => (await import("../testing")).tauriCore);
vi.mock("@tauri-apps/api/event", async () => (await import("../testing")).tauriEvent);

const FILE = '{"resourceType":"Patient","name":[{"family":"Jansen","given":["Eva"]}],"birthDate":"1980-05-10"}\\nnot json\\n';

const text = () => document.body.textContent ?? "";

describe("importing records", () => {
  let sent: string | null;
  let finish: ((s: ImportSummary) => void) | null;
  beforeEach(async () => {
    resetTauri();
    sent = null;
    finish = null;
    answers.set("import_records", (args) => {
      sent = (args as { contents: string }).contents;
      return new Promise<ImportSummary>((resolve) => {
        finish = resolve;
      });
    });
    await mount(ImportRecords);
  });
  afterEach(unmount);

  it("sends the file, shows progress, then the summary with each refusal", async () => {
    const input = find<HTMLInputElement>('input[type="file"]');
    const file = new File([FILE], "migration.ndjson", { type: "application/x-ndjson" });
    // jsdom's File has no text(), which WebKit's has.
    Object.defineProperty(file, "text", { value: async () => FILE });
    await act(async () => {
      Object.defineProperty(input, "files", { value: [file], configurable: true });
      input.dispatchEvent(new Event("change", { bubbles: true }));
    });
    await settle();
    await tap(find<HTMLButtonElement>('button[type="submit"]'));
    expect(sent).toBe(FILE);
    await act(async () => emit("import-progress", { done: 1, total: 2 }));
    const bar = find<HTMLProgressElement>("progress");
    expect(bar.value).toBe(1);
    expect(bar.max).toBe(2);
    expect(text()).toContain("1 of 2 entries");
    expect(finish).not.toBeNull();
    await act(async () => {
      finish?.({
        entries: 2,
        created: 1,
        matched: 0,
        refused: [{ position: 2, resourceType: null, reason: "line 2 is not a FHIR resource" }],
      });
    });
    await settle();
    expect(text()).toContain("2 entries: 1 created, 0 matched to records already here, 1 refused.");
    const cells = Array.from(document.querySelectorAll("tbody td")).map((c) => c.textContent);
    expect(cells).toEqual(["2", "—", "line 2 is not a FHIR resource"]);
  });
});
