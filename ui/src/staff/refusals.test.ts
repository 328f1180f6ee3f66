import { describe, expect, it } from "vitest";
import type { Slot } from "../bindings/Slot";
import { nextFree } from "./refusals";

const slot = (start: string, status: Slot["status"] = "free"): Slot => ({
  practitioner_id: "d",
  start,
  end: start.replace(":00:00", ":30:00"),
  status,
});

describe("nextFree", () => {
  const now = Date.parse("2026-11-24T08:00:00Z");
  const all = [
    slot("2026-11-24T11:00:00Z"),
    slot("2026-11-24T07:00:00Z"),
    slot("2026-11-24T09:00:00Z"),
    slot("2026-11-24T10:00:00Z", "busy"),
    slot("2026-11-24T12:00:00Z", "busy-tentative"),
    slot("2026-11-25T09:00:00Z"),
  ];
  it("offers the free times from the wanted one on, soonest first, not the wanted one", () => {
    expect(nextFree(all, "2026-11-24T09:00:00Z", now).map((s) => s.start)).toEqual([
      "2026-11-24T11:00:00Z",
      "2026-11-25T09:00:00Z",
    ]);
  });
  it("never offers a time already past", () => {
    expect(nextFree(all, "2026-11-24T06:00:00Z", now, 1).map((s) => s.start)).toEqual(["2026-11-24T09:00:00Z"]);
  });
});
