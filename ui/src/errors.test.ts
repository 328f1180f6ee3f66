import { afterEach, describe, expect, it } from "vitest";
import type { ClientCode } from "./bindings/ClientCode";
import type { ProblemType } from "./bindings/ProblemType";
import { errorText, failureOf, fieldsOf, isCommandError } from "./errors";
import { LOCALES, type Locale, setLocale, tMaybe } from "./i18n";

afterEach(() => setLocale("en", { remember: false }));

const problem = (code: ProblemType, detail?: string) => ({
  type: `https://carebridge.example/problems/${code}`,
  title: "a title",
  status: 409,
  code,
  ...(detail ? { detail } : {}),
});

describe("errorText", () => {
  it("shows the UI's own text for a node's code, not the node's words", () => {
    const text = errorText({ code: "slot-taken", message: "the node refused: taken", problem: problem("slot-taken", "Dr X is busy") });
    expect(text).toBe("That time is already taken. Choose another time.");
  });
  it("names the refused fields in the user's language, never in the node's words", () => {
    const f = {
      code: "validation" as const,
      message: "the node refused: family_name: empty",
      problem: { ...problem("validation", "family_name: must not be empty"), errors: [
        { field: "family_name", message: "must not be empty" },
        { field: "patient.email", message: "not an e-mail address" },
        { field: "codes[1]", message: "not an ICD-10 code" },
        { field: "family_name", message: "too long" },
      ] },
    };
    expect(errorText(f)).toBe("Some values were not accepted: family name, e-mail, codes. Check them and try again.");
    setLocale("nl", { remember: false });
    expect(errorText(f)).toBe("Sommige waarden zijn niet geaccepteerd: achternaam, e-mail, codes. Controleer ze en probeer het opnieuw.");
  });
  it("names the field of the core's own check, and an unknown field as it is", () => {
    expect(errorText({ code: "invalid", message: "reason: must not be empty" })).toBe(
      "Some values are not valid: reason. Check them and try again.",
    );
    expect(fieldsOf({ code: "invalid", message: "ward_code: too long" })).toBe("ward_code");
  });
  it("has a text for every code the node and the core can give, in every language", () => {
    // Typed as records over the generated unions: a code added in Rust fails the type check
    // (npm run build) until it is listed here, and this test until it has its texts.
    const nodeCodes: Record<ProblemType, true> = {
      validation: true, "malformed-body": true, "unsupported-media-type": true, "payload-too-large": true,
      "not-found": true, "method-not-allowed": true, unauthenticated: true, forbidden: true,
      "too-many-requests": true, "slot-taken": true, "outside-schedule": true, "practitioner-absent": true,
      "invalid-transition": true, "precondition-failed": true, "precondition-required": true,
      "idempotency-key-reused": true, "possible-duplicate": true, conflict: true,
      "patient-not-identified": true, internal: true, unavailable: true, "unknown-api-key": true,
      "unknown-signer": true, "bad-signature": true, "digest-mismatch": true, "signature-expired": true,
      "replayed-request": true, "source-not-allowed": true, "message-type-not-allowed": true,
      "malformed-envelope": true, "wrong-destination": true, "envelope-tag-mismatch": true,
      "checksum-mismatch": true, "unreadable-payload": true,
    };
    const clientCodes: Record<ClientCode, true> = {
      offline: true, interrupted: true, "unexpected-answer": true, "signed-out": true, locked: true,
      "wrong-password": true, "wrong-key": true, "no-key": true, invalid: true, "local-failure": true,
    };
    const codes = [...Object.keys(nodeCodes), ...Object.keys(clientCodes)];
    for (const locale of Object.keys(LOCALES) as Locale[]) {
      setLocale(locale, { remember: false });
      const missing = codes.filter((code) => !tMaybe(`error.${code}`));
      expect({ locale, missing }).toEqual({ locale, missing: [] });
    }
  });
  it("gives the kiosk its own text where it has one, else the staff's", () => {
    const taken = { code: "slot-taken" as const, message: "x" };
    expect(errorText(taken, "kiosk")).toBe("Sorry, someone has just booked this time. Please choose another time.");
    expect(errorText({ code: "internal", message: "x" }, "kiosk")).toBe("The node failed. Nothing was changed; try again.");
  });
});

describe("failureOf", () => {
  it("keeps a command's error as it is", () => {
    const e = { code: "offline" as const, message: "the node cannot be reached" };
    expect(isCommandError(e)).toBe(true);
    expect(failureOf(e)).toBe(e);
  });
  it("makes anything else this computer's failure, with its own words", () => {
    expect(isCommandError("Command book not allowed by ACL")).toBe(false);
    expect(failureOf("Command book not allowed by ACL")).toEqual({ code: "local-failure", message: "Command book not allowed by ACL" });
    expect(failureOf(new Error("boom")).message).toBe("boom");
  });
});
