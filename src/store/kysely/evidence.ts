/** Evidence kept beside the chain, over Kysely: drill runs and tier-2 vault openings. */
import type { Selectable } from "kysely";
import type { VaultOpening } from "../../core/model.js";
import type { EvidenceReads, EvidenceWrites } from "../../core/ports/evidence.js";
import type { DrillRun, DrillStep } from "../../core/records.js";
import type { Database } from "../schema.js";
import { type StoreScope, upsert } from "./plumbing.js";

export function evidenceReads({ run }: StoreScope): EvidenceReads {
  return {
    getDrillRun: (id) =>
      run("getDrillRun", async (db) => {
        const row = await db.selectFrom("drill_runs").selectAll().where("id", "=", id).executeTakeFirst();
        return row === undefined ? null : drillRunFromRow(row);
      }),

    listDrillRuns: (name, limit) =>
      run("listDrillRuns", async (db) => {
        const rows = await db
          .selectFrom("drill_runs")
          .selectAll()
          .$if(name !== null, (q) => q.where("name", "=", name as string))
          .orderBy("started_at", "desc")
          .orderBy("id", "desc")
          .limit(limit)
          .execute();
        return rows.map(drillRunFromRow);
      }),

    getVaultOpening: (id) =>
      run("getVaultOpening", async (db) => {
        const row = await db.selectFrom("vault_openings").selectAll().where("id", "=", id).executeTakeFirst();
        return row === undefined ? null : vaultOpeningFromRow(row);
      }),

    listVaultOpenings: (unreviewed) =>
      run("listVaultOpenings", async (db) => {
        const rows = await db
          .selectFrom("vault_openings")
          .selectAll()
          .$if(unreviewed, (q) => q.where("review", "is", null))
          .orderBy("opened_at")
          .orderBy("id")
          .execute();
        return rows.map(vaultOpeningFromRow);
      }),
  };
}

export function evidenceWrites({ run }: StoreScope): EvidenceWrites {
  return {
    saveDrillRun: (r) =>
      run("saveDrillRun", (db) =>
        upsert(
          db,
          "drill_runs",
          {
            id: r.id,
            name: r.name,
            scenario: r.scenario,
            started_by: r.startedBy,
            started_at: r.startedAt,
            ended_at: r.endedAt,
            result: r.result,
            grant_id: r.grantId,
            time_to_access_ms: r.timeToAccessMs,
            steps: JSON.stringify(r.steps),
          },
          { key: "id" },
        ),
      ),

    saveVaultOpening: (o) =>
      run("saveVaultOpening", (db) =>
        upsert(
          db,
          "vault_openings",
          {
            id: o.id,
            envelope_id: o.envelopeId,
            envelope_name: o.envelopeName,
            record_seq: o.recordSeq,
            record_hash: o.recordHash,
            opened_at: o.openedAt,
            custodians: JSON.stringify(o.custodians),
            reason: o.reason,
            incident: o.incident,
            imported_at: o.importedAt,
            review_due_at: o.reviewDueAt,
            review: o.review === null ? null : JSON.stringify(o.review),
            // 0/1 on both dialects (an integer column).
            alarm_pending: o.alarmPending ? 1 : 0,
            alarm_delivered_at: o.alarmDeliveredAt,
          },
          { key: "id" },
        ),
      ),
  };
}

function drillRunFromRow(r: Selectable<Database["drill_runs"]>): DrillRun {
  let steps: DrillStep[] = [];
  try {
    const parsed: unknown = JSON.parse(r.steps);
    if (Array.isArray(parsed)) steps = parsed as DrillStep[];
  } catch {
    steps = [];
  }
  return {
    id: r.id,
    name: r.name,
    scenario: r.scenario,
    startedBy: r.started_by,
    startedAt: r.started_at,
    endedAt: r.ended_at,
    result: r.result as DrillRun["result"],
    grantId: r.grant_id,
    timeToAccessMs: r.time_to_access_ms,
    steps,
  };
}

function vaultOpeningFromRow(r: Selectable<Database["vault_openings"]>): VaultOpening {
  return {
    id: r.id,
    envelopeId: r.envelope_id,
    envelopeName: r.envelope_name,
    recordSeq: Number(r.record_seq),
    recordHash: r.record_hash,
    openedAt: Number(r.opened_at),
    custodians: JSON.parse(r.custodians) as VaultOpening["custodians"],
    reason: r.reason,
    incident: r.incident,
    importedAt: Number(r.imported_at),
    reviewDueAt: Number(r.review_due_at),
    review: r.review === null ? null : (JSON.parse(r.review) as VaultOpening["review"]),
    alarmPending: Number(r.alarm_pending) === 1,
    alarmDeliveredAt: r.alarm_delivered_at === null ? null : Number(r.alarm_delivered_at),
  };
}
