import { Secret, TOTP } from "otpauth";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sha256 } from "../src/adapters/node-crypto.js";
import type { Broker } from "../src/app.js";
import { createAuditLog } from "../src/audit/audit-log.js";
import { grantEvent } from "../src/core/grant-machine.js";
import { GRANT_PERMISSIONS } from "../src/core/grant-permissions.js";
import { SYSTEM_CONTEXT } from "../src/core/request-context.js";
import { ctx } from "./support/ctx.js";
import { freePort } from "./support/free-port.js";
import { shiftedClock } from "./support/manual-clock.js";
import { RECORDED_ALARMS, SECRET_KEY, startTestBroker, type TestBroker } from "./support/test-broker.js";
import { until } from "./support/wait.js";

type Caller = "anonymous" | "requester" | "approver" | "reviewer" | "admin" | "fallback";
const CALLERS: readonly Caller[] = ["anonymous", "requester", "approver", "reviewer", "admin", "fallback"];
/** Who each caller is: alice is on call, bob leads, rita reviews, erin is security, frank on call signs in by fallback. */
const USER: Record<Exclude<Caller, "anonymous">, string> = {
  requester: "alice",
  approver: "bob",
  reviewer: "rita",
  admin: "erin",
  fallback: "frank",
};

let fixture: TestBroker;
let broker: Broker;
const clock = shiftedClock();
const tokens = new Map<string, string>();
let fallbackSession = "";

beforeAll(async () => {
  const closed = await freePort();
  fixture = await startTestBroker({
    base: "minimal",
    clock,
    config: {
      ...SECRET_KEY,
      ...RECORDED_ALARMS,
      auth: { oidc: { issuer: `http://127.0.0.1:${closed}`, client_id: "breakglass", allow_insecure_http: true } },
      admin_groups: ["security"],
      defaults: { emergency_reviewers: ["reviewers"] },
      users: { alice: {}, bob: {}, carol: {}, rita: {}, erin: {}, frank: {}, dave: {} },
      groups: {
        oncall: ["alice", "frank"],
        leads: ["bob", "carol"],
        reviewers: ["rita"],
        security: ["erin"],
        "team-b": ["dave"],
        "team-b-leads": ["carol"],
      },
      domains: {
        production: {
          roles: {
            db: {
              target: "box",
              default_duration: "30m",
              max_duration: "2h",
              approval: "1 of leads",
              requesters: ["oncall"],
              emergency: true,
              fallback: true,
            },
          },
        },
        "team-b": {
          roles: { app: { target: "box", max_duration: "2h", approval: "1 of team-b-leads", requesters: ["team-b"] } },
        },
      },
      targets: { box: { connector: "exec", settings: { grant: ["true"], revoke: ["true"] } } },
      drills: { "db-drill": { scenario: "emergency", role: "production/db", requester: "alice", duration: "1s" } },
    },
  });
  broker = fixture.broker;
  for (const user of ["alice", "bob", "carol", "rita", "erin", "dave"]) tokens.set(user, await fixture.token(user));
  // frank signs in by the local fallback (the IdP is unreachable) with his authenticator app.
  const auth = broker.auth as NonNullable<Broker["auth"]>;
  const { secret } = await auth.provisionTotp(SYSTEM_CONTEXT, "frank", "phone");
  const login = await inject(null, "POST", "/auth/fallback/login", {
    user: "frank",
    code: new TOTP({ secret: Secret.fromBase32(secret) }).generate(),
  });
  expect(login.statusCode, login.body).toBe(200);
  fallbackSession = (login.json() as { token: string }).token;
});

afterAll(async () => {
  await fixture?.stop();
});

async function inject(bearer: string | null, method: string, path: string, payload?: unknown) {
  return broker.http.inject({
    method: method as "GET",
    url: `/api/v1${path}`,
    headers: bearer ? { authorization: `Bearer ${bearer}` } : {},
    ...(payload === undefined ? {} : { payload: payload as Record<string, unknown> }),
  });
}

const bearerOf = (caller: Caller): string | null =>
  caller === "anonymous" ? null : caller === "fallback" ? fallbackSession : (tokens.get(USER[caller]) as string);

