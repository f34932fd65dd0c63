/**
 * Reviewing tier-2 openings: every envelope opening is reviewed, like an emergency activation, by
 * a member of the vault's reviewer groups who was not one of the custodians who opened it (a
 * custodian is matched by the name the envelope gives them: name custodians' recipient files after
 * their user names). Pure.
 */
import { type AuditEventDraft, nonGrantEvent } from "./audit-event.js";
import { vaultReviewRefusal } from "./authorization.js";
import { BreakglassError } from "./errors.js";
import { reviewRecord } from "./grant-machine.js";
import type { FollowUp, Policy, ReviewOutcome, VaultOpening } from "./model.js";

export const vaultOpeningId = (envelopeId: string, seq: number): string => `vo_${envelopeId}_${seq}`;

/**
 * Record a review of a tier-2 opening.
 * @throws ERR_CONFLICT when already reviewed, ERR_FORBIDDEN for a refused reviewer, ERR_VALIDATION
 *   for a follow-up owned by nobody known
 */
export function reviewVaultOpening(
  policy: Policy,
  opening: VaultOpening,
  reviewer: string,
  review: { outcome: ReviewOutcome; notes: string; followUps?: readonly FollowUp[] },
  reviewerGroups: readonly string[],
  now: number,
): { opening: VaultOpening; event: AuditEventDraft } {
  if (opening.review !== null) {
    throw new BreakglassError(
      "ERR_CONFLICT",
      `opening ${opening.id} was already reviewed by ${opening.review.reviewer}`,
      { openingId: opening.id },
    );
  }
  const refusal = vaultReviewRefusal(policy, opening, reviewer, reviewerGroups);
  if (refusal !== null) throw new BreakglassError("ERR_FORBIDDEN", refusal, { openingId: opening.id });
  const record = reviewRecord(policy, reviewer, review, now);
  const followUps = record.followUps ?? [];
  const next: VaultOpening = { ...opening, review: record };
  const event = nonGrantEvent("vault.opening_reviewed", reviewer, now, {
    opening: opening.id,
    name: opening.envelopeName,
    envelopeId: opening.envelopeId,
    incident: opening.incident,
    outcome: review.outcome,
    notes: review.notes,
    overdue: now > opening.reviewDueAt,
    ...(followUps.length > 0 ? { followUps } : {}),
  });
  return { opening: next, event };
}
