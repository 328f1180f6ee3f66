// The app's commands and events, typed with the declarations generated from the Rust code
// (ui/src/bindings, written by `cargo test`; CI fails when they are stale).
import { invoke } from "@tauri-apps/api/core";
import { listen, type UnlistenFn } from "@tauri-apps/api/event";
import type { AppointmentRow } from "./bindings/AppointmentRow";
import type { CommandError } from "./bindings/CommandError";
import type { SignedInView } from "./bindings/SignedInView";
import type { Status } from "./bindings/Status";

export function signIn(nodeUrl: string, username: string, password: string): Promise<SignedInView> {
  return invoke("sign_in", { nodeUrl, username, password });
}

export function currentSession(): Promise<SignedInView | null> {
  return invoke("current_session");
}

export function connectionStatus(): Promise<Status | null> {
  return invoke("connection_status");
}

export function appointmentsToday(): Promise<AppointmentRow[]> {
  return invoke("appointments_today");
}

export function onStatus(f: (s: Status) => void): Promise<UnlistenFn> {
  return listen<Status>("status", (e) => f(e.payload));
}

export function onChanged(f: () => void): Promise<UnlistenFn> {
  return listen("changed", () => f());
}

/** The message of a command's error, whatever shape it arrived in. */
export function messageOf(e: unknown): string {
  if (typeof e === "object" && e !== null && "message" in e) {
    return String((e as CommandError).message);
  }
  return String(e);
}
