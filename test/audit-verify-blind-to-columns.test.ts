import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import BetterSqlite3 from "better-sqlite3";
import type { FastifyInstance } from "fastify";
import pg from "pg";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { sha256 } from "../src/adapters/node-crypto.js";
import type { Broker } from "../src/app.js";
import { createAuditLog } from "../src/audit/audit-log.js";
import { formatVerdict, verifyStoreChain } from "../src/audit/audit-verify.js";
import { generateSigningKey, loadPublicKeys, type SigningKey } from "../src/audit/signing-key.js";
import type { AuditEventDraft } from "../src/core/audit-event.js";
import type { Store } from "../src/core/ports/store.js";
import { createPostgresStore } from "../src/store/postgres-store.js";
import { createSqliteStore } from "../src/store/sqlite-store.js";
import { createCheckpointWorker } from "../src/workers/checkpoint-worker.js";
import { makeAuditDraft } from "./support/core-fixtures.js";
import { ctx } from "./support/ctx.js";
import {
  APP_ROLE,
  createDatabase,
  type PostgresCluster,
  startPostgres,
  withDatabase,
} from "./support/postgres-cluster.js";
import { startTestBroker, type TestBroker } from "./support/test-broker.js";

const T0 = 1_767_225_600_000;

function draft(i: number): AuditEventDraft {
  return makeAuditDraft({
    type: i % 2 ? "grant.emergency_activated" : "grant.revoked",
    actor: i % 2 ? "alice" : "bob",
    at: T0 + i * 1000,
    grantId: `g_${i % 5}`,
    justification: "replica lag",
    // Nested keys named like the top-level ones must not fool the column check.
    data: { grant: "g_decoy", seq: 999, actor: "decoy", n: i },
  });
}

interface Db {
  store: Store;
  exec(sql: string): Promise<void>;
  columns(table: string): Promise<string[]>;
  close(): Promise<void>;
}

interface Backend {
  name: string;
  setup(): Promise<void>;
  teardown(): Promise<void>;
  fresh(): Promise<Db>;
}

let dir = "";
let cluster: PostgresCluster | undefined;
let n = 0;

const sqlite: Backend = {
  name: "sqlite",
  async setup() {},
  async teardown() {},
  async fresh() {
    const path = join(dir, `t${++n}.db`);
    const store = await createSqliteStore({ path });
    const raw = (fn: (db: BetterSqlite3.Database) => unknown) => {
      const db = new BetterSqlite3(path);
      try {
        return fn(db);
      } finally {
        db.close();
      }
    };
    return {
      store,
      exec: async (sql) => void raw((db) => db.exec(sql)),
      columns: async (table) =>
        raw((db) =>
          (db.prepare(`PRAGMA table_info(${table})`).all() as { name: string }[]).map((c) => c.name),
        ) as string[],
      close: () => store.close(),
    };
  },
};

const postgres: Backend = {
  name: "postgres",
  async setup() {
    cluster = await startPostgres();
  },
  async teardown() {
    await cluster?.stop();
  },
  async fresh() {
    if (!cluster) throw new Error("no cluster");
    const name = `t${++n}`;
    const adminUrl = await createDatabase(cluster.adminUrl, name, { owner: APP_ROLE });
    const store = await createPostgresStore({ url: withDatabase(cluster.url, name), poolSize: 2 });
    const query = async (sql: string) => {
      const client = new pg.Client({ connectionString: adminUrl });
      await client.connect();
      try {
        return await client.query(sql);
      } finally {
        await client.end();
      }
    };
    return {
      store,
      exec: async (sql) => void (await query(sql)),
      columns: async (table) =>
        (
          await query(
            `SELECT column_name AS name FROM information_schema.columns WHERE table_name = '${table}' ORDER BY ordinal_position`,
          )
        ).rows.map((r: { name: string }) => r.name),
      close: () => store.close(),
    };
  },
};

