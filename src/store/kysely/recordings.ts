/** Recordings, over Kysely: the gateway's logins and statements, terminal sessions and their events. */
import type { Selectable } from "kysely";
import type { GatewayReads, GatewayWrites, TerminalReads, TerminalWrites } from "../../core/ports/recordings.js";
import type { TerminalEvent, TerminalSession } from "../../core/records.js";
import { byStart, unpackStatements } from "../../core/statement-batch.js";
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
          .selectFrom("statement_batches")
          .select(["grant_id", "session_id", "first_seq", "entries"])
          .where("grant_id", "=", grantId)
          .execute();
        return rows
          .flatMap((r) =>
            unpackStatements({
              grantId: r.grant_id,
              sessionId: r.session_id,
              firstSeq: r.first_seq,
              entries: r.entries,
            }),
          )
          .sort(byStart);
      }),
  };
}

export function gatewayWrites({ run }: StoreScope): GatewayWrites {
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

    insertStatementBatches: (batches) =>
      run("insertStatementBatches", async (db) => {
        // At most 500 rows (3,000 parameters) a statement, well within either database's limit.
        for (let i = 0; i < batches.length; i += 500) {
          await db
            .insertInto("statement_batches")
            .values(
              batches.slice(i, i + 500).map((b) => ({
                grant_id: b.grantId,
                session_id: b.sessionId,
                first_seq: b.firstSeq,
                last_seq: b.lastSeq,
                started_at: b.startedAt,
                entries: b.entries,
              })),
            )
            .onConflict((oc) => oc.columns(["session_id", "first_seq"]).doNothing())
            .execute();
        }
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
          .selectFrom("statement_batches")
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
