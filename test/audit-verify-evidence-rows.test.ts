import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import BetterSqlite3 from "better-sqlite3";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sha256 } from "../src/adapters/node-crypto.js";
import type { Broker } from "../src/app.js";
import { createAuditLog } from "../src/audit/audit-log.js";
import { formatVerdict, verifyStoreChain } from "../src/audit/audit-verify.js";
import { loadPublicKeys } from "../src/audit/signing-key.js";
import { STATE_KEYS } from "../src/audit/state-verify.js";
import { nonGrantEvent } from "../src/core/audit-event.js";
import type { Store } from "../src/core/ports/store.js";
import { IDP_DECLARED_STATE } from "../src/service/idp-declaration.js";
import { rotationStateKey } from "../src/service/rotation.js";
import { createPostgresStore } from "../src/store/postgres-store.js";
import { createSqliteStore } from "../src/store/sqlite-store.js";
import { nextRecord } from "../src/vault/opening-record.js";
import { ctx } from "./support/ctx.js";
import {
  APP_ROLE,
  createDatabase,
  type PostgresCluster,
  startPostgres,
  withDatabase,
} from "./support/postgres-cluster.js";
import { type ConfigOverride, startTestBroker, type TestBroker } from "./support/test-broker.js";

type Row = Record<string, unknown>;

interface Db {
  store: Store;
  exec(sql: string): Promise<void>;
  rows(sql: string): Promise<Row[]>;
  columns(table: string): Promise<string[]>;
  /** Put rows back exactly as saved (deleting what the key now matches). */
  restore(table: string, where: string, rows: Row[]): Promise<void>;
}

const DRILLS: ConfigOverride = {
  drills: {
    emergency: {
      scenario: "emergency",
      role: "production/db-admin",
      requester: "alice",
      duration: "10m",
      incident: "INC-900",
    },
  },
};

/** What a case expects: the event (by a name set up below) and the column, or that the column is not evidence. */
type Expect =
  | { readonly at: string; readonly column: string | null; readonly problem: string }
  | { readonly notEvidence: string };

interface Case {
  readonly set: string;
  readonly expect: Expect;
}

/** The rows every case edits, by table: their key column and value (filled in at setup). */
const target: Record<string, { key: string; id: string }> = {};

const mismatch = (noun: string, at: string, column: string) => ({ at, column, problem: `${noun}_mismatch` });

