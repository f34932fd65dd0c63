/** A clock a test moves by hand, for the broker's time (deadlines, expiry, reviews) without waiting. */
import type { Clock } from "../../src/core/ports.js";

export interface ManualClock extends Clock {
  set(ms: number): void;
  advance(ms: number): void;
}

export function manualClock(start = Date.UTC(2026, 10, 22, 3, 0, 0)): ManualClock {
  let t = start;
  return {
    now: () => t,
    set: (ms) => {
      t = ms;
    },
    advance: (ms) => {
      t += ms;
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
