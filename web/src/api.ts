/**
 * The console talks to the broker only through its public API (/api/v1), with the contract's own
 * types. Signed in through the IdP (or the local fallback while it is down), the session is an
 * HttpOnly cookie and every POST carries the session's CSRF token; signed in with an API token (a
 * broker without an IdP, e.g. the demo), the token is kept in this tab's sessionStorage only and
 * sent as a bearer token.
 */
import type {
  AuditEventList,
  AuditVerdictView,
  CreateGrantBody,
  DrillList,
  DrillRunView,
  FactorList,
  FactorProof,
  FactorView,
  GrantList,
  GrantView,
  LoginResult,
  Me,
  Problem,
  RecordingView,
  ReviewBody,
  RolesResponse,
  SessionView,
  TerminalRecordingView,
  TotpEnrollView,
  WebauthnEnrollView,
} from "../../src/contract/api.js";

export type * from "../../src/contract/api.js";

const BASE = "/api/v1";
const TOKEN_KEY = "breakglass.token";

export class ApiError extends Error {
  readonly status: number;
  readonly problem: Problem | null;
  constructor(status: number, problem: Problem | null, fallback: string) {
    super(problem?.detail ?? problem?.title ?? fallback);
    this.status = status;
    this.problem = problem;
  }
  get code(): string {
    return this.problem?.code ?? `HTTP_${this.status}`;
  }
}

let csrf: string | null = null;

export const tokenLogin = {
  get: (): string | null => sessionStorage.getItem(TOKEN_KEY),
  set: (token: string) => sessionStorage.setItem(TOKEN_KEY, token),
  clear: () => sessionStorage.removeItem(TOKEN_KEY),
};

/**
 * Asks the person for a fresh second factor when an action needs one (a role with `step_up`): it
 * verifies it (POST /auth/step-up) and resolves true, or false when they cancel. Set by the app's
 * step-up dialog only for a session that can step up (not an API token, not a broker without
 * local factors): otherwise the broker's refusal is shown as it is.
 */
let askStepUp: ((why: string) => Promise<boolean>) | null = null;
export const setStepUpPrompt = (fn: ((why: string) => Promise<boolean>) | null) => {
  askStepUp = fn;
};

/** Why the step-up dialog opened, in the console's words (the API's detail names CLI commands). */
function stepUpReason(p: Problem): string {
  const { roleId, maxAgeS, action } = p as Problem & { roleId?: unknown; maxAgeS?: unknown; action?: unknown };
  if (typeof roleId !== "string" || typeof maxAgeS !== "number" || typeof action !== "string") {
    return p.detail ?? "This action needs a fresh second factor.";
  }
  const window = maxAgeS >= 120 ? `${Math.round(maxAgeS / 60)} minutes` : `${maxAgeS} seconds`;
  return `To ${action} ${roleId}, confirm a second factor (it counts for ${window}).`;
}

