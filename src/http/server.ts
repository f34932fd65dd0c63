/**
 * The HTTP API on fastify: routes from the table in routes/ (one module per resource), bearer-token authentication,
 * strict zod parsing of every input, and problem+json (RFC 9457) for every error — ours, the
 * framework's, and the ones nobody expected.
 *
 * Logging: one line per request (id, method, route, status, time) and, for unexpected errors,
 * the error with its stack. Headers are never logged: the Authorization header carries a token.
 */
import { timingSafeEqual } from "node:crypto";
import { createServer } from "node:http";
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from "fastify";
import type { z } from "zod";
import type { Logger } from "../adapters/logger.js";
import type { ChannelHealth } from "../alarms/alarm-channel.js";
import type { AppConfig } from "../config/app-config.js";
import { API_PREFIX } from "../contract/api.js";
import { signInRefusal } from "../core/authorization.js";
import { BreakglassError } from "../core/errors.js";
import type { Policy } from "../core/model.js";
import type { Clock, IdGenerator } from "../core/ports/runtime.js";
import type { AuthInfo, RequestContext } from "../core/request-context.js";
import { type Metrics, renderMetrics } from "../metrics/metrics.js";
import type { ApiQueries } from "../service/api-queries.js";
import type { DrillService } from "../service/drill-service.js";
import type { GrantService } from "../service/grant-service.js";
import type { TerminalService } from "../service/terminal-service.js";
import type { TokenService } from "../service/token-service.js";
import type { VaultService } from "../service/vault-service.js";
import type { DetectorWorker } from "../workers/detector-worker.js";
import type { ReconcileWorker } from "../workers/reconcile-worker.js";
import { registerBrowserAuth } from "./browser-auth.js";
import { registerConsole } from "./console.js";
import { readCookie, SESSION_COOKIE } from "./cookies.js";
import { buildOpenApiDocument } from "./openapi.js";
import { clientErrorResponse, PROBLEM_CONTENT_TYPE, problem, toProblem } from "./problem.js";
import { createAdmission, createStartQueue } from "./rate-limit.js";
import { type AnyRoute, methodsAt } from "./route-table.js";
import type { AuthRouteDeps } from "./routes/auth.js";
import { buildRoutes } from "./routes/index.js";

export interface HttpServerDeps {
  readonly config: AppConfig;
  readonly service: GrantService;
  readonly tokens: TokenService;
  /** The read side: grants, reviews, the audit log, drills, the broker's own state. */
  readonly queries: ApiQueries;
  readonly clock: Clock;
  readonly ids: IdGenerator;
  readonly log: Logger;
  /** Absent in tests that build the server without workers; then POST /reconcile is 404-free but refuses. */
  readonly reconcile?: ReconcileWorker;
  /** Serves GET /metrics (Prometheus) when given. */
  readonly metrics?: Metrics;
  /** Takes pushed CloudTrail events (POST /targets/{target}/cloudtrail) when given. */
  readonly detector?: DetectorWorker;
  /** Recorded terminal sessions (`breakglass shell`). */
  readonly terminal?: TerminalService;
  /** The live policy (configured + IdP-derived membership); defaults to the configuration's. */
  readonly policy?: Policy;
  /** Drills (`/drills`); absent in tests that build the server without them. */
  readonly drills?: DrillService;
  /** Tier-2 openings' reviews. */
  readonly vault?: VaultService;
  /** Whether this broker's background work runs. */
  readonly readiness?: () => "starting" | "running" | "stopping";
  /** The alarm channels' health. */
  readonly alarmChannels?: () => readonly ChannelHealth[];
  /**
   * Sessions, IdP login, local factors (`auth` null on a broker without a secret key: API tokens
   * only, and the factor routes answer ERR_NOT_CONFIGURED). Absent in tests that build the server
   * without them: then only API tokens authenticate and the auth routes are not registered.
   */
  readonly authRoutes?: Omit<AuthRouteDeps, "webSessions">;
}

/** Largest request body accepted; grant requests are a few hundred bytes. */
export const BODY_LIMIT_BYTES = 64 * 1024;
/** Version of the API contract (not of the package): `info.version` of the OpenAPI document. */
export const API_VERSION = "1.0.0";

const ANONYMOUS = "anonymous";
const BEARER = /^Bearer[ ]+([^\s]+)\s*$/i;

