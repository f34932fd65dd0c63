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
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import BetterSqlite3 from "better-sqlite3";
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
/**
 * `inproc` (not run by default): the bare relay's `pipe()` in this process, beside the idle broker —
 * what relaying costs in the broker's process before the gateway does anything of its own.
 */
export type BenchPath = "direct" | "pgbouncer" | "relay" | "gateway" | "inproc";
export interface GatewayBenchRow {
  readonly mode: PgbenchMode;
  readonly clients: number;
  readonly directTps: number;
  readonly pgbouncerTps: number;
  readonly bareRelayTps: number;
  readonly gatewayTps: number;
  readonly gatewayRatio: number;
  readonly pgbouncerRatio: number;
  readonly bareRelayRatio: number;
  /**
   * CPU time (user + system, every thread) of the relaying process per transaction, µs: the
   * measure that decides throughput when pgbench, PostgreSQL and the relay fill the cores.
   */
  readonly pgbouncerCpuUs: number;
  readonly bareRelayCpuUs: number;
  readonly gatewayCpuUs: number;
  /** The `inproc` path, when run. */
  readonly inprocTps?: number;
  readonly inprocCpuUs?: number;
  /** Statements the gateway recorded during its runs of this mode. */
  readonly recorded: number;
}
export interface GatewayBenchResult {
  readonly seconds: number;
  readonly clients: readonly number[];
  readonly scale: number;
  /** The machine's 1-minute load average before and after (the cores are shared). */
  readonly load: { readonly before: number; readonly after: number };
  readonly rows: GatewayBenchRow[];
  /** A large result through psql, directly and through the gateway (when `bigRows` was given). */
  readonly big: readonly BigResultRow[];
}
export interface BigResultRow {
  readonly what: "select" | "copy";
  readonly rows: number;
  readonly directMs: number;
  readonly gatewayMs: number;
  readonly ratio: number;
  /** Growth of this process's resident memory (the broker, and so the gateway, runs here) over the run, at its peak. */
  readonly brokerGrowthMiB: number;
}

/**
 * `rows` rows of ~100 bytes through psql into /dev/null, as a SELECT (psql's own reading, every
 * row through the gateway's scanner) or COPY TO STDOUT: the time, and how much this process's
 * resident memory grew meanwhile (sampled every 20 ms).
 */
async function bigResult(dsn: string, what: "select" | "copy", rows: number): Promise<{ ms: number; growth: number }> {
  const query = `SELECT i, repeat('x', 90) AS pad FROM generate_series(1, ${rows}) AS i`;
  const sqlText = what === "copy" ? `COPY (${query}) TO STDOUT` : query;
  // The whole process's resident memory: the gateway relays on a thread of its own, whose heap
  // and buffers are not this thread's (process.memoryUsage().heapUsed is one isolate's).
  const memory = () => process.memoryUsage.rss();
  (globalThis as { gc?: () => void }).gc?.();
  const base = memory();
  let peak = base;
  const sampler = setInterval(() => {
    peak = Math.max(peak, memory());
  }, 20);
  const start = performance.now();
  try {
    await run("psql", [dsn, "-X", "-q", "-o", "/dev/null", "-c", sqlText], { maxBuffer: 1024 * 1024 });
  } finally {
    clearInterval(sampler);
  }
  return { ms: performance.now() - start, growth: peak - base };
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

/** CPU time a process has used so far (user + system, all its threads), µs; Linux /proc. */
function processCpuUs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // Fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) * (1_000_000 / 100); // USER_HZ is 100 on Linux
}

/** This process's CPU time so far, µs (every thread: the broker, so the gateway, runs here). */
const ownCpuUs = (): number => {
  const u = process.cpuUsage();
  return u.user + u.system;
};

