/**
 * Gateway-only access (a role's `gateway_only: true`) against a real PostgreSQL target, with the
 * broker as a real process that is killed (-9), as an outage would:
 * - the holder gets a gateway login only: it does not work at the target, and nothing the broker
 *   hands out or records holds the target's password;
 * - when the broker dies, the holder's gateway sessions end at the target on the target's own —
 *   an idle transaction is rolled back, a statement still running is cancelled — and no new
 *   session can be opened, while the grant role still exists at the target (nobody revoked it);
 *   the holder could not switch off the settings that make the target notice;
 * - for contrast, a direct role's session opened with its credential keeps working after the
 *   broker died: that is what gateway-only access closes.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Broker } from "../src/app.js";
import { CredentialViewSchema } from "../src/contract/api.js";
import { type BrokerProcess, runCli, startBrokerProcess } from "./support/broker-process.js";
import { ctx } from "./support/ctx.js";
import { freePort } from "./support/free-port.js";
import { type PostgresTarget, startPostgresTarget, TARGET_ENV, tryLogin } from "./support/postgres-target.js";
import {
  type RoleOverride,
  SECRET_KEY,
  startTestBroker,
  type TestConfigOptions,
  writeTestConfig,
} from "./support/test-broker.js";
import { until } from "./support/wait.js";

let target: PostgresTarget;
let dir: string;
let gatewayPort: number;

/** The broker in this process and the broker process read the same configuration. */
const options = (): TestConfigOptions => {
  const role: RoleOverride = {
    target: "pg-app",
    grants: { roles: ["recovery_rw"] },
    max_duration: "2h",
    approval: "1 of leads",
    requesters: ["oncall"],
  };
  return {
    base: "minimal",
    dir,
    env: { [TARGET_ENV]: target.adminUrl },
    config: {
      ...SECRET_KEY,
      workers: { expiry_poll: "100ms" },
      gateway: { host: "127.0.0.1", port: gatewayPort },
      users: { alice: { name: "Alice" }, bob: { name: "Bob" } },
      groups: { oncall: ["alice"], leads: ["bob"] },
      domains: { production: { roles: { "db-strict": { ...role, gateway_only: true }, "db-direct": role } } },
      targets: { "pg-app": { connector: "postgres", settings: { admin_url: { env: TARGET_ENV }, timeout: "5s" } } },
    },
  };
};

