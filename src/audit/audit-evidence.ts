/**
 * Audit events as evidence for people: a grant's story, an incident's timeline, the log browser.
 * Every value comes from the hashed payload (see core/audit-record.ts), each row is checked on its
 * own against its neighbours, and:
 *
 * - a row whose index columns disagree with its payload is shown with the payload's values and
 *   flagged (`integrity.problem: "column_mismatch"`, the columns named) — `audit verify` fails
 *   on it too;
 * - a row whose payload or hash does not chain is refused for the story and the incident
 *   (ERR_AUDIT_CHAIN_BROKEN, naming the seq): its values are exactly what verification rejects.
 */

import { sha256 } from "../adapters/node-crypto.js";
import type { AuditRecord } from "../core/audit-columns.js";
import type { LinkedAuditEvent, StoredAuditEvent } from "../core/audit-event.js";
import { type AuditIntegrity, checkStoredEvent } from "../core/audit-record.js";
import { BreakglassError } from "../core/errors.js";

export interface EvidenceEvent {
  readonly record: AuditRecord;
  /** Null for a row that is exactly what was written. */
  readonly integrity: AuditIntegrity | null;
}

/**
 * The rows as evidence, in order.
 * @throws ERR_AUDIT_CHAIN_BROKEN for a row whose payload or hash does not chain (or cannot be read).
 */
export function evidenceOf(rows: readonly LinkedAuditEvent[]): EvidenceEvent[] {
  return rows.map((row) => {
    const { record, integrity } = checkStoredEvent(sha256, row);
    if (record === null || (integrity !== null && integrity.problem !== "column_mismatch")) {
      throw new BreakglassError(
        "ERR_AUDIT_CHAIN_BROKEN",
        `${integrity?.message ?? `event ${row.seq} cannot be read`}: it is not shown as evidence; run \`breakglass audit verify\``,
        { seq: row.seq, problem: integrity?.problem ?? "unreadable" },
      );
    }
    return { record, integrity };
  });
}

/**
 * A page of rows read from `from − 1` to `from + limit` (the rows either side give each row of
 * the page its neighbours): the page's rows, each with them.
 */
export function linkPage(rows: readonly StoredAuditEvent[], from: number, limit: number): LinkedAuditEvent[] {
  const bySeq = new Map(rows.map((r) => [r.seq, r]));
  return rows
    .filter((r) => r.seq >= from)
    .slice(0, limit)
    .map((r) => {
      const next = bySeq.get(r.seq + 1);
      return {
        ...r,
        prevHash: bySeq.get(r.seq - 1)?.hash ?? null,
        next: next === undefined ? null : { payload: next.payload, hash: next.hash },
      };
    });
}
