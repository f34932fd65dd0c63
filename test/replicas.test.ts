/**
 * Replicas see each other's decisions through the shared PostgreSQL store: a grant made on
 * replica A is usable through replica B's gateway (the same gateway login), and a revoke made on
 * A closes the session running through B — by B's gateway or by the target's own termination,
 * whichever is first — on real PostgreSQL (store and target). How soon is reported, not bounded.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Broker } from "../src/app.js";
import { ctx } from "./support/ctx.js";
import { freePort } from "./support/free-port.js";
import { type PostgresCluster, startPostgres } from "./support/postgres-cluster.js";
import { type PostgresTarget, startPostgresTarget, TARGET_ENV } from "./support/postgres-target.js";
import { SECRET_KEY, startTestBroker, type TestBroker } from "./support/test-broker.js";
import { until } from "./support/wait.js";

let store: PostgresCluster;
let target: PostgresTarget;
let dir: string;
const replicas: TestBroker[] = [];

beforeAll(async () => {
  [store, target] = await Promise.all([startPostgres(), startPostgresTarget()]);
  dir = mkdtempSync(join(tmpdir(), "bg-replicas-"));
  for (const name of ["a", "b"]) {
    const port = await freePort();
    const replica = await startTestBroker({
      base: "minimal",
      dir,
      file: `${name}.yaml`,
      storage: { driver: "postgres", url: store.url },
      env: { [TARGET_ENV]: target.adminUrl },
      config: {
        ...SECRET_KEY,
        workers: { expiry_poll: "100ms" },
        gateway: { host: "127.0.0.1", port, targets: ["pg-app"] },
        users: { alice: {}, bob: {} },
        groups: { oncall: ["alice"], leads: ["bob"] },
        domains: {
          production: {
            roles: {
              db: {
                target: "pg-app",
                grants: { roles: ["recovery_rw"] },
                max_duration: "2h",
                approval: "1 of leads",
                requesters: ["oncall"],
              },
            },
          },
        },
        targets: { "pg-app": { connector: "postgres", settings: { admin_url: { env: TARGET_ENV }, timeout: "5s" } } },
      },
    });
    replicas.push(replica);
  }
});

afterAll(async () => {
  for (const r of replicas) await r.stop();
  await Promise.all([store?.stop(), target?.stop()]);
  rmSync(dir, { recursive: true, force: true });
});

describe("two replicas on one PostgreSQL store", () => {
  it("a revoke on replica A closes the session running through replica B's gateway", async () => {
    const [a, b] = replicas.map((r) => r.broker) as [Broker, Broker];
    const g = await a.service.request(ctx("alice"), {
      roleId: "production/db",
      justification: "replica test: fixing the orders table",
      incident: "INC-77",
    });
    await a.service.approve(ctx("bob"), g.id, null);
    // The login was issued by A; B's gateway knows it from the shared store.
    const dsn = new URL((await a.service.credential(ctx("alice"), g.id)).credential.reveal());
    dsn.port = String(b.gatewayAddress()?.port);
    const client = new pg.Client({ connectionString: dsn.href });
    const errors: Error[] = [];
    let cutAt = 0;
    client.on("error", (e) => {
      cutAt ||= Date.now();
      errors.push(e);
    });
    await client.connect();
    expect((await client.query("SELECT count(*)::int AS n FROM public.accounts")).rows).toEqual([{ n: 2 }]);
    expect(errors).toEqual([]);

    const revokedAt = Date.now();
    await a.service.revoke(ctx("bob"), g.id, "done, from the other replica");
    await until("the session through B cut", () => errors.length > 0);
    // Whichever comes first: B's gateway (it re-reads its sessions' grants every 250 ms and
    // closes with a FATAL naming the grant), or the target itself (the revoke ends the grant
    // role's backends).
    expect(errors[0]?.message).toMatch(
      new RegExp(`break-glass grant ${g.id} revoked|terminating connection due to administrator command`),
    );
    console.log(`replicas: revoke on A → session through B cut after ${cutAt - revokedAt} ms`);
    await client.end().catch(() => {});
  });
});
