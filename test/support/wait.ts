/**
 * Waiting for a state in tests. The suite must pass on a busy two-core machine, so a deadline here
 * is how long to wait before calling something broken — never a claim about speed. How fast
 * something happened is reported as a figure (console.log) or measured by `npm run bench`.
 */

/** The default deadline: generous for a machine whose cores are all busy. */
export const PATIENCE_MS = 60_000;

/**
 * Poll `probe` until it returns something other than null, undefined or false, and return that.
 * @param context what to add to the failure (e.g. a child process's output)
 * @throws after `ms` without it, naming `what` was awaited
 */
export async function until<T>(
  what: string,
  probe: () => T | null | undefined | false | Promise<T | null | undefined | false>,
  ms = PATIENCE_MS,
  everyMs = 50,
  context?: () => string,
): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v !== null && v !== undefined && v !== false) return v;
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${ms} ms waiting for ${what}${context ? `\n${context()}` : ""}`);
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/**
 * Let real time pass: to see that something did *not* happen meanwhile, or to get past a time the
 * target itself enforces (a credential's end). Never to wait for a state: that is `until`.
 */
export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Poll `probe` until `settled` holds for what it returned, or `ms` pass; return the last value
 * either way. For a test that asserts on the value afterwards, so that a failure shows what was
 * there (an expect's diff) rather than only that time ran out.
 */
export async function settle<T>(
  probe: () => T | Promise<T>,
  settled: (value: T) => boolean,
  ms = PATIENCE_MS,
  everyMs = 50,
): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (settled(v) || Date.now() > deadline) return v;
    await sleep(everyMs);
  }
}
