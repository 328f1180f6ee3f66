// What a failed command or a refused write means to the user: the UI's own text for its code,
// the node's detail only where the UI has none. Screens switch on `code`, never on a message.
import type { ClientCode } from "./bindings/ClientCode";
import type { CommandError } from "./bindings/CommandError";
import type { ErrorCode } from "./bindings/ErrorCode";
import type { Problem } from "./bindings/Problem";
import { tMaybe } from "./i18n";

/** A failure with its code: a command's error, or a refused write's. */
export interface Failure {
  code: ErrorCode;
  /** The core's sentence (a refused write's: the node's reason). */
  message: string;
  problem?: Problem;
}

/** Where a text is looked up first: the kiosk has friendlier ones for some codes. */
export type Audience = "staff" | "kiosk";

/** Whether a command's rejection is a `CommandError` (and not, e.g., the ACL's refusal). */
export function isCommandError(e: unknown): e is CommandError {
  return typeof e === "object" && e !== null && "code" in e && "message" in e;
}

/** The failure a command's rejection stands for; one that is not a `CommandError` (a refusal
 *  by Tauri itself, a bug) is this computer's failure, with its own words. */
export function failureOf(e: unknown): Failure {
  if (isCommandError(e)) return e;
  const local: ClientCode = "local-failure";
  return { code: local, message: e instanceof Error ? e.message : String(e) };
}

/** The fields a failure names, in the UI's words: the node's field errors, or the field
 *  before the colon of the core's sentence ("reason: must not be empty"). A nested field
 *  ("patient.family_name", "codes[2]") is named by its last part. */
export function fieldsOf(f: Failure): string {
  const raw = f.problem?.errors?.map((e) => e.field) ?? (f.code === "invalid" ? [f.message.split(":")[0]] : []);
  const names = [...new Set(raw.map((field) => (field.trim().split(".").pop() ?? field).replace(/\[\d+\]$/, "")))].filter(Boolean);
  return names.map((name) => tMaybe(`field.${name}`) ?? name).join(", ");
}

/** The text to show for a failure: the UI's for its code (every code the node or the core can
 *  give has one), else the node's detail, else the core's sentence. */
export function errorText(f: Failure, audience: Audience = "staff"): string {
  const values = { fields: fieldsOf(f) };
  return (
    (audience === "kiosk" ? tMaybe(`kiosk.error.${f.code}`, values) : undefined) ??
    tMaybe(`error.${f.code}`, values) ??
    f.problem?.detail ??
    f.message
  );
}
