/**
 * Escalation: an activation that nobody acknowledged (`breakglass ack`, `POST /grants/{id}/ack`)
 * within `afterMs` raises `alarm.escalated`, which goes to the escalation channels (the next
 * on-call, a pager). Once per grant, across replicas; an acknowledgement recorded first stops it.
 * What was recorded is read again after the grant's lock is held (acknowledgements take the same
 * lock): the read before it only picks the candidates.
 */

import type { AuditAppender, AuditTx } from "../audit/audit-journal.js";
import { grantEvent } from "../core/grant-machine.js";
import type { AuditReads } from "../core/ports/audit.js";
import type { GrantReads, GrantWrites } from "../core/ports/grants.js";
import type { Clock } from "../core/ports/runtime.js";
import type { Transactions } from "../core/ports/transactions.js";
import { createLoop } from "./loop.js";

export interface EscalationWorkerDeps {
  readonly store: Transactions<Pick<GrantWrites, "lockGrant"> & AuditTx> &
    Pick<GrantReads, "listGrants"> &
    Pick<AuditReads, "readGrantAudit">;
  readonly audit: AuditAppender;
  readonly clock: Clock;
  readonly afterMs: number;
  readonly intervalMs: number;
  readonly log: (msg: string, fields?: Record<string, unknown>) => void;
}

export interface EscalationWorker {
  /** One pass; returns the grants escalated now. */
  runOnce(): Promise<string[]>;
  start(): void;
  stop(): Promise<void>;
}

export function createEscalationWorker(deps: EscalationWorkerDeps): EscalationWorker {
  const { store, audit, clock } = deps;

  const runOnce = async (): Promise<string[]> => {
    const now = clock.now();
    const due = (await store.listGrants({ states: ["active"], limit: 1000 })).filter(
      (g) => g.activatedAt !== null && now - g.activatedAt >= deps.afterMs,
    );
    if (due.length === 0) return [];
    const handled = new Set(
      (await store.readGrantAudit(due.map((g) => g.id)))
        .filter((e) => e.type === "alarm.acknowledged" || e.type === "alarm.escalated")
        .map((e) => e.grantId),
    );
    const escalated: string[] = [];
    for (const g of due) {
      if (handled.has(g.id)) continue;
      await store.transaction(async (tx) => {
        const locked = await tx.lockGrant(g.id);
        if (locked?.state !== "active" || locked.activatedAt === null) return;
        // Another replica's escalation, or an acknowledgement, may have committed since the read above.
        const recorded = await tx.readGrantAudit([g.id]);
        if (recorded.some((e) => e.type === "alarm.acknowledged" || e.type === "alarm.escalated")) return;
        await audit.append(tx, [
          grantEvent(locked, "alarm.escalated", "system", now, { unacknowledgedForMs: now - locked.activatedAt }),
        ]);
        escalated.push(g.id);
      });
    }
    return escalated;
  };

  const loop = createLoop({ name: "escalation", run: runOnce, intervalMs: deps.intervalMs, log: deps.log });

  return { runOnce, start: loop.start, stop: loop.stop };
}
