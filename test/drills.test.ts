/**
 * Drills on the real components: the approval path on a real PostgreSQL target (request, two
 * approvals, the credential proven with a query, the window closing, the same credential refused
 * afterwards), the emergency path, and a drill whose target is unreachable failing at the exact
 * step with the target's error. Events are tagged `drill`, alarms start with [DRILL].
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Broker } from "../src/app.js";
import { ctx } from "./support/ctx.js";
import { freePort } from "./support/free-port.js";
import { type PostgresTarget, startPostgresTarget, TARGET_ENV } from "./support/postgres-target.js";
import { type RoleOverride, SECRET_KEY, startTestBroker, type TestBroker } from "./support/test-broker.js";

let target: PostgresTarget;
let t: TestBroker;
let dir: string;
let broker: Broker;
const admin = ctx("erin");
const bearer = async (user: string) => ({
  authorization: `Bearer ${(await broker.tokens.create(admin, { user, description: "t" })).token.reveal()}`,
});

beforeAll(async () => {
  target = await startPostgresTarget();
  const closed = await freePort();
  const gatewayPort = await freePort();
  const pgRole = (over: RoleOverride): RoleOverride => ({
    target: "pg-app",
    grants: { roles: ["recovery_rw"] },
    max_duration: "1h",
    requesters: ["oncall"],
    ...over,
  });
  t = await startTestBroker({
    base: "minimal",
    env: { [TARGET_ENV]: target.adminUrl, BG_DOWN_URL: `postgres://postgres@127.0.0.1:${closed}/app` },
    config: {
      ...SECRET_KEY,
      workers: { expiry_poll: "100ms" },
      gateway: { host: "127.0.0.1", port: gatewayPort, targets: ["pg-app"] },
      alarms: {
        channels: { record: { type: "file", path: "./alarms.jsonl" } },
        security_channels: ["record"],
        routes: [{ events: ["*"], channels: ["record"] }],
      },
      auth: { oidc: { issuer: `http://127.0.0.1:${closed}`, client_id: "breakglass", allow_insecure_http: true } },
      admin_groups: ["security"],
      users: {
        alice: { name: "Alice" },
        bob: { name: "Bob" },
        carol: { name: "Carol" },
        erin: { name: "Erin" },
        "drill-bot": { name: "Drill bot" },
      },
      groups: { oncall: ["alice", "drill-bot"], leads: ["bob", "carol"], security: ["erin"] },
      domains: {
        production: {
          roles: {
            "db-admin": pgRole({ approval: "2 of leads", emergency: true, fallback: true }),
            "db-rollback": pgRole({ approval: "1 of leads", guard: { deny: ["drop_table", "truncate"] } }),
            "db-down": pgRole({ target: "pg-down", approval: "1 of leads" }),
          },
        },
      },
      targets: {
        "pg-app": { connector: "postgres", settings: { admin_url: { env: TARGET_ENV }, timeout: "5s" } },
        "pg-down": { connector: "postgres", settings: { admin_url: { env: "BG_DOWN_URL" }, timeout: "2s" } },
      },
      drills: {
        "approval-path": {
          scenario: "approval-path",
          role: "production/db-admin",
          requester: "alice",
          approvers: ["bob", "carol"],
          duration: "3s",
          probe: { sql: "SELECT count(*) FROM public.accounts" },
        },
        emergency: {
          scenario: "emergency",
          role: "production/db-admin",
          requester: "alice",
          duration: "10m",
          probe: { sql: "SELECT 1" },
          checks: [
            {
              name: "credential is a connection string",
              exec: ["sh", "-c", 'case "$BREAKGLASS_CREDENTIAL" in postgres*) exit 0;; *) exit 3;; esac'],
            },
          ],
        },
        "policy-rollback": {
          scenario: "policy-rollback",
          role: "production/db-rollback",
          requester: "alice",
          approvers: ["carol"],
          duration: "3s",
          probe: { sql: "SELECT count(*) FROM public.accounts" },
          guard_probe: { sql: "DROP TABLE public.accounts" },
        },
        unguarded: {
          scenario: "policy-rollback",
          role: "production/db-admin",
          requester: "alice",
          approvers: ["bob", "carol"],
          probe: { sql: "SELECT 1" },
          guard_probe: { sql: "DELETE FROM public.accounts" },
        },
        "idp-outage": {
          scenario: "idp-outage",
          role: "production/db-admin",
          requester: "drill-bot",
          factor_secret: { file: "./drill-bot.totp" },
          probe: { sql: "SELECT 1" },
        },
        "idp-outage-wrong-factor": {
          scenario: "idp-outage",
          role: "production/db-admin",
          requester: "drill-bot",
          factor_secret: { file: "./wrong.totp" },
        },
        "target-down": {
          scenario: "approval-path",
          role: "production/db-down",
          requester: "alice",
          approvers: ["bob"],
          probe: { sql: "SELECT 1" },
        },
      },
    },
  });
  ({ broker, dir } = t);
});

afterAll(async () => {
  await t?.stop();
  await target?.stop();
});

describe("drills", () => {
  it("approval path: every step on the real target, timed; the credential refused after the window", async () => {
    const started = await broker.drills.start(admin, "approval-path");
    expect(started.result).toBe("running");
    const run = await broker.drills.finished(started.id);
    expect(run.steps.filter((s) => !s.ok)).toEqual([]);
    expect(run.result).toBe("passed");
    expect(run.steps.map((s) => s.name)).toEqual([
      "request",
      "approval by bob",
      "approval by carol",
      "access granted at the target",
      "credential for the holder",
      "access works (probe)",
      "window closed at the target",
      "access gone (probe fails)",
    ]);
    expect(run.steps.find((s) => s.name === "access works (probe)")?.detail).toBe("SELECT 1");
    expect(run.timeToAccessMs).toBeGreaterThan(0);
    expect(run.steps.at(-1)?.detail).toMatch(/refused as it should be/);

    // Tagged everywhere: the grant's events, their alarms, and the stored run.
    const grant = await broker.store.getGrant(run.grantId ?? "");
    expect(grant).toMatchObject({ drill: true, state: "ended", endReason: "expired" });
    const events = await broker.store.readGrantAudit([grant?.id ?? ""]);
    expect(events.every((e) => (JSON.parse(e.payload) as { data: { drill?: boolean } }).data.drill === true)).toBe(
      true,
    );
    const alarms = await broker.store.listAlarms(grant?.id ?? "");
    const activation = alarms.find((a) => a.eventType === "grant.activated");
    expect((JSON.parse(activation?.payload ?? "{}") as { summary: string }).summary).toMatch(/^\[DRILL\] /);
    expect((await broker.store.getDrillRun(run.id))?.result).toBe("passed");
    const finished = (await broker.store.readAudit(1, 100_000)).filter((e) => e.type === "drill.finished").at(-1);
    expect(JSON.parse(finished?.payload ?? "{}")).toMatchObject({ data: { name: "approval-path", result: "passed" } });
  });

  it("emergency path: self-activation, probe, release, access gone", async () => {
    const run = await broker.drills.finished((await broker.drills.start(admin, "emergency")).id);
    expect(run.steps.filter((s) => !s.ok)).toEqual([]);
    expect(run.steps.map((s) => s.name)).toContain("release");
    expect(run.steps.find((s) => s.name === "credential is a connection string")).toMatchObject({
      ok: true,
      detail: "probe exited 0",
    });
    expect((await broker.store.getGrant(run.grantId ?? ""))?.emergency).toBe(true);
  });

  it("fails at the exact step, with the target's own error, and leaves nothing open", async () => {
    const run = await broker.drills.finished((await broker.drills.start(admin, "target-down")).id);
    expect(run.result).toBe("failed");
    const failed = run.steps.find((s) => !s.ok);
    expect(failed?.name).toBe("access granted at the target");
    expect(failed?.detail).toMatch(/ECONNREFUSED|connect/);
    const grant = await broker.store.getGrant(run.grantId ?? "");
    expect(["ended", "cancelled"]).toContain(grant?.state);
    const finished = (await broker.store.readAudit(1, 100_000)).filter((e) => e.type === "drill.finished").at(-1);
    expect(JSON.parse(finished?.payload ?? "{}")).toMatchObject({
      data: { name: "target-down", result: "failed", failedStep: "access granted at the target" },
    });
  });

  it("posture: each role with its last drill; the failed drill's role red with the failing step and the fix", async () => {
    const res = await broker.http.inject({ method: "GET", url: "/api/v1/posture", headers: await bearer("erin") });
    expect(res.statusCode).toBe(200);
    const p = res.json() as {
      status: string;
      roles: {
        role: string;
        status: string;
        lastDrill: { name: string } | null;
        items: { what: string; fix: string }[];
      }[];
    };
    expect(p.status).toBe("red");
    const admin = p.roles.find((r) => r.role === "production/db-admin");
    expect(admin?.lastDrill?.name).toBe("emergency");
    const down = p.roles.find((r) => r.role === "production/db-down");
    expect(down?.status).toBe("red");
    expect(down?.items[0]?.what).toContain("failed on");
    expect(down?.items[0]?.what).toContain('"access granted at the target"');
    expect(down?.items[0]?.fix).toBe(
      "fix what the step names (docs/runbooks/drill-approval-path.md), then breakglass drill run target-down",
    );
    // Credentials against the rotation policy: the admin passwords were never rotated by the broker.
    const credentials = (res.json() as { credentials: { credential: string; overdue: boolean; fix: string }[] })
      .credentials;
    expect(credentials.find((c) => c.credential === "target pg-app: admin password")).toMatchObject({
      overdue: true,
      fix: "breakglass rotation rotate-target pg-app (or list it under rotation.auto)",
    });
  });

  it("policy rollback: the role's guard refuses the forbidden statement through the gateway", async () => {
    const run = await broker.drills.finished((await broker.drills.start(admin, "policy-rollback")).id);
    expect(run.steps.filter((s) => !s.ok)).toEqual([]);
    expect(run.steps.find((s) => s.name === "guard refuses the forbidden statement")?.detail).toMatch(
      /^refused: Breakglass guard: DROP TABLE/,
    );
    // A role whose guard does not deny the statement fails the drill, and the table is untouched.
    const bad = await broker.drills.finished((await broker.drills.start(admin, "unguarded")).id);
    expect(bad.result).toBe("failed");
    expect(bad.steps.find((s) => !s.ok)?.detail).toContain("the guard let");
    expect(await target.sql("SELECT count(*)::int AS n FROM public.accounts")).toEqual([{ n: 2 }]);
  });

  it("idp outage: fallback login with the provisioned TOTP, emergency grant, probe, release — all [DRILL]", async () => {
    const provisioned = await broker.auth?.provisionTotp(admin, "drill-bot", "drill");
    writeFileSync(join(dir, "drill-bot.totp"), `${provisioned?.secret}\n`);
    writeFileSync(join(dir, "wrong.totp"), "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP\n");
    const run = await broker.drills.finished((await broker.drills.start(admin, "idp-outage")).id);
    expect(run.steps.filter((s) => !s.ok)).toEqual([]);
    expect(run.steps[0]?.name).toBe("fallback login with TOTP (IdP treated as down for this drill)");
    const grant = await broker.store.getGrant(run.grantId ?? "");
    expect(grant).toMatchObject({ viaFallback: true, emergency: true, drill: true });
    const login = (await broker.store.readAudit(1, 100_000)).filter((e) => e.type === "auth.fallback_login").at(-1);
    expect(JSON.parse(login?.payload ?? "{}")).toMatchObject({ actor: "drill-bot", data: { drill: true } });
    // The IdP was only treated as down inside the drill: the real fallback stays closed.
    const health = await broker.http.inject({ method: "GET", url: "/api/v1/auth/idp" });
    expect(health.json()).toMatchObject({ declaredDown: null });

    const bad = await broker.drills.finished((await broker.drills.start(admin, "idp-outage-wrong-factor")).id);
    expect(bad.result).toBe("failed");
    expect(bad.steps[0]).toMatchObject({ ok: false, detail: "fallback login failed" });
  });

  it("refuses an unknown drill, naming the configured ones", async () => {
    await expect(broker.drills.start(admin, "nope")).rejects.toMatchObject({
      code: "ERR_NOT_FOUND",
      message: expect.stringContaining("approval-path, emergency, policy-rollback, unguarded, idp-outage"),
    });
  });
});
