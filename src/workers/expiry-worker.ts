/**
 * The expiry worker ends grants on time and takes their access away at the target; it also
 * tells holders their grant is ending, reports reviews past their deadline, and tries a failed
 * activation again when its next attempt is due (all due times on the grant, like its end).
 *
 * Each tick claims due grants in one transaction (on PostgreSQL `FOR UPDATE SKIP LOCKED`, so
 * replicas share the work without doing it twice), applies the pure transition for each (expire,
 * lapse, or claim a revocation) with its audit event, commits, and only then calls connectors —
 * never inside the transaction. Deadlines are persisted (`due_at`), so after a restart the first
 * tick ends everything that became overdue while the broker was down.
 */

import { type AuditAppender, type AuditTx, stamp } from "../audit/audit-journal.js";
import type { AuditEventDraft } from "../core/audit-event.js";
import { isBreakglassError } from "../core/errors.js";
import {
  beginRevocation,
  claimActivationRetry,
  dueAction,
  dueAt,
  expireGrant,
  lapseGrant,
  reportReviewOverdue,
  warnEnding,
} from "../core/grant-machine.js";
import type { Grant, Policy } from "../core/model.js";
import type { Leases } from "../core/ports/broker-state.js";
import type { GrantReads, GrantWrites } from "../core/ports/grants.js";
import type { Clock } from "../core/ports/runtime.js";
import type { Transactions } from "../core/ports/transactions.js";
import { SYSTEM_CONTEXT } from "../core/request-context.js";
import type { Metrics } from "../metrics/metrics.js";
import type { RevocationResult, TargetAccess } from "../service/target-access.js";
import { createLoop } from "./loop.js";

export interface ExpiryWorkerDeps {
  readonly policy: Policy;
  /** Claims due grants and saves what happened to them with their events; takes over dead processes' leases. */
  readonly store: Transactions<Pick<GrantWrites, "claimDue" | "updateGrants"> & AuditTx> &
    Pick<GrantReads, "nextDueAt"> &
    Leases;
  readonly audit: AuditAppender;
  readonly access: TargetAccess;
  readonly clock: Clock;
  readonly pollMs: number;
  readonly batchSize: number;
  readonly revokeConcurrency: number;
  readonly log: (msg: string, fields?: Record<string, unknown>) => void;
  /** Observes the lag from each grant's end to the broker ending it. */
  readonly metrics?: Pick<Metrics, "expiryLag">;
}

export interface TickResult {
  readonly expired: number;
  readonly lapsed: number;
  readonly revocationsStarted: number;
  /** Failed activations tried again (started; they finish in the background). */
  readonly activationsRetried?: number;
  /** Ending warnings and overdue reviews reported. */
  readonly notices: number;
}

export interface ExpiryWorker {
  /** Claim and process one batch of due grants; revocations are queued, not awaited. */
  tick(): Promise<TickResult>;
  /** Tick until nothing is due, then wait for queued revocations. For tests and shutdown. */
  drain(): Promise<void>;
  start(): void;
  /** Stop ticking and wait for in-flight work. */
  stop(): Promise<void>;
  /** Wake up now (e.g. after a write that made something due sooner). */
  kick(): void;
}

/** Most grants one revocation slot takes at once (see pump). */
const MAX_PER_SLOT = 32;

/** How often a worker looks for leases held by broker processes that are gone. */
const RECLAIM_EVERY_MS = 250;

