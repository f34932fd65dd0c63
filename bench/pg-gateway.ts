/**
 * The PostgreSQL gateway under pgbench: `pgbench -S` (select-only) in simple, extended and
 * prepared modes, each for `seconds` with `clients` clients, against — in the same run —
 * PostgreSQL directly, PgBouncer (session mode) in front of it, a bare Node.js relay (the
 * ceiling for any relay written in Node.js here), and the Breakglass gateway (with recording on,
 * into the broker's SQLite store). Prints TPS and the ratio of each path to direct.
 *
 * pgbench, PgBouncer, the bare relay and PostgreSQL run as separate processes; the broker (and so
 * the gateway) runs in this process. Rounds alternate the paths per mode so drift on a shared
 * machine hits them alike.
 */
import { execFile, spawn } from "node:child_process";
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { silentLogger } from "../src/adapters/logger.js";
import { createBroker } from "../src/app.js";
import { loadConfigFile } from "../src/config/load-config.js";
import { connectorConfigChecks } from "../src/connectors/registry.js";
import type { RequestContext } from "../src/core/request-context.js";
import { freePort } from "../test/support/free-port.js";
import { startPostgresTarget, TARGET_ENV } from "../test/support/postgres-target.js";

const run = promisify(execFile);
const progress = (what: string) => process.stderr.write(`  gateway bench: ${what}\n`);
const ctx = (actor: string): RequestContext => ({ actor, requestId: null, sourceAddress: null });

export type PgbenchMode = "simple" | "extended" | "prepared";
export interface GatewayBenchRow {
  readonly mode: PgbenchMode;
  readonly directTps: number;
  readonly pgbouncerTps: number;
  readonly bareRelayTps: number;
  readonly gatewayTps: number;
  readonly gatewayRatio: number;
  readonly pgbouncerRatio: number;
  readonly bareRelayRatio: number;
  /** Statements the gateway recorded during its runs of this mode. */
  readonly recorded: number;
}
export interface GatewayBenchResult {
  readonly seconds: number;
  readonly clients: number;
  readonly scale: number;
  readonly rows: GatewayBenchRow[];
}

async function pgbench(dsn: string, mode: PgbenchMode, clients: number, seconds: number): Promise<number> {
  const { stdout } = await run(
    "pgbench",
    ["-n", "-S", "-M", mode, "-c", String(clients), "-j", "2", "-T", String(seconds), dsn],
    { maxBuffer: 16 * 1024 * 1024 },
  );
  const m = /tps = ([\d.]+) \(without initial connection time\)/.exec(stdout);
  if (!m) throw new Error(`pgbench printed no tps:\n${stdout}`);
  const failed = /number of failed transactions: (\d+)/.exec(stdout);
  if (failed && failed[1] !== "0") throw new Error(`pgbench: ${failed[1]} failed transactions`);
  return Number(m[1]);
}

