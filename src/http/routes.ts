/**
 * The API's routes, as one table (see route-table.ts). Handlers translate between the contract
 * (src/contract/api.ts) and the services; they hold no rules of their own.
 */
import { z } from "zod";
import type { ChannelHealth } from "../alarms/alarm-channel.js";
import type { AppConfig } from "../config/app-config.js";
import { CREDENTIAL_CONNECTORS } from "../connectors/registry.js";
import {
  API_PREFIX,
  AuditEventListSchema,
  AuditEventsQuerySchema,
  AuditVerdictSchema,
  ChannelHealthListSchema,
  CheckpointListSchema,
  CreatedTokenViewSchema,
  CreateGrantBodySchema,
  CreateTokenBodySchema,
  CredentialViewSchema,
  DetectorReportSchema,
  EmptyBodySchema,
  GRANT_ACTIONS,
  type GrantAction,
  GrantIdParamsSchema,
  GrantListSchema,
  GrantViewSchema,
  HealthSchema,
  IncidentParamsSchema,
  IncidentViewSchema,
  ListGrantsQuerySchema,
  MeSchema,
  type ProblemCode,
  ReadySchema,
  ReconcileReportSchema,
  RecordingViewSchema,
  RolesResponseSchema,
  TargetParamsSchema,
  TerminalAppendViewSchema,
  TerminalEndBodySchema,
  TerminalEventsBodySchema,
  TerminalParamsSchema,
  TerminalRecordingViewSchema,
  TerminalSessionViewSchema,
  TerminalStartBodySchema,
  TerminalStartViewSchema,
  TokenListSchema,
  TokenParamsSchema,
  TokenViewSchema,
} from "../contract/api.js";
import {
  isAdmin,
  mayManageTokensOf,
  requireAdmin as requireAdminOf,
  type SignInGate,
  signInRefusal,
} from "../core/authorization.js";
import { parseDuration } from "../core/duration.js";
import { BreakglassError } from "../core/errors.js";
import { approveGrant } from "../core/grant-machine.js";
import { GRANT_PERMISSIONS, type GrantPermission, grantPermissions, passes } from "../core/grant-permissions.js";
import type { Grant, Policy } from "../core/model.js";
import type { Clock } from "../core/ports/runtime.js";
import type { TerminalSession, TokenRecord } from "../core/records.js";
import type { RequestContext } from "../core/request-context.js";
import type { ApiQueries } from "../service/api-queries.js";
import type { DrillService } from "../service/drill-service.js";
import type { CheckedTerminalSession } from "../service/grant-queries.js";
import type { GrantService } from "../service/grant-service.js";
import type { TerminalService } from "../service/terminal-service.js";
import type { TokenService } from "../service/token-service.js";
import type { VaultService } from "../service/vault-service.js";
import type { DetectorWorker } from "../workers/detector-worker.js";
import type { ReconcileWorker } from "../workers/reconcile-worker.js";
import { buildDrillRoutes } from "./drill-routes.js";
import { buildReviewRoutes } from "./review-routes.js";
import { type AnyRoute, defineRoute, type RouteScope } from "./route-table.js";
import {
  alarmView,
  auditEventView,
  checkpointView,
  domainViews,
  extensionsOf,
  followUpsFrom,
  grantView,
  integrityView,
  meView,
  terminalSessionView,
  verdictView,
} from "./views.js";

export interface RouteDeps {
  readonly config: AppConfig;
  readonly service: GrantService;
  readonly queries: ApiQueries;
  readonly clock: Clock;
  readonly reconcile?: ReconcileWorker | undefined;
  readonly detector?: DetectorWorker | undefined;
  readonly terminal?: TerminalService | undefined;
  /** The OpenAPI document of the whole table (built by the server, which holds the table). */
  readonly openapi: () => Record<string, unknown>;
  /** The live policy (configured + IdP-derived membership). */
  readonly policy: Policy;
  readonly tokens: TokenService;
  readonly drills?: DrillService | undefined;
  /** Tier-2 openings' reviews (`/vault-openings`). */
  readonly vault?: VaultService | undefined;
  /** Whether this broker's background work runs: `starting`, `running` or `stopping`. */
  readonly readiness?: (() => "starting" | "running" | "stopping") | undefined;
  /** The alarm channels' health (the alarm worker's view). */
  readonly alarmChannels?: (() => readonly ChannelHealth[]) | undefined;
}

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

