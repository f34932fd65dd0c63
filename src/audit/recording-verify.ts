/**
 * Recordings against the chain: every terminal session and gateway session with stored rows must
 * have started in the audit chain, and a sealed one (its end event carries a digest, see
 * core/recording-digest.ts) must still hash to that digest. A recording changed, extended or cut
 * after it closed fails verification at the seq of the event that sealed it.
 *
 * Needs the database: an export carries the chain, not the recordings.
 */

import { sha256 } from "../adapters/node-crypto.js";
import type { ChainFailure, RecordingsChecked } from "../core/audit-chain.js";
import { parseAuditPayload } from "../core/audit-columns.js";
import type { StoredAuditEvent } from "../core/audit-event.js";
import type { GatewayReads, TerminalReads } from "../core/ports/recordings.js";
import { RECORDING_SEALS, statementsDigest, terminalDigest } from "../core/recording-digest.js";
import type { StatementRecord } from "../core/records.js";

export type RecordingStore = Pick<TerminalReads, "listRecordings" | "readTerminalEvents"> &
  Pick<GatewayReads, "listStatements">;

interface Seal {
  readonly seq: number;
  readonly kind: "terminal" | "gateway";
  readonly grantId: string | null;
  readonly digest: string;
  readonly entries: number;
}

const STARTS = new Map([
  ["grant.terminal_started", "terminal"],
  ["gateway.session_started", "gateway"],
] as const);

/** Collects, from verified events, which recordings started and the last seal of each. */
export class RecordingLedger {
  readonly #started = new Map<string, "terminal" | "gateway">();
  readonly #seals = new Map<string, Seal>();

  /** Call with each event the chain verified, in order. */
  note(event: StoredAuditEvent): void {
    const start = STARTS.get(event.type as never);
    if (start === undefined && !RECORDING_SEALS.has(event.type)) return;
    const record = parseAuditPayload(event.payload, event.hash);
    const session = record?.data.session;
    if (record === null || typeof session !== "string") return;
    if (start !== undefined) {
      this.#started.set(session, start);
      return;
    }
    const { digest } = record.data;
    const entries = record.type === "gateway.session_ended" ? record.data.statements : record.data.events;
    // Closed before seals existed: nothing to check it against (counted as unsealed).
    if (typeof digest !== "string" || typeof entries !== "number") return;
    const kind = record.type === "gateway.session_ended" ? "gateway" : "terminal";
    this.#seals.set(session, { seq: record.seq, kind, grantId: record.grantId, digest, entries });
  }

  /** The first recording that is not what was sealed (by seal seq), or how many were checked. */
  async check(store: RecordingStore, eventsChecked: number): Promise<ChainFailure | RecordingsChecked> {
    const refs = await store.listRecordings();
    const failures: ChainFailure[] = [];
    const fail = (seq: number, problem: ChainFailure["problem"], message: string) =>
      failures.push({ ok: false, seq, problem, column: null, message, eventsChecked });
    const statementsOf = new Map<string, StatementRecord[]>();
    const statements = async (grantId: string) => {
      let list = statementsOf.get(grantId);
      if (list === undefined) {
        list = await store.listStatements(grantId);
        statementsOf.set(grantId, list);
      }
      return list;
    };
    let matched = 0;
    let unsealed = 0;
    const seen = new Set<string>();
    for (const ref of refs) {
      const name = `${ref.kind === "terminal" ? "terminal" : "gateway"} session ${ref.sessionId}`;
      seen.add(ref.sessionId);
      if (this.#started.get(ref.sessionId) !== ref.kind) {
        fail(
          0,
          "recording_unaccounted",
          `${name}${ref.grantId ? ` (grant ${ref.grantId})` : ""} has recorded rows but its start is not in the audit chain: it was added behind the broker's back`,
        );
        continue;
      }
      const seal = this.#seals.get(ref.sessionId);
      if (seal === undefined) {
        unsealed += 1;
        continue;
      }
      let digest: string;
      let count: number;
      if (ref.kind === "terminal") {
        const events = await store.readTerminalEvents(ref.sessionId);
        [digest, count] = [terminalDigest(sha256, events), events.length];
      } else {
        const rows = (await statements(ref.grantId ?? "")).filter((s) => s.sessionId === ref.sessionId);
        [digest, count] = [statementsDigest(sha256, rows), rows.length];
      }
      if (digest === seal.digest && count === seal.entries) {
        matched += 1;
        continue;
      }
      const what = ref.kind === "terminal" ? "events" : "statements";
      fail(
        seal.seq,
        "recording_mismatch",
        `${name} holds ${count} ${what} that do not hash to the digest event ${seal.seq} sealed over ${seal.entries}: the recording changed after it closed`,
      );
    }
    for (const [session, seal] of this.#seals) {
      if (seen.has(session) || seal.entries === 0) continue;
      fail(
        seal.seq,
        "recording_mismatch",
        `${seal.kind} session ${session}: event ${seal.seq} sealed ${seal.entries} recorded entries, and none are stored: the recording was deleted`,
      );
    }
    failures.sort((a, b) => a.seq - b.seq);
    return failures[0] ?? { matched, unsealed };
  }
}
