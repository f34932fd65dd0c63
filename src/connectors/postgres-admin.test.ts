/**
 * The postgres connector's admin connections, against a real PostgreSQL server: carrying on after
 * the admin password is rotated, a call made again when its connection was ended under it, a
 * failed statement rolled back before the connection is reused, template databases never held.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type PostgresCluster, startPostgres } from "../../test/support/postgres-cluster.js";
import { createSecretResolver } from "../secrets/secret-ref.js";
import { connectionLost, createPostgresAdmin, type PostgresAdmin } from "./postgres-admin.js";
import { postgresSettingsSchema } from "./postgres-settings.js";

let cluster: PostgresCluster;
let dir: string;
const opened: PostgresAdmin[] = [];

const superuser = async <R extends pg.QueryResultRow>(text: string, values?: unknown[]): Promise<R[]> => {
  const c = new pg.Client({ connectionString: cluster.adminUrl });
  await c.connect();
  try {
    return (await c.query<R>(text, values)).rows;
  } finally {
    await c.end();
  }
};

beforeAll(async () => {
  cluster = await startPostgres();
  dir = mkdtempSync(join(tmpdir(), "bg-pg-admin-"));
});
afterAll(async () => {
  for (const a of opened) await a.close();
  await cluster?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** An admin login role with `password`, its URL in a file, and the connections made from that file. */
async function adminFromFile(user: string, password: string, poolSize = 2) {
  await superuser(`CREATE ROLE ${user} LOGIN CREATEROLE PASSWORD '${password}'`);
  const file = join(dir, `${user}.url`);
  const url = (pw: string) => `postgres://${user}:${pw}@127.0.0.1:${cluster.port}/postgres`;
  writeFileSync(file, `${url(password)}\n`);
  const logged: string[] = [];
  const admin = createPostgresAdmin(
    postgresSettingsSchema.parse({ admin_url: { file }, pool_size: poolSize }),
    {
      resolveSecret: createSecretResolver({ baseDir: dir, env: {}, box: null }),
      log: (msg) => logged.push(msg),
      targetName: "pg-test",
    },
    10_000,
  );
  opened.push(admin);
  const whoami = () =>
    admin.withClient("probe", async (c) => (await c.query<{ u: string }>("SELECT current_user AS u")).rows[0]?.u);
  return { admin, logged, whoami, rewrite: (pw: string) => writeFileSync(file, `${url(pw)}\n`) };
}

describe("a lost connection", () => {
  it("is told apart from a failed statement by its SQLSTATE (class 08, 57P01-03) or the driver's words", () => {
    for (const lost of [
      { code: "57P01" },
      { code: "57P02" },
      { code: "57P03" },
      { code: "08006" },
      { code: "ECONNRESET" },
      { message: "Connection terminated unexpectedly" },
      { message: "Client has encountered a connection error and is not queryable" },
    ]) {
      expect(connectionLost(lost), JSON.stringify(lost)).toBe(true);
    }
    for (const failed of [{ code: "42P01" }, { code: "28P01" }, { code: "40001" }, { message: "syntax error" }, {}]) {
      expect(connectionLost(failed), JSON.stringify(failed)).toBe(false);
    }
  });
});

describe("admin connections", () => {
  it("carry on after the admin password is rotated: a refused login reads the reference again", async () => {
    const { logged, whoami, rewrite } = await adminFromFile("rot_admin", "first-password");
    expect(await whoami()).toBe("rot_admin");
    // Rotated at the server and in the file (what `breakglass rotation` does), then the pooled
    // connection that logged in with the old password is gone.
    await superuser("ALTER ROLE rot_admin PASSWORD 'second-password'");
    rewrite("second-password");
    await superuser("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'rot_admin'");
    expect(await whoami()).toBe("rot_admin");
    expect(logged).toContain("postgres target admin URL changed; reconnecting with the new one");
  });

  it("report a refused login as the connector's failure when the reference has not changed", async () => {
    const { whoami } = await adminFromFile("stale_admin", "first-password");
    await superuser("ALTER ROLE stale_admin PASSWORD 'changed-elsewhere'");
    await expect(whoami()).rejects.toMatchObject({
      code: "ERR_CONNECTOR_FAILED",
      message: expect.stringContaining("probe (connecting as stale_admin) failed"),
      detail: { step: "probe (connecting as stale_admin)", sqlstate: "28P01" },
    });
  });

  it("make a call again on another connection when the server ended the one it had", async () => {
    const { admin } = await adminFromFile("retry_admin", "pw-retry-admin", 2);
    let calls = 0;
    const result = await admin.withClient("probe", async (c) => {
      calls += 1;
      // The first connection is ended under the call (as a server restart would).
      if (calls === 1) await c.query("SELECT pg_terminate_backend(pg_backend_pid())");
      return (await c.query<{ n: number }>("SELECT 1 AS n")).rows[0]?.n;
    });
    expect({ result, calls }).toEqual({ result: 1, calls: 2 });
  });

  it("give up once every pooled connection was lost, reporting what the call ran into", async () => {
    const { admin } = await adminFromFile("lost_admin", "pw-lost-admin", 1);
    let calls = 0;
    await expect(
      admin.withClient("probe", async (c) => {
        calls += 1;
        await c.query("SELECT pg_terminate_backend(pg_backend_pid())");
      }),
    ).rejects.toMatchObject({ code: "ERR_CONNECTOR_FAILED", detail: { step: "probe", sqlstate: "57P01" } });
    expect(calls).toBe(2);
  });

  it("roll back a failed call's transaction before its connection is used again", async () => {
    const { admin } = await adminFromFile("tx_admin", "pw-tx-admin", 1);
    await expect(
      admin.withClient("reading", async (c) => {
        await c.query("BEGIN");
        await c.query("SELECT * FROM no_such_table");
      }),
    ).rejects.toMatchObject({
      code: "ERR_CONNECTOR_FAILED",
      message: 'postgres target pg-test: reading failed: relation "no_such_table" does not exist (SQLSTATE 42P01)',
      detail: { step: "reading", sqlstate: "42P01" },
    });
    // The one pooled connection, no longer in the aborted transaction.
    expect(await admin.withClient("probe", async (c) => (await c.query("SELECT 1")).rowCount)).toBe(1);
  });

  it("never keep a connection to a template database idle (CREATE DATABASE from it would fail)", async () => {
    const { admin } = await adminFromFile("tpl_admin", "pw-tpl-admin");
    await superuser("CREATE DATABASE other");
    const held = async (db: string) =>
      (
        await superuser<{ n: number }>(
          "SELECT count(*)::int AS n FROM pg_stat_activity WHERE usename = 'tpl_admin' AND datname = $1",
          [db],
        )
      )[0]?.n;
    await admin.withClient("probe", async (main) => {
      await admin.onDb(main, "template1", (c) => c.query("SELECT 1"));
      await admin.onDb(main, "other", (c) => c.query("SELECT 1"));
    });
    expect(await held("template1")).toBe(0);
    expect(await held("other")).toBe(1);
    await superuser("CREATE DATABASE from_template TEMPLATE template1");
  });
});