export function createExpiryWorker(deps: ExpiryWorkerDeps): ExpiryWorker {
  const { store, audit, access, clock, policy } = deps;
  const queue: Grant[] = [];
  const inFlight = new Set<Promise<void>>();

  const settled: RevocationResult[] = [];
  let flushing: Promise<void> | null = null;

  /** Record finished revocations in batches: one transaction for all that finished meanwhile. */
  const flush = (): Promise<void> => {
    if (flushing) return flushing;
    flushing = (async () => {
      while (settled.length > 0) {
        const batch = settled.splice(0, deps.batchSize);
        await access
          .recordRevocations(batch)
          .catch((e: unknown) => deps.log("recording revocations failed", { error: String(e), grants: batch.length }));
      }
    })().finally(() => {
      flushing = null;
    });
    return flushing;
  };

  const pump = (): void => {
    while (inFlight.size < deps.revokeConcurrency && queue.length > 0) {
      // Grants ending together share the free slots: a connector that revokes many at once does a
      // slot's share in the round trips of one (the others take them one after another).
      const share = Math.min(MAX_PER_SLOT, Math.ceil(queue.length / (deps.revokeConcurrency - inFlight.size)));
      const grants = queue.splice(0, share);
      if (grants.length === 0) break;
      const p = access
        .attemptRevocations(grants)
        .then((outcomes) => {
          for (const [i, grant] of grants.entries()) {
            settled.push({ grant, outcome: outcomes[i] ?? { ok: false, error: "no outcome" } });
          }
          void flush();
        })
        .finally(() => {
          inFlight.delete(p);
          pump();
        });
      inFlight.add(p);
    }
  };

  const idle = async (): Promise<void> => {
    while (inFlight.size > 0 || settled.length > 0 || flushing) {
      if (inFlight.size > 0) await Promise.race(inFlight);
      await flush();
    }
  };

  let lastReclaim: number | null = null;

  /** Grants revoked at the target while the audit log was down, so they are not revoked again every tick. */
  const enforced = new Set<string>();

  /**
   * The audit log refuses writes, so no grant can change state. Refusing *new* privilege is
   * right (fail closed), but privilege must not outlive its window because of it: take access
   * away at the target now, unrecorded, and say so loudly. When the log is back, the normal path
   * ends the grant, revokes again (idempotent) and records it.
   */
  const enforceWithoutAudit = async (due: readonly Grant[], now: number): Promise<void> => {
    for (const grant of due) {
      const action = dueAction(grant, now);
      if ((action !== "expire" && action !== "revoke") || enforced.has(grant.id)) continue;
      const outcome = await access.attemptRevocation(grant);
      if (outcome.ok) enforced.add(grant.id);
      deps.log(
        "audit log unavailable: revoked at the target without recording it; it is recorded when the log is back",
        {
          grantId: grant.id,
          revoked: outcome.ok,
          ...(outcome.ok ? {} : { error: outcome.error }),
        },
      );
    }
  };

  const tick = async (): Promise<TickResult> => {
    const now = clock.now();
    // Work a dead broker process held (an activation or revocation lease) is due now, not when
    // its lease runs out: claimed below like anything else that is due. Four times a second at most
    // (it reads every leased grant; a storm ticks back to back).
    if (lastReclaim === null || now - lastReclaim >= RECLAIM_EVERY_MS || now < lastReclaim) {
      lastReclaim = now;
      await store.reclaimLeases(now);
    }
    let expired = 0;
    let lapsed = 0;
    let notices = 0;
    let claimed: Grant[] = [];
    const toActivate: Grant[] = [];
    const toRevoke = await store
      .transaction(async (tx) => {
        const due = await tx.claimDue(now, deps.batchSize);
        claimed = due;
        const updates: { grant: Grant; dueAt: number | null }[] = [];
        const events: AuditEventDraft[] = [];
        const revoke: Grant[] = [];
        for (const grant of due) {
          const action = dueAction(grant, now);
          let next: Grant;
          if (action === "expire" || action === "lapse") {
            const t = action === "expire" ? expireGrant(policy, grant, now) : lapseGrant(grant, now);
            if (action === "expire") {
              expired++;
              if (grant.endsAt !== null) deps.metrics?.expiryLag.observe(Math.max(0, now - grant.endsAt) / 1000);
            } else lapsed++;
            events.push(stamp(t.event, SYSTEM_CONTEXT));
            // Claim the revocation in the same write: one version step for the row.
            next =
              t.grant.access === "revoking"
                ? { ...beginRevocation(t.grant, now, access.leaseFor(t.grant)), version: t.grant.version }
                : t.grant;
          } else if (action === "revoke") {
            next = beginRevocation(grant, now, access.leaseFor(grant));
          } else if (action === "activate") {
            // Claimed here (no other replica starts it); the attempt runs after the commit.
            next = claimActivationRetry(grant, now, access.leaseFor(grant));
            toActivate.push(next);
          } else if (action === "warn" || action === "review_overdue") {
            const t = action === "warn" ? warnEnding(grant, now) : reportReviewOverdue(grant, now);
            notices++;
            events.push(stamp(t.event, SYSTEM_CONTEXT));
            next = t.grant;
          } else {
            // Claimed but nothing to do (the due time moved): store the corrected due time.
            next = { ...grant, version: grant.version + 1 };
          }
          if (next.access === "revoking" && action !== null) revoke.push(next);
          updates.push({ grant: next, dueAt: dueAt(next) });
        }
        await tx.updateGrants(updates);
        if (events.length > 0) await audit.append(tx, events);
        return revoke;
      })
      .catch(async (e: unknown) => {
        if (isBreakglassError(e) && e.code === "ERR_AUDIT_WRITE_FAILED") await enforceWithoutAudit(claimed, now);
        throw e;
      });
    for (const g of claimed) enforced.delete(g.id);
    // Access first, for all of them at once (where the target can): the revocations below run a
    // few at a time and each does slower work after its own cut (containment, cleanup).
    if (toRevoke.length > 0) await access.cutAccess(toRevoke);
    queue.push(...toRevoke);
    pump();
    for (const g of toActivate) {
      // A failure is recorded on the grant (the next attempt, the target's error); only a refusal
      // to start (the grant moved on meanwhile) lands here.
      const p = access
        .activate(g, SYSTEM_CONTEXT)
        .then(() => undefined)
        .catch((e: unknown) => deps.log("activation retry not started", { grantId: g.id, error: String(e) }))
        .finally(() => inFlight.delete(p));
      inFlight.add(p);
    }
    return { expired, lapsed, notices, revocationsStarted: toRevoke.length, activationsRetried: toActivate.length };
  };

  /** One pass of the loop; its result is the wait until the next (at once when the batch was full). */
  const pass = async (): Promise<number> => {
    const r = await tick();
    if (r.expired + r.lapsed + r.notices + r.revocationsStarted + (r.activationsRetried ?? 0) >= deps.batchSize)
      return 0;
    const next = await store.nextDueAt();
    return next === null ? deps.pollMs : Math.max(0, Math.min(deps.pollMs, next - clock.now()));
  };
  const loop = createLoop({
    name: "expiry tick",
    run: pass,
    intervalMs: deps.pollMs,
    firstDelayMs: 0,
    nextDelayMs: (delay) => delay,
    holdsProcess: true,
    log: deps.log,
  });

  return {
    tick,
    async drain() {
      for (;;) {
        const r = await tick();
        await idle();
        const did = r.expired + r.lapsed + r.notices + r.revocationsStarted + (r.activationsRetried ?? 0);
        if (did === 0 && queue.length === 0) return;
      }
    },
    start: loop.start,
    async stop() {
      await loop.stop();
      // Give back the claims on revocations not started yet, so the next broker (or another
      // replica) runs them at once instead of after the claim's lease runs out.
      const unstarted = queue.splice(0);
      if (unstarted.length > 0) {
        const now = clock.now();
        await store
          .transaction((tx) =>
            tx.updateGrants(
              unstarted.map((g) => {
                const released = { ...g, accessNextAt: now, version: g.version + 1 };
                return { grant: released, dueAt: dueAt(released) };
              }),
            ),
          )
          .catch((e: unknown) => deps.log("releasing revocation claims failed", { error: String(e) }));
      }
      await idle();
    },
    kick: loop.kick,
  };
}
