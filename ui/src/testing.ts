// What the screens' tests share (jsdom): the app's commands answered from a table instead of
// the Tauri back end, a React root driven under act(), and input as a person makes it.
//
// A test file mocks the Tauri modules with these:
//   vi.mock("@tauri-apps/api/core", async () => (await import("../testing")).tauriCore);
//   vi.mock("@tauri-apps/api/event", async () => (await import("../testing")).tauriEvent);
import { act, createElement, type ComponentType } from "react";
import { createRoot, type Root } from "react-dom/client";

// React flushes effects and updates inside act() only where it is told it runs under tests.
(globalThis as { IS_REACT_ACT_ENVIRONMENT?: boolean }).IS_REACT_ACT_ENVIRONMENT = true;

/** The answers commands get, by name; a command not listed answers an empty list. */
export const answers = new Map<string, (args: unknown) => unknown>();
/** Every command invoked, in order. */
export const invoked: string[] = [];

export const tauriCore = {
  invoke: async (command: string, args?: unknown): Promise<unknown> => {
    invoked.push(command);
    const answer = answers.get(command);
    return answer ? answer(args) : [];
  },
};

/** Who listens to which event; a test sends events with `emit`. */
const listeners = new Map<string, Set<(e: { payload: unknown }) => void>>();

export const tauriEvent = {
  listen: async (name: string, f: (e: { payload: unknown }) => void): Promise<() => void> => {
    const set = listeners.get(name) ?? new Set();
    set.add(f);
    listeners.set(name, set);
    return () => set.delete(f);
  },
};

/** Sends `payload` to every listener of `name`, as the back end does. */
export function emit(name: string, payload: unknown): void {
  for (const f of listeners.get(name) ?? []) f({ payload });
}

/** Forgets the answers, what was invoked and who listened (between tests). */
export function resetTauri(): void {
  answers.clear();
  invoked.length = 0;
  listeners.clear();
}

let root: Root | null = null;
let host: HTMLElement | null = null;

/** Renders `component` into a fresh document body and lets its first reads answer. */
export async function mount(component: ComponentType): Promise<void> {
  host = document.createElement("div");
  document.body.appendChild(host);
  const r = createRoot(host);
  root = r;
  await act(async () => r.render(createElement(component)));
  await settle();
}

export async function unmount(): Promise<void> {
  const r = root;
  if (r) await act(async () => r.unmount());
  host?.remove();
  root = null;
  host = null;
}

/** Lets pending answers (resolved promises) reach the screen. */
export async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await act(async () => {});
}

/** Moves the (fake) clock on by `ms`, running what falls due, and lets the screen update. */
export async function wait(ms: number): Promise<void> {
  const { vi } = await import("vitest");
  await act(async () => {
    vi.advanceTimersByTime(ms);
  });
  await settle();
}

/** The element `selector` finds, or a failure naming it. */
export function find<T extends Element = HTMLElement>(selector: string): T {
  const el = document.querySelector<T>(selector);
  if (!el) throw new Error(`nothing matches ${selector} in ${document.body.innerHTML.slice(0, 2000)}`);
  return el;
}

/** The text of every heading on the screen. */
export function headings(): string[] {
  return Array.from(document.querySelectorAll("h1, h2, h3")).map((h) => h.textContent ?? "");
}

/** Types `text` into `input` as a keyboard does: a key press, then the new value. */
export async function type(input: HTMLInputElement, text: string): Promise<void> {
  await act(async () => {
    input.focus();
    input.dispatchEvent(new KeyboardEvent("keydown", { key: text.slice(-1), bubbles: true }));
    const setValue = Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, "value")?.set;
    setValue?.call(input, text);
    input.dispatchEvent(new Event("input", { bubbles: true }));
    input.dispatchEvent(new KeyboardEvent("keyup", { key: text.slice(-1), bubbles: true }));
  });
  await settle();
}

/** Presses `key` on `el` (focused first). */
export async function press(el: HTMLElement, key: string): Promise<void> {
  await act(async () => {
    el.focus();
    el.dispatchEvent(new KeyboardEvent("keydown", { key, bubbles: true, cancelable: true }));
    el.dispatchEvent(new KeyboardEvent("keyup", { key, bubbles: true, cancelable: true }));
  });
  await settle();
}

/** Taps `el` as a pointer does: pointer and mouse down and up, then the click (jsdom has no
 *  PointerEvent: the pointer events are plain mouse events of those names). */
export async function tap(el: HTMLElement): Promise<void> {
  const fire = (name: string) =>
    el.dispatchEvent(new MouseEvent(name, { bubbles: true, cancelable: true, button: 0, detail: 1 }));
  await act(async () => {
    for (const name of ["pointerdown", "mousedown", "pointerup", "mouseup"]) fire(name);
    el.click();
  });
  await settle();
}
