import { describe, expect, it } from "vitest";
import { t, tKey } from "./i18n";

describe("t", () => {
  it("fills in values", () => {
    expect(t("status.pending", { n: 3 })).toBe("3 waiting to send");
  });
  it("leaves a missing value empty rather than showing a placeholder", () => {
    expect(t("status.pending")).toBe(" waiting to send");
  });
});

describe("tKey", () => {
  it("translates a known status and passes an unknown one through", () => {
    expect(tKey("appointmentStatus", "pending")).toBe("Waiting for the doctor");
    expect(tKey("appointmentStatus", "something-new")).toBe("something-new");
  });
});
