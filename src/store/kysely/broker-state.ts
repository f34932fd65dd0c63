/** The broker's own bookkeeping, over Kysely: named state, leases of processes that are gone, monitoring counts. */
import { type RawBuilder, sql } from "kysely";
import type { Leases, StateReads, StateWrites, StoreStats } from "../../core/ports/broker-state.js";
import { LEASED_ACCESS } from "./grants.js";
import { type StoreScope, upsert } from "./plumbing.js";

/** The first key of the session advisory lock each PostgreSQL broker process holds while alive ("BGLS"). */
export const LEASE_LOCK_CLASS = 1112951891;

/**
 * How a lease's owner is known to be alive. `lock`: it holds the session advisory lock
 * (LEASE_LOCK_CLASS, hashtext(owner)) — PostgreSQL. `self`: only this process is alive — SQLite,
 * one broker per file.
 */
export type Liveness = "lock" | "self";

export function stateReads({ run }: StoreScope): StateReads {
  return {
    readState: (key) =>
      run("readState", async (db) => {
        const row = await db.selectFrom("broker_state").select("value").where("key", "=", key).executeTakeFirst();
        return row === undefined || row.value === "" ? null : row.value;
      }),

    listState: (prefix) =>
      run("listState", async (db) => {
        const rows = await db.selectFrom("broker_state").select(["key", "value"]).orderBy("key").execute();
        // Filtered here: LIKE treats `_` and `%` in a prefix as wildcards.
        return rows.filter((r) => r.key.startsWith(prefix));
      }),
  };
}

export function stateWrites({ run, dialect }: StoreScope): StateWrites {
  return {
    swapState: (key, value, at) =>
      run("swapState", async (db) => {
        // Insert-if-missing first: a concurrent first start waits for this row instead of both
        // reading "nothing" and both reporting a change.
        await upsert(db, "broker_state", { key, value: "", updated_at: at }, { key: "key", update: "nothing" });
        const row = await db
          .selectFrom("broker_state")
          .select("value")
          .where("key", "=", key)
          .$if(dialect === "postgres", (q) => q.forUpdate())
          .executeTakeFirstOrThrow();
        await db.updateTable("broker_state").set({ value, updated_at: at }).where("key", "=", key).execute();
        return row.value === "" ? null : row.value;
      }),
  };
}

export function leases({ run, owner }: StoreScope, liveness: Liveness): Leases {
  /** The lease's owner is another broker process, and it is gone. */
  const gone = (leaseOwner: RawBuilder<unknown>) =>
    liveness === "lock"
      ? sql`${leaseOwner} <> ${owner ?? ""} AND hashtext(${leaseOwner})::oid NOT IN (SELECT l.objid
           FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted AND l.classid = ${LEASE_LOCK_CLASS}::oid AND l.objsubid = 2)`
      : sql`${leaseOwner} <> ${owner ?? ""}`;
  return {
    reclaimLeases: (now) =>
      run("reclaimLeases", async (db) => {
        const grants = await sql`UPDATE grants
          SET access_next_at = ${now}, due_at = ${now}, lease_owner = NULL, version = version + 1
          WHERE access IN (${sql.join([...LEASED_ACCESS])}) AND lease_owner IS NOT NULL
            AND access_next_at > ${now} AND ${gone(sql.ref("grants.lease_owner"))}`.execute(db);
        const alarms = await sql`UPDATE alarms SET next_at = ${now}, lease_owner = NULL
          WHERE state = 'queued' AND lease_owner IS NOT NULL AND next_at > ${now}
            AND ${gone(sql.ref("alarms.lease_owner"))}`.execute(db);
        return Number(grants.numAffectedRows ?? 0) + Number(alarms.numAffectedRows ?? 0);
      }),
  };
}

export function storeStats({ run }: StoreScope): StoreStats {
  return {
    stats: () =>
      run("stats", async (db) => {
        const active = await db
          .selectFrom("grants")
          .select(["role_id", (eb) => eb.fn.countAll<number>().as("n")])
          .where("state", "=", "active")
          .groupBy("role_id")
          .orderBy("role_id")
          .execute();
        const alarms = await db
          .selectFrom("alarms")
          .select(["channel", "state", (eb) => eb.fn.countAll<number>().as("n")])
          .groupBy(["channel", "state"])
          .orderBy("channel")
          .orderBy("state")
          .execute();
        const failing = await db
          .selectFrom("grants")
          .select((eb) => eb.fn.countAll<number>().as("n"))
          .where("access", "=", "revoking")
          .where("access_attempts", ">", 0)
          .executeTakeFirst();
        return {
          activeByRole: active.map((r) => ({ role: r.role_id, count: Number(r.n) })),
          alarms: alarms.map((r) => ({ channel: r.channel, state: r.state, count: Number(r.n) })),
          revocationsFailing: Number(failing?.n ?? 0),
        };
      }),
  };
}
