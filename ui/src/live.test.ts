import { describe, expect, it } from "vitest";
import type { Changes } from "./bindings/Changes";
import { mergeById, touches } from "./live";

const none: Changes = { everything: false, kinds: [], ids: [], transmissions: [], received: [], admin_updates: [] };

describe("touches", () => {
  it("reads again only for a kind the screen shows, or for everything", () => {
    const appointment: Changes = { ...none, kinds: ["appointment"], ids: ["a1"] };
    expect(touches(appointment, ["appointment", "patient"])).toBe(true);
    expect(touches(appointment, ["report"])).toBe(false);
    expect(touches(appointment, [])).toBe(false);
    expect(touches({ ...none, everything: true }, ["consent"])).toBe(true);
  });
});

describe("mergeById", () => {
  const row = (id: string, version: number) => ({ id, version });
  const key = (r: { id: string }) => r.id;
  const version = (r: { version: number }) => r.version;

  it("replaces a known row by a newer version and puts a new one first", () => {
    const rows = [row("a", 1), row("b", 1)];
    expect(mergeById(rows, [row("b", 2), row("c", 1)], key, version)).toEqual([row("c", 1), row("a", 1), row("b", 2)]);
  });

  it("keeps a row when the update is older, and leaves the input as it was", () => {
    const rows = [row("a", 3)];
    expect(mergeById(rows, [row("a", 2)], key, version)).toEqual([row("a", 3)]);
    expect(mergeById(rows, [], key, version)).toBe(rows);
    expect(rows).toEqual([row("a", 3)]);
  });
});
