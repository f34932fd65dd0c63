/**
 * The postgres connector's end of a window, against a real PostgreSQL target: the containment
 * precondition at activation, what the sweep undoes or only reports, prepared transactions, the
 * catalog reads revocations share, and verification reusing a fresh comparison (by the injected
 * clock). The grant and the cut are done here by hand; the sweep is what is tested.
 */
import pg from "pg";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { makeRole } from "../../test/support/core-fixtures.js";
import { type ManualClock, manualClock } from "../../test/support/manual-clock.js";
import { type PostgresTarget, startPostgresTarget, TARGET_ENV } from "../../test/support/postgres-target.js";
import type { ConnectorGrantFacts } from "../core/ports/connector.js";
import { createSecretResolver } from "../secrets/secret-ref.js";
import { createPostgresAdmin, type PostgresAdmin } from "./postgres-admin.js";
import { readCluster } from "./postgres-catalog.js";
import { postgresSettingsSchema } from "./postgres-settings.js";
import { awaitExit, terminate } from "./postgres-sql.js";
import { createPostgresSweep, type PostgresSweep, type Prepared, type SweepItem } from "./postgres-sweep.js";

const TIMEOUT_MS = 10_000;

let target: PostgresTarget;
let admin: PostgresAdmin;
let clock: ManualClock;

beforeAll(async () => {
  target = await startPostgresTarget({ maxPreparedTransactions: 4 });
  admin = createPostgresAdmin(
    postgresSettingsSchema.parse({ admin_url: { env: TARGET_ENV } }),
    {
      resolveSecret: createSecretResolver({ baseDir: "/", env: { [TARGET_ENV]: target.adminUrl }, box: null }),
      log: () => {},
      targetName: "pg-app",
    },
    TIMEOUT_MS,
  );
});
afterEach(async () => {
  await target.sql("SELECT gid FROM pg_prepared_xacts").then(async (rows) => {
    for (const { gid } of rows as { gid: string }[]) await target.sql(`ROLLBACK PREPARED '${gid}'`);
  });
  await target.reset();
});
afterAll(async () => {
  await admin?.close();
  await target?.stop();
});

const sweepWith = (extra: Record<string, unknown> = {}): PostgresSweep => {
  clock = manualClock(Date.now());
  return createPostgresSweep({
    settings: postgresSettingsSchema.parse({ admin_url: { env: TARGET_ENV }, ...extra }),
    targetName: "pg-app",
    clock,
    timeoutMs: TIMEOUT_MS,
    admin,
  });
};

const facts = (grantId: string): ConnectorGrantFacts => ({
  grantId,
  requester: "alice",
  role: makeRole({ id: "production/db-rw", grants: { roles: ["recovery_rw"] } }),
  target: { name: "pg-app", connector: "postgres", settings: {} },
  incident: "INC-1",
  justification: "the primary is down",
  endsAt: Date.now() + 3_600_000,
});

/** A window opened by hand: the snapshot, then a login role in recovery_rw. */
async function open(sweep: PostgresSweep, role: string) {
  const handle = await admin.withClient("grant", async (c) => {
    const read = await sweep.sharedRead(c, sweep.mark());
    await c.query(`CREATE ROLE ${role} LOGIN PASSWORD 'holder-password' IN ROLE recovery_rw`);
    return { principal: role, containment: read.snapshot };
  });
  const holder = new pg.Client({
    connectionString: `postgres://${role}:holder-password@127.0.0.1:${target.cluster.port}/app`,
  });
  await holder.connect();
  holder.on("error", () => {});
  return { handle, holder };
}

/** The cut (NOLOGIN, sessions ended) and then the sweep's end of the window. */
const end = (sweep: PostgresSweep, role: string, handle: Record<string, unknown>) =>
  admin.withClient("revoke", async (c) => {
    const started = sweep.mark();
    await c.query(`ALTER ROLE ${role} NOLOGIN VALID UNTIL '-infinity'`);
    const killed = await terminate(c, role, null);
    await awaitExit(c, killed, role, "pg-app");
    const cut = { role, started, exists: true, terminated: killed.length, goneAt: sweep.mark() };
    return sweep.finish(c, facts(role), handle, cut);
  });
const leftOver = (sweep: PostgresSweep, role: string, handle: Record<string, unknown>) =>
  admin.withClient("verify", (c) => sweep.leftOver(c, facts(role), handle, role));
