/**
 * The PostgreSQL gateway with real clients against a real PostgreSQL target: the `pg` driver
 * (simple and extended protocol, a server error, a cancel request) and psql (COPY out and in)
 * through a grant's gateway login; every statement recorded in order; a wrong password and an
 * ended grant refused; the session cut with a FATAL at the grant's end.
 */
import { execFile } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import net from "node:net";
import { join } from "node:path";
import { promisify } from "node:util";
import BetterSqlite3 from "better-sqlite3";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Broker } from "../src/app.js";
import { verifyStoreChain } from "../src/audit/audit-verify.js";
import { loadPublicKeys } from "../src/audit/signing-key.js";
import { cancelRequest } from "../src/gateway/pg-wire.js";
import { connectUpstream, parseUpstream } from "../src/gateway/upstream.js";
import { runCli } from "./support/broker-process.js";
import { ctx } from "./support/ctx.js";
import { freePort } from "./support/free-port.js";
import { type PostgresTarget, startPostgresTarget, TARGET_ENV, tryLogin } from "./support/postgres-target.js";
import { selfSignedCert } from "./support/self-signed.js";
import {
  type ConfigOverride,
  mergeConfig,
  type RoleOverride,
  SECRET_KEY,
  startTestBroker,
  type TargetOverride,
  type TestBroker,
} from "./support/test-broker.js";
import { sleep, until } from "./support/wait.js";

const run = promisify(execFile);
let target: PostgresTarget;
let t: TestBroker;
let dir: string;
let broker: Broker;
/** The main broker's configuration (a later test starts a second one like it, with TLS). */
let config: ConfigOverride;

/** A role on a postgres target, granted `recovery_rw`; `extra` adds to or replaces its settings. */
const pgRole = (target: string, extra: RoleOverride = {}): RoleOverride => ({
  target,
  grants: { roles: ["recovery_rw"] },
  max_duration: "2h",
  approval: "1 of leads",
  requesters: ["oncall"],
  ...extra,
});

beforeAll(async () => {
  target = await startPostgresTarget();
  const port = await freePort();
  config = {
    ...SECRET_KEY,
    workers: { expiry_poll: "100ms" },
    gateway: { host: "127.0.0.1", port, targets: ["pg-app"] },
    users: { alice: { name: "Alice" }, bob: { name: "Bob" }, carol: { name: "Carol" }, dave: { name: "Dave" } },
    groups: { oncall: ["alice"], leads: ["bob", "carol"] },
    domains: {
      production: {
        roles: {
          "db-admin": pgRole("pg-app"),
          guarded: pgRole("pg-app", {
            guard: {
              deny: ["drop_table", "truncate", "delete_without_where", "set_role"],
              deny_schemas: ["audit"],
            },
            recording: { redact_parameters: true },
          }),
        },
      },
    },
    targets: { "pg-app": { connector: "postgres", settings: { admin_url: { env: TARGET_ENV }, timeout: "5s" } } },
  };
  t = await startTestBroker({ base: "minimal", env: { [TARGET_ENV]: target.adminUrl }, config });
  ({ broker, dir } = t);
});
afterAll(async () => {
  await t?.stop();
  await target?.stop();
});

const int32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n, 0);
  return b;
};
/** Heap and buffers of this process (the broker, and so the gateway, runs in it). */
const memory = () => {
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
};

let last: string | null = null;
/** A fresh active grant for alice; returns its id and the connection string she is given. */
async function grant(durationS = 1800, role = "db-admin"): Promise<{ id: string; dsn: string }> {
  if (last) await broker.service.release(ctx("alice"), last).catch(() => {});
  const g = await broker.service.request(ctx("alice"), {
    roleId: `production/${role}`,
    justification: "orders table is corrupt, repairing",
    incident: "INC-500",
    durationS,
  });
  await broker.service.approve(ctx("bob"), g.id, null);
  last = g.id;
  const c = await broker.service.credential(ctx("alice"), g.id);
  return { id: g.id, dsn: c.credential.reveal() };
}

/**
 * Call a function by OID with the protocol's FunctionCall message on a connected client's socket
 * (text arguments, text result); resolves to the error fields, or null when it succeeded.
 */
async function functionCall(
  c: pg.Client,
  oid: number,
  args: string[],
): Promise<{ code: string; message: string } | null> {
  const sock = (c as unknown as { connection: { stream: net.Socket } }).connection.stream;
  const int16 = (n: number) => Buffer.from([n >> 8, n & 255]);
  // OID, no argument format codes (all text), the arguments, a text result.
  const parts = [int32(oid), int16(0), int16(args.length)];
  for (const a of args) parts.push(int32(Buffer.byteLength(a)), Buffer.from(a));
  parts.push(int16(0));
  const body = Buffer.concat(parts);
  const listeners = sock.listeners("data");
  sock.removeAllListeners("data");
  try {
    return await new Promise((resolve, reject) => {
      let buf = Buffer.alloc(0);
      let error: { code: string; message: string } | null = null;
      const timer = setTimeout(() => reject(new Error("no answer to the function call")), 10_000);
      sock.on("data", (chunk: Buffer) => {
        buf = Buffer.concat([buf, chunk]);
        while (buf.length >= 5 && buf.length >= 1 + buf.readInt32BE(1)) {
          const type = String.fromCharCode(buf[0] as number);
          const msg = buf.subarray(5, 1 + buf.readInt32BE(1));
          buf = buf.subarray(1 + buf.readInt32BE(1));
          if (type === "E") {
            const fields = new Map<string, string>();
            for (const f of msg.toString("utf8").split("\0")) if (f) fields.set(f.charAt(0), f.slice(1));
            error = { code: fields.get("C") ?? "", message: fields.get("M") ?? "" };
          }
          if (type === "Z") {
            clearTimeout(timer);
            resolve(error);
          }
        }
      });
      sock.write(Buffer.concat([Buffer.from("F"), int32(body.length + 4), body]));
    });
  } finally {
    sock.removeAllListeners("data");
    for (const l of listeners) sock.on("data", l as (chunk: Buffer) => void);
  }
}

