/**
 * Terminal sessions against the chain. A session's row (`terminal_sessions`) is what the
 * recording's page, the grant's recording list and the story show — which grant, what command,
 * when it started and ended and why, the player's size, whether keystrokes were recorded — and
 * each fact was written in the same transaction as `grant.terminal_started` (grant, command, start,
 * size, input recording) or `grant.terminal_ended` (end, reason). What the session recorded is
 * covered by the digest its end seals (recording-verify.ts).
 *
 * Sessions started before the start event carried the size and input flag are not compared on
 * those three columns (their event does not state them).
 */
import { type AuditRecord, parseAuditPayload } from "../core/audit-columns.js";
import type { StoredAuditEvent } from "../core/audit-event.js";
import type { TerminalReads } from "../core/ports/recordings.js";
import type { TerminalSession } from "../core/records.js";
import { gone, type RowDifference, RowFacts, renamedRows, unaccounted } from "./row-check.js";

export type TerminalSessionStore = Pick<TerminalReads, "listTerminalSessions">;

interface Facts {
  started: AuditRecord;
  ended: AuditRecord | null;
}

export class TerminalLedger {
  readonly #sessions = new Map<string, Facts>();

  /** Call with each event the chain verified (or a reader read), in order. */
  note(event: StoredAuditEvent): void {
    if (event.type !== "grant.terminal_started" && event.type !== "grant.terminal_ended") return;
    const e = parseAuditPayload(event.payload, event.hash);
    const id = e?.data.session;
    if (e === null || typeof id !== "string") return;
    if (e.type === "grant.terminal_started") {
      this.#sessions.set(id, { started: e, ended: null });
      return;
    }
    const s = this.#sessions.get(id);
    if (s !== undefined) s.ended = e;
  }

  /** Each fact of the row its events state differently; `unaccounted` when they never started it. */
  differences(row: TerminalSession): RowDifference[] {
    const f = this.#sessions.get(row.id);
    if (f === undefined) return [unaccounted("terminal_sessions", row.id)];
    const c = new RowFacts("terminal_sessions", row.id);
    const { started: s, ended: e } = f;
    c.same("grant_id", row.grantId, s.grantId, s);
    c.same("command", row.command, s.data.command, s);
    c.same("started_at", row.startedAt, s.at, s);
    if (typeof s.data.width === "number") c.same("width", row.width, s.data.width, s);
    if (typeof s.data.height === "number") c.same("height", row.height, s.data.height, s);
    if (typeof s.data.recordInput === "boolean") c.same("record_input", row.recordInput, s.data.recordInput, s);
    c.same("ended_at", row.endedAt, e?.at ?? null, e ?? s);
    c.same("end_reason", row.endReason, e === null ? null : e.data.reason, e ?? s);
    return c.list;
  }

  /** Every session row against its events, and every started session whose row is gone. */
  async check(store: TerminalSessionStore): Promise<RowDifference[]> {
    const rows = await store.listTerminalSessions(null);
    const out = rows.flatMap((row) => this.differences(row));
    const seen = new Set(rows.map((r) => r.id));
    for (const [id, f] of this.#sessions) if (!seen.has(id)) out.push(gone("terminal_sessions", id, f.started));
    return renamedRows("terminal_sessions", rows, out, (row) => this.differences(row));
  }
}

/** A grant's sessions, each with what its own events say about its row (for a reader). */
export function terminalSessionDifferences(
  sessions: readonly TerminalSession[],
  events: readonly StoredAuditEvent[],
): Map<string, RowDifference[]> {
  const ledger = new TerminalLedger();
  for (const e of events) ledger.note(e);
  return new Map(sessions.map((s) => [s.id, ledger.differences(s)]));
}