const items = (detail: Readonly<Record<string, unknown>>) => detail.swept as SweepItem[];
const roleExists = async (role: string) =>
  (await target.sql("SELECT 1 FROM pg_roles WHERE rolname = $1", [role])).length === 1;

describe("at activation", () => {
  it("refuses a recovery role whose reach makes containment impossible, unless accepted with a reason", async () => {
    await target.sql("CREATE ROLE super_recovery NOLOGIN SUPERUSER");
    const cluster = await admin.withClient("read", (c) => readCluster(c));
    expect(sweepWith().checkReach(cluster, ["recovery_rw"])).toEqual({});
    expect(() => sweepWith().checkReach(cluster, ["super_recovery"])).toThrow(
      expect.objectContaining({
        code: "ERR_CONNECTOR_FAILED",
        message: expect.stringContaining("targets.pg-app.settings.containment.accept.super_recovery"),
      }),
    );
    const reason = "the DBA team accepts this for the storage outage runbook";
    const accepting = sweepWith({ containment: { accept: { super_recovery: reason } } });
    expect(accepting.checkReach(cluster, ["super_recovery", "recovery_rw"])).toEqual({ super_recovery: reason });
  });
});

describe("at the end of a window", () => {
  it("undoes a privilege the holder handed on, records it, drops the role, and verify compares again", async () => {
    const sweep = sweepWith();
    const { handle, holder } = await open(sweep, "bg_g_handout");
    await holder.query("GRANT SELECT ON public.accounts TO reporting");
    const result = await end(sweep, "bg_g_handout", handle);
    const [item, ...more] = items(result.detail);
    expect(more).toEqual([]);
    expect(item).toMatchObject({ outcome: "reverted", fix: expect.stringContaining("REVOKE") });
    expect(result.detail).toMatchObject({ existed: true, terminated: 1, reassignedTo: "recovery_rw" });
    const [{ can }] = (await target.sql(
      "SELECT has_table_privilege('reporting', 'public.accounts', 'SELECT') AS can",
    )) as [{ can: boolean }];
    expect(can).toBe(false);
    expect(await roleExists("bg_g_handout")).toBe(false);
    expect(await leftOver(sweep, "bg_g_handout", handle)).toEqual({ left: [], compared: "again" });
  });

  it("with sweep: report changes nothing, and leaves each change with no fix", async () => {
    const sweep = sweepWith({ sweep: "report" });
    const { handle, holder } = await open(sweep, "bg_g_report");
    await holder.query("GRANT SELECT ON public.accounts TO reporting");
    const result = await end(sweep, "bg_g_report", handle);
    expect(items(result.detail)).toMatchObject([{ outcome: "left", fix: null }]);
    const [{ can }] = (await target.sql(
      "SELECT has_table_privilege('reporting', 'public.accounts', 'SELECT') AS can",
    )) as [{ can: boolean }];
    expect(can).toBe(true);
    expect(await leftOver(sweep, "bg_g_report", handle)).toEqual({ left: [], compared: null });
  });

  it("gives what the role made to the owner (data is never dropped): the configured one, else the first recovery role", async () => {
    await target.sql("CREATE ROLE data_keeper NOLOGIN");
    expect(sweepWith().ownerFor(facts("g"))).toBe("recovery_rw");
    const sweep = sweepWith({ reassign_owned_to: "data_keeper" });
    expect(sweep.ownerFor(facts("g"))).toBe("data_keeper");
    const { handle, holder } = await open(sweep, "bg_g_maker");
    await holder.query("CREATE TABLE public.incident_notes (line text); INSERT INTO incident_notes VALUES ('kept')");
    await end(sweep, "bg_g_maker", handle);
    expect(await target.sql("SELECT tableowner FROM pg_tables WHERE tablename = 'incident_notes'")).toEqual([
      { tableowner: "data_keeper" },
    ]);
    expect(await target.sql("SELECT line FROM public.incident_notes")).toEqual([{ line: "kept" }]);
    expect(await roleExists("bg_g_maker")).toBe(false);
  });

  it("rolls back a prepared transaction the holder left; another session's is not the holder's to end", async () => {
    const sweep = sweepWith();
    const { handle, holder } = await open(sweep, "bg_g_prepared");
    await holder.query("BEGIN; INSERT INTO public.accounts VALUES (3, 'initech', 1); PREPARE TRANSACTION 'holder_tx'");
    await target.sql("BEGIN; INSERT INTO public.accounts VALUES (4, 'umbrella', 1); PREPARE TRANSACTION 'app_tx'");
    const result = await end(sweep, "bg_g_prepared", handle);
    expect(items(result.detail)).toMatchObject([
      { id: "prepared_xact:app:holder_tx", outcome: "reverted", fix: "ROLLBACK PREPARED 'holder_tx'" },
    ]);
    expect(await target.sql("SELECT gid FROM pg_prepared_xacts")).toEqual([{ gid: "app_tx" }]);
    await target.sql("COMMIT PREPARED 'app_tx'");
    expect(await target.sql("SELECT id FROM public.accounts ORDER BY id")).toEqual([{ id: 1 }, { id: 2 }, { id: 4 }]);
  });

  it("counts as the holder's only the prepared transactions of roles in reach or new since the window began", async () => {
    await target.sql("CREATE ROLE app_writer NOLOGIN; GRANT app_writer TO recovery_rw");
    const sweep = sweepWith({ sweep_ignore_roles: ["migrator"] });
    const snapshot = await admin.withClient("read", async (c) => (await sweep.sharedRead(c, sweep.mark())).snapshot);
    const at = (ms: number) => new Date(snapshot.cluster.at + ms);
    const row = (owner: string, ms = 1000): Prepared => ({ gid: `tx_${owner}`, db: "app", owner, prepared: at(ms) });
    const rows = [
      row("bg_g_mine"),
      row("app_writer"),
      row("newcomer"),
      row("reporting"),
      row("postgres"),
      row("migrator"),
      row("bg_g_other"),
      row("app_writer", -1000),
    ];
    const { own, inReach } = sweep.classifyPrepared(rows, "bg_g_mine", snapshot, facts("g"));
    expect(own.map((p) => p.owner)).toEqual(["bg_g_mine"]);
    expect(inReach.map((p) => `${p.owner}@${p.prepared.getTime() - snapshot.cluster.at}`)).toEqual([
      "app_writer@1000",
      "newcomer@1000",
    ]);
  });
});

