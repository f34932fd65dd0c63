/**
 * Reviewed every time: the review queue (every ended grant not yet reviewed, oldest deadline
 * first, with whether the caller may review it) and a grant's whole story for its reviewer —
 * justification, incident, approvals, every audit event with its facts, alarms and their
 * delivery, what the gateway recorded (counts and blocked attempts), side permissions swept, and
 * timing. Recording the verdict is `POST /grants/{id}/review`.
 */

import {
  GrantIdParamsSchema,
  GrantStorySchema,
  ReviewBodySchema,
  ReviewQueueQuerySchema,
  ReviewQueueSchema,
  VaultOpeningIdParamsSchema,
  VaultOpeningViewSchema,
} from "../../contract/api.js";
import type { Policy } from "../../core/model.js";
import type { GrantStory } from "../../service/review-queries.js";
import { type AnyRoute, defineRoute } from "../route-table.js";
import { alarmView, followUpsFrom, grantView, integrityView, rowIntegrityView, vaultOpeningView } from "../views.js";
import type { RouteDeps } from "./route-deps.js";

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());
const seconds = (from: number | null, to: number | null): number | null =>
  from === null || to === null ? null : Math.round((to - from) / 1000);

export function reviewRoutes(deps: Pick<RouteDeps, "queries" | "policy" | "clock" | "vault">): AnyRoute[] {
  const { policy, clock, vault } = deps;
  const reviews = deps.queries.reviews;
  return [
    defineRoute({
      method: "GET",
      path: "/reviews",
      operationId: "listReviews",
      scope: "review",
      summary:
        "The review queue: ended grants not yet reviewed, oldest deadline first, and whether you may review each",
      tag: "reviews",
      auth: true,
      query: ReviewQueueQuerySchema,
      status: 200,
      response: ReviewQueueSchema,
      problems: [],
      handler: async ({ ctx, query }) => {
        const now = clock.now();
        const queue = await reviews.queue(ctx.actor, { overdue: query.overdue, mine: query.mine });
        return {
          body: {
            vaultOpenings: queue.openings.map((o) => ({
              opening: vaultOpeningView(o.opening, o.integrity),
              overdue: o.overdue,
              canReview: o.why === null,
              why: o.why,
            })),
            reviews: queue.reviews.map((r) => ({
              grant: grantView(r.grant, policy, now),
              dueAt: iso(r.grant.reviewDueAt),
              overdue: r.overdue,
              emergency: r.emergency,
              canReview: r.why === null,
              why: r.why,
            })),
          },
        };
      },
    }),
    ...(vault
      ? [
          defineRoute({
            method: "POST",
            path: "/vault-openings/:id/review",
            operationId: "reviewVaultOpening",
            scope: "review",
            summary:
              "Record the review of a tier-2 envelope opening (by the vault's reviewers, never by a custodian who opened it); `unjustified` pages security",
            tag: "reviews",
            auth: true,
            params: VaultOpeningIdParamsSchema,
            body: ReviewBodySchema,
            status: 200,
            response: VaultOpeningViewSchema,
            problems: ["ERR_NOT_FOUND", "ERR_FORBIDDEN", "ERR_CONFLICT"],
            handler: async ({ ctx, params, body }) => {
              const opening = await vault.review(ctx, params.id, {
                outcome: body.outcome,
                notes: body.notes,
                followUps: followUpsFrom(body.followUps),
              });
              return { body: vaultOpeningView(opening, await reviews.checkOpening(opening)) };
            },
          }),
        ]
      : []),
    defineRoute({
      method: "GET",
      path: "/grants/:id/story",
      operationId: "getGrantStory",
      scope: "review",
      summary:
        "Everything a reviewer needs: the grant, its events with their facts, alarms and delivery, recording summary, swept side permissions, timing",
      tag: "reviews",
      auth: true,
      params: GrantIdParamsSchema,
      status: 200,
      response: GrantStorySchema,
      problems: ["ERR_NOT_FOUND", "ERR_AUDIT_CHAIN_BROKEN"],
      handler: async ({ ctx, params }) => {
        const story = await reviews.story(ctx.actor, params.id);
        return { body: { ...storyView(story, policy, clock.now()), canReview: story.why === null, why: story.why } };
      },
    }),
  ];
}

function storyView(story: GrantStory, policy: Policy, now: number) {
  const { grant, difference: d } = story;
  const timeline = story.timeline.map(({ record: e, integrity }) => ({
    seq: e.seq,
    at: new Date(e.at).toISOString(),
    type: e.type,
    actor: e.actor,
    data: { ...e.data },
    integrity: integrityView(integrity),
  }));
  const { statements } = story;
  return {
    grant: grantView(grant, policy, now),
    grantIntegrity:
      d === null
        ? null
        : {
            column: `grants.${d.column}`,
            seq: d.event.seq,
            message: `the grant's ${d.column} says ${JSON.stringify(d.stored)} but event ${d.event.seq} (${d.event.type}) says ${JSON.stringify(d.chain)}: the row was edited; the timeline is the evidence`,
          },
    timeline,
    alarms: story.alarms.map((a) => alarmView(a, story.alarmChecks.get(a.id))),
    recording: {
      gatewaySessions: new Set(statements.map((s) => s.sessionId)).size,
      statements: statements.length,
      blocked: statements
        .filter((s) => s.kind === "blocked")
        .map((s) => ({ at: new Date(s.startedAt).toISOString(), statement: s.text, error: s.error })),
      errors: statements.filter((s) => s.error !== null && s.kind !== "blocked").length,
      terminalSessions: story.terminalSessions,
      sessions: story.recordings.map((r) => ({ ...r, integrity: rowIntegrityView(r.integrity) })),
    },
    sweptSidePermissions: timeline.filter((e) => e.type === "target.side_permission_swept").map((e) => e.data),
    timing: {
      timeToApprovalS: seconds(grant.requestedAt, grant.approvedAt),
      timeToAccessS: seconds(grant.requestedAt, grant.activatedAt),
      heldS: seconds(grant.activatedAt, grant.endedAt),
      reviewDueAt: iso(grant.reviewDueAt),
    },
  };
}