/** The token scope each grant action needs. */
const actionScope = (action: GrantAction): RouteScope =>
  action === "review" || action === "resolve"
    ? "review"
    : action === "approve" || action === "deny" || action === "ack" || action === "revoke"
      ? "approve"
      : "request";

/** The gates of the routes behind each of a grant view's permissions (`can`). */
const PERMISSION_GATES: Readonly<Record<GrantPermission, SignInGate>> = {
  ...(Object.fromEntries(
    (Object.keys(GRANT_ACTIONS) as GrantAction[]).map((a) => [
      a,
      { method: "POST", scope: actionScope(a), fallback: a === "release" || a === "activate" },
    ]),
  ) as Record<GrantAction, SignInGate>),
  credential: { method: "GET", scope: "request", fallback: true },
  recording: { method: "GET", scope: "review", fallback: false },
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

export function buildRoutes(deps: RouteDeps): {
  routes: AnyRoute[];
  requireAdmin: (ctx: RequestContext, what: string) => void;
} {
  const { service, queries, clock } = deps;
  const terminal = (): TerminalService => {
    if (!deps.terminal) throw new BreakglassError("ERR_INTERNAL", "terminal recording is not wired in this process");
    return deps.terminal;
  };
  /** Terminal sessions as views, each checked against its grant's grant.terminal_started/ended. */
  const terminalViews = (sessions: readonly CheckedTerminalSession[]) =>
    sessions.map((t) => terminalSessionView(t.session, t.integrity));
  const terminalViewOf = async (t: TerminalSession) =>
    terminalViews(await queries.grants.checkTerminalSessions([t]))[0] as ReturnType<typeof terminalSessionView>;
  const { policy } = deps;
  /** The audit log holds every justification, source address and target output: admins only. */
  const requireAdmin = (ctx: RequestContext, what = "reading the audit log"): void =>
    requireAdminOf(policy, ctx.actor, what);
  const view = (grant: Grant) => grantView(grant, policy, clock.now());
  /** Whether `actor`'s approval would be accepted now: the grant machine's own checks, dry-run. */
  const canApprove = (grant: Grant, actor: string): boolean =>
    passes(() => approveGrant(policy, grant, actor, null, clock.now()));
  /**
   * What the caller may do with the grant now: the grant machine's dry run, through the gates of
   * the caller's sign-in; a credential only where the target hands one out.
   */
  const can = (grant: Grant, ctx: RequestContext): Record<GrantPermission, boolean> => {
    const allowed = grantPermissions(policy, grant, ctx.actor, clock.now());
    const out = {} as Record<GrantPermission, boolean>;
    for (const p of GRANT_PERMISSIONS) {
      out[p] = allowed[p] && (ctx.auth === undefined || signInRefusal(PERMISSION_GATES[p], ctx.auth) === null);
    }
    const connector = policy.targets.get(grant.target)?.connector;
    out.credential &&= connector !== undefined && CREDENTIAL_CONNECTORS.has(connector);
    return out;
  };

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

  const routes: AnyRoute[] = [
    defineRoute({
      method: "GET",
      path: "/grants/:id/credential",
      operationId: "getGrantCredential",
      scope: "request",
      fallback: true, // as PERMISSION_GATES.credential
      summary: "The holder's credential for an active grant (holder only; every read is audited)",
      tag: "grants",
      auth: true,
      params: GrantIdParamsSchema,
      status: 200,
      response: CredentialViewSchema,
      problems: ["ERR_NOT_FOUND", "ERR_FORBIDDEN", "ERR_INVALID_TRANSITION", "ERR_AUDIT_WRITE_FAILED"],
      handler: async ({ ctx, params }) => {
        const c = await service.credential(ctx, params.id);
        return {
          body: { grantId: params.id, credential: c.credential.reveal(), endsAt: new Date(c.endsAt).toISOString() },
        };
      },
    }),
    defineRoute({
      method: "GET",
      path: "/grants/:id/recording",
      operationId: "getGrantRecording",
      scope: "review", // as PERMISSION_GATES.recording
      summary:
        "Every statement the grant's gateway sessions ran (holder, approvers of the role, admins; every read is audited)",
      tag: "grants",
      auth: true,
      params: GrantIdParamsSchema,
      status: 200,
      response: RecordingViewSchema,
      problems: ["ERR_NOT_FOUND", "ERR_FORBIDDEN", "ERR_AUDIT_WRITE_FAILED"],
      handler: async ({ ctx, params }) => {
        const statements = await service.recording(ctx, params.id);
        const terminals = await queries.grants.terminalSessions(params.id);
        const iso = (t: number | null) => (t === null ? null : new Date(t).toISOString());
        return {
          body: {
            grantId: params.id,
            statements: statements.map((s) => ({
              session: s.sessionId,
              seq: s.seq,
              startedAt: new Date(s.startedAt).toISOString(),
              endedAt: iso(s.endedAt),
              kind: s.kind,
              text: s.text,
              params: s.params === null ? null : [...s.params],
              rows: s.rows,
              tag: s.tag,
              error: s.error,
              bytes: s.bytes,
            })),
            terminalSessions: terminalViews(terminals),
          },
        };
      },
    }),
    defineRoute({
      method: "POST",
      path: "/grants/:id/terminal",
      operationId: "startTerminal",
      fallback: true,
      summary: "Start a recorded terminal session on an active grant (the holder's `breakglass shell`)",
      tag: "grants",
      auth: true,
      params: GrantIdParamsSchema,
      body: TerminalStartBodySchema,
      status: 201,
      response: TerminalStartViewSchema,
      problems: ["ERR_NOT_FOUND", "ERR_FORBIDDEN", "ERR_INVALID_TRANSITION", "ERR_AUDIT_WRITE_FAILED"],
      handler: async ({ ctx, params, body }) => {
        const r = await terminal().start(ctx, params.id, body);
        return { body: { session: await terminalViewOf(r.session), endsAt: new Date(r.endsAt).toISOString() } };
      },
    }),
    defineRoute({
      method: "POST",
      path: "/terminal/:session/events",
      operationId: "appendTerminalEvents",
      fallback: true,
      summary: "Append a terminal session's events; the answer says whether the grant is still active",
      tag: "grants",
      auth: true,
      params: TerminalParamsSchema,
      body: TerminalEventsBodySchema,
      bodyLimit: 8 * 1024 * 1024,
      status: 200,
      response: TerminalAppendViewSchema,
      problems: ["ERR_NOT_FOUND", "ERR_FORBIDDEN", "ERR_AUDIT_WRITE_FAILED"],
      handler: async ({ ctx, params, body }) => {
        const r = await terminal().append(ctx, params.session, body.events);
        return { body: { active: r.active, endsAt: r.endsAt === null ? null : new Date(r.endsAt).toISOString() } };
      },
    }),
    defineRoute({
      method: "POST",
      path: "/terminal/:session/end",
      operationId: "endTerminal",
      fallback: true,
      summary: "End a terminal session (the command exited, or the holder closed it)",
      tag: "grants",
      auth: true,
      params: TerminalParamsSchema,
      body: TerminalEndBodySchema,
      status: 200,
      response: TerminalSessionViewSchema,
      problems: ["ERR_NOT_FOUND", "ERR_FORBIDDEN", "ERR_AUDIT_WRITE_FAILED"],
      handler: async ({ ctx, params, body }) => ({
        body: await terminalViewOf(await terminal().end(ctx, params.session, body.reason)),
      }),
    }),
    defineRoute({
      method: "GET",
      path: "/terminal/:session",
      operationId: "getTerminal",
      scope: "review",
      summary: "A recorded terminal session and its asciicast events (holder, approvers of the role, admins; audited)",
      tag: "grants",
      auth: true,
      params: TerminalParamsSchema,
      status: 200,
      response: TerminalRecordingViewSchema,
      problems: ["ERR_NOT_FOUND", "ERR_FORBIDDEN", "ERR_AUDIT_WRITE_FAILED"],
      handler: async ({ ctx, params }) => {
        const r = await terminal().read(ctx, params.session);
        return {
          body: {
            session: await terminalViewOf(r.session),
            events: r.events.map((e) => [e.t, e.kind, e.data] as [number, "o" | "i", string]),
          },
        };
      },
    }),
    defineRoute({
      method: "GET",
      path: "/health",
      operationId: "health",
      summary: "Liveness and a store ping; no authentication, outside the request limits",
      tag: "meta",
      auth: false,
      unlimited: true,
      status: 200,
      response: HealthSchema,
      problems: ["ERR_STORAGE"],
      handler: async () => {
        await queries.broker.ping();
        return { body: { status: "ok" as const, store: "ok" as const } };
      },
    }),
    defineRoute({
      method: "GET",
      path: "/ready",
      operationId: "ready",
      summary:
        "Readiness for a load balancer: the store answers and this replica's background work runs (503 ERR_NOT_READY while starting or stopping); no authentication, outside the request limits",
      tag: "meta",
      auth: false,
      unlimited: true,
      status: 200,
      response: ReadySchema,
      problems: ["ERR_NOT_READY", "ERR_STORAGE"],
      handler: async () => {
        const state = deps.readiness?.() ?? "running";
        if (state !== "running") {
          throw new BreakglassError("ERR_NOT_READY", `this broker is ${state}: send requests to another replica`, {
            state,
          });
        }
        await queries.broker.ping(); // the store answers (ERR_STORAGE otherwise)
        return { body: { status: "ready" as const, store: "ok" as const, workers: "running" as const } };
      },
    }),
    defineRoute({
      method: "GET",
      path: "/alarms/channels",
      operationId: "alarmChannels",
      scope: "read",
      summary: "Is every alarm channel delivering? Failing after several failed deliveries in a row",
      tag: "alarms",
      auth: true,
      status: 200,
      response: ChannelHealthListSchema,
      problems: [],
      handler: async () => ({ body: { channels: [...(deps.alarmChannels?.() ?? [])] } }),
    }),
    defineRoute({
      method: "GET",
      path: "/openapi.json",
      operationId: "openapi",
      summary: "This API as an OpenAPI 3.1 document; no authentication",
      tag: "meta",
      auth: false,
      status: 200,
      response: z.record(z.string(), z.unknown()),
      problems: [],
      handler: async () => ({ body: deps.openapi() }),
    }),
    defineRoute({
      method: "GET",
      path: "/me",
      operationId: "me",
      fallback: true,
      summary: "The caller: user name and groups",
      tag: "meta",
      auth: true,
      status: 200,
      response: MeSchema,
      problems: [],
      handler: async ({ ctx }) => ({ body: meView(policy, ctx.actor) }),
    }),
    defineRoute({
      method: "GET",
      path: "/roles",
      operationId: "listRoles",
      fallback: true,
      summary: "Domains and their recovery roles: durations, approval rule, emergency, requesters",
      tag: "roles",
      auth: true,
      status: 200,
      response: RolesResponseSchema,
      problems: [],
      handler: async ({ ctx }) => ({ body: { domains: domainViews(policy, ctx.actor) } }),
    }),
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
              ? { ...view(g), can: can(g, ctx), canApprove: canApprove(g, ctx.actor) }
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
            ...(grant.state === "requested" ? { canApprove: canApprove(grant, ctx.actor) } : {}),
          },
        };
      },
    }),
    ...grantActions,
    defineRoute({
      method: "GET",
      path: "/incidents/:id",
      operationId: "getIncident",
      summary: "An incident's record: its grants, their timeline and every alarm with its delivery",
      tag: "grants",
      auth: true,
      params: IncidentParamsSchema,
      status: 200,
      response: IncidentViewSchema,
      problems: ["ERR_NOT_FOUND", "ERR_AUDIT_CHAIN_BROKEN"],
      handler: async ({ params }) => {
        const { grants, timeline, alarms, checks } = await queries.grants.incident(params.id);
        return {
          body: {
            incident: params.id,
            grants: grants.map(view),
            timeline: timeline.map(({ record: e, integrity }) => ({
              seq: e.seq,
              at: new Date(e.at).toISOString(),
              type: e.type,
              actor: e.actor,
              grantId: e.grantId,
              integrity: integrityView(integrity),
            })),
            alarms: alarms.map((a) => ({ ...alarmView(a, checks.get(a.id)), grantId: a.grantId })),
          },
        };
      },
    }),
    defineRoute({
      method: "GET",
      path: "/audit/events",
      operationId: "listAuditEvents",
      scope: "admin",
      summary: "Audit events in sequence order, a page at a time",
      tag: "audit",
      auth: true,
      query: AuditEventsQuerySchema,
      status: 200,
      response: AuditEventListSchema,
      problems: ["ERR_FORBIDDEN", "ERR_STORAGE"],
      handler: async ({ query, ctx }) => {
        const page = await queries.audit.events(ctx.actor, query);
        return { body: { events: page.events.map(auditEventView), next: page.next } };
      },
    }),
    defineRoute({
      method: "GET",
      path: "/audit/checkpoints",
      operationId: "listCheckpoints",
      scope: "admin",
      summary: "Signed checkpoints of the audit chain, and the broker's signing key",
      tag: "audit",
      auth: true,
      status: 200,
      response: CheckpointListSchema,
      problems: ["ERR_FORBIDDEN", "ERR_STORAGE"],
      handler: async ({ ctx }) => {
        const { checkpoints, signingKey } = await queries.audit.checkpoints(ctx.actor);
        return { body: { checkpoints: checkpoints.map(checkpointView), signingKey } };
      },
    }),
    defineRoute({
      method: "GET",
      path: "/audit/verify",
      operationId: "verifyAudit",
      scope: "admin",
      summary: "Verify the whole audit chain and its checkpoints against the broker's public key",
      description:
        "A failed verification is a 200 with `ok: false`: the verdict is the answer. For an independent check, export the log and verify it offline with `breakglass audit verify --file`.",
      tag: "audit",
      auth: true,
      status: 200,
      response: AuditVerdictSchema,
      problems: ["ERR_FORBIDDEN", "ERR_STORAGE"],
      handler: async ({ ctx }) => {
        const { verdict, summary } = await queries.audit.verify(ctx.actor);
        return { body: verdictView(verdict, summary) };
      },
    }),
    defineRoute({
      method: "POST",
      path: "/reconcile",
      operationId: "reconcile",
      scope: "admin",
      summary: "Compare every target with the broker's records now (admins); leftover access is removed",
      tag: "audit",
      auth: true,
      body: EmptyBodySchema,
      status: 200,
      response: ReconcileReportSchema,
      problems: ["ERR_FORBIDDEN", "ERR_STORAGE", "ERR_AUDIT_WRITE_FAILED"],
      handler: async ({ ctx }) => {
        requireAdmin(ctx, "reconciliation");
        if (!deps.reconcile) throw new BreakglassError("ERR_INTERNAL", "reconciliation is not running in this process");
        const r = await deps.reconcile.runOnce();
        return { body: { ...r, fixed: [...r.fixed], reported: [...r.reported], errors: [...r.errors] } };
      },
    }),
    defineRoute({
      method: "POST",
      path: "/targets/:target/cloudtrail",
      operationId: "pushCloudTrail",
      summary: "CloudTrail events for an aws target's use detection (EventBridge API destination)",
      description:
        'Authenticated by the target\'s `cloudtrail.webhook_key` in the `x-breakglass-key` header, not by an API token. The body is one EventBridge event (`detail` = the CloudTrail record), an array of them, or a CloudTrail file (`{"Records": [...]}`). Every use of a watched identity that no grant explains is recorded (and alarmed) before the answer, so a retry after an error loses nothing.',
      tag: "audit",
      auth: false,
      params: TargetParamsSchema,
      body: z.unknown(),
      bodyLimit: 1024 * 1024,
      status: 200,
      response: DetectorReportSchema,
      problems: ["ERR_UNAUTHENTICATED", "ERR_STORAGE", "ERR_AUDIT_WRITE_FAILED"],
      handler: async ({ params, body, headers }) => {
        const key = headers["x-breakglass-key"];
        if (typeof key !== "string" || key === "") {
          throw new BreakglassError(
            "ERR_UNAUTHENTICATED",
            "send the target's cloudtrail.webhook_key as `x-breakglass-key`",
          );
        }
        if (!deps.detector) throw new BreakglassError("ERR_INTERNAL", "use detection is not running in this process");
        return { body: await deps.detector.ingest(params.target, body, key) };
      },
    }),
    ...tokenRoutes(deps.tokens, requireAdmin, policy),
    ...buildReviewRoutes({ reviews: queries.reviews, policy, clock, vault: deps.vault }),
    ...(deps.drills ? buildDrillRoutes({ drills: deps.drills, queries: queries.drills, requireAdmin }) : []),
  ];
  return { routes, requireAdmin };
}

