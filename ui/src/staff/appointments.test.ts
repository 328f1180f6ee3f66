import { describe, expect, it } from "vitest";
import { nextActions } from "./appointments";

describe("nextActions", () => {
  const now = Date.parse("2026-11-24T10:00:00Z");
  it("offers the doctor's answer only for a kiosk booking waiting for it", () => {
    expect(nextActions("pending", "2026-11-24T11:00:00Z", ["confirm", "decline"], now)).toEqual(["confirm", "decline"]);
    expect(nextActions("booked", "2026-11-24T11:00:00Z", ["confirm", "decline"], now)).toEqual([]);
  });
  it("offers 'did not come' only once the appointment has started", () => {
    const all = ["check-in", "no-show", "cancel"] as const;
    expect(nextActions("booked", "2026-11-24T11:00:00Z", [...all], now)).toEqual(["check-in", "cancel"]);
    expect(nextActions("booked", "2026-11-24T09:30:00Z", [...all], now)).toEqual(["check-in", "no-show", "cancel"]);
  });
  it("offers nothing for a finished or cancelled appointment", () => {
    expect(nextActions("fulfilled", "2026-11-24T09:00:00Z", ["complete", "cancel"], now)).toEqual([]);
    expect(nextActions("cancelled", "2026-11-24T09:00:00Z", ["cancel"], now)).toEqual([]);
  });
});