// --- fixtures: fresh state for each cell -------------------------------------------------------

/** Close every open grant, so the next fixture can open one (one open grant per user and role). */
async function closeOpenGrants(): Promise<void> {
  await until("every open grant closed", async () => {
    try {
      for (const g of await broker.service.list({ states: ["requested", "approved", "active"], limit: 1000 })) {
        if (g.state === "active") await broker.service.revoke(ctx("erin"), g.id, "matrix cleanup");
        else await broker.service.cancel(ctx(g.requester), g.id, "matrix cleanup");
      }
      return true;
    } catch (e) {
      // A drill a cell started is activating its grant in the background: wait for it.
      if ((e as { code?: string }).code !== "ERR_CONFLICT") throw e;
      return false;
    }
  });
}
async function requested(by = "alice", roleId = "production/db") {
  await closeOpenGrants();
  return broker.service.request(ctx(by), { roleId, justification: "matrix fixture grant", incident: "INC-1" });
}
async function active(by = "alice", roleId = "production/db", approver = "bob") {
  const g = await requested(by, roleId);
  return broker.service.approve(ctx(approver), g.id, null);
}
async function ended() {
  const g = await active();
  return broker.service.release(ctx("alice"), g.id);
}
/** An ended grant whose revocation left containment drift (as the access controller records it). */
async function drifted() {
  const g = await ended();
  const item = {
    id: "app/pg_proc:1:created",
    kind: "object_created",
    outcome: "contained",
    description: "x",
    fix: "y",
  };
  await broker.store.transaction((tx) =>
    createAuditLog({ sha256 }).append(tx, [grantEvent(g, "target.containment_drift", "system", Date.now(), { item })]),
  );
  return g;
}
async function terminal(holder = "alice") {
  const g = await active(holder);
  const started = await inject(tokens.get("alice") ?? null, "POST", `/grants/${g.id}/terminal`, { command: "sh" });
  return (started.json() as { session: { id: string } }).session.id;
}

// --- the matrix --------------------------------------------------------------------------------

interface Row {
  /** `METHOD /path` as in the OpenAPI document. */
  readonly route: string;
  readonly allow: readonly Caller[];
  /** The request, built on fresh state for `caller`. */
  readonly request: (caller: Caller) => Promise<{ path: string; body?: unknown }>;
  /**
   * Callers that pass authorization but whom the fixture cannot give a success (no such
   * resource, nothing to hand out): they must reach the handler — a 4xx that is not 401/403.
   */
  readonly reach?: readonly Caller[];
  /** How refusals look when not 401/403 (e.g. 404: another person's token is not disclosed). */
  readonly deniedAs?: readonly number[];
  /** Why a token with the route's scope is not tried (routes for people only, or no auth). */
  readonly noTokenCheck?: string;
}

const ALL: readonly Caller[] = CALLERS;
const PEOPLE: readonly Caller[] = ["requester", "approver", "reviewer", "admin", "fallback"];
const NOT_FALLBACK: readonly Caller[] = ["requester", "approver", "reviewer", "admin"];
const fixed = (path: string, body?: unknown) => async () => ({ path, ...(body === undefined ? {} : { body }) });
const REASON = { reason: "matrix: checking who may do this" };
const REVIEW = { outcome: "justified", notes: "matrix review" };

