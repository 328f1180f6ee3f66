// @vitest-environment jsdom
// The admin's audit trail: names and words instead of ids, filters that reach the node, and
// the CSV export's answer on screen.
import { act } from "react";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { AuditFilter } from "../bindings/AuditFilter";
import type { AuditRow } from "../bindings/AuditRow";
import { en } from "../locales/en";
import { answers, find, mount, resetTauri, tap, type, unmount } from "../testing";
import { ACTION_FAMILIES, AuditTrail, actionWords, actorWords, recordWords } from "./AuditTrail";

vi.mock("@tauri-apps/api/core", async () => (await import("../testing")).tauriCore);
vi.mock("@tauri-apps/api/event", async () => (await import("../testing")).tauriEvent);

const PATIENT = "0190a1b2-0000-7000-8000-0000000000aa";
const DOCTOR = "0190a1b2-0000-7000-8000-000000000002";

function row(seq: number, change: Partial<AuditRow>): AuditRow {
  return {
    seq,
    recordedAt: "2026-12-06T09:30:00+00:00",
    actor: `staff:${DOCTOR}`,
    actorName: "Dr. Claire Moreau",
    action: "patient.read",
    entity: `patient/${PATIENT}`,
    entityName: "Jan de Vries",
    patient: PATIENT,
    outcome: "success",
    detail: "",
    source: "127.0.0.1",
    ...change,
  };
}

/** Every filter the screen asked the node with, in order. */
let asked: AuditFilter[] = [];

const Screen = () => <AuditTrail timeZone="Europe/Amsterdam" />;

const text = () => document.body.textContent ?? "";

const last = () => asked[asked.length - 1];

/** Chooses `value` in `select` as a person does (React reads the value the event carries). */
async function choose(select: HTMLSelectElement, value: string) {
  await act(async () => {
    Object.getOwnPropertyDescriptor(HTMLSelectElement.prototype, "value")?.set?.call(select, value);
    select.dispatchEvent(new Event("change", { bubbles: true }));
  });
}

describe("the audit trail", () => {
  beforeEach(async () => {
    resetTauri();
    asked = [];
    answers.set("audit_trail", (args) => {
      asked.push((args as { filter: AuditFilter }).filter);
      return [
        row(3, {}),
        row(2, { actor: "kiosk:0190a1b2-0000-7000-8000-00000000000c", actorName: "Entrance hall", action: "appointment.book", entity: "appointment/0190a1b2-0000-7000-8000-0000000000b1" }),
        row(1, { actor: "node", actorName: null, action: "audit.checkpoint", entity: "", entityName: null, patient: null }),
      ];
    });
    await mount(Screen);
  });
  afterEach(unmount);

  it("shows people, actions and records in words, not ids", () => {
    expect(text()).toContain("Dr. Claire Moreau");
    expect(text()).toContain("Opened a patient record");
    expect(text()).toContain("Patient · Jan de Vries");
    expect(text()).toContain("Kiosk Entrance hall");
    expect(text()).toContain("Appointment · Jan de Vries");
    expect(text()).toContain("CareBridge node (automatic)");
    expect(text()).not.toContain(DOCTOR);
    expect(asked).toEqual([{ actor: null, action: null, patient: null, cardNumber: null, from: null, to: null }]);
  });

  it("filters by the patient whose name is pressed, and by the person", async () => {
    await tap(find(`button[title="Show only the record of Jan de Vries"]`));
    expect(last()).toMatchObject({ patient: PATIENT, cardNumber: null });
    expect(text()).toContain("Only the record of Jan de Vries");
    await tap(find(`button[title="Show only what Dr. Claire Moreau did"]`));
    expect(last()).toMatchObject({ patient: PATIENT, actor: `staff:${DOCTOR}` });
  });

  it("sends the card number, kind of action and period typed in the form", async () => {
    await type(find<HTMLInputElement>('.audit-filters input[type="text"]'), "ab12345");
    const selects = document.querySelectorAll<HTMLSelectElement>(".audit-filters select");
    expect(selects).toHaveLength(2);
    await choose(selects[1], "report");
    const [from, to] = Array.from(document.querySelectorAll<HTMLInputElement>('.audit-filters input[type="date"]'));
    await type(from, "2026-12-01");
    await type(to, "2026-12-06");
    await tap(find(".audit-filters button[type=submit]"));
    expect(last()).toEqual({
      actor: null,
      action: "report",
      patient: null,
      cardNumber: "AB12345",
      from: "2026-12-01",
      to: "2026-12-06",
    });
  });

  it("exports the filtered view and says where the file is", async () => {
    let exported: AuditFilter | undefined;
    answers.set("export_audit_trail", (args) => {
      exported = (args as { filter: AuditFilter }).filter;
      return { path: "/home/admin/Downloads/carebridge-audit.csv", bytes: 420 };
    });
    await tap(find(`button[title="Show only the record of Jan de Vries"]`));
    const button = Array.from(document.querySelectorAll("button")).find((b) => b.textContent === "Export as CSV");
    expect(button).toBeTruthy();
    await tap(button as HTMLElement);
    expect(exported).toMatchObject({ patient: PATIENT });
    expect(text()).toContain("/home/admin/Downloads/carebridge-audit.csv");
  });

  it("says so when nothing matches", async () => {
    answers.set("audit_trail", () => []);
    await tap(find(`button[title="Show only the record of Jan de Vries"]`));
    expect(text()).toContain("No entries match these filters.");
  });
});

describe("the trail's words", () => {
  it("has a name for every family of actions the filter offers", () => {
    for (const f of ACTION_FAMILIES) expect(en, f).toHaveProperty(`audit.family.${f}`);
  });

  it("shows an action the catalogue does not know as the node names it", () => {
    expect(actionWords("report.read")).toBe("Opened a report");
    expect(actionWords("imaging.fetch")).toBe("imaging.fetch");
  });

  it("falls back to the actor's id, and a dash for no record", () => {
    expect(actorWords({ actor: "staff:gone", actorName: null })).toBe("staff:gone");
    expect(actorWords({ actor: "anonymous", actorName: null })).toBe("Unknown (not signed in)");
    expect(recordWords({ entity: "", entityName: null })).toBe("—");
    expect(recordWords({ entity: "report/x", entityName: null })).toBe("Report");
  });
});