/** PgBouncer in session mode in front of the target, run as the postgres user when we are root. */
async function startPgbouncer(pgPort: number): Promise<{ port: number; pid: number; stop(): Promise<void> }> {
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
  // runuser forks pgbouncer: its CPU is its child's.
  const launcher = child.pid as number;
  let pid = launcher;
  try {
    const children = readFileSync(`/proc/${launcher}/task/${launcher}/children`, "utf8").trim();
    if (children) pid = Number(children.split(" ")[0]);
  } catch {
    // no /proc children list: count the launcher (pgbouncer itself when not started through runuser)
  }
  return {
    port,
    pid,
    async stop() {
      if (child.pid !== undefined) process.kill(-child.pid, "SIGINT");
      await new Promise((r) => child.once("exit", r));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The bare Node.js relay of bare-relay.ts, in its own process. */
async function startBareRelay(pgPort: number): Promise<{ port: number; pid: number; stop(): Promise<void> }> {
  const port = await freePort();
  const child = spawn(
    process.execPath,
    [
      // BENCH_RELAY_NODE_ARGS="--cpu-prof --cpu-prof-dir=…" profiles the relay (NODE_OPTIONS refuses --cpu-prof).
      ...(process.env.BENCH_RELAY_NODE_ARGS?.split(" ").filter(Boolean) ?? []),
      fileURLToPath(new URL("./bare-relay.js", import.meta.url)),
      String(port),
      String(pgPort),
    ],
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
    pid: child.pid as number,
    async stop() {
      child.kill();
      await new Promise((r) => child.once("exit", r));
    },
  };
}

/** bare-relay.ts's relay, in this process. */
async function startInprocRelay(pgPort: number): Promise<{ port: number; stop(): Promise<void> }> {
  const server = net.createServer((client) => {
    client.setNoDelay(true);
    const target = net.connect({ host: "127.0.0.1", port: pgPort });
    target.setNoDelay(true);
    client.pipe(target);
    target.pipe(client);
    client.on("error", () => target.destroy());
    target.on("error", () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  return {
    port: (server.address() as net.AddressInfo).port,
    stop: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

export async function runGatewayBench(opts: {
  seconds: number;
  clients: readonly number[];
  scale: number;
  rounds: number;
  /** Only these paths (profiling the gateway alone); default all. Ratios need `direct`. */
  paths?: readonly BenchPath[];
  modes?: readonly PgbenchMode[];
  /** Also stream a result of this many rows (SELECT and COPY) directly and through the gateway. */
  bigRows?: number;
}): Promise<GatewayBenchResult> {
  const paths = new Set<BenchPath>(opts.paths ?? ["direct", "pgbouncer", "relay", "gateway"]);
  const loadBefore = loadavg()[0] ?? 0;
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
      // As `breakglass server` runs the gateway (BENCH_GATEWAY_THREAD=0: on the broker's thread,
      // recording through the broker's store).
      gatewayThread: process.env.BENCH_GATEWAY_THREAD !== "0",
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
      const inproc = paths.has("inproc") ? await startInprocRelay(Number(admin.port)) : null;
      bouncerUrl.port = String(inproc?.port ?? 0);
      const inprocDsn = `${bouncerUrl.toString()}?sslmode=disable`;

      // Counted in the store's file directly: reading the statements back (listStatements) would
      // cost more than the runs it counts and show in a profile of this process.
      const counter = new BetterSqlite3(join(dir, "breakglass.db"), { readonly: true });
      const countStmt = counter.prepare(
        "SELECT coalesce(sum(last_seq - first_seq + 1), 0) AS n FROM statement_batches WHERE grant_id = ?",
      );
      const count = () => (countStmt.get(g.id) as { n: number }).n;
      const rows: GatewayBenchRow[] = [];
      for (const clients of opts.clients)
        for (const mode of opts.modes ?? (["simple", "extended", "prepared"] as const)) {
          const tps = {
            direct: [] as number[],
            pgbouncer: [] as number[],
            relay: [] as number[],
            gateway: [] as number[],
            inproc: [] as number[],
          };
          // CPU µs of each relaying process, and the transactions it relayed meanwhile.
          const cpu = {
            pgbouncer: { us: 0, tx: 0 },
            relay: { us: 0, tx: 0 },
            gateway: { us: 0, tx: 0 },
            inproc: { us: 0, tx: 0 },
          };
          const measured = async (path: keyof typeof cpu, used: () => number, dsn: string, per: number) => {
            const before = used();
            const t = await pgbench(dsn, mode, clients, per);
            cpu[path].us += used() - before;
            cpu[path].tx += t * per;
            return t;
          };
          let recorded = 0;
          for (let round = 0; round < opts.rounds; round++) {
            const per = Math.max(1, Math.round(opts.seconds / opts.rounds));
            progress(`${clients} client(s), ${mode} round ${round + 1}`);
            if (paths.has("direct")) tps.direct.push(await pgbench(directDsn, mode, clients, per));
            if (paths.has("pgbouncer")) {
              const pid = bouncer.pid;
              tps.pgbouncer.push(await measured("pgbouncer", () => processCpuUs(pid), bouncerDsn, per));
            }
            if (paths.has("relay")) {
              const pid = relay.pid;
              tps.relay.push(await measured("relay", () => processCpuUs(pid), relayDsn, per));
            }
            if (inproc) tps.inproc.push(await measured("inproc", ownCpuUs, inprocDsn, per));
            if (!paths.has("gateway")) continue;
            const before = count();
            tps.gateway.push(await measured("gateway", ownCpuUs, gatewayDsn, per));
            await new Promise((r) => setTimeout(r, 300)); // the recorder's last batch
            recorded += count() - before;
          }
          const mean = (xs: number[]) => (xs.length === 0 ? Number.NaN : xs.reduce((a, b) => a + b, 0) / xs.length);
          const direct = mean(tps.direct);
          const row = {
            mode,
            clients,
            directTps: direct,
            pgbouncerTps: mean(tps.pgbouncer),
            bareRelayTps: mean(tps.relay),
            gatewayTps: mean(tps.gateway),
            gatewayRatio: mean(tps.gateway) / direct,
            pgbouncerRatio: mean(tps.pgbouncer) / direct,
            bareRelayRatio: mean(tps.relay) / direct,
            pgbouncerCpuUs: cpu.pgbouncer.us / cpu.pgbouncer.tx,
            bareRelayCpuUs: cpu.relay.us / cpu.relay.tx,
            gatewayCpuUs: cpu.gateway.us / cpu.gateway.tx,
            ...(inproc ? { inprocTps: mean(tps.inproc), inprocCpuUs: cpu.inproc.us / cpu.inproc.tx } : {}),
            recorded,
          };
          rows.push(row);
        }
      counter.close();
      await inproc?.stop();
      const big: BigResultRow[] = [];
      if (opts.bigRows) {
        for (const what of ["select", "copy"] as const) {
          for (let round = 0; round < 2; round++) {
            progress(`${opts.bigRows} rows, ${what}, round ${round + 1}`);
            const direct = await bigResult(directDsn, what, opts.bigRows);
            const gateway = await bigResult(gatewayDsn, what, opts.bigRows);
            big.push({
              what,
              rows: opts.bigRows,
              directMs: direct.ms,
              gatewayMs: gateway.ms,
              ratio: gateway.ms / direct.ms,
              brokerGrowthMiB: gateway.growth / 1048576,
            });
          }
        }
      }
      return {
        seconds: opts.seconds,
        clients: opts.clients,
        scale: opts.scale,
        load: { before: loadBefore, after: loadavg()[0] ?? 0 },
        rows,
        big,
      };
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

// `node dist-bench/bench/pg-gateway.js [seconds] [clients,…] [paths,…] [modes,…]`: this benchmark alone.
// Profile the gateway: `node --cpu-prof dist-bench/bench/pg-gateway.js 10 8 gateway simple` (the
// broker, and so the gateway, runs in this process; pgbench, PostgreSQL and the other paths do not).
if (process.argv[1]?.endsWith("pg-gateway.js")) {
  const [secs, clients, paths, modes] = process.argv.slice(2);
  const list = <T extends string>(v: string | undefined): T[] | undefined => (v ? (v.split(",") as T[]) : undefined);
  const r = await runGatewayBench({
    seconds: Number(secs ?? 20),
    clients: (list(clients) ?? ["1", "8"]).map(Number),
    scale: 10,
    rounds: 2,
    bigRows: Number(process.env.BENCH_BIG_ROWS ?? 1_000_000),
    ...(list<BenchPath>(paths) ? { paths: list<BenchPath>(paths) as BenchPath[] } : {}),
    ...(list<PgbenchMode>(modes) ? { modes: list<PgbenchMode>(modes) as PgbenchMode[] } : {}),
  });
  console.log(`load average before ${r.load.before.toFixed(2)}, after ${r.load.after.toFixed(2)}`);
  console.table(r.rows);
  console.table(r.big);
}
