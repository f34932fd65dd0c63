/**
 * Drills and posture as the API reads them: the configured drills with each one's last run, a
 * drill's history, one run — each run checked against drill.started/drill.finished — and posture
 * (is every break-glass role ready and rehearsed, every credential rotated in time). Starting a
 * drill is the drill service's.
 */
import { drillRunIntegrity, type RowIntegrity } from "../audit/evidence-rows.js";
import type { AlarmsConfig, AppConfig, DrillDef } from "../config/app-config.js";
import { BreakglassError } from "../core/errors.js";
import type { Policy } from "../core/model.js";
import type { AuditReads } from "../core/ports/audit.js";
import type { EvidenceReads } from "../core/ports/evidence.js";
import type { Clock } from "../core/ports/runtime.js";
import type { DrillRun } from "../core/records.js";
import { collectPosture } from "./posture-service.js";
import { rotationStatus } from "./rotation.js";

/** A run with what its events say of its row. */
export interface CheckedDrillRun {
  readonly run: DrillRun;
  readonly integrity: RowIntegrity | null | undefined;
}

export type PostureReport = Awaited<ReturnType<typeof collectPosture>>;

export interface DrillQueries {
  /** Every configured drill with its last run (null before the first). */
  drills(): Promise<{ readonly drill: DrillDef; readonly lastRun: CheckedDrillRun | null }[]>;
  /** A drill's last `limit` runs, newest first. @throws ERR_NOT_FOUND (no such drill is configured) */
  runs(name: string, limit: number): Promise<CheckedDrillRun[]>;
  /** @throws ERR_NOT_FOUND */
  run(id: string): Promise<CheckedDrillRun>;
  /** A run just started, checked like the others. */
  check(run: DrillRun): Promise<CheckedDrillRun>;
  /** Posture now, with the break-glass credentials' rotation. */
  posture(): Promise<{ readonly posture: PostureReport; readonly at: number }>;
}

export interface DrillQueriesDeps {
  readonly config: AppConfig;
  readonly policy: Policy;
  readonly drills: readonly DrillDef[];
  readonly alarms: Pick<AlarmsConfig, "routing" | "unalarmedAfterMs">;
  readonly clock: Clock;
  /** Runs and their events; posture and rotation read what their own functions declare. */
  readonly store: Pick<EvidenceReads, "getDrillRun" | "listDrillRuns"> &
    Pick<AuditReads, "readNonGrantAudit"> &
    Parameters<typeof collectPosture>[0] &
    Parameters<typeof rotationStatus>[1];
}

export function createDrillQueries(deps: DrillQueriesDeps): DrillQueries {
  const { store } = deps;
  const checked = async (runs: readonly DrillRun[]): Promise<CheckedDrillRun[]> => {
    const integrity = await drillRunIntegrity(store, runs);
    return runs.map((run) => ({ run, integrity: integrity.get(run.id) }));
  };
  return {
    drills: () =>
      Promise.all(
        deps.drills.map(async (drill) => {
          const [last] = await checked(await store.listDrillRuns(drill.name, 1));
          return { drill, lastRun: last ?? null };
        }),
      ),

    async runs(name, limit) {
      if (!deps.drills.some((d) => d.name === name)) {
        throw new BreakglassError("ERR_NOT_FOUND", `no drill ${name} is configured`);
      }
      return checked(await store.listDrillRuns(name, limit));
    },

    async run(id) {
      const run = await store.getDrillRun(id);
      if (!run) throw new BreakglassError("ERR_NOT_FOUND", `no drill run ${id}`);
      return (await checked([run]))[0] as CheckedDrillRun;
    },

    check: async (run) => (await checked([run]))[0] as CheckedDrillRun,

    async posture() {
      const now = deps.clock.now();
      const credentials = await rotationStatus(deps.config, store, now);
      return { posture: await collectPosture(store, deps.policy, deps.drills, deps.alarms, now, credentials), at: now };
    },
  };
}
