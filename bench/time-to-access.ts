/**
 * Time to access: the whole break-glass path over HTTP, as a client sees it — POST /grants (the
 * requester), POST /grants/{id}/approve (an approver; the role activates on approval: the grant's
 * PostgreSQL login role is created at the target), GET /grants/{id}/credential, then a new
 * connection through the broker's gateway and the first query. Measured per run from the request
 * to the query's answer; the API runs on the broker's real HTTP listener (loopback), the target
 * is a real PostgreSQL.
 *
 * Baseline, same run: a new direct connection to the target with a standing account and the same
 * first query — what access costs when someone already holds it (the thing break-glass avoids).
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { silentLogger } from "../src/adapters/logger.js";
import { createBroker } from "../src/app.js";
import { loadConfigFile } from "../src/config/load-config.js";
import { connectorConfigChecks } from "../src/connectors/registry.js";
import { freePort } from "../test/support/free-port.js";
import { startPostgresTarget, TARGET_ENV } from "../test/support/postgres-target.js";
import { type Summary, summarize } from "./stats.js";

export interface TimeToAccessResult {
  readonly runs: number;
  /** Request → approval (activation included) → credential → first query through the gateway (ms). */
  readonly timeToAccessMs: Summary;
  /** The parts of it, medians (ms). */
  readonly stepsP50Ms: {
    readonly request: number;
    readonly approve: number;
    readonly credential: number;
    readonly firstQuery: number;
  };
  /** A new direct connection with a standing account and the same query (ms). */
  readonly directMs: Summary;
}

export async function runTimeToAccess(runs = 50): Promise<TimeToAccessResult> {
  const target = await startPostgresTarget();
  const dir = mkdtempSync(join(tmpdir(), "bg-bench-tta-"));
  try {
    const gatewayPort = await freePort();
    const users = Array.from({ length: runs }, (_, i) => `u${i}`);
    writeFileSync(
      join(dir, "breakglass.yaml"),
      `version: 1
server: { host: 127.0.0.1, port: 0 }
storage: { driver: sqlite, path: ./breakglass.db }
audit: { signing_key_file: ./audit-signing.pem, generate_key_if_missing: true }
secrets: { key_file: ./secrets.key, generate_key_if_missing: true }
alarms: { channels: { record: { type: file, path: ./alarms.jsonl } }, security_channels: [record], routes: [] }
gateway: { host: 127.0.0.1, port: ${gatewayPort}, targets: [pg] }
users: { bob: {}, ${users.map((u) => `${u}: {}`).join(", ")} }
groups: { oncall: [${users.join(", ")}], leads: [bob] }
domains:
  production:
    roles:
      db: { target: pg, grants: { roles: [recovery_rw] }, max_duration: 1h, approval: "1 of leads", requesters: [oncall] }
targets:
  pg: { connector: postgres, settings: { admin_url: { env: ${TARGET_ENV} } } }
`,
    );
    const env = { [TARGET_ENV]: target.adminUrl };
    const broker = await createBroker(loadConfigFile(join(dir, "breakglass.yaml"), { ...connectorConfigChecks, env }), {
      log: silentLogger,
      env,
    });
    const base = `${await broker.start()}/api/v1`;
    const system = { actor: "system", requestId: null, sourceAddress: null };
    const tokenOf = async (user: string) =>
      (await broker.tokens.create(system, { user, description: "bench" })).token.reveal();
    const bob = await tokenOf("bob");
    const post = async (token: string, path: string, body: unknown) => {
      const res = await fetch(`${base}${path}`, {
        method: "POST",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        body: JSON.stringify(body),
      });
      if (!res.ok) throw new Error(`POST ${path}: ${res.status} ${await res.text()}`);
      return (await res.json()) as Record<string, unknown>;
    };
    const total: number[] = [];
    const steps = {
      request: [] as number[],
      approve: [] as number[],
      credential: [] as number[],
      firstQuery: [] as number[],
    };
    for (const user of users) {
      const token = await tokenOf(user);
      const t0 = performance.now();
      const g = await post(token, "/grants", {
        role: "production/db",
        justification: "time to access benchmark",
        incident: "INC-1",
      });
      const t1 = performance.now();
      const approved = await post(bob, `/grants/${String(g.id)}/approve`, {});
      if (approved.state !== "active") throw new Error(`not active after approval: ${JSON.stringify(approved)}`);
      const t2 = performance.now();
      const cred = (await (
        await fetch(`${base}/grants/${String(g.id)}/credential`, { headers: { authorization: `Bearer ${token}` } })
      ).json()) as { credential: string };
      const t3 = performance.now();
      const client = new pg.Client({ connectionString: cred.credential });
      await client.connect();
      await client.query("SELECT count(*) FROM public.accounts");
      const t4 = performance.now();
      await client.end();
      total.push(t4 - t0);
      steps.request.push(t1 - t0);
      steps.approve.push(t2 - t1);
      steps.credential.push(t3 - t2);
      steps.firstQuery.push(t4 - t3);
    }
    await broker.stop();

    // Baseline: someone who already holds access connects and runs the same first query.
    await target.sql("CREATE ROLE standing LOGIN PASSWORD 'standing-password' IN ROLE recovery_rw");
    const direct = new URL(target.adminUrl);
    direct.username = "standing";
    direct.password = "standing-password";
    const directMs: number[] = [];
    for (let i = 0; i < runs; i++) {
      const t0 = performance.now();
      const client = new pg.Client({ connectionString: direct.href });
      await client.connect();
      await client.query("SELECT count(*) FROM public.accounts");
      directMs.push(performance.now() - t0);
      await client.end();
    }
    const p50 = (v: number[]) => summarize(v).p50;
    return {
      runs,
      timeToAccessMs: summarize(total),
      stepsP50Ms: {
        request: p50(steps.request),
        approve: p50(steps.approve),
        credential: p50(steps.credential),
        firstQuery: p50(steps.firstQuery),
      },
      directMs: summarize(directMs),
    };
  } finally {
    await target.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
