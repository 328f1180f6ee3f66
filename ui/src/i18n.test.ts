import { describe, expect, it } from "vitest";
import { t } from "./i18n";

describe("t", () => {
  it("fills in values", () => {
    expect(t("status.pending", { n: 3 })).toBe("3 waiting to send");
  });
  it("leaves a missing value empty rather than showing a placeholder", () => {
    expect(t("status.pending")).toBe(" waiting to send");
  });
});
