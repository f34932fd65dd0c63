/** The alarm outbox, over Kysely: queued with the events that raise them, claimed and leased for delivery. */
import { sql } from "kysely";
import type { AlarmReads, AlarmWrites } from "../../core/ports/alarms.js";
import type { AlarmRecord, AlarmState } from "../../core/records.js";
import type { Database } from "../schema.js";
import { bulkValues, CHUNK, type StoreScope } from "./plumbing.js";

export function alarmReads({ run }: StoreScope): AlarmReads {
  return {
    listAlarms: (grantId) =>
      run("listAlarms", async (db) => {
        const rows = await db
          .selectFrom("alarms")
          .selectAll()
          .where("grant_id", "=", grantId)
          .orderBy("event_seq")
          .orderBy("channel")
          .execute();
        return rows.map(alarmFromRow);
      }),

    readAlarms: (afterId, limit) =>
      run("readAlarms", async (db) => {
        const rows = await db
          .selectFrom("alarms")
          .selectAll()
          .$if(afterId !== null, (q) => q.where("id", ">", afterId as string))
          .orderBy("id")
          .limit(limit)
          .execute();
        return rows.map(alarmFromRow);
      }),

    listAlarmsOfGrants: (grantIds, eventTypes) =>
      run("listAlarmsOfGrants", async (db) => {
        const out: AlarmRecord[] = [];
        // In slices: a bound parameter per id, well under either database's limit.
        for (let i = 0; i < grantIds.length; i += CHUNK) {
          const rows = await db
            .selectFrom("alarms")
            .selectAll()
            .where("grant_id", "in", grantIds.slice(i, i + CHUNK))
            .$if(eventTypes.length > 0, (q) => q.where("event_type", "in", eventTypes))
            .orderBy("event_seq")
            .orderBy("channel")
            .execute();
          out.push(...rows.map(alarmFromRow));
        }
        return out;
      }),
  };
}

export function alarmWrites({ run, dialect, owner }: StoreScope): AlarmWrites {
  return {
    insertAlarms: (alarms) =>
      run("insertAlarms", async (db) => {
        for (let i = 0; i < alarms.length; i += CHUNK) {
          await db
            .insertInto("alarms")
            .values(alarms.slice(i, i + CHUNK).map(alarmToRow))
            .execute();
        }
      }),

    claimAlarms: (now, limit, excludeChannels = []) =>
      run("claimAlarms", async (db) => {
        if (limit <= 0) return [];
        const rows = await db
          .selectFrom("alarms")
          .selectAll()
          .where("state", "=", "queued")
          .where("next_at", "<=", now)
          .$if(excludeChannels.length > 0, (q) => q.where("channel", "not in", excludeChannels))
          .orderBy("next_at")
          .orderBy("id")
          .limit(limit)
          .$if(dialect === "postgres", (q) => q.forUpdate().skipLocked())
          .execute();
        return rows.map(alarmFromRow);
      }),

    leaseAlarms: (ids, until) =>
      run("leaseAlarms", async (db) => {
        for (let i = 0; i < ids.length; i += CHUNK) {
          await db
            .updateTable("alarms")
            .set({ next_at: until, lease_owner: owner })
            .where("id", "in", ids.slice(i, i + CHUNK))
            .execute();
        }
      }),

    saveAlarms: (alarms) =>
      run("saveAlarms", async (db) => {
        // Only while this process still holds the lease: a result computed from what it claimed
        // must not overwrite the work of a replica that has taken the alarm over since.
        const mine =
          dialect === "postgres"
            ? sql`alarms.lease_owner IS NOT DISTINCT FROM ${owner}`
            : sql`alarms.lease_owner IS ${owner}`;
        let saved = 0;
        for (let i = 0; i < alarms.length; i += CHUNK) {
          const { set, source } = bulkValues(dialect, STATE_COLUMNS, alarms.slice(i, i + CHUNK).map(alarmToRow));
          const result = await sql`UPDATE alarms SET ${set}, lease_owner = NULL FROM ${source}
            WHERE alarms.id = v.id AND alarms.state = 'queued' AND ${mine}`.execute(db);
          saved += Number(result.numAffectedRows ?? 0);
        }
        return saved;
      }),
  };
}

/** The delivery state of an alarm (`saveAlarms`), with PostgreSQL types for `jsonb_to_recordset`. */
const STATE_COLUMNS: readonly (readonly [keyof Database["alarms"], string])[] = [
  ["id", "text"],
  ["state", "text"],
  ["attempts", "integer"],
  ["last_error", "text"],
  ["next_at", "bigint"],
  ["delivered_at", "bigint"],
];

function alarmToRow(a: AlarmRecord): Database["alarms"] {
  return {
    id: a.id,
    channel: a.channel,
    event_seq: a.eventSeq,
    event_type: a.eventType,
    grant_id: a.grantId,
    payload: a.payload,
    state: a.state,
    attempts: a.attempts,
    last_error: a.lastError,
    created_at: a.createdAt,
    next_at: a.nextAt,
    delivered_at: a.deliveredAt,
    lease_owner: null,
  };
}

function alarmFromRow(r: Database["alarms"]): AlarmRecord {
  return {
    id: r.id,
    channel: r.channel,
    eventSeq: Number(r.event_seq),
    eventType: r.event_type,
    grantId: r.grant_id,
    payload: r.payload,
    state: r.state as AlarmState,
    attempts: r.attempts,
    lastError: r.last_error,
    createdAt: Number(r.created_at),
    nextAt: Number(r.next_at),
    deliveredAt: r.delivered_at === null ? null : Number(r.delivered_at),
  };
}