/** PgBouncer in session mode in front of the target, run as the postgres user when we are root. */
async function startPgbouncer(pgPort: number): Promise<{ port: number; stop(): Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), "bg-pgbouncer-"));
  const port = await freePort();
  writeFileSync(
    join(dir, "pgbouncer.ini"),
    `[databases]
app = host=127.0.0.1 port=${pgPort} dbname=app
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = ${port}
unix_socket_dir =
auth_type = trust
auth_file = ${join(dir, "users.txt")}
pool_mode = session
max_client_conn = 200
default_pool_size = 50
logfile = ${join(dir, "pgbouncer.log")}
`,
  );
  // trust still needs the user listed.
  writeFileSync(join(dir, "users.txt"), '"postgres" ""\n');
  const asRoot = process.getuid?.() === 0;
  if (asRoot) {
    const uid = Number((await run("id", ["-u", "postgres"])).stdout.trim());
    const gid = Number((await run("id", ["-g", "postgres"])).stdout.trim());
    for (const f of ["", "pgbouncer.ini", "users.txt"]) chownSync(join(dir, f), uid, gid);
    chmodSync(dir, 0o755);
  }
  const [file, args] = asRoot
    ? ["runuser", ["-u", "postgres", "--", "pgbouncer", join(dir, "pgbouncer.ini")]]
    : ["pgbouncer", [join(dir, "pgbouncer.ini")]];
  // Its own process group: runuser does not pass signals on, so stop signals the group.
  const child = spawn(file, args, { stdio: "ignore", detached: true });
  for (let i = 0; i < 100; i++) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect({ host: "127.0.0.1", port }, () => {
        s.destroy();
        resolve(true);
      });
      s.on("error", () => resolve(false));
    });
    if (ok) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    port,
    async stop() {
      if (child.pid !== undefined) process.kill(-child.pid, "SIGINT");
      await new Promise((r) => child.once("exit", r));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The bare Node.js relay of bare-relay.ts, in its own process. */
async function startBareRelay(pgPort: number): Promise<{ port: number; stop(): Promise<void> }> {
  const port = await freePort();
  const child = spawn(
    process.execPath,
    [fileURLToPath(new URL("./bare-relay.js", import.meta.url)), String(port), String(pgPort)],
    {
      stdio: ["ignore", "pipe", "inherit"],
    },
  );
  await new Promise<void>((resolve, reject) => {
    child.once("exit", (code) => reject(new Error(`bare relay exited (${code})`)));
    child.stdout?.once("data", () => resolve());
  });
  child.removeAllListeners("exit");
  return {
    port,
    async stop() {
      child.kill();
      await new Promise((r) => child.once("exit", r));
    },
  };
}

export async function runGatewayBench(opts: {
  seconds: number;
  clients: number;
  scale: number;
  rounds: number;
}): Promise<GatewayBenchResult> {
  const target = await startPostgresTarget({ durable: false });
  const dir = mkdtempSync(join(tmpdir(), "bg-bench-gateway-"));
  mkdirSync(dir, { recursive: true });
  let bouncer: Awaited<ReturnType<typeof startPgbouncer>> | null = null;
  let relay: Awaited<ReturnType<typeof startBareRelay>> | null = null;
  try {
    const admin = new URL(target.adminUrl);
    await run("pgbench", ["-i", "-q", "-s", String(opts.scale), target.adminUrl], { maxBuffer: 16 * 1024 * 1024 });
    await target.sql("GRANT SELECT ON ALL TABLES IN SCHEMA public TO recovery_rw");
    bouncer = await startPgbouncer(Number(admin.port));
    relay = await startBareRelay(Number(admin.port));
    const gwPort = await freePort();
    writeFileSync(
      join(dir, "breakglass.yaml"),
      `version: 1
server: { host: 127.0.0.1, port: 0 }
storage: { driver: sqlite, path: ./breakglass.db }
audit: { signing_key_file: ./audit-signing.pem, generate_key_if_missing: true }
secrets: { key_file: ./secrets.key, generate_key_if_missing: true }
gateway: { host: 127.0.0.1, port: ${gwPort}, targets: [pg] }
users: { alice: { name: Alice }, bob: { name: Bob } }
groups: { oncall: [alice], leads: [bob] }
domains:
  production:
    roles:
      db-admin:
        target: pg
        grants: { roles: [recovery_rw], connection_limit: 50 }
        max_duration: 8h
        approval: "1 of leads"
        requesters: [oncall]
targets:
  pg:
    connector: postgres
    settings: { admin_url: { env: ${TARGET_ENV} }, connect_options: "sslmode=disable" }
`,
    );
    const env = { [TARGET_ENV]: target.adminUrl };
    const broker = await createBroker(loadConfigFile(join(dir, "breakglass.yaml"), { ...connectorConfigChecks, env }), {
      log: silentLogger,
      env,
    });
    await broker.start();
    try {
      progress("broker started; activating a grant");
      const g = await broker.service.request(ctx("alice"), {
        roleId: "production/db-admin",
        justification: "benchmarking the gateway",
        incident: "INC-1",
        durationS: 8 * 3600,
      });
      await broker.service.approve(ctx("bob"), g.id, null);
      progress("grant active");
      const gatewayDsn = (await broker.service.credential(ctx("alice"), g.id)).credential.reveal();
      const directDsn = `${target.adminUrl}?sslmode=disable`;
      const bouncerUrl = new URL(target.adminUrl);
      bouncerUrl.port = String(bouncer.port);
      const bouncerDsn = `${bouncerUrl.toString()}?sslmode=disable`;
      bouncerUrl.port = String(relay.port);
      const relayDsn = `${bouncerUrl.toString()}?sslmode=disable`;

      const rows: GatewayBenchRow[] = [];
      for (const mode of ["simple", "extended", "prepared"] as const) {
        const tps = {
          direct: [] as number[],
          pgbouncer: [] as number[],
          relay: [] as number[],
          gateway: [] as number[],
        };
        let recorded = 0;
        for (let round = 0; round < opts.rounds; round++) {
          const per = Math.max(1, Math.round(opts.seconds / opts.rounds));
          progress(`${mode} round ${round + 1}`);
          tps.direct.push(await pgbench(directDsn, mode, opts.clients, per));
          tps.pgbouncer.push(await pgbench(bouncerDsn, mode, opts.clients, per));
          tps.relay.push(await pgbench(relayDsn, mode, opts.clients, per));
          const before = (await broker.store.listStatements(g.id)).length;
          tps.gateway.push(await pgbench(gatewayDsn, mode, opts.clients, per));
          await new Promise((r) => setTimeout(r, 300)); // the recorder's last batch
          recorded += (await broker.store.listStatements(g.id)).length - before;
        }
        const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
        const direct = mean(tps.direct);
        const row = {
          mode,
          directTps: direct,
          pgbouncerTps: mean(tps.pgbouncer),
          bareRelayTps: mean(tps.relay),
          gatewayTps: mean(tps.gateway),
          gatewayRatio: mean(tps.gateway) / direct,
          pgbouncerRatio: mean(tps.pgbouncer) / direct,
          bareRelayRatio: mean(tps.relay) / direct,
          recorded,
        };
        rows.push(row);
      }
      return { seconds: opts.seconds, clients: opts.clients, scale: opts.scale, rows };
    } finally {
      await broker.stop();
    }
  } finally {
    await bouncer?.stop();
    await relay?.stop();
    await target.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

// `node dist-bench/bench/pg-gateway.js [seconds]`: this benchmark alone.
if (process.argv[1]?.endsWith("pg-gateway.js")) {
  const seconds = Number(process.argv[2] ?? 20);
  const r = await runGatewayBench({ seconds, clients: 8, scale: 10, rounds: 2 });
  console.table(r.rows);
}
