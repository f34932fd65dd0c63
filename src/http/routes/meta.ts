/** The API itself and the caller: the OpenAPI document, who is asking, which roles there are. */
import { z } from "zod";
import { MeSchema, RolesResponseSchema } from "../../contract/api.js";
import { type AnyRoute, defineRoute } from "../route-table.js";
import { domainViews, meView } from "../views.js";
import type { RouteDeps } from "./route-deps.js";

export function metaRoutes(deps: Pick<RouteDeps, "openapi" | "policy">): AnyRoute[] {
  const { policy } = deps;
  return [
    defineRoute({
      method: "GET",
      path: "/openapi.json",
      operationId: "openapi",
      summary: "This API as an OpenAPI 3.1 document; no authentication",
      tag: "meta",
      auth: false,
      status: 200,
      response: z.record(z.string(), z.unknown()),
      problems: [],
      handler: async () => ({ body: deps.openapi() }),
    }),
    defineRoute({
      method: "GET",
      path: "/me",
      operationId: "me",
      fallback: true,
      summary: "The caller: user name and groups",
      tag: "meta",
      auth: true,
      status: 200,
      response: MeSchema,
      problems: [],
      handler: async ({ ctx }) => ({ body: meView(policy, ctx.actor) }),
    }),
    defineRoute({
      method: "GET",
      path: "/roles",
      operationId: "listRoles",
      fallback: true,
      summary: "Domains and their recovery roles: durations, approval rule, emergency, requesters",
      tag: "roles",
      auth: true,
      status: 200,
      response: RolesResponseSchema,
      problems: [],
      handler: async ({ ctx }) => ({ body: { domains: domainViews(policy, ctx.actor) } }),
    }),
  ];
}
