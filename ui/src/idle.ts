// Inactivity: the kiosk returns to its welcome screen, a staff session locks.
import { useEffect, useRef } from "react";

/** What counts as someone using the app. */
export const ACTIVITY_EVENTS = ["pointerdown", "keydown", "wheel", "touchstart"] as const;

/** A timer that fires `onIdle` once `ms` pass without `touch()`. */
export class IdleTimer {
  private handle: ReturnType<typeof setTimeout> | null = null;
  constructor(
    private readonly ms: number,
    private readonly onIdle: () => void,
  ) {}
  touch(): void {
    this.stop();
    this.handle = setTimeout(() => {
      this.handle = null;
      this.onIdle();
    }, this.ms);
  }
  stop(): void {
    if (this.handle !== null) clearTimeout(this.handle);
    this.handle = null;
  }
}

/** Calls `onIdle` after `ms` without input in this window, while `enabled`. */
export function useIdle(ms: number, enabled: boolean, onIdle: () => void): void {
  const callback = useRef(onIdle);
  callback.current = onIdle;
  useEffect(() => {
    if (!enabled) return;
    const timer = new IdleTimer(ms, () => callback.current());
    const touch = () => timer.touch();
    timer.touch();
    for (const e of ACTIVITY_EVENTS) window.addEventListener(e, touch, { capture: true, passive: true });
    return () => {
      timer.stop();
      for (const e of ACTIVITY_EVENTS) window.removeEventListener(e, touch, { capture: true });
    };
  }, [ms, enabled]);
}