beforeAll(async () => {
  target = await startPostgresTarget();
  dir = mkdtempSync(join(tmpdir(), "bg-gateway-only-"));
  gatewayPort = await freePort();
});
afterAll(async () => {
  await target?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** alice requests, bob approves; the credential as the holder reads it from the API. */
async function grant(broker: Broker, role: string, token: string): Promise<{ id: string; dsn: string }> {
  const g = await broker.service.request(ctx("alice"), {
    roleId: `production/${role}`,
    justification: "orders table is corrupt, repairing",
    incident: "INC-501",
    durationS: 3600,
  });
  await broker.service.approve(ctx("bob"), g.id, null);
  const res = await broker.http.inject({
    method: "GET",
    url: `/api/v1/grants/${g.id}/credential`,
    headers: { authorization: `Bearer ${token}` },
  });
  expect(res.statusCode, res.body).toBe(200);
  return { id: g.id, dsn: CredentialViewSchema.parse(res.json()).credential };
}

const backends = (user: string) =>
  target.sql<{ pid: number; state: string; query: string }>(
    "SELECT pid, state, query FROM pg_stat_activity WHERE usename = $1",
    [user],
  );

describe("gateway-only access", () => {
  let strict: { id: string; dsn: string };
  let direct: { id: string; dsn: string };
  let server: BrokerProcess | null = null;
  let alice: string;

  it("hands the holder a gateway login only; the target's password is nowhere the holder can read", async () => {
    // Grants made by the broker in this process, which then stops; the server process takes over.
    const t = await startTestBroker({ ...options(), start: false });
    const broker = t.broker;
    try {
      alice = await t.token("alice");
      strict = await grant(broker, "db-strict", alice);
      direct = await grant(broker, "db-direct", alice);
      const u = new URL(strict.dsn);
      expect(u.port).toBe(String(gatewayPort));
      // The gateway password does not open the role at the target.
      const atTarget = new URL(target.adminUrl);
      atTarget.username = u.username;
      atTarget.password = decodeURIComponent(u.password);
      expect(await tryLogin(atTarget.toString())).toMatch(/password authentication failed/);
      // The direct role's holder gets the target's own credential, which works there.
      expect(new URL(direct.dsn).port).toBe(new URL(target.adminUrl).port);
      expect(await tryLogin(direct.dsn)).toBeNull();
      // What the broker shows and records of the strict grant names the role, never a target password.
      const shown = JSON.stringify({
        grant: await broker.service.get(strict.id),
        audit: await broker.store.readGrantAudit([strict.id]),
      });
      expect(shown).toContain(u.username);
      expect(shown).not.toMatch(/postgres(ql)?:\/\/[^"]*:[^"@]+@127\.0\.0\.1:\d+/);
    } finally {
      await t.stop();
    }
  });

  it("ends the holder's sessions at the target when the broker dies, and lets no new one in", async () => {
    const written = writeTestConfig(options());
    server = await startBrokerProcess(written.file, { env: written.env });
    const user = decodeURIComponent(new URL(strict.dsn).username);
    // The CLI, against the broker process, gives the holder the same gateway login.
    const cli = await runCli(["credential", strict.id], { BREAKGLASS_URL: server.url, BREAKGLASS_TOKEN: alice });
    expect(cli.stderr).toBe("");
    expect(cli.stdout.trim()).toBe(strict.dsn);

    // An open transaction with a change not yet committed, and a statement still running.
    const idle = new pg.Client({ connectionString: strict.dsn });
    await idle.connect();
    idle.on("error", () => {});
    await idle.query("BEGIN");
    await idle.query("UPDATE public.accounts SET balance = 0 WHERE id = 1");
    const busy = new pg.Client({ connectionString: strict.dsn });
    await busy.connect();
    busy.on("error", () => {});
    // The holder cannot switch off what ends the session at the target when the gateway is gone.
    for (const sql of [
      "SET client_connection_check_interval = 0",
      "SELECT set_config('tcp_keepalives_idle', '0', false)",
      "CREATE VIEW settings AS SELECT * FROM pg_settings",
    ]) {
      await expect(busy.query(sql), sql).rejects.toMatchObject({ code: "42501" });
    }
    expect((await busy.query("SHOW client_connection_check_interval")).rows).toEqual([
      { client_connection_check_interval: "1s" },
    ]);
    const running = busy.query("SELECT pg_sleep(600)").then(
      () => "finished",
      (e: Error) => e.message,
    );
    await until("both sessions at the target", async () => (await backends(user)).length === 2);
    await until("the statement running", async () =>
      (await backends(user)).some((b) => b.state === "active" && b.query.includes("pg_sleep")),
    );
    // The direct holder's own session, opened before the outage.
    const open = new pg.Client({ connectionString: direct.dsn });
    await open.connect();
    let openError: Error | null = null;
    open.on("error", (e) => {
      openError = e;
    });

    server.child.kill("SIGKILL");
    await new Promise((r) => server?.child.once("exit", r));

    // The client sees its connection end; the target ends both backends on its own.
    expect(await running).not.toBe("finished");
    await until("the target to end the strict holder's backends", async () => (await backends(user)).length === 0);
    expect(await target.sql("SELECT balance FROM public.accounts WHERE id = 1")).toEqual([{ balance: 100 }]);
    // The grant role is still there and still valid (nobody revoked it) — and still unusable:
    // the gateway is gone, and its password was never handed out.
    expect(await target.sql("SELECT rolcanlogin AS login FROM pg_roles WHERE rolname = $1", [user])).toEqual([
      { login: true },
    ]);
    expect(await tryLogin(strict.dsn)).toMatch(/ECONNREFUSED|connect/);
    // Contrast: the direct holder's session outlives the broker.
    expect((await open.query("SELECT count(*)::int AS n FROM public.accounts")).rows).toEqual([{ n: 2 }]);
    expect(openError).toBeNull();
    await open.end();
    await idle.end().catch(() => {});
    await busy.end().catch(() => {});
  });

  afterAll(async () => {
    await server?.stop(1_000);
  });
});
