/** SQL pieces the postgres connector's parts share: quoting, and ending a role's sessions. */
import type pg from "pg";
import { BreakglassError } from "../core/errors.js";

/** How long a cut waits for terminated sessions to exit before it reports failure (and is retried). */
export const TERMINATE_WAIT_MS = 2000;

export const ident = (name: string): string => `"${name.replaceAll('"', '""')}"`;
export const literal = (value: string): string => `'${value.replaceAll("'", "''")}'`;

/**
 * Signal every backend of `role` (only those started at or after `since`, when given) to end;
 * the pids signalled.
 */
export const terminate = async (c: pg.ClientBase, role: string, since: number | null): Promise<number[]> =>
  (
    await c.query<{ pid: number }>(
      // MATERIALIZED: the pid list is fixed before any backend is signalled (a plain WHERE
      // could evaluate pg_terminate_backend before the user filter and hit everyone).
      `WITH victims AS MATERIALIZED (SELECT pid FROM pg_stat_activity WHERE usename = $1 AND pid <> pg_backend_pid()
          AND ($2::float8 IS NULL OR backend_start >= to_timestamp($2::float8 / 1000)))
       SELECT pid FROM victims WHERE pg_terminate_backend(victims.pid)`,
      [role, since],
    )
  ).rows.map((r) => r.pid);

/**
 * Wait until the signalled backends are gone; a revocation does not go on (nor count) while one runs.
 * @throws ERR_CONNECTOR_FAILED when one still runs {@link TERMINATE_WAIT_MS} after the signal
 */
export const awaitExit = async (
  c: pg.ClientBase,
  pids: readonly number[],
  role: string,
  targetName: string,
): Promise<void> => {
  for (let waited = 0; pids.length > 0; waited += 5) {
    const left = await c.query("SELECT 1 FROM pg_stat_activity WHERE pid = ANY($1::int[])", [pids]);
    if (left.rowCount === 0) return;
    if (waited >= TERMINATE_WAIT_MS) {
      throw new BreakglassError(
        "ERR_CONNECTOR_FAILED",
        `postgres target ${targetName}: ${left.rowCount} session(s) still running ${TERMINATE_WAIT_MS} ms after pg_terminate_backend`,
        { role },
      );
    }
    await new Promise((r) => setTimeout(r, 5));
  }
};
