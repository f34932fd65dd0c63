/**
 * Moved to core (issue 21): this re-export keeps the files being changed on another branch
 * (access-controller.ts, grant-service.ts, http/routes.ts) building until they import core directly.
 */
export { type AuthInfo, type RequestContext, SYSTEM_CONTEXT } from "../core/request-context.js";
