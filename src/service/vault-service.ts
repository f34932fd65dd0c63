/**
 * Tier-2 openings in the broker: imported from their verified opening records (each a
 * `vault.opened` event, critical, and a review waiting), listed in the review queue, reviewed by
 * the vault's reviewers — never by a custodian who opened it.
 */

import type { AuditAppender, AuditTx } from "../audit/audit-journal.js";
import { stamp } from "../audit/audit-journal.js";
import { nonGrantEvent } from "../core/audit-event.js";
import { vaultReviewRefusal } from "../core/authorization.js";
import { BreakglassError } from "../core/errors.js";
import type { FollowUp, Policy, ReviewOutcome, VaultOpening } from "../core/model.js";
import type { StateWrites } from "../core/ports/broker-state.js";
import type { EvidenceReads, EvidenceWrites } from "../core/ports/evidence.js";
import type { Clock } from "../core/ports/runtime.js";
import type { Transactions } from "../core/ports/transactions.js";
import type { RequestContext } from "../core/request-context.js";
import { reviewVaultOpening, vaultOpeningId } from "../core/vault-review.js";
import {
  type AlarmReceipt,
  alarmPendingAtOpening,
  isDrillRecord,
  type OpeningFacts,
  type OpeningRecord,
  receiptOf,
} from "../vault/opening-record.js";

export interface VaultService {
  /**
   * Import the records not imported yet (verified by the caller), and the delivery receipts of
   * their alarms: how many openings were new, and how many imported before had their pending
   * alarm delivered since (each a `vault.alarm_delivered` event).
   */
  importOpenings(
    envelope: { id: string; name: string },
    records: readonly OpeningRecord[],
    receipts: readonly AlarmReceipt[],
  ): Promise<{ imported: number; lateDeliveries: number }>;
  /** Openings not yet reviewed, oldest deadline first, with whether `actor` may review each. */
  queue(actor: string): Promise<{ opening: VaultOpening; overdue: boolean; why: string | null }[]>;
  review(
    ctx: RequestContext,
    id: string,
    review: { outcome: ReviewOutcome; notes: string; followUps?: readonly FollowUp[] },
  ): Promise<VaultOpening>;
}

/** Whether the envelope's own alarm for this opening is delivered: at the opening, by a receipt since, or not yet. */
function alarmOf(
  r: OpeningRecord,
  facts: OpeningFacts,
  receipts: readonly AlarmReceipt[],
): Pick<VaultOpening, "alarmPending" | "alarmDeliveredAt"> {
  if (!alarmPendingAtOpening(r)) return { alarmPending: false, alarmDeliveredAt: Date.parse(facts.at) };
  const receipt = receiptOf(r, receipts);
  return receipt
    ? { alarmPending: false, alarmDeliveredAt: Date.parse(receipt.deliveredAt) }
    : { alarmPending: true, alarmDeliveredAt: null };
}