/** Parse one part of a request with its schema; failures name the field. @throws ERR_VALIDATION */
export function parseInput<S extends z.ZodType>(schema: S, value: unknown, part: string): z.output<S> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const errors = result.error.issues.map((issue) => {
    const base = issue.path.map(String).join(".");
    if (issue.code === "unrecognized_keys") {
      const keys = issue.keys.map((k) => (base ? `${base}.${k}` : k));
      return { field: keys[0] ?? base, text: `${keys.join(", ")}: unknown field${keys.length > 1 ? "s" : ""}` };
    }
    return { field: base || part, text: `${base || part}: ${issue.message}` };
  });
  throw new BreakglassError("ERR_VALIDATION", `invalid ${part}: ${errors.map((e) => e.text).join("; ")}`, {
    field: errors[0]?.field ?? part,
    errors: errors.map((e) => e.text),
  });
}

export function createHttpServer(deps: HttpServerDeps): FastifyInstance {
  const { tokens, log } = deps;
  const sendProblem = (error: unknown, request: FastifyRequest, reply: FastifyReply) => {
    const { status, body, unexpected } = toProblem(error, request.id);
    if (unexpected) {
      log.error("request failed", {
        requestId: request.id,
        method: request.method,
        route: request.routeOptions.url ?? null,
        error: describeError(error),
      });
    }
    if (status === 401) reply.header("www-authenticate", 'Bearer realm="breakglass"');
    // Also here: a request refused before the onRequest hook never got the header.
    reply.header("x-request-id", request.id);
    return reply.code(status).type(PROBLEM_CONTENT_TYPE).send(body);
  };

  const admission = createAdmission({
    limits: deps.config.server.limits,
    unlimited: () => unlimitedPaths,
    requestId: () => deps.ids.next("req"),
    log,
  });
  let unlimitedPaths: ReadonlySet<string> = new Set();
  const app = Fastify({
    // Requests over the limits are answered here, before fastify builds anything for them.
    serverFactory: (handler) => {
      const server = createServer((req, res) => {
        if (admission.admit(req, res)) handler(req, res);
      });
      server.keepAliveTimeout = 72_000; // fastify's default
      return server;
    },
    logger: false,
    bodyLimit: BODY_LIMIT_BYTES,
    // Our own ids, never the client's: the request id is stamped on audit events.
    genReqId: () => deps.ids.next("req"),
    requestIdHeader: false,
    return503OnClosing: true,
    // A URL fastify cannot decode never reaches a route: answer it as a problem too.
    frameworkErrors: (error, request, reply) => sendProblem(error, request, reply),
    // What Node's parser refuses before fastify sees a request (431 headers too large, 400 bad
    // request line or header, 408 timeout): problem+json too, not Node's or fastify's own body.
    clientErrorHandler: (error, socket) => {
      if (!socket.writable) return;
      const id = deps.ids.next("req");
      log.info("http request refused by the parser", {
        requestId: id,
        error: (error as { code?: string }).code ?? error.message,
      });
      socket.end(clientErrorResponse(error as { code?: string }, id));
    },
  });

  // JSON only: a text/plain body is refused (415) rather than handed to a handler as a string.
  app.removeContentTypeParser("text/plain");

  const actors = new WeakMap<FastifyRequest, string>();
  const auths = new WeakMap<FastifyRequest, AuthInfo>();

  // Prometheus scrapes this without a token: counts and latencies only, no grant or user data.
  const metrics = deps.metrics;
  if (metrics) {
    app.get("/metrics", async (_request, reply) => {
      const text = renderMetrics(await deps.queries.broker.stats(), metrics);
      return reply.type("text/plain; version=0.0.4; charset=utf-8").send(text);
    });
  }

  let document: Record<string, unknown> | undefined;
  const policy = deps.policy ?? deps.config.policy;
  const authDeps = deps.authRoutes ? { ...deps.authRoutes, webSessions: deps.queries.broker } : null;
  const routes: AnyRoute[] = buildRoutes({
    ...deps,
    policy,
    auth: authDeps ?? undefined,
    openapi: () => {
      document ??= buildOpenApiDocument(routes, API_VERSION);
      return document;
    },
  });
  const auth = authDeps?.auth ?? null;
  const box = authDeps?.box ?? null;
  if (authDeps && auth && box) registerBrowserAuth(app, { ...authDeps, auth, box });
  registerConsole(app);

  // Admitted requests start one per turn of the event loop (see createStartQueue); the probes
  // do not wait for a turn.
  const starts = createStartQueue();
  const unlimited = new Set(routes.filter((r) => r.unlimited).map((r) => `${API_PREFIX}${r.path}`));
  unlimitedPaths = unlimited;
  app.addHook("onRequest", async (request, reply) => {
    reply.header("x-request-id", request.id);
    reply.header("cache-control", "no-store");
    if (!unlimited.has(request.routeOptions.url ?? "")) await starts.turn();
  });
  app.addHook("onResponse", async (request, reply) => {
    log.info("http request", {
      requestId: request.id,
      method: request.method,
      route: request.routeOptions.url ?? "(no route)",
      actor: actors.get(request) ?? null,
      status: reply.statusCode,
      ms: Math.round(reply.elapsedTime),
    });
  });

  app.setErrorHandler((error, request, reply) => sendProblem(error, request, reply));
  // A path the API has, asked with a method it does not take, is a 405 naming the ones it does
  // (RFC 9110 §15.5.6), not a 404 that says the path is not there.
  const allowedAt = methodsAt(routes, API_PREFIX);
  app.setNotFoundHandler((request, reply) => {
    const path = request.url.split("?")[0] ?? "";
    const allowed = allowedAt(path);
    if (allowed.length > 0) {
      const body = problem(
        "ERR_METHOD_NOT_ALLOWED",
        request.id,
        `${path} takes ${allowed.join(", ")}, not ${request.method}`,
        { allowed },
      );
      return reply
        .code(405)
        .header("allow", allowed.join(", "))
        .header("x-request-id", request.id)
        .type(PROBLEM_CONTENT_TYPE)
        .send(body);
    }
    return sendProblem(new BreakglassError("ERR_NOT_FOUND", `no route ${request.method} ${path}`), request, reply);
  });

  /** Runs before the body is read: an unauthenticated client learns nothing about its body. */
  const authenticate = async (request: FastifyRequest, route: AnyRoute): Promise<void> => {
    const header = request.headers.authorization;
    const match = typeof header === "string" ? BEARER.exec(header) : null;
    let who: { user: string; auth: AuthInfo };
    if (match?.[1]) {
      const token = match[1];
      if (token.startsWith("ws_") && auth) who = await auth.authenticate(token);
      else {
        const t = await tokens.authenticate(token);
        who = { user: t.user, auth: { method: "token", sessionId: null, factorAt: null, scopes: t.scopes } };
      }
    } else {
      const cookie = auth ? readCookie(request.headers.cookie, SESSION_COOKIE) : null;
      if (!auth || !cookie) {
        throw new BreakglassError(
          "ERR_UNAUTHENTICATED",
          "send an API token as `Authorization: Bearer <token>` (create one with `breakglass token create`), or sign in",
        );
      }
      who = await auth.authenticate(cookie);
      // A cookie rides along on any request the browser makes: writes must prove they come from
      // the broker's own page.
      if (request.method !== "GET" && request.method !== "HEAD") {
        const sent = request.headers["x-csrf-token"];
        const expected = Buffer.from(auth.csrfFor(cookie));
        const given = Buffer.from(typeof sent === "string" ? sent : "");
        if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
          throw new BreakglassError(
            "ERR_FORBIDDEN",
            "missing or wrong x-csrf-token: read csrfToken from GET /api/v1/auth/session and send it with every POST",
          );
        }
      }
    }
    const refusal = signInRefusal(route, who.auth);
    if (refusal) throw refusal;
    actors.set(request, who.user);
    auths.set(request, who.auth);
  };

  for (const route of routes) {
    app.route({
      method: route.method,
      url: `${API_PREFIX}${route.path}`,
      ...(route.auth ? { onRequest: (request: FastifyRequest) => authenticate(request, route) } : {}),
      ...(route.bodyLimit ? { bodyLimit: route.bodyLimit } : {}),
      handler: async (request, reply) => {
        const authInfo = route.auth ? auths.get(request) : undefined;
        const ctx: RequestContext = {
          actor: route.auth ? (actors.get(request) ?? ANONYMOUS) : ANONYMOUS,
          requestId: request.id,
          sourceAddress: request.ip,
          ...(authInfo ? { auth: authInfo } : {}),
        };
        if (route.auth && ctx.actor === ANONYMOUS)
          throw new BreakglassError("ERR_UNAUTHENTICATED", "not authenticated");
        const input = {
          ctx,
          headers: request.headers,
          params: route.params ? parseInput(route.params, request.params, "path") : undefined,
          query: route.query ? parseInput(route.query, request.query ?? {}, "query") : undefined,
          body: route.body ? parseInput(route.body, request.body ?? {}, "request body") : undefined,
        };
        const result = await route.handler(input);
        reply.code(route.status);
        for (const [name, value] of Object.entries(result.headers ?? {})) reply.header(name, value);
        return result.body;
      },
    });
  }

  return app;
}

function describeError(error: unknown): Record<string, unknown> {
  if (error instanceof Error) {
    return {
      name: error.name,
      message: error.message,
      ...(error instanceof BreakglassError ? { code: error.code, detail: error.detail } : {}),
      stack: error.stack,
      ...(error.cause === undefined ? {} : { cause: String(error.cause) }),
    };
  }
  return { value: String(error) };
}