/** One edit per column of `audit_events`, each of event 42 only; what verification must name. */
const AUDIT_TAMPERS: Record<string, { sql: string; problem: string }[]> = {
  seq: [{ sql: "UPDATE audit_events SET seq = 1000 WHERE seq = 42", problem: "reordered" }],
  at: [{ sql: "UPDATE audit_events SET at = at + 3600000 WHERE seq = 42", problem: "column_mismatch" }],
  // An emergency activation shown as a normal one.
  type: [{ sql: "UPDATE audit_events SET type = 'grant.activated' WHERE seq = 41", problem: "column_mismatch" }],
  // A revoke by 'mallory'.
  actor: [{ sql: "UPDATE audit_events SET actor = 'mallory' WHERE seq = 42", problem: "column_mismatch" }],
  // An event moved out of its grant's story, or out of every story.
  grant_id: [
    { sql: "UPDATE audit_events SET grant_id = 'g_elsewhere' WHERE seq = 42", problem: "column_mismatch" },
    { sql: "UPDATE audit_events SET grant_id = NULL WHERE seq = 42", problem: "column_mismatch" },
  ],
  payload: [
    {
      sql: `UPDATE audit_events SET payload = replace(payload, '"INC-7"', '"INC-8"') WHERE seq = 42`,
      problem: "modified",
    },
  ],
  hash: [{ sql: `UPDATE audit_events SET hash = '${"f".repeat(64)}' WHERE seq = 42`, problem: "modified" }],
};

/** One edit per column of `audit_checkpoints` (the one at 120): the signature covers every one. */
const CHECKPOINT_TAMPERS: Record<string, { sql: string; seq: number; problem: string }> = {
  seq: { sql: "UPDATE audit_checkpoints SET seq = 100 WHERE seq = 120", seq: 100, problem: "bad_signature" },
  hash: { sql: `UPDATE audit_checkpoints SET hash = '${"a".repeat(64)}'`, seq: 120, problem: "bad_signature" },
  at: { sql: "UPDATE audit_checkpoints SET at = at + 1", seq: 120, problem: "bad_signature" },
  key_id: { sql: "UPDATE audit_checkpoints SET key_id = 'k-forged'", seq: 120, problem: "unknown_key" },
  signature: {
    sql: "UPDATE audit_checkpoints SET signature = 'AAAA'",
    seq: 120,
    problem: "bad_signature",
  },
};

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "bg-audit-columns-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

for (const backend of [sqlite, postgres]) {
  describe(`${backend.name}: audit verify sees every column`, () => {
    let db: Db;
    let signer: SigningKey;
    const verify = () => verifyStoreChain(db.store, loadPublicKeys([signer.publicKeyPem]).verifySignature);

    beforeAll(() => backend.setup(), 60_000);
    afterAll(() => backend.teardown());
    beforeEach(async () => {
      db = await backend.fresh();
      signer = generateSigningKey(join(dir, `key-${++n}.pem`));
      const audit = createAuditLog({ sha256 });
      await db.store.transaction((tx) =>
        audit.append(
          tx,
          Array.from({ length: 120 }, (_, i) => draft(i + 1)),
        ),
      );
      const clock = { now: () => T0 + 10_000_000 };
      await createCheckpointWorker({ store: db.store, signer, clock, intervalMs: 60_000, everyEvents: 100 }).runOnce();
      await db.store.transaction((tx) =>
        audit.append(
          tx,
          Array.from({ length: 30 }, (_, i) => draft(121 + i)),
        ),
      );
      return () => db.close();
    });

    it("has a tamper case for every column of audit_events and audit_checkpoints", async () => {
      expect((await db.columns("audit_events")).sort()).toEqual(Object.keys(AUDIT_TAMPERS).sort());
      expect((await db.columns("audit_checkpoints")).sort()).toEqual(Object.keys(CHECKPOINT_TAMPERS).sort());
      expect(await verify()).toMatchObject({ ok: true, eventsChecked: 150 });
    });

    for (const [column, cases] of Object.entries(AUDIT_TAMPERS)) {
      for (const { sql, problem } of cases) {
        it(`names the ${column} column: ${sql}`, async () => {
          await db.exec(sql);
          const seq = column === "type" ? 41 : 42;
          const verdict = await verify();
          expect(verdict).toMatchObject({ ok: false, seq, problem, column });
          expect(formatVerdict(verdict)).toContain(`FAILED at seq ${seq}, column ${column}`);
        });
      }
    }

    it("says what the column and the payload each say", async () => {
      await db.exec("UPDATE audit_events SET actor = 'mallory' WHERE seq = 42");
      const verdict = await verify();
      expect(verdict.ok || verdict.message).toBe(`event 42's actor column says "mallory" but its payload says "bob"`);
    });

    for (const [column, { sql, seq, problem }] of Object.entries(CHECKPOINT_TAMPERS)) {
      it(`finds the checkpoint's ${column} changed`, async () => {
        await db.exec(sql);
        expect(await verify()).toMatchObject({ ok: false, seq, problem });
      });
    }
  });
}

