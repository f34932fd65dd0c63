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

/**
 * One statement as the digest covers it: every recorded field but the grant and session ids, as
 * canonical JSON. For an array of strings, finite numbers, null and an array of strings or null
 * that is each string as JSON.stringify writes it and each number as JavaScript prints it (RFC
 * 8785, 3.2.2) — built here directly, without the generic canonicaliser, because the gateway
 * does it for every statement it relays; the property test in statement-batch.test.ts holds it
 * to {@link canonicalJson}.
 * @throws ERR_VALIDATION for a number that is not finite (no statement has one)
 */
export function statementEntry(s: StatementRecord): string {
  if (!Number.isFinite(s.seq + s.startedAt + (s.endedAt ?? 0) + s.rows + s.bytes)) {
    return canonicalJson([s.seq, s.startedAt, s.endedAt, s.kind, s.text, s.params, s.rows, s.tag, s.error, s.bytes]);
  }
  const q = JSON.stringify;
  return `[${s.seq},${s.startedAt},${s.endedAt},${q(s.kind)},${q(s.text)},${s.params === null ? "null" : params(s.params)},${s.rows},${s.tag === null ? "null" : q(s.tag)},${s.error === null ? "null" : q(s.error)},${s.bytes}]`;
}

const params = (list: readonly (string | null)[]): string => {
  let out = "[";
  for (let i = 0; i < list.length; i++) {
    const p = list[i];
    out += `${i === 0 ? "" : ","}${p === null || p === undefined ? "null" : JSON.stringify(p)}`;
  }
  return `${out}]`;
};

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
