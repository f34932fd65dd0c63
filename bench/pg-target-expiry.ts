/**
 * Expiry on a real PostgreSQL target: N grants (each with an open session) whose ends fall in the
 * same second. A poller on its own admin connection watches the target every 5 ms and records,
 * per grant, when its role can no longer log in and no backend of it remains (access cut) and
 * when its role is gone too (fully revoked, containment included); lags are measured from the
 * grant's end. The broker runs as configured for production (SQLite store, expiry worker,
 * revocations through the postgres connector: NOLOGIN, terminate, containment comparison, reassign, drop).
 *
 * Baseline, same run: the same NOLOGIN + terminate (waiting for the sessions to exit) + drop done
 * directly by one script over the same number of admin connections, with a session per role and
 * no broker, no sweep, no verify — the floor the broker is compared against.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { silentLogger } from "../src/adapters/logger.js";
import { createBroker } from "../src/app.js";
import { loadConfigFile } from "../src/config/load-config.js";
import { connectorConfigChecks } from "../src/connectors/registry.js";
import type { Grant } from "../src/core/model.js";
import type { RequestContext } from "../src/core/request-context.js";
import { startPostgresTarget } from "../test/support/postgres-target.js";
import { type Summary, summarize } from "./stats.js";

export interface PgTargetExpiryResult {
  readonly grants: number;
  readonly poolSize: number;
  /** End → role dropped and no backend left, per grant (ms): the whole revocation, containment included. */
  readonly brokerLagMs: Summary;
  /** End → the role can no longer log in (`NOLOGIN`) and no backend of it is left (ms): access cut. */
  readonly brokerCutMs: Summary;
  /** The direct script: start of the run → each role gone (ms), all started at once. */
  readonly directLagMs: Summary;
  readonly directTotalMs: number;
  readonly sessionsCut: number;
}

const ctx = (actor: string): RequestContext => ({ actor, requestId: null, sourceAddress: null });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function yaml(n: number, poolSize: number): string {
  const users = Array.from({ length: n }, (_, i) => `  u${i}: { name: U${i} }`).join("\n");
  return `version: 1
server: { host: 127.0.0.1, port: 0 }
storage: { driver: sqlite, path: ./breakglass.db }
audit: { signing_key_file: ./audit-signing.pem, generate_key_if_missing: true }
secrets: { key_file: ./secrets.key, generate_key_if_missing: true }
workers: { expiry_poll: 100ms, revoke_concurrency: ${poolSize} }
users:
  bob: { name: Bob }
  carol: { name: Carol }
${users}
groups:
  oncall: [${Array.from({ length: n }, (_, i) => `u${i}`).join(", ")}]
  leads: [bob, carol]
domains:
  production:
    description: Production
    roles:
      db-admin:
        description: Recovery DBA
        target: pg
        grants: { roles: [recovery_rw] }
        max_duration: 2h
        approval: "2 of leads"
        requesters: [oncall]
targets:
  pg:
    connector: postgres
    settings: { admin_url: { env: BG_BENCH_TARGET }, pool_size: ${poolSize}, timeout: 10s }
`;
}

/**
 * Poll the target until every role in `names` is gone with no backend. Returns, per name, when
 * access was cut (the role can no longer log in — `NOLOGIN`, or gone — and no backend of it is
 * left) and when it was gone (dropped, no backend: the whole revocation, containment included).
 */
async function watch(
  adminUrl: string,
  names: ReadonlySet<string>,
  timeoutMs: number,
): Promise<{ cut: Map<string, number>; gone: Map<string, number> }> {
  const c = new pg.Client({ connectionString: adminUrl });
  await c.connect();
  const cut = new Map<string, number>();
  const gone = new Map<string, number>();
  const deadline = Date.now() + timeoutMs;
  try {
    while (gone.size < names.size && Date.now() < deadline) {
      const rows = (
        await c.query<{ n: string; access: boolean }>(
          `SELECT rolname AS n, rolcanlogin AS access FROM pg_roles WHERE starts_with(rolname, 'bg_')
           UNION ALL SELECT usename, true FROM pg_stat_activity WHERE starts_with(usename, 'bg_')`,
        )
      ).rows;
      const present = new Set(rows.map((r) => r.n));
      const access = new Set(rows.filter((r) => r.access).map((r) => r.n));
      const now = Date.now();
      for (const n of names) {
        if (!access.has(n) && !cut.has(n)) cut.set(n, now);
        if (!present.has(n) && !gone.has(n)) gone.set(n, now);
      }
      await sleep(5);
    }
  } finally {
    await c.end();
  }
  return { cut, gone };
}

