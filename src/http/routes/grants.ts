/**
 * Grants: request one, list them (a page at a time), read one, and every action on one —
 * approve, deny, cancel, activate, revoke, release, review, extend, acknowledge, resolve. Each
 * view says what the caller may do with the grant now (`can`, grant-gates.ts).
 */
import type { z } from "zod";
import {
  API_PREFIX,
  CreateGrantBodySchema,
  GRANT_ACTIONS,
  type GrantAction,
  GrantIdParamsSchema,
  GrantListSchema,
  GrantViewSchema,
  ListGrantsQuerySchema,
  type ProblemCode,
} from "../../contract/api.js";
import { parseDuration } from "../../core/duration.js";
import type { Grant } from "../../core/model.js";
import type { RequestContext } from "../../core/request-context.js";
import type { GrantService } from "../../service/grant-service.js";
import { actionScope, canApprove, grantCan, PERMISSION_GATES } from "../grant-gates.js";
import { type AnyRoute, defineRoute } from "../route-table.js";
import { alarmView, extensionsOf, followUpsFrom, grantView } from "../views.js";
import type { RouteDeps } from "./route-deps.js";

/** The problems each grant action can end in (beyond auth, validation and not-found). */
const ACTION_PROBLEMS: Readonly<Record<GrantAction, readonly ProblemCode[]>> = {
  approve: [
    "ERR_STEP_UP_REQUIRED",
    "ERR_SELF_APPROVAL",
    "ERR_NOT_ELIGIBLE_APPROVER",
    "ERR_DUPLICATE_APPROVAL",
    "ERR_INVALID_TRANSITION",
    "ERR_CONFLICT",
  ],
  deny: ["ERR_SELF_APPROVAL", "ERR_NOT_ELIGIBLE_APPROVER", "ERR_INVALID_TRANSITION", "ERR_CONFLICT"],
  cancel: ["ERR_FORBIDDEN", "ERR_INVALID_TRANSITION", "ERR_CONFLICT"],
  activate: ["ERR_FORBIDDEN", "ERR_STEP_UP_REQUIRED", "ERR_INVALID_TRANSITION", "ERR_CONFLICT", "ERR_CONNECTOR_FAILED"],
  revoke: ["ERR_FORBIDDEN", "ERR_INVALID_TRANSITION", "ERR_CONFLICT"],
  release: ["ERR_FORBIDDEN", "ERR_INVALID_TRANSITION", "ERR_CONFLICT"],
  review: ["ERR_FORBIDDEN", "ERR_INVALID_TRANSITION", "ERR_CONFLICT"],
  ack: ["ERR_FORBIDDEN", "ERR_INVALID_TRANSITION"],
  resolve: ["ERR_FORBIDDEN", "ERR_INVALID_TRANSITION", "ERR_CONFLICT"],
  extend: [
    "ERR_FORBIDDEN",
    "ERR_INVALID_TRANSITION",
    "ERR_CONFLICT",
    "ERR_DURATION_EXCEEDS_MAX",
    "ERR_CONNECTOR_FAILED",
  ],
};

const ACTION_SUMMARY: Readonly<Record<GrantAction, string>> = {
  approve: "Approve a requested grant; it activates once the approval rule is met (auto-activating roles)",
  deny: "Deny a requested grant",
  cancel: "The requester withdraws a grant that is not active yet",
  activate: "The requester activates an approved grant (roles with auto_activate: false, or a retry)",
  revoke: "End a grant early (approvers of the role and admins); access at the target is revoked",
  release: "The holder gives access back early",
  review: "Record the post-use review of an ended grant (never by its holder)",
  extend: "The holder (or an admin) extends an active grant; the expiry at the target moves first",
  ack: "Acknowledge an activation's alarm (approvers of the role, admins); stops its escalation",
  resolve:
    "Record what was done about what the end of a window could only contain or had to leave (containment drift); until then the grant's review cannot be `justified` (never by its holder or an approver)",
};

type ActionBody = {
  comment?: string | undefined;
  reason?: string | undefined;
  outcome?: "justified" | "justified_with_findings" | "unjustified" | undefined;
  notes?: string | undefined;
  note?: string | undefined;
  by?: string | undefined;
  followUps?: { action: string; owner: string; due?: string | undefined }[] | undefined;
};

function runAction(
  service: GrantService,
  action: GrantAction,
  ctx: RequestContext,
  id: string,
  body: ActionBody,
): Promise<Grant> {
  switch (action) {
    case "approve":
      return service.approve(ctx, id, body.comment ?? null);
    case "deny":
      return service.deny(ctx, id, body.reason ?? "");
    case "cancel":
      return service.cancel(ctx, id, body.reason ?? "");
    case "activate":
      return service.activate(ctx, id);
    case "revoke":
      return service.revoke(ctx, id, body.reason ?? "");
    case "release":
      return service.release(ctx, id);
    case "review":
      // The schema requires both; the fallbacks only satisfy the type of the shared body.
      return service.review(ctx, id, {
        outcome: body.outcome ?? "unjustified",
        notes: body.notes ?? "",
        followUps: followUpsFrom(body.followUps),
      });
    case "ack":
      return service.acknowledge(ctx, id, body.comment ?? null);
    case "resolve":
      return service.resolveContainment(ctx, id, body.note ?? "");
    case "extend":
      return service.extend(ctx, id, parseDuration(body.by ?? ""), body.reason ?? "");
  }
}

