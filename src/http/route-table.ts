/**
 * The shape of one API route: its method, path, schemas, documented problems and handler. The
 * server registers routes from this table and the OpenAPI document is generated from the same
 * table, so the two cannot drift apart.
 */
import type { z } from "zod";
import type { ProblemCode } from "../contract/api.js";
import type { Scope } from "../core/authorization.js";
import type { RequestContext } from "../core/request-context.js";

export type HttpMethod = "GET" | "POST";

/** The scope an API token needs (core/authorization.ts decides with it). */
export type RouteScope = Scope;

export interface RouteInput<P, Q, B> {
  readonly params: P;
  readonly query: Q;
  readonly body: B;
  /** The authenticated caller (actor `anonymous` on routes without auth). */
  readonly ctx: RequestContext;
  /** Request headers (lower-case names), for routes that authenticate otherwise than by token. */
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
}

/** What a handler returns: the body, and optionally headers to add (e.g. `location`). */
export interface RouteResult<R> {
  readonly body: R;
  readonly headers?: Readonly<Record<string, string>>;
}

export interface Route<
  P extends z.ZodType = z.ZodType,
  Q extends z.ZodType = z.ZodType,
  B extends z.ZodType = z.ZodType,
  R extends z.ZodType = z.ZodType,
> {
  readonly method: HttpMethod;
  /** Relative to the API prefix, in fastify syntax: `/grants/:id/approve`. */
  readonly path: string;
  readonly operationId: string;
  readonly summary: string;
  readonly description?: string;
  readonly tag: string;
  /** Needs `Authorization: Bearer <token>` (or the session cookie with its CSRF token). */
  readonly auth: boolean;
  /** Open to a login via local fallback (IdP down), which may only request roles and use its grants. */
  readonly fallback?: boolean;
  /**
   * The scope an API token needs (default: `read` for GET, `request` for POST); `session`: people
   * only (a signed-in session), never a token.
   */
  readonly scope?: RouteScope;
  readonly params?: P;
  readonly query?: Q;
  readonly body?: B;
  readonly status: 200 | 201;
  readonly response: R;
  /** Largest body this route accepts, when more than the server's default. */
  readonly bodyLimit?: number;
  /**
   * Outside the per-caller and per-address limits (`server.limits`): the probes a load balancer
   * and a monitor send, which must answer during a flood. Only for routes that cost next to nothing.
   */
  readonly unlimited?: boolean;
  /** Problems this route can answer with, beyond the ones every route can (see openapi.ts). */
  readonly problems: readonly ProblemCode[];
  handler(input: RouteInput<z.output<P>, z.output<Q>, z.output<B>>): Promise<RouteResult<z.input<R>>>;
}

/** A route with its schema types erased, so routes of different shapes fit in one table. */
export interface AnyRoute {
  readonly method: HttpMethod;
  readonly path: string;
  readonly operationId: string;
  readonly summary: string;
  readonly description?: string;
  readonly tag: string;
  readonly auth: boolean;
  readonly fallback?: boolean;
  readonly scope?: RouteScope;
  readonly params?: z.ZodType;
  readonly query?: z.ZodType;
  readonly body?: z.ZodType;
  readonly status: 200 | 201;
  readonly response: z.ZodType;
  readonly bodyLimit?: number;
  readonly unlimited?: boolean;
  readonly problems: readonly ProblemCode[];
  handler(input: RouteInput<unknown, unknown, unknown>): Promise<RouteResult<unknown>>;
}

/** Declare a route with full typing of its handler, then erase it for the table. */
export function defineRoute<
  P extends z.ZodType = z.ZodUndefined,
  Q extends z.ZodType = z.ZodUndefined,
  B extends z.ZodType = z.ZodUndefined,
  R extends z.ZodType = z.ZodType,
>(route: Route<P, Q, B, R>): AnyRoute {
  return route as unknown as AnyRoute;
}

/**
 * The methods the table takes at a path (`prefix` + a route's path, each `:param` one segment),
 * sorted, HEAD with every GET; none for a path it does not have. What a 405 lists in `Allow`
 * (RFC 9110 §15.5.6) when a path the API has is asked with another method.
 */
export function methodsAt(
  routes: readonly Pick<AnyRoute, "method" | "path">[],
  prefix: string,
): (path: string) => string[] {
  const table = routes.map((r) => ({
    pattern: new RegExp(`^${escapeRegExp(prefix)}${escapeRegExp(r.path).replace(/:[A-Za-z_]+/g, "[^/]+")}$`),
    methods: r.method === "GET" ? ["GET", "HEAD"] : [r.method],
  }));
  return (path) => [...new Set(table.filter((t) => t.pattern.test(path)).flatMap((t) => t.methods))].sort();
}

const escapeRegExp = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
