/**
 * Who is asking, over HTTP: the API routes of sessions, local factors, step-up, the IdP's health
 * and the fallback login (in the route table, so in the OpenAPI document). The browser routes of
 * the IdP login are in ../browser-auth.ts.
 *
 * The API routes are registered on every broker, so no client meets a missing route: on a broker
 * without a secret key (API tokens only, like the demo) the session routes answer for the token,
 * and the routes of sessions and local factors answer `ERR_NOT_CONFIGURED`. `GET /auth/session`
 * says which of these features the broker has (`features`), so the console shows only those.
 */
import { renderSVG } from "uqr";
import type { AuthService, FactorView } from "../../auth/auth-service.js";
import type { IdpHealth, OidcLogin } from "../../auth/oidc.js";
import type { AuthConfig } from "../../config/app-config.js";
import {
  EmptyBodySchema,
  FactorListSchema,
  FactorParamsSchema,
  FallbackLoginBodySchema,
  IdpDeclareBodySchema,
  IdpHealthSchema,
  LoginResultSchema,
  ProofBodySchema,
  RecoveryCodesViewSchema,
  SessionViewSchema,
  StepUpViewSchema,
  TotpEnrollBodySchema,
  TotpEnrollViewSchema,
  WebauthnChallengeBodySchema,
  WebauthnEnrollViewSchema,
  WebauthnOptionsSchema,
} from "../../contract/api.js";
import { BreakglassError } from "../../core/errors.js";
import type { Clock } from "../../core/ports/runtime.js";
import type { SecretBox } from "../../secrets/secret-box.js";
import type { BrokerQueries } from "../../service/broker-queries.js";
import type { IdpDeclaration } from "../../service/idp-declaration.js";
import { readCookie, SESSION_COOKIE, sessionCookie } from "../cookies.js";
import { type AnyRoute, defineRoute } from "../route-table.js";

export interface AuthRouteDeps {
  readonly config: AuthConfig;
  readonly publicUrl: string;
  /** Sessions and local factors; null on a broker without a secret key (API tokens only). */
  readonly auth: AuthService | null;
  readonly oidc: OidcLogin | null;
  /** Declaring the IdP down or up (admins). */
  readonly idp: IdpDeclaration;
  /** The caller's web session, by id. */
  readonly webSessions: Pick<BrokerQueries, "webSession">;
  readonly clock: Clock;
  readonly box: SecretBox | null;
}

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

/** The IdP's health as anyone may see it (no error texts: they can name internal hosts). */
export function idpHealthView(config: AuthConfig, oidc: OidcLogin | null): ReturnType<typeof IdpHealthSchema.parse> {
  const h: IdpHealth | null = oidc?.health() ?? null;
  return {
    configured: oidc !== null,
    reachable: h?.reachable ?? false,
    declaredDown: h?.declaredDown
      ? { by: h.declaredDown.by, at: new Date(h.declaredDown.at).toISOString(), reason: h.declaredDown.reason }
      : null,
    lastCheckAt: iso(h?.lastCheckAt ?? null),
    fallbackOpen: config.fallback.enabled && h !== null && !h.reachable,
  };
}

const factorView = (f: FactorView) => ({
  ...f,
  createdAt: new Date(f.createdAt).toISOString(),
  lastUsedAt: iso(f.lastUsedAt),
});

/** A user's factors as the API shows them: keys and apps listed, recovery codes counted. */
const factorList = (all: readonly FactorView[]) => ({
  factors: all.filter((f) => f.kind !== "recovery").map(factorView),
  recoveryCodesLeft: all.filter((f) => f.kind === "recovery" && f.lastUsedAt === null).length,
});

/** What this broker offers for signing in and second factors (`features` of the session view). */
function authFeatures(deps: Pick<AuthRouteDeps, "auth" | "oidc" | "config">) {
  return {
    idpLogin: deps.oidc !== null && deps.auth !== null,
    localFactors: deps.auth !== null,
    fallbackLogin: deps.oidc !== null && deps.auth !== null && deps.config.fallback.enabled,
  };
}

/** The refusal of a sessions-and-factors route on a broker without a secret key. */
function notConfigured(what: string): BreakglassError {
  return new BreakglassError(
    "ERR_NOT_CONFIGURED",
    `${what} needs the broker's secret key (secrets.key_file), which this broker does not have: it accepts API tokens only`,
    { feature: "localFactors" },
  );
}

