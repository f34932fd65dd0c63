/**
 * A small typed client for the HTTP API, built on the shared contract (src/contract/api.ts):
 * request bodies are the contract's input types, responses are parsed with the contract's
 * schemas. Refusals arrive as {@link ApiProblemError} (the problem+json body), a broker that
 * cannot be reached as {@link BrokerUnreachableError}.
 */
import type { z } from "zod";
import type { ReviewBody } from "../contract/api.js";
import {
  API_PREFIX,
  AuditVerdictSchema,
  type AuditVerdictView,
  type CreateGrantBody,
  type CredentialView,
  CredentialViewSchema,
  DrillListSchema,
  DrillRunViewSchema,
  FactorListSchema,
  FactorViewSchema,
  type GrantAction,
  type GrantActionBody,
  type GrantList,
  GrantListSchema,
  GrantStorySchema,
  type GrantView,
  GrantViewSchema,
  type Health,
  HealthSchema,
  IdpHealthSchema,
  type IncidentView,
  IncidentViewSchema,
  type ListGrantsQuery,
  LoginResultSchema,
  type Me,
  MeSchema,
  PostureSchema,
  type Problem,
  ProblemSchema,
  ReconcileReportSchema,
  type ReconcileReportView,
  type RecordingView,
  RecordingViewSchema,
  RecoveryCodesViewSchema,
  ReviewQueueSchema,
  type RolesResponse,
  RolesResponseSchema,
  SessionViewSchema,
  StepUpViewSchema,
  TerminalAppendViewSchema,
  type TerminalRecordingView,
  TerminalRecordingViewSchema,
  type TerminalSessionView,
  TerminalSessionViewSchema,
  type TerminalStartView,
  TerminalStartViewSchema,
  TokenListSchema,
  TokenViewSchema,
  TotpEnrollViewSchema,
  VaultOpeningViewSchema,
} from "../contract/api.js";

export const DEFAULT_BROKER_URL = "http://127.0.0.1:8080";
const TIMEOUT_MS = 60_000;

/** The broker answered with a problem (RFC 9457). */
export class ApiProblemError extends Error {
  readonly status: number;
  readonly problem: Problem;
  constructor(status: number, problem: Problem) {
    super(problem.detail ?? problem.title ?? problem.code);
    this.name = "ApiProblemError";
    this.status = status;
    this.problem = problem;
  }
}

/** No answer: connection refused, DNS, timeout, or an answer that is not our API. */
export class BrokerUnreachableError extends Error {
  readonly url: string;
  constructor(url: string, reason: string) {
    super(`cannot reach the broker at ${url}: ${reason}`);
    this.name = "BrokerUnreachableError";
    this.url = url;
  }
}