const ROWS: readonly Row[] = [
  { route: "GET /health", allow: ALL, request: fixed("/health"), noTokenCheck: "no authentication" },
  { route: "GET /ready", allow: ALL, request: fixed("/ready"), noTokenCheck: "no authentication" },
  { route: "GET /openapi.json", allow: ALL, request: fixed("/openapi.json"), noTokenCheck: "no authentication" },
  { route: "GET /auth/idp", allow: ALL, request: fixed("/auth/idp"), noTokenCheck: "no authentication" },
  { route: "GET /me", allow: PEOPLE, request: fixed("/me") },
  { route: "GET /roles", allow: PEOPLE, request: fixed("/roles") },
  { route: "GET /grants", allow: PEOPLE, request: fixed("/grants") },
  {
    // Only members of the role's requester groups; the fallback user for fallback roles.
    route: "POST /grants",
    allow: ["requester", "fallback"],
    request: async () => {
      await closeOpenGrants();
      return { path: "/grants", body: { role: "production/db", justification: "matrix request", incident: "INC-2" } };
    },
  },
  {
    route: "GET /grants/{id}",
    allow: PEOPLE,
    request: async () => ({ path: `/grants/${(await requested()).id}` }),
  },
  {
    // The credential is the holder's alone.
    route: "GET /grants/{id}/credential",
    allow: [],
    reach: ["requester"],
    request: async () => ({ path: `/grants/${(await active()).id}/credential` }),
    noTokenCheck: "exec targets hand out no credential: the holder reaches the handler (409)",
  },
  {
    // Holder, approvers of the role, admins.
    route: "GET /grants/{id}/recording",
    allow: ["requester", "approver", "admin"],
    request: async () => ({ path: `/grants/${(await ended()).id}/recording` }),
  },
  {
    route: "GET /grants/{id}/story",
    allow: NOT_FALLBACK,
    request: async () => ({ path: `/grants/${(await ended()).id}/story` }),
  },
  {
    // Not the requester (self-approval), only the rule's groups, never by fallback.
    route: "POST /grants/{id}/approve",
    allow: ["approver"],
    request: async () => ({ path: `/grants/${(await requested()).id}/approve`, body: {} }),
  },
  {
    route: "POST /grants/{id}/deny",
    allow: ["approver", "admin"],
    request: async () => ({ path: `/grants/${(await requested()).id}/deny`, body: REASON }),
  },
  {
    route: "POST /grants/{id}/cancel",
    allow: ["requester"],
    request: async () => ({ path: `/grants/${(await requested()).id}/cancel`, body: REASON }),
  },
  {
    // The holder activates an approved grant; fallback users only their own.
    route: "POST /grants/{id}/activate",
    allow: [],
    reach: ["requester"],
    request: async () => ({ path: `/grants/${(await active()).id}/activate`, body: {} }),
    noTokenCheck: "the role activates on approval: for its holder activate is a refused transition (409)",
  },
  {
    // Approvers of the role and admins; the holder releases instead.
    route: "POST /grants/{id}/revoke",
    allow: ["approver", "admin"],
    request: async () => ({ path: `/grants/${(await active()).id}/revoke`, body: REASON }),
  },
  {
    route: "POST /grants/{id}/release",
    allow: ["requester"],
    request: async () => ({ path: `/grants/${(await active()).id}/release`, body: {} }),
  },
  {
    // The holder, or an admin (within the role's maximum).
    route: "POST /grants/{id}/extend",
    allow: ["requester", "admin"],
    request: async () => ({ path: `/grants/${(await active()).id}/extend`, body: { by: "10m", ...REASON } }),
  },
  {
    route: "POST /grants/{id}/ack",
    allow: ["approver", "admin"],
    request: async () => ({ path: `/grants/${(await active()).id}/ack`, body: {} }),
  },
  {
    // Not the holder, not an approver of it.
    route: "POST /grants/{id}/review",
    allow: ["reviewer", "admin"],
    request: async () => ({ path: `/grants/${(await ended()).id}/review`, body: REVIEW }),
  },
  {
    // Like the review: not the holder, not an approver of it.
    route: "POST /grants/{id}/resolve",
    allow: ["reviewer", "admin"],
    request: async () => ({ path: `/grants/${(await drifted()).id}/resolve`, body: { note: "dropped it" } }),
  },
  {
    route: "POST /grants/{id}/terminal",
    allow: ["requester"],
    request: async () => ({ path: `/grants/${(await active()).id}/terminal`, body: { command: "sh" } }),
  },
  {
    route: "POST /terminal/{session}/events",
    allow: ["requester"],
    request: async () => ({
      path: `/terminal/${await terminal()}/events`,
      body: { events: [{ seq: 1, t: 0, kind: "o", data: "$ " }] },
    }),
  },
  {
    route: "POST /terminal/{session}/end",
    allow: ["requester"],
    request: async () => ({ path: `/terminal/${await terminal()}/end`, body: { reason: "exited" } }),
  },
  {
    route: "GET /terminal/{session}",
    allow: ["requester", "approver", "admin"],
    request: async () => ({ path: `/terminal/${await terminal()}` }),
  },
  { route: "GET /incidents/{id}", allow: NOT_FALLBACK, request: fixed("/incidents/INC-1") },
  { route: "GET /reviews", allow: NOT_FALLBACK, request: fixed("/reviews") },
  {
    route: "POST /vault-openings/{id}/review",
    allow: [],
    reach: NOT_FALLBACK,
    request: fixed("/vault-openings/vo_0a1b_1/review", REVIEW),
    noTokenCheck: "no opening exists here (404 for people); who reviews tier-2 openings: test/vault.test.ts",
  },
  { route: "GET /posture", allow: NOT_FALLBACK, request: fixed("/posture") },
  { route: "GET /drills", allow: NOT_FALLBACK, request: fixed("/drills") },
  { route: "GET /drills/{name}/runs", allow: NOT_FALLBACK, request: fixed("/drills/db-drill/runs") },
  {
    route: "GET /drills/runs/{run}",
    allow: [],
    reach: NOT_FALLBACK,
    request: fixed("/drills/runs/d_missing"),
    noTokenCheck: "no run exists (404 for people)",
  },
  {
    route: "POST /drills/{name}/run",
    allow: ["admin"],
    request: async () => {
      await closeOpenGrants();
      return { path: "/drills/db-drill/run", body: {} };
    },
  },
  { route: "GET /alarms/channels", allow: NOT_FALLBACK, request: fixed("/alarms/channels") },
  { route: "GET /audit/events", allow: ["admin"], request: fixed("/audit/events") },
  { route: "GET /audit/checkpoints", allow: ["admin"], request: fixed("/audit/checkpoints") },
  { route: "GET /audit/verify", allow: ["admin"], request: fixed("/audit/verify") },
  { route: "POST /reconcile", allow: ["admin"], request: fixed("/reconcile", {}) },
  { route: "GET /tokens", allow: NOT_FALLBACK, request: fixed("/tokens") },
  {
    // Tokens are made by people signed in, never by another token; the fallback may not.
    route: "POST /tokens",
    allow: [],
    request: fixed("/tokens", { description: "matrix" }),
    noTokenCheck: "only a person's session creates tokens: test/auth-oidc.test.ts",
  },
  {
    // Your own tokens; admins any. Someone else's token id is "not found" to you.
    route: "POST /tokens/{token}/revoke",
    allow: ["requester", "admin"],
    deniedAs: [404],
    request: async () => {
      const t = await broker.tokens.create(SYSTEM_CONTEXT, { user: "alice", description: "to revoke" });
      return { path: `/tokens/${t.record.id}/revoke`, body: {} };
    },
  },
  { route: "POST /auth/idp", allow: ["admin"], request: fixed("/auth/idp", { down: true, reason: "matrix drill" }) },
  { route: "GET /auth/session", allow: PEOPLE, request: fixed("/auth/session") },
];

