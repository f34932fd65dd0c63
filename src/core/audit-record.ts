/**
 * Reading audit events as evidence. Every fact a person is shown — who, what, when, which grant —
 * is taken from the hashed payload, never from the row's index columns (seq aside, which the
 * chain itself checks); a row whose columns disagree with its payload is named, and a row whose
 * payload does not chain with its neighbours is not shown as evidence at all.
 *
 * Pure: hashing is injected.
 */
import { chainHash, GENESIS_HASH } from "./audit-chain.js";
import {
  type AuditColumn,
  type AuditRecord,
  columnDifferences,
  columnsMatch,
  describeDifferences,
  parseAuditPayload,
} from "./audit-columns.js";
import type { LinkedAuditEvent, StoredAuditEvent } from "./audit-event.js";
import type { Sha256 } from "./ports/runtime.js";

/** Why a stored row is not plain evidence. */
export interface AuditIntegrity {
  /**
   * `column_mismatch`: the payload chains, but index columns (named) say something else — the
   * record shows the payload's values. `modified`: the payload or hash does not chain with its
   * neighbours — the payload is not evidence. `unreadable`: the payload is not an audit event.
   */
  readonly problem: "column_mismatch" | "modified" | "unreadable";
  readonly columns: readonly AuditColumn[];
  readonly message: string;
}

export interface CheckedAuditEvent {
  /** Null when the payload cannot be read as an event. */
  readonly record: AuditRecord | null;
  readonly integrity: AuditIntegrity | null;
}

/**
 * Check one stored row on its own — columns against payload, payload and hash against the
 * neighbouring rows — and read its facts from the payload. What this cannot see is a chain
 * rewritten from this row to the head with every hash recomputed: only `audit verify`, against the
 * signed checkpoints, catches that.
 */
export function checkStoredEvent(sha256: Sha256, row: LinkedAuditEvent): CheckedAuditEvent {
  const record = parseAuditPayload(row.payload, row.hash);
  const expectedPrev = row.seq === 1 ? GENESIS_HASH : row.prevHash;
  const linksBack = expectedPrev !== null && chainHash(sha256, expectedPrev, row.payload) === row.hash;
  const linksOn = row.next === null || chainHash(sha256, row.hash, row.next.payload) === row.next.hash;
  if (!linksBack || !linksOn) {
    const why =
      expectedPrev === null
        ? "the event before it is missing, so it cannot be checked"
        : linksBack
          ? `event ${row.seq + 1} does not chain from it (this event was rewritten, hash and all, or the next one was changed)`
          : "it does not hash to its recorded value from the event before it: its payload or hash was changed";
    return {
      record: null,
      integrity: { problem: "modified", columns: ["payload", "hash"], message: `event ${row.seq}: ${why}` },
    };
  }
  if (record === null) {
    return {
      record: null,
      integrity: { problem: "unreadable", columns: ["payload"], message: `event ${row.seq}'s payload is not an event` },
    };
  }
  return { record, integrity: checkColumns(row) };
}

/** The columns check alone, for rows whose chaining is checked elsewhere (or not at all). */
export function checkColumns(row: StoredAuditEvent): AuditIntegrity | null {
  if (columnsMatch(row.seq, row.payload, row.columns)) return null;
  const diffs = columnDifferences(row.seq, row.payload, row.columns);
  if (diffs.length === 0) return null;
  return {
    problem: "column_mismatch",
    columns: diffs.map((d) => d.column),
    message: describeDifferences(row.seq, diffs),
  };
}