describe("the story, the incident and the API show only what verification accepts", () => {
  type User = "alice" | "bob" | "erin";
  let t: TestBroker;
  let broker: Broker;
  let http: FastifyInstance;
  let home = "";
  const tokens = new Map<User, string>();
  let grantId = "";
  const seqOf = new Map<string, number>();

  // biome-ignore lint/suspicious/noExplicitAny: responses are checked with expect(), field by field
  type Json = any;
  async function call(user: User, method: "GET" | "POST", url: string, payload?: Record<string, unknown>) {
    const res = await http.inject({
      method,
      url: `/api/v1${url}`,
      headers: { authorization: `Bearer ${tokens.get(user)}` },
      ...(payload === undefined ? {} : { payload }),
    });
    return { status: res.statusCode, json: res.json() as Json };
  }
  function tamper(sql: string): void {
    const raw = new BetterSqlite3(join(home, "breakglass.db"));
    try {
      raw.exec(sql);
    } finally {
      raw.close();
    }
  }

  beforeAll(async () => {
    t = await startTestBroker({ start: false });
    ({ broker, dir: home } = t);
    for (const user of ["alice", "bob", "erin"] as const) {
      tokens.set(user, await t.token(user));
    }
    http = broker.http;
    await http.ready();
    const req = await call("alice", "POST", "/grants", {
      role: "production/db-admin",
      justification: "primary down, promoting the replica",
      incident: "INC-19",
      emergency: true,
    });
    expect(req.json.state).toBe("active");
    grantId = req.json.id;
    expect((await call("erin", "POST", `/grants/${grantId}/revoke`, { reason: "done" })).json.state).toBe("ended");
    for (const e of await broker.store.readGrantAudit([grantId])) seqOf.set(e.type, e.seq);
    // The insider's edits: a revoke by 'mallory', an emergency activation shown as a normal one.
    tamper(`UPDATE audit_events SET actor = 'mallory' WHERE seq = ${seqOf.get("grant.revoked")};
            UPDATE audit_events SET type = 'grant.activated' WHERE seq = ${seqOf.get("grant.emergency_activated")};`);
  });
  afterAll(async () => {
    await t?.stop();
  });

  const edited = (seq: number | undefined, column: string) => ({
    seq,
    integrity: { problem: "column_mismatch", columns: [column], message: expect.stringContaining(`${column} column`) },
  });

  it("the grant's story: the payload's values, each edited row flagged with its column", async () => {
    const story = await call("erin", "GET", `/grants/${grantId}/story`);
    expect(story.status).toBe(200);
    const timeline: Json[] = story.json.timeline;
    expect(timeline.find((e) => e.type === "grant.revoked")).toMatchObject({
      actor: "erin",
      ...edited(seqOf.get("grant.revoked"), "actor"),
    });
    expect(timeline.find((e) => e.seq === seqOf.get("grant.emergency_activated"))).toMatchObject({
      type: "grant.emergency_activated",
      ...edited(seqOf.get("grant.emergency_activated"), "type"),
    });
    expect(timeline.map((e) => e.actor)).not.toContain("mallory");
    expect(timeline.map((e) => e.type)).not.toContain("grant.activated");
    expect(timeline.filter((e) => e.integrity !== null)).toHaveLength(2);
  });

  it("the incident's timeline and the log browser: the same", async () => {
    const incident = await call("erin", "GET", "/incidents/INC-19");
    expect(incident.status).toBe(200);
    expect(incident.json.timeline.find((e: Json) => e.seq === seqOf.get("grant.revoked"))).toMatchObject({
      type: "grant.revoked",
      actor: "erin",
      ...edited(seqOf.get("grant.revoked"), "actor"),
    });
    const events = await call("erin", "GET", "/audit/events?limit=1000");
    const row = events.json.events.find((e: Json) => e.seq === seqOf.get("grant.emergency_activated"));
    expect(row).toMatchObject({ type: "grant.emergency_activated", ...edited(row.seq, "type") });
    expect(events.json.events.filter((e: Json) => e.integrity !== null)).toHaveLength(2);
    // Paging still checks each row against its neighbours.
    const one = await call("erin", "GET", `/audit/events?from=${seqOf.get("grant.revoked")}&limit=1`);
    expect(one.json.events).toEqual([expect.objectContaining({ actor: "erin", integrity: expect.any(Object) })]);
  });

  it("the store's read paths (workers, the evidence report) read the payload's values", async () => {
    const events = await broker.store.readGrantAudit([grantId]);
    expect(events.map((e) => e.actor)).not.toContain("mallory");
    expect(events.map((e) => e.type)).toContain("grant.emergency_activated");
  });

  it("verification over the API names the first edited row and its column", async () => {
    const verdict = await call("erin", "GET", "/audit/verify");
    const first = Math.min(seqOf.get("grant.revoked") ?? 0, seqOf.get("grant.emergency_activated") ?? 0);
    expect(verdict.json).toMatchObject({ ok: false, failure: { seq: first, problem: "column_mismatch" } });
  });

  it("a row whose payload no longer chains is refused as evidence, naming its seq", async () => {
    const seq = seqOf.get("grant.requested");
    tamper(
      `UPDATE audit_events SET payload = replace(payload, 'promoting the replica', 'routine maintenance') WHERE seq = ${seq}`,
    );
    const story = await call("erin", "GET", `/grants/${grantId}/story`);
    expect(story).toMatchObject({ status: 409, json: { code: "ERR_AUDIT_CHAIN_BROKEN", seq } });
    expect(JSON.stringify(story.json)).not.toContain("routine maintenance");
    expect(await call("erin", "GET", "/incidents/INC-19")).toMatchObject({
      status: 409,
      json: { code: "ERR_AUDIT_CHAIN_BROKEN", seq },
    });
    const events = await call("erin", "GET", "/audit/events?limit=1000");
    expect(events.json.events.find((e: Json) => e.seq === seq).integrity).toMatchObject({ problem: "modified" });
  });
});