export interface ApiClient {
  readonly baseUrl: string;
  health(): Promise<Health>;
  me(): Promise<Me>;
  roles(): Promise<RolesResponse>;
  requestGrant(body: CreateGrantBody): Promise<GrantView>;
  listGrants(query: ListGrantsQuery): Promise<GrantList>;
  getGrant(id: string): Promise<GrantView>;
  credential(id: string): Promise<CredentialView>;
  recording(id: string): Promise<RecordingView>;
  startTerminal(grantId: string, body: { command: string; width: number; height: number }): Promise<TerminalStartView>;
  appendTerminal(
    session: string,
    events: readonly { seq: number; t: number; kind: "o" | "i"; data: string }[],
  ): Promise<{ active: boolean; endsAt: string | null }>;
  endTerminal(session: string, reason: string): Promise<TerminalSessionView>;
  getTerminal(session: string): Promise<TerminalRecordingView>;
  reconcile(): Promise<ReconcileReportView>;
  incident(id: string): Promise<IncidentView>;
  act<A extends GrantAction>(id: string, action: A, body: GrantActionBody<A>): Promise<GrantView>;
  verifyAudit(): Promise<AuditVerdictView>;
  session(): Promise<z.output<typeof SessionViewSchema>>;
  fallbackLogin(user: string, code: string): Promise<z.output<typeof LoginResultSchema>>;
  logout(): Promise<z.output<typeof SessionViewSchema>>;
  stepUp(code: string): Promise<z.output<typeof StepUpViewSchema>>;
  idp(): Promise<z.output<typeof IdpHealthSchema>>;
  declareIdp(down: boolean, reason: string): Promise<z.output<typeof IdpHealthSchema>>;
  factors(): Promise<z.output<typeof FactorListSchema>>;
  enrollTotp(label: string): Promise<z.output<typeof TotpEnrollViewSchema>>;
  confirmTotp(factorId: string, code: string): Promise<z.output<typeof FactorViewSchema>>;
  recoveryCodes(): Promise<z.output<typeof RecoveryCodesViewSchema>>;
  removeFactor(factorId: string): Promise<z.output<typeof FactorListSchema>>;
  listTokens(): Promise<z.output<typeof TokenListSchema>>;
  reviews(query: { overdue?: boolean; mine?: boolean }): Promise<z.output<typeof ReviewQueueSchema>>;
  story(id: string): Promise<z.output<typeof GrantStorySchema>>;
  drills(): Promise<z.output<typeof DrillListSchema>>;
  posture(): Promise<z.output<typeof PostureSchema>>;
  runDrill(name: string): Promise<z.output<typeof DrillRunViewSchema>>;
  drillRun(id: string): Promise<z.output<typeof DrillRunViewSchema>>;
  revokeToken(id: string): Promise<z.output<typeof TokenViewSchema>>;
  reviewVaultOpening(id: string, body: ReviewBody): Promise<z.output<typeof VaultOpeningViewSchema>>;
}

/** `http://host:8080`, `http://host:8080/` and `http://host:8080/api/v1` all name the same API. */
export function apiBase(url: string): string {
  const trimmed = url.trim().replace(/\/+$/, "");
  return trimmed.endsWith(API_PREFIX) ? trimmed : `${trimmed}${API_PREFIX}`;
}

function describeFetchFailure(e: unknown): string {
  if (e instanceof Error && e.name === "TimeoutError") return `no answer within ${TIMEOUT_MS / 1000}s`;
  const cause = e instanceof Error ? (e.cause as { code?: unknown; message?: unknown } | undefined) : undefined;
  if (cause && typeof cause.code === "string") return cause.code;
  if (cause && typeof cause.message === "string") return cause.message;
  return e instanceof Error ? e.message : String(e);
}

