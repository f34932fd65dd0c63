/**
 * Is the broker working: liveness and readiness for a load balancer (no authentication, outside
 * the request limits), and whether every alarm channel is delivering. Prometheus metrics are
 * served beside the API (`GET /metrics`, server.ts).
 */
import { ChannelHealthListSchema, HealthSchema, ReadySchema } from "../../contract/api.js";
import { BreakglassError } from "../../core/errors.js";
import { type AnyRoute, defineRoute } from "../route-table.js";
import type { RouteDeps } from "./route-deps.js";

export function healthRoutes(deps: Pick<RouteDeps, "queries" | "readiness" | "alarmChannels">): AnyRoute[] {
  const { queries } = deps;
  return [
    defineRoute({
      method: "GET",
      path: "/health",
      operationId: "health",
      summary: "Liveness and a store ping; no authentication, outside the request limits",
      tag: "meta",
      auth: false,
      unlimited: true,
      status: 200,
      response: HealthSchema,
      problems: ["ERR_STORAGE"],
      handler: async () => {
        await queries.broker.ping();
        return { body: { status: "ok" as const, store: "ok" as const } };
      },
    }),
    defineRoute({
      method: "GET",
      path: "/ready",
      operationId: "ready",
      summary:
        "Readiness for a load balancer: the store answers and this replica's background work runs (503 ERR_NOT_READY while starting or stopping); no authentication, outside the request limits",
      tag: "meta",
      auth: false,
      unlimited: true,
      status: 200,
      response: ReadySchema,
      problems: ["ERR_NOT_READY", "ERR_STORAGE"],
      handler: async () => {
        const state = deps.readiness?.() ?? "running";
        if (state !== "running") {
          throw new BreakglassError("ERR_NOT_READY", `this broker is ${state}: send requests to another replica`, {
            state,
          });
        }
        await queries.broker.ping(); // the store answers (ERR_STORAGE otherwise)
        return { body: { status: "ready" as const, store: "ok" as const, workers: "running" as const } };
      },
    }),
    defineRoute({
      method: "GET",
      path: "/alarms/channels",
      operationId: "alarmChannels",
      scope: "read",
      summary: "Is every alarm channel delivering? Failing after several failed deliveries in a row",
      tag: "alarms",
      auth: true,
      status: 200,
      response: ChannelHealthListSchema,
      problems: [],
      handler: async () => ({ body: { channels: [...(deps.alarmChannels?.() ?? [])] } }),
    }),
  ];
}
