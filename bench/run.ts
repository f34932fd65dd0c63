/**
 * `npm run bench`: audit append and verify rates (with a same-run plain-insert baseline), the
 * 10,000-grant expiry storm (SQLite; PostgreSQL with 1 and 3 replicas), expiry at a real
 * PostgreSQL target, alarm latency, time to access and the gateway against direct and PgBouncer,
 * on a throwaway PostgreSQL with fsync on, and expiry and /health during a flood of API calls.
 * Prints a table and writes bench/results/<timestamp>.json. Figures are medians/percentiles of one
 * run on a shared 2-core machine: compare ratios, not absolutes.
 *
 * `--only audit,storm,pg-target,alarms,access,gateway,flood` runs just those (default: all);
 * `--quick` runs smaller sizes.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { join } from "node:path";
import { APP_ROLE, createDatabase, startPostgres, withDatabase } from "../test/support/postgres-cluster.js";
import { runAlarmLatency } from "./alarm-latency.js";
import { runAuditBenchmarks } from "./audit-bench.js";
import { runExpiryStorm } from "./expiry-storm.js";
import { runFlood } from "./flood.js";
import { runGatewayBench } from "./pg-gateway.js";
import { runPgTargetExpiry } from "./pg-target-expiry.js";
import { fmt } from "./stats.js";
import { runTimeToAccess } from "./time-to-access.js";

const quick = process.argv.includes("--quick");
const BENCHES = ["audit", "storm", "pg-target", "alarms", "access", "gateway", "flood"] as const;
const onlyArg = process.argv.indexOf("--only");
const only = onlyArg < 0 ? null : new Set((process.argv[onlyArg + 1] ?? "").split(","));
for (const name of only ?? []) {
  if (!(BENCHES as readonly string[]).includes(name))
    throw new Error(`--only: no benchmark "${name}" (${BENCHES.join(", ")})`);
}
const want = (name: (typeof BENCHES)[number]): boolean => only === null || only.has(name);
const results: Record<string, unknown> = {};
const sizes = quick
  ? {
      single: 500,
      batched: 5_000,
      verify: 20_000,
      storm: 2_000,
      pgTarget: 50,
      alarms: 200,
      gatewayS: 4,
      access: 20,
      flood: 500,
    }
  : {
      single: 3_000,
      batched: 50_000,
      verify: 200_000,
      storm: 10_000,
      pgTarget: 200,
      alarms: 1_000,
      gatewayS: 20,
      access: 100,
      flood: 500,
    };

const cluster = await startPostgres({ durable: true });
try {
  console.log(`Breakglass benchmarks — node ${process.version}, ${cpus().length} cores${quick ? " (quick)" : ""}\n`);
  if (want("audit")) {
    const audit = await runAuditBenchmarks(cluster.url, sizes);
    console.log("Audit append (durable: SQLite WAL synchronous=FULL; PostgreSQL fsync=on)");
    console.table(
      audit.append.map((r) => ({
        backend: r.backend,
        mode: r.mode,
        "chained events/s": fmt(r.eventsPerS),
        "plain insert rows/s (baseline)": fmt(r.baselinePerS),
        "chained / baseline": fmt(r.ratio, 2),
      })),
    );
    console.log("Audit verify");
    console.table(
      audit.verify.map((r) => ({
        backend: r.backend,
        source: r.source,
        events: r.events,
        "events/s": fmt(r.eventsPerS),
      })),
    );
    results.audit = audit;
  }

  if (want("storm")) {
    // PostgreSQL: 1 and 3 replicas (threads), each run on a fresh database of the same cluster.
    const pgStorm = async (replicas: number) => {
      const name = `bench_storm_${replicas}`;
      await createDatabase(cluster.adminUrl, name, { owner: APP_ROLE });
      return runExpiryStorm(
        "postgres",
        "{ driver: postgres, url_env: BG_BENCH_URL, pool_size: 8 }",
        { BG_BENCH_URL: withDatabase(cluster.url, name) },
        sizes.storm,
        replicas,
      );
    };
    const storms = [
      await runExpiryStorm("sqlite", "{ driver: sqlite, path: ./breakglass.db }", {}, sizes.storm),
      await pgStorm(1),
      await pgStorm(3),
    ];
    console.log(`Expiry storm: ${fmt(sizes.storm)} grants ending within the same second (lag from end, ms)`);
    console.table(
      storms.map((s) => ({
        backend: s.backend,
        replicas: s.replicas,
        "expired p50": fmt(s.expiryLagMs.p50),
        "expired p99": fmt(s.expiryLagMs.p99),
        "expired max": fmt(s.expiryLagMs.max),
        "revoked p50": fmt(s.revokeLagMs.p50),
        "revoked p99": fmt(s.revokeLagMs.p99),
        "revoked max": fmt(s.revokeLagMs.max),
      })),
    );
    console.log("API latency (GET grant / GET active list, 4 concurrent clients on another thread), ms");
    console.table(
      storms.map((s) => ({
        backend: s.backend,
        replicas: s.replicas,
        "idle p50": fmt(s.apiIdleMs.p50, 1),
        "idle p99": fmt(s.apiIdleMs.p99, 1),
        "storm p50": fmt(s.apiStormMs.p50, 1),
        "storm p99": fmt(s.apiStormMs.p99, 1),
        "storm max": fmt(s.apiStormMs.max, 1),
        "storm/idle p99": fmt(s.apiStormMs.p99 / s.apiIdleMs.p99, 2),
        requests: s.apiIdleMs.n + s.apiStormMs.n,
        errors: s.apiErrors,
      })),
    );
    results.storms = storms;
  }

  if (want("pg-target")) {
    // The default pool (8 admin connections per target) and a larger one, each against its own direct baseline.
    const pgTarget = [];
    const load = loadavg();
    for (const pool of quick ? [8] : [8, 16]) pgTarget.push(await runPgTargetExpiry(sizes.pgTarget, pool));
    console.log(
      `Expiry on a real PostgreSQL target: ${sizes.pgTarget} grants, each with an open session, ending within one second (ms; load average before: ${load.map((l) => l.toFixed(2)).join(" ")}, after: ${loadavg()
        .map((l) => l.toFixed(2))
        .join(" ")})`,
    );
    console.table(
      pgTarget.flatMap((r) => [
        {
          run: `broker, pool ${r.poolSize}: end → NOLOGIN, backends gone (access cut)`,
          p50: fmt(r.brokerCutMs.p50),
          p99: fmt(r.brokerCutMs.p99),
          max: fmt(r.brokerCutMs.max),
          note: "",
        },
        {
          run: `broker, pool ${r.poolSize}: end → role dropped, backends gone (contained)`,
          p50: fmt(r.brokerLagMs.p50),
          p99: fmt(r.brokerLagMs.p99),
          max: fmt(r.brokerLagMs.max),
          note: `${r.sessionsCut}/${r.grants} sessions cut`,
        },
        {
          run: `baseline, pool ${r.poolSize}: direct script, same drops`,
          p50: fmt(r.directLagMs.p50),
          p99: fmt(r.directLagMs.p99),
          max: fmt(r.directLagMs.max),
          note: `broker p99 / direct p99 = ${fmt(r.brokerLagMs.p99 / r.directLagMs.p99, 2)}`,
        },
      ]),
    );
    results.pgTarget = pgTarget;
  }

  if (want("alarms")) {
    const alarms = await runAlarmLatency(sizes.alarms);
    console.log(`Alarms: activation → signed webhook received, ${alarms.activations} activations (ms)`);
    console.table([
      {
        run: "broker: activation event → webhook received (streamed)",
        p50: fmt(alarms.activationToReceivedMs.p50),
        p99: fmt(alarms.activationToReceivedMs.p99),
        max: fmt(alarms.activationToReceivedMs.max),
        n: alarms.activationToReceivedMs.n,
      },
      {
        run: "broker: the same, one activation at a time",
        p50: fmt(alarms.oneAtATimeMs.p50),
        p99: fmt(alarms.oneAtATimeMs.p99),
        max: fmt(alarms.oneAtATimeMs.max),
        n: alarms.oneAtATimeMs.n,
      },
      {
        run: "baseline: the same POST sent directly",
        p50: fmt(alarms.directPostMs.p50, 1),
        p99: fmt(alarms.directPostMs.p99, 1),
        max: fmt(alarms.directPostMs.max, 1),
        n: alarms.directPostMs.n,
      },
    ]);
    results.alarms = alarms;
  }

  if (want("access")) {
    const access = await runTimeToAccess(sizes.access);
    console.log(
      `Time to access: request → approval (activation at the target) → credential → first query through the gateway, ${access.runs} runs over HTTP (ms)`,
    );
    console.table([
      {
        run: "broker: the whole break-glass path",
        p50: fmt(access.timeToAccessMs.p50, 1),
        p99: fmt(access.timeToAccessMs.p99, 1),
        max: fmt(access.timeToAccessMs.max, 1),
        "p50 parts: request / approve+activate / credential / connect+query": `${fmt(access.stepsP50Ms.request, 1)} / ${fmt(access.stepsP50Ms.approve, 1)} / ${fmt(access.stepsP50Ms.credential, 1)} / ${fmt(access.stepsP50Ms.firstQuery, 1)}`,
      },
      {
        run: "baseline: standing account, new connection + same query",
        p50: fmt(access.directMs.p50, 1),
        p99: fmt(access.directMs.p99, 1),
        max: fmt(access.directMs.max, 1),
        "p50 parts: request / approve+activate / credential / connect+query": "",
      },
    ]);
    results.access = access;
  }

  if (want("gateway")) {
    const gateway = await runGatewayBench({
      seconds: sizes.gatewayS,
      clients: [1, 8],
      scale: 10,
      rounds: 2,
      bigRows: quick ? 100_000 : 1_000_000,
    });
    console.log(
      `PostgreSQL gateway: pgbench -S, ${gateway.clients.join(" and ")} clients, ${gateway.seconds} s per path, mode and client count (two alternating rounds), recording on (SQLite store); load average before ${gateway.load.before.toFixed(2)}, after ${gateway.load.after.toFixed(2)}`,
    );
    console.table(
      gateway.rows.map((r) => ({
        clients: r.clients,
        mode: r.mode,
        "direct tps": fmt(r.directTps),
        "pgbouncer tps": fmt(r.pgbouncerTps),
        "bare Node relay tps": fmt(r.bareRelayTps),
        "gateway tps": fmt(r.gatewayTps),
        "pgbouncer / direct": fmt(r.pgbouncerRatio, 2),
        "bare relay / direct": fmt(r.bareRelayRatio, 2),
        "gateway / direct": fmt(r.gatewayRatio, 2),
        "gateway / bare relay": fmt(r.gatewayTps / r.bareRelayTps, 2),
        "gateway / pgbouncer": fmt(r.gatewayTps / r.pgbouncerTps, 2),
        "CPU µs/tx pgbouncer · relay · gateway": `${fmt(r.pgbouncerCpuUs, 1)} · ${fmt(r.bareRelayCpuUs, 1)} · ${fmt(r.gatewayCpuUs, 1)}`,
        "statements recorded": fmt(r.recorded),
      })),
    );
    console.log("A large result through psql into /dev/null, directly and through the gateway (two rounds each)");
    console.table(
      gateway.big.map((b) => ({
        what: b.what,
        rows: fmt(b.rows),
        "direct ms": fmt(b.directMs),
        "gateway ms": fmt(b.gatewayMs),
        "gateway / direct (time)": fmt(b.ratio, 2),
        "broker RSS growth MiB": fmt(b.brokerGrowthMiB, 1),
      })),
    );
    results.gateway = gateway;
  }

  if (want("flood")) {
    // The load average before: other work on the machine shares the cores with the flood.
    const before = loadavg();
    const pgFlood = async () => {
      await createDatabase(cluster.adminUrl, "bench_flood", { owner: APP_ROLE });
      return runFlood(
        "postgres",
        "{ driver: postgres, url_env: BG_BENCH_URL, pool_size: 8 }",
        { BG_BENCH_URL: withDatabase(cluster.url, "bench_flood") },
        { concurrency: sizes.flood },
      );
    };
    const flood = [
      await runFlood("sqlite", "{ driver: sqlite, path: ./breakglass.db }", {}, { concurrency: sizes.flood }),
      await pgFlood(),
    ];
    console.log(
      `Flood: one read-only token keeps ${sizes.flood} GET /grants?limit=1000 in flight (${flood[0]?.storedGrants} grants stored) while ${flood[0]?.flood.grants} emergency grants (exec target) end; beside the same with no flood (ms; load average before: ${before.map((l) => l.toFixed(2)).join(" ")})`,
    );
    console.table(
      flood.flatMap((r) =>
        (["quiet", "flood"] as const).map((p) => ({
          backend: r.backend,
          phase: p === "quiet" ? "no flood" : "flood",
          "expired p50": fmt(r[p].expiryLagMs.p50),
          "expired p99": fmt(r[p].expiryLagMs.p99),
          "expired max": fmt(r[p].expiryLagMs.max),
          "revoked p99": fmt(r[p].revokeLagMs.p99),
          "/health p50": fmt(r[p].healthMs.p50, 1),
          "/health p99": fmt(r[p].healthMs.p99, 1),
          "/health max": fmt(r[p].healthMs.max, 1),
          "flood answers": Object.entries(r[p].statuses)
            .map(([status, n]) => `${status}: ${n}`)
            .join(", "),
        })),
      ),
    );
    results.flood = { loadavgBefore: before, runs: flood };
  }

  const dir = join(process.cwd(), "bench", "results");
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${new Date().toISOString().replace(/[:.]/g, "-")}.json`);
  writeFileSync(
    file,
    `${JSON.stringify({ at: new Date().toISOString(), node: process.version, cores: cpus().length, loadavg: loadavg(), quick, sizes, ...results }, null, 2)}\n`,
  );
  console.log(`\nwrote ${file}`);
} finally {
  await cluster.stop();
}
