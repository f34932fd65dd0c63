/**
 * Appends audit events to the chain inside the caller's transaction.
 *
 * Fail closed: if the events cannot be sealed and written, `append` throws
 * ERR_AUDIT_WRITE_FAILED, the caller's transaction rolls back, and the action it was recording
 * does not happen. An action without its audit record is the backdoor this product replaces.
 */
import { sealEvents } from "../core/audit-chain.js";
import type { AuditEventDraft, SealedAuditEvent } from "../core/audit-event.js";
import { BreakglassError } from "../core/errors.js";
import type { AuditWrites } from "../core/ports/audit.js";
import type { Sha256 } from "../core/ports/runtime.js";

export interface AuditLog {
  /**
   * Seal `drafts` after the chain's head (locked for the rest of the transaction, so concurrent
   * appends from other replicas queue behind it) and insert them.
   * @returns the events as stored, in order.
   * @throws ERR_AUDIT_WRITE_FAILED on any failure (the original error is its `cause`).
   */
  append(
    tx: Pick<AuditWrites, "lockAuditHead" | "insertAuditEvents">,
    drafts: readonly AuditEventDraft[],
  ): Promise<SealedAuditEvent[]>;
}

export interface AuditLogDeps {
  readonly sha256: Sha256;
}

export function createAuditLog({ sha256 }: AuditLogDeps): AuditLog {
  return {
    async append(tx, drafts) {
      if (drafts.length === 0) return [];
      try {
        const head = await tx.lockAuditHead();
        const sealed = sealEvents(sha256, head, drafts);
        await tx.insertAuditEvents(sealed);
        return sealed;
      } catch (e) {
        throw auditWriteFailed(e, drafts);
      }
    },
  };
}

function auditWriteFailed(e: unknown, drafts: readonly AuditEventDraft[]): BreakglassError {
  if (e instanceof BreakglassError && e.code === "ERR_AUDIT_WRITE_FAILED") return e;
  const error = new BreakglassError(
    "ERR_AUDIT_WRITE_FAILED",
    "the audit log could not be written, so the action was refused",
    {
      types: drafts.map((d) => d.type),
      ...(e instanceof BreakglassError ? { reason: e.code } : {}),
    },
  );
  error.cause = e;
  return error;
}