export async function runPgTargetExpiry(n = 200, poolSize = 8): Promise<PgTargetExpiryResult> {
  const target = await startPostgresTarget({ maxConnections: n + 60 });
  const dir = mkdtempSync(join(tmpdir(), "bg-bench-pgtarget-"));
  const sessions: pg.Client[] = [];
  try {
    writeFileSync(join(dir, "breakglass.yaml"), yaml(n, poolSize));
    const env = { BG_BENCH_TARGET: target.adminUrl };
    const config = loadConfigFile(join(dir, "breakglass.yaml"), { ...connectorConfigChecks, env });
    const broker = await createBroker(config, { log: silentLogger, env });

    // Activate n grants through the real path; pick each duration so all ends fall in one second.
    const endSecond = Math.ceil((Date.now() + 10_000 + n * 150) / 1000) * 1000;
    const grants: Grant[] = [];
    for (let i = 0; i < n; i++) {
      const g = await broker.service.request(ctx(`u${i}`), {
        roleId: "production/db-admin",
        justification: "expiry benchmark on a real target",
        incident: "INC-1",
        durationS: Math.max(1, Math.round((endSecond + ((i * 997) % 1000) - Date.now()) / 1000)),
      });
      await broker.service.approve(ctx("bob"), g.id, null);
      const active = await broker.service.approve(ctx("carol"), g.id, null);
      if (active.access !== "granted") throw new Error(`grant ${g.id} did not activate: ${active.accessLastError}`);
      grants.push(active);
      const { credential } = await broker.service.credential(ctx(`u${i}`), g.id);
      const s = new pg.Client({ connectionString: credential.reveal() });
      s.on("error", () => {});
      await s.connect();
      sessions.push(s);
    }
    const firstEnd = Math.min(...grants.map((g) => g.endsAt ?? 0));
    if (Date.now() > firstEnd - 1000) throw new Error("activation took too long; lower the grant count");
    await broker.start();
    const names = new Map(grants.map((g) => [`bg_${g.id}`, g.endsAt ?? 0]));
    const { cut, gone } = await watch(target.adminUrl, new Set(names.keys()), 120_000);
    await broker.stop();
    const lags = [...names].map(([name, end]) => (gone.get(name) ?? Number.POSITIVE_INFINITY) - end);
    const cuts = [...names].map(([name, end]) => (cut.get(name) ?? Number.POSITIVE_INFINITY) - end);
    let sessionsCut = 0;
    for (const s of sessions) {
      sessionsCut += await s.query("SELECT 1").then(
        () => 0,
        () => 1,
      );
    }

    // Baseline: the same removal done directly, n roles over `poolSize` connections, no broker.
    await target.reset();
    const direct = Array.from({ length: n }, (_, i) => `bg_direct_${i}`);
    await target.sql(direct.map((r) => `CREATE ROLE ${r} LOGIN PASSWORD 'x' IN ROLE recovery_rw;`).join(""));
    for (const r of direct) {
      const s = new pg.Client({ connectionString: target.adminUrl.replace("postgres@", `${r}:x@`) });
      s.on("error", () => {});
      await s.connect();
      sessions.push(s);
    }
    const pool = new pg.Pool({ connectionString: target.adminUrl, max: poolSize });
    const started = Date.now();
    const done: number[] = [];
    await Promise.all(
      direct.map(async (r) => {
        const c = await pool.connect();
        try {
          await c.query(`ALTER ROLE ${r} NOLOGIN`);
          const pids = (
            await c.query<{ pid: number }>(
              `WITH v AS MATERIALIZED (SELECT pid FROM pg_stat_activity WHERE usename = $1)
               SELECT pid FROM v WHERE pg_terminate_backend(v.pid)`,
              [r],
            )
          ).rows.map((x) => x.pid);
          await c.query(`REASSIGN OWNED BY ${r} TO recovery_rw; DROP OWNED BY ${r}; DROP ROLE ${r}`);
          while ((await c.query("SELECT 1 FROM pg_stat_activity WHERE pid = ANY($1::int[])", [pids])).rowCount) {
            await sleep(5);
          }
          done.push(Date.now() - started);
        } finally {
          c.release();
        }
      }),
    );
    await pool.end();
    return {
      grants: n,
      poolSize,
      brokerLagMs: summarize(lags),
      brokerCutMs: summarize(cuts),
      directLagMs: summarize(done),
      directTotalMs: Date.now() - started,
      sessionsCut,
    };
  } finally {
    for (const s of sessions) await s.end().catch(() => {});
    rmSync(dir, { recursive: true, force: true });
    await target.stop();
  }
}