export function authRoutes(deps: AuthRouteDeps): AnyRoute[] {
  const { oidc, config, clock } = deps;
  const features = authFeatures(deps);
  /** The session service, or ERR_NOT_CONFIGURED on a broker without a secret key. */
  const sessions = (what: string): AuthService => {
    if (deps.auth === null) throw notConfigured(what);
    return deps.auth;
  };
  const loginResult = (issued: Awaited<ReturnType<AuthService["loginWithIdp"]>>) => ({
    body: {
      user: issued.session.user,
      method: issued.session.method,
      token: issued.token.reveal(),
      csrfToken: issued.csrf,
      expiresAt: new Date(issued.session.expiresAt).toISOString(),
    },
    headers: {
      "set-cookie": sessionCookie(config, issued.token.reveal(), (issued.session.expiresAt - clock.now()) / 1000),
    },
  });
  /** The IdP's health, checked now if the last check is older than 5 s (a login is waiting). */
  const freshHealth = async (): Promise<IdpHealth | null> => {
    if (!oidc) return null;
    const h = oidc.health();
    if (h.declaredDown === null && (h.lastCheckAt === null || clock.now() - h.lastCheckAt > 5000)) {
      return oidc.check(clock.now());
    }
    return h;
  };

  return [
    defineRoute({
      method: "GET",
      path: "/auth/idp",
      operationId: "idpHealth",
      summary: "Is the IdP reachable, and is the local fallback login open? (no login needed)",
      tag: "auth",
      auth: false,
      status: 200,
      response: IdpHealthSchema,
      problems: [],
      handler: async () => {
        await freshHealth();
        return { body: idpHealthView(config, oidc) };
      },
    }),
    defineRoute({
      method: "POST",
      path: "/auth/idp",
      operationId: "declareIdp",
      scope: "admin",
      summary: "Declare the IdP down (opens the local fallback login) or up again; admins only, pages security",
      tag: "auth",
      auth: true,
      body: IdpDeclareBodySchema,
      status: 200,
      response: IdpHealthSchema,
      problems: ["ERR_FORBIDDEN", "ERR_NOT_CONFIGURED"],
      handler: async ({ ctx, body }) => {
        await deps.idp.declare(ctx, body.down, body.reason);
        return { body: idpHealthView(config, oidc) };
      },
    }),
    defineRoute({
      method: "POST",
      path: "/auth/fallback/login",
      operationId: "fallbackLogin",
      summary:
        "Sign in with user name + local factor while the IdP is unreachable; pages security, grants are flagged for review",
      tag: "auth",
      auth: false,
      body: FallbackLoginBodySchema,
      status: 200,
      response: LoginResultSchema,
      problems: ["ERR_FORBIDDEN", "ERR_LOCKED_OUT", "ERR_NOT_CONFIGURED"],
      handler: async ({ ctx, body }) => {
        const auth = sessions("the local fallback login");
        const health = (await freshHealth()) ?? {
          reachable: true,
          lastCheckAt: null,
          lastError: null,
          declaredDown: null,
        };
        return loginResult(
          await auth.loginWithFallback(ctx, body.user, { code: body.code, webauthn: body.webauthn }, health),
        );
      },
    }),
    defineRoute({
      method: "GET",
      path: "/auth/session",
      operationId: "currentSession",
      summary:
        "How the caller is signed in (method, expiry, last second factor, CSRF token for cookie use) and which sign-in features this broker has",
      tag: "auth",
      auth: true,
      fallback: true,
      status: 200,
      response: SessionViewSchema,
      problems: [],
      handler: async ({ ctx, headers }) => {
        const sessionId = ctx.auth?.sessionId ?? null;
        const session = sessionId ? await deps.webSessions.webSession(sessionId) : null;
        const token = bearerOrCookie(headers);
        return {
          body: {
            user: ctx.actor,
            method: ctx.auth?.method ?? "token",
            sessionId,
            expiresAt: iso(session?.expiresAt ?? null),
            factorAt: iso(ctx.auth?.factorAt ?? null),
            csrfToken: session && token && deps.auth ? deps.auth.csrfFor(token) : null,
            features,
          },
        };
      },
    }),
    defineRoute({
      method: "POST",
      path: "/auth/logout",
      operationId: "logout",
      summary: "End the caller's session (the cookie is cleared)",
      tag: "auth",
      auth: true,
      fallback: true,
      body: EmptyBodySchema,
      status: 200,
      response: SessionViewSchema,
      problems: [],
      handler: async ({ ctx }) => {
        const sessionId = ctx.auth?.sessionId ?? null;
        if (sessionId && deps.auth) await deps.auth.logout(ctx, sessionId);
        return {
          body: {
            user: ctx.actor,
            method: ctx.auth?.method ?? "token",
            sessionId,
            expiresAt: null,
            factorAt: null,
            csrfToken: null,
            features,
          },
          headers: { "set-cookie": sessionCookie(config, "", 0) },
        };
      },
    }),
    defineRoute({
      method: "POST",
      path: "/auth/step-up",
      operationId: "stepUp",
      scope: "session",
      summary: "Verify a second factor now (TOTP, security key or recovery code), for roles that require a fresh one",
      tag: "auth",
      auth: true,
      fallback: true,
      body: ProofBodySchema,
      status: 200,
      response: StepUpViewSchema,
      problems: ["ERR_FORBIDDEN", "ERR_LOCKED_OUT", "ERR_NOT_CONFIGURED"],
      handler: async ({ ctx, body }) => {
        const r = await sessions("step-up").stepUp(ctx, { code: body.code, webauthn: body.webauthn });
        return { body: { factorAt: new Date(r.factorAt).toISOString() } };
      },
    }),
    defineRoute({
      method: "GET",
      path: "/auth/factors",
      operationId: "listFactors",
      scope: "session",
      summary: "The caller's local factors (no secrets)",
      tag: "auth",
      auth: true,
      status: 200,
      response: FactorListSchema,
      problems: ["ERR_NOT_CONFIGURED"],
      handler: async ({ ctx }) => ({ body: factorList(await sessions("local factors").listFactors(ctx.actor)) }),
    }),
    defineRoute({
      method: "POST",
      path: "/auth/factors/totp",
      operationId: "enrollTotp",
      scope: "session",
      summary: "Start enrolling an authenticator app: the secret and QR code, shown once",
      tag: "auth",
      auth: true,
      body: TotpEnrollBodySchema,
      status: 201,
      response: TotpEnrollViewSchema,
      problems: ["ERR_FORBIDDEN", "ERR_NOT_CONFIGURED"],
      handler: async ({ ctx, body }) => {
        const r = await sessions("local factors").enrollTotp(ctx, body.label);
        return { body: { ...r, qrSvg: renderSVG(r.uri) } };
      },
    }),
    defineRoute({
      method: "POST",
      path: "/auth/factors/:factor/confirm",
      operationId: "confirmTotp",
      scope: "session",
      summary:
        "Finish enrolling a factor: an authenticator app's first code, or a security key's answer (audited, alarmed)",
      tag: "auth",
      auth: true,
      params: FactorParamsSchema,
      body: ProofBodySchema,
      status: 200,
      response: FactorListSchema.shape.factors.element,
      problems: ["ERR_NOT_FOUND", "ERR_FORBIDDEN", "ERR_LOCKED_OUT", "ERR_NOT_CONFIGURED"],
      handler: async ({ ctx, params, body }) => {
        const f = await sessions("local factors").confirmFactor(ctx, params.factor, {
          code: body.code,
          webauthn: body.webauthn,
        });
        return { body: factorView(f) };
      },
    }),
    defineRoute({
      method: "POST",
      path: "/auth/factors/:factor/remove",
      operationId: "removeFactor",
      scope: "session",
      summary: "Remove one of the caller's factors (audited, alarmed)",
      tag: "auth",
      auth: true,
      params: FactorParamsSchema,
      body: EmptyBodySchema,
      status: 200,
      response: FactorListSchema,
      problems: ["ERR_NOT_FOUND", "ERR_FORBIDDEN", "ERR_NOT_CONFIGURED"],
      handler: async ({ ctx, params }) => {
        const auth = sessions("local factors");
        await auth.removeFactor(ctx, params.factor);
        return { body: factorList(await auth.listFactors(ctx.actor)) };
      },
    }),
    defineRoute({
      method: "POST",
      path: "/auth/factors/webauthn",
      operationId: "enrollWebauthn",
      scope: "session",
      summary: "Start registering a security key or passkey: options for navigator.credentials.create()",
      tag: "auth",
      auth: true,
      body: TotpEnrollBodySchema,
      status: 201,
      response: WebauthnEnrollViewSchema,
      problems: ["ERR_FORBIDDEN", "ERR_NOT_CONFIGURED"],
      handler: async ({ ctx, body }) => {
        const r = await sessions("local factors").enrollWebauthn(
          ctx,
          body.label === "authenticator app" ? "security key" : body.label,
        );
        return { body: { factorId: r.factorId, options: r.options as Record<string, unknown> } };
      },
    }),
    defineRoute({
      method: "POST",
      path: "/auth/webauthn/challenge",
      operationId: "webauthnChallenge",
      summary: "Options for navigator.credentials.get() with a user's security keys (before step-up or fallback login)",
      tag: "auth",
      auth: false,
      body: WebauthnChallengeBodySchema,
      status: 200,
      response: WebauthnOptionsSchema,
      problems: ["ERR_NOT_CONFIGURED"],
      handler: async ({ body }) => ({
        body: (await sessions("security keys").webauthnChallenge(body.user)) as Record<string, unknown>,
      }),
    }),
    defineRoute({
      method: "POST",
      path: "/auth/factors/recovery",
      operationId: "newRecoveryCodes",
      scope: "session",
      summary: "A new batch of one-time recovery codes (older unused ones stop working); shown once",
      tag: "auth",
      auth: true,
      body: EmptyBodySchema,
      status: 201,
      response: RecoveryCodesViewSchema,
      problems: ["ERR_FORBIDDEN", "ERR_NOT_CONFIGURED"],
      handler: async ({ ctx }) => ({ body: { codes: await sessions("recovery codes").newRecoveryCodes(ctx) } }),
    }),
  ];
}

function bearerOrCookie(headers: Readonly<Record<string, string | string[] | undefined>>): string | null {
  const a = headers.authorization;
  const m = typeof a === "string" ? /^Bearer[ ]+(ws_\S+)\s*$/i.exec(a) : null;
  if (m?.[1]) return m[1];
  const c = headers.cookie;
  return readCookie(typeof c === "string" ? c : undefined, SESSION_COOKIE);
}
