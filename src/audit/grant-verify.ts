/**
 * Grants against the chain. A grant's row (`grants`, `grant_approvals`) is what the story, the
 * incident record, the console and the evidence report show first — who asked, emergency or not,
 * who approved, how it ended, the review's outcome — and every one of those facts was written in
 * the same transaction as an audit event that states it. Verification replays each grant's events
 * and fails where the row says something else (`grant_mismatch`, naming the grant, the column and
 * the event), where a row has no request in the chain (`grant_unaccounted`), or where a requested
 * grant's row is gone.
 *
 * Grants whose request is not in the chain are not checked (there is nothing to check them against).
 */
import type { ChainFailure } from "../core/audit-chain.js";
import { type AuditRecord, parseAuditPayload } from "../core/audit-columns.js";
import type { StoredAuditEvent } from "../core/audit-event.js";
import type { Grant, GrantState } from "../core/model.js";
import type { GrantReads } from "../core/ports/grants.js";

export type GrantStore = Pick<GrantReads, "listGrants">;

/** A grant's facts as its events state them, each with the seq it came from. */
export interface Replayed {
  requested: AuditRecord;
  approvals: AuditRecord[];
  approved: AuditRecord | null;
  activated: AuditRecord | null;
  /** The last event that set the grant's state. */
  last: AuditRecord;
  ended: AuditRecord | null;
  reviewed: AuditRecord | null;
}

const STATE_OF: Readonly<Record<string, GrantState>> = {
  "grant.requested": "requested",
  "grant.approved": "approved",
  "grant.activated": "active",
  "grant.emergency_activated": "active",
  "grant.denied": "denied",
  "grant.cancelled": "cancelled",
  "grant.approval_expired": "approval_expired",
  "grant.expired": "ended",
  "grant.revoked": "ended",
  "grant.released": "ended",
  "grant.reviewed": "reviewed",
};
const ENDINGS = new Set([
  "grant.denied",
  "grant.cancelled",
  "grant.approval_expired",
  "grant.expired",
  "grant.revoked",
  "grant.released",
]);

export class GrantLedger {
  readonly #grants = new Map<string, Replayed>();

  /** Call with each event the chain verified, in order. */
  note(event: StoredAuditEvent): void {
    if (event.grantId === null) return;
    const isState = event.type in STATE_OF;
    if (!isState && event.type !== "grant.approval_added") return;
    const e = parseAuditPayload(event.payload, event.hash);
    if (e === null || e.grantId === null) return;
    if (e.type === "grant.requested") {
      this.#grants.set(e.grantId, {
        requested: e,
        approvals: [],
        approved: null,
        activated: null,
        last: e,
        ended: null,
        reviewed: null,
      });
      return;
    }
    const g = this.#grants.get(e.grantId);
    if (g === undefined) return;
    if (e.type === "grant.approval_added" || e.type === "grant.approved") g.approvals.push(e);
    if (e.type === "grant.approved") g.approved = e;
    if (e.type === "grant.activated" || e.type === "grant.emergency_activated") g.activated = e;
    if (ENDINGS.has(e.type)) g.ended = e;
    if (e.type === "grant.reviewed") g.reviewed = e;
    if (isState) g.last = e;
  }

  replayed(id: string): Replayed | undefined {
    return this.#grants.get(id);
  }

  /** The first grant row that is not what its events say (by seq), or null. */
  async check(store: GrantStore, eventsChecked: number): Promise<ChainFailure | null> {
    const rows = await store.listGrants({ limit: Number.MAX_SAFE_INTEGER });
    const failures: ChainFailure[] = [];
    const fail = (seq: number, problem: ChainFailure["problem"], column: string | null, message: string) =>
      failures.push({ ok: false, seq, problem, column, message, eventsChecked });
    const seen = new Set<string>();
    for (const row of rows) {
      seen.add(row.id);
      const g = this.#grants.get(row.id);
      if (g === undefined) {
        fail(
          0,
          "grant_unaccounted",
          null,
          `grant ${row.id} (${row.requester}, ${row.roleId}) has a row but no grant.requested in the audit chain: it was added behind the broker's back`,
        );
        continue;
      }
      const d = differences(row, g)[0];
      if (d !== undefined) {
        fail(
          d.event.seq,
          "grant_mismatch",
          `grants.${d.column}`,
          `grant ${row.id}'s ${d.column} column says ${show(d.stored)} but event ${d.event.seq} (${d.event.type}) says ${show(d.chain)}`,
        );
      }
    }
    for (const [id, g] of this.#grants) {
      if (!seen.has(id))
        fail(
          g.requested.seq,
          "grant_mismatch",
          null,
          `grant ${id} was requested (event ${g.requested.seq}) but its row is gone`,
        );
    }
    failures.sort((a, b) => a.seq - b.seq);
    return failures[0] ?? null;
  }
}

