// @vitest-environment jsdom
// A staff session locks after 10 minutes without input, on a test clock.
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { SignedInView } from "../bindings/SignedInView";
import { answers, headings, invoked, mount, resetTauri, unmount, wait } from "../testing";
import { StaffApp } from "./StaffApp";

vi.mock("@tauri-apps/api/core", async () => (await import("../testing")).tauriCore);
vi.mock("@tauri-apps/api/event", async () => (await import("../testing")).tauriEvent);

const doctor: SignedInView = {
  displayName: "Dr. Moreau",
  role: "doctor",
  userId: "0190a1b2-0000-7000-8000-000000000002",
  node: "hospital.example",
  timeZone: "Europe/Amsterdam",
  nodeKind: "hospital",
  locked: false,
};

const MINUTE = 60_000;

const locked = () => headings().includes("Locked");

/** A key pressed somewhere in the window, as a person typing does. */
async function keyPressed() {
  await wait(0);
  document.body.dispatchEvent(new KeyboardEvent("keydown", { key: "a", bubbles: true }));
}

describe("a staff session without input", () => {
  beforeEach(async () => {
    vi.useFakeTimers();
    resetTauri();
    answers.set("current_session", () => doctor);
    answers.set("connection_status", () => ({ link: "online", pending: 0, refused: 0 }));
    answers.set("lock", () => null);
    // Who signed in in this window: the lock screen asks for their password again.
    sessionStorage.setItem("carebridge.user", JSON.stringify({ username: "dr.moreau", nodeUrl: "http://127.0.0.1:8080" }));
    await mount(StaffApp);
  });
  afterEach(async () => {
    await unmount();
    sessionStorage.clear();
    vi.useRealTimers();
  });

  it("locks after 10 minutes, not before, and tells the app", async () => {
    expect(headings()).toContain("Kiosk bookings waiting for you");
    await wait(10 * MINUTE - 1);
    expect(locked(), "locked before 10 minutes passed").toBe(false);
    expect(invoked).not.toContain("lock");
    await wait(1);
    expect(locked()).toBe(true);
    expect(headings()).not.toContain("Kiosk bookings waiting for you");
    expect(invoked.filter((c) => c === "lock")).toHaveLength(1);
  });

  it("counts the 10 minutes from the last input", async () => {
    await wait(9 * MINUTE);
    await keyPressed();
    await wait(10 * MINUTE - 1);
    expect(locked(), "locked 10 minutes after sign-in, not after the last input").toBe(false);
    await wait(1);
    expect(locked()).toBe(true);
  });
});
