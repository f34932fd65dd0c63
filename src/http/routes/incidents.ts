/** An incident's record: every grant requested for it, their timeline and every alarm with its delivery. */
import { IncidentParamsSchema, IncidentViewSchema } from "../../contract/api.js";
import type { Grant } from "../../core/model.js";
import { type AnyRoute, defineRoute } from "../route-table.js";
import { alarmView, grantView, integrityView } from "../views.js";
import type { RouteDeps } from "./route-deps.js";

export function incidentRoutes(deps: Pick<RouteDeps, "queries" | "policy" | "clock">): AnyRoute[] {
  const { queries, policy, clock } = deps;
  const view = (grant: Grant) => grantView(grant, policy, clock.now());
  return [
    defineRoute({
      method: "GET",
      path: "/incidents/:id",
      operationId: "getIncident",
      summary: "An incident's record: its grants, their timeline and every alarm with its delivery",
      tag: "grants",
      auth: true,
      params: IncidentParamsSchema,
      status: 200,
      response: IncidentViewSchema,
      problems: ["ERR_NOT_FOUND", "ERR_AUDIT_CHAIN_BROKEN"],
      handler: async ({ params }) => {
        const { grants, timeline, alarms, checks } = await queries.grants.incident(params.id);
        return {
          body: {
            incident: params.id,
            grants: grants.map(view),
            timeline: timeline.map(({ record: e, integrity }) => ({
              seq: e.seq,
              at: new Date(e.at).toISOString(),
              type: e.type,
              actor: e.actor,
              grantId: e.grantId,
              integrity: integrityView(integrity),
            })),
            alarms: alarms.map((a) => ({ ...alarmView(a, checks.get(a.id)), grantId: a.grantId })),
          },
        };
      },
    }),
  ];
}