/** One edit per column, of the row in `target`: what verification must say. */
const CASES: Record<string, Record<string, Case[]>> = {
  terminal_sessions: {
    id: [{ set: "id = 't_forged'", expect: mismatch("terminal_session", "terminal", "terminal_sessions.id") }],
    grant_id: [
      { set: "grant_id = 'g_other'", expect: mismatch("terminal_session", "terminal", "terminal_sessions.grant_id") },
    ],
    command: [{ set: "command = 'ls'", expect: mismatch("terminal_session", "terminal", "terminal_sessions.command") }],
    width: [{ set: "width = 200", expect: mismatch("terminal_session", "terminal", "terminal_sessions.width") }],
    height: [{ set: "height = 60", expect: mismatch("terminal_session", "terminal", "terminal_sessions.height") }],
    record_input: [
      {
        set: "record_input = NOT record_input",
        expect: mismatch("terminal_session", "terminal", "terminal_sessions.record_input"),
      },
    ],
    started_at: [
      {
        set: "started_at = started_at - 60000",
        expect: mismatch("terminal_session", "terminal", "terminal_sessions.started_at"),
      },
    ],
    ended_at: [
      {
        set: "ended_at = ended_at + 60000",
        expect: mismatch("terminal_session", "terminal_end", "terminal_sessions.ended_at"),
      },
    ],
    end_reason: [
      {
        set: "end_reason = 'exited 0'",
        expect: mismatch("terminal_session", "terminal_end", "terminal_sessions.end_reason"),
      },
    ],
  },
  vault_openings: {
    id: [{ set: "id = 'vo_forged'", expect: mismatch("vault_opening", "opened", "vault_openings.id") }],
    envelope_id: [
      { set: "envelope_id = 'e0ff'", expect: mismatch("vault_opening", "opened", "vault_openings.envelope_id") },
    ],
    envelope_name: [
      {
        set: "envelope_name = 'gcp-root'",
        expect: mismatch("vault_opening", "opened", "vault_openings.envelope_name"),
      },
    ],
    record_seq: [{ set: "record_seq = 7", expect: mismatch("vault_opening", "opened", "vault_openings.record_seq") }],
    record_hash: [
      {
        set: `record_hash = '${"b".repeat(64)}'`,
        expect: mismatch("vault_opening", "opened", "vault_openings.record_hash"),
      },
    ],
    opened_at: [
      {
        set: "opened_at = opened_at + 3600000",
        expect: mismatch("vault_opening", "opened", "vault_openings.opened_at"),
      },
    ],
    // One custodian fewer: the two-person rule no longer shows.
    custodians: [
      {
        set: `custodians = '[{"fingerprint":"0123456789abcdef","name":"alice"}]'`,
        expect: mismatch("vault_opening", "opened", "vault_openings.custodians"),
      },
    ],
    reason: [{ set: "reason = 'routine'", expect: mismatch("vault_opening", "opened", "vault_openings.reason") }],
    incident: [{ set: "incident = 'INC-1'", expect: mismatch("vault_opening", "opened", "vault_openings.incident") }],
    imported_at: [
      {
        set: "imported_at = imported_at + 1",
        expect: mismatch("vault_opening", "opened", "vault_openings.imported_at"),
      },
    ],
    review_due_at: [
      {
        set: "review_due_at = review_due_at + 86400000",
        expect: mismatch("vault_opening", "opened", "vault_openings.review_due_at"),
      },
    ],
    review: [
      {
        set: `review = replace(review, '"unjustified"', '"justified"')`,
        expect: mismatch("vault_opening", "reviewed", "vault_openings.review.outcome"),
      },
      {
        set: `review = replace(review, '"erin"', '"mallory"')`,
        expect: mismatch("vault_opening", "reviewed", "vault_openings.review.reviewer"),
      },
      {
        set: `review = replace(review, 'custodian left', 'all fine')`,
        expect: mismatch("vault_opening", "reviewed", "vault_openings.review.notes"),
      },
    ],
    // The envelope's own alarm shown as never delivered, or delivered at another time.
    alarm_pending: [
      {
        set: "alarm_pending = 1",
        expect: mismatch("vault_opening", "vault_delivered", "vault_openings.alarm_pending"),
      },
    ],
    alarm_delivered_at: [
      {
        set: "alarm_delivered_at = alarm_delivered_at + 1",
        expect: mismatch("vault_opening", "vault_delivered", "vault_openings.alarm_delivered_at"),
      },
    ],
  },
  drill_runs: {
    id: [{ set: "id = 'd_forged'", expect: mismatch("drill_run", "drill", "drill_runs.id") }],
    name: [{ set: "name = 'other'", expect: mismatch("drill_run", "drill", "drill_runs.name") }],
    scenario: [{ set: "scenario = 'approval-path'", expect: mismatch("drill_run", "drill", "drill_runs.scenario") }],
    started_by: [{ set: "started_by = 'mallory'", expect: mismatch("drill_run", "drill", "drill_runs.started_by") }],
    started_at: [
      { set: "started_at = started_at - 86400000", expect: mismatch("drill_run", "drill", "drill_runs.started_at") },
    ],
    ended_at: [{ set: "ended_at = ended_at + 1", expect: mismatch("drill_run", "drill_end", "drill_runs.ended_at") }],
    // A failed drill shown as passed.
    result: [{ set: "result = 'failed'", expect: mismatch("drill_run", "drill_end", "drill_runs.result") }],
    grant_id: [{ set: "grant_id = 'g_other'", expect: mismatch("drill_run", "drill_end", "drill_runs.grant_id") }],
    time_to_access_ms: [
      { set: "time_to_access_ms = 1", expect: mismatch("drill_run", "drill_end", "drill_runs.time_to_access_ms") },
    ],
    steps: [{ set: `steps = '[]'`, expect: mismatch("drill_run", "drill_end", "drill_runs.steps") }],
  },
  alarms: {
    id: [{ set: "id = 'a_1_elsewhere'", expect: mismatch("alarm", "activation", "alarms.id") }],
    channel: [{ set: "channel = 'other'", expect: mismatch("alarm", "delivered", "alarms.channel") }],
    event_seq: [{ set: "event_seq = event_seq - 1", expect: mismatch("alarm", "delivered", "alarms.event_seq") }],
    event_type: [{ set: "event_type = 'grant.expired'", expect: mismatch("alarm", "activation", "alarms.event_type") }],
    grant_id: [{ set: "grant_id = 'g_other'", expect: mismatch("alarm", "activation", "alarms.grant_id") }],
    payload: [
      {
        set: "payload = replace(payload, 'emergency_activated', 'activated')",
        expect: mismatch("alarm", "activation", "alarms.payload"),
      },
    ],
    // The activation alarm shown as never delivered, or delivered at another time.
    state: [{ set: "state = 'failed'", expect: mismatch("alarm", "delivered", "alarms.state") }],
    attempts: [{ set: "attempts = 5", expect: mismatch("alarm", "delivered", "alarms.attempts") }],
    created_at: [{ set: "created_at = created_at - 1", expect: mismatch("alarm", "activation", "alarms.created_at") }],
    delivered_at: [
      { set: "delivered_at = delivered_at + 1", expect: mismatch("alarm", "delivered", "alarms.delivered_at") },
    ],
    last_error: [
      { set: "last_error = 'x'", expect: { notEvidence: "a failed attempt's error: readers mark it not covered" } },
    ],
    next_at: [{ set: "next_at = next_at + 1", expect: { notEvidence: "the next attempt's time: bookkeeping" } }],
    lease_owner: [{ set: "lease_owner = 'p_other'", expect: { notEvidence: "the delivering process: bookkeeping" } }],
  },
  tokens: {
    id: [{ set: "id = 't_forged'", expect: mismatch("token", "token", "tokens.id") }],
    user_name: [{ set: "user_name = 'mallory'", expect: mismatch("token", "token", "tokens.user_name") }],
    secret_hash: [
      {
        set: `secret_hash = '${"c".repeat(64)}'`,
        expect: { notEvidence: "a verifier of the secret, shown to no one" },
      },
    ],
    created_at: [{ set: "created_at = created_at - 1", expect: mismatch("token", "token", "tokens.created_at") }],
    expires_at: [{ set: "expires_at = NULL", expect: mismatch("token", "token", "tokens.expires_at") }],
    revoked_at: [{ set: "revoked_at = created_at", expect: mismatch("token", "token", "tokens.revoked_at") }],
    description: [{ set: "description = 'ci'", expect: mismatch("token", "token", "tokens.description") }],
    scopes: [{ set: `scopes = '["*"]'`, expect: mismatch("token", "token", "tokens.scopes") }],
  },
  broker_state: {
    // The configuration changed without `config.changed`: the stored fingerprint is not the last announced.
    key: [{ set: `key = 'config-old'`, expect: { at: "config", column: null, problem: "broker_state_mismatch" } }],
    value: [
      {
        set: `value = replace(value, '"fingerprint":"', '"fingerprint":"0')`,
        expect: mismatch("broker_state", "config", "broker_state.value"),
      },
    ],
    updated_at: [
      { set: "updated_at = updated_at + 1", expect: { notEvidence: "when the row was last written: bookkeeping" } },
    ],
  },
};