describe("grant rows against the events that recorded them", () => {
  let t: TestBroker;
  let broker: Broker;
  let home = "";
  let emergencyId = "";
  let approvedId = "";
  const raw = <T>(fn: (db: BetterSqlite3.Database) => T): T => {
    const db = new BetterSqlite3(join(home, "breakglass.db"));
    try {
      return fn(db);
    } finally {
      db.close();
    }
  };
  const verify = () => verifyStoreChain(broker.store, loadPublicKeys([broker.signingKey.publicKeyPem]).verifySignature);

  beforeAll(async () => {
    t = await startTestBroker({ start: false });
    ({ broker, dir: home } = t);
    const request = {
      roleId: "production/db-admin",
      justification: "primary down",
      incident: "INC-20",
      durationS: 600,
    };
    const e = await broker.service.request(ctx("alice"), { ...request, emergency: true });
    emergencyId = e.id;
    await broker.service.revoke(ctx("erin"), e.id, "done");
    await broker.service.review(ctx("erin"), e.id, { outcome: "unjustified", notes: "no page was open" });
    const a = await broker.service.request(ctx("dave"), request);
    approvedId = a.id;
    await broker.service.approve(ctx("bob"), a.id, "ok");
    await broker.service.approve(ctx("carol"), a.id, null);
    await broker.service.release(ctx("dave"), a.id);
  });
  afterAll(async () => {
    await t?.stop();
  });

  let erin = "";
  it("verifies the untouched rows", async () => {
    expect(await verify()).toMatchObject({ ok: true });
    erin = await t.token("erin");
    const story = await broker.http.inject({
      method: "GET",
      url: `/api/v1/grants/${emergencyId}/story`,
      headers: { authorization: `Bearer ${erin}` },
    });
    expect(story.json()).toMatchObject({ grant: { emergency: true }, grantIntegrity: null });
  });

  // What a person reads of a grant, each edited alone: verification names the grant and the column.
  const cases: [string, string, (id: string) => string][] = [
    ["requester", "emergency", (id) => `UPDATE grants SET requester = 'mallory' WHERE id = '${id}'`],
    ["role_id", "emergency", (id) => `UPDATE grants SET role_id = 'production/db-reader' WHERE id = '${id}'`],
    ["domain", "emergency", (id) => `UPDATE grants SET domain = 'staging' WHERE id = '${id}'`],
    ["target", "emergency", (id) => `UPDATE grants SET target = 'elsewhere' WHERE id = '${id}'`],
    ["justification", "emergency", (id) => `UPDATE grants SET justification = 'routine' WHERE id = '${id}'`],
    ["incident", "emergency", (id) => `UPDATE grants SET incident = 'INC-1' WHERE id = '${id}'`],
    ["requested_at", "emergency", (id) => `UPDATE grants SET requested_at = requested_at - 60000 WHERE id = '${id}'`],
    // An emergency activation shown as a normal one.
    ["emergency", "emergency", (id) => `UPDATE grants SET emergency = 0 WHERE id = '${id}'`],
    ["activated_at", "emergency", (id) => `UPDATE grants SET activated_at = activated_at + 1 WHERE id = '${id}'`],
    ["ended_at", "emergency", (id) => `UPDATE grants SET ended_at = ended_at + 1 WHERE id = '${id}'`],
    ["end_reason", "emergency", (id) => `UPDATE grants SET end_reason = 'expired' WHERE id = '${id}'`],
    ["closed_by", "emergency", (id) => `UPDATE grants SET closed_by = 'mallory' WHERE id = '${id}'`],
    ["state", "emergency", (id) => `UPDATE grants SET state = 'ended' WHERE id = '${id}'`],
    [
      "review.outcome",
      "emergency",
      (id) => `UPDATE grants SET review = replace(review, '"unjustified"', '"justified"') WHERE id = '${id}'`,
    ],
    [
      "review.reviewer",
      "emergency",
      (id) => `UPDATE grants SET review = replace(review, '"erin"', '"mallory"') WHERE id = '${id}'`,
    ],
    ["approved_at", "approved", (id) => `UPDATE grants SET approved_at = approved_at + 1 WHERE id = '${id}'`],
    [
      "approvals (grant_approvals)",
      "approved",
      (id) => `UPDATE grant_approvals SET approver = 'erin' WHERE grant_id = '${id}' AND approver = 'carol'`,
    ],
  ];
  for (const [column, which, sql] of cases) {
    it(`names grants.${column}`, async () => {
      const id = which === "emergency" ? emergencyId : approvedId;
      const saved = raw((db) => ({
        grant: db.prepare("SELECT * FROM grants WHERE id = ?").get(id) as Record<string, unknown>,
        approvals: db.prepare("SELECT * FROM grant_approvals WHERE grant_id = ?").all(id) as Record<string, unknown>[],
      }));
      raw((db) => db.exec(sql(id)));
      try {
        const verdict = await verify();
        expect(verdict).toMatchObject({ ok: false, problem: "grant_mismatch", column: `grants.${column}` });
        expect(verdict.ok || verdict.message).toContain(`grant ${id}'s ${column} column says`);
        // The story says so too, beside the row it shows.
        const story = await broker.http.inject({
          method: "GET",
          url: `/api/v1/grants/${id}/story`,
          headers: { authorization: `Bearer ${erin}` },
        });
        expect(story.json().grantIntegrity).toMatchObject({ column: `grants.${column}` });
      } finally {
        raw((db) => {
          const cols = Object.keys(saved.grant);
          db.prepare(`UPDATE grants SET ${cols.map((c) => `${c} = @${c}`).join(", ")} WHERE id = @id`).run(saved.grant);
          db.prepare("DELETE FROM grant_approvals WHERE grant_id = ?").run(id);
          for (const a of saved.approvals) {
            const keys = Object.keys(a);
            db.prepare(
              `INSERT INTO grant_approvals (${keys.join(", ")}) VALUES (${keys.map((k) => `@${k}`).join(", ")})`,
            ).run(a);
          }
        });
      }
      expect(await verify()).toMatchObject({ ok: true });
    });
  }

  it("finds a grant row with no request in the chain", async () => {
    raw((db) => {
      const row = db.prepare("SELECT * FROM grants WHERE id = ?").get(approvedId) as Record<string, unknown>;
      const forged = { ...row, id: "g_forged", requester: "mallory" };
      const keys = Object.keys(forged);
      db.prepare(`INSERT INTO grants (${keys.join(", ")}) VALUES (${keys.map((k) => `@${k}`).join(", ")})`).run(forged);
    });
    const verdict = await verify();
    expect(verdict).toMatchObject({
      ok: false,
      problem: "grant_unaccounted",
      message: expect.stringContaining("g_forged"),
    });
    raw((db) => db.exec("DELETE FROM grants WHERE id = 'g_forged'"));
  });
});