describe("verification after a revocation that found nothing", () => {
  it("reuses that comparison once, while it is fresh by the broker's clock", async () => {
    const sweep = sweepWith();
    const quiet = await open(sweep, "bg_g_quiet");
    await quiet.holder.end();
    expect(items((await end(sweep, "bg_g_quiet", quiet.handle)).detail)).toEqual([]);
    expect(await leftOver(sweep, "bg_g_quiet", quiet.handle)).toEqual({ left: [], compared: "at revocation" });
    expect(await leftOver(sweep, "bg_g_quiet", quiet.handle)).toEqual({ left: [], compared: "again" });

    const late = await open(sweep, "bg_g_late");
    await late.holder.end();
    await end(sweep, "bg_g_late", late.handle);
    clock.advance(TIMEOUT_MS);
    expect(await leftOver(sweep, "bg_g_late", late.handle)).toEqual({ left: [], compared: "again" });
  });

  it("finds a change made after the revocation (a comparison read again)", async () => {
    const sweep = sweepWith();
    const { handle, holder } = await open(sweep, "bg_g_after");
    await holder.end();
    await end(sweep, "bg_g_after", handle);
    sweep.forget("bg_g_after");
    await target.sql("GRANT SELECT ON public.accounts TO reporting");
    const { left, compared } = await leftOver(sweep, "bg_g_after", handle);
    expect(compared).toBe("again");
    expect(left).toHaveLength(1);
    expect(left[0]).toContain("reporting");
  });
});

describe("shared catalog reads", () => {
  it("serve a caller only a read that began after its moment, one read for callers of the same moment", async () => {
    const sweep = sweepWith();
    await admin.withClient("a", async (c1) =>
      admin.withClient("b", async (c2) => {
        const before = sweep.mark();
        const first = sweep.sharedRead(c1, before); // in flight from here
        const moment = sweep.mark(); // after the first read began
        const [a, b, c] = await Promise.all([first, sweep.sharedRead(c2, moment), sweep.sharedRead(c1, moment)]);
        expect(a.began).toBeGreaterThan(before);
        expect(a.began).toBeLessThan(moment);
        // Both callers of the later moment get the one read queued behind the first.
        expect(b.began).toBeGreaterThan(moment);
        expect(c).toBe(b);
        // A caller of an earlier moment is served the last read, not a new one.
        expect(await sweep.sharedRead(c1, before)).toBe(b);
        const later = sweep.mark();
        expect((await sweep.sharedRead(c2, later)).began).toBeGreaterThan(later);
      }),
    );
  });
});
