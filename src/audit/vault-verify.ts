/**
 * Tier-2 openings against the chain. An opening's row (`vault_openings`) is what the review queue,
 * the console, posture and the evidence report show — which envelope, when it was opened, by which
 * custodians, for which incident and why, the review's outcome, reviewer and notes, whether the
 * envelope's own alarm got out — and each fact was written in the same transaction as an event
 * stating it: `vault.opened` (the record's facts, the import, the deadline, the alarm's state at
 * import), `vault.opening_reviewed` (the review), `vault.alarm_delivered` (a pending alarm's
 * delivery receipt imported later).
 *
 * Openings imported before `vault.opened` stated the alarm's state are not compared on the alarm
 * columns where their event does not say it.
 */
import { type AuditRecord, parseAuditPayload } from "../core/audit-columns.js";
import type { StoredAuditEvent } from "../core/audit-event.js";
import type { VaultOpening } from "../core/model.js";
import type { EvidenceReads } from "../core/ports/evidence.js";
import { gone, type RowDifference, RowFacts, renamedRows, timeOf, unaccounted } from "./row-check.js";

export type VaultOpeningStore = Pick<EvidenceReads, "listVaultOpenings">;

/** The events that state an opening's facts (all non-grant events). */
export const VAULT_EVENTS = ["vault.opened", "vault.opening_reviewed", "vault.alarm_delivered"] as const;

interface Facts {
  opened: AuditRecord;
  reviewed: AuditRecord | null;
  delivered: AuditRecord | null;
}

export class VaultOpeningLedger {
  readonly #openings = new Map<string, Facts>();

  /** Call with each event the chain verified (or a reader read), in order. */
  note(event: StoredAuditEvent): void {
    if (!(VAULT_EVENTS as readonly string[]).includes(event.type)) return;
    const e = parseAuditPayload(event.payload, event.hash);
    const id = e?.data.opening;
    // A drill's opening has no row (nothing to review) and no opening id.
    if (e === null || typeof id !== "string") return;
    if (e.type === "vault.opened") {
      this.#openings.set(id, { opened: e, reviewed: null, delivered: null });
      return;
    }
    const f = this.#openings.get(id);
    if (f === undefined) return;
    if (e.type === "vault.opening_reviewed") f.reviewed = e;
    else f.delivered = e;
  }

  differences(row: VaultOpening): RowDifference[] {
    const f = this.#openings.get(row.id);
    if (f === undefined) return [unaccounted("vault_openings", row.id)];
    const c = new RowFacts("vault_openings", row.id);
    const o = f.opened;
    const d = o.data;
    c.same("envelope_id", row.envelopeId, d.envelopeId, o);
    c.same("envelope_name", row.envelopeName, d.name, o);
    c.same("record_seq", row.recordSeq, d.record, o);
    c.same("record_hash", row.recordHash, d.recordHash, o);
    c.same("opened_at", row.openedAt, timeOf(d.openedAt), o);
    c.same("custodians", row.custodians, d.custodians, o);
    c.same("reason", row.reason, d.reason, o);
    c.same("incident", row.incident, d.incident, o);
    c.same("imported_at", row.importedAt, o.at, o);
    c.same("review_due_at", row.reviewDueAt, timeOf(d.reviewDueAt), o);
    const r = f.reviewed;
    if (r === null) {
      c.same("review", row.review, null, o);
    } else {
      c.same("review.reviewer", row.review?.reviewer ?? null, r.actor, r);
      c.same("review.at", row.review?.at ?? null, r.at, r);
      c.same("review.outcome", row.review?.outcome ?? null, r.data.outcome, r);
      c.same("review.notes", row.review?.notes ?? null, r.data.notes, r);
      c.same("review.followUps", row.review?.followUps ?? [], r.data.followUps ?? [], r);
    }
    const alarm = alarmAtImport(o);
    if (f.delivered !== null) {
      c.same("alarm_pending", row.alarmPending, false, f.delivered);
      c.same("alarm_delivered_at", row.alarmDeliveredAt, timeOf(f.delivered.data.deliveredAt), f.delivered);
    } else if (alarm !== null) {
      c.same("alarm_pending", row.alarmPending, alarm.pending, o);
      if (alarm.deliveredAt !== undefined) c.same("alarm_delivered_at", row.alarmDeliveredAt, alarm.deliveredAt, o);
    }
    return c.list;
  }

  async check(store: VaultOpeningStore): Promise<RowDifference[]> {
    const rows = await store.listVaultOpenings(false);
    const out = rows.flatMap((row) => this.differences(row));
    const seen = new Set(rows.map((r) => r.id));
    for (const [id, f] of this.#openings) if (!seen.has(id)) out.push(gone("vault_openings", id, f.opened));
    return renamedRows("vault_openings", rows, out, (row) => this.differences(row));
  }
}

/**
 * The envelope's alarm as `vault.opened` states it: pending or not, and when it was delivered
 * (undefined when the event does not say: imported before it carried the time). Null for an event
 * written before openings recorded their alarm.
 */
function alarmAtImport(o: AuditRecord): { pending: boolean; deliveredAt?: number | null } | null {
  const { alarmPending, alarmDeliveredAt, alarmAtOpening, openedAt } = o.data;
  if (typeof alarmPending !== "boolean") return null;
  if ("alarmDeliveredAt" in o.data) return { pending: alarmPending, deliveredAt: timeOf(alarmDeliveredAt) };
  if (alarmPending) return { pending: true, deliveredAt: null };
  // Not pending and not pending at the opening: delivered as it was opened.
  const pendingAtOpening = typeof alarmAtOpening === "string" && alarmAtOpening.startsWith("pending");
  return pendingAtOpening ? { pending: false } : { pending: false, deliveredAt: timeOf(openedAt) };
}

/** Openings, each with what its own events say about its row (for a reader). */
export function vaultOpeningDifferences(
  openings: readonly VaultOpening[],
  events: readonly StoredAuditEvent[],
): Map<string, RowDifference[]> {
  const ledger = new VaultOpeningLedger();
  for (const e of events) ledger.note(e);
  return new Map(openings.map((o) => [o.id, ledger.differences(o)]));
}