/** Other keys of broker_state whose value is checked: one edit each. */
const STATE_CASES: { key: () => string; set: string; at: string }[] = [
  { key: () => IDP_DECLARED_STATE, set: `value = replace(value, 'IdP outage', 'drill')`, at: "idp" },
  { key: () => rotationStateKey("target:box"), set: `value = '2020-01-01T00:00:00.000Z'`, at: "rotated" },
];

/**
 * What the cases edit, recorded through the broker's own paths: a grant with a terminal session
 * and its activation alarm delivered, two tier-2 openings (the first's alarm delivered late, the
 * second reviewed), a drill run to its end, tokens, an IdP declaration and a password rotation.
 */
async function recordEvidence(broker: Broker) {
  const seqOf = new Map<string, number>();
  const { service, store } = broker;
  // A grant with a terminal session, its activation alarm delivered.
  const g = await service.request(ctx("alice"), {
    roleId: "production/db-admin",
    justification: "primary down",
    incident: "INC-42",
    durationS: 600,
    emergency: true,
  });
  const alice = (await broker.tokens.create(ctx("alice"), { user: "alice", description: "shell" })).token.reveal();
  const call = async (url: string, payload: Record<string, unknown>) => {
    const res = await broker.http.inject({
      method: "POST",
      url: `/api/v1${url}`,
      headers: { authorization: `Bearer ${alice}` },
      payload,
    });
    expect(res.statusCode, res.body).toBeLessThan(300);
    return res.json() as { session: { id: string } };
  };
  const t = await call(`/grants/${g.id}/terminal`, { command: "psql orders", width: 120, height: 40 });
  await call(`/terminal/${t.session.id}/events`, { events: [{ seq: 1, t: 0.5, kind: "o", data: "orders=# " }] });
  await call(`/terminal/${t.session.id}/end`, { reason: "exited 1" });
  await service.release(ctx("alice"), g.id);
  // Two tier-2 openings: the first's alarm pending at the opening and delivered later, the second reviewed.
  const facts = (incident: string, alarm: string) => ({
    envelope: "e0a1",
    name: "aws-root",
    at: new Date(Date.now() - 3_600_000).toISOString(),
    custodians: [
      { name: "alice", fingerprint: "0123456789abcdef" },
      { name: "dave", fingerprint: "fedcba9876543210" },
    ],
    reason: "AWS SSO down",
    incident,
    alarm,
  });
  const r1 = nextRecord([], facts("INC-77", "pending (no endpoint reachable)"), () => "sig");
  const r2 = nextRecord([r1], facts("INC-78", "delivered to 1 endpoint(s)"), () => "sig");
  await broker.vault.importOpenings({ id: "e0a1", name: "aws-root" }, [r1, r2], []);
  const receipt = { seq: 1, hash: r1.hash, deliveredAt: new Date().toISOString(), summary: "delivered to 1" };
  await broker.vault.importOpenings({ id: "e0a1", name: "aws-root" }, [r1, r2], [receipt]);
  await broker.vault.review(ctx("erin"), "vo_e0a1_2", { outcome: "unjustified", notes: "custodian left" });
  // A drill, run to its end.
  const run = await broker.drills.start(ctx("erin"), "emergency");
  expect(await broker.drills.finished(run.id)).toMatchObject({ result: "passed" });
  // Tokens: one that expires, one revoked.
  const tok = await broker.tokens.create(ctx("erin"), {
    user: "erin",
    description: "reports",
    ttlS: 86_400,
    scopes: ["read"],
  });
  const gone = await broker.tokens.create(ctx("erin"), { user: "erin", description: "old" });
  await broker.tokens.revoke(ctx("erin"), gone.record.id);
  // Broker state with an event each, as their writers do it (the IdP route, a rotation).
  const audit = createAuditLog({ sha256 });
  await store.transaction(async (tx) => {
    const now = Date.now();
    await tx.swapState(IDP_DECLARED_STATE, JSON.stringify({ by: "erin", at: now, reason: "IdP outage" }), now);
    await audit.append(tx, [nonGrantEvent("auth.idp_declared", "erin", now, { down: true, reason: "IdP outage" })]);
    await tx.swapState(rotationStateKey("target:box"), new Date(now).toISOString(), now);
    await audit.append(tx, [
      nonGrantEvent("credential.rotated", "erin", now, { credential: "postgres admin password", user: "x" }, "box"),
    ]);
  });
  await broker.alarms.drain();
  // Which events state what, and which rows the cases edit.
  const events: { seq: number; type: string; data: Record<string, unknown> }[] = [];
  for (let from = 1; ; ) {
    const page = await store.readAudit(from, 1000);
    for (const e of page) events.push({ seq: e.seq, type: e.type, data: JSON.parse(e.payload).data });
    if (page.length < 1000) break;
    from = (page.at(-1)?.seq ?? 0) + 1;
  }
  const seq = (name: string, pick: (e: (typeof events)[number]) => boolean) => {
    const e = events.find(pick);
    if (!e) throw new Error(`no event for ${name}`);
    seqOf.set(name, e.seq);
  };
  const activation = events.find((e) => e.type === "grant.emergency_activated" && e.data.drill !== true);
  const delivered = events.find((e) => e.type === "alarm.delivered" && e.data.event === activation?.seq);
  seq("terminal", (e) => e.type === "grant.terminal_started");
  seq("terminal_end", (e) => e.type === "grant.terminal_ended");
  seq("opened", (e) => e.type === "vault.opened" && e.data.opening === "vo_e0a1_1");
  seq("reviewed", (e) => e.type === "vault.opening_reviewed");
  seq("vault_delivered", (e) => e.type === "vault.alarm_delivered");
  seq("drill", (e) => e.type === "drill.started");
  seq("drill_end", (e) => e.type === "drill.finished");
  seq("activation", (e) => e === activation);
  seq("delivered", (e) => e === delivered);
  seq("token", (e) => e.type === "token.created" && e.data.tokenId === tok.record.id);
  seq("config", (e) => e.type === "config.changed");
  seq("idp", (e) => e.type === "auth.idp_declared");
  seq("rotated", (e) => e.type === "credential.rotated");
  return {
    seqOf,
    grant: g.id,
    terminal: t.session.id,
    drill: run.id,
    alarm: String(delivered?.data.alarm),
    token: tok.record.id,
  };
}

