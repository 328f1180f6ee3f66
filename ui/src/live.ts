// Queries that stay current: re-read whenever the core says what the user sees changed.
import { useEffect, useState } from "react";
import { messageOf, onChanged } from "./api";

export interface Live<T> {
  data: T | undefined;
  error: string | null;
}

/** Runs `load` now, again on every change the core announces and whenever `deps` change.
 *  Only the newest answer is shown: an older one can arrive last. */
export function useLive<T>(load: () => Promise<T>, deps: unknown[]): Live<T> {
  const [state, setState] = useState<Live<T>>({ data: undefined, error: null });
  useEffect(() => {
    let live = true;
    let asked = 0;
    // What was shown belongs to the old question (another doctor, another day): never act on it.
    setState({ data: undefined, error: null });
    const run = () => {
      const mine = ++asked;
      load()
        .then((data) => live && mine === asked && setState({ data, error: null }))
        .catch((e) => live && mine === asked && setState((s) => ({ data: s.data, error: messageOf(e) })));
    };
    run();
    const stop = onChanged(run);
    return () => {
      live = false;
      stop.then((f) => f()).catch(() => {});
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, deps);
  return state;
}
