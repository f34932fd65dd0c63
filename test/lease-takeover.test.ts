/**
 * A broker process killed (-9) in the middle of a revocation: the revocation it held is taken
 * over at once — by another replica on PostgreSQL (the dead process's liveness lock went with its
 * connection), by the restarted broker on SQLite — not when its lease runs out. The lease is the
 * target's limit + 10 s, and the limit is set long here (2 min), so a takeover that waited for the
 * lease cannot pass for a prompt one on a busy machine; how soon it came is reported, not bounded.
 * The target's revoke script says which broker process ran it, so the test knows whom to kill,
 * and does not finish until the test lets it (a file appears), so the kill always lands in the
 * middle of it however busy the machine is.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { afterAll, describe, expect, it } from "vitest";
import { type BrokerProcess, requireBuild, startBrokerProcess } from "./support/broker-process.js";
import { ctx } from "./support/ctx.js";
import { freePort } from "./support/free-port.js";
import { type PostgresCluster, startPostgres } from "./support/postgres-cluster.js";
import { scriptedBoxRole, startTestBroker, type TestConfigOptions, writeTestConfig } from "./support/test-broker.js";
import { until } from "./support/wait.js";

const MODES = [
  { name: "two replicas on PostgreSQL", replicas: 2, postgres: true },
  { name: "one broker on SQLite", replicas: 1, postgres: false },
] as const;

const cleanups: (() => Promise<void> | void)[] = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

/** The target's limit on one call; the revocation lease is this + 10 s. */
const TARGET_TIMEOUT_S = 120;
const LEASE_MS = (TARGET_TIMEOUT_S + 10) * 1000;

