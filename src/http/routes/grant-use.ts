/**
 * Using a grant: the holder's credential, the holder's recorded terminal sessions (`breakglass
 * shell`), and what the grant's sessions recorded — statements through the gateway and terminal
 * sessions — for the holder, the approvers of the role and admins (every read audited).
 */
import {
  CredentialViewSchema,
  GrantIdParamsSchema,
  RecordingViewSchema,
  TerminalAppendViewSchema,
  TerminalEndBodySchema,
  TerminalEventsBodySchema,
  TerminalParamsSchema,
  TerminalRecordingViewSchema,
  TerminalSessionViewSchema,
  TerminalStartBodySchema,
  TerminalStartViewSchema,
} from "../../contract/api.js";
import { BreakglassError } from "../../core/errors.js";
import type { TerminalSession } from "../../core/records.js";
import type { CheckedTerminalSession } from "../../service/grant-queries.js";
import type { TerminalService } from "../../service/terminal-service.js";
import { type AnyRoute, defineRoute } from "../route-table.js";
import { terminalSessionView } from "../views.js";
import type { RouteDeps } from "./route-deps.js";

/** Terminal sessions as views, each checked against its grant's grant.terminal_started/ended. */
const terminalViews = (sessions: readonly CheckedTerminalSession[]) =>
  sessions.map((t) => terminalSessionView(t.session, t.integrity));

export function grantUseRoutes(deps: Pick<RouteDeps, "service" | "queries" | "terminal">): AnyRoute[] {
  const { service, queries } = deps;
  const terminal = (): TerminalService => {
    if (!deps.terminal) throw new BreakglassError("ERR_INTERNAL", "terminal recording is not wired in this process");
    return deps.terminal;
  };
  const terminalViewOf = async (t: TerminalSession) =>
    terminalViews(await queries.grants.checkTerminalSessions([t]))[0] as ReturnType<typeof terminalSessionView>;
  return [
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
  ];
}