let dir = "";
let cluster: PostgresCluster | undefined;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "bg-evidence-rows-"));
});
afterAll(async () => {
  await cluster?.stop();
  await rm(dir, { recursive: true, force: true });
});

it("names the broker-state keys the way their writers do", () => {
  expect(STATE_KEYS.idpDeclared).toBe(IDP_DECLARED_STATE);
  expect(`${STATE_KEYS.rotationPrefix}box`).toBe(rotationStateKey("target:box"));
});

for (const backend of ["sqlite", "postgres"] as const) {
  describe(`${backend}: audit verify holds every evidence row to its events`, () => {
    let db: Db;
    let publicKey = "";
    /** The seq of each event a case names. */
    const seqOf = new Map<string, number>();
    const verify = () => verifyStoreChain(db.store, loadPublicKeys([publicKey]).verifySignature);

    beforeAll(async () => {
      const home = join(dir, backend);
      await import("node:fs/promises").then((fs) => fs.mkdir(home));
      let url = "";
      let adminUrl = "";
      if (backend === "postgres") {
        cluster ??= await startPostgres();
        adminUrl = await createDatabase(cluster.adminUrl, "evidence", { owner: APP_ROLE });
        url = withDatabase(cluster.url, "evidence");
      }
      const t = await startTestBroker({
        dir: home,
        storage: backend === "sqlite" ? { driver: "sqlite" } : { driver: "postgres", url },
        config: DRILLS,
      });
      const broker = t.broker;
      publicKey = broker.signingKey.publicKeyPem;
      const recorded = await recordEvidence(broker);
      for (const [k, v] of recorded.seqOf) seqOf.set(k, v);
      target.terminal_sessions = { key: "id", id: recorded.terminal };
      target.drill_runs = { key: "id", id: recorded.drill };
      target.alarms = { key: "id", id: recorded.alarm };
      target.tokens = { key: "id", id: recorded.token };
      target.broker_state = { key: "key", id: "config" };
      await t.stop();

      // Verification reads a store of its own (no worker touches the rows while the cases edit them).
      if (backend === "sqlite") {
        const path = join(home, "breakglass.db");
        const raw = <T>(fn: (d: BetterSqlite3.Database) => T): T => {
          const d = new BetterSqlite3(path);
          try {
            return fn(d);
          } finally {
            d.close();
          }
        };
        db = {
          store: await createSqliteStore({ path }),
          exec: async (sql) => void raw((d) => d.exec(sql)),
          rows: async (sql) => raw((d) => d.prepare(sql).all() as Row[]),
          columns: async (table) =>
            raw((d) => (d.prepare(`PRAGMA table_info(${table})`).all() as { name: string }[]).map((c) => c.name)),
          restore: async (table, where, rows) =>
            raw((d) => {
              d.exec(`DELETE FROM ${table} WHERE ${where}`);
              for (const r of rows) {
                const keys = Object.keys(r);
                d.prepare(
                  `INSERT INTO ${table} (${keys.join(", ")}) VALUES (${keys.map((k) => `@${k}`).join(", ")})`,
                ).run(r);
              }
            }),
        };
      } else {
        const query = async (sql: string, params: unknown[] = []) => {
          const client = new pg.Client({ connectionString: adminUrl.replace(/\/[^/]*$/, "/evidence") });
          await client.connect();
          try {
            return await client.query(sql, params);
          } finally {
            await client.end();
          }
        };
        db = {
          store: await createPostgresStore({ url, poolSize: 2 }),
          exec: async (sql) => void (await query(sql)),
          rows: async (sql) => (await query(sql)).rows as Row[],
          columns: async (table) =>
            (
              await query(
                "SELECT column_name AS name FROM information_schema.columns WHERE table_name = $1 ORDER BY ordinal_position",
                [table],
              )
            ).rows.map((r: { name: string }) => r.name),
          restore: async (table, where, rows) => {
            await query(`DELETE FROM ${table} WHERE ${where}`);
            for (const r of rows) {
              const keys = Object.keys(r);
              await query(
                `INSERT INTO ${table} (${keys.map((k) => `"${k}"`).join(", ")}) VALUES (${keys.map((_, i) => `$${i + 1}`).join(", ")})`,
                keys.map((k) => r[k]),
              );
            }
          },
        };
      }
      target.vault_openings = { key: "id", id: "vo_e0a1_1" };
    }, 120_000);
    afterAll(() => db?.store.close());

    it("verifies the untouched rows, and has a case for every column of every evidence table", async () => {
      const verdict = await verify();
      expect(verdict, formatVerdict(verdict)).toMatchObject({ ok: true });
      for (const table of Object.keys(CASES)) {
        expect((await db.columns(table)).sort(), table).toEqual(Object.keys(CASES[table] ?? {}).sort());
      }
    });

    const edits = Object.entries(CASES).flatMap(([table, columns]) =>
      Object.entries(columns).flatMap(([column, cases]) => cases.map((c) => ({ table, column, ...c }))),
    );
    for (const { table, column, set, expect: want } of edits) {
      it(`${table}.${column}: ${set}`, async () => {
        const t = target[table] as { key: string; id: string };
        // The review edits are on the reviewed opening; the rest on the one whose alarm was delivered late.
        const id = table === "vault_openings" && column === "review" ? "vo_e0a1_2" : t.id;
        const where = `${t.key} = '${id}'`;
        const saved = await db.rows(`SELECT * FROM ${table} WHERE ${where}`);
        expect(saved).toHaveLength(1);
        await db.exec(`UPDATE ${table} SET ${set} WHERE ${where}`);
        try {
          const verdict = await verify();
          if ("notEvidence" in want) {
            expect(verdict, formatVerdict(verdict)).toMatchObject({ ok: true });
            return;
          }
          const seq = seqOf.get(want.at);
          expect(verdict, formatVerdict(verdict)).toMatchObject({
            ok: false,
            seq,
            problem: want.problem,
            column: want.column,
          });
          expect(formatVerdict(verdict)).toContain(
            `FAILED at seq ${seq}${want.column ? `, column ${want.column}` : ""}`,
          );
        } finally {
          // A key edit moved the row: put back what is now under the edited key.
          const moved = column === t.key ? /= '([^']*)'/.exec(set)?.[1] : undefined;
          await db.restore(table, moved === undefined ? where : `${t.key} = '${moved}'`, saved);
        }
        expect(await verify()).toMatchObject({ ok: true });
      });
    }

    for (const { key, set, at } of STATE_CASES) {
      it(`broker_state ${at}: ${set}`, async () => {
        const where = `key = '${key()}'`;
        const saved = await db.rows(`SELECT * FROM broker_state WHERE ${where}`);
        await db.exec(`UPDATE broker_state SET ${set} WHERE ${where}`);
        try {
          expect(await verify()).toMatchObject({
            ok: false,
            seq: seqOf.get(at),
            problem: "broker_state_mismatch",
            column: "broker_state.value",
          });
        } finally {
          await db.restore("broker_state", where, saved);
        }
      });
    }

    it("finds rows added behind the broker's back", async () => {
      const [run] = await db.rows(`SELECT * FROM drill_runs WHERE id = '${target.drill_runs?.id}'`);
      await db.restore("drill_runs", "id = 'd_invented'", [{ ...run, id: "d_invented", result: "passed" }]);
      try {
        expect(await verify()).toMatchObject({
          ok: false,
          seq: 0,
          problem: "drill_run_unaccounted",
          message: expect.stringContaining("d_invented"),
        });
      } finally {
        await db.exec("DELETE FROM drill_runs WHERE id = 'd_invented'");
      }
    });

    it("finds an activation alarm that was never delivered shown as delivered", async () => {
      // The same activation's alarm to a channel that never took it (failed for good), then forged delivered.
      const [row] = await db.rows(`SELECT * FROM alarms WHERE id = '${target.alarms?.id}'`);
      const id = `a_${seqOf.get("activation")}_nowhere`;
      await db.restore("alarms", `id = '${id}'`, [
        {
          ...row,
          id,
          channel: "nowhere",
          payload: String(row?.payload).replace(String(target.alarms?.id), id),
          state: "failed",
          delivered_at: null,
          last_error: "channel down",
        },
      ]);
      try {
        expect(await verify()).toMatchObject({ ok: true });
        await db.exec(`UPDATE alarms SET state = 'delivered', delivered_at = created_at + 5 WHERE id = '${id}'`);
        expect(await verify()).toMatchObject({
          ok: false,
          seq: seqOf.get("activation"),
          problem: "alarm_mismatch",
          column: "alarms.state",
          message: expect.stringContaining(id),
        });
      } finally {
        await db.exec(`DELETE FROM alarms WHERE id = '${id}'`);
      }
    });
  });
}

