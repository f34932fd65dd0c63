/**
 * Brute-force protection for logins and factor checks. Failures are counted per (user, address)
 * and per address, each locked for `auth.lockout.duration` at `max_failures` within the window;
 * and per user across all addresses, which never locks hard: past `max_failures` each further
 * failure only makes the next try wait longer (1 s, doubling, at most a minute). So nobody
 * elsewhere can lock a named person out during the outage the fallback exists for, while guessing
 * one person's codes stays slow. A name that does not exist is counted exactly like one that
 * does: the answers cannot tell them apart. Reaching a lock is audited (`auth.locked_out`), which
 * pages security.
 */

import type { AuditTx } from "../audit/audit-journal.js";
import { type AuditAppender, stamp } from "../audit/audit-journal.js";
import type { AuthConfig } from "../config/app-config.js";
import { nonGrantEvent } from "../core/audit-event.js";
import { BreakglassError } from "../core/errors.js";
import type { ThrottleReads, ThrottleWrites } from "../core/ports/auth.js";
import type { Clock } from "../core/ports/runtime.js";
import type { Transactions } from "../core/ports/transactions.js";
import type { RequestContext } from "../core/request-context.js";

/** The longest wait the per-user counter imposes between tries. */
export const USER_BACKOFF_MAX_MS = 60_000;

/** The counters an attempt by `user` from the context's address is checked against. */
export const throttleKeys = (ctx: RequestContext, user: string | null): string[] => [
  ...(user && ctx.sourceAddress ? [`user-ip:${user} ${ctx.sourceAddress}`] : []),
  ...(ctx.sourceAddress ? [`ip:${ctx.sourceAddress}`] : []),
  ...(user ? [`user:${user}`] : []),
];

const isUserKey = (key: string) => key.startsWith("user:");

/** The wait the per-user counter imposes after `failures` in its window: none up to the limit. */
export const userBackoffMs = (failures: number, maxFailures: number): number => {
  const over = failures - maxFailures;
  return over < 0 ? 0 : Math.min(1000 * 2 ** over, USER_BACKOFF_MAX_MS);
};

export interface Throttle {
  /** @throws ERR_LOCKED_OUT when any of `keys` is locked now (one answer, naming no key). */
  assertNotLocked(keys: readonly string[]): Promise<void>;
  /**
   * Count a failure of `what` against every key (locking those that reach the limit, audited),
   * then refuse.
   * @throws ERR_UNAUTHENTICATED always: "`what` failed"
   */
  fail(ctx: RequestContext, keys: readonly string[], what: string): Promise<never>;
  /** A success clears the counters it was checked against. */
  succeed(keys: readonly string[]): Promise<void>;
}

export function createThrottle(deps: {
  readonly lockout: AuthConfig["lockout"];
  readonly store: Transactions<ThrottleWrites & AuditTx> & ThrottleReads;
  readonly audit: AuditAppender;
  readonly clock: Clock;
}): Throttle {
  const { lockout, store, audit, clock } = deps;
  return {
    async assertNotLocked(keys) {
      const now = clock.now();
      let until = 0;
      for (const key of keys) {
        const t = await store.findThrottle(key);
        if (t?.lockedUntil != null && t.lockedUntil > now) until = Math.max(until, t.lockedUntil);
      }
      // One answer whichever key it was: it names neither the user nor whether they exist.
      if (until > 0) {
        const at = new Date(until).toISOString();
        throw new BreakglassError("ERR_LOCKED_OUT", `too many failed attempts: try again after ${at}`, {
          lockedUntil: at,
        });
      }
    },

    async fail(ctx, keys, what) {
      const now = clock.now();
      const { maxFailures, windowMs, durationMs } = lockout;
      const locked: string[] = [];
      let until = now + durationMs;
      await store.transaction(async (tx) => {
        for (const key of keys) {
          // Read under the counter's lock: failures arriving together are each counted.
          const t = await tx.lockThrottle(key);
          const fresh = now - t.windowStart > windowMs;
          const failures = fresh ? 1 : t.failures + 1;
          if (isUserKey(key)) {
            // Never a hard lock: a growing wait between tries, counted over the window.
            const wait = userBackoffMs(failures, maxFailures);
            await tx.saveThrottle({
              key,
              failures,
              windowStart: fresh ? now : t.windowStart,
              lockedUntil: wait > 0 ? now + wait : t.lockedUntil,
            });
            if (failures === maxFailures) {
              locked.push(key);
              until = Math.min(until, now + wait);
            }
            continue;
          }
          const lock = failures >= maxFailures;
          await tx.saveThrottle({
            key,
            failures: lock ? 0 : failures,
            windowStart: fresh || lock ? now : t.windowStart,
            lockedUntil: lock ? now + durationMs : t.lockedUntil,
          });
          if (lock) locked.push(key);
        }
        if (locked.length > 0) {
          await audit.append(tx, [
            stamp(
              nonGrantEvent("auth.locked_out", ctx.actor, now, {
                keys: locked,
                failures: maxFailures,
                until: locked.some((k) => !isUserKey(k)) ? now + durationMs : until,
                what,
              }),
              ctx,
            ),
          ]);
        }
      });
      throw new BreakglassError("ERR_UNAUTHENTICATED", `${what} failed`);
    },

    async succeed(keys) {
      await store.transaction(async (tx) => {
        for (const key of keys) {
          await tx.saveThrottle({ key, failures: 0, windowStart: clock.now(), lockedUntil: null });
        }
      });
    },
  };
}
