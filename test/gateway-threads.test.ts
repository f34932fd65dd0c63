/**
 * The gateway of `breakglass server` relays on a thread of its own and writes its recordings from
 * another, with its own store connection (ADR 0011, 0010) — for each store the broker runs on,
 * SQLite and PostgreSQL: pgbench through the gateway of a real broker process, several sessions
 * at once, in the simple, extended and prepared protocol; then every statement pgbench ran is in
 * the recording once, each session's seq runs 1, 2, 3… without a gap, and `breakglass audit
 * verify` finds every session's sealed digest matching what was stored. And a session through the
 * gateway thread is closed at its grant's end with the gateway's own FATAL.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli, startBrokerProcess } from "./support/broker-process.js";
import { ctx } from "./support/ctx.js";
import { freePort } from "./support/free-port.js";
import { type PostgresCluster, startPostgres } from "./support/postgres-cluster.js";
import { type PostgresTarget, startPostgresTarget, TARGET_ENV } from "./support/postgres-target.js";
import { type ConfigOverride, startTestBroker, type TestStorage, writeTestConfig } from "./support/test-broker.js";
import { until } from "./support/wait.js";

const run = promisify(execFile);
let target: PostgresTarget;
let storeCluster: PostgresCluster;

beforeAll(async () => {
  [target, storeCluster] = await Promise.all([startPostgresTarget(), startPostgres()]);
  await run("pgbench", ["-i", "-q", "-s", "1", target.adminUrl]);
  await target.sql("GRANT SELECT ON ALL TABLES IN SCHEMA public TO recovery_rw");
});
afterAll(async () => {
  await Promise.all([target?.stop(), storeCluster?.stop()]);
});

/** A postgres target behind the gateway, one role on it approved by one lead. */
/** The end test's world: the expiry worker looks often. */
const mergeWorld = (world: ConfigOverride): ConfigOverride => ({ ...world, workers: { expiry_poll: "100ms" } });

const gatewayWorld = (gatewayPort: number, grants: Record<string, unknown>): ConfigOverride => ({
  secrets: { key_file: "./secrets.key", generate_key_if_missing: true },
  gateway: { host: "127.0.0.1", port: gatewayPort, targets: ["pg-app"] },
  users: { alice: {}, bob: {} },
  groups: { oncall: ["alice"], leads: ["bob"] },
  domains: {
    production: {
      roles: {
        db: { target: "pg-app", grants, max_duration: "2h", approval: "1 of leads", requesters: ["oncall"] },
      },
    },
  },
  targets: { "pg-app": { connector: "postgres", settings: { admin_url: { env: TARGET_ENV }, timeout: "5s" } } },
});

