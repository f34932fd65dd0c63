/** Recordings, over Kysely: the gateway's logins and statements, terminal sessions and their events. */
import { type Selectable, sql } from "kysely";
import type { GatewayReads, GatewayWrites, TerminalReads, TerminalWrites } from "../../core/ports/recordings.js";
import type { StatementRecord, TerminalEvent, TerminalSession } from "../../core/records.js";
import type { Database } from "../schema.js";
import { type Db, flag, isSet, type StoreScope, upsert } from "./plumbing.js";

/** Terminal events per INSERT (five parameters each). */
const EVENT_CHUNK = 1000;

export function gatewayReads({ run }: StoreScope): GatewayReads {
  return {
    findGatewayLogin: (user) =>
      run("findGatewayLogin", async (db) => {
        const row = await db.selectFrom("gateway_logins").selectAll().where("user_name", "=", user).executeTakeFirst();
        return row
          ? { grantId: row.grant_id, user: row.user_name, verifier: row.verifier, upstream: row.upstream }
          : null;
      }),

    listStatements: (grantId) =>
      run("listStatements", async (db) => {
        const rows = await db
          .selectFrom("session_statements")
          .selectAll()
          .where("grant_id", "=", grantId)
          .orderBy("started_at")
          .orderBy("session_id")
          .orderBy("seq")
          .execute();
        return rows.map(statementFromRow);
      }),
  };
}

export function gatewayWrites({ run, dialect }: StoreScope): GatewayWrites {
  return {
    saveGatewayLogin: (login, at) =>
      run("saveGatewayLogin", async (db) => {
        const values = { verifier: login.verifier, upstream: login.upstream, updated_at: at };
        await upsert(
          db,
          "gateway_logins",
          { grant_id: login.grantId, user_name: login.user, ...values },
          { key: "grant_id", update: values },
        );
      }),

    insertStatements: (statements) =>
      run("insertStatements", async (db) => {
        if (statements.length === 0) return;
        // One parameter, the batch as JSON, unpacked by the database: no per-row statement building
        // on the gateway's thread (a batch of 1,000 costs one JSON.stringify).
        const json = JSON.stringify(
          statements.map((s) => [
            s.grantId,
            s.sessionId,
            s.seq,
            s.startedAt,
            s.endedAt,
            s.kind,
            s.text,
            s.params === null ? null : JSON.stringify(s.params),
            s.rows,
            s.tag,
            s.error,
            s.bytes,
          ]),
        );
        const columns = sql.raw(
          "grant_id, session_id, seq, started_at, ended_at, kind, text, params, rows, tag, error, bytes",
        );
        const source =
          dialect === "postgres"
            ? sql`SELECT v->>0, v->>1, (v->>2)::int, (v->>3)::bigint, (v->>4)::bigint, v->>5, v->>6, v->>7, (v->>8)::bigint, v->>9, v->>10, (v->>11)::bigint FROM jsonb_array_elements(${json}::jsonb) AS v`
            : sql`SELECT value->>0, value->>1, value->>2, value->>3, value->>4, value->>5, value->>6, value->>7, value->>8, value->>9, value->>10, value->>11 FROM json_each(${json})`;
        await sql`INSERT INTO session_statements (${columns}) ${source}`.execute(db);
      }),
  };
}

