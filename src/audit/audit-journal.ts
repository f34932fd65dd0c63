/**
 * The audit journal: the one rule for writing an audit event. Append it to the hash chain, route it
 * to the alarms its type calls for, queue those alarms in the outbox — all in the caller's
 * transaction, so an action, its record and its alarm commit together or not at all — and wake the
 * alarm worker once the transaction commits (deliver now, not at the next poll; never inside the
 * transaction).
 */
import { type AlarmRouting, routeAlarms } from "../core/alarm-routing.js";
import type { AuditEventDraft, SealedAuditEvent } from "../core/audit-event.js";
import type { AlarmWrites } from "../core/ports/alarms.js";
import type { AuditWrites } from "../core/ports/audit.js";
import type { Sha256 } from "../core/ports/runtime.js";
import type { TxScope } from "../core/ports/transactions.js";
import type { RequestContext } from "../core/request-context.js";
import { createAuditLog } from "./audit-log.js";

/**
 * What appending needs of the caller's transaction: the chain, the alarm outbox, and `afterCommit`
 * to wake the alarm worker. A transaction that records an action offers at least these.
 */
export type AuditTx = TxScope & AuditWrites & AlarmWrites;

/** What a service needs to record an action: append events inside its transaction. */
export interface AuditAppender {
  append(tx: AuditTx, drafts: readonly AuditEventDraft[]): Promise<unknown>;
}

/** The journal as wired: appending returns the sealed events. */
export interface AuditJournal extends AuditAppender {
  /**
   * Seal `drafts` onto the chain and queue their alarms in the outbox, in `tx`.
   * @throws ERR_AUDIT_WRITE_FAILED when the chain cannot be written (the transaction rolls back)
   */
  append(tx: AuditTx, drafts: readonly AuditEventDraft[]): Promise<SealedAuditEvent[]>;
}

export interface AuditJournalDeps {
  readonly sha256: Sha256;
  readonly routing: AlarmRouting;
  /** Runs after a transaction that queued alarms commits. */
  readonly wakeAlarms: () => void;
}

export function createAuditJournal(deps: AuditJournalDeps): AuditJournal {
  const auditLog = createAuditLog({ sha256: deps.sha256 });
  return {
    async append(tx, drafts) {
      const sealed = await auditLog.append(tx, drafts);
      const queued = routeAlarms(sealed, deps.routing);
      if (queued.length > 0) {
        await tx.insertAlarms(queued);
        tx.afterCommit(deps.wakeAlarms);
      }
      return sealed;
    },
  };
}

/** An event as written by one request: who asked is in the draft; where from is stamped here. */
export function stamp(event: AuditEventDraft, ctx: RequestContext): AuditEventDraft {
  return { ...event, requestId: ctx.requestId, sourceAddress: ctx.sourceAddress };
}