for (const mode of MODES) {
  describe(`lease takeover: ${mode.name}`, () => {
    it(
      "a revocation held by a killed broker process is taken over at once, not when its lease runs out",
      async () => {
        requireBuild();
        const cluster: PostgresCluster | null = mode.postgres ? await startPostgres() : null;
        const dir = mkdtempSync(join(tmpdir(), "bg-lease-"));
        cleanups.push(async () => {
          await cluster?.stop();
          rmSync(dir, { recursive: true, force: true });
        });
        const log = join(dir, "target.log");
        /** The revoke script finishes once this exists (the killed holder's, orphaned, too). */
        const release = join(dir, "release");
        const letRevokesFinish = () => writeFileSync(release, "");
        cleanups.push(letRevokesFinish);
        writeFileSync(join(dir, "grant.sh"), "#!/bin/sh\n", { mode: 0o755 });
        // $PPID: the broker process that runs the script.
        writeFileSync(
          join(dir, "revoke.sh"),
          `#!/bin/sh
echo "start $PPID $(date +%s%3N)" >> ${log}
i=0; while [ ! -e ${release} ] && [ $i -lt 3000 ]; do sleep 0.1; i=$((i + 1)); done
echo "done $PPID $(date +%s%3N)" >> ${log}
`,
          { mode: 0o755 },
        );
        const ports: number[] = [];
        for (let i = 0; i < mode.replicas; i++) ports.push(await freePort());
        /** Each broker's configuration: the same but for its port. */
        const configFor = (port: number): TestConfigOptions => ({
          base: "minimal",
          dir,
          file: `broker-${port}.yaml`,
          storage: cluster ? { driver: "postgres", url: cluster.url } : { driver: "sqlite" },
          config: {
            server: { port },
            workers: { expiry_poll: "100ms" },
            users: { alice: {}, bob: {} },
            groups: { oncall: ["alice"], leads: ["bob"] },
            ...scriptedBoxRole(TARGET_TIMEOUT_S),
          },
        });
        // The grant is made (and activated) by a broker that is not started: no worker of it runs.
        const setup = await startTestBroker({ ...configFor(ports[0] as number), start: false });
        const g = await setup.broker.service.request(ctx("alice"), {
          roleId: "production/db",
          justification: "lease test",
          incident: "INC-20",
        });
        await setup.broker.service.approve(ctx("bob"), g.id, null);
        await setup.stop();

        const brokers = new Map<number, BrokerProcess>();
        const start = async (port: number) => {
          const written = writeTestConfig(configFor(port));
          const b = await startBrokerProcess(written.file, { env: { ...written.env, BREAKGLASS_LOG_LEVEL: "silent" } });
          brokers.set(b.child.pid as number, b);
        };
        cleanups.push(() => {
          for (const b of brokers.values()) b.child.kill("SIGKILL");
        });
        for (const port of ports) await start(port);
        /** What a failed takeover leaves to look at: the brokers, the grant's lease, the liveness locks. */
        const diagnose = async (): Promise<string> => {
          const out = [...brokers.entries()].map(
            ([pid, b]) =>
              `broker ${pid}: exit ${b.child.exitCode ?? "-"} signal ${b.child.signalCode ?? "-"}\n${b.output().stderr.slice(-2000)}`,
          );
          out.push(`target log: ${JSON.stringify(lines())}`);
          if (cluster) {
            const query = async (url: string, text: string) => {
              const c = new pg.Client({ connectionString: url });
              await c.connect();
              try {
                return JSON.stringify((await c.query(text)).rows);
              } finally {
                await c.end();
              }
            };
            out.push(
              `grants: ${await query(cluster.url, "SELECT id, state, access, lease_owner, access_next_at, due_at, hashtext(lease_owner)::oid AS h FROM grants")}`,
              `advisory locks: ${await query(cluster.adminUrl, "SELECT classid, objid, objsubid, granted, pid FROM pg_locks WHERE locktype = 'advisory'")}`,
              `sessions: ${await query(cluster.adminUrl, "SELECT pid, application_name, state, wait_event_type, wait_event, left(query, 100) AS query FROM pg_stat_activity WHERE datname IS NOT NULL")}`,
            );
          }
          return out.join("\n");
        };

        const lines = () =>
          existsSync(log)
            ? readFileSync(log, "utf8")
                .trim()
                .split("\n")
                .map((l) => l.split(" "))
            : [];
        // The grant ends (2 s); one broker starts revoking it; that broker is killed mid-revoke.
        const first = await until("the first revoke to start", () => lines().find((l) => l[0] === "start"));
        // The holder claimed the revocation (its lease) before it ran the script.
        const leaseRunsOutBy = Number(first[2]) + LEASE_MS;
        const holder = brokers.get(Number(first[1]));
        expect(holder, "the revoke script runs under a broker process").toBeDefined();
        holder?.child.kill("SIGKILL"); // its revoke cannot have finished: the script waits for the test
        const killedAt = Date.now();
        let upAt = killedAt;
        if (mode.replicas === 1) {
          await start(ports[0] as number);
          upAt = Date.now();
        }
        // Taken over: the revoke starts again, under another (or the restarted) broker process,
        // before the dead holder's lease would have let anyone run it.
        const again = await until(
          "the revoke taken over",
          () => lines().find((l) => l[0] === "start" && l[1] !== first[1]),
          leaseRunsOutBy - Date.now(),
        ).catch(async (e: unknown) => {
          throw new Error(`${String(e)}\n${await diagnose()}`);
        });
        expect(Number(again[2])).toBeLessThan(leaseRunsOutBy);
        const takenOverMs = Number(again[2]) - upAt;
        console.log(
          `lease takeover (${mode.name}): revoke started again ${takenOverMs} ms after ${mode.replicas === 1 ? "the broker was up again" : "the kill"} (the lease would have held it ${LEASE_MS / 1000} s)`,
        );
        letRevokesFinish();
        await until("the takeover's revoke to finish", () => lines().find((l) => l[0] === "done" && l[1] === again[1]));
      },
      2 * LEASE_MS,
    );
  });
}
