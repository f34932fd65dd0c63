/**
 * The HTTP API end to end, in process: a real broker (real config loader, SQLite store, audit
 * log, exec connector) driven through `fastify.inject`. Every response is checked against the
 * shared contract schemas, so the server cannot drift from what the CLI expects.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import type { FastifyInstance, LightMyRequestResponse } from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { z } from "zod";
import { createLogger } from "../src/adapters/logger.js";
import { sha256 } from "../src/adapters/node-crypto.js";
import { createIdGenerator, systemClock } from "../src/adapters/system-clock.js";
import type { Broker } from "../src/app.js";
import {
  AuditEventListSchema,
  AuditVerdictSchema,
  CheckpointListSchema,
  GrantListSchema,
  GrantViewSchema,
  HealthSchema,
  MeSchema,
  ProblemSchema,
  RolesResponseSchema,
} from "../src/contract/api.js";
import { SYSTEM_CONTEXT } from "../src/core/request-context.js";
import { createHttpServer } from "../src/http/server.js";
import { createApiQueries } from "../src/service/api-queries.js";
import { startTestBroker, type TestBroker } from "./support/test-broker.js";

const ROLE = "production/db-admin";
const READER = "production/db-reader";
const USERS = ["alice", "bob", "carol", "erin"] as const;
type User = (typeof USERS)[number];

let dir: string;
let t: TestBroker;
let broker: Broker;
let http: FastifyInstance;
const tokens = new Map<User, string>();
const logLines: string[] = [];

beforeAll(async () => {
  t = await startTestBroker({
    config: { audit: { checkpoint_every_events: 5 } },
    log: createLogger("info", (line) => logLines.push(line)),
    start: false,
  });
  dir = t.dir;
  broker = t.broker;
  for (const user of USERS) {
    const created = await broker.tokens.create(SYSTEM_CONTEXT, { user, description: "http test" });
    tokens.set(user, created.token.reveal());
  }
  http = broker.http;
  await http.ready();
});

afterAll(async () => {
  await t?.stop();
});

const auth = (user: User) => ({ authorization: `Bearer ${tokens.get(user)}` });

async function call(
  user: User | null,
  method: "GET" | "POST",
  url: string,
  payload?: unknown,
): Promise<LightMyRequestResponse> {
  return http.inject({
    method,
    url: `/api/v1${url}`,
    headers: user ? auth(user) : {},
    ...(payload === undefined ? {} : { payload: payload as Record<string, unknown> }),
  });
}

function ok<S extends z.ZodType>(res: LightMyRequestResponse, schema: S, status = 200): z.output<S> {
  expect(res.statusCode, res.body).toBe(status);
  expect(res.headers["content-type"]).toMatch(/^application\/json/);
  return schema.parse(res.json());
}

function problem(res: LightMyRequestResponse, status: number, code: string) {
  expect(res.statusCode, res.body).toBe(status);
  expect(res.headers["content-type"]).toMatch(/^application\/problem\+json/);
  const body = ProblemSchema.parse(res.json());
  expect(body.code).toBe(code);
  expect(body.instance).toBe(res.headers["x-request-id"]);
  if (status < 500) {
    expect(body.type).toBe(`urn:breakglass:problem:${code}`);
    expect(body.status).toBe(status);
  }
  return body;
}

const request = (user: User, role = ROLE, extra: Record<string, unknown> = {}) =>
  call(user, "POST", "/grants", {
    role,
    justification: "primary database is down",
    incident: "INC-4711",
    ...extra,
  });

describe("authentication", () => {
  it("answers 401 problem+json without a token", async () => {
    const res = await call(null, "GET", "/grants");
    const body = problem(res, 401, "ERR_UNAUTHENTICATED");
    expect(body.detail).toMatch(/Bearer/);
    expect(res.headers["www-authenticate"]).toMatch(/^Bearer/);
  });

  it("answers 401 for an unknown token and for a malformed header", async () => {
    const forged = `${tokens.get("alice")?.split(".")[0]}.not-the-secret`;
    for (const header of [`Bearer ${forged}`, "Bearer nodot", "Basic YWxpY2U6cHc=", "Bearer"]) {
      const res = await http.inject({ method: "GET", url: "/api/v1/me", headers: { authorization: header } });
      problem(res, 401, "ERR_UNAUTHENTICATED");
    }
  });

  it("refuses an unauthenticated request before reading its body", async () => {
    const res = await http.inject({
      method: "POST",
      url: "/api/v1/grants",
      headers: { "content-type": "application/json" },
      payload: "{not json",
    });
    problem(res, 401, "ERR_UNAUTHENTICATED");
  });

  it("serves health and the OpenAPI document without a token", async () => {
    expect(ok(await call(null, "GET", "/health"), HealthSchema)).toEqual({ status: "ok", store: "ok" });
    expect((await call(null, "GET", "/openapi.json")).statusCode).toBe(200);
  });

  it("is live but not ready before its background work runs (this broker was never started)", async () => {
    problem(await call(null, "GET", "/ready"), 503, "ERR_NOT_READY");
  });

  it("echoes a fresh request id, never the client's", async () => {
    const res = await http.inject({ method: "GET", url: "/api/v1/health", headers: { "x-request-id": "mine" } });
    expect(res.headers["x-request-id"]).toMatch(/^req_/);
  });
});

describe("who and what", () => {
  it("GET /me names the caller and their groups", async () => {
    const me = ok(await call("bob", "GET", "/me"), MeSchema);
    expect(me).toMatchObject({ user: "bob", displayName: "Bob", groups: ["leads"], admin: false });
    expect(ok(await call("erin", "GET", "/me"), MeSchema).admin).toBe(true);
  });

  it("GET /roles lists domains with their rules and durations", async () => {
    const { domains } = ok(await call("alice", "GET", "/roles"), RolesResponseSchema);
    const production = domains.find((d) => d.name === "production");
    const role = production?.roles.find((r) => r.id === ROLE);
    expect(role).toMatchObject({
      approval: "2 of leads",
      maxDurationS: 7200,
      defaultDurationS: 1800,
      emergencyAllowed: true,
      requesters: ["oncall"],
      canRequest: true,
    });
    const asBob = ok(await call("bob", "GET", "/roles"), RolesResponseSchema);
    expect(asBob.domains[0]?.roles.every((r) => !r.canRequest)).toBe(true);
  });
});

describe("signing in on a broker without a secret key (API tokens only, like the demo)", () => {
  it("answers GET /auth/session for the token, saying which sign-in features are off", async () => {
    const session = await call("alice", "GET", "/auth/session");
    expect(session.statusCode, session.body).toBe(200);
    expect(session.json()).toEqual({
      user: "alice",
      method: "token",
      sessionId: null,
      expiresAt: null,
      factorAt: null,
      csrfToken: null,
      features: { idpLogin: false, localFactors: false, fallbackLogin: false },
    });
    expect((await call(null, "GET", "/auth/idp")).json()).toMatchObject({ configured: false, fallbackOpen: false });
    expect((await call("alice", "POST", "/auth/logout", {})).statusCode).toBe(200);
  });

  it("answers the routes of sessions and local factors with 404 ERR_NOT_CONFIGURED, naming the key", async () => {
    for (const [url, body] of [
      ["/auth/fallback/login", { user: "alice", code: "123456" }],
      ["/auth/webauthn/challenge", { user: "alice" }],
    ] as const) {
      const res = await call(null, "POST", url, body);
      problem(res, 404, "ERR_NOT_CONFIGURED");
      expect(res.json().detail).toContain("secrets.key_file");
    }
    // Signed in by token: the factor routes are for people's sessions, and there are none here.
    problem(await call("erin", "POST", "/auth/idp", { down: true, reason: "drill" }), 404, "ERR_NOT_CONFIGURED");
  });
});

describe("the grant lifecycle", () => {
  it("request → two approvals → active at the target → revoke → ended(revoked), access gone", async () => {
    const created = ok(await request("alice", ROLE, { duration: "45m" }), GrantViewSchema, 201);
    expect(created).toMatchObject({ state: "requested", requester: "alice", role: ROLE, durationS: 2700 });
    expect(created.approvalRule).toBe("2 of leads");
    const res = await call("alice", "GET", `/grants/${created.id}`);
    expect(ok(res, GrantViewSchema).id).toBe(created.id);

    const once = ok(await call("bob", "POST", `/grants/${created.id}/approve`, { comment: "go" }), GrantViewSchema);
    expect(once.state).toBe("requested");
    expect(once.approvals).toEqual([{ approver: "bob", at: expect.any(String), comment: "go" }]);

    const active = ok(await call("carol", "POST", `/grants/${created.id}/approve`, {}), GrantViewSchema);
    expect(active.state).toBe("active");
    expect(active.access.state).toBe("granted");
    expect(active.remainingS).toBeGreaterThan(2690);
    expect(active.remainingS).toBeLessThanOrEqual(2700);
    const accessFile = join(dir, "targets", `bg_${created.id}`);
    expect(existsSync(accessFile)).toBe(true);

    const mine = ok(await call("alice", "GET", "/grants?state=active&mine=true"), GrantListSchema);
    expect(mine.grants.map((g) => g.id)).toContain(created.id);
    const others = ok(await call("bob", "GET", "/grants?mine=1"), GrantListSchema);
    expect(others.grants).toEqual([]);

    const revoked = ok(
      await call("carol", "POST", `/grants/${created.id}/revoke`, { reason: "done" }),
      GrantViewSchema,
    );
    expect(revoked).toMatchObject({ state: "ended", endReason: "revoked", closedBy: "carol", remainingS: null });
    expect(revoked.access.state).toBe("revoked");
    expect(existsSync(accessFile)).toBe(false);
  });

  it("refuses self-approval with 403 ERR_SELF_APPROVAL", async () => {
    const grant = ok(await request("alice", READER), GrantViewSchema, 201);
    const body = problem(await call("alice", "POST", `/grants/${grant.id}/approve`, {}), 403, "ERR_SELF_APPROVAL");
    expect(body.detail).toMatch(/cannot approve/);
    expect(body.grantId).toBe(grant.id);
    ok(await call("alice", "POST", `/grants/${grant.id}/cancel`, { reason: "not needed" }), GrantViewSchema);
  });

  it("refuses a second approval by the same person with 409", async () => {
    const grant = ok(await request("alice"), GrantViewSchema, 201);
    ok(await call("bob", "POST", `/grants/${grant.id}/approve`, {}), GrantViewSchema);
    problem(await call("bob", "POST", `/grants/${grant.id}/approve`, {}), 409, "ERR_DUPLICATE_APPROVAL");
    // And a second open request of the same role is a conflict, not a silent extension.
    problem(await request("alice"), 409, "ERR_OPEN_GRANT_EXISTS");
    const denied = ok(await call("carol", "POST", `/grants/${grant.id}/deny`, { reason: "no" }), GrantViewSchema);
    expect(denied.state).toBe("denied");
    problem(await call("carol", "POST", `/grants/${grant.id}/approve`, {}), 409, "ERR_INVALID_TRANSITION");
  });

  it("activates an emergency request at once", async () => {
    const grant = ok(await request("alice", ROLE, { emergency: true, duration: "10m" }), GrantViewSchema, 201);
    expect(grant).toMatchObject({ state: "active", emergency: true, durationS: 600 });
    expect(existsSync(join(dir, "targets", `bg_${grant.id}`))).toBe(true);
    const released = ok(await call("alice", "POST", `/grants/${grant.id}/release`), GrantViewSchema);
    expect(released).toMatchObject({ state: "ended", endReason: "released" });
    const reviewed = ok(
      await call("erin", "POST", `/grants/${grant.id}/review`, { outcome: "justified", notes: "restored replica" }),
      GrantViewSchema,
    );
    expect(reviewed.review).toMatchObject({ reviewer: "erin", outcome: "justified" });
  });

  it("maps domain refusals to their statuses", async () => {
    problem(await request("bob"), 403, "ERR_NOT_ELIGIBLE_REQUESTER");
    problem(await request("alice", READER, { emergency: true }), 403, "ERR_EMERGENCY_NOT_ALLOWED");
    problem(await request("alice", ROLE, { duration: "3h" }), 422, "ERR_DURATION_EXCEEDS_MAX");
    problem(await request("alice", ROLE, { incident: "whenever" }), 422, "ERR_INCIDENT_REQUIRED");
    problem(await request("alice", ROLE, { justification: "x" }), 422, "ERR_JUSTIFICATION_REQUIRED");
    problem(await request("alice", "production/nope"), 404, "ERR_NOT_FOUND");
    problem(await call("alice", "GET", "/grants/g_missing"), 404, "ERR_NOT_FOUND");
  });
});

describe("input validation", () => {
  it("rejects a body missing a field with 400 naming the field", async () => {
    const res = await call("alice", "POST", "/grants", { role: ROLE, incident: "INC-1" });
    const body = problem(res, 400, "ERR_VALIDATION");
    expect(body.detail).toMatch(/justification/);
    expect(body.field).toBe("justification");
  });

  it("rejects unknown fields, naming them", async () => {
    const res = await request("alice", ROLE, { durationMinutes: 5 });
    const body = problem(res, 400, "ERR_VALIDATION");
    expect(body.detail).toMatch(/durationMinutes/);
    expect(body.field).toBe("durationMinutes");
  });

  it("rejects a bad duration and a bad query", async () => {
    expect(problem(await request("alice", ROLE, { duration: "soon" }), 400, "ERR_VALIDATION").detail).toMatch(
      /duration/,
    );
    expect(problem(await call("alice", "GET", "/grants?state=bogus"), 400, "ERR_VALIDATION").field).toBe("state");
    expect(problem(await call("alice", "GET", "/grants?colour=red"), 400, "ERR_VALIDATION").detail).toMatch(/colour/);
    problem(await call("bob", "POST", "/grants/x/review", { outcome: "fine", notes: "n" }), 400, "ERR_VALIDATION");
  });

  it("answers malformed JSON with 400 problem+json", async () => {
    const res = await http.inject({
      method: "POST",
      url: "/api/v1/grants",
      headers: { ...auth("alice"), "content-type": "application/json" },
      payload: '{"role": ',
    });
    expect(problem(res, 400, "ERR_VALIDATION").detail).toMatch(/JSON/);
    const poisoned = await http.inject({
      method: "POST",
      url: "/api/v1/grants",
      headers: { ...auth("alice"), "content-type": "application/json" },
      payload: '{"__proto__": {"admin": true}}',
    });
    problem(poisoned, 400, "ERR_VALIDATION");
    problem(await call("alice", "GET", "/grants/%E0%A4%A"), 400, "ERR_VALIDATION");
  });

  it("answers a body over 64 KiB with 413 and a non-JSON body with 415", async () => {
    const big = await request("alice", ROLE, { justification: "x".repeat(70_000) });
    problem(big, 413, "ERR_PAYLOAD_TOO_LARGE");
    const text = await http.inject({
      method: "POST",
      url: "/api/v1/grants",
      headers: { ...auth("alice"), "content-type": "text/plain" },
      payload: "role=db-admin",
    });
    problem(text, 415, "ERR_UNSUPPORTED_MEDIA_TYPE");
  });

  it("answers an unknown route with 404 problem+json", async () => {
    problem(await call("alice", "GET", "/nope"), 404, "ERR_NOT_FOUND");
    problem(await http.inject({ method: "DELETE", url: "/api/v1/nope" }), 404, "ERR_NOT_FOUND");
    // A path the API has, with a method it does not take: 405 and Allow (framework-refusals.test.ts).
    problem(await http.inject({ method: "DELETE", url: "/api/v1/grants" }), 405, "ERR_METHOD_NOT_ALLOWED");
  });
});

describe("audit", () => {
  it("pages the grant list: at most 100 a page, `next` as the cursor of the next, each grant once", async () => {
    const all = ok(await call("erin", "GET", "/grants?limit=100"), GrantListSchema);
    expect(all.grants.length).toBeGreaterThan(2);
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const page: z.output<typeof GrantListSchema> = ok(
        await call("erin", "GET", `/grants?limit=2${cursor ? `&cursor=${cursor}` : ""}`),
        GrantListSchema,
      );
      expect(page.grants.length).toBeLessThanOrEqual(2);
      seen.push(...page.grants.map((g) => g.id));
      cursor = page.next;
    } while (cursor !== null);
    expect(seen).toEqual(all.grants.map((g) => g.id));
    // A larger limit is served as the largest page: 130 requests of alice's, withdrawn, listed
    // 100 at a time.
    const made: string[] = [];
    for (let i = 0; i < 130; i++) {
      const g = ok(await request("alice", "production/db-reader"), GrantViewSchema, 201);
      ok(await call("alice", "POST", `/grants/${g.id}/cancel`, { reason: "paging test" }), GrantViewSchema);
      made.push(g.id);
    }
    const query = "/grants?requester=alice&role=production/db-reader&state=cancelled&limit=1000";
    const listed: string[] = [];
    let after: string | null = null;
    do {
      const page: z.output<typeof GrantListSchema> = ok(
        await call("erin", "GET", `${query}${after ? `&cursor=${after}` : ""}`),
        GrantListSchema,
      );
      if (listed.length === 0) expect(page.grants).toHaveLength(100);
      else expect(page.grants.length).toBeLessThanOrEqual(100);
      listed.push(...page.grants.map((g) => g.id));
      after = page.next;
    } while (after !== null);
    expect(listed).toEqual(expect.arrayContaining(made));
    expect(new Set(listed).size).toBe(listed.length);
    expect(problem(await call("erin", "GET", "/grants?cursor=bm90LWEtY3Vyc29y"), 400, "ERR_VALIDATION").field).toBe(
      "cursor",
    );
  });

  it("pages events, lists checkpoints and verifies the chain with the broker's key", async () => {
    const page = ok(await call("erin", "GET", "/audit/events?from=1&limit=3"), AuditEventListSchema);
    expect(page.events.map((e) => e.seq)).toEqual([1, 2, 3]);
    expect(page.next).toBe(4);
    expect(page.events[0]?.type).toBe("token.created");
    await broker.checkpoints.checkpointNow();
    const cps = ok(await call("erin", "GET", "/audit/checkpoints"), CheckpointListSchema);
    expect(cps.checkpoints.length).toBeGreaterThan(0);
    expect(cps.signingKey.keyId).toBe(broker.signingKey.keyId);
    const verdict = ok(await call("erin", "GET", "/audit/verify"), AuditVerdictSchema);
    expect(verdict).toMatchObject({ ok: true, failure: null });
    expect(verdict.summary).toMatch(/^OK/);
  });

  it("keeps the audit log to admins: others get 403 ERR_FORBIDDEN", async () => {
    for (const user of ["alice", "bob"] as const) {
      problem(await call(user, "GET", "/audit/events"), 403, "ERR_FORBIDDEN");
      problem(await call(user, "GET", "/audit/verify"), 403, "ERR_FORBIDDEN");
    }
  });
});

describe("OpenAPI", () => {
  const EXPECTED = [
    "get /api/v1/health",
    "get /api/v1/ready",
    "get /api/v1/openapi.json",
    "get /api/v1/me",
    "get /api/v1/roles",
    "post /api/v1/grants",
    "get /api/v1/grants",
    "get /api/v1/grants/{id}",
    "get /api/v1/grants/{id}/credential",
    "get /api/v1/grants/{id}/recording",
    "post /api/v1/grants/{id}/terminal",
    "post /api/v1/terminal/{session}/events",
    "get /api/v1/tokens",
    "get /api/v1/reviews",
    "get /api/v1/drills",
    "get /api/v1/posture",
    "post /api/v1/drills/{name}/run",
    "get /api/v1/drills/runs/{run}",
    "get /api/v1/drills/{name}/runs",
    "get /api/v1/grants/{id}/story",
    "post /api/v1/tokens",
    "post /api/v1/tokens/{token}/revoke",
    "post /api/v1/vault-openings/{id}/review",
    "post /api/v1/terminal/{session}/end",
    "get /api/v1/terminal/{session}",
    ...["approve", "deny", "cancel", "activate", "revoke", "release", "review", "extend", "ack", "resolve"].map(
      (a) => `post /api/v1/grants/{id}/${a}`,
    ),
    "get /api/v1/audit/events",
    "get /api/v1/alarms/channels",
    "get /api/v1/audit/checkpoints",
    "get /api/v1/audit/verify",
    "post /api/v1/reconcile",
    "get /api/v1/incidents/{id}",
    "post /api/v1/targets/{target}/cloudtrail",
    // Registered on every broker, this one without a secret key too (they say what is off).
    "get /api/v1/auth/idp",
    "post /api/v1/auth/idp",
    "post /api/v1/auth/fallback/login",
    "get /api/v1/auth/session",
    "post /api/v1/auth/logout",
    "post /api/v1/auth/step-up",
    "get /api/v1/auth/factors",
    "post /api/v1/auth/factors/totp",
    "post /api/v1/auth/factors/{factor}/confirm",
    "post /api/v1/auth/factors/{factor}/remove",
    "post /api/v1/auth/factors/webauthn",
    "post /api/v1/auth/webauthn/challenge",
    "post /api/v1/auth/factors/recovery",
  ];

  it("lists every route, and every error response is problem+json", async () => {
    const doc = (await call(null, "GET", "/openapi.json")).json() as {
      openapi: string;
      paths: Record<string, Record<string, { responses: Record<string, { content: Record<string, unknown> }> }>>;
      components: { schemas: Record<string, unknown> };
    };
    expect(doc.openapi).toBe("3.1.0");
    const listed = Object.entries(doc.paths).flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m} ${path}`));
    expect(listed.sort()).toEqual([...EXPECTED].sort());
    for (const ops of Object.values(doc.paths)) {
      for (const op of Object.values(ops)) {
        for (const [status, response] of Object.entries(op.responses)) {
          const types = Object.keys(response.content);
          expect(types).toEqual([Number(status) >= 400 ? "application/problem+json" : "application/json"]);
        }
      }
    }
    expect(Object.keys(doc.components.schemas)).toEqual(
      expect.arrayContaining(["Grant", "Problem", "CreateGrantRequest"]),
    );
    // Every documented path is served (an unknown route would answer 404 ERR_NOT_FOUND).
    for (const entry of EXPECTED) {
      const [method = "", path = ""] = entry.split(" ");
      const url = path
        .replace("{id}", ":id")
        .replace("{target}", ":target")
        .replace("{session}", ":session")
        .replace("{token}", ":token")
        .replace("{name}", ":name")
        .replace("{run}", ":run")
        .replace("{factor}", ":factor");
      expect(http.hasRoute({ method: method.toUpperCase() as "GET", url })).toBe(true);
    }
  });
});

describe("unexpected errors", () => {
  it("answer 500 with only the code and the request id; the log gets the details", async () => {
    const lines: string[] = [];
    const queries = createApiQueries({
      config: broker.config,
      policy: broker.config.policy,
      clock: systemClock,
      sha256,
      signingKey: broker.signingKey,
      store: broker.store,
    });
    const failing = createHttpServer({
      config: broker.config,
      service: broker.service,
      tokens: broker.tokens,
      queries: {
        ...queries,
        grants: {
          ...queries.grants,
          page: async () => {
            throw new Error("connection string postgres://admin:hunter2@db/prod refused");
          },
        },
      },
      clock: systemClock,
      ids: createIdGenerator(),
      log: createLogger("info", (line) => lines.push(line)),
    });
    try {
      const res = await failing.inject({ method: "GET", url: "/api/v1/grants", headers: auth("alice") });
      expect(res.statusCode).toBe(500);
      expect(res.headers["content-type"]).toMatch(/^application\/problem\+json/);
      const requestId = res.headers["x-request-id"];
      expect(res.json()).toEqual({ code: "ERR_INTERNAL", instance: requestId });
      expect(res.body).not.toContain("hunter2");
      const logged = lines.map(
        (l) => JSON.parse(l) as { msg: string; requestId?: string; error?: { message: string } },
      );
      const failure = logged.find((l) => l.msg === "request failed");
      expect(failure?.requestId).toBe(requestId);
      expect(failure?.error?.message).toContain("hunter2");
    } finally {
      await failing.close();
    }
  });

  it("never logs tokens or the Authorization header", () => {
    const all = logLines.join("\n");
    expect(logLines.length).toBeGreaterThan(0);
    for (const token of tokens.values()) {
      expect(all).not.toContain(token);
      expect(all).not.toContain(token.split(".")[1]);
    }
    expect(all.toLowerCase()).not.toContain("bearer");
  });
});
