/**
 * Digests of recordings (a terminal session's asciicast events, a gateway session's statements),
 * sealed into the audit chain when the recording closes, so changing, adding or removing a
 * recorded entry afterwards shows when `audit verify` recomputes the digest from the stored rows.
 *
 *   d_0 = 64 × "0"
 *   d_n = SHA-256( d_{n-1} ‖ "\n" ‖ canonicalJson(entry_n) )     entries in seq order
 *
 * A chain rather than one hash over everything: the gateway folds each statement in as it
 * finishes, keeping 64 characters per session instead of the session's statements. Pure.
 */
import type { AuditEventType } from "./audit-event.js";
import { canonicalJson } from "./canonical-json.js";
import type { Sha256 } from "./ports/runtime.js";
import type { StatementRecord, TerminalEvent } from "./records.js";

export const EMPTY_RECORDING_DIGEST = "0".repeat(64);

/** The audit events whose `data` seals a recording: `{ session, digest }` and the entry count. */
export const RECORDING_SEALS: ReadonlySet<AuditEventType> = new Set<AuditEventType>([
  "grant.terminal_ended",
  "grant.terminal_late_events",
  "gateway.session_ended",
]);

/** One terminal event as the digest covers it: time in whole milliseconds, as stored. */
export function terminalEntry(e: TerminalEvent): string {
  return canonicalJson([e.seq, Math.round(e.t * 1000), e.kind, e.data]);
}

/** One statement as the digest covers it: every recorded field but the grant and session ids. */
export function statementEntry(s: StatementRecord): string {
  return canonicalJson([s.seq, s.startedAt, s.endedAt, s.kind, s.text, s.params, s.rows, s.tag, s.error, s.bytes]);
}

export function digestStep(sha256: Sha256, digest: string, entry: string): string {
  return sha256(digest, "\n", entry);
}

export function recordingDigest(sha256: Sha256, entries: Iterable<string>): string {
  let digest = EMPTY_RECORDING_DIGEST;
  for (const entry of entries) digest = digestStep(sha256, digest, entry);
  return digest;
}

export function terminalDigest(sha256: Sha256, events: readonly TerminalEvent[]): string {
  return recordingDigest(sha256, [...events].sort((a, b) => a.seq - b.seq).map(terminalEntry));
}

export function statementsDigest(sha256: Sha256, statements: readonly StatementRecord[]): string {
  return recordingDigest(sha256, [...statements].sort((a, b) => a.seq - b.seq).map(statementEntry));
}
