/**
 * Drill runs against the chain. A run's row (`drill_runs`) is what the drill pages, posture and the
 * evidence report show — which drill, who started it and when, whether it passed, its time to
 * access, its timed steps — and `drill.started` (name, scenario, who, when) and `drill.finished`
 * (result, grant, time to access, every step, the end) state each fact, written in the same
 * transaction as the row.
 *
 * While a run is going (or after its broker died mid-run) its steps are not in the chain yet: a
 * running row's steps, grant and time to access are not compared, and readers say so. Runs that
 * finished before `drill.finished` carried the steps are not compared on them.
 */
import { type AuditRecord, parseAuditPayload } from "../core/audit-columns.js";
import type { StoredAuditEvent } from "../core/audit-event.js";
import type { EvidenceReads } from "../core/ports/evidence.js";
import type { DrillRun } from "../core/records.js";
import { gone, type RowDifference, RowFacts, renamedRows, unaccounted } from "./row-check.js";

export type DrillRunStore = Pick<EvidenceReads, "listDrillRuns">;

export const DRILL_EVENTS = ["drill.started", "drill.finished"] as const;

interface Facts {
  started: AuditRecord;
  finished: AuditRecord | null;
}

export class DrillLedger {
  readonly #runs = new Map<string, Facts>();

  /** Call with each event the chain verified (or a reader read), in order. */
  note(event: StoredAuditEvent): void {
    if (event.type !== "drill.started" && event.type !== "drill.finished") return;
    const e = parseAuditPayload(event.payload, event.hash);
    const id = e?.data.run;
    if (e === null || typeof id !== "string") return;
    if (e.type === "drill.started") {
      this.#runs.set(id, { started: e, finished: null });
      return;
    }
    const f = this.#runs.get(id);
    if (f !== undefined) f.finished = e;
  }

  differences(row: DrillRun): RowDifference[] {
    const f = this.#runs.get(row.id);
    if (f === undefined) return [unaccounted("drill_runs", row.id)];
    const c = new RowFacts("drill_runs", row.id);
    const s = f.started;
    c.same("name", row.name, s.data.name, s);
    c.same("scenario", row.scenario, s.data.scenario, s);
    c.same("started_by", row.startedBy, s.actor, s);
    c.same("started_at", row.startedAt, s.at, s);
    const e = f.finished;
    if (e === null) {
      c.same("result", row.result, "running", s);
      c.same("ended_at", row.endedAt, null, s);
      return c.list;
    }
    c.same("result", row.result, e.data.result, e);
    c.same("ended_at", row.endedAt, e.at, e);
    c.same("grant_id", row.grantId, e.data.grantId ?? null, e);
    c.same("time_to_access_ms", row.timeToAccessMs, e.data.timeToAccessMs ?? null, e);
    if (Array.isArray(e.data.steps)) c.same("steps", row.steps, e.data.steps, e);
    return c.list;
  }

  async check(store: DrillRunStore): Promise<RowDifference[]> {
    const rows = await store.listDrillRuns(null, Number.MAX_SAFE_INTEGER);
    const out = rows.flatMap((row) => this.differences(row));
    const seen = new Set(rows.map((r) => r.id));
    for (const [id, f] of this.#runs) if (!seen.has(id)) out.push(gone("drill_runs", id, f.started));
    return renamedRows("drill_runs", rows, out, (row) => this.differences(row));
  }
}

/** Runs, each with what its own events say about its row (for a reader). */
export function drillRunDifferences(
  runs: readonly DrillRun[],
  events: readonly StoredAuditEvent[],
): Map<string, RowDifference[]> {
  const ledger = new DrillLedger();
  for (const e of events) ledger.note(e);
  return new Map(runs.map((r) => [r.id, ledger.differences(r)]));
}

/** Whether a run's steps are sealed in the chain yet (a running run's are not). */
export const drillSealed = (run: DrillRun): boolean => run.result !== "running";
