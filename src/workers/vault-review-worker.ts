/**
 * Tier-2 openings nobody reviewed in time. A tier-1 grant past its review deadline is reported by
 * the expiry worker (`grant.review_overdue`, from its due time); an opening of a sealed envelope
 * has no grant and no due time in that queue, so this loop looks every `intervalMs` for openings
 * still unreviewed past their `reviewDueAt` and raises `vault.review_overdue` for each — once per
 * opening across all replicas (a marker in the broker's state, swapped under its row's lock),
 * always to the security channels and to the escalation channels, with the command that reviews it.
 */

import type { AuditAppender, AuditTx } from "../audit/audit-journal.js";
import { nonGrantEvent } from "../core/audit-event.js";
import type { StateWrites } from "../core/ports/broker-state.js";
import type { EvidenceReads } from "../core/ports/evidence.js";
import type { Clock } from "../core/ports/runtime.js";
import type { Transactions } from "../core/ports/transactions.js";
import { createLoop } from "./loop.js";

/** `broker_state` key prefix: an opening whose overdue review was reported. */
export const VAULT_REVIEW_OVERDUE_STATE = "vault-review-overdue:";

export interface VaultReviewWorkerDeps {
  readonly store: Transactions<StateWrites & AuditTx> & Pick<EvidenceReads, "listVaultOpenings">;
  readonly audit: AuditAppender;
  readonly clock: Clock;
  readonly intervalMs: number;
  readonly log: (msg: string, fields?: Record<string, unknown>) => void;
}

export interface VaultReviewWorker {
  /** One look; the openings reported overdue by this pass. */
  runOnce(): Promise<readonly string[]>;
  start(): void;
  stop(): Promise<void>;
}

export function createVaultReviewWorker(deps: VaultReviewWorkerDeps): VaultReviewWorker {
  const { store, audit, clock } = deps;

  const pass = async (): Promise<readonly string[]> => {
    const now = clock.now();
    const overdue = (await store.listVaultOpenings(true)).filter((o) => o.reviewDueAt < now);
    const reported: string[] = [];
    for (const o of overdue) {
      const raised = await store.transaction(async (tx) => {
        if ((await tx.swapState(`${VAULT_REVIEW_OVERDUE_STATE}${o.id}`, "1", now)) !== null) return false;
        await audit.append(tx, [
          nonGrantEvent("vault.review_overdue", "system", now, {
            opening: o.id,
            name: o.envelopeName,
            incident: o.incident,
            openedAt: new Date(o.openedAt).toISOString(),
            reviewDueAt: new Date(o.reviewDueAt).toISOString(),
            fix: `breakglass review ${o.id} --outcome justified|justified_with_findings|unjustified --notes "…"`,
          }),
        ]);
        return true;
      });
      if (raised) reported.push(o.id);
    }
    return reported;
  };

  const loop = createLoop({
    name: "tier-2 review check",
    run: pass,
    intervalMs: deps.intervalMs,
    // Soon after start: a broker that was down past a deadline reports it at once.
    firstDelayMs: Math.min(deps.intervalMs, 5_000),
    log: deps.log,
  });
  return { runOnce: loop.runOnce, start: loop.start, stop: loop.stop };
}
