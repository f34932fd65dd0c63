/**
 * The postgres connector against a real PostgreSQL server: per-grant login roles whose password
 * dies at VALID UNTIL by itself, sessions cut at revoke, the side-permission sweep, objects kept,
 * extension, verify, inventory and drift, and an unreachable target.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { ConnectorGrantFacts } from "../src/core/ports/connector.js";
import { contractRole } from "./support/connector-case.js";
import { type PostgresTarget, startPostgresTarget, tryLogin } from "./support/postgres-target.js";
import { sleep, until } from "./support/wait.js";

let target: PostgresTarget;
beforeAll(async () => {
  target = await startPostgresTarget();
});
afterAll(async () => target?.stop());
beforeEach(async () => target.reset());

const role = contractRole("pg-app", { roles: ["recovery_rw"], connection_limit: 3, statement_timeout: "20s" });
const facts = (grantId: string, endsAt = Date.now() + 30 * 60_000, requester = "alice"): ConnectorGrantFacts => ({
  grantId,
  requester,
  role,
  target: { name: "pg-app", connector: "postgres", settings: {} },
  incident: "INC-7",
  justification: "restore the accounts table",
  endsAt,
});

describe("postgres connector", () => {
  it("creates a login role that is a member of the recovery role, expires with VALID UNTIL, and hands over a working connection string", async () => {
    const c = target.connector();
    const f = facts("g_one");
    const handle = c.plan(f);
    expect(handle).toEqual({ principal: "bg_g_one" });
    const granted = await c.grant(f, handle);
    const url = granted.credential?.reveal() ?? "";
    expect(url).toMatch(/^postgresql:\/\/bg_g_one:[A-Za-z0-9_-]{32}@127\.0\.0\.1:\d+\/app$/);
    expect(await tryLogin(url)).toBeNull();
    const [row] = await target.sql<{ rolvaliduntil: Date; rolconnlimit: number; rolsuper: boolean; config: string[] }>(
      "SELECT rolvaliduntil, rolconnlimit, rolsuper, rolconfig AS config FROM pg_roles WHERE rolname = 'bg_g_one'",
    );
    expect(row?.rolvaliduntil.getTime()).toBe(Math.floor(f.endsAt / 1000) * 1000 + (f.endsAt % 1000));
    expect(row?.rolconnlimit).toBe(3);
    expect(row?.rolsuper).toBe(false);
    expect(row?.config).toEqual(["statement_timeout=20s"]);
    // The password is a SCRAM verifier on the server, never in the audit detail.
    const [auth] = await target.sql<{ rolpassword: string }>(
      "SELECT rolpassword FROM pg_authid WHERE rolname = 'bg_g_one'",
    );
    expect(auth?.rolpassword).toMatch(/^SCRAM-SHA-256\$4096:/);
    const password = decodeURIComponent(new URL(url).password);
    expect(JSON.stringify(granted.detail)).not.toContain(password);
    expect(JSON.stringify(granted.handle)).not.toContain(password);
    expect(granted.handle).toHaveProperty("containment");
  });

  it("refuses logins after VALID UNTIL on its own — nothing of the broker is involved", async () => {
    const c = target.connector();
    const f = facts("g_short", Date.now() + 2000);
    const granted = await c.grant(f, c.plan(f));
    const url = granted.credential?.reveal() ?? "";
    expect(await tryLogin(url)).toBeNull();
    await c.close?.();
    await sleep(Math.max(0, f.endsAt - Date.now()) + 500);
    expect(await tryLogin(url)).toMatch(/password authentication failed/);
  });

  it("terminates open sessions at revoke, drops the role, and verify agrees", async () => {
    const c = target.connector();
    const f = facts("g_sess");
    const h = c.plan(f);
    const granted = await c.grant(f, h);
    const session = new pg.Client({ connectionString: granted.credential?.reveal() });
    const ended = new Promise<string>((resolve) => session.on("error", (e) => resolve(e.message)));
    await session.connect();
    await session.query("SELECT 1");
    const handle = { ...h, ...granted.handle };
    expect((await c.verify(f, handle)).revoked).toBe(false);
    const revoked = await c.revoke(f, handle);
    expect(revoked.detail).toMatchObject({ role: "bg_g_sess", existed: true, terminated: 1, swept: [] });
    expect(await ended).toMatch(/terminat/);
    await session.end().catch(() => {});
    expect(await target.sql("SELECT 1 FROM pg_roles WHERE rolname = 'bg_g_sess'")).toHaveLength(0);
    const verified = await c.verify(f, handle);
    // The revocation's own comparison (read after the session was gone) found nothing to change: verify reuses it once.
    expect(verified).toEqual({
      revoked: true,
      detail: {
        role: "bg_g_sess",
        roleExists: false,
        backends: 0,
        preparedTransactions: 0,
        sweepLeft: [],
        compared: "at revocation",
      },
    });
    expect((await c.verify(f, handle)).detail).toMatchObject({ compared: "again", sweepLeft: [] });
  });

  it("cuts access of several grants at once ahead of their revocations, which report the sessions it ended", async () => {
    const c = target.connector();
    const grants = await Promise.all(
      ["g_cut1", "g_cut2"].map(async (id) => {
        const f = facts(id);
        const h = c.plan(f);
        const granted = await c.grant(f, h);
        const session = new pg.Client({ connectionString: granted.credential?.reveal() });
        const ended = new Promise<string>((resolve) => session.on("error", (e) => resolve(e.message)));
        await session.connect();
        return { facts: f, handle: { ...h, ...granted.handle }, url: granted.credential?.reveal() ?? "", ended };
      }),
    );
    await c.cutAccess?.(grants);
    for (const g of grants) {
      expect(await g.ended).toMatch(/terminat/);
      expect(await tryLogin(g.url)).not.toBeNull();
    }
    expect(
      await target.sql("SELECT rolname FROM pg_roles WHERE rolname IN ('bg_g_cut1', 'bg_g_cut2') AND rolcanlogin"),
    ).toEqual([]);
    for (const g of grants) {
      const revoked = await c.revoke(g.facts, g.handle);
      expect(revoked.detail).toMatchObject({ existed: true, terminated: 1, swept: [] });
      expect((await c.verify(g.facts, g.handle)).revoked).toBe(true);
    }
  });

  it("sweeps side permissions opened during the window and records each; keeps objects the holder created", async () => {
    const c = target.connector();
    const f = facts("g_side");
    const h = c.plan(f);
    const granted = await c.grant(f, h);
    const url = granted.credential?.reveal() ?? "";
    // During the window the holder hands access on and creates a table; someone else escalates a role.
    expect(await tryLogin(url, "GRANT SELECT, UPDATE ON public.accounts TO reporting")).toBeNull();
    expect(await tryLogin(url, "CREATE TABLE public.incident_fix AS SELECT * FROM public.accounts")).toBeNull();
    expect(await tryLogin(url, "GRANT SELECT ON public.incident_fix TO reporting")).toBeNull();
    await target.sql(
      "ALTER ROLE reporting CREATEDB; CREATE ROLE sneaky LOGIN PASSWORD 'x'; GRANT recovery_rw TO reporting",
    );
    const handle = { ...h, ...granted.handle };
    const verifying = await c.verify(f, handle);
    expect(verifying.revoked).toBe(false);

    const revoked = await c.revoke(f, handle);
    const swept = (revoked.detail.swept as { kind: string; description: string; fix: string }[]).map(
      (s) => `${s.kind}: ${s.description}`,
    );
    expect(swept.sort()).toEqual(
      [
        "membership: reporting was made a member of recovery_rw",
        "object_created: table public.incident_fix was created during the window",
        "privilege: SELECT on table public.accounts was granted to reporting (grantor recovery_rw)",
        "privilege: UPDATE on table public.accounts was granted to reporting (grantor recovery_rw)",
        "role_attribute: role reporting gained CREATEDB",
        "role_created: role sneaky was created during the window",
      ].sort(),
    );
    const reporting = await target.sql<{ p: boolean; q: boolean; createdb: boolean }>(
      `SELECT has_table_privilege('reporting', 'public.accounts', 'SELECT') AS p,
              has_table_privilege('reporting', 'public.incident_fix', 'SELECT') AS q,
              (SELECT rolcreatedb FROM pg_roles WHERE rolname = 'reporting') AS createdb`,
    );
    expect(reporting).toEqual([{ p: false, q: false, createdb: false }]);
    expect(await target.sql("SELECT 1 FROM pg_roles WHERE rolname = 'sneaky'")).toHaveLength(0);
    // The incident's table survives, owned by the recovery role; the original grants are untouched.
    expect(await target.sql("SELECT tableowner FROM pg_tables WHERE tablename = 'incident_fix'")).toEqual([
      { tableowner: "recovery_rw" },
    ]);
    expect(await target.sql("SELECT count(*)::int AS n FROM public.incident_fix")).toEqual([{ n: 2 }]);
    expect(await target.sql("SELECT has_table_privilege('recovery_rw', 'public.accounts', 'UPDATE') AS ok")).toEqual([
      { ok: true },
    ]);
    expect((await c.verify(f, handle)).revoked).toBe(true);
  });

  it("in report mode leaves side permissions alone, says so, and verify keeps reporting them", async () => {
    const c = target.connector({ sweep: "report" });
    const f = facts("g_rep");
    const h = c.plan(f);
    const granted = await c.grant(f, h);
    await tryLogin(granted.credential?.reveal() ?? "", "GRANT SELECT ON public.accounts TO reporting");
    const revoked = await c.revoke(f, { ...h, ...granted.handle });
    expect(revoked.detail.swept).toEqual([
      {
        id: expect.stringMatching(/^app\/pg_class:\d+:acl:/),
        kind: "privilege",
        outcome: "left",
        description: "SELECT on table public.accounts was granted to reporting (grantor recovery_rw)",
        fix: null,
      },
    ]);
    expect(await target.sql("SELECT has_table_privilege('reporting', 'public.accounts', 'SELECT') AS p")).toEqual([
      { p: true },
    ]);
    expect((await c.verify(f, { ...h, ...granted.handle })).revoked).toBe(true);
  });

  it("extends by granting again: the expiry moves, the snapshot is kept, one role exists", async () => {
    const c = target.connector();
    const f = facts("g_ext", Date.now() + 60_000);
    const h = c.plan(f);
    const first = await c.grant(f, h);
    const handle = { ...h, ...first.handle };
    const later = { ...f, endsAt: f.endsAt + 3_600_000 };
    const second = await c.grant(later, handle);
    expect(second.handle).toBeUndefined(); // the window's first snapshot stays the baseline
    expect(second.detail).toMatchObject({ reissued: true });
    const [row] = await target.sql<{ t: Date }>("SELECT rolvaliduntil AS t FROM pg_roles WHERE rolname = 'bg_g_ext'");
    expect(row?.t.getTime()).toBe(later.endsAt);
    expect(await tryLogin(second.credential?.reveal() ?? "")).toBeNull();
    expect(await tryLogin(first.credential?.reveal() ?? "")).toMatch(/password authentication failed/);
  });

  it("extends by moving the end alone: the password keeps working, and a revoked role is not revived", async () => {
    const c = target.connector();
    const f = facts("g_mv", Date.now() + 60_000);
    const h = c.plan(f);
    const first = await c.grant(f, h);
    const handle = { ...h, ...first.handle };
    const later = { ...f, endsAt: f.endsAt + 3_600_000 };
    const moved = await c.extend?.(later, handle);
    expect(moved).toMatchObject({ credential: null, detail: { role: "bg_g_mv" } });
    const [row] = await target.sql<{ t: Date }>("SELECT rolvaliduntil AS t FROM pg_roles WHERE rolname = 'bg_g_mv'");
    expect(row?.t.getTime()).toBe(later.endsAt);
    expect(await tryLogin(first.credential?.reveal() ?? "")).toBeNull();
    await c.revoke(f, handle);
    // Revoked: the role is dropped (or, when it owns objects, kept without LOGIN); neither comes back.
    await expect(c.extend?.(later, handle)).rejects.toThrow(/role bg_g_mv (does not exist|can no longer log in)/);
    expect(await target.sql("SELECT 1 FROM pg_roles WHERE rolname = 'bg_g_mv' AND rolcanlogin")).toEqual([]);
    expect(await tryLogin(first.credential?.reveal() ?? "")).toMatch(/password authentication failed/);
  });

  it("lists leftover grant roles and reports standing privilege made outside Breakglass", async () => {
    const c = target.connector({}, [role]);
    await c.grant(facts("g_left"), c.plan(facts("g_left")));
    await target.sql("CREATE ROLE dba_bob LOGIN; GRANT recovery_rw TO dba_bob; CREATE ROLE root2 LOGIN SUPERUSER");
    const inv = await c.inventory?.();
    expect(inv?.managed).toEqual([{ grantId: "g_left", handle: { principal: "bg_g_left" } }]);
    expect(inv?.drift).toEqual([
      {
        kind: "standing_recovery_member",
        principal: "dba_bob",
        description: "login role dba_bob holds recovery role(s) recovery_rw permanently on pg-app",
      },
      {
        kind: "standing_superuser",
        principal: "root2",
        description: "login role root2 is a standing superuser on pg-app",
      },
    ]);
    const allowed = target.connector({ standing_allowed: ["dba_bob", "root2"] }, [role]);
    expect((await allowed.inventory?.())?.drift).toEqual([]);
  });

  it("fails with a clear ERR_CONNECTOR_FAILED when the target is unreachable", async () => {
    const dir = mkdtempSync(join(tmpdir(), "bg-pg-url-"));
    writeFileSync(join(dir, "url"), "postgres://postgres@127.0.0.1:1/app");
    const c = target.connector({ admin_url: { file: join(dir, "url") }, timeout: "2s" });
    for (const step of [
      c.verify(facts("g_x"), { principal: "bg_g_x" }),
      c.revoke(facts("g_x"), { principal: "bg_g_x" }),
    ]) {
      await expect(step).rejects.toMatchObject({
        code: "ERR_CONNECTOR_FAILED",
        message: expect.stringMatching(
          /^postgres target pg-app: (verify|revoke) \(connecting as postgres\) failed: .*ECONNREFUSED/,
        ),
      });
    }
    rmSync(dir, { recursive: true });
  });

  it("fails the call in flight, and does not crash the broker, when the target goes away under it", async () => {
    const c = target.connector();
    await c.verify(facts("g_warm"), { principal: "bg_g_warm" }); // a pooled admin connection exists
    // Hold the role catalog so the grant's CREATE ROLE waits, with its connection checked out.
    const blocker = new pg.Client({ connectionString: target.adminUrl });
    blocker.on("error", () => {});
    await blocker.connect();
    await blocker.query("BEGIN; LOCK TABLE pg_authid IN ACCESS EXCLUSIVE MODE");
    const f = facts("g_gone");
    const call = c.grant(f, c.plan(f));
    call.catch(() => {});
    // Asked on the blocker's own session: a new login would wait for pg_authid too.
    await until(
      "the grant waiting for the catalog lock",
      async () =>
        (
          await blocker.query<{ n: number }>(
            "SELECT count(*)::int AS n FROM pg_locks WHERE NOT granted AND relation = 'pg_authid'::regclass",
          )
        ).rows[0]?.n === 1,
    );
    await target.cluster.halt(); // fast shutdown: every session, the checked-out one too, is terminated
    try {
      await expect(call).rejects.toMatchObject({
        code: "ERR_CONNECTOR_FAILED",
        message: expect.stringMatching(/^postgres target pg-app: grant failed: /),
      });
    } finally {
      await blocker.end().catch(() => {});
      await target.cluster.resume();
    }
    // Back: the pool drops the dead connection and the next call works.
    await expect(c.verify(f, c.plan(f))).resolves.toMatchObject({ revoked: true });
    await c.close?.();
  });

  it("replaces pooled admin connections the server ended while they were idle: the next calls go through", async () => {
    const c = target.connector({ pool_size: 3 });
    // Three pooled admin connections.
    await Promise.all(["g_w1", "g_w2", "g_w3"].map((id) => c.verify(facts(id), { principal: `bg_${id}` })));
    // The server ends them while they sit in the pool (a restart, a pooler, an idle timeout), and
    // the next calls come before this process has read the goodbye: everything below is
    // synchronous until the calls have taken their connections from the pool.
    const psql = (query: string) =>
      execFileSync("psql", [target.adminUrl, "-XAtc", query], { encoding: "utf8" }).trim();
    const ours = "FROM pg_stat_activity WHERE application_name = 'breakglass' AND usename = 'postgres'";
    expect(psql(`SELECT count(*) ${ours}`)).toBe("3");
    psql(`SELECT pg_terminate_backend(pid) ${ours}`);
    while (psql(`SELECT count(*) ${ours}`) !== "0") execFileSync("sleep", ["0.05"]);
    const f = facts("g_after");
    const granting = c.grant(f, c.plan(f));
    const verifying = c.verify(facts("g_w1"), { principal: "bg_g_w1" });
    const inventory = c.inventory?.();
    expect(await tryLogin((await granting).credential?.reveal() ?? "")).toBeNull();
    expect(await verifying).toMatchObject({ revoked: true });
    expect(await inventory).toBeDefined();
    await c.close?.();
  });

  it("rejects role grants that are not for postgres with a message naming the role", async () => {
    const c = target.connector();
    const f = { ...facts("g_bad"), role: { ...role, grants: { groups: ["x"] } } };
    await expect(c.grant(f, c.plan(f))).rejects.toMatchObject({
      code: "ERR_CONNECTOR_FAILED",
      message: expect.stringContaining(
        "role production/recovery: grants for a postgres target must be like {roles: [recovery_rw]}",
      ),
    });
  });
});
