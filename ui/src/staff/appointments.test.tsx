// @vitest-environment jsdom
// The appointment lists: a re-read after a change draws again only the rows whose appointment
// changed (a doctor's long day otherwise redrew hundreds of rows per booking), and a switch of
// language still redraws them all.
import { act, useState } from "react";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { AppointmentRow } from "../bindings/AppointmentRow";
import { setLocale } from "../i18n";
import { mount, resetTauri, unmount } from "../testing";
import { AppointmentTable } from "./appointments";

vi.mock("@tauri-apps/api/core", async () => (await import("../testing")).tauriCore);
vi.mock("@tauri-apps/api/event", async () => (await import("../testing")).tauriEvent);

/** How often a row's time was formatted: once per drawing of a row. */
const drawn = vi.hoisted(() => ({ rows: 0 }));
vi.mock("../format", async (original) => {
  const real = await original<typeof import("../format")>();
  return {
    ...real,
    timeOf: (...args: Parameters<typeof real.timeOf>) => {
      drawn.rows += 1;
      return real.timeOf(...args);
    },
  };
});

const DOCTOR = "0190a1b2-0000-7000-8000-000000000002";

function row(n: number, change: Partial<AppointmentRow["appointment"]> = {}): AppointmentRow {
  return {
    appointment: {
      id: `0190a1b2-0000-7000-8000-0000000001${String(n).padStart(2, "0")}`,
      reference: `REF-${n}`,
      patient_id: `0190a1b2-0000-7000-8000-0000000002${String(n).padStart(2, "0")}`,
      practitioner_id: DOCTOR,
      start: `2026-12-07T0${n}:00:00Z`,
      end: `2026-12-07T0${n}:15:00Z`,
      reason: `Reason ${n}`,
      status: "booked",
      booked_by: { kind: "staff", id: DOCTOR },
      override_reason: null,
      cancellation_reason: null,
      version: 1,
      created_at: "2026-12-06T09:00:00Z",
      updated_at: "2026-12-06T09:00:00Z",
      ...change,
    } as AppointmentRow["appointment"],
    pending: false,
    patient_name: `Patient ${n}`,
  };
}

/** Shows the rows a test sets, as a screen shows a list it re-read. */
let show: (rows: AppointmentRow[]) => void = () => {};
function Screen() {
  const [rows, setRows] = useState<AppointmentRow[]>([row(1), row(2), row(3)]);
  show = setRows;
  return <AppointmentTable rows={rows} timeZone="Europe/Amsterdam" labelledBy="h" actions={["check-in", "cancel"]} />;
}

/** Each row's reference and status text, in order. */
const table = () =>
  [...document.querySelectorAll("tbody tr")].map((tr) => `${tr.getAttribute("data-reference")} ${tr.children[3]?.textContent}`);

describe("appointment table", () => {
  beforeEach(() => {
    resetTauri();
    setLocale("en", { remember: false });
    drawn.rows = 0;
  });
  afterEach(async () => {
    await unmount();
    setLocale("en", { remember: false });
  });

  it("draws again only the rows that are new or changed when the list is read again", async () => {
    await mount(Screen);
    expect(drawn.rows).toBe(3);
    // A re-read answers new objects for the same appointments, and one new booking.
    await act(async () => show([row(1), row(2), row(3), row(4)]));
    expect(drawn.rows).toBe(4);
    expect(table()).toEqual(["REF-1 Booked", "REF-2 Booked", "REF-3 Booked", "REF-4 Booked"]);
    // One appointment changed on the node: its row alone is drawn again, with what changed.
    await act(async () => show([row(1), row(2, { status: "arrived", version: 2 }), row(3), row(4)]));
    expect(drawn.rows).toBe(5);
    expect(table()).toEqual(["REF-1 Booked", "REF-2 Arrived", "REF-3 Booked", "REF-4 Booked"]);
    expect(document.querySelectorAll("tbody tr")[1]?.textContent).not.toContain("Check in");
  });

  it("draws a row again when the node's reference arrives or a local change is pending, at the same version", async () => {
    await mount(Screen);
    const local = { ...row(1), appointment: { ...row(1).appointment, reference: "" }, patient_name: null };
    await act(async () => show([local, row(2), row(3)]));
    expect(drawn.rows).toBe(4);
    expect(table()[0]).toBe(" Booked");
    // Accepted by the node while a later change to it waits: the reference alone is new.
    await act(async () => show([{ ...local, appointment: { ...local.appointment, reference: "REF-1" } }, row(2), row(3)]));
    expect(drawn.rows).toBe(5);
    expect(table()[0]).toBe("REF-1 Booked");
    await act(async () => show([row(1), { ...row(2), pending: true }, row(3)]));
    expect(drawn.rows).toBe(7);
    expect(document.querySelectorAll("tbody tr")[1]?.className).toBe("pending");
  });

  it("draws every row again in the language switched to", async () => {
    await mount(Screen);
    await act(async () => setLocale("nl", { remember: false }));
    expect(drawn.rows).toBe(6);
    expect(table()).toEqual(["REF-1 Geboekt", "REF-2 Geboekt", "REF-3 Geboekt"]);
  });
});
