/**
 * Drills over HTTP: start one (admins; it runs in the background), follow a run, list the drills
 * with their last result; and posture — is every break-glass role ready and rehearsed.
 */

import { drillSealed } from "../../audit/drill-verify.js";
import type { RowIntegrity } from "../../audit/evidence-rows.js";
import {
  DrillListSchema,
  DrillParamsSchema,
  DrillRunListSchema,
  DrillRunParamsSchema,
  DrillRunViewSchema,
  EmptyBodySchema,
  PostureSchema,
} from "../../contract/api.js";
import type { DrillRun } from "../../core/records.js";
import type { CheckedDrillRun, DrillQueries } from "../../service/drill-queries.js";
import type { DrillService } from "../../service/drill-service.js";
import { type AnyRoute, defineRoute } from "../route-table.js";
import { rowIntegrityView } from "../views.js";

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

/** A run, with what its events say about its row (`integrity`, from drillRunIntegrity). */
export function drillRunView(r: DrillRun, integrity: RowIntegrity | null | undefined) {
  return {
    ...r,
    startedAt: new Date(r.startedAt).toISOString(),
    endedAt: iso(r.endedAt),
    steps: r.steps.map((s) => ({ ...s, startedAt: new Date(s.startedAt).toISOString() })),
    sealed: drillSealed(r),
    integrity: rowIntegrityView(integrity),
  };
}

const runView = (r: CheckedDrillRun) => drillRunView(r.run, r.integrity);

export function drillRoutes(deps: { drills: DrillService; queries: DrillQueries }): AnyRoute[] {
  const { drills, queries } = deps;
  return [
    defineRoute({
      method: "GET",
      path: "/posture",
      operationId: "posture",
      summary:
        "Is every break-glass role ready: last use, last drill, open and overdue reviews, unalarmed grants — red and amber items with their fix",
      tag: "drills",
      auth: true,
      status: 200,
      response: PostureSchema,
      problems: [],
      handler: async () => {
        const { posture: p, at: now } = await queries.posture();
        return {
          body: {
            status: p.status,
            checkedAt: new Date(now).toISOString(),
            credentials: p.credentials.map((c) => ({
              credential: c.credential,
              rotatedAt: iso(c.rotatedAt),
              ageDays: c.ageDays,
              overdue: c.overdue,
              fix: c.how,
            })),
            vault: [...p.vault],
            roles: p.roles.map((r) => ({
              ...r,
              lastUse: iso(r.lastUse),
              lastDrill: r.lastDrill ? { ...r.lastDrill, at: new Date(r.lastDrill.at).toISOString() } : null,
              items: [...r.items],
            })),
          },
        };
      },
    }),
    defineRoute({
      method: "GET",
      path: "/drills",
      operationId: "listDrills",
      summary: "The configured drills and each one's last run",
      tag: "drills",
      auth: true,
      status: 200,
      response: DrillListSchema,
      problems: [],
      handler: async () => ({
        body: {
          drills: (await queries.drills()).map(({ drill: d, lastRun }) => ({
            name: d.name,
            scenario: d.scenario,
            role: d.roleId,
            every: `${Math.round(d.everyS / 86_400)}d`,
            lastRun: lastRun === null ? null : runView(lastRun),
          })),
        },
      }),
    }),
    defineRoute({
      method: "POST",
      path: "/drills/:name/run",
      operationId: "runDrill",
      scope: "admin",
      summary: "Start a drill now (admins): the real path in drill mode; follow it at /drills/runs/{run}",
      tag: "drills",
      auth: true,
      params: DrillParamsSchema,
      body: EmptyBodySchema,
      status: 201,
      response: DrillRunViewSchema,
      problems: ["ERR_NOT_FOUND"],
      handler: async ({ ctx, params }) => ({
        body: runView(await queries.check(await drills.start(ctx, params.name))),
      }),
    }),
    defineRoute({
      method: "GET",
      path: "/drills/:name/runs",
      operationId: "listDrillRuns",
      summary: "A drill's history: its last 50 runs, newest first, each with its timed steps",
      tag: "drills",
      auth: true,
      params: DrillParamsSchema,
      status: 200,
      response: DrillRunListSchema,
      problems: ["ERR_NOT_FOUND"],
      handler: async ({ params }) => ({ body: { runs: (await queries.runs(params.name, 50)).map(runView) } }),
    }),
    defineRoute({
      method: "GET",
      path: "/drills/runs/:run",
      operationId: "getDrillRun",
      summary: "One drill run with its timed steps",
      tag: "drills",
      auth: true,
      params: DrillRunParamsSchema,
      status: 200,
      response: DrillRunViewSchema,
      problems: ["ERR_NOT_FOUND"],
      handler: async ({ params }) => ({ body: runView(await queries.run(params.run)) }),
    }),
  ];
}
