/**
 * The broker with a real PostgreSQL target, end to end: the holder's credential through the API,
 * access that ends at the target even when the broker is down for the whole window, an open
 * session cut at revoke, side permissions swept and recorded, and a target that is down at the
 * moment of expiry (revocation retried, visible, completed after the restart).
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { Broker } from "../src/app.js";
import { CredentialViewSchema, GrantViewSchema } from "../src/contract/api.js";
import type { Grant } from "../src/core/model.js";
import { runCli } from "./support/broker-process.js";
import { ctx as actorCtx } from "./support/ctx.js";
import { type PostgresTarget, startPostgresTarget, TARGET_ENV, tryLogin } from "./support/postgres-target.js";
import { type ConfigOverride, SECRET_KEY, startTestBroker, type TestBroker } from "./support/test-broker.js";
import { sleep, until } from "./support/wait.js";

const CONFIG: ConfigOverride = {
  ...SECRET_KEY,
  workers: { expiry_poll: "100ms" },
  admin_groups: ["security"],
  users: { alice: { name: "Alice" }, bob: { name: "Bob" }, carol: { name: "Carol" }, dave: { name: "Dave" } },
  groups: { oncall: ["alice"], leads: ["bob", "carol"], security: ["carol"] },
  domains: {
    production: {
      description: "Production",
      roles: {
        "db-admin": {
          description: "Recovery DBA on the app database",
          target: "pg-app",
          grants: { roles: ["recovery_rw"], statement_timeout: "30s" },
          default_duration: "30m",
          max_duration: "2h",
          approval: "2 of leads",
          requesters: ["oncall"],
        },
      },
    },
  },
  targets: {
    "pg-app": {
      connector: "postgres",
      settings: {
        admin_url: { env: TARGET_ENV },
        timeout: "2s",
        watch_roles: ["emergency_dba"],
        terminate_unauthorized: true,
      },
    },
  },
};

let target: PostgresTarget;
let dir: string;
const brokers: TestBroker[] = [];

beforeAll(async () => {
  target = await startPostgresTarget();
});
afterAll(async () => target?.stop());

beforeEach(async () => {
  await target.reset();
  dir = mkdtempSync(join(tmpdir(), "bg-pg-broker-"));
});
afterEach(async () => {
  for (const t of brokers.splice(0)) await t.stop().catch(() => {});
  rmSync(dir, { recursive: true, force: true });
});

/** A grant that ends during the test: time for its first steps on a busy machine, short to wait for. */
const SHORT_GRANT_S = 8;
const ctx = (actor: string) => actorCtx(actor, { sourceAddress: "127.0.0.1" });

/** A broker on this test's folder and database (a second one after a stop is the same broker restarted). */
async function startBroker(): Promise<{ broker: Broker; url: string; token: (user: string) => Promise<string> }> {
  const t = await startTestBroker({ base: "minimal", dir, env: { [TARGET_ENV]: target.adminUrl }, config: CONFIG });
  brokers.push(t);
  return { broker: t.broker, url: t.url, token: (user) => t.token(user) };
}

async function stopBroker(broker: Broker): Promise<void> {
  const t = brokers.find((b) => b.broker === broker);
  brokers.splice(brokers.indexOf(t as TestBroker), 1);
  await t?.stop();
}

/** alice requests, bob and carol approve: active at the target. */
async function activeGrant(broker: Broker, durationS: number): Promise<Grant> {
  const g = await broker.service.request(ctx("alice"), {
    roleId: "production/db-admin",
    justification: "restore the accounts table after the bad migration",
    incident: "INC-42",
    durationS,
  });
  await broker.service.approve(ctx("bob"), g.id, null);
  const active = await broker.service.approve(ctx("carol"), g.id, null);
  expect(active).toMatchObject({ state: "active", access: "granted" });
  return active;
}