/**
 * One grant's row against its own events (a story's check, before any full verification): the
 * first fact the row states differently, or null. Null too when its request is not among them.
 */
export function grantDifference(row: Grant, events: readonly StoredAuditEvent[]): Difference | null {
  const ledger = new GrantLedger();
  for (const e of events) ledger.note(e);
  const g = ledger.replayed(row.id);
  return g === undefined ? null : (differences(row, g)[0] ?? null);
}

export interface Difference {
  readonly column: string;
  readonly stored: unknown;
  readonly chain: unknown;
  readonly event: AuditRecord;
}

/** Each fact of the row a person reads, against the event that recorded it. */
function differences(row: Grant, g: Replayed): Difference[] {
  const out: Difference[] = [];
  const same = (column: string, stored: unknown, chain: unknown, event: AuditRecord) => {
    if (stored !== chain) out.push({ column, stored, chain, event });
  };
  const r = g.requested;
  same("requester", row.requester, r.actor, r);
  same("role_id", row.roleId, r.roleId, r);
  same("domain", row.domain, r.domain, r);
  same("target", row.target, r.target, r);
  same("justification", row.justification, r.justification, r);
  same("incident", row.incident, r.incident, r);
  same("requested_at", row.requestedAt, r.at, r);
  same("emergency", row.emergency, r.data.emergency === true, r);
  same("via_fallback", row.viaFallback === true, r.data.viaFallback === true, r);
  if (g.activated !== null) {
    const emergencyActivation = g.activated.type === "grant.emergency_activated";
    same("emergency", row.emergency, emergencyActivation, g.activated);
    same("activated_at", row.activatedAt, g.activated.at, g.activated);
  } else {
    same("activated_at", row.activatedAt, null, g.last);
  }
  same("approved_at", row.approvedAt, g.approved?.at ?? null, g.approved ?? g.last);
  const approvers = (list: readonly { approver: string; at: number }[]) =>
    list
      .map((a) => `${a.approver}@${a.at}`)
      .sort()
      .join(",");
  const chainApprovals = g.approvals.map((e) => ({
    approver: typeof e.data.approver === "string" ? e.data.approver : e.actor,
    at: e.at,
  }));
  same("approvals (grant_approvals)", approvers(row.approvals), approvers(chainApprovals), g.approvals.at(-1) ?? r);
  same("state", row.state, STATE_OF[g.last.type], g.last);
  if (g.ended !== null) {
    same("ended_at", row.endedAt, g.ended.at, g.ended);
    same("closed_by", row.closedBy, g.ended.type === "grant.approval_expired" ? row.closedBy : g.ended.actor, g.ended);
    const reason = g.ended.type.slice("grant.".length);
    same(
      "end_reason",
      row.endReason,
      ["expired", "revoked", "released"].includes(reason) ? reason : row.endReason,
      g.ended,
    );
  }
  const rev = g.reviewed;
  if (rev !== null) {
    same("review.reviewer", row.review?.reviewer ?? null, rev.actor, rev);
    same("review.outcome", row.review?.outcome ?? null, rev.data.outcome, rev);
    same("review.notes", row.review?.notes ?? null, rev.data.notes, rev);
    same("review.at", row.review?.at ?? null, rev.at, rev);
  } else {
    same("review", row.review, null, g.last);
  }
  return out.sort((a, b) => a.event.seq - b.event.seq);
}

function show(value: unknown): string {
  return value === null || value === undefined
    ? "null"
    : typeof value === "string"
      ? JSON.stringify(value)
      : String(value);
}