export function createApiClient(options: { url: string; token: string | null }): ApiClient {
  const base = apiBase(options.url);

  async function call<S extends z.ZodType>(
    method: "GET" | "POST",
    path: string,
    schema: S,
    body?: unknown,
  ): Promise<z.output<S>> {
    const headers: Record<string, string> = { accept: "application/json, application/problem+json" };
    if (options.token) headers.authorization = `Bearer ${options.token}`;
    if (body !== undefined) headers["content-type"] = "application/json";
    let res: Response;
    try {
      res = await fetch(`${base}${path}`, {
        method,
        headers,
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        signal: AbortSignal.timeout(TIMEOUT_MS),
        redirect: "error",
      });
    } catch (e) {
      throw new BrokerUnreachableError(options.url, describeFetchFailure(e));
    }
    const text = await res.text();
    let json: unknown;
    try {
      json = text === "" ? undefined : JSON.parse(text);
    } catch {
      json = undefined;
    }
    if (!res.ok) {
      const parsed = ProblemSchema.safeParse(json);
      if (parsed.success) throw new ApiProblemError(res.status, parsed.data);
      if (res.status === 404) {
        throw new BrokerUnreachableError(options.url, `HTTP 404 for ${path}: is this a Breakglass broker?`);
      }
      throw new ApiProblemError(res.status, {
        code: res.status >= 500 ? "ERR_INTERNAL" : "ERR_HTTP",
        instance: res.headers.get("x-request-id") ?? "",
        detail: `HTTP ${res.status} ${res.statusText}`,
      });
    }
    const parsed = schema.safeParse(json);
    if (!parsed.success) {
      throw new BrokerUnreachableError(
        options.url,
        `unexpected answer to ${method} ${path}: is this a Breakglass broker?`,
      );
    }
    return parsed.data;
  }

  const grantPath = (id: string) => `/grants/${encodeURIComponent(id)}`;

  return {
    baseUrl: base,
    health: () => call("GET", "/health", HealthSchema),
    me: () => call("GET", "/me", MeSchema),
    roles: () => call("GET", "/roles", RolesResponseSchema),
    credential: (id) => call("GET", `${grantPath(id)}/credential`, CredentialViewSchema),
    recording: (id) => call("GET", `${grantPath(id)}/recording`, RecordingViewSchema),
    startTerminal: (id, body) => call("POST", `${grantPath(id)}/terminal`, TerminalStartViewSchema, body),
    appendTerminal: (session, events) =>
      call("POST", `/terminal/${encodeURIComponent(session)}/events`, TerminalAppendViewSchema, { events }),
    endTerminal: (session, reason) =>
      call("POST", `/terminal/${encodeURIComponent(session)}/end`, TerminalSessionViewSchema, { reason }),
    getTerminal: (session) => call("GET", `/terminal/${encodeURIComponent(session)}`, TerminalRecordingViewSchema),
    reconcile: () => call("POST", "/reconcile", ReconcileReportSchema, {}),
    incident: (id) => call("GET", `/incidents/${encodeURIComponent(id)}`, IncidentViewSchema),
    requestGrant: (body) => call("POST", "/grants", GrantViewSchema, body),
    listGrants: (query) => {
      const params = new URLSearchParams();
      for (const [key, value] of Object.entries(query)) {
        if (value !== undefined) params.set(key, String(value));
      }
      const qs = params.toString();
      return call("GET", `/grants${qs ? `?${qs}` : ""}`, GrantListSchema);
    },
    getGrant: (id) => call("GET", grantPath(id), GrantViewSchema),
    act: (id, action, body) => call("POST", `${grantPath(id)}/${action}`, GrantViewSchema, body),
    verifyAudit: () => call("GET", "/audit/verify", AuditVerdictSchema),
    session: () => call("GET", "/auth/session", SessionViewSchema),
    fallbackLogin: (user, code) => call("POST", "/auth/fallback/login", LoginResultSchema, { user, code }),
    logout: () => call("POST", "/auth/logout", SessionViewSchema, {}),
    stepUp: (code) => call("POST", "/auth/step-up", StepUpViewSchema, { code }),
    idp: () => call("GET", "/auth/idp", IdpHealthSchema),
    declareIdp: (down, reason) => call("POST", "/auth/idp", IdpHealthSchema, { down, reason }),
    factors: () => call("GET", "/auth/factors", FactorListSchema),
    enrollTotp: (label) => call("POST", "/auth/factors/totp", TotpEnrollViewSchema, { label }),
    confirmTotp: (id, code) =>
      call("POST", `/auth/factors/${encodeURIComponent(id)}/confirm`, FactorViewSchema, { code }),
    recoveryCodes: () => call("POST", "/auth/factors/recovery", RecoveryCodesViewSchema, {}),
    removeFactor: (id) => call("POST", `/auth/factors/${encodeURIComponent(id)}/remove`, FactorListSchema, {}),
    listTokens: () => call("GET", "/tokens", TokenListSchema),
    reviews: (q) => {
      const params = new URLSearchParams();
      if (q.overdue) params.set("overdue", "true");
      if (q.mine) params.set("mine", "true");
      const qs = params.toString();
      return call("GET", `/reviews${qs ? `?${qs}` : ""}`, ReviewQueueSchema);
    },
    story: (id) => call("GET", `${grantPath(id)}/story`, GrantStorySchema),
    drills: () => call("GET", "/drills", DrillListSchema),
    posture: () => call("GET", "/posture", PostureSchema),
    runDrill: (name) => call("POST", `/drills/${encodeURIComponent(name)}/run`, DrillRunViewSchema, {}),
    drillRun: (id) => call("GET", `/drills/runs/${encodeURIComponent(id)}`, DrillRunViewSchema),
    revokeToken: (id) => call("POST", `/tokens/${encodeURIComponent(id)}/revoke`, TokenViewSchema, {}),
    reviewVaultOpening: (id, body) =>
      call("POST", `/vault-openings/${encodeURIComponent(id)}/review`, VaultOpeningViewSchema, body),
  };
}
