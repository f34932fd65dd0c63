/**
 * The API's routes, one module per resource, as one table (see ../route-table.ts): the server
 * registers them and the OpenAPI document is generated from them in this order, so the order is
 * part of the document. Each handler parses with its schema from contract/api.ts and calls a
 * service or a query service; who may do what is core/authorization.ts's.
 */
import type { AnyRoute } from "../route-table.js";
import { auditRoutes } from "./audit.js";
import { authRoutes } from "./auth.js";
import { drillRoutes } from "./drills.js";
import { grantUseRoutes } from "./grant-use.js";
import { grantRoutes } from "./grants.js";
import { healthRoutes } from "./health.js";
import { incidentRoutes } from "./incidents.js";
import { metaRoutes } from "./meta.js";
import { reviewRoutes } from "./reviews.js";
import type { RouteDeps } from "./route-deps.js";
import { tokenRoutes } from "./tokens.js";

export type { RouteDeps };

export function buildRoutes(deps: RouteDeps): AnyRoute[] {
  return [
    ...grantUseRoutes(deps),
    ...healthRoutes(deps),
    ...metaRoutes(deps),
    ...grantRoutes(deps),
    ...incidentRoutes(deps),
    ...auditRoutes(deps),
    ...tokenRoutes(deps),
    ...reviewRoutes(deps),
    ...(deps.drills ? drillRoutes({ drills: deps.drills, queries: deps.queries.drills }) : []),
    ...(deps.auth ? authRoutes(deps.auth) : []),
  ];
}