export function grantRoutes(deps: Pick<RouteDeps, "service" | "queries" | "policy" | "clock">): AnyRoute[] {
  const { service, queries, policy, clock } = deps;
  const view = (grant: Grant) => grantView(grant, policy, clock.now());
  const can = (grant: Grant, ctx: RequestContext) => grantCan(policy, grant, ctx, clock.now());
  const approvable = (grant: Grant, actor: string) => canApprove(policy, grant, actor, clock.now());

  const grantActions = (Object.keys(GRANT_ACTIONS) as GrantAction[]).map((action) =>
    defineRoute({
      method: "POST",
      path: `/grants/:id/${action}`,
      operationId: `${action}Grant`,
      fallback: PERMISSION_GATES[action].fallback === true,
      scope: actionScope(action),
      summary: ACTION_SUMMARY[action],
      tag: "grants",
      auth: true,
      params: GrantIdParamsSchema,
      body: GRANT_ACTIONS[action] as z.ZodType<ActionBody>,
      status: 200,
      response: GrantViewSchema,
      problems: ["ERR_NOT_FOUND", ...ACTION_PROBLEMS[action]],
      handler: async ({ ctx, params, body }) => {
        const g = await runAction(service, action, ctx, params.id, body);
        return { body: { ...view(g), can: can(g, ctx) } };
      },
    }),
  );

  return [
    defineRoute({
      method: "POST",
      path: "/grants",
      operationId: "requestGrant",
      fallback: true,
      summary: "Request a role (or, with emergency: true, self-activate it)",
      tag: "grants",
      auth: true,
      body: CreateGrantBodySchema,
      status: 201,
      response: GrantViewSchema,
      problems: [
        "ERR_NOT_FOUND",
        "ERR_NOT_ELIGIBLE_REQUESTER",
        "ERR_EMERGENCY_NOT_ALLOWED",
        "ERR_STEP_UP_REQUIRED",
        "ERR_OPEN_GRANT_EXISTS",
        "ERR_DURATION_EXCEEDS_MAX",
        "ERR_JUSTIFICATION_REQUIRED",
        "ERR_INCIDENT_REQUIRED",
        "ERR_CONFLICT",
      ],
      handler: async ({ ctx, body }) => {
        const durationS = body.duration === undefined ? undefined : parseDuration(body.duration);
        const grant = await service.request(ctx, {
          roleId: body.role,
          justification: body.justification,
          incident: body.incident,
          durationS,
          emergency: body.emergency,
        });
        return { body: view(grant), headers: { location: `${API_PREFIX}/grants/${encodeURIComponent(grant.id)}` } };
      },
    }),
    defineRoute({
      method: "GET",
      path: "/grants",
      operationId: "listGrants",
      fallback: true,
      summary: "Grants, newest first, filtered by state, requester, role or `mine`",
      tag: "grants",
      auth: true,
      query: ListGrantsQuerySchema,
      status: 200,
      response: GrantListSchema,
      problems: ["ERR_VALIDATION", "ERR_NOT_FOUND"],
      handler: async ({ ctx, query }) => {
        const page = await queries.grants.page(ctx.actor, {
          ...query,
          mine: query.mine === "true" || query.mine === "1",
        });
        const views = page.grants.map(({ grant: g, unalarmed }) =>
          g.state === "active"
            ? { ...view(g), can: can(g, ctx), unalarmed: unalarmed ?? false }
            : g.state === "requested"
              ? { ...view(g), can: can(g, ctx), canApprove: approvable(g, ctx.actor) }
              : { ...view(g), can: can(g, ctx) },
        );
        return { body: { grants: views, next: page.next } };
      },
    }),
    defineRoute({
      method: "GET",
      path: "/grants/:id",
      operationId: "getGrant",
      fallback: true,
      summary: "One grant: approvals, access state at the target, review",
      tag: "grants",
      auth: true,
      params: GrantIdParamsSchema,
      status: 200,
      response: GrantViewSchema,
      problems: ["ERR_NOT_FOUND"],
      handler: async ({ ctx, params }) => {
        const { grant, alarms, checks, events, unalarmed } = await queries.grants.detail(params.id);
        return {
          body: {
            ...view(grant),
            alarms: alarms.map((a) => alarmView(a, checks.get(a.id))),
            extensions: extensionsOf(events),
            // Whether security was told, as the chain records it where it does.
            unalarmed,
            can: can(grant, ctx),
            ...(grant.state === "requested" ? { canApprove: approvable(grant, ctx.actor) } : {}),
          },
        };
      },
    }),
    ...grantActions,
  ];
}