describe("PostgreSQL gateway", () => {
  it("hands the holder a gateway login, never the target's own credential", async () => {
    const { id, dsn } = await grant();
    const u = new URL(dsn);
    const address = broker.gatewayAddress();
    expect(u.port).toBe(String(address?.port));
    expect(u.username).toBe(
      `bg_${id}`
        .toLowerCase()
        .replace(/[^a-z0-9_]/g, "_")
        .slice(0, 63),
    );
    // The gateway password is not the target password: it does not work there directly.
    const direct = new URL(target.adminUrl);
    direct.username = u.username;
    direct.password = u.password;
    const c = new pg.Client({ connectionString: direct.toString() });
    await expect(c.connect()).rejects.toThrow(/password authentication failed/);
  });

  it("relays the pg driver's simple and extended queries, errors and cancels; records every statement in order", async () => {
    const { id, dsn } = await grant();
    const c = new pg.Client({ connectionString: dsn, application_name: "repair-script" });
    await c.connect();
    try {
      expect((await c.query("SELECT count(*)::int AS n FROM public.accounts")).rows).toEqual([{ n: 2 }]);
      expect((await c.query("SELECT owner FROM public.accounts WHERE id = $1", [2])).rows).toEqual([
        { owner: "globex" },
      ]);
      await expect(c.query("SELECT 1/0")).rejects.toMatchObject({ code: "22012" });
      // Still usable after an error; a prepared statement by name, twice.
      const named = { name: "bal", text: "SELECT balance FROM public.accounts WHERE owner = $1", values: ["acme"] };
      expect((await c.query(named)).rows).toEqual([{ balance: 100 }]);
      expect((await c.query({ ...named, values: ["globex"] })).rows).toEqual([{ balance: 250 }]);
      expect((await c.query("UPDATE public.accounts SET balance = balance + 1 WHERE id = 1")).rowCount).toBe(1);

      // A cancel request with the key the gateway gave the client reaches the target's backend.
      const sleeping = c.query("SELECT pg_sleep(30)");
      await until(
        "the sleep running at the target",
        async () =>
          (
            await target.sql<{ n: number }>(
              "SELECT count(*)::int AS n FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(30)' AND state = 'active'",
            )
          )[0]?.n === 1 || null,
      );
      const { processID, secretKey } = c as unknown as { processID: number; secretKey: number };
      const addr = broker.gatewayAddress();
      if (!addr) throw new Error("gateway not listening");
      const sock = net.connect({ host: addr.host, port: addr.port });
      await new Promise((r) => sock.once("connect", r));
      sock.end(cancelRequest(processID, secretKey));
      // Canceled (57014), not finished after its 30 s: the cancel reached the target's backend.
      await expect(sleeping).rejects.toMatchObject({ code: "57014" });
      expect((await c.query("SELECT 42 AS answer")).rows).toEqual([{ answer: 42 }]);
    } finally {
      await c.end();
    }

    const recorded = await until("the recording", async () => {
      const s = await broker.store.listStatements(id);
      return s.length >= 8 ? s : null;
    });
    expect(recorded.map((s) => [s.kind, s.text, s.params, s.rows, s.tag, s.error?.slice(0, 5) ?? null])).toEqual([
      ["simple", "SELECT count(*)::int AS n FROM public.accounts", null, 1, "SELECT 1", null],
      ["extended", "SELECT owner FROM public.accounts WHERE id = $1", ["2"], 1, "SELECT 1", null],
      ["simple", "SELECT 1/0", null, 0, null, "22012"],
      ["extended", "SELECT balance FROM public.accounts WHERE owner = $1", ["acme"], 1, "SELECT 1", null],
      ["extended", "SELECT balance FROM public.accounts WHERE owner = $1", ["globex"], 1, "SELECT 1", null],
      ["simple", "UPDATE public.accounts SET balance = balance + 1 WHERE id = 1", null, 1, "UPDATE 1", null],
      ["simple", "SELECT pg_sleep(30)", null, 0, null, "57014"],
      ["simple", "SELECT 42 AS answer", null, 1, "SELECT 1", null],
    ]);
    expect(new Set(recorded.map((s) => s.sessionId)).size).toBe(1);

    // The recording through the API and the CLI: the holder and an approver read it (audited); others cannot.
    const url = t.url;
    const shown = await runCli(["recording", id], { BREAKGLASS_URL: url, BREAKGLASS_TOKEN: await t.token("bob") });
    expect(shown.code, shown.stderr).toBe(0);
    expect(shown.stdout).toMatch(/^session s_/);
    expect(shown.stdout).toMatch(/ 2 .* SELECT 1 +SELECT owner FROM public\.accounts WHERE id = \$1 +\["2"\]/);
    expect(shown.stdout).toMatch(/ERROR 22012 division by zero +SELECT 1\/0/);
    const json = await runCli(["recording", id, "--json"], {
      BREAKGLASS_URL: url,
      BREAKGLASS_TOKEN: await t.token("alice"),
    });
    expect(JSON.parse(json.stdout).statements).toHaveLength(8);
    const denied = await runCli(["recording", id], { BREAKGLASS_URL: url, BREAKGLASS_TOKEN: await t.token("dave") });
    expect(denied.code).not.toBe(0);
    expect(denied.stderr).toMatch(/ERR_FORBIDDEN/);
    const reads = (await broker.store.readGrantAudit([id])).filter((e) => e.type === "grant.recording_read");
    expect(reads.map((e) => e.actor)).toEqual(["bob", "alice"]);
    expect(recorded.map((s) => s.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);

    // The session is in the audit trail: started, and ended with its summary.
    const events = await until("session end event", async () => {
      const all = await broker.store.readGrantAudit([id]);
      return all.some((e) => e.type === "gateway.session_ended") ? all : null;
    });
    const ended = JSON.parse(events.find((e) => e.type === "gateway.session_ended")?.payload ?? "{}");
    expect(ended.data).toMatchObject({ statements: 8, errors: 2, reason: "client terminated" });
    const started = JSON.parse(events.find((e) => e.type === "gateway.session_started")?.payload ?? "{}");
    expect(started.data).toMatchObject({ application: "repair-script", user: expect.stringMatching(/^bg_/) });
  });

  it("relays psql, COPY out and COPY in", async () => {
    const { id, dsn } = await grant();
    const out = await run("psql", [
      dsn,
      "-X",
      "-A",
      "-t",
      "-c",
      "COPY (SELECT id, owner FROM public.accounts ORDER BY id) TO STDOUT",
    ]);
    expect(out.stdout).toBe("1\tacme\n2\tglobex\n");
    const file = join(dir, "rows.tsv");
    writeFileSync(file, "3\tinitech\t7\n4\thooli\t9\n");
    const into = await run("psql", [dsn, "-X", "-v", "ON_ERROR_STOP=1", "-c", `\\copy public.accounts FROM '${file}'`]);
    expect(into.stdout.trim()).toBe("COPY 2");
    expect(await target.sql("SELECT count(*)::int AS n FROM public.accounts")).toEqual([{ n: 4 }]);
    const recorded = await until("psql statements", async () => {
      const s = await broker.store.listStatements(id);
      return s.length >= 2 ? s : null;
    });
    expect(recorded.map((s) => [s.text.replace(/\s+/g, " ").trim(), s.rows, s.tag])).toEqual([
      ["COPY (SELECT id, owner FROM public.accounts ORDER BY id) TO STDOUT", 2, "COPY 2"],
      ["COPY public.accounts FROM STDIN", 2, "COPY 2"],
    ]);
  });

  it("refuses a database other than the target's with PostgreSQL's own error; no database named means the target's", async () => {
    const { id, dsn } = await grant();
    const u = new URL(dsn);
    const user = decodeURIComponent(u.username);
    // Directly, PostgreSQL answers an unknown database with 3D000 and this wording: the gateway says the same.
    const direct = new URL(target.adminUrl);
    direct.pathname = "/nosuch";
    const d = new pg.Client({ connectionString: direct.toString() });
    await expect(d.connect()).rejects.toMatchObject({ code: "3D000", message: 'database "nosuch" does not exist' });
    for (const name of ["nosuch", "postgres"]) {
      const other = new URL(dsn);
      other.pathname = `/${name}`;
      const c = new pg.Client({ connectionString: other.toString() });
      await expect(c.connect()).rejects.toMatchObject({ code: "3D000", message: `database "${name}" does not exist` });
      const p = await run("psql", [other.toString(), "-X", "-c", "SELECT 1"]).then(
        () => ({ code: 0, stderr: "" }),
        (e: { code: number; stderr: string }) => e,
      );
      expect(p.code).toBe(2);
      expect(p.stderr).toMatch(new RegExp(`FATAL:  database "${name}" does not exist`));
    }
    // No database named: libpq and pg send the user name, which PostgreSQL reads as "the default".
    const env = { ...process.env, PGPASSWORD: decodeURIComponent(u.password), PGDATABASE: "" };
    const psqlDefault = await run(
      "psql",
      ["-X", "-A", "-t", "-h", u.hostname, "-p", u.port, "-U", user, "-c", "SELECT current_database()"],
      { env },
    );
    expect(psqlDefault.stdout.trim()).toBe("app");
    const c = new pg.Client({ host: u.hostname, port: Number(u.port), user, password: decodeURIComponent(u.password) });
    await c.connect();
    expect((await c.query("SELECT current_database() AS db")).rows).toEqual([{ db: "app" }]);
    await c.end();
    // The named database works as before; refused logins are not sessions.
    const named = await run("psql", [dsn, "-X", "-A", "-t", "-c", "SELECT current_database()"]);
    expect(named.stdout.trim()).toBe("app");
    // Three sessions (psql and pg with no database, psql with the target's); none for the refusals.
    const sessions = await until("the three sessions' ends", async () => {
      const types = (await broker.store.readGrantAudit([id])).map((e) => e.type);
      const ended = types.filter((t) => t === "gateway.session_ended");
      return ended.length >= 3 ? types : null;
    });
    expect(sessions.filter((t) => t === "gateway.session_started")).toHaveLength(3);
  });

  it("records what was only prepared or described (psql's \\gdesc), or refused at Parse by the target or the guard, each once", async () => {
    const { id, dsn } = await grant();
    const script = join(dir, "gdesc.sql");
    writeFileSync(
      script,
      "SELECT id, owner FROM public.accounts \\gdesc\nSELECT nope FROM public.accounts \\gdesc\nSELECT 'after' AS x;\n",
    );
    const out = await run("psql", [dsn, "-X", "-f", script]).then(
      (r) => r,
      (e: { stdout: string; stderr: string }) => e,
    );
    expect(out.stderr).toMatch(/column "nope" does not exist/);
    // A Parse followed by its Execute stays one statement, with the Parse's error when it fails.
    const c = new pg.Client({ connectionString: dsn });
    await c.connect();
    await expect(c.query({ name: "bad", text: "SELEC $1::int", values: [1] })).rejects.toMatchObject({
      code: "42601",
    });
    expect((await c.query("SELECT $1::int AS n", [7])).rows).toEqual([{ n: 7 }]);
    await c.end();
    const recorded = await until("the recording", async () => {
      const s = await broker.store.listStatements(id);
      return s.some((x) => x.text === "SELECT $1::int AS n") ? s : null;
    });
    const rows = recorded.map((s) => [s.kind, s.text.trim(), s.error?.replace(/^(\w{5}) .*/, "$1") ?? null]);
    // psql's \\gdesc prepares and describes, then asks the server to format the description.
    expect(rows.filter((r) => r[0] !== "simple" || !String(r[1]).includes("format_type"))).toEqual([
      ["prepare", "SELECT id, owner FROM public.accounts", null],
      ["prepare", "SELECT nope FROM public.accounts", "42703"],
      ["simple", "SELECT 'after' AS x;", null],
      ["extended", "SELEC $1::int", "42601"],
      ["extended", "SELECT $1::int AS n", null],
    ]);
    // Each session's seq runs 1, 2, 3… without gaps (a Parse its Execute covers takes none).
    expect(recorded.map((s) => s.seq)).toEqual([1, 2, 3, 4, 1, 2]);

    // A guarded role's statement the guard refuses at Parse is recorded blocked (and alarmed), run or not.
    const g = await grant(1800, "guarded");
    const blocked = join(dir, "gdesc-blocked.sql");
    writeFileSync(blocked, "TRUNCATE public.accounts \\gdesc\n");
    const b = await run("psql", [g.dsn, "-X", "-f", blocked]).then(
      (r) => r,
      (e: { stdout: string; stderr: string }) => e,
    );
    expect(b.stderr).not.toMatch(/FATAL/);
    expect(await target.sql("SELECT count(*)::int AS n FROM public.accounts")).not.toEqual([{ n: 0 }]);
    const guarded = await until("the blocked Parse recorded", async () => {
      const s = await broker.store.listStatements(g.id);
      return s.length >= 1 ? s : null;
    });
    expect(guarded.map((s) => [s.kind, s.text.trim(), s.error?.slice(0, 5) ?? null])).toEqual([
      ["blocked", "TRUNCATE public.accounts", "42501"],
    ]);
    const alarms = (await broker.store.readGrantAudit([g.id])).filter((e) => e.type === "gateway.statement_blocked");
    expect(alarms).toHaveLength(1);
  });

  it("runs pgbench in simple, extended and prepared modes without a failed transaction", async () => {
    // End the previous grant first: its end sweeps grants made to recovery_rw during it (seed 000).
    if (last) await broker.service.release(ctx("alice"), last);
    last = null;
    await run("pgbench", ["-i", "-q", "-s", "1", target.adminUrl]);
    await target.sql("GRANT SELECT ON ALL TABLES IN SCHEMA public TO recovery_rw");
    const { id, dsn } = await grant();
    for (const mode of ["simple", "extended", "prepared"]) {
      // A count of transactions, not a duration: how many fit in N seconds depends on the machine.
      const { stdout } = await run("pgbench", ["-n", "-S", "-M", mode, "-c", "4", "-j", "2", "-t", "50", dsn]);
      expect(stdout).toMatch(/number of failed transactions: 0 /);
      expect(stdout).toMatch(/number of transactions actually processed: 200\/200/);
    }
    const recorded = await until("pgbench's statements", async () => {
      const s = await broker.store.listStatements(id);
      return s.length >= 600 ? s : null;
    });
    expect(recorded.filter((s) => s.error !== null)).toEqual([]);
    expect(recorded.some((s) => s.kind === "extended" && /FROM pgbench_accounts WHERE aid = \$1/.test(s.text))).toBe(
      true,
    );
  });

  it("streams a 1,000,000-row result to a slow reader with bounded memory (the target is paused, not buffered)", async () => {
    const { id, dsn } = await grant();
    const u = new URL(dsn);
    const addr = broker.gatewayAddress();
    if (!addr) throw new Error("gateway not listening");
    // A client that reads slowly: the gateway must stop reading the target, not queue the result.
    const up = await connectUpstream(
      { ...parseUpstream(dsn), host: addr.host, port: addr.port, user: decodeURIComponent(u.username) },
      {},
      10_000,
    );
    const sock = up.socket;
    sock.pause();
    const text = "SELECT g, repeat('x', 200) FROM generate_series(1, 1000000) g";
    sock.write(Buffer.concat([Buffer.from("Q"), int32(text.length + 5), Buffer.from(`${text}\0`)]));
    const base = memory();
    let peak = base;
    let bytes = 0;
    let done = false;
    let tail = Buffer.alloc(0);
    const sampler = setInterval(() => {
      peak = Math.max(peak, memory());
    }, 20);
    sock.on("data", (chunk: Buffer) => {
      bytes += chunk.length;
      tail = Buffer.concat([tail, chunk]).subarray(-6);
      // ReadyForQuery ('Z', length 5, status) ends the result.
      if (tail.length === 6 && tail[0] === 0x5a && tail.readInt32BE(1) === 5) done = true;
    });
    // Read nothing for 2 s (a stalled client), then everything. Without backpressure the gateway
    // would have read the whole result from the target into memory by then.
    await sleep(2000);
    const stalledPeak = peak;
    sock.resume();
    await until("the whole result", () => done, undefined, 20);
    clearInterval(sampler);
    sock.destroy();
    expect(bytes).toBeGreaterThan(200_000_000);
    // The result is > 200 MB; the broker's memory grew by a small fraction of it.
    expect(stalledPeak - base).toBeLessThan(32 * 1024 * 1024);
    expect(peak - base).toBeLessThan(64 * 1024 * 1024);
    const recorded = await until("the big select", async () => (await broker.store.listStatements(id))[0]);
    expect(recorded).toMatchObject({ rows: 1_000_000, tag: "SELECT 1000000", error: null });
    expect(recorded.bytes).toBeGreaterThan(200_000_000);
  });

  it("blocks what the role's guard denies, decided on the parse tree, in simple and extended protocol", async () => {
    const { id, dsn } = await grant(1800, "guarded");
    const c = new pg.Client({ connectionString: dsn });
    await c.connect();
    try {
      await c.query("BEGIN");
      await expect(c.query("DROP TABLE public.accounts")).rejects.toMatchObject({
        code: "42501",
        message: "Breakglass guard: DROP TABLE is not allowed (drop_table) for role production/guarded",
      });
      // The transaction failed as for any error; the table is still there.
      await expect(c.query("SELECT 1")).rejects.toMatchObject({ code: "25P02" });
      await c.query("ROLLBACK");
      await expect(c.query({ text: "DELETE FROM public.accounts", values: [] })).rejects.toMatchObject({
        code: "42501",
      });
      await expect(c.query("SELECT * FROM audit.events WHERE id = $1", [7])).rejects.toMatchObject({
        message: expect.stringMatching(/statements on schema audit are not allowed/),
      });
      // A DELETE with a WHERE, and text that merely mentions DROP TABLE, are fine.
      expect((await c.query("DELETE FROM public.accounts WHERE id = $1", [99])).rowCount).toBe(0);
      expect((await c.query("SELECT 'DROP TABLE accounts' AS t")).rows).toEqual([{ t: "DROP TABLE accounts" }]);
    } finally {
      await c.end();
    }
    expect(await target.sql("SELECT count(*)::int AS n FROM public.accounts")).toEqual([{ n: 4 }]);
    const recorded = await until("the blocked statements", async () => {
      const s = await broker.store.listStatements(id);
      return s.length >= 8 ? s : null;
    });
    expect(recorded.filter((s) => s.kind === "blocked").map((s) => [s.text, s.params, s.error?.slice(0, 5)])).toEqual([
      ["DROP TABLE public.accounts", null, "42501"],
      ["DELETE FROM public.accounts", null, "42501"],
      ["SELECT * FROM audit.events WHERE id = $1", ["<redacted>"], "42501"],
    ]);
    const blocked = await until("the alarms", async () => {
      const events = (await broker.store.readGrantAudit([id])).filter((e) => e.type === "gateway.statement_blocked");
      return events.length === 3 ? events : null;
    });
    expect(JSON.parse(blocked[0]?.payload ?? "{}").data).toMatchObject({
      statement: "DROP TABLE public.accounts",
      reason: "DROP TABLE is not allowed (drop_table)",
    });
    expect((await broker.store.listAlarms(id)).some((a) => a.eventType === "gateway.statement_blocked")).toBe(true);
  });

  it("refuses DROP OWNED and REASSIGN OWNED under drop_table, SET ROLE to a role the grant does not hold, also at startup and by function OID", async () => {
    // A realistic recovery role: a member of the role owning the application's tables, and the
    // owner of a table of its own.
    await target.sql(
      "GRANT app_owner TO recovery_rw; CREATE TABLE public.ledger (id int); ALTER TABLE public.ledger OWNER TO recovery_rw",
    );
    try {
      const { dsn } = await grant(1800, "guarded");
      const c = new pg.Client({ connectionString: dsn });
      await c.connect();
      try {
        await expect(c.query("DROP OWNED BY recovery_rw")).rejects.toMatchObject({
          code: "42501",
          message:
            "Breakglass guard: DROP OWNED (drops every object of the roles, revokes their privileges) is not allowed (drop_table) for role production/guarded",
        });
        await expect(c.query("REASSIGN OWNED BY recovery_rw TO reporting")).rejects.toMatchObject({ code: "42501" });
        await expect(c.query("SET ROLE app_owner")).rejects.toMatchObject({
          code: "42501",
          message: "Breakglass guard: SET ROLE app_owner is not allowed (set_role) for role production/guarded",
        });
        await expect(c.query("SELECT set_config('role', 'app_owner', false)")).rejects.toMatchObject({ code: "42501" });
        // The recovery role the grant holds is fine, and so is going back.
        await c.query("SET ROLE recovery_rw");
        expect((await c.query("SELECT current_user AS u")).rows).toEqual([{ u: "recovery_rw" }]);
        await c.query("RESET ROLE");
        // set_config called by its OID (2078) in a FunctionCall message: no parse tree shows it.
        const fastpath = await functionCall(c, 2078, ["role", "app_owner", "false"]);
        expect(fastpath).toMatchObject({ code: "42501" });
        expect((await c.query("SELECT current_user = session_user AS same")).rows).toEqual([{ same: true }]);
      } finally {
        await c.end();
      }
      // A role set in the startup packet is a SET ROLE too.
      const startup = new pg.Client({ connectionString: dsn, options: "-c role=app_owner" });
      await expect(startup.connect()).rejects.toMatchObject({
        code: "42501",
        message: expect.stringContaining("startup parameter role: SET ROLE app_owner is not allowed (set_role)"),
      });
      await startup.end().catch(() => {});
      const allowed = new pg.Client({ connectionString: dsn, options: "-c role=recovery_rw" });
      await allowed.connect();
      expect((await allowed.query("SELECT current_user AS u")).rows).toEqual([{ u: "recovery_rw" }]);
      await allowed.end();
      expect(await target.sql("SELECT to_regclass('public.ledger') IS NOT NULL AS kept")).toEqual([{ kept: true }]);

      // Without the guard the same statement runs at the target and drops the table: the refusal mattered.
      const open = await grant(1800, "db-admin");
      const d = new pg.Client({ connectionString: open.dsn });
      await d.connect();
      await d.query("DROP OWNED BY recovery_rw");
      await d.end();
      expect(await target.sql("SELECT to_regclass('public.ledger') IS NOT NULL AS kept")).toEqual([{ kept: false }]);
    } finally {
      await target.sql("DROP TABLE IF EXISTS public.ledger; REVOKE app_owner FROM recovery_rw");
      // DROP OWNED above also revoked recovery_rw's privileges: give them back.
      await target.sql(
        "GRANT USAGE, CREATE ON SCHEMA public TO recovery_rw; GRANT SELECT, INSERT, UPDATE, DELETE ON public.accounts TO recovery_rw WITH GRANT OPTION",
      );
    }
  });

  it("never lets a holder give a role a password or LOGIN: a way in around the gateway (every gateway session, guard or not)", async () => {
    const { dsn } = await grant(1800, "db-admin"); // a role without a guard
    const u = new URL(dsn);
    const c = new pg.Client({ connectionString: dsn });
    await c.connect();
    try {
      for (const sql of [
        "ALTER ROLE CURRENT_USER PASSWORD 'mine'",
        `ALTER USER "${decodeURIComponent(u.username)}" WITH ENCRYPTED PASSWORD 'mine'`,
      ]) {
        await expect(c.query(sql), sql).rejects.toMatchObject({
          code: "42501",
          message: expect.stringContaining("(login_credential)"),
        });
      }
      expect((await c.query("SELECT count(*)::int AS n FROM public.accounts")).rows[0].n).toBeGreaterThan(0);
    } finally {
      await c.end();
    }
    // The target still has only the broker's password for the role: 'mine' does not open it.
    const direct = new URL(target.adminUrl);
    direct.username = u.username;
    direct.password = "mine";
    expect(await tryLogin(direct.toString())).toMatch(/password authentication failed/);
  });

  it("speaks TLS to clients with the configured certificate, and refuses plain connections when TLS is required", async () => {
    const tlsDir = join(dir, "tls");
    mkdirSync(tlsDir);
    await selfSignedCert({
      certFile: join(tlsDir, "gw.crt"),
      keyFile: join(tlsDir, "gw.key"),
      cn: "localhost",
      san: "DNS:localhost,IP:127.0.0.1",
    });
    const port = await freePort();
    const tlsConfigDir = join(dir, "tls-broker");
    mkdirSync(tlsConfigDir);
    const secondBroker = await startTestBroker({
      base: "minimal",
      dir: tlsConfigDir,
      env: { [TARGET_ENV]: target.adminUrl },
      config: mergeConfig(config, {
        gateway: { port, public_host: "localhost", tls: { cert_file: "../tls/gw.crt", key_file: "../tls/gw.key" } },
      }),
    });
    const second = secondBroker.broker;
    try {
      const g = await second.service.request(ctx("alice"), {
        roleId: "production/db-admin",
        justification: "checking TLS to the gateway",
        incident: "INC-501",
        durationS: 600,
      });
      await second.service.approve(ctx("bob"), g.id, null);
      const dsn = (await second.service.credential(ctx("alice"), g.id)).credential.reveal();
      expect(dsn).toMatch(/@localhost:\d+\/app\?sslmode=require$/);
      // psql verifies the certificate against the CA it is given (here the self-signed one).
      const verified = `${dsn.replace("sslmode=require", "sslmode=verify-full")}&sslrootcert=${join(tlsDir, "gw.crt")}`;
      const out = await run("psql", [
        verified,
        "-X",
        "-A",
        "-t",
        "-c",
        "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
      ]);
      // The client ↔ gateway leg is TLS (psql verified it); the gateway ↔ target leg follows the target's sslmode.
      expect(out.stdout.trim()).toMatch(/^[tf]$/);
      const plain = dsn.replace("sslmode=require", "sslmode=disable");
      await expect(run("psql", [plain, "-X", "-c", "SELECT 1"])).rejects.toMatchObject({
        stderr: expect.stringMatching(/the Breakglass gateway requires TLS/),
      });
      await second.service.release(ctx("alice"), g.id);
    } finally {
      await secondBroker.stop();
    }
  });

  it("fails closed when recording storage fails: no statement runs unrecorded, and it recovers", async () => {
    const { id, dsn } = await grant();
    const c = new pg.Client({ connectionString: dsn });
    c.on("error", () => {}); // the connection is closed under it
    await c.connect();
    expect((await c.query("SELECT 'before' AS x")).rows).toEqual([{ x: "before" }]);
    await until("the first statement stored", async () => (await broker.store.listStatements(id)).length === 1 || null);
    // The recording table goes away under the broker (a full disk, a broken volume…).
    const db = new BetterSqlite3(join(dir, "breakglass.db"));
    db.exec("ALTER TABLE statement_batches RENAME TO statement_batches_away");
    try {
      // This one runs (the gateway cannot know yet); its write fails at the next flush.
      expect((await c.query("SELECT 'during' AS x")).rows).toEqual([{ x: "during" }]);
      // Once that write has failed, new sessions are refused (until then a probe's session opens).
      await until("new sessions refused", async () => {
        const other = new pg.Client({ connectionString: dsn });
        other.on("error", () => {});
        try {
          await other.connect();
        } catch (e) {
          expect(e).toMatchObject({ code: "57P03" });
          return true;
        }
        await other.end();
        return null;
      });
      // From now on nothing runs: the open session is closed at its next statement.
      await expect(c.query("SELECT 'refused' AS x")).rejects.toMatchObject({
        code: "57P03",
        message: expect.stringMatching(/cannot record statements right now .* nothing was run unrecorded/),
      });
    } finally {
      db.exec("ALTER TABLE statement_batches_away RENAME TO statement_batches");
      db.close();
    }
    // Back: the held statement is written, and sessions work again.
    const texts = await until("the held statement written", async () => {
      const s = (await broker.store.listStatements(id)).map((x) => x.text);
      return s.includes("SELECT 'during' AS x") ? s : null;
    });
    expect(texts).not.toContain("SELECT 'refused' AS x");
    const again = new pg.Client({ connectionString: dsn });
    await again.connect();
    expect((await again.query("SELECT 'after' AS x")).rows).toEqual([{ x: "after" }]);
    await again.end();
    await c.end().catch(() => {});
  });

  it("connects to the target over TLS as its sslmode says (verify-full), and refuses a target it cannot verify", async () => {
    const tlsTarget = await startPostgresTarget({ tls: true });
    const tlsDir = join(dir, "upstream-tls");
    mkdirSync(tlsDir);
    try {
      const wrongCa = join(tlsDir, "other-ca.crt");
      await selfSignedCert({ certFile: wrongCa, keyFile: join(tlsDir, "other.key"), cn: "127.0.0.1" });
      const port = await freePort();
      const upstreamTls = (caFile: string | null): TargetOverride => ({
        connector: "postgres",
        settings: {
          admin_url: { env: TARGET_ENV },
          connect_options: `sslmode=verify-full&sslrootcert=${caFile}`,
        },
      });
      const thirdBroker = await startTestBroker({
        base: "minimal",
        dir: tlsDir,
        env: { [TARGET_ENV]: tlsTarget.adminUrl },
        config: {
          ...SECRET_KEY,
          gateway: { host: "127.0.0.1", port, targets: ["verified", "unverifiable"] },
          users: { alice: { name: "Alice" }, bob: { name: "Bob" } },
          groups: { oncall: ["alice"], leads: ["bob"] },
          domains: {
            production: {
              roles: {
                verified: pgRole("verified", { max_duration: "1h" }),
                unverifiable: pgRole("unverifiable", { max_duration: "1h" }),
              },
            },
          },
          targets: { verified: upstreamTls(tlsTarget.cluster.caFile), unverifiable: upstreamTls(wrongCa) },
        },
      });
      const third = thirdBroker.broker;
      try {
        const dsnFor = async (name: string) => {
          const g = await third.service.request(ctx("alice"), {
            roleId: `production/${name}`,
            justification: "checking TLS to the target",
            incident: "INC-502",
            durationS: 600,
          });
          await third.service.approve(ctx("bob"), g.id, null);
          return (await third.service.credential(ctx("alice"), g.id)).credential.reveal();
        };
        const ok = new pg.Client({ connectionString: await dsnFor("verified") });
        await ok.connect();
        expect((await ok.query("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")).rows).toEqual([
          { ssl: true },
        ]);
        await ok.end();
        const bad = new pg.Client({ connectionString: await dsnFor("unverifiable") });
        await expect(bad.connect()).rejects.toThrow(/the target refused the session: TLS to the target failed/);
      } finally {
        await thirdBroker.stop();
      }
    } finally {
      await tlsTarget.stop();
    }
  });

  it("refuses a wrong password and a grant that ended, without saying which", async () => {
    const { id, dsn } = await grant();
    const wrong = new URL(dsn);
    wrong.password = "not-the-password";
    const c = new pg.Client({ connectionString: wrong.toString() });
    await expect(c.connect()).rejects.toMatchObject({ code: "28P01" });
    const nobody = new URL(dsn);
    nobody.username = "bg_nobody";
    const n = new pg.Client({ connectionString: nobody.toString() });
    await expect(n.connect()).rejects.toMatchObject({ code: "28P01" });
    if (last) await broker.service.release(ctx("alice"), last);
    last = null;
    // Released: the login is gone with the credential.
    const after = new pg.Client({ connectionString: dsn });
    await expect(after.connect()).rejects.toMatchObject({ code: "28P01" });
    // Refused logins are not sessions: nothing to record as started or ended.
    const types = (await broker.store.readGrantAudit([id])).map((e) => e.type);
    expect(types.filter((t) => t.startsWith("gateway.session"))).toEqual([]);
  });

  it("closes the session at a revoke", async () => {
    const { id, dsn } = await grant();
    const c = new pg.Client({ connectionString: dsn });
    const errors: Error[] = [];
    let cutAt = 0;
    c.on("error", (e) => {
      cutAt ||= Date.now();
      errors.push(e);
    });
    await c.connect();
    expect((await c.query("SELECT 1 AS one")).rows).toEqual([{ one: 1 }]);
    expect(errors).toEqual([]);
    const revokedAt = Date.now();
    await broker.service.revoke(ctx("bob"), id, "done here");
    await until("the session cut", async () => errors.length > 0 || null);
    expect(errors[0]?.message).toMatch(new RegExp(`break-glass grant ${id} revoked`));
    console.log(`gateway: session cut ${cutAt - revokedAt} ms after the revoke call`);
    await c.end().catch(() => {});
    last = null;
  });

  it("closes the session at the grant's end, not before, with a FATAL the client can read", async () => {
    // Long enough for the session to open and run a statement on a busy machine (the gateway
    // refuses a login, and cuts a session, once the grant has ended), short enough to wait for.
    const { id, dsn } = await grant(8);
    const c = new pg.Client({ connectionString: dsn });
    const errors: Error[] = [];
    let cutAt = 0;
    c.on("error", (e) => {
      cutAt ||= Date.now();
      errors.push(e);
    });
    await c.connect();
    expect((await c.query("SELECT 1 AS one")).rows).toEqual([{ one: 1 }]);
    const endsAt = (await broker.store.getGrant(id))?.endsAt ?? 0;
    await until("the session cut", async () => errors.length > 0 || null);
    expect(errors[0]?.message).toMatch(new RegExp(`break-glass grant ${id} expired`));
    expect(cutAt).toBeGreaterThanOrEqual(endsAt);
    console.log(`gateway: session cut ${cutAt - endsAt} ms after the grant's end`);
    await c.end().catch(() => {});
    last = null;
  });

  it("seals every session's statements into its end event; a statement changed or added afterwards fails audit verify", async () => {
    const { id, dsn } = await grant();
    const c = new pg.Client({ connectionString: dsn });
    await c.connect();
    await c.query("SELECT 1 AS one");
    await c.query("SELECT $1::int AS two", [2]);
    await c.end();
    await broker.service.release(ctx("alice"), id);
    last = null;
    const keys = loadPublicKeys([broker.signingKey.publicKeyPem]).verifySignature;
    // Every session this file ran (pg driver, psql COPY, pgbench, blocked statements, cut sessions)
    // hashes to the digest its end event sealed, once the recorder has written its last batch.
    const verdict = await until("every recording to match its seal", async () => {
      const v = await verifyStoreChain(broker.store, keys);
      return v.ok && v.recordings && v.recordings.unsealed === 0 ? v : null;
    });
    expect(verdict.ok && verdict.recordings?.matched).toBeGreaterThan(5);
    const ended = (await broker.store.readGrantAudit([id])).find((e) => e.type === "gateway.session_ended");
    const sealed = JSON.parse(ended?.payload ?? "{}").data;
    expect(sealed).toMatchObject({ statements: 2, digest: expect.stringMatching(/^[0-9a-f]{64}$/) });
    const story = await broker.http.inject({
      method: "GET",
      url: `/api/v1/grants/${id}/story`,
      headers: {
        authorization: `Bearer ${await t.token("bob")}`,
      },
    });
    expect(story.json().recording.sessions).toEqual([
      {
        kind: "gateway",
        session: sealed.session,
        entries: 2,
        sealedBy: ended?.seq,
        digest: sealed.digest,
        matches: true,
        integrity: null,
      },
    ]);

    const db = new BetterSqlite3(join(dir, "breakglass.db"));
    try {
      // The session's statements are one stored batch (a JSON array of their entries): edit one.
      const edit = db.prepare(
        "UPDATE statement_batches SET entries = replace(entries, @from, @to) WHERE session_id = @session AND instr(entries, @from) > 0",
      );
      const session = sealed.session;
      expect(edit.run({ from: '"SELECT $1::int AS two"', to: '"SELECT 3"', session }).changes).toBe(1);
      expect(await verifyStoreChain(broker.store, keys)).toMatchObject({
        ok: false,
        seq: ended?.seq,
        problem: "recording_mismatch",
        message: expect.stringContaining(sealed.session),
      });
      expect(edit.run({ from: '"SELECT 3"', to: '"SELECT $1::int AS two"', session }).changes).toBe(1);
      expect(await verifyStoreChain(broker.store, keys)).toMatchObject({ ok: true });
      // A statement added to the session after it ended.
      const insert = db.prepare(
        "INSERT INTO statement_batches (grant_id, session_id, first_seq, last_seq, started_at, entries) VALUES (?, ?, ?, ?, 0, ?)",
      );
      insert.run(id, sealed.session, 3, 3, '[[3,0,0,"simple","SELECT harmless()",null,1,"SELECT 1",null,10]]');
      expect(await verifyStoreChain(broker.store, keys)).toMatchObject({ ok: false, problem: "recording_mismatch" });
      // A session that never went through the gateway.
      db.prepare("DELETE FROM statement_batches WHERE session_id = ? AND first_seq = 3").run(sealed.session);
      insert.run(id, "s_invented", 1, 1, '[[1,0,0,"simple","SELECT 1",null,1,"SELECT 1",null,10]]');
      expect(await verifyStoreChain(broker.store, keys)).toMatchObject({
        ok: false,
        problem: "recording_unaccounted",
        message: expect.stringContaining("s_invented"),
      });
      db.prepare("DELETE FROM statement_batches WHERE session_id = 's_invented'").run();
    } finally {
      db.close();
    }
  });
});

describe("PostgreSQL gateway: a session's end and its recording", () => {
  it("writes a session's end (its seal) only once the statements it seals are stored, however long the recorder waits to write", async () => {
    // A recorder that writes every 10 minutes: before the fix the end event sealed a recording
    // still in memory, and `audit verify` read it as deleted until the batch was written.
    const gatewayPort = await freePort();
    const slowBroker = await startTestBroker({
      base: "minimal",
      env: { [TARGET_ENV]: target.adminUrl },
      config: {
        ...SECRET_KEY,
        gateway: { host: "127.0.0.1", port: gatewayPort, targets: ["pg-app"], record_flush: "10m" },
        users: { alice: {}, bob: {} },
        groups: { oncall: ["alice"], leads: ["bob"] },
        domains: { production: { roles: { db: pgRole("pg-app") } } },
        targets: { "pg-app": { connector: "postgres", settings: { admin_url: { env: TARGET_ENV }, timeout: "5s" } } },
      },
    });
    const slow = slowBroker.broker;
    try {
      const g = await slow.service.request(ctx("alice"), {
        roleId: "production/db",
        justification: "orders table is corrupt, repairing",
        incident: "INC-501",
        durationS: 1800,
      });
      await slow.service.approve(ctx("bob"), g.id, null);
      const dsn = (await slow.service.credential(ctx("alice"), g.id)).credential.reveal();
      const c = new pg.Client({ connectionString: dsn });
      await c.connect();
      await c.query("SELECT 'one statement' AS s");
      await c.end();
      const ended = await until("the session's end in the audit log", async () =>
        (await slow.store.readGrantAudit([g.id])).find((e) => e.type === "gateway.session_ended"),
      );
      const keys = loadPublicKeys([slow.signingKey.publicKeyPem]).verifySignature;
      // No waiting for the recorder: the seal is there, so what it seals is stored.
      const verdict = await verifyStoreChain(slow.store, keys);
      expect(verdict, JSON.stringify(verdict)).toMatchObject({ ok: true, recordings: { matched: 1, unsealed: 0 } });
      expect(JSON.parse(ended.payload).data).toMatchObject({ statements: 1 });
      await slow.service.release(ctx("alice"), g.id);
    } finally {
      await slowBroker.stop();
    }
  });
});
