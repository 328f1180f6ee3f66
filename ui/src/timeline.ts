// Marks on a change's way through a window, for the live-loop benchmark (benches/live_loop.rs):
// it sets `window.__timeline` to an array and reads it back; without that nothing is kept.
// Times are the machine's clock in milliseconds, as the Rust processes' marks are.

interface Mark {
  mark: string;
  id: string;
  at: number;
}

/** Records `name` for each of `ids`, now, if the benchmark asked for marks. */
export function mark(name: string, ids: readonly string[]): void {
  const timeline = (window as { __timeline?: Mark[] }).__timeline;
  if (!timeline) return;
  const at = performance.timeOrigin + performance.now();
  for (const id of ids) timeline.push({ mark: name, id, at });
}