async function call<T>(method: "GET" | "POST", path: string, body?: unknown, retried = false): Promise<T> {
  const headers: Record<string, string> = { accept: "application/json" };
  const token = tokenLogin.get();
  if (token) headers.authorization = `Bearer ${token}`;
  else if (method === "POST" && csrf) headers["x-csrf-token"] = csrf;
  if (body !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(`${BASE}${path}`, {
    method,
    headers,
    credentials: "same-origin",
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  const json: unknown = text === "" ? null : JSON.parse(text);
  if (!res.ok) {
    const problem = (json as Problem | null) ?? null;
    // Over the broker's request limits: a read waits as long as it says (a few seconds at most) and tries once more.
    if (res.status === 429 && method === "GET" && !retried) {
      const seconds = Math.min(5, Math.max(1, Number(res.headers.get("retry-after") ?? "1") || 1));
      await new Promise((r) => setTimeout(r, seconds * 1000));
      return call<T>(method, path, body, true);
    }
    // A fresh second factor is needed: ask for it, verify it, and try the action once more.
    if (problem?.code === "ERR_STEP_UP_REQUIRED" && askStepUp && !retried && path !== "/auth/step-up") {
      if (await askStepUp(stepUpReason(problem))) {
        return call<T>(method, path, body, true);
      }
    }
    throw new ApiError(res.status, problem, `${method} ${path}: ${res.status}`);
  }
  return json as T;
}

export interface IdpHealth {
  configured: boolean;
  reachable: boolean;
  fallbackOpen: boolean;
  declaredDown: { by: string; at: string; reason: string } | null;
}

export interface StoryView {
  grant: GrantView;
  /** Set when the grant's row says something its audit events do not (the row was edited). */
  grantIntegrity: { column: string; seq: number; message: string } | null;
  timeline: {
    seq: number;
    at: string;
    type: string;
    actor: string;
    data: Record<string, unknown>;
    /** Set when the row's index columns were edited: the values shown are the hashed payload's. */
    integrity: { problem: string; columns: string[]; message: string } | null;
  }[];
  alarms: NonNullable<GrantView["alarms"]>;
  recording: {
    gatewaySessions: number;
    statements: number;
    blocked: { at: string; statement: string; error: string | null }[];
    errors: number;
    terminalSessions: number;
  };
  timing: {
    timeToApprovalS: number | null;
    timeToAccessS: number | null;
    heldS: number | null;
    reviewDueAt: string | null;
  };
}

export interface ReviewQueue {
  reviews: {
    grant: GrantView;
    dueAt: string | null;
    overdue: boolean;
    emergency: boolean;
    canReview: boolean;
    why: string | null;
  }[];
  vaultOpenings: {
    opening: {
      id: string;
      envelope: { name: string };
      incident: string;
      reason: string;
      openedAt: string;
      reviewDueAt: string;
      custodians: { name: string }[];
      /** Set when the opening's row says something its audit events do not (the row was edited). */
      integrity: { columns: string[]; seq: number | null; message: string } | null;
    };
    overdue: boolean;
    canReview: boolean;
    why: string | null;
  }[];
}

export interface PostureView {
  status: "green" | "amber" | "red";
  checkedAt: string;
  credentials: {
    credential: string;
    rotatedAt: string | null;
    ageDays: number | null;
    overdue: boolean;
    fix: string;
  }[];
  vault: { level: "amber" | "red"; what: string; fix: string }[];
  roles: {
    role: string;
    status: "green" | "amber" | "red";
    lastUse: string | null;
    lastDrill: { name: string; at: string; result: string } | null;
    openReviews: number;
    overdueReviews: number;
    activeGrants: number;
    items: { level: "amber" | "red"; what: string; fix: string }[];
  }[];
}

export const api = {
  async session(): Promise<SessionView> {
    const s = await call<SessionView>("GET", "/auth/session");
    csrf = s.csrfToken;
    return s;
  },
  idp: () => call<IdpHealth>("GET", "/auth/idp"),
  logout: () => call<SessionView>("POST", "/auth/logout", {}),
  async fallbackLogin(user: string, proof: FactorProof): Promise<LoginResult> {
    const r = await call<LoginResult>("POST", "/auth/fallback/login", { user, ...proof });
    csrf = r.csrfToken;
    return r;
  },
  stepUp: (proof: FactorProof) => call<{ factorAt: string }>("POST", "/auth/step-up", proof),
  webauthnChallenge: (user: string) => call<Record<string, unknown>>("POST", "/auth/webauthn/challenge", { user }),
  factors: () => call<FactorList>("GET", "/auth/factors"),
  enrollTotp: (label: string) => call<TotpEnrollView>("POST", "/auth/factors/totp", { label }),
  enrollKey: (label: string) => call<WebauthnEnrollView>("POST", "/auth/factors/webauthn", { label }),
  confirmFactor: (id: string, proof: FactorProof) =>
    call<FactorView>("POST", `/auth/factors/${encodeURIComponent(id)}/confirm`, proof),
  removeFactor: (id: string) => call<FactorList>("POST", `/auth/factors/${encodeURIComponent(id)}/remove`, {}),
  recoveryCodes: () => call<{ codes: string[] }>("POST", "/auth/factors/recovery", {}),
  me: () => call<Me>("GET", "/me"),
  roles: () => call<RolesResponse>("GET", "/roles"),
  grants: (query: string) => call<GrantList>("GET", `/grants${query}`),
  /**
   * Every grant the query matches, a page at a time (the API serves at most 100 per page), up to
   * `max`; `next` is set when there were more.
   */
  async allGrants(query: string, max = 1000): Promise<GrantList> {
    const grants: GrantList["grants"] = [];
    let next: string | null = null;
    do {
      const limit = Math.min(100, max - grants.length);
      const cursor: string = next === null ? "" : `&cursor=${encodeURIComponent(next)}`;
      const page: GrantList = await call<GrantList>("GET", `/grants?${query}&limit=${limit}${cursor}`);
      grants.push(...page.grants);
      next = page.next;
    } while (next !== null && grants.length < max);
    return { grants, next };
  },
  grant: (id: string) => call<GrantView>("GET", `/grants/${encodeURIComponent(id)}`),
  story: (id: string) => call<StoryView>("GET", `/grants/${encodeURIComponent(id)}/story`),
  request: (body: CreateGrantBody) => call<GrantView>("POST", "/grants", body),
  act: (id: string, action: string, body: Record<string, unknown> = {}) =>
    call<GrantView>("POST", `/grants/${encodeURIComponent(id)}/${action}`, body),
  recording: (id: string) => call<RecordingView>("GET", `/grants/${encodeURIComponent(id)}/recording`),
  terminal: (id: string) => call<TerminalRecordingView>("GET", `/terminal/${encodeURIComponent(id)}`),
  credential: (id: string) => call<unknown>("GET", `/grants/${encodeURIComponent(id)}/credential`),
  reviews: () => call<ReviewQueue>("GET", "/reviews"),
  reviewOpening: (id: string, body: ReviewBody) =>
    call<unknown>("POST", `/vault-openings/${encodeURIComponent(id)}/review`, body),
  posture: () => call<PostureView>("GET", "/posture"),
  drills: () => call<DrillList>("GET", "/drills"),
  drillRuns: (name: string) => call<{ runs: DrillRunView[] }>("GET", `/drills/${encodeURIComponent(name)}/runs`),
  runDrill: (name: string) => call<DrillRunView>("POST", `/drills/${encodeURIComponent(name)}/run`, {}),
  channels: () =>
    call<{ channels: { channel: string; failing: boolean; consecutiveFailures: number; lastError: string | null }[] }>(
      "GET",
      "/alarms/channels",
    ),
  audit: (from: number) => call<AuditEventList>("GET", `/audit/events?from=${from}&limit=200`),
  verify: () => call<AuditVerdictView>("GET", "/audit/verify"),
};
