/**
 * Reviewed every time: the review rules (never the holder or an approver; emergency activations
 * by the reviewer group), deadlines (24 h for emergency activations, the role's otherwise),
 * follow-ups with owners, `unjustified` paging security, the review queue and a grant's whole
 * story — through the real HTTP API of a real broker (SQLite store, exec target).
 */
import type { FastifyInstance } from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Broker } from "../src/app.js";
import { SYSTEM_CONTEXT } from "../src/core/request-context.js";
import { startTestBroker, type TestBroker } from "./support/test-broker.js";

const USERS = ["alice", "bob", "carol", "erin"] as const;
type User = (typeof USERS)[number];
let t: TestBroker;
let broker: Broker;
let http: FastifyInstance;
const tokens = new Map<User, string>();

beforeAll(async () => {
  t = await startTestBroker({ start: false });
  broker = t.broker;
  for (const user of USERS) tokens.set(user, await t.token(user));
  http = t.http;
});

afterAll(async () => {
  await t?.stop();
});

// biome-ignore lint/suspicious/noExplicitAny: responses are checked with expect(), field by field
type Json = any;

async function call(user: User, method: "GET" | "POST", url: string, payload?: unknown) {
  const res = await http.inject({
    method,
    url: `/api/v1${url}`,
    headers: { authorization: `Bearer ${tokens.get(user)}` },
    ...(payload === undefined ? {} : { payload: payload as Record<string, unknown> }),
  });
  return { status: res.statusCode, json: res.json() as Json };
}

async function endedGrant(emergency: boolean): Promise<Json> {
  const req = await call("alice", "POST", "/grants", {
    role: "production/db-admin",
    justification: "replica lag, killing a runaway query",
    incident: "INC-42",
    ...(emergency ? { emergency: true } : {}),
  });
  expect(req.status).toBe(201);
  if (!emergency) {
    await call("bob", "POST", `/grants/${req.json.id}/approve`, {});
    await call("carol", "POST", `/grants/${req.json.id}/approve`, {});
  }
  const released = await call("alice", "POST", `/grants/${req.json.id}/release`, {});
  expect(released.json.state).toBe("ended");
  return released.json;
}

describe("post-use review", () => {
  it("is never by the holder or an approver; the queue says who may, and why not", async () => {
    const g = await endedGrant(false);
    // Role deadline (defaults.review_deadline, 5d) for a normal activation.
    expect(Date.parse(g.reviewDueAt) - Date.parse(g.endedAt)).toBe(5 * 86_400_000);
    const own = await call("alice", "POST", `/grants/${g.id}/review`, { outcome: "justified", notes: "fine" });
    expect(own).toMatchObject({ status: 403, json: { code: "ERR_FORBIDDEN" } });
    const approver = await call("bob", "POST", `/grants/${g.id}/review`, { outcome: "justified", notes: "fine" });
    expect(approver.json.detail).toContain("approved grant");
    const queue = await call("bob", "GET", "/reviews");
    const row = queue.json.reviews.find((r: Json) => r.grant.id === g.id);
    expect(row).toMatchObject({
      overdue: false,
      emergency: false,
      canReview: false,
      why: expect.stringContaining("approved"),
    });
    const mine = await call("erin", "GET", "/reviews?mine=true");
    expect(mine.json.reviews.map((r: Json) => r.grant.id)).toContain(g.id);
    const done = await call("erin", "POST", `/grants/${g.id}/review`, {
      outcome: "justified_with_findings",
      notes: "left a temp table behind",
      followUps: [{ action: "drop tmp_fix", owner: "alice", due: "2026-12-05" }],
    });
    expect(done.status).toBe(200);
    expect(done.json.review).toMatchObject({
      reviewer: "erin",
      followUps: [{ action: "drop tmp_fix", owner: "alice", due: "2026-12-05" }],
    });
    const unknownOwner = await endedGrant(false);
    const bad = await call("erin", "POST", `/grants/${unknownOwner.id}/review`, {
      outcome: "justified",
      notes: "ok",
      followUps: [{ action: "x", owner: "nobody" }],
    });
    expect(bad.json.code).toBe("ERR_VALIDATION");
    await call("erin", "POST", `/grants/${unknownOwner.id}/review`, { outcome: "justified", notes: "ok" });
  });

  it("emergency activations: due within 24 h, reviewed by the reviewer group; unjustified pages security", async () => {
    const g = await endedGrant(true);
    expect(Date.parse(g.reviewDueAt) - Date.parse(g.endedAt)).toBe(86_400_000);
    // bob did not approve (nobody did) but is not in the reviewer group (admin_groups: security).
    const notReviewer = await call("bob", "POST", `/grants/${g.id}/review`, { outcome: "justified", notes: "ok" });
    expect(notReviewer.status).toBe(403);
    expect(notReviewer.json.detail).toContain("reviewed by a member of security");
    const verdict = await call("erin", "POST", `/grants/${g.id}/review`, {
      outcome: "unjustified",
      notes: "no outage at that time; access was not needed",
    });
    expect(verdict.status).toBe(200);
    const alarms = await broker.store.listAlarms(g.id);
    const reviewAlarms = alarms.filter((a) => a.eventType === "grant.reviewed");
    const security = broker.config.alarms.routing.securityChannels;
    expect(reviewAlarms.map((a) => a.channel).sort()).toEqual(expect.arrayContaining([...security]));
    const message = JSON.parse(reviewAlarms[0]?.payload ?? "{}") as { severity: string; summary: string };
    expect(message.severity).toBe("critical");
    expect(message.summary).toContain("UNJUSTIFIED break-glass use");
  });

  it("tells the whole story: approvals, events with facts, alarms with delivery, recording, timing", async () => {
    const g = await endedGrant(false);
    const story = await call("erin", "GET", `/grants/${g.id}/story`);
    expect(story.status).toBe(200);
    expect(story.json.grant.approvals.map((a: Json) => a.approver)).toEqual(["bob", "carol"]);
    expect(story.json.timeline.map((e: Json) => e.type)).toEqual(
      expect.arrayContaining([
        "grant.requested",
        "grant.approval_added",
        "grant.approved",
        "grant.activated",
        "grant.released",
      ]),
    );
    expect(story.json.timeline.find((e: Json) => e.type === "grant.requested").data).toMatchObject({
      emergency: false,
    });
    expect(story.json.alarms.some((a: Json) => a.event === "grant.activated")).toBe(true);
    expect(story.json.recording).toEqual({
      gatewaySessions: 0,
      statements: 0,
      blocked: [],
      errors: 0,
      terminalSessions: 0,
      sessions: [],
    });
    expect(story.json.timing.timeToAccessS).toBeGreaterThanOrEqual(0);
    expect(story.json.timing.heldS).toBeGreaterThanOrEqual(0);
    // Reading the story needs the review scope.
    const reader = await broker.tokens.create(SYSTEM_CONTEXT, { user: "erin", description: "r", scopes: ["read"] });
    const res = await http.inject({
      method: "GET",
      url: `/api/v1/grants/${g.id}/story`,
      headers: { authorization: `Bearer ${reader.token.reveal()}` },
    });
    expect(res.statusCode).toBe(403);
  });
});
