/**
 * Reviewed every time: the review queue (every ended grant not yet reviewed, oldest deadline
 * first, with whether the caller may review it) and a grant's whole story for its reviewer —
 * justification, incident, approvals, every audit event with its facts, alarms and their
 * delivery, what the gateway recorded (counts and blocked attempts), side permissions swept, and
 * timing. Recording the verdict is `POST /grants/{id}/review`.
 */

import { sha256 } from "../adapters/node-crypto.js";
import { evidenceOf } from "../audit/audit-evidence.js";
import { alarmIntegrity, terminalSessionIntegrity, vaultOpeningIntegrity } from "../audit/evidence-rows.js";
import { grantDifference } from "../audit/grant-verify.js";
import {
  GrantIdParamsSchema,
  GrantStorySchema,
  ReviewBodySchema,
  ReviewQueueQuerySchema,
  ReviewQueueSchema,
  VaultOpeningIdParamsSchema,
  VaultOpeningViewSchema,
} from "../contract/api.js";
import type { AuditEventType, LinkedAuditEvent } from "../core/audit-event.js";
import { reviewBlocker, reviewRefusal } from "../core/authorization.js";
import { BreakglassError } from "../core/errors.js";
import { awaitsReview } from "../core/grant-machine.js";
import type { Grant, Policy } from "../core/model.js";
import type { Clock } from "../core/ports/runtime.js";
import type { Store } from "../core/ports/store.js";
import { RECORDING_SEALS, statementsDigest, terminalDigest } from "../core/recording-digest.js";
import type { StatementRecord, TerminalSession } from "../core/records.js";
import type { VaultService } from "../service/vault-service.js";
import { type AnyRoute, defineRoute } from "./route-table.js";
import { alarmView, followUpsFrom, grantView, integrityView, rowIntegrityView, vaultOpeningView } from "./views.js";

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());
const seconds = (from: number | null, to: number | null): number | null =>
  from === null || to === null ? null : Math.round((to - from) / 1000);

export function buildReviewRoutes(deps: {
  store: Store;
  policy: Policy;
  clock: Clock;
  vault?: VaultService | undefined;
}): AnyRoute[] {
  const { store, policy, clock, vault } = deps;
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
        // A drill's grant is a rehearsal, not a use: its run is its record, and it is never queued.
        const ended = (await store.listGrants({ states: ["ended"], limit: 1000 })).filter(awaitsReview);
        const rows = ended
          .map((g) => {
            const why = reviewRefusal(policy, g, ctx.actor);
            return {
              grant: grantView(g, policy, now),
              dueAt: iso(g.reviewDueAt),
              overdue: g.reviewDueAt !== null && g.reviewDueAt < now,
              emergency: g.emergency || g.viaFallback === true,
              canReview: why === null,
              why,
              due: g.reviewDueAt ?? Number.MAX_SAFE_INTEGER,
            };
          })
          .filter((r) => (!query.overdue || r.overdue) && (!query.mine || r.canReview))
          .sort((a, b) => a.due - b.due);
        const queued = (await vault?.queue(ctx.actor)) ?? [];
        const integrity = await vaultOpeningIntegrity(
          store,
          queued.map((o) => o.opening),
        );
        const openings = queued
          .map((o) => ({
            opening: vaultOpeningView(o.opening, integrity.get(o.opening.id)),
            overdue: o.overdue,
            canReview: o.why === null,
            why: o.why,
          }))
          .filter((r) => (!query.overdue || r.overdue) && (!query.mine || r.canReview));
        return { body: { vaultOpenings: openings, reviews: rows.map(({ due: _due, ...r }) => r) } };
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
              return {
                body: vaultOpeningView(opening, (await vaultOpeningIntegrity(store, [opening])).get(opening.id)),
              };
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
        const grant = await store.getGrant(params.id);
        if (!grant) throw new BreakglassError("ERR_NOT_FOUND", `no grant ${params.id}`, { grantId: params.id });
        const why = reviewBlocker(policy, grant, ctx.actor);
        return { body: { ...(await story(store, policy, grant, clock.now())), canReview: why === null, why } };
      },
    }),
  ];
}

/** Each recording of the grant against the last digest the chain sealed for it. */
async function recordingSeals(
  store: Store,
  timeline: readonly { seq: number; type: string; data: Record<string, unknown> }[],
  terminals: readonly TerminalSession[],
  statements: readonly StatementRecord[],
  grantEvents: readonly LinkedAuditEvent[],
) {
  const seals = new Map<string, { seq: number; digest: string }>();
  for (const e of timeline) {
    const { session, digest } = e.data;
    if (RECORDING_SEALS.has(e.type as AuditEventType) && typeof session === "string" && typeof digest === "string") {
      seals.set(session, { seq: e.seq, digest });
    }
  }
  const integrity = terminalSessionIntegrity(terminals, grantEvents);
  const bySession = new Map<string, StatementRecord[]>();
  for (const s of statements) bySession.set(s.sessionId, [...(bySession.get(s.sessionId) ?? []), s]);
  const row = (kind: "terminal" | "gateway", session: string, entries: number, digest: string) => {
    const seal = seals.get(session);
    return {
      kind,
      session,
      entries,
      sealedBy: seal?.seq ?? null,
      digest: seal?.digest ?? null,
      matches: seal === undefined ? null : seal.digest === digest,
      integrity: rowIntegrityView(integrity.get(session)),
    };
  };
  return [
    ...(await Promise.all(
      terminals.map(async (t) => {
        const events = await store.readTerminalEvents(t.id);
        return row("terminal", t.id, events.length, terminalDigest(sha256, events));
      }),
    )),
    ...[...bySession].map(([session, list]) => row("gateway", session, list.length, statementsDigest(sha256, list))),
  ];
}

async function story(store: Store, policy: Policy, grant: Grant, now: number) {
  const [events, alarms, statements, terminals] = await Promise.all([
    store.readGrantAudit([grant.id]),
    store.listAlarms(grant.id),
    store.listStatements(grant.id),
    store.listTerminalSessions(grant.id),
  ]);
  // Every value from the hashed payload; a row that does not chain is refused, not shown.
  const timeline = evidenceOf(events).map(({ record: e, integrity }) => ({
    seq: e.seq,
    at: new Date(e.at).toISOString(),
    type: e.type,
    actor: e.actor,
    data: { ...e.data },
    integrity: integrityView(integrity),
  }));
  // The row against its own events: an edited fact is named here, not only by `audit verify`.
  const d = grantDifference(grant, events);
  const alarmChecks = await alarmIntegrity(store, alarms, events);
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
    alarms: alarms.map((a) => alarmView(a, alarmChecks.get(a.id))),
    recording: {
      gatewaySessions: new Set(statements.map((s) => s.sessionId)).size,
      statements: statements.length,
      blocked: statements
        .filter((s) => s.kind === "blocked")
        .map((s) => ({ at: new Date(s.startedAt).toISOString(), statement: s.text, error: s.error })),
      errors: statements.filter((s) => s.error !== null && s.kind !== "blocked").length,
      terminalSessions: terminals.length,
      sessions: await recordingSeals(store, timeline, terminals, statements, events),
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
