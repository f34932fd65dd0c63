/**
 * API fuzzing with fast-check: well over 10,000 generated requests against every route of a real
 * broker — valid-looking and malformed JSON, wrong types, unicode, injection strings, bodies over
 * the limit, odd content types, random callers, lifecycle actions in any order on real grants.
 * Never a 5xx; every refusal is problem+json with a stable code; afterwards the audit chain
 * verifies and every grant is in a state it can be in. The CLI's argument parser gets the same
 * treatment: any words give a parsed command or a usage error, nothing else.
 */
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Broker } from "../src/app.js";
import { verifyStoreChain } from "../src/audit/audit-verify.js";
import { loadPublicKeys } from "../src/audit/signing-key.js";
import { UsageError } from "../src/cli/cli-io.js";
import { parseCommand } from "../src/cli/command.js";
import { COMMANDS } from "../src/cli/main.js";
import { STATUS_BY_CODE } from "../src/http/problem.js";
import { RECORDED_ALARMS, SECRET_KEY, startTestBroker, type TestBroker } from "./support/test-broker.js";

let t: TestBroker;
let broker: Broker;
const tokens: string[] = [];
const grantIds: string[] = [];
let operations: { method: string; path: string }[] = [];
const statuses = new Map<number, number>();
let requests = 0;

const INJECTIONS = [
  "' OR '1'='1",
  "'; DROP TABLE grants; --",
  "../../../etc/passwd",
  "%2e%2e%2f%2e%2e%2f",
  "<script>alert(1)</script>",
  `$${"{"}jndi:ldap://127.0.0.1/x}`,
  "{{7*7}}",
  "\u0000",
  "\uFEFF\u202E",
  "𝕓𝕣𝕖𝕒𝕜𝕘𝕝𝕒𝕤𝕤",
  "g_".padEnd(300, "x"),
  "null",
  "-1",
  "1e309",
  "__proto__",
  "constructor",
];

beforeAll(async () => {
  t = await startTestBroker({
    base: "minimal",
    config: {
      ...SECRET_KEY,
      ...RECORDED_ALARMS,
      // No request limits to lift: inject() hands each request to fastify's router, past the HTTP
      // server's admission (src/http/server.ts), so the fuzz reaches every route however fast it
      // sends. The limits are tested over real sockets (test/flood-delays-expiry.test.ts).
      admin_groups: ["security"],
      users: { alice: {}, bob: {}, carol: {}, erin: {} },
      groups: { oncall: ["alice", "carol"], leads: ["bob", "carol"], security: ["erin"] },
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
            },
            web: {
              target: "box",
              max_duration: "1h",
              approval: "1 of leads",
              requesters: ["oncall"],
              auto_activate: false,
            },
          },
        },
      },
      targets: { box: { connector: "exec", settings: { grant: ["true"], revoke: ["true"] } } },
      drills: { "db-drill": { scenario: "emergency", role: "production/db", requester: "carol", duration: "1s" } },
    },
  });
  broker = t.broker;
  for (const user of ["alice", "bob", "carol", "erin"]) tokens.push(await t.token(user));
  const doc = (await broker.http.inject({ method: "GET", url: "/api/v1/openapi.json" })).json() as {
    paths: Record<string, Record<string, unknown>>;
  };
  operations = Object.entries(doc.paths).flatMap(([path, ops]) =>
    Object.keys(ops).map((method) => ({ method: method.toUpperCase(), path })),
  );
});

afterAll(async () => {
  await t?.stop();
});

/** Text that looks like anything a client might send. */
const text = fc.oneof(
  fc.constantFrom(...INJECTIONS),
  fc.string({ maxLength: 40 }),
  fc.string({ unit: "grapheme", maxLength: 40 }),
  fc.string({ unit: "binary", maxLength: 20 }),
);

/** A path parameter: a real grant id most of the time (so lifecycle calls land), else anything. */
const param = fc.oneof(
  { weight: 5, arbitrary: fc.constant("$GRANT") },
  { weight: 1, arbitrary: fc.constantFrom("db-drill", "vo_0a1b_1", "INC-1", "box") },
  { weight: 2, arbitrary: text },
);

const plausibleOutcome = fc.oneof(fc.constantFrom("justified", "unjustified", "justified_with_findings"), text);