export function createVaultService(deps: {
  policy: Policy;
  /** Openings and their reviews commit with their audit events, serialised by named state. */
  store: Transactions<EvidenceWrites & StateWrites & AuditTx> &
    Pick<EvidenceReads, "getVaultOpening" | "listVaultOpenings">;
  audit: AuditAppender;
  clock: Clock;
  reviewers: readonly string[];
  reviewDeadlineMs: number;
}): VaultService {
  const { policy, store, audit, clock } = deps;
  return {
    importOpenings: async (envelope, records, receipts) => {
      // Read before the transaction (the store's reads are not part of it); the state row's lock
      // below is what keeps two imports of one envelope from both importing a record.
      const known = new Map(
        (await store.listVaultOpenings(false)).filter((o) => o.envelopeId === envelope.id).map((o) => [o.id, o]),
      );
      return store.transaction(async (tx) => {
        const key = `vault:${envelope.id}`;
        const now = clock.now();
        const last = records.at(-1)?.seq ?? 0;
        const stored = await tx.swapState(key, "0", now);
        const before = stored === null ? 0 : Number(stored);
        await tx.swapState(key, String(Math.max(before, last)), now);
        const fresh = records.filter((r) => r.seq > before);
        for (const r of fresh) {
          const facts = JSON.parse(r.payload) as OpeningFacts;
          const alarm = alarmOf(r, facts, receipts);
          const opening: VaultOpening = {
            id: vaultOpeningId(envelope.id, r.seq),
            envelopeId: envelope.id,
            envelopeName: envelope.name,
            recordSeq: r.seq,
            recordHash: r.hash,
            openedAt: Date.parse(facts.at),
            custodians: facts.custodians,
            reason: facts.reason,
            incident: facts.incident,
            importedAt: now,
            reviewDueAt: now + deps.reviewDeadlineMs,
            review: null,
            ...alarm,
          };
          // A drill proved the envelope opens without showing the secret: recorded, not reviewed.
          if (facts.drill !== true) await tx.saveVaultOpening(opening);
          await audit.append(tx, [
            nonGrantEvent("vault.opened", "vault", now, {
              name: envelope.name,
              envelopeId: envelope.id,
              record: r.seq,
              recordHash: r.hash,
              openedAt: facts.at,
              custodians: facts.custodians,
              reason: facts.reason,
              incident: facts.incident,
              alarmAtOpening: facts.alarm,
              ...(facts.drill === true
                ? { drill: true }
                : {
                    opening: opening.id,
                    reviewDueAt: new Date(opening.reviewDueAt).toISOString(),
                    alarmPending: alarm.alarmPending,
                    alarmDeliveredAt:
                      alarm.alarmDeliveredAt === null ? null : new Date(alarm.alarmDeliveredAt).toISOString(),
                  }),
            }),
          ]);
        }
        // Openings imported before: a pending alarm delivered since (a receipt), or an opening
        // imported before the broker recorded alarms, is brought up to date.
        let lateDeliveries = 0;
        for (const r of records.filter((x) => x.seq <= before && !isDrillRecord(x))) {
          const opening = known.get(vaultOpeningId(envelope.id, r.seq));
          if (!opening || opening.recordHash !== r.hash) continue;
          const alarm = alarmOf(r, JSON.parse(r.payload) as OpeningFacts, receipts);
          if (alarm.alarmPending === opening.alarmPending && alarm.alarmDeliveredAt === opening.alarmDeliveredAt)
            continue;
          await tx.saveVaultOpening({ ...opening, ...alarm });
          if (opening.alarmPending && !alarm.alarmPending && alarm.alarmDeliveredAt !== null) {
            lateDeliveries++;
            await audit.append(tx, [
              nonGrantEvent("vault.alarm_delivered", "vault", now, {
                name: envelope.name,
                envelopeId: envelope.id,
                record: r.seq,
                opening: opening.id,
                incident: opening.incident,
                openedAt: new Date(opening.openedAt).toISOString(),
                deliveredAt: new Date(alarm.alarmDeliveredAt).toISOString(),
              }),
            ]);
          }
        }
        return { imported: fresh.length, lateDeliveries };
      });
    },

    async queue(actor) {
      const now = clock.now();
      return (await store.listVaultOpenings(true))
        .map((opening) => ({
          opening,
          overdue: opening.reviewDueAt < now,
          why: vaultReviewRefusal(policy, opening, actor, deps.reviewers),
        }))
        .sort((a, b) => a.opening.reviewDueAt - b.opening.reviewDueAt);
    },

    async review(ctx, id, review) {
      const opening = await store.getVaultOpening(id);
      if (!opening) throw new BreakglassError("ERR_NOT_FOUND", `no tier-2 opening ${id}`, { openingId: id });
      const done = reviewVaultOpening(policy, opening, ctx.actor, review, deps.reviewers, clock.now());
      await store.transaction(async (tx) => {
        // Reviewed once: a marker swapped under its row's lock, so two reviewers at the same
        // moment cannot both record a verdict.
        const earlier = await tx.swapState(`vault-review:${id}`, ctx.actor, clock.now());
        if (earlier !== null) {
          throw new BreakglassError("ERR_CONFLICT", `opening ${id} was already reviewed by ${earlier}`, {
            openingId: id,
          });
        }
        await tx.saveVaultOpening(done.opening);
        await audit.append(tx, [stamp(done.event, ctx)]);
      });
      return done.opening;
    },
  };
}
