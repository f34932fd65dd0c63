/**
 * The rough edges a new user met on the demo (issue 18), each pinned through the real HTTP API of
 * a real broker (SQLite, exec targets that hand out no credential) and the CLI's own formatting:
 *
 * - rotation lists (and alarms about) only credentials the configuration has: no data key without
 *   `secrets.key_file` — in `rotation status`, posture, the evidence report and the overdue worker;
 * - a read event is written only for a real read: no `grant.credential_read` (nor its alarm) when
 *   the target hands out no credential, no `grant.recording_read` for an empty recording;
 * - `show` has a line per extension and the request's own duration; `review` offers the verdict
 *   command only to someone who may record it;
 * - a drill's grant is marked wherever grants are listed, stays out of the review queue, is never
 *   reviewed, and its credential is for the drill alone;
 * - an unknown role name gets a "did you mean", and `db-admin` without its domain a `DOMAIN/ROLE`
 *   hint — in a request, the grant list's filter and the configuration's drills alike.
 */
import { rmSync } from "node:fs";
import type { FastifyInstance } from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Broker } from "../src/app.js";
import { verifyStoreChain } from "../src/audit/audit-verify.js";
import { buildEvidenceReport, reportHtml, reportJson } from "../src/audit/evidence-report.js";
import { loadPublicKeys } from "../src/audit/signing-key.js";
import { grantDetail, grantsTable } from "../src/cli/format.js";
import { storyText } from "../src/cli/review-format.js";
import { GrantListSchema, GrantStorySchema, GrantViewSchema } from "../src/contract/api.js";
import { packStatements } from "../src/core/statement-batch.js";
import { rotationStatus } from "../src/service/rotation.js";
import { ctx } from "./support/ctx.js";
import {
  loadTestConfig,
  RECORDED_ALARMS,
  SECRET_KEY,
  startTestBroker,
  type TestBroker,
  writeTestConfig,
} from "./support/test-broker.js";

const USERS = ["alice", "bob", "carol", "erin"] as const;
type User = (typeof USERS)[number];
let t: TestBroker;
let broker: Broker;
let http: FastifyInstance;
const tokens = new Map<User, string>();

// A configuration without `secrets:` (like the demo's), with a drill of the approval path.
const DRILL = {
  scenario: "approval-path",
  role: "production/db-admin",
  requester: "alice",
  approvers: ["bob", "carol"],
  incident: "INC-0",
  duration: "1s",
} as const;

