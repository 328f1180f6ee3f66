import { describe, expect, it } from "vitest";
import type { ClientCode } from "./bindings/ClientCode";
import type { ProblemType } from "./bindings/ProblemType";
import { errorText, failureOf, isCommandError } from "./errors";
import { tMaybe } from "./i18n";

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
  it("has a text for each of the client's own codes", () => {
    const own: ClientCode[] = [
      "offline", "interrupted", "unexpected-answer", "signed-out", "locked", "wrong-password",
      "wrong-key", "no-key", "local-failure",
    ];
    for (const code of own) expect(tMaybe(`error.${code}`), code).toBeTruthy();
  });
  it("falls back to the node's detail for a code it has no text for", () => {
    const f = { code: "validation" as const, message: "the node refused: family_name: empty", problem: problem("validation", "family_name: empty") };
    expect(errorText(f)).toBe("family_name: empty");
  });
  it("falls back to the core's sentence when there is no detail either", () => {
    expect(errorText({ code: "invalid", message: "reason: must not be empty" })).toBe("reason: must not be empty");
    expect(errorText({ code: "validation", message: "the node refused: The request is not valid", problem: problem("validation") })).toBe(
      "the node refused: The request is not valid",
    );
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
