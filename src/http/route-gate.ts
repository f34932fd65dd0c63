/**
 * The gates of a caller's kind of sign-in, in one place: an API token needs the route's scope
 * and never opens a people-only route; a login via local fallback (IdP down) opens only the
 * routes marked `fallback`. The server applies them before a route runs; grant views apply the
 * same gates to the grant machine's answer of what the caller may do (`can`).
 */
import { BreakglassError } from "../core/errors.js";
import type { AuthInfo } from "../core/request-context.js";
import type { RouteScope } from "./route-table.js";

/** What a gate looks at in a route. */
export interface GatedRoute {
  readonly method: "GET" | "POST";
  readonly scope?: RouteScope | undefined;
  readonly fallback?: boolean | undefined;
}

/** The scope an API token needs for the route: its own, else `read` for GET and `request` for POST. */
export const neededScope = (route: GatedRoute): RouteScope =>
  route.scope ?? (route.method === "GET" ? "read" : "request");

/** Why this caller's kind of sign-in may not use the route, or null when it may. */
export function gateRefusal(route: GatedRoute, auth: AuthInfo): BreakglassError | null {
  if (auth.method === "token") {
    const needed = neededScope(route);
    if (needed === "session") {
      return new BreakglassError(
        "ERR_FORBIDDEN",
        "this needs a person signed in (web console or `breakglass login`), not an API token",
      );
    }
    const scopes = auth.scopes ?? [];
    if (!scopes.includes("*") && !scopes.includes(needed)) {
      return new BreakglassError(
        "ERR_FORBIDDEN",
        `this token lacks the \`${needed}\` scope (it has: ${scopes.join(", ") || "none"}); create one with it`,
        { scope: needed },
      );
    }
  }
  if (auth.method === "fallback" && route.fallback !== true) {
    return new BreakglassError(
      "ERR_FORBIDDEN",
      "a login via local fallback (IdP down) may only request break-glass roles and use its own grants; this needs a normal login",
    );
  }
  return null;
}
