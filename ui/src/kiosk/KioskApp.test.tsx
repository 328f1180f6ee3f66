// @vitest-environment jsdom
// The kiosk returns to its welcome screen after 60 s without input, on a test clock.
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { KioskPatient } from "../bindings/KioskPatient";
import type { SignedInView } from "../bindings/SignedInView";
import { createElement } from "react";
import { currentLocale, setLocale, useLocale } from "../i18n";
import { answers, invoked, find, headings, mount, press, resetTauri, tap, type, unmount, wait } from "../testing";
import { KioskApp } from "./KioskApp";

/** The kiosk under a root that redraws it on a change of language, as main.tsx's does. */
function KioskInItsRoot() {
  useLocale();
  return createElement(KioskApp);
}

vi.mock("@tauri-apps/api/core", async () => (await import("../testing")).tauriCore);
vi.mock("@tauri-apps/api/event", async () => (await import("../testing")).tauriEvent);

const kiosk: SignedInView = {
  displayName: "Entrance kiosk",
  role: null,
  userId: null,
  node: "hospital.example",
  timeZone: "Europe/Amsterdam",
  nodeKind: "hospital",
  locked: false,
};

const anna: KioskPatient = { id: "0190a1b2-0000-7000-8000-000000000001", display_name: "Anna J.", appointments_today: [] };

const card = () => find<HTMLInputElement>("#kiosk-card");

/** Identifies a patient as a person does: card number, each part of the birth date, Continue. */
async function identify() {
  await type(card(), "4412");
  for (const segment of Array.from(document.querySelectorAll<HTMLElement>("#kiosk-birth [role=spinbutton]"))) {
    await press(segment, "ArrowUp");
  }
  const next = find<HTMLButtonElement>("form[aria-labelledby=welcome-heading] button[type=submit]");
  expect(next.disabled, "Continue stays disabled: the birth date was not entered").toBe(false);
  await tap(next);
  expect(headings()).toContain("Hello, Anna J.");
}

describe("the kiosk after a minute without input", () => {
  beforeEach(async () => {
    vi.useFakeTimers();
    resetTauri();
    answers.set("current_session", () => kiosk);
    answers.set("connection_status", () => ({ link: "online", pending: 0, refused: 0 }));
    answers.set("kiosk_identify", () => anna);
    await mount(KioskInItsRoot);
  });
  afterEach(async () => {
    await unmount();
    vi.useRealTimers();
    setLocale("en", { remember: false });
    localStorage.clear();
  });

  it("returns from a patient's screen to the welcome screen at 60 s, not before", async () => {
    expect(headings()).toContain("Welcome");
    await identify();
    await wait(59_999);
    expect(headings(), "back to the welcome screen before a minute passed").toContain("Hello, Anna J.");
    expect(invoked, "the identification holds while the patient is there").not.toContain("kiosk_finish");
    await wait(1);
    expect(headings()).toContain("Welcome");
    expect(headings()).not.toContain("Hello, Anna J.");
    expect(card().value, "the next person finds the card number empty").toBe("");
    expect(invoked, "the node forgets the patient's identification").toContain("kiosk_finish");
  });

  it("speaks the language a patient chose until the next patient, and does not remember it", async () => {
    const dutch = Array.from(document.querySelectorAll<HTMLButtonElement>("header button")).find((b) => b.textContent === "Nederlands");
    expect(dutch, "the kiosk offers Dutch").toBeTruthy();
    await tap(dutch as HTMLButtonElement);
    expect(headings()).toContain("Welkom");
    expect(localStorage.getItem("carebridge.locale"), "a patient's choice stays on the kiosk").toBeNull();
    await wait(60_000);
    expect(currentLocale()).toBe("en");
    expect(headings()).toContain("Welcome");
  });

  it("clears a half-typed card number, counting the minute from the last key pressed", async () => {
    await type(card(), "44");
    await wait(50_000);
    // Typing again starts the minute again.
    await type(card(), "441");
    await wait(59_999);
    expect(card().value, "cleared a minute after the first key, not the last").toBe("441");
    await wait(1);
    expect(card().value).toBe("");
    expect(headings()).toContain("Welcome");
  });
});
