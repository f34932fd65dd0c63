/**
 * The one background loop every worker runs on: a pass, then a wait, then the next pass.
 *
 * - Single flight: a pass never overlaps another; `runOnce` during a pass gets that pass's result.
 * - Wake-up: `kick` runs a pass at once, or right after the pass in flight.
 * - Error reporting: a failed pass is logged as `<name> failed` with describeError's fields, and the
 *   loop goes on after the usual wait.
 * - Clean stop: `stop` cancels the wait and resolves when the pass in flight has ended; a pass that
 *   outlives a stop() and a new start() does not start a second chain of passes.
 */
import { BreakglassError } from "../core/errors.js";

export type LoopLog = (msg: string, fields?: Record<string, unknown>) => void;

export interface LoopOptions<T> {
  /** Logged as `<name> failed` when a pass throws. */
  readonly name: string;
  /** One pass. */
  readonly run: () => Promise<T>;
  /** The wait between passes (and after a failed pass). */
  readonly intervalMs: number;
  /** The wait before the first pass after start(); default intervalMs (0: at once). */
  readonly firstDelayMs?: number;
  /** The wait after a pass that succeeded, from its result; default intervalMs. */
  readonly nextDelayMs?: (result: T) => number;
  /** Whether a pending wait keeps the process alive; default false (the wait is unref'd). */
  readonly holdsProcess?: boolean;
  readonly log: LoopLog;
}

export interface Loop<T> {
  start(): void;
  /** Stop waiting, and resolve once the pass in flight (if any) has ended. */
  stop(): Promise<void>;
  /** Run a pass now, or right after the one in flight; nothing while stopped. */
  kick(): void;
  /** One pass now, shared with the pass in flight if there is one; its errors are the caller's. */
  runOnce(): Promise<T>;
}

/** A failure as log fields: the error's code when it has one, and its message. */
export function describeError(e: unknown): Record<string, unknown> {
  if (e instanceof BreakglassError) return { code: e.code, error: e.message };
  return { error: e instanceof Error ? e.message : String(e) };
}

export function createLoop<T>(opts: LoopOptions<T>): Loop<T> {
  let timer: NodeJS.Timeout | null = null;
  let running = false;
  let kicked = false;
  /** Bumped by every start(), so a pass from before a stop() does not schedule after a new start(). */
  let generation = 0;
  let current: Promise<T> | null = null;
  /** The loop's own pass is in flight (a caller's runOnce alone does not count: a kick must not wait on it). */
  let passing = false;

  const runOnce = (): Promise<T> => {
    current ??= opts.run().finally(() => {
      current = null;
    });
    return current;
  };

  const schedule = (gen: number, delayMs: number) => {
    timer = setTimeout(() => pass(gen), delayMs);
    if (!opts.holdsProcess) timer.unref();
  };

  const pass = (gen: number) => {
    timer = null;
    if (!running || gen !== generation) return;
    kicked = false;
    passing = true;
    let delay = opts.intervalMs;
    runOnce()
      .then((result) => {
        delay = opts.nextDelayMs ? opts.nextDelayMs(result) : opts.intervalMs;
      })
      .catch((e: unknown) => opts.log(`${opts.name} failed`, describeError(e)))
      .finally(() => {
        passing = false;
        if (running && gen === generation && timer === null) schedule(gen, kicked ? 0 : delay);
        kicked = false;
      });
  };

  return {
    runOnce,
    start() {
      if (running) return;
      running = true;
      generation += 1;
      schedule(generation, opts.firstDelayMs ?? opts.intervalMs);
    },
    kick() {
      if (!running) return;
      if (passing) {
        kicked = true; // the pass in flight schedules the next at once when it ends
        return;
      }
      if (timer) clearTimeout(timer);
      schedule(generation, 0);
    },
    async stop() {
      running = false;
      if (timer) clearTimeout(timer);
      timer = null;
      await current?.catch(() => {});
    },
  };
}
