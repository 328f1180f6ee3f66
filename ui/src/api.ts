// The app's commands and events, typed with the declarations generated from the Rust code
// (ui/src/bindings, written by `cargo test`; CI fails when they are stale).
import { listen, type UnlistenFn } from "@tauri-apps/api/event";
import type { Changes } from "./bindings/Changes";
import type { ImportProgress } from "./bindings/ImportProgress";
import type { SignedInView } from "./bindings/SignedInView";
import type { Status } from "./bindings/Status";
import { type Audience, errorText, isCommandError } from "./errors";
import { mark } from "./timeline";

// Every command, typed: generated from the command registry (src-tauri/commands/registry.rs).
export * from "./bindings/commands";

// Events.
export function onStatus(f: (s: Status) => void): Promise<UnlistenFn> {
  return listen<Status>("status", (e) => f(e.payload));
}
/** What changed, as the core tells it (see `live.ts`). */
export function onChanged(f: (c: Changes) => void): Promise<UnlistenFn> {
  return listen<Changes>("changed", (e) => {
    mark("ui.heard", e.payload.ids);
    f(e.payload);
  });
}
/** How far an import of records is (see `importRecords`). */
export function onImportProgress(f: (p: ImportProgress) => void): Promise<UnlistenFn> {
  return listen<ImportProgress>("import-progress", (e) => f(e.payload));
}
export function onSession(f: (v: SignedInView) => void): Promise<UnlistenFn> {
  return listen<SignedInView>("session", (e) => f(e.payload));
}

/** The text of a command's error, for staff screens (see `errors.ts`). A rejection that is not
 *  a `CommandError` (e.g. the ACL's) shows its own words. */
export function messageOf(e: unknown, audience: Audience = "staff"): string {
  return isCommandError(e) ? errorText(e, audience) : String(e);
}
