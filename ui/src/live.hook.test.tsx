// @vitest-environment jsdom
// useLive against the core's change events, with the listener's registration under the test's
// control: it is an IPC round trip in the app, and a change can come before it is in place.
import { act, createElement } from "react";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { Changes } from "./bindings/Changes";
import { mount, unmount } from "./testing";
import { useLive } from "./live";

type Handler = (e: { payload: Changes }) => void;
const registration: { handlers: Handler[]; release: () => void; pending: Promise<void> } = {
  handlers: [],
  release: () => {},
  pending: Promise.resolve(),
};

vi.mock("@tauri-apps/api/event", () => ({
  // The listener counts only once the test releases its registration.
  listen: async (_event: string, handler: Handler) => {
    await registration.pending;
    registration.handlers.push(handler);
    return () => {
      registration.handlers = registration.handlers.filter((h) => h !== handler);
    };
  },
}));
vi.mock("@tauri-apps/api/core", async () => (await import("./testing")).tauriCore);

const appointmentChanged: Changes = { everything: false, kinds: ["appointment"], ids: ["a1"], transmissions: [], received: [], admin_updates: [] };

/** What the core's store says about the booking: "sending" until the node has it. */
let stored = "sending";
let reads = 0;
const load = async () => {
  reads += 1;
  return stored;
};

function Booking() {
  const live = useLive(load, [], ["appointment"]);
  return createElement("p", { id: "state" }, live.data ?? "");
}

const shown = () => document.getElementById("state")?.textContent;
/** Lets promises and the state updates they cause run, as React's tests should. */
const settle = () => act(async () => new Promise((r) => setTimeout(r, 0)));

afterEach(async () => {
  await unmount();
  registration.handlers = [];
  stored = "sending";
  reads = 0;
});

describe("useLive", () => {
  it("shows a change the core announced before the screen's listener was in place", async () => {
    let release!: () => void;
    registration.pending = new Promise<void>((r) => (release = r));
    await mount(Booking);
    expect(shown()).toBe("sending");
    // The node takes the booking and the core announces it: nobody is listening yet.
    stored = "waiting for the doctor";
    expect(registration.handlers).toHaveLength(0);
    await act(async () => release());
    await settle();
    await settle();
    expect(shown()).toBe("waiting for the doctor");
  });

  it("reads again on a change of a kind it shows, and not on another", async () => {
    registration.pending = Promise.resolve();
    await mount(Booking);
    await settle();
    const before = reads;
    stored = "booked";
    await act(async () => {
      for (const h of registration.handlers) h({ payload: { ...appointmentChanged, kinds: ["report"] } });
    });
    await settle();
    expect(reads).toBe(before);
    await act(async () => {
      for (const h of registration.handlers) h({ payload: appointmentChanged });
    });
    await settle();
    expect(reads).toBe(before + 1);
    expect(shown()).toBe("booked");
  });
});
