/** The audit chain (events, its head) and its signed checkpoints, over Kysely. */
import { type Selectable, sql } from "kysely";
import { storedAuditEvent } from "../../core/audit-columns.js";
import type { LinkedAuditEvent, StoredAuditEvent } from "../../core/audit-event.js";
import { BreakglassError } from "../../core/errors.js";
import type { AuditReads, AuditWrites } from "../../core/ports/audit.js";
import type { Database } from "../schema.js";
import { CHUNK, type Db, guard, type StoreScope } from "./plumbing.js";

export function auditReads({ run }: StoreScope): AuditReads {
  return {
    readGrantAudit: (grantIds) => run("readGrantAudit", (db) => selectGrantAudit(db, grantIds)),

    readNonGrantAudit: (types) => run("readNonGrantAudit", (db) => selectNonGrantAudit(db, types)),

    readAuditAt: (seqs) =>
      run("readAuditAt", async (db) => {
        const out: StoredAuditEvent[] = [];
        const unique = [...new Set(seqs)];
        for (let i = 0; i < unique.length; i += CHUNK) {
          const rows = await db
            .selectFrom("audit_events")
            .selectAll()
            .where("seq", "in", unique.slice(i, i + CHUNK))
            .execute();
          out.push(...rows.map(auditRow));
        }
        return out.sort((a, b) => a.seq - b.seq);
      }),

    readAudit: (fromSeq, limit) =>
      run("readAudit", async (db) => {
        if (limit <= 0) return [];
        const rows = await db
          .selectFrom("audit_events")
          .selectAll()
          .where("seq", ">=", fromSeq)
          .orderBy("seq")
          .limit(limit)
          .execute();
        // Exactly as stored: verification must see tampering, so nothing is checked or repaired here.
        return rows.map(auditRow);
      }),

    readCheckpoints: () =>
      run("readCheckpoints", async (db) => {
        const rows = await db.selectFrom("audit_checkpoints").selectAll().orderBy("seq").execute();
        return rows.map((r) => ({ seq: r.seq, hash: r.hash, at: r.at, keyId: r.key_id, signature: r.signature }));
      }),
  };
}

export function auditWrites({ run, dialect }: StoreScope): AuditWrites {
  return {
    readGrantAudit: (grantIds) => run("readGrantAudit", (db) => selectGrantAudit(db, grantIds)),

    lockAuditHead: () =>
      run("lockAuditHead", async (db) => {
        const row = await db
          .selectFrom("audit_head")
          .select(["seq", "hash"])
          .where("id", "=", 1)
          .$if(dialect === "postgres", (q) => q.forUpdate())
          .executeTakeFirst();
        if (row === undefined) {
          throw new BreakglassError("ERR_STORAGE", "the audit head is missing; the schema was not migrated", {
            operation: "lockAuditHead",
          });
        }
        return { seq: row.seq, hash: row.hash };
      }),

    insertAuditEvents: (events) =>
      run("insertAuditEvents", async (db) => {
        try {
          const first = events[0];
          const last = events[events.length - 1];
          if (first === undefined || last === undefined) return;
          events.forEach((e, i) => {
            if (e.seq !== first.seq + i) throw new Error("audit events are not consecutive");
          });
          for (let i = 0; i < events.length; i += CHUNK) {
            const rows = events.slice(i, i + CHUNK).map((e) => ({
              seq: e.seq,
              at: e.at,
              type: e.type,
              actor: e.actor,
              grant_id: e.grantId,
              payload: e.payload,
              hash: e.hash,
            }));
            await db.insertInto("audit_events").values(rows).execute();
          }
          // Moves only from the head these events were sealed against: a writer that skipped
          // lockAuditHead() or sealed against a stale head cannot fork the chain.
          const moved = await db
            .updateTable("audit_head")
            .set({ seq: last.seq, hash: last.hash })
            .where("id", "=", 1)
            .where("seq", "=", first.seq - 1)
            .executeTakeFirst();
          if (moved.numUpdatedRows !== 1n) throw new Error("the audit head is not where the events were sealed");
        } catch (e) {
          const err = new BreakglassError(
            "ERR_AUDIT_WRITE_FAILED",
            "the audit record could not be written; the action is refused",
            { count: events.length },
          );
          err.cause = e;
          throw err;
        }
      }),

    insertCheckpoint: (checkpoint) =>
      run("insertCheckpoint", async (db) => {
        await guard(
          () =>
            db
              .insertInto("audit_checkpoints")
              .values({
                seq: checkpoint.seq,
                hash: checkpoint.hash,
                at: checkpoint.at,
                key_id: checkpoint.keyId,
                signature: checkpoint.signature,
              })
              .execute(),
          (kind) =>
            kind === "primary"
              ? new BreakglassError("ERR_CONFLICT", `a checkpoint at seq ${checkpoint.seq} exists`, {
                  seq: checkpoint.seq,
                })
              : null,
        );
      }),
  };
}

/** An audit row as stored: payload and hash, and the index columns kept apart from them. */
function auditRow(r: Selectable<Database["audit_events"]>): StoredAuditEvent {
  const columns = { at: Number(r.at), type: r.type, actor: r.actor, grantId: r.grant_id };
  return storedAuditEvent(Number(r.seq), r.payload, r.hash, columns);
}

/**
 * Audit events in seq order, each with the hash of the row before it and the row after it (one
 * lookup by key each), so a reader can check the row against its neighbours: the events of these
 * grants, or the events of these types that belong to no grant.
 */
async function selectLinkedAudit(
  db: Db,
  which: { readonly grantIds: readonly string[] } | { readonly nonGrantTypes: readonly string[] },
): Promise<LinkedAuditEvent[]> {
  const linked = db
    .selectFrom("audit_events as e")
    .leftJoin("audit_events as p", (j) => j.on("p.seq", "=", sql<number>`e.seq - 1`))
    .leftJoin("audit_events as n", (j) => j.on("n.seq", "=", sql<number>`e.seq + 1`))
    .selectAll("e")
    .select(["p.hash as prev_hash", "n.payload as next_payload", "n.hash as next_hash"])
    .orderBy("e.seq");
  const rows = await ("grantIds" in which
    ? linked.where("e.grant_id", "in", [...which.grantIds])
    : linked.where("e.grant_id", "is", null).where("e.type", "in", [...which.nonGrantTypes])
  ).execute();
  return rows.map((r) => ({
    ...auditRow(r),
    prevHash: r.prev_hash,
    next: r.next_payload === null || r.next_hash === null ? null : { payload: r.next_payload, hash: r.next_hash },
  }));
}

/** The audit events of these grants, linked ({@link selectLinkedAudit}). */
function selectGrantAudit(db: Db, grantIds: readonly string[]): Promise<LinkedAuditEvent[]> {
  if (grantIds.length === 0) return Promise.resolve([]);
  return selectLinkedAudit(db, { grantIds });
}

/**
 * Events of these types that belong to no grant (tier-2 openings, drills, the alarm outbox's own),
 * linked ({@link selectLinkedAudit}). Found through `audit_events_grant_id` (its null entries:
 * the non-grant events only, never the grant events that make up most of the log).
 */
function selectNonGrantAudit(db: Db, types: readonly string[]): Promise<LinkedAuditEvent[]> {
  if (types.length === 0) return Promise.resolve([]);
  return selectLinkedAudit(db, { nonGrantTypes: types });
}