export function terminalReads(scope: StoreScope): TerminalReads {
  const { run } = scope;
  return {
    getTerminalSession: getTerminalSession(scope),
    readTerminalEvents: readTerminalEvents(scope),

    listTerminalSessions: (grantId) =>
      run("listTerminalSessions", async (db) => {
        const rows = await db
          .selectFrom("terminal_sessions")
          .selectAll()
          .$if(grantId !== null, (q) => q.where("grant_id", "=", grantId as string))
          .orderBy("started_at")
          .orderBy("id")
          .execute();
        return rows.map(terminalFromRow);
      }),

    listRecordings: () =>
      run("listRecordings", async (db) => {
        const terminals = await db.selectFrom("terminal_sessions").select(["id", "grant_id"]).execute();
        // Events without a session row too: a recording is whatever rows there are.
        const orphans = await db
          .selectFrom("terminal_events")
          .select("session_id")
          .distinct()
          .where("session_id", "not in", (q) => q.selectFrom("terminal_sessions").select("id"))
          .execute();
        const gateway = await db
          .selectFrom("session_statements")
          .select(["session_id", "grant_id"])
          .distinct()
          .execute();
        return [
          ...terminals.map((r) => ({ kind: "terminal" as const, sessionId: r.id, grantId: r.grant_id })),
          ...orphans.map((r) => ({ kind: "terminal" as const, sessionId: r.session_id, grantId: null })),
          ...gateway.map((r) => ({ kind: "gateway" as const, sessionId: r.session_id, grantId: r.grant_id })),
        ];
      }),
  };
}

export function terminalWrites(scope: StoreScope): TerminalWrites {
  const { run, dialect } = scope;
  return {
    // As they are inside the transaction (the caller holds the grant's lock).
    getTerminalSession: getTerminalSession(scope),
    readTerminalEvents: readTerminalEvents(scope),

    saveTerminalSession: (t) =>
      run("saveTerminalSession", async (db) => {
        const end = { ended_at: t.endedAt, end_reason: t.endReason };
        await upsert(
          db,
          "terminal_sessions",
          {
            id: t.id,
            grant_id: t.grantId,
            command: t.command,
            width: t.width,
            height: t.height,
            record_input: flag(dialect, t.recordInput),
            started_at: t.startedAt,
            ...end,
          },
          { key: "id", update: end },
        );
      }),

    appendTerminalEvents: (sessionId, events) =>
      run("appendTerminalEvents", async (db) => {
        for (let i = 0; i < events.length; i += EVENT_CHUNK) {
          const rows = events.slice(i, i + EVENT_CHUNK).map((e) => ({
            session_id: sessionId,
            seq: e.seq,
            t_ms: Math.round(e.t * 1000),
            kind: e.kind,
            data: e.data,
          }));
          // A seq already stored is a client's retry: keep what is there.
          await upsert(db, "terminal_events", rows, { key: ["session_id", "seq"], update: "nothing" });
        }
      }),
  };
}

function getTerminalSession({ run }: StoreScope): (id: string) => Promise<TerminalSession | null> {
  return (id) =>
    run("getTerminalSession", async (db) => {
      const row = await db.selectFrom("terminal_sessions").selectAll().where("id", "=", id).executeTakeFirst();
      return row ? terminalFromRow(row) : null;
    });
}

function readTerminalEvents({ run }: StoreScope): (sessionId: string) => Promise<TerminalEvent[]> {
  return (sessionId) => run("readTerminalEvents", (db) => terminalEvents(db, sessionId));
}

async function terminalEvents(db: Db, sessionId: string): Promise<TerminalEvent[]> {
  const rows = await db
    .selectFrom("terminal_events")
    .selectAll()
    .where("session_id", "=", sessionId)
    .orderBy("seq")
    .execute();
  return rows.map((r) => ({ seq: r.seq, t: r.t_ms / 1000, kind: r.kind as TerminalEvent["kind"], data: r.data }));
}

function terminalFromRow(r: Selectable<Database["terminal_sessions"]>): TerminalSession {
  return {
    id: r.id,
    grantId: r.grant_id,
    command: r.command,
    width: r.width,
    height: r.height,
    recordInput: isSet(r.record_input),
    startedAt: r.started_at,
    endedAt: r.ended_at,
    endReason: r.end_reason,
  };
}

function statementFromRow(r: Selectable<Database["session_statements"]>): StatementRecord {
  return {
    grantId: r.grant_id,
    sessionId: r.session_id,
    seq: r.seq,
    startedAt: r.started_at,
    endedAt: r.ended_at,
    kind: r.kind as StatementRecord["kind"],
    text: r.text,
    params: r.params === null ? null : (JSON.parse(r.params) as (string | null)[]),
    rows: r.rows,
    tag: r.tag,
    error: r.error,
    bytes: r.bytes,
  };
}
