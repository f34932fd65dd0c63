/**
 * Use detection (seeds 001 and 003): every `intervalMs`, ask each target for the live sessions of
 * watched break-glass identities; a session not covered by an active grant of the broker is an
 * unauthorized use — recorded as `target.unauthorized_login` (which always pages the security
 * channels) and, where the target is configured to, terminated at once. Each session is reported
 * once per broker run. Targets whose events are pushed (CloudTrail through a webhook) go through
 * {@link DetectorWorker.ingest} instead of the timer.
 */

import type { AuditAppender, AuditTx } from "../audit/audit-journal.js";
import { nonGrantEvent } from "../core/audit-event.js";
import { BreakglassError } from "../core/errors.js";
import type { Connector, WatchedSession } from "../core/ports/connector.js";
import type { GrantReads } from "../core/ports/grants.js";
import type { Clock } from "../core/ports/runtime.js";
import type { Transactions } from "../core/ports/transactions.js";
import { createLoop } from "./loop.js";

/** How far an event's time (the target's clock) may sit outside its grant's window and still be its own. */
const CLOCK_SLACK_MS = 60_000;

export interface DetectorWorkerDeps {
  readonly store: Transactions<AuditTx> & Pick<GrantReads, "getGrant">;
  readonly audit: AuditAppender;
  readonly connectors: ReadonlyMap<string, Connector>;
  readonly clock: Clock;
  readonly intervalMs: number;
  readonly log: (msg: string, fields?: Record<string, unknown>) => void;
}

export interface DetectorWorker {
  /** One pass over every watching target; returns the unauthorized sessions found now. */
  runOnce(): Promise<{ target: string; session: WatchedSession; terminated: boolean }[]>;
  /**
   * Uses pushed by a target's event source (the CloudTrail webhook): each one no grant explains
   * is recorded before this returns, so the sender's retry covers a failure.
   * @throws ERR_UNAUTHENTICATED (wrong key, no such target, or one that takes no pushed events),
   *   ERR_VALIDATION, ERR_AUDIT_WRITE_FAILED
   */
  ingest(target: string, payload: unknown, key: string): Promise<{ received: number; reported: number }>;
  start(): void;
  stop(): Promise<void>;
}

export function createDetectorWorker(deps: DetectorWorkerDeps): DetectorWorker {
  const { store, audit, connectors, clock } = deps;
  const reported = new Set<string>();
  const inFlight = new Set<string>();

  /** Whether an active grant of the broker explains the session (or covered the event's instant). */
  const allowed = async (s: WatchedSession): Promise<boolean> => {
    if (s.grantId === null) return false;
    const g = await store.getGrant(s.grantId);
    if (g === null) return false;
    if (s.pointInTime && s.startedAt !== null) {
      // The target is called while the grant is `granting` (before activatedAt); the window ends
      // at its end (or earlier end). A little slack for clocks: the event time is AWS's.
      const end = g.endedAt ?? g.endsAt;
      const reached = g.activatedAt !== null || g.access === "granting";
      return (
        reached && end !== null && s.startedAt >= g.requestedAt - CLOCK_SLACK_MS && s.startedAt <= end + CLOCK_SLACK_MS
      );
    }
    return g.state === "active" && (g.access === "granted" || g.access === "granting");
  };

  type Found = { target: string; session: WatchedSession; terminated: boolean };

  /** Record every session no grant explains (once per broker run); end it where the target can. */
  const handle = async (
    target: string,
    connector: Connector,
    sessions: readonly WatchedSession[],
  ): Promise<Found[]> => {
    const found: Found[] = [];
    for (const s of sessions) {
      const key = `${target}\u0000${s.principal}\u0000${s.sessionId}`;
      // A pushed event and the timer's pass may hold the same use at once: one reports it.
      if (reported.has(key) || inFlight.has(key)) continue;
      inFlight.add(key);
      try {
        if (!(await allowed(s))) found.push(await report(target, connector, s, key));
      } finally {
        inFlight.delete(key);
      }
    }
    return found;
  };

  const report = async (target: string, connector: Connector, s: WatchedSession, key: string): Promise<Found> => {
    let terminated = false;
    try {
      terminated = s.pointInTime ? false : ((await connector.endSession?.(s)) ?? false);
    } catch (e) {
      deps.log("terminating an unauthorized session failed", { target, principal: s.principal, error: String(e) });
    }
    const event = nonGrantEvent(
      "target.unauthorized_login",
      "system",
      clock.now(),
      {
        principal: s.principal,
        session: s.sessionId,
        from: s.from,
        startedAt: s.startedAt,
        grant: s.grantId,
        terminated,
      },
      target,
    );
    // Recorded (and so alarmed) before it counts as reported: a failed write is retried next pass.
    await store.transaction((tx) => audit.append(tx, [event]));
    reported.add(key);
    return { target, session: s, terminated };
  };

  const runOnce: DetectorWorker["runOnce"] = async () => {
    const found: Found[] = [];
    for (const [target, connector] of connectors) {
      if (!connector.watchSessions) continue;
      let sessions: readonly WatchedSession[];
      try {
        sessions = await connector.watchSessions();
      } catch (e) {
        deps.log("use detection could not check a target", { target, error: String(e) });
        continue;
      }
      found.push(...(await handle(target, connector, sessions)));
    }
    return found;
  };

  const ingest: DetectorWorker["ingest"] = async (target, payload, key) => {
    const connector = connectors.get(target);
    if (!connector?.pushedSessions) {
      // The same answer as a wrong key: the endpoint does not tell which targets exist.
      throw new BreakglassError(
        "ERR_UNAUTHENTICATED",
        `target ${target} does not accept CloudTrail events with this key`,
        {
          target,
        },
      );
    }
    const sessions = connector.pushedSessions(payload, key);
    return { received: sessions.length, reported: (await handle(target, connector, sessions)).length };
  };

  const loop = createLoop({ name: "use detection", run: runOnce, intervalMs: deps.intervalMs, log: deps.log });

  return { runOnce, ingest, start: loop.start, stop: loop.stop };
}
