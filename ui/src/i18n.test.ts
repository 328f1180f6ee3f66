// @vitest-environment jsdom
import { afterEach, describe, expect, it } from "vitest";
import { currentLocale, LOCALES, localeFor, setLocale, t, tKey } from "./i18n";
import { en } from "./locales/en";
import { nl } from "./locales/nl";

afterEach(() => {
  setLocale("en", { remember: false });
  localStorage.clear();
});

describe("t", () => {
  it("fills in values", () => {
    expect(t("status.pending", { n: 3 })).toBe("3 waiting to send");
  });
  it("leaves a missing value empty rather than showing a placeholder", () => {
    expect(t("status.pending")).toBe(" waiting to send");
  });
  it("speaks the chosen language", () => {
    setLocale("nl");
    expect(t("status.pending", { n: 3 })).toBe("3 wachten op verzending");
    expect(document.documentElement.lang).toBe("nl");
  });
});

describe("tKey", () => {
  it("translates a known status and passes an unknown one through", () => {
    expect(tKey("appointmentStatus", "pending")).toBe("Waiting for the doctor");
    expect(tKey("appointmentStatus", "something-new")).toBe("something-new");
    setLocale("nl");
    expect(tKey("appointmentStatus", "pending")).toBe("Wacht op de arts");
  });
});

describe("the catalogues", () => {
  const placeholders = (text: string) => [...text.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort();
  const catalogues = { en, nl } as Record<string, Record<string, string>>;

  it("cover every language the switch offers", () => {
    expect(Object.keys(catalogues).sort()).toEqual(Object.keys(LOCALES).sort());
  });
  for (const [name, catalogue] of Object.entries(catalogues)) {
    it(`${name} has exactly the English keys`, () => {
      const missing = Object.keys(en).filter((k) => !(k in catalogue));
      const extra = Object.keys(catalogue).filter((k) => !(k in en));
      expect({ missing, extra }).toEqual({ missing: [], extra: [] });
    });
    it(`${name} uses the same placeholders as English in every text`, () => {
      const differ = Object.keys(en).filter(
        (k) => JSON.stringify(placeholders(catalogue[k] ?? "")) !== JSON.stringify(placeholders(en[k as keyof typeof en])),
      );
      expect(differ).toEqual([]);
    });
    it(`${name} has no empty text`, () => {
      expect(Object.keys(catalogue).filter((k) => !catalogue[k].trim())).toEqual([]);
    });
  }
});

describe("choosing the language", () => {
  it("takes the first language the UI speaks from the system's list, by language", () => {
    expect(localeFor(["nl-NL", "en-US"])).toBe("nl");
    expect(localeFor(["nl_BE"])).toBe("nl");
    expect(localeFor(["fr-FR", "nl"])).toBe("nl");
    expect(localeFor(["fr-FR", "de"])).toBe("en");
    expect(localeFor([])).toBe("en");
  });
  it("remembers a staff member's choice on this workstation, and not a patient's", () => {
    setLocale("nl");
    expect(localStorage.getItem("carebridge.locale")).toBe("nl");
    localStorage.clear();
    setLocale("en", { remember: false });
    expect(currentLocale()).toBe("en");
    expect(localStorage.getItem("carebridge.locale")).toBeNull();
  });
});