/** Routes the matrix leaves to their own tests, with why. */
const ELSEWHERE: Readonly<Record<string, string>> = {
  "POST /targets/{target}/cloudtrail": "no authentication but an HMAC key per target: test/aws-detection.test.ts",
  "POST /auth/fallback/login": "the sign-in itself: test/auth-fallback.test.ts (and beforeAll here)",
  "POST /auth/logout": "ends the caller's session: test/auth-oidc.test.ts",
  "POST /auth/webauthn/challenge": "no authentication: test/auth-fallback.test.ts",
  "POST /auth/step-up":
    "people with a session only (tokens are refused): test/auth-fallback.test.ts, test/console.test.ts",
  "GET /auth/factors": "people with a session only: test/auth-fallback.test.ts",
  "POST /auth/factors/totp": "people with a session only: test/auth-fallback.test.ts",
  "POST /auth/factors/{factor}/confirm": "people with a session only: test/auth-fallback.test.ts",
  "POST /auth/factors/{factor}/remove": "people with a session only: test/auth-fallback.test.ts",
  "POST /auth/factors/webauthn": "people with a session only: test/auth-fallback.test.ts",
  "POST /auth/factors/recovery": "people with a session only: test/auth-fallback.test.ts",
};

/**
 * The grant view's permission (`can`) behind a row, if any: what GET /grants/{id} tells the
 * caller about the action must be what the action then does.
 */
