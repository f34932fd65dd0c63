/** Clocks a test moves by hand (light to import: unit tests use them without the broker). */
import type { Clock } from "../../src/core/ports/runtime.js";

export interface ManualClock extends Clock {
  set(ms: number): void;
  advance(ms: number): void;
  /** From now on, move with real time as well (for loops that wait real milliseconds for a due time). */
  flow(): void;
}

export function manualClock(start = Date.UTC(2026, 10, 22, 3, 0, 0)): ManualClock {
  let t = start;
  let since: number | null = null;
  const now = () => (since === null ? t : t + (Date.now() - since));
  return {
    now,
    set: (ms) => {
      t = ms;
      if (since !== null) since = Date.now();
    },
    advance: (ms) => {
      t = now() + ms;
      if (since !== null) since = Date.now();
    },
    flow: () => {
      t = now();
      since = Date.now();
    },
  };
}

/** The real time shifted by `offsetMs`, which the test moves: time passes as usual, and jumps when told. */
export interface ShiftedClock extends Clock {
  offsetMs: number;
}

export function shiftedClock(): ShiftedClock {
  const clock: ShiftedClock = { offsetMs: 0, now: () => Date.now() + clock.offsetMs };
  return clock;
}
