/** A clock the test moves by hand (light to import: unit tests use it without the broker). */
import type { Clock } from "../../src/core/ports/runtime.js";

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