function permissionOf(route: string): string | null {
  const m = /^(?:POST|GET) \/grants\/\{id\}\/(\w+)$/.exec(route);
  return m && (GRANT_PERMISSIONS as readonly string[]).includes(m[1] as string) ? (m[1] as string) : null;
}

/** What GET /grants/{id} says `bearer` may do with the grant a request path names. */
async function canOf(bearer: string | null, path: string, permission: string): Promise<boolean> {
  const id = (/^\/grants\/([^/]+)\//.exec(path) as RegExpExecArray)[1];
  const res = await inject(bearer, "GET", `/grants/${id}`);
  expect(res.statusCode, res.body.slice(0, 300)).toBe(200);
  return (res.json() as { can: Record<string, boolean> }).can[permission] as boolean;
}

async function auditHead(): Promise<number> {
  return (await broker.store.transaction((tx) => tx.lockAuditHead())).seq;
}

/** The scope a token needs for the route, from the OpenAPI document. */
let scopes: Map<string, string>;

describe("authorization matrix", () => {
  it("has a row (or a named test elsewhere) for every route in the OpenAPI document", async () => {
    const doc = (await inject(null, "GET", "/openapi.json")).json() as {
      paths: Record<string, Record<string, { "x-token-scope"?: string }>>;
    };
    scopes = new Map();
    const listed: string[] = [];
    for (const [path, ops] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(ops)) {
        const route = `${method.toUpperCase()} ${path.replace(/^\/api\/v1/, "")}`;
        listed.push(route);
        if (op["x-token-scope"]) scopes.set(route, op["x-token-scope"]);
      }
    }
    const covered = [...ROWS.map((r) => r.route), ...Object.keys(ELSEWHERE)];
    expect(listed.filter((r) => !covered.includes(r))).toEqual([]);
    expect(covered.filter((r) => !listed.includes(r))).toEqual([]);
  });

  for (const row of ROWS) {
    it(row.route, async () => {
      const [method, template] = row.route.split(" ") as [string, string];
      const permission = permissionOf(row.route);
      for (const caller of CALLERS) {
        const { path, body } = await row.request(caller);
        const cell = `${row.route} as ${caller} (${caller === "anonymous" ? "-" : caller === "fallback" ? "frank, fallback" : USER[caller]})`;
        // The console offers an action only where the grant view says `can`: it must agree.
        if (permission && caller !== "anonymous") {
          expect(await canOf(bearerOf(caller), path, permission), `${cell}: can.${permission}`).toBe(
            row.allow.includes(caller),
          );
        }
        const before = await auditHead();
        const res = await inject(bearerOf(caller), method, path, body);
        if (row.allow.includes(caller)) {
          expect(res.statusCode, `${cell}: ${res.body.slice(0, 300)}`).toBeLessThan(300);
        } else if (row.reach?.includes(caller)) {
          expect(res.statusCode, `${cell}: ${res.body.slice(0, 300)}`).toBeGreaterThanOrEqual(400);
          expect([401, 403, 500], `${cell}: ${res.body.slice(0, 300)}`).not.toContain(res.statusCode);
        } else {
          expect([401, 403, ...(row.deniedAs ?? [])], `${cell}: ${res.statusCode} ${res.body.slice(0, 300)}`).toContain(
            res.statusCode,
          );
          expect(res.headers["content-type"], cell).toContain("application/problem+json");
          // Refused means refused: nothing was done, nothing written (fallback refusals before the handler).
          if (method !== "GET") {
            const after = await auditHead();
            // (A drill started by an earlier cell may still be running: its events say so. The
            // alarm worker records the delivery of an earlier cell's activation alarm meanwhile.)
            const written = (after === before ? [] : await broker.store.readAudit(before + 1, 100))
              .filter(
                (e) =>
                  !e.type.startsWith("drill.") &&
                  e.type !== "alarm.delivered" &&
                  (JSON.parse(e.payload) as { data?: { drill?: unknown } }).data?.drill !== true,
              )
              .map((e) => e.type);
            expect(written, `${cell}: wrote to the audit log`).toEqual([]);
          }
        }
      }
      // API tokens: with the route's scope, the allowed person still may; without it, refused.
      const allowedToken = row.allow.find((c) => c !== "anonymous" && c !== "fallback");
      if (allowedToken && !row.noTokenCheck) {
        const needed = scopes.get(`${method} ${template}`) ?? (method === "GET" ? "read" : "request");
        const user = USER[allowedToken as Exclude<Caller, "anonymous">];
        const scoped = (scope: string) =>
          broker.tokens.create(SYSTEM_CONTEXT, { user, description: `scope ${scope}`, scopes: [scope] });
        const withScope = (await scoped(needed)).token.reveal();
        const without = (await scoped(needed === "read" ? "request" : "read")).token.reveal();
        let r = await row.request(allowedToken);
        const ok = await inject(withScope, method, r.path, r.body);
        expect(ok.statusCode, `${row.route} with a \`${needed}\` token: ${ok.body.slice(0, 300)}`).toBeLessThan(300);
        r = await row.request(allowedToken);
        if (permission)
          expect(await canOf(without, r.path, permission), `can.${permission} without the scope`).toBe(false);
        const refused = await inject(without, method, r.path, r.body);
        expect(refused.statusCode, `${row.route} without the \`${needed}\` scope`).toBe(403);
        expect(refused.json()).toMatchObject({ detail: expect.stringContaining(`lacks the \`${needed}\` scope`) });
      }
    });
  }
});