beforeAll(async () => {
  t = await startTestBroker({ config: { drills: { "db-drill": DRILL } } });
  ({ broker, http } = t);
  for (const user of USERS) tokens.set(user, await t.token(user));
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

/** An active grant of alice's, approved by bob and carol. */
async function activeGrant(): Promise<Json> {
  const req = await call("alice", "POST", "/grants", {
    role: "production/db-admin",
    justification: "primary is down, failover stuck",
    incident: "INC-4711",
    duration: "30m",
  });
  expect(req.status, JSON.stringify(req.json)).toBe(201);
  await call("bob", "POST", `/grants/${req.json.id}/approve`, {});
  const approved = await call("carol", "POST", `/grants/${req.json.id}/approve`, {});
  expect(approved.json.state).toBe("active");
  return approved.json;
}

const eventsOf = async (grantId: string) => (await broker.store.readGrantAudit([grantId])).map((e) => e.type);

describe("rotation lists only credentials the configuration has", () => {
  it("no data key without secrets.key_file: not in rotation status, posture, the report or the overdue worker", async () => {
    const rows = await broker.rotationStatus();
    expect(rows.map((r) => r.key)).toEqual(["signing-key"]);
    expect(rows.every((r) => !r.overdue)).toBe(true);

    const report = await broker.rotation.runOnce();
    expect(report.overdue).toEqual([]);
    const overdueEvents = (await broker.store.readAudit(1, 10_000)).filter(
      (e) => e.type === "credential.rotation_overdue",
    );
    expect(overdueEvents).toEqual([]);

    const posture = await call("carol", "GET", "/posture");
    expect(posture.status).toBe(200);
    expect(posture.json.credentials.map((c: Json) => c.credential)).toEqual(["audit signing key"]);

    const chain = await verifyStoreChain(
      broker.store,
      loadPublicKeys([broker.signingKey.publicKeyPem]).verifySignature,
    );
    const evidence = reportJson(
      await buildEvidenceReport(broker.store, {
        from: 0,
        to: Date.now() + 1,
        now: Date.now(),
        chain,
        credentials: rows,
      }),
    ) as Json;
    expect(evidence.rotation.credentials.map((c: Json) => c.credential)).toEqual(["audit signing key"]);
    expect(evidence.summary.credentialsOverdue).toBe(0);
  });

  it("a configuration with secrets.key_file lists its data key", async () => {
    const other = writeTestConfig({
      base: "minimal",
      config: { ...SECRET_KEY, ...RECORDED_ALARMS, users: { alice: {} }, groups: { oncall: ["alice"] } },
    });
    try {
      const rows = await rotationStatus(loadTestConfig(other), broker.store, Date.now());
      expect(rows.map((r) => r.key)).toEqual(["signing-key", "data-key"]);
    } finally {
      rmSync(other.dir, { recursive: true, force: true });
    }
  });
});

describe("a read event is written only for a real read", () => {
  it("`credential` on a target that hands out none: ERR_NOT_FOUND, no credential_read, no alarm", async () => {
    const g = await activeGrant();
    const res = await call("alice", "GET", `/grants/${g.id}/credential`);
    expect(res.status).toBe(404);
    expect(res.json.code).toBe("ERR_NOT_FOUND");
    expect(res.json.detail).toMatch(/has no credential: its target \(box\) hands none out/);
    expect(await eventsOf(g.id)).not.toContain("grant.credential_read");
    const alarms = await broker.store.listAlarms(g.id);
    expect(alarms.map((a) => a.eventType)).not.toContain("grant.credential_read");
    await call("alice", "POST", `/grants/${g.id}/release`, {});
  });

  it("an empty recording writes no recording_read; one with statements writes one, with the count", async () => {
    const g = await activeGrant();
    const empty = await call("bob", "GET", `/grants/${g.id}/recording`);
    expect(empty.status).toBe(200);
    expect(empty.json.statements).toEqual([]);
    expect(await eventsOf(g.id)).not.toContain("grant.recording_read");

    await broker.store.transaction((tx) =>
      tx.insertStatementBatches(
        packStatements([
          {
            grantId: g.id,
            sessionId: "s_test",
            seq: 1,
            startedAt: Date.now(),
            endedAt: Date.now(),
            kind: "simple",
            text: "SELECT 1",
            params: null,
            rows: 1,
            tag: "SELECT 1",
            error: null,
            bytes: 8,
          },
        ]),
      ),
    );
    const full = await call("bob", "GET", `/grants/${g.id}/recording`);
    expect(full.json.statements).toHaveLength(1);
    const reads = (await broker.store.readGrantAudit([g.id])).filter((e) => e.type === "grant.recording_read");
    expect(reads.map((e) => [e.actor, JSON.parse(e.payload).data.statements])).toEqual([["bob", 1]]);
    await call("alice", "POST", `/grants/${g.id}/release`, {});
  });
});

describe("show and review say what happened, to whom it concerns", () => {
  it("`show` after `extend`: the request's own duration and an `extended` line", async () => {
    const g = await activeGrant();
    const extended = await call("alice", "POST", `/grants/${g.id}/extend`, { by: "15m", reason: "restore running" });
    expect(extended.status, JSON.stringify(extended.json)).toBe(200);
    const shown = await call("alice", "GET", `/grants/${g.id}`);
    const view = GrantViewSchema.parse(shown.json);
    expect(view.durationS).toBe(45 * 60);
    expect(view.extensions).toEqual([
      expect.objectContaining({ by: "alice", extraS: 900, reason: "restore running", endsAt: view.endsAt }),
    ]);
    const text = grantDetail(view);
    expect(text).toContain("requested by alice for 30m");
    expect(text).toMatch(/activated at target box, until .*\n.*extended by alice by 15m, until .* — "restore running"/);
    await call("alice", "POST", `/grants/${g.id}/release`, {});
  });

  it("`review` gives the verdict command only to someone who may record it, and everyone else the reason", async () => {
    const g = await activeGrant();
    await call("alice", "POST", `/grants/${g.id}/release`, {});
    const byApprover = await call("carol", "GET", `/grants/${g.id}/story`);
    const story = GrantStorySchema.parse(byApprover.json);
    expect(story).toMatchObject({ canReview: false, why: expect.stringContaining("carol approved grant") });
    expect(storyText(story)).not.toContain("Record the verdict");
    expect(storyText(story)).toContain("You cannot record its verdict: carol approved grant");

    const byReviewer = GrantStorySchema.parse((await call("erin", "GET", `/grants/${g.id}/story`)).json);
    expect(byReviewer).toMatchObject({ canReview: true, why: null });
    expect(storyText(byReviewer)).toContain(`Record the verdict: breakglass review ${g.id} --outcome`);
  });
});

describe("a drill's grant is a rehearsal: marked, not queued, not reviewed", () => {
  it("is marked in the API, `grants`, `show` and the evidence report; stays out of the queue; refuses a review", async () => {
    const started = await broker.drills.start(ctx("erin"), "db-drill");
    const run = await broker.drills.finished(started.id);
    expect(run.result, JSON.stringify(run.steps)).toBe("passed");
    const id = run.grantId as string;

    const view = GrantViewSchema.parse((await call("erin", "GET", `/grants/${id}`)).json);
    expect(view).toMatchObject({ drill: true, state: "ended", reviewDueAt: null });
    const list = GrantListSchema.parse((await call("erin", "GET", "/grants")).json).grants;
    expect(list.find((g) => g.id === id)?.drill).toBe(true);
    expect(list.filter((g) => g.id !== id).every((g) => g.drill === false)).toBe(true);
    const row = grantsTable(list)
      .split("\n")
      .find((l) => l.startsWith(id));
    expect(row).toMatch(/ended \(expired\) \[DRILL\]\s+alice\s+drill: not reviewed\s+INC-0/);
    expect(grantDetail(view)).toMatch(/state +ended \(expired\) \[DRILL\] +\(a drill's grant/);

    const queue = await call("erin", "GET", "/reviews");
    expect(queue.json.reviews.map((r: Json) => r.grant.id)).not.toContain(id);
    const refused = await call("erin", "POST", `/grants/${id}/review`, { outcome: "justified", notes: "drill" });
    expect(refused).toMatchObject({ status: 409, json: { code: "ERR_INVALID_TRANSITION" } });
    expect(refused.json.detail).toContain("belongs to a drill");
    expect(await eventsOf(id)).not.toContain("grant.reviewed");

    const posture = await call("erin", "GET", "/posture");
    const role = posture.json.roles.find((r: Json) => r.role === "production/db-admin");
    const realEnded = list.filter((g) => g.role === "production/db-admin" && g.state === "ended" && !g.drill);
    expect(role.openReviews).toBe(realEnded.length);

    const chain = await verifyStoreChain(
      broker.store,
      loadPublicKeys([broker.signingKey.publicKeyPem]).verifySignature,
    );
    const html = reportHtml(
      await buildEvidenceReport(broker.store, { from: 0, to: Date.now() + 1, now: Date.now(), chain }),
    );
    const page = html.slice(html.indexOf(`<h2>${id}`));
    expect(page.slice(0, page.indexOf("</section>"))).toContain(
      "A drill's grant: a rehearsal of the real path, not reviewed",
    );
  });

  it("its credential is for the drill alone, not for the person the drill acts as", async () => {
    const g = await broker.service.request(ctx("alice"), {
      roleId: "production/db-admin",
      justification: "[DRILL] rehearsal of the break-glass path",
      incident: "INC-0",
      drill: true,
    });
    await broker.service.approve(ctx("bob"), g.id, null);
    const active = await broker.service.approve(ctx("carol"), g.id, null);
    expect(active.state).toBe("active");
    await expect(broker.service.credential(ctx("alice"), g.id)).rejects.toMatchObject({
      code: "ERR_FORBIDDEN",
      message: expect.stringContaining("only the drill itself reads its credential"),
    });
    // The drill itself gets the target's answer (this exec target hands out none).
    await expect(broker.service.credential({ ...ctx("alice"), drillRun: "d_test" }, g.id)).rejects.toMatchObject({
      code: "ERR_NOT_FOUND",
    });
    expect(await eventsOf(g.id)).not.toContain("grant.credential_read");
    await broker.service.release(ctx("alice"), g.id);
  });
});

describe("role names: a near miss gets a hint wherever a role is named", () => {
  const request = (role: string) =>
    call("alice", "POST", "/grants", { role, justification: "primary is down, failover stuck", incident: "INC-1" });

  it("a request for `db-admin` (no domain) or a typo says what was meant", async () => {
    const bare = await request("db-admin");
    expect(bare).toMatchObject({ status: 404, json: { code: "ERR_NOT_FOUND" } });
    expect(bare.json.detail).toBe(
      'no role "db-admin" is configured; roles are named DOMAIN/ROLE: did you mean `production/db-admin`?',
    );
    const typo = await request("production/db-admn");
    expect(typo.json.detail).toBe('no role "production/db-admn" is configured; did you mean `production/db-admin`?');
    const unknown = await request("payroll/everything");
    expect(unknown.json.detail).toMatch(/configured roles: production\/db-admin, production\/db-reader$/);
  });

  it("the grant list's role filter answers a role that does not exist instead of an empty list", async () => {
    const bare = await call("alice", "GET", "/grants?role=db-admin");
    expect(bare).toMatchObject({ status: 404, json: { code: "ERR_NOT_FOUND" } });
    expect(bare.json.detail).toContain("roles are named DOMAIN/ROLE: did you mean `production/db-admin`?");
    const real = await call("alice", "GET", "/grants?role=production/db-reader");
    expect(real).toMatchObject({ status: 200, json: { grants: [] } });
  });

  it("a drill naming `db-admin` in the configuration gets the same hint", () => {
    const other = writeTestConfig({ config: { drills: { "db-drill": { ...DRILL, role: "db-admin" } } } });
    try {
      let issues: { path: string; hint?: string }[] = [];
      try {
        loadTestConfig(other);
      } catch (e) {
        issues = (e as { issues: { path: string; hint?: string }[] }).issues;
      }
      expect(issues.find((i) => i.path === "drills.db-drill.role")?.hint).toBe(
        "roles are named DOMAIN/ROLE: did you mean `production/db-admin`?",
      );
    } finally {
      rmSync(other.dir, { recursive: true, force: true });
    }
  });
});