/** Bodies: plausible ones with wrong bits, arbitrary JSON, and raw bytes that are not JSON. */
const plausible = fc.record(
  {
    role: fc.oneof(fc.constantFrom("production/db", "production/web", "production/nope"), text),
    justification: fc.oneof(fc.constant("the primary is down, failover stuck"), text, fc.integer()),
    incident: fc.oneof(fc.constant("INC-42"), text),
    duration: fc.oneof(fc.constantFrom("30m", "1h", "3h", "0s", "-5m"), fc.integer(), text),
    emergency: fc.oneof(fc.boolean(), text),
    reason: fc.oneof(fc.constant("done with the fix"), text, fc.constant("")),
    comment: text,
    outcome: plausibleOutcome,
    notes: text,
    by: fc.oneof(fc.constantFrom("10m", "1h"), fc.integer(), text),
    description: text,
    scopes: fc.array(fc.oneof(fc.constantFrom("read", "request", "*"), text), { maxLength: 3 }),
    down: fc.boolean(),
    command: text,
    events: fc.array(fc.record({ seq: fc.integer(), t: fc.double(), kind: text, data: text }), { maxLength: 3 }),
    followUps: fc.array(fc.record({ action: text, owner: text }), { maxLength: 2 }),
  },
  { requiredKeys: [] },
);
const body = fc.oneof(
  { weight: 6, arbitrary: plausible.map((b) => ({ json: b })) },
  { weight: 2, arbitrary: fc.jsonValue({ maxDepth: 3 }).map((v) => ({ json: v })) },
  { weight: 1, arbitrary: fc.string({ maxLength: 60 }).map((raw) => ({ raw })) },
  { weight: 1, arbitrary: fc.constant({ raw: `{"justification":"${"x".repeat(70_000)}"}` }) },
  { weight: 1, arbitrary: fc.constant({ none: true }) },
);
const contentType = fc.constantFrom(
  "application/json",
  "application/json; charset=utf-8",
  "text/plain",
  "application/x-www-form-urlencoded",
  "",
);

/** A body fit for the route (values still fuzzed), so lifecycle calls get past validation. */
function bodyFor(path: string): fc.Arbitrary<unknown> {
  const reason = fc.oneof(fc.constant("done with the fix"), text);
  const review = fc.record({ outcome: plausibleOutcome, notes: fc.oneof(fc.constant("checked"), text) });
  if (path === "/api/v1/grants")
    return fc.record(
      {
        role: fc.oneof({ weight: 4, arbitrary: fc.constantFrom("production/db", "production/web") }, text),
        justification: fc.oneof({ weight: 4, arbitrary: fc.constant("the primary is down, failover stuck") }, text),
        incident: fc.oneof({ weight: 4, arbitrary: fc.constant("INC-42") }, text),
        duration: fc.oneof(fc.constantFrom("30m", "1h", "3h", "-5m"), fc.integer(), text),
        emergency: fc.boolean(),
      },
      { requiredKeys: ["role", "justification", "incident"] },
    );
  if (/\/(deny|cancel|revoke)$/.test(path)) return fc.record({ reason });
  if (path.endsWith("/extend"))
    return fc.record({ by: fc.oneof(fc.constantFrom("10m", "1h"), fc.integer(), text), reason });
  if (path.endsWith("/review")) return review;
  if (path.endsWith("/approve") || path.endsWith("/ack")) return fc.record({ comment: text }, { requiredKeys: [] });
  if (path.endsWith("/terminal")) return fc.record({ command: text });
  if (path.endsWith("/events"))
    return fc.record({
      events: fc.array(fc.record({ seq: fc.integer(), t: fc.double(), kind: fc.constantFrom("o", "i"), data: text }), {
        maxLength: 3,
      }),
    });
  if (path.endsWith("/end")) return fc.record({ reason });
  if (path === "/api/v1/tokens")
    return fc.record(
      { description: text, scopes: fc.array(text, { maxLength: 2 }) },
      { requiredKeys: ["description"] },
    );
  if (path === "/api/v1/auth/idp") return fc.record({ down: fc.boolean(), reason });
  return fc.constant({});
}

/** One generated request, its body fit for the route most of the time. */
function requestArbitrary() {
  return fc.nat().chain((n) => {
    const op = operations[n % operations.length] as { method: string; path: string };
    return fc.record({
      op: fc.constant(n),
      caller: fc.integer({ min: -2, max: 3 }), // -2: none, -1: a wrong token, else a user
      params: fc.array(param, { minLength: 3, maxLength: 3 }),
      query: fc.dictionary(fc.oneof(fc.constantFrom("state", "limit", "mine", "from", "overdue", "role"), text), text, {
        maxKeys: 3,
      }),
      body: fc.oneof(
        {
          weight: 4,
          arbitrary: bodyFor(op.path).map((json) => ({ json }) as { json?: unknown; raw?: string; none?: true }),
        },
        { weight: 3, arbitrary: body },
      ),
      contentType: fc.oneof({ weight: 4, arbitrary: fc.constant("application/json") }, contentType),
    });
  });
}

const KNOWN_CODES = new Set(Object.keys(STATUS_BY_CODE));

type Generated = ReturnType<typeof requestArbitrary> extends fc.Arbitrary<infer T> ? T : never;