for (const name of ["sqlite", "postgres"] as const) {
  describe(`the gateway's threads (${name} store)`, () => {
    let dir: string;
    beforeAll(() => {
      dir = mkdtempSync(join(tmpdir(), `bg-recording-thread-${name}-`));
    });
    afterAll(() => rmSync(dir, { recursive: true, force: true }));

    it("records every statement pgbench ran once and in order, and every session's seal verifies", async () => {
      const gatewayPort = await freePort();
      const storage: TestStorage = name === "sqlite" ? { driver: name } : { driver: name, url: storeCluster.url };
      const written = writeTestConfig({
        base: "minimal",
        dir,
        storage,
        env: { [TARGET_ENV]: target.adminUrl },
        config: gatewayWorld(gatewayPort, { roles: ["recovery_rw"], connection_limit: 20 }),
      });
      const { file: config, env } = written;
      // The grant is made in this process; the server process relays its sessions.
      const setup = await startTestBroker({
        base: "minimal",
        dir,
        storage,
        env,
        start: false,
        config: gatewayWorld(gatewayPort, { roles: ["recovery_rw"], connection_limit: 20 }),
      });
      let grantId: string;
      let dsn: string;
      try {
        const g = await setup.broker.service.request(ctx("alice"), {
          roleId: "production/db",
          justification: "checking the recording thread",
          incident: "INC-22",
          durationS: 3600,
        });
        await setup.broker.service.approve(ctx("bob"), g.id, null);
        grantId = g.id;
        dsn = (await setup.broker.service.credential(ctx("alice"), g.id)).credential.reveal();
      } finally {
        await setup.stop();
      }

      const server = await startBrokerProcess(config, { env });
      try {
        for (const mode of ["simple", "extended", "prepared"]) {
          const { stdout } = await run("pgbench", ["-n", "-S", "-M", mode, "-c", "4", "-j", "2", "-t", "300", dsn]);
          expect(stdout).toMatch(/number of transactions actually processed: 1200\/1200/);
        }
        // Sessions end; each end is written once its statements are stored (pgbench's 4 clients a
        // run, and the connection it reads the scale with).
        await until("every session's end in the audit log", async () => {
          const out = await runCli(["audit", "verify", "--config", config, "--json"], env);
          const v = JSON.parse(out.stdout || "{}") as { ok?: boolean; summary?: string };
          return v.ok === true && /recordings? match/.test(v.summary ?? "") && !/not sealed/.test(v.summary ?? "")
            ? v
            : null;
        });
      } finally {
        expect(await server.stop()).toBe(0);
      }

      // Read back in this process: what pgbench ran, once each, every session's seq without a gap.
      const reader = (
        await startTestBroker({
          base: "minimal",
          dir,
          storage,
          env,
          start: false,
          config: gatewayWorld(gatewayPort, { roles: ["recovery_rw"], connection_limit: 20 }),
        })
      ).broker;
      try {
        const statements = await reader.store.listStatements(grantId);
        const runs = statements.filter(
          (s) => /FROM pgbench_accounts WHERE aid = /.test(s.text) && s.kind !== "prepare",
        );
        expect(runs).toHaveLength(3 * 1200);
        expect(runs.filter((s) => s.error !== null)).toEqual([]);
        expect(runs.filter((s) => s.kind === "simple")).toHaveLength(1200);
        expect(runs.filter((s) => s.kind === "extended")).toHaveLength(2400);
        const bySession = new Map<string, number[]>();
        for (const s of statements) bySession.set(s.sessionId, [...(bySession.get(s.sessionId) ?? []), s.seq]);
        expect(bySession.size).toBeGreaterThanOrEqual(12);
        for (const seqs of bySession.values()) {
          expect([...seqs].sort((a, b) => a - b)).toEqual(Array.from({ length: seqs.length }, (_, i) => i + 1));
        }
        const verified = await runCli(["audit", "verify", "--config", config], env);
        expect(verified.code, verified.stderr).toBe(0);
        expect(verified.stdout).toContain(`${bySession.size} recordings match their sealed digests`);
      } finally {
        await reader.stop();
      }
    });
  });
}

describe("the gateway thread at a grant's end", () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "bg-gateway-thread-end-"));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("closes the session at the grant's end with a FATAL the client can read, and seals its recording", async () => {
    const gatewayPort = await freePort();
    const world = mergeWorld(gatewayWorld(gatewayPort, { roles: ["recovery_rw"] }));
    const { file: config, env } = writeTestConfig({
      base: "minimal",
      dir,
      env: { [TARGET_ENV]: target.adminUrl },
      config: world,
    });
    // Tokens made in this process; the grant is made through the server's API, long enough to
    // open a session on a busy machine.
    const setup = await startTestBroker({ base: "minimal", dir, env, start: false, config: world });
    let tokens: { alice: string; bob: string };
    try {
      tokens = { alice: await setup.token("alice"), bob: await setup.token("bob") };
    } finally {
      await setup.stop();
    }
    const server = await startBrokerProcess(config, { env });
    try {
      const cli = (user: "alice" | "bob", ...args: string[]) =>
        runCli(args, { BREAKGLASS_URL: server.url, BREAKGLASS_TOKEN: tokens[user] });
      const requested = await cli(
        "alice",
        "request",
        "production/db",
        "--reason",
        "checking the end through the gateway thread",
        "--incident",
        "INC-22",
        "--duration",
        "10s",
        "--json",
      );
      expect(requested.code, requested.stderr).toBe(0);
      const id = (JSON.parse(requested.stdout) as { id: string }).id;
      expect((await cli("bob", "approve", id)).code).toBe(0);
      const credential = await cli("alice", "credential", id);
      expect(credential.code, credential.stderr).toBe(0);
      const c = new pg.Client({ connectionString: credential.stdout.trim() });
      const errors: Error[] = [];
      c.on("error", (e) => errors.push(e));
      await c.connect();
      expect((await c.query("SELECT 1 AS one")).rows).toEqual([{ one: 1 }]);
      await until("the session cut", async () => errors.length > 0 || null);
      expect(errors[0]?.message).toMatch(new RegExp(`break-glass grant ${id} expired`));
      await c.end().catch(() => {});
      await until("the session's end sealed", async () => {
        const out = await runCli(["audit", "verify", "--config", config, "--json"], env);
        const v = JSON.parse(out.stdout || "{}") as { ok?: boolean; summary?: string };
        return v.ok === true && /1 recording matches its sealed digest/.test(v.summary ?? "") ? v : null;
      });
    } finally {
      expect(await server.stop()).toBe(0);
    }
  });
});