function tokenView(t: TokenRecord): z.input<typeof TokenViewSchema> {
  const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());
  return {
    id: t.id,
    user: t.user,
    description: t.description,
    scopes: [...t.scopes],
    createdAt: new Date(t.createdAt).toISOString(),
    expiresAt: iso(t.expiresAt),
    revokedAt: iso(t.revokedAt),
  };
}

/** Service tokens: made by people (not by other tokens), shown once, listed, revocable. */
function tokenRoutes(
  tokens: TokenService,
  requireAdmin: (ctx: RequestContext, what: string) => void,
  policy: Policy,
): AnyRoute[] {
  return [
    defineRoute({
      method: "POST",
      path: "/tokens",
      operationId: "createToken",
      summary: "Create a service token with scopes and an expiry (shown once); admins may create one for another user",
      tag: "tokens",
      auth: true,
      scope: "session",
      body: CreateTokenBodySchema,
      status: 201,
      response: CreatedTokenViewSchema,
      problems: ["ERR_FORBIDDEN"],
      handler: async ({ ctx, body }) => {
        if (!mayManageTokensOf(policy, ctx.actor, body.user ?? ctx.actor)) {
          requireAdmin(ctx, "creating a token for someone else");
        }
        const ttlS = parseDuration(body.ttl);
        if (ttlS > 365 * 86_400) {
          throw new BreakglassError("ERR_VALIDATION", "a token lives at most 365d; rotate it instead", {
            field: "ttl",
          });
        }
        const created = await tokens.create(ctx, {
          user: body.user ?? ctx.actor,
          description: body.description,
          ttlS,
          scopes: body.scopes,
        });
        return { body: { ...tokenView(created.record), token: created.token.reveal() } };
      },
    }),
    defineRoute({
      method: "GET",
      path: "/tokens",
      operationId: "listTokens",
      summary: "Your tokens (admins: everyone's), without their secrets",
      tag: "tokens",
      auth: true,
      status: 200,
      response: TokenListSchema,
      problems: [],
      handler: async ({ ctx }) => ({
        body: { tokens: (await tokens.list(isAdmin(policy, ctx.actor) ? null : ctx.actor)).map(tokenView) },
      }),
    }),
    defineRoute({
      method: "POST",
      path: "/tokens/:token/revoke",
      operationId: "revokeToken",
      summary: "Revoke a token now (your own; admins: any)",
      tag: "tokens",
      auth: true,
      params: TokenParamsSchema,
      body: EmptyBodySchema,
      status: 200,
      response: TokenViewSchema,
      problems: ["ERR_NOT_FOUND"],
      handler: async ({ ctx, params }) => ({
        body: tokenView(await tokens.revoke(ctx, params.token, isAdmin(policy, ctx.actor))),
      }),
    }),
  ];
}
