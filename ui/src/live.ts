// Queries that stay current: each screen says which kinds of record it shows, and reads again
// only when the core says one of them changed (or everything may have).
import { useEffect, useState } from "react";
import type { ChangeKind } from "./bindings/ChangeKind";
import type { Changes } from "./bindings/Changes";
import { messageOf, onChanged } from "./api";
import { mark } from "./timeline";

export interface Live<T> {
  data: T | undefined;
  error: string | null;
}

/** Whether a screen showing `shows` has anything to read again. */
export function touches(c: Changes, shows: readonly ChangeKind[]): boolean {
  return c.everything || shows.some((k) => c.kinds.includes(k));
}

/** Runs `load` now, again whenever `deps` change and whenever the core announces a change to
 *  a kind of record in `shows`. `merge`, when given, folds new states the change carries (an
 *  exchange's) into what is shown instead of asking again. Only the newest answer is shown: an
 *  older one can arrive last. */
export function useLive<T>(
  load: () => Promise<T>,
  deps: unknown[],
  shows: readonly ChangeKind[],
  merge?: (data: T, c: Changes) => T,
): Live<T> {
  const [state, setState] = useState<Live<T>>({ data: undefined, error: null });
  useEffect(() => {
    let live = true;
    let asked = 0;
    let answered = 0;
    // What was shown belongs to the old question (another doctor, another day): never act on it.
    setState({ data: undefined, error: null });
    // The records whose changes the next shown answer covers (marked for the benchmark then):
    // a read that loses to a newer one leaves its ids to the winner.
    let unanswered = new Set<string>();
    const run = (ids: readonly string[] = []) => {
      for (const id of ids) unanswered.add(id);
      const mine = ++asked;
      load()
        .then((data) => {
          if (live && mine === asked) {
            setState({ data, error: null });
            if (unanswered.size > 0) {
              mark("ui.read", [...unanswered]);
              unanswered = new Set();
            }
          }
        })
        .catch((e) => live && mine === asked && setState((s) => ({ data: s.data, error: messageOf(e) })))
        .finally(() => {
          answered = Math.max(answered, mine);
        });
    };
    run();
    const stop = onChanged((c) => {
      if (touches(c, shows)) {
        run(c.ids);
      } else if (merge && (c.transmissions.length > 0 || c.received.length > 0 || c.admin_updates.length > 0)) {
        if (answered < asked) {
          // A read on its way answers for the state before this change and would overwrite
          // the merge: read again instead.
          run();
        } else {
          setState((s) => (s.data === undefined ? s : { data: merge(s.data, c), error: s.error }));
        }
      }
    });
    // The listener is in place only once `onChanged` resolves (an IPC round trip): a change
    // the core announced between the first read and then would be missed, and the screen would
    // show the state before it until the next change (a kiosk booking stuck at "sending" after
    // the node had it). So read once more as soon as the listener is there.
    stop.then(() => live && run()).catch(() => {});
    return () => {
      live = false;
      stop.then((f) => f()).catch(() => {});
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, deps);
  return state;
}

/** `rows` with `updates` merged in by `key`: a known row is replaced by a newer version, a new
 *  one goes first (lists are newest first). */
export function mergeById<T>(rows: T[], updates: readonly T[], key: (r: T) => string, version?: (r: T) => number): T[] {
  let out = rows;
  for (const u of updates) {
    const i = out.findIndex((r) => key(r) === key(u));
    if (i < 0) {
      out = [u, ...out];
    } else if (!version || version(u) >= version(out[i])) {
      out = out.slice();
      out[i] = u;
    }
  }
  return out;
}