async function send(r: Generated): Promise<void> {
  const op = operations[r.op % operations.length] as { method: string; path: string };
  let i = 0;
  const path = op.path.replace(/\{[^}]+\}/g, () => {
    const p = r.params[i++] as string;
    const value = p === "$GRANT" ? (grantIds[r.op % Math.max(1, grantIds.length)] ?? "g_none") : p;
    return encodeURIComponent(value);
  });
  const qs = new URLSearchParams(r.query as Record<string, string>).toString();
  const headers: Record<string, string> = {};
  if (r.caller === -1) headers.authorization = "Bearer t_fuzz.not-a-real-token";
  else if (r.caller >= 0) headers.authorization = `Bearer ${tokens[r.caller]}`;
  const b = r.body as { json?: unknown; raw?: string; none?: true };
  let payload: string | undefined;
  if (op.method !== "GET" && !b.none) {
    payload = b.raw ?? JSON.stringify(b.json ?? null);
    if (r.contentType) headers["content-type"] = r.contentType;
  }
  const res = await broker.http.inject({
    method: op.method as "GET",
    url: `${path}${qs ? `?${qs}` : ""}`,
    headers,
    ...(payload === undefined ? {} : { payload }),
  });
  requests++;
  statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1);
  const where = `${op.method} ${path}: ${res.statusCode} ${res.body.slice(0, 300)}`;
  expect(res.statusCode, where).toBeLessThan(500);
  if (res.statusCode >= 400) {
    expect(res.headers["content-type"], where).toContain("application/problem+json");
    const problem = res.json() as { code?: unknown; status?: unknown; detail?: unknown };
    expect(KNOWN_CODES.has(String(problem.code)), where).toBe(true);
    expect(problem.status, where).toBe(res.statusCode);
  } else if (op.method === "POST" && op.path === "/api/v1/grants" && res.statusCode === 201) {
    grantIds.push((res.json() as { id: string }).id);
  }
}

/** Grants exist to act on: some requested, some active, some ended. */
async function seedGrants(): Promise<void> {
  const alice = tokens[0] as string;
  for (const role of ["production/db", "production/web"]) {
    const res = await broker.http.inject({
      method: "POST",
      url: "/api/v1/grants",
      headers: { authorization: `Bearer ${alice}` },
      payload: { role, justification: "fuzz seed grant", incident: "INC-1" },
    });
    if (res.statusCode === 201) grantIds.push((res.json() as { id: string }).id);
  }
}

async function invariantsHold(): Promise<void> {
  const keys = loadPublicKeys([broker.signingKey.publicKeyPem]);
  const verdict = await verifyStoreChain(broker.store, keys.verifySignature);
  expect(verdict.ok, JSON.stringify(verdict)).toBe(true);
  for (const g of await broker.service.list({ limit: 100_000 })) {
    const where = `grant ${g.id} (${g.state}, access ${g.access})`;
    if (g.state === "active") expect(g.endsAt, where).not.toBeNull();
    if (g.state === "requested" || g.state === "approved") expect(["none", "revoked"], where).toContain(g.access);
    if (g.state === "ended" || g.state === "reviewed") expect(g.endedAt, where).not.toBeNull();
    if (g.state === "reviewed") expect(g.review, where).not.toBeNull();
    const events = await broker.store.readGrantAudit([g.id]);
    expect(events[0]?.type, where).toBe("grant.requested");
  }
}

describe("API fuzzing", () => {
  for (const round of [1, 2, 3, 4, 5]) {
    it(`round ${round}: 2,200 generated requests, never a 5xx, every refusal problem+json with a known code; state consistent after`, async () => {
      await seedGrants();
      await fc.assert(fc.asyncProperty(requestArbitrary(), send), {
        numRuns: 2_200,
        seed: 4711 * round,
        endOnFailure: true,
      });
      await invariantsHold();
    }, 180_000);
  }

  it("sent more than 10,000 requests in all, and got both successes and refusals", () => {
    expect(requests).toBeGreaterThanOrEqual(11_000);
    const ok = [...statuses].filter(([s]) => s < 300).reduce((n, [, c]) => n + c, 0);
    expect(ok).toBeGreaterThan(200); // the fuzzer reached the handlers, not only the validators
    expect(statuses.get(401) ?? 0).toBeGreaterThan(100);
    expect(statuses.get(400) ?? 0).toBeGreaterThan(100);
    console.log("fuzz statuses", JSON.stringify(Object.fromEntries([...statuses].sort((a, b) => a[0] - b[0]))));
  });
});

describe("CLI argument parser fuzzing", () => {
  const word = fc.oneof(
    fc.constantFrom("--config", "--json", "--reason", "--incident", "-h", "--help", "--", "-", "--=", "--x=y", "-abc"),
    fc.string({ maxLength: 12 }),
    fc.constantFrom(...INJECTIONS),
  );
  it("any words give a parsed command or a usage error (5,000 runs)", () => {
    fc.assert(
      fc.property(fc.nat(), fc.array(word, { maxLength: 8 }), (n, argv) => {
        const command = COMMANDS[n % COMMANDS.length] as (typeof COMMANDS)[number];
        try {
          parseCommand(command, argv);
        } catch (e) {
          expect(e, `${command.name} ${JSON.stringify(argv)}`).toBeInstanceOf(UsageError);
        }
      }),
      { numRuns: 5_000, seed: 42 },
    );
  });
});