async function credentialOf(broker: Broker, grantId: string, token: string): Promise<string> {
  const res = await broker.http.inject({
    method: "GET",
    url: `/api/v1/grants/${grantId}/credential`,
    headers: { authorization: `Bearer ${token}` },
  });
  expect(res.statusCode, res.body).toBe(200);
  expect(res.headers["cache-control"]).toBe("no-store");
  return CredentialViewSchema.parse(res.json()).credential;
}

const roleExists = async (name: string) =>
  (await target.sql("SELECT 1 FROM pg_roles WHERE rolname = $1", [name])).length > 0;

async function auditTypes(broker: Broker, grantId: string): Promise<{ type: string; data: Record<string, unknown> }[]> {
  const events = await broker.store.readAudit(1, 10_000);
  return events
    .filter((e) => e.grantId === grantId)
    .map((e) => {
      const p = JSON.parse(e.payload) as { type: string; data: Record<string, unknown> };
      return { type: p.type, data: p.data };
    });
}

describe("broker with a real PostgreSQL target", () => {
  it("gives the holder (only) a working connection string through the API, and audits every read", async () => {
    const { broker, token } = await startBroker();
    const grant = await activeGrant(broker, 600);
    const alice = await token("alice");
    const url = await credentialOf(broker, grant.id, alice);
    expect(await tryLogin(url)).toBeNull();
    const bob = await broker.http.inject({
      method: "GET",
      url: `/api/v1/grants/${grant.id}/credential`,
      headers: { authorization: `Bearer ${await token("bob")}` },
    });
    expect(bob.statusCode).toBe(403);
    expect(bob.json()).toMatchObject({ code: "ERR_FORBIDDEN" });
    expect((await auditTypes(broker, grant.id)).filter((e) => e.type === "grant.credential_read")).toHaveLength(1);
    // Nothing secret in the audit log or the database's grant row.
    const password = decodeURIComponent(new URL(url).password);
    const all = (await broker.store.readAudit(1, 10_000)).map((e) => e.payload).join("\n");
    expect(all).not.toContain(password);
    expect(JSON.stringify(await broker.store.getGrant(grant.id))).not.toContain(password);
    expect(await broker.store.readCredential(grant.id)).toMatch(/^bgbox1\./);
  });

  it("ends access on time with the broker down for the whole window, and cleans up when it is back", async () => {
    const first = await startBroker();
    const grant = await activeGrant(first.broker, SHORT_GRANT_S);
    const url = await credentialOf(first.broker, grant.id, await first.token("alice"));
    expect(await tryLogin(url)).toBeNull();
    const session = new pg.Client({ connectionString: url });
    const cut = new Promise<string>((resolve) => session.on("error", (e) => resolve(e.message)));
    await session.connect();
    await stopBroker(first.broker);

    await sleep(Math.max(0, (grant.endsAt ?? 0) - Date.now()) + 300);
    // No broker anywhere: PostgreSQL itself refuses the login after VALID UNTIL.
    expect(await tryLogin(url)).toMatch(/password authentication failed/);
    expect(await roleExists(`bg_${grant.id}`)).toBe(true);

    // The broker comes back: it ends what fell due before serving, cuts the session, drops the role.
    const second = await startBroker();
    expect(await cut).toMatch(/terminat/);
    await session.end().catch(() => {});
    await until("role dropped", async () => !(await roleExists(`bg_${grant.id}`)));
    const after = await until("revocation recorded", async () => {
      const g = await second.broker.service.get(grant.id);
      return g.access === "revoked" ? g : null;
    });
    expect(after).toMatchObject({ state: "ended", endReason: "expired", access: "revoked" });
    const types = (await auditTypes(second.broker, grant.id)).map((e) => e.type);
    expect(types).toEqual(expect.arrayContaining(["grant.activated", "grant.expired", "target.revoked"]));
    expect(await second.broker.store.readCredential(grant.id)).toBeNull();
  });

  it("revoke cuts an open session at once and sweeps (and records) a GRANT made to someone else", async () => {
    const { broker, token } = await startBroker();
    const grant = await activeGrant(broker, 600);
    const url = await credentialOf(broker, grant.id, await token("alice"));
    const session = new pg.Client({ connectionString: url });
    const cut = new Promise<string>((resolve) => session.on("error", (e) => resolve(e.message)));
    await session.connect();
    await session.query("GRANT SELECT ON public.accounts TO reporting");
    expect(await target.sql("SELECT has_table_privilege('reporting', 'public.accounts', 'SELECT') AS p")).toEqual([
      { p: true },
    ]);

    const res = await broker.http.inject({
      method: "POST",
      url: `/api/v1/grants/${grant.id}/revoke`,
      headers: { authorization: `Bearer ${await token("carol")}` },
      payload: { reason: "the holder handed access on" },
    });
    expect(res.statusCode, res.body).toBe(200);
    expect(GrantViewSchema.parse(res.json())).toMatchObject({ state: "ended", access: { state: "revoked" } });
    expect(await cut).toMatch(/terminat/);
    await session.end().catch(() => {});
    expect(await target.sql("SELECT has_table_privilege('reporting', 'public.accounts', 'SELECT') AS p")).toEqual([
      { p: false },
    ]);
    const swept = (await auditTypes(broker, grant.id)).filter((e) => e.type === "target.side_permission_swept");
    expect(swept).toEqual([
      {
        type: "target.side_permission_swept",
        data: {
          item: {
            id: expect.stringMatching(/^app\/pg_class:\d+:acl:\d+:\d+:SELECT$/),
            kind: "privilege",
            outcome: "reverted",
            description: "SELECT on table public.accounts was granted to reporting (grantor recovery_rw)",
            fix: "REVOKE SELECT ON TABLE public.accounts FROM reporting CASCADE",
          },
        },
      },
    ]);
    const credential = await broker.http.inject({
      method: "GET",
      url: `/api/v1/grants/${grant.id}/credential`,
      headers: { authorization: `Bearer ${await token("alice")}` },
    });
    expect(credential.json()).toMatchObject({ code: "ERR_INVALID_TRANSITION" });
  });

  it("what the end could only contain pages security and blocks a justified review until someone records what was done", async () => {
    const { broker, token } = await startBroker();
    const grant = await activeGrant(broker, 600);
    const url = await credentialOf(broker, grant.id, await token("alice"));
    // A function with PostgreSQL's default EXECUTE for PUBLIC, which a table made in the window depends on: it cannot be dropped.
    const session = new pg.Client({ connectionString: url });
    await session.connect();
    await session.query("CREATE FUNCTION public.seed() RETURNS int LANGUAGE sql AS 'SELECT 7'");
    await session.query("CREATE TABLE public.fix_log (n int DEFAULT public.seed())");
    await session.end();
    await broker.service.revoke(ctx("bob"), grant.id, "incident over");
    const ended = await until("revoked", async () => {
      const g = await broker.service.get(grant.id);
      return g.access === "revoked" ? g : null;
    });
    expect(ended.state).toBe("ended");
    const events = await auditTypes(broker, grant.id);
    const drift = events.filter((e) => e.type === "target.containment_drift");
    expect(drift).toEqual([
      {
        type: "target.containment_drift",
        data: {
          item: expect.objectContaining({
            outcome: "contained",
            description: expect.stringMatching(/function public\.seed\(\) was created/),
          }),
        },
      },
    ]);
    // Contained: owned by the recovery role's owner side, nobody else may run it (PUBLIC's default EXECUTE revoked).
    expect(await target.sql("SELECT has_function_privilege('reporting', 'public.seed()', 'EXECUTE') AS x")).toEqual([
      { x: false },
    ]);
    // Paged: the alarm is queued for the security channels.
    const alarms = await broker.store.listAlarms(grant.id);
    expect(alarms.map((a) => a.eventType)).toContain("target.containment_drift");

    await expect(
      broker.service.review(ctx("dave"), grant.id, { outcome: "justified", notes: "all fine" }),
    ).rejects.toMatchObject({ code: "ERR_INVALID_TRANSITION", message: expect.stringMatching(/containment resolve/) });
    await expect(broker.service.resolveContainment(ctx("alice"), grant.id, "I fixed it myself")).rejects.toMatchObject({
      code: "ERR_FORBIDDEN",
    });
    await broker.service.resolveContainment(
      ctx("dave"),
      grant.id,
      "fix_log kept, seed() stays owned by the owner; ticket DBA-7",
    );
    await expect(broker.service.resolveContainment(ctx("dave"), grant.id, "again")).rejects.toMatchObject({
      code: "ERR_INVALID_TRANSITION",
    });
    const reviewed = await broker.service.review(ctx("dave"), grant.id, { outcome: "justified", notes: "all fine" });
    expect(reviewed.state).toBe("reviewed");
    expect((await auditTypes(broker, grant.id)).find((e) => e.type === "grant.containment_resolved")).toMatchObject({
      data: {
        note: expect.stringContaining("DBA-7"),
        items: [drift[0]?.data.item && (drift[0].data.item as { id: string }).id],
      },
    });
  });

  it("extends the grant at the target: VALID UNTIL moves and the holder's credential keeps working", async () => {
    const { broker, token } = await startBroker();
    const grant = await activeGrant(broker, 600);
    const alice = await token("alice");
    const before = await credentialOf(broker, grant.id, alice);
    const res = await broker.http.inject({
      method: "POST",
      url: `/api/v1/grants/${grant.id}/extend`,
      headers: { authorization: `Bearer ${alice}` },
      payload: { by: "15m", reason: "restore still running" },
    });
    expect(res.statusCode, res.body).toBe(200);
    const extended = GrantViewSchema.parse(res.json());
    const endsAt = Date.parse(extended.endsAt ?? "");
    expect(endsAt).toBe((grant.endsAt ?? 0) + 900_000);
    const [row] = await target.sql<{ t: Date }>("SELECT rolvaliduntil AS t FROM pg_roles WHERE rolname = $1", [
      `bg_${grant.id}`,
    ]);
    expect(row?.t.getTime()).toBe(endsAt);
    const after = await credentialOf(broker, grant.id, alice);
    expect(after).toBe(before);
    expect(await tryLogin(after)).toBeNull();
    const tooLong = await broker.http.inject({
      method: "POST",
      url: `/api/v1/grants/${grant.id}/extend`,
      headers: { authorization: `Bearer ${alice}` },
      payload: { by: "2h", reason: "more" },
    });
    expect(tooLong.json()).toMatchObject({ code: "ERR_DURATION_EXCEEDS_MAX" });
  });

  it("keeps retrying when the target is down at expiry, shows it on the grant, and completes after the restart", async () => {
    const { broker, url, token } = await startBroker();
    // The target must be down before the end: its halt has the grant's whole window.
    const grant = await activeGrant(broker, SHORT_GRANT_S);
    const alice = await token("alice");
    const credential = await credentialOf(broker, grant.id, alice);
    await target.cluster.halt();
    try {
      const failing = await until("revocation failing", async () => {
        const g = await broker.service.get(grant.id);
        return g.access === "revoking" && g.accessAttempts >= 2 ? g : null;
      });
      expect(failing.state).toBe("ended");
      expect(failing.accessLastError).toMatch(/postgres target pg-app: revoke \(connecting as postgres\) failed/);
      const shown = await runCli(["show", grant.id], { BREAKGLASS_URL: url, BREAKGLASS_TOKEN: alice });
      expect(shown.code, shown.stderr).toBe(0);
      expect(shown.stdout).toMatch(/REVOCATION FAILING \(\d+ failed attempts; retried until it succeeds\)/);
      expect(shown.stdout).toContain("postgres target pg-app: revoke");
      const json = await runCli(["show", grant.id, "--json"], { BREAKGLASS_URL: url, BREAKGLASS_TOKEN: alice });
      expect(JSON.parse(json.stdout).access).toMatchObject({ state: "revoking", revocationFailing: true });
    } finally {
      await target.cluster.resume();
    }
    // Even before the broker gets through, the target refuses the expired password by itself.
    expect(await tryLogin(credential)).toMatch(/password authentication failed/);
    const done = await until("revocation completed", async () => {
      const g = await broker.service.get(grant.id);
      return g.access === "revoked" ? g : null;
    });
    // The failed attempts stay on record; the grant no longer shows as failing.
    expect(done.accessAttempts).toBeGreaterThanOrEqual(2);
    expect(done.accessLastError).toBeNull();
    expect(await roleExists(`bg_${grant.id}`)).toBe(false);
    const failures = (await auditTypes(broker, grant.id)).filter((e) => e.type === "target.revoke_failed");
    expect(failures.length).toBeGreaterThanOrEqual(2);
  });

  it("reconciles: a grant role re-created after its grant ended is removed again, standing privilege is reported once", async () => {
    const { broker, url, token } = await startBroker();
    const grant = await activeGrant(broker, 600);
    await broker.service.release(ctx("alice"), grant.id);
    await until("revoked", async () => (await broker.service.get(grant.id)).access === "revoked");
    // Someone restores the role from a backup, and a DBA gives themselves the recovery role for good.
    await target.sql(`CREATE ROLE "bg_${grant.id}" LOGIN PASSWORD 'restored'; GRANT recovery_rw TO "bg_${grant.id}"`);
    await target.sql("CREATE ROLE dba_dan LOGIN; GRANT recovery_rw TO dba_dan");

    const carol = await token("carol");
    const run = await runCli(["reconcile"], { BREAKGLASS_URL: url, BREAKGLASS_TOKEN: carol });
    expect(run.code, run.stderr).toBe(6); // the check found something: exit 6, not a refusal
    expect(run.stdout).toContain(`FIXED     pg-app: leftover_principal of grant ${grant.id}`);
    expect(run.stdout).toContain(
      "DRIFT     pg-app: login role dba_dan holds recovery role(s) recovery_rw permanently on pg-app",
    );
    expect(await roleExists(`bg_${grant.id}`)).toBe(false);

    const again = await broker.reconcile.runOnce();
    expect(again.errors).toEqual([]);
    expect(again.fixed).toEqual([]);
    expect(again.reported.map((r) => r.principal)).toEqual(["dba_dan"]);
    const events = (await broker.store.readAudit(1, 10_000)).map(
      (e) => JSON.parse(e.payload) as { type: string; data: Record<string, unknown> },
    );
    expect(events.filter((e) => e.type === "target.drift_fixed")).toEqual([
      expect.objectContaining({ data: expect.objectContaining({ kind: "leftover_principal" }) }),
    ]);
    // Reported once while it persists, not on every pass.
    expect(events.filter((e) => e.type === "target.drift_reported")).toHaveLength(1);
    const alice = await runCli(["reconcile"], { BREAKGLASS_URL: url, BREAKGLASS_TOKEN: await token("alice") });
    expect(alice.code).toBe(1);
    expect(alice.stderr).toContain("ERR_FORBIDDEN");
  });

  it("detects a direct login as a watched break-glass role outside any grant: alarmed and terminated by its own pass", async () => {
    const { broker, token } = await startBroker();
    // A grant's own role, used during its grant, is not an unauthorized use.
    const grant = await activeGrant(broker, 600);
    const own = new pg.Client({
      connectionString: await credentialOf(broker, grant.id, await token("alice")),
    });
    own.on("error", () => {});
    await own.connect();
    expect((await broker.detector.runOnce()).filter((f) => f.session.principal === `bg_${grant.id}`)).toEqual([]);

    await target.sql("CREATE ROLE emergency_dba LOGIN PASSWORD 'glass-in-the-safe'");
    const started = Date.now();
    const intruder = new pg.Client({
      connectionString: target.adminUrl.replace("postgres@", "emergency_dba:glass-in-the-safe@"),
    });
    const cut = new Promise<string>((resolve) => intruder.on("error", (e) => resolve(e.message)));
    await intruder.connect();
    await intruder.query("SELECT 1");
    const event = await until("unauthorized login event", async () =>
      (await broker.store.readAudit(1, 10_000))
        .map((e) => JSON.parse(e.payload) as { type: string; data: Record<string, unknown> })
        .find((e) => e.type === "target.unauthorized_login"),
    );
    expect(await cut).toMatch(/terminat/);
    console.log(`postgres detection: direct login recorded and cut ${Date.now() - started} ms after it began`);
    expect(event.data).toMatchObject({ principal: "emergency_dba", terminated: true, from: "127.0.0.1" });
    const alarmed = await until(
      "alarm in the file channel",
      async () =>
        readFileSync(join(dir, "alarms.jsonl"), "utf8").includes("LOGIN AS BREAK-GLASS IDENTITY emergency_dba") || null,
    );
    expect(alarmed).toBe(true);
    await own.end().catch(() => {});
  });

  it("a target that refuses the activation (its recovery role is missing): the grant says why, the broker retries, and it works once the role is back", async () => {
    await target.sql("REASSIGN OWNED BY recovery_rw TO app_owner; DROP OWNED BY recovery_rw; DROP ROLE recovery_rw");
    const { broker, url, token } = await startBroker();
    const g = await broker.service.request(ctx("alice"), {
      roleId: "production/db-admin",
      justification: "restore the accounts table after the bad migration",
      incident: "INC-43",
      durationS: 600,
    });
    await broker.service.approve(ctx("bob"), g.id, null);
    const res = await broker.http.inject({
      method: "POST",
      url: `/api/v1/grants/${g.id}/approve`,
      headers: { authorization: `Bearer ${await token("carol")}` },
      payload: {},
    });
    expect(res.statusCode).toBe(200);
    const view = GrantViewSchema.parse(res.json());
    expect(view.state).toBe("approved");
    // PostgreSQL's own refusal, as the holder and the approvers see it.
    expect(view.access.lastError).toMatch(/role "recovery_rw" does not exist \(SQLSTATE 42704\)/);
    expect(view.access.activationFailure).toMatchObject({ attempts: 1, nextAttemptAt: expect.any(String) });
    const shown = await runCli(["show", g.id], { BREAKGLASS_URL: url, BREAKGLASS_TOKEN: await token("alice") });
    expect(shown.stdout).toMatch(/ACTIVATION FAILED \(\d+ attempts?\); the broker tries again at/);
    expect(shown.stdout).toContain('role "recovery_rw" does not exist');
    // Nothing half-made stays at the target.
    const leftovers = await target.sql<{ rolname: string }>("SELECT rolname FROM pg_roles WHERE rolname LIKE 'bg\\_%'");
    expect(leftovers).toEqual([]);

    await target.sql(`CREATE ROLE recovery_rw NOLOGIN;
      GRANT USAGE, CREATE ON SCHEMA public TO recovery_rw;
      GRANT SELECT, INSERT, UPDATE, DELETE ON public.accounts TO recovery_rw`);
    const active = await until("the broker's retry to activate it", async () => {
      const cur = await broker.store.getGrant(g.id);
      return cur?.state === "active" ? cur : null;
    });
    expect(active).toMatchObject({ access: "granted", activationFailure: null });
    expect(await tryLogin(await credentialOf(broker, g.id, await token("alice")))).toBeNull();
  });
});
