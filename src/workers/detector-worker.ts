/**
 * Use detection (seeds 001 and 003): every `intervalMs`, ask each target for the live sessions of
 * watched break-glass identities; a session not covered by an active grant of the broker is an
 * unauthorized use — recorded as `target.unauthorized_login` (which always pages the security
 * channels) and, where the target is configured to, terminated at once. Each session is reported
 * once per broker run.
 */
import type { AuditEventDraft } from "../core/audit-event.js";
import type { Clock, Connector, Store, WatchedSession } from "../core/ports.js";
import type { AuditAppender } from "../service/grant-writer.js";

export interface DetectorWorkerDeps {
  readonly store: Store;
  readonly audit: AuditAppender;
  readonly connectors: ReadonlyMap<string, Connector>;
  readonly clock: Clock;
  readonly intervalMs: number;
  readonly log: (msg: string, fields?: Record<string, unknown>) => void;
}

export interface DetectorWorker {
  /** One pass over every watching target; returns the unauthorized sessions found now. */
  runOnce(): Promise<{ target: string; session: WatchedSession; terminated: boolean }[]>;
  start(): void;
  stop(): Promise<void>;
}

export function createDetectorWorker(deps: DetectorWorkerDeps): DetectorWorker {
  const { store, audit, connectors, clock } = deps;
  const reported = new Set<string>();
  let timer: NodeJS.Timeout | null = null;
  let running: Promise<unknown> | null = null;

  const allowed = async (s: WatchedSession): Promise<boolean> => {
    if (s.grantId === null) return false;
    const g = await store.getGrant(s.grantId);
    return g !== null && g.state === "active" && (g.access === "granted" || g.access === "granting");
  };

  const runOnce: DetectorWorker["runOnce"] = async () => {
    const found: { target: string; session: WatchedSession; terminated: boolean }[] = [];
    for (const [target, connector] of connectors) {
      if (!connector.watchSessions) continue;
      let sessions: readonly WatchedSession[];
      try {
        sessions = await connector.watchSessions();
      } catch (e) {
        deps.log("use detection could not check a target", { target, error: String(e) });
        continue;
      }
      for (const s of sessions) {
        const key = `${target}\u0000${s.principal}\u0000${s.sessionId}`;
        if (reported.has(key) || (await allowed(s))) continue;
        let terminated = false;
        try {
          terminated = (await connector.endSession?.(s)) ?? false;
        } catch (e) {
          deps.log("terminating an unauthorized session failed", { target, principal: s.principal, error: String(e) });
        }
        const event: AuditEventDraft = {
          type: "target.unauthorized_login",
          actor: "system",
          at: clock.now(),
          grantId: null,
          roleId: null,
          domain: null,
          target,
          justification: null,
          incident: null,
          requestId: null,
          sourceAddress: null,
          data: {
            principal: s.principal,
            session: s.sessionId,
            from: s.from,
            startedAt: s.startedAt,
            grant: s.grantId,
            terminated,
          },
        };
        // Recorded (and so alarmed) before it counts as reported: a failed write is retried next pass.
        await store.transaction((tx) => audit.append(tx, [event]));
        reported.add(key);
        found.push({ target, session: s, terminated });
      }
    }
    return found;
  };

  const schedule = () => {
    timer = setTimeout(() => {
      running = runOnce()
        .catch((e: unknown) => deps.log("use detection failed", { error: String(e) }))
        .finally(() => {
          running = null;
          if (timer) schedule();
        });
    }, deps.intervalMs);
    timer.unref();
  };

  return {
    runOnce,
    start() {
      if (!timer) schedule();
    },
    async stop() {
      if (timer) clearTimeout(timer);
      timer = null;
      await running;
    },
  };
}