describe("the pointed cases", () => {
  const call = (user: string, method: string, path: string, body?: unknown) =>
    inject(tokens.get(user) ?? null, method, path, body);

  it("self-approval, a second approval by the same person, approving a lapsed request", async () => {
    const g = await requested();
    expect((await call("alice", "POST", `/grants/${g.id}/approve`, {})).json()).toMatchObject({
      code: "ERR_SELF_APPROVAL",
    });
    // A rule of two: bob's first approval counts, his second does not.
    await closeOpenGrants();
    const two = await broker.service.request(ctx("dave"), {
      roleId: "team-b/app",
      justification: "matrix fixture grant",
      incident: "INC-3",
    });
    expect((await call("carol", "POST", `/grants/${two.id}/approve`, {})).statusCode).toBe(200);
    // Approved and active now (1 of team-b-leads): approving again is refused.
    expect((await call("carol", "POST", `/grants/${two.id}/approve`, {})).statusCode).toBeGreaterThanOrEqual(400);
    const lapsing = await requested();
    clock.offsetMs += 2 * 3_600_000; // past the approval timeout (1h)
    try {
      const late = await call("bob", "POST", `/grants/${lapsing.id}/approve`, {});
      expect(late.statusCode).toBeGreaterThanOrEqual(400);
      expect(late.statusCode).toBeLessThan(500);
    } finally {
      clock.offsetMs -= 2 * 3_600_000;
    }
  });

  it("self-review and review by an approver are refused; revoking another team's grant is refused", async () => {
    const g = await ended();
    expect((await call("alice", "POST", `/grants/${g.id}/review`, REVIEW)).json()).toMatchObject({
      code: "ERR_FORBIDDEN",
      detail: expect.stringContaining("cannot review it"),
    });
    expect((await call("bob", "POST", `/grants/${g.id}/review`, REVIEW)).json()).toMatchObject({
      code: "ERR_FORBIDDEN",
      detail: expect.stringContaining("approved grant"),
    });
    const other = await active("dave", "team-b/app", "carol");
    // bob leads production, not team-b: he may not revoke team-b's grant.
    expect((await call("bob", "POST", `/grants/${other.id}/revoke`, REASON)).json()).toMatchObject({
      code: "ERR_FORBIDDEN",
    });
    expect((await call("carol", "POST", `/grants/${other.id}/revoke`, REASON)).statusCode).toBe(200);
  });
});
