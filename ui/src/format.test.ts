import { describe, expect, it } from "vitest";
import { addDays, dateIn, timeOf } from "./format";

describe("times in the node's zone", () => {
  it("shows an instant at the node's local time, not the machine's", () => {
    // 09:30 UTC is 10:30 in Amsterdam in winter and 18:30 in Tokyo.
    expect(timeOf("2026-11-24T09:30:00Z", "Europe/Amsterdam", "en-GB")).toBe("10:30");
    expect(timeOf("2026-11-24T09:30:00Z", "Asia/Tokyo", "en-GB")).toBe("18:30");
  });
  it("gives the node's date for an instant near midnight", () => {
    const lateUtc = new Date("2026-11-24T23:30:00Z");
    expect(dateIn(lateUtc, "Europe/Amsterdam")).toBe("2026-11-25");
    expect(dateIn(lateUtc, "America/New_York")).toBe("2026-11-24");
  });
  it("moves calendar dates across months and DST changes by whole days", () => {
    expect(addDays("2026-10-24", 1)).toBe("2026-10-25");
    expect(addDays("2026-10-25", 1)).toBe("2026-10-26");
    expect(addDays("2026-11-30", 1)).toBe("2026-12-01");
    expect(addDays("2026-03-01", -1)).toBe("2026-02-28");
  });
});
