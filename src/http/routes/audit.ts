/**
 * The tamper-evident audit log (admins: it holds every justification, source address and target
 * output) — its events a page at a time, its signed checkpoints, a verification of the whole
 * chain — and what keeps the targets honest with it: reconciliation now, and CloudTrail events
 * for an aws target's use detection.
 */
import { z } from "zod";
import {
  AuditEventListSchema,
  AuditEventsQuerySchema,
  AuditVerdictSchema,
  CheckpointListSchema,
  DetectorReportSchema,
  EmptyBodySchema,
  ReconcileReportSchema,
  TargetParamsSchema,
} from "../../contract/api.js";
import { BreakglassError } from "../../core/errors.js";
import { type AnyRoute, defineRoute } from "../route-table.js";
import { auditEventView, checkpointView, verdictView } from "../views.js";
import type { RouteDeps } from "./route-deps.js";

export function auditRoutes(deps: Pick<RouteDeps, "queries" | "reconcile" | "detector">): AnyRoute[] {
  const { queries } = deps;
  return [
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
        if (!deps.reconcile) throw new BreakglassError("ERR_INTERNAL", "reconciliation is not running in this process");
        const r = await deps.reconcile.runNow(ctx);
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
  ];
}