describe("the pages, the story and the evidence report flag what verification would reject", () => {
  let t: TestBroker;
  let broker: Broker;
  let home = "";
  let erin = "";
  let rec: Awaited<ReturnType<typeof recordEvidence>>;
  const tamper = (sql: string) => {
    const raw = new BetterSqlite3(join(home, "breakglass.db"));
    try {
      raw.exec(sql);
    } finally {
      raw.close();
    }
  };
  // biome-ignore lint/suspicious/noExplicitAny: responses are checked with expect(), field by field
  const get = async (url: string): Promise<any> => {
    const res = await broker.http.inject({
      method: "GET",
      url: `/api/v1${url}`,
      headers: { authorization: `Bearer ${erin}` },
    });
    expect(res.statusCode, res.body).toBe(200);
    return res.json();
  };
  const edited = (column: string) => ({
    columns: expect.arrayContaining([column]),
    message: expect.stringContaining(`${column.split(".").slice(1).join(".")} column says`),
  });

  beforeAll(async () => {
    t = await startTestBroker({ config: DRILLS });
    ({ broker, dir: home } = t);
    rec = await recordEvidence(broker);
    erin = (await broker.tokens.create(ctx("erin"), { user: "erin", description: "reads" })).token.reveal();
  }, 60_000);
  afterAll(async () => {
    await t?.stop();
  });

  it("shows the untouched rows unflagged; activation deliveries covered, the others not", async () => {
    const story = await get(`/grants/${rec.grant}/story`);
    for (const a of story.alarms) {
      expect(a.integrity).toBeNull();
      expect(a.deliveryCovered).toBe(a.event === "grant.emergency_activated");
    }
    expect(story.recording.sessions.find((s: { session: string }) => s.session === rec.terminal).integrity).toBeNull();
    expect((await get(`/drills/runs/${rec.drill}`)).integrity).toBeNull();
    expect(
      (await get("/reviews")).vaultOpenings.map((o: { opening: { integrity: unknown } }) => o.opening.integrity),
    ).toEqual([null]);
  });

  it("the story: an activation alarm forged undelivered is shown as the chain has it, and flagged", async () => {
    tamper(`UPDATE alarms SET state = 'failed', delivered_at = NULL WHERE id = '${rec.alarm}'`);
    const story = await get(`/grants/${rec.grant}/story`);
    const alarm = story.alarms.find((a: { id: string }) => a.id === rec.alarm);
    expect(alarm).toMatchObject({
      state: "delivered",
      deliveredAt: expect.any(String),
      deliveryCovered: true,
      integrity: edited("alarms.state"),
    });
    const grant = await get(`/grants/${rec.grant}`);
    expect(grant.alarms.find((a: { id: string }) => a.id === rec.alarm)).toMatchObject({
      state: "delivered",
      integrity: expect.any(Object),
    });
  });

  it("the story, the recording list and the player: an edited terminal session is flagged", async () => {
    tamper(`UPDATE terminal_sessions SET command = 'ls' WHERE id = '${rec.terminal}'`);
    const story = await get(`/grants/${rec.grant}/story`);
    expect(
      story.recording.sessions.find((s: { session: string }) => s.session === rec.terminal).integrity,
    ).toMatchObject(edited("terminal_sessions.command"));
    expect((await get(`/terminal/${rec.terminal}`)).session.integrity).toMatchObject(
      edited("terminal_sessions.command"),
    );
    expect((await get(`/grants/${rec.grant}/recording`)).terminalSessions[0].integrity).toMatchObject(
      edited("terminal_sessions.command"),
    );
  });

  it("the review queue: an edited tier-2 opening is flagged", async () => {
    tamper("UPDATE vault_openings SET custodians = '[]' WHERE id = 'vo_e0a1_1'");
    const [o] = (await get("/reviews")).vaultOpenings;
    expect(o.opening.integrity).toMatchObject(edited("vault_openings.custodians"));
  });

  it("the drill pages: an edited time to access is flagged", async () => {
    tamper(`UPDATE drill_runs SET time_to_access_ms = 1 WHERE id = '${rec.drill}'`);
    expect((await get(`/drills/runs/${rec.drill}`)).integrity).toMatchObject(edited("drill_runs.time_to_access_ms"));
    expect((await get("/drills")).drills[0].lastRun.integrity).toMatchObject(edited("drill_runs.time_to_access_ms"));
  });

  it("the evidence report: each edited row flagged on its page, the delivery as the chain has it", async () => {
    const { buildEvidenceReport, reportHtml, reportJson } = await import("../src/audit/evidence-report.js");
    const chain = await verifyStoreChain(
      broker.store,
      loadPublicKeys([broker.signingKey.publicKeyPem]).verifySignature,
    );
    expect(chain.ok).toBe(false);
    const report = await buildEvidenceReport(broker.store, {
      from: 0,
      to: Date.now() + 60_000,
      now: Date.now(),
      chain,
    });
    // biome-ignore lint/suspicious/noExplicitAny: the JSON report is checked field by field
    const json = reportJson(report) as any;
    const access = json.accesses.find((a: { grant: string }) => a.grant === rec.grant);
    expect(access.activationAlarms).toEqual([
      expect.objectContaining({ state: "delivered", coveredByVerification: true }),
    ]);
    expect(access.integrity).toEqual(
      expect.arrayContaining([
        expect.stringContaining("alarms.state".slice(7)),
        expect.stringContaining("command column says"),
      ]),
    );
    expect(json.drills.find((d: { run: string }) => d.run === rec.drill).integrity).toEqual([
      expect.stringContaining("time_to_access_ms"),
    ]);
    expect(json.vaultOpenings.find((o: { opening: string }) => o.opening === "vo_e0a1_1").integrity).toEqual([
      expect.stringContaining("custodians column says"),
    ]);
    expect(json.summary.editedRows).toBe(3);
    expect(reportHtml(report)).toContain("EDITED ROWS");
  });
});
