/**
 * The browser routes of the IdP login, outside the API's route table: `/auth/login` (redirect to
 * the IdP), `/auth/callback` (back from it), `/auth/cli` (a session for `breakglass login`, shown
 * once) and `/auth/logout` (POST with the session's CSRF token; GET only shows the sign-out
 * button). They answer with redirects and small pages rather than JSON.
 *
 * Cookies: `bg_session` (cookies.ts) and `bg_oidc` (the pending login's state, nonce and PKCE
 * verifier, sealed with the broker's secret key, 10 minutes, path /auth).
 */
import { timingSafeEqual } from "node:crypto";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { AuthService, IdpTokens } from "../auth/auth-service.js";
import type { PendingLogin } from "../auth/oidc.js";
import { mapGroups } from "../auth/oidc.js";
import { BreakglassError } from "../core/errors.js";
import type { RequestContext } from "../core/request-context.js";
import type { SecretBox } from "../secrets/secret-box.js";
import { readCookie, SESSION_COOKIE, sessionCookie } from "./cookies.js";
import type { AuthRouteDeps } from "./routes/auth.js";

const LOGIN_COOKIE = "bg_oidc";
const LOGIN_TTL_MS = 10 * 60 * 1000;

/** `return_to` must be a path on the broker (no open redirect). */
function safeReturnTo(value: unknown): string {
  return typeof value === "string" && /^\/(?![/\\])[^\s]*$/.test(value) ? value : "/";
}

/** The browser routes of the IdP login. Errors end on a plain page saying what to do. */
export function registerBrowserAuth(
  app: FastifyInstance,
  deps: AuthRouteDeps & { readonly auth: AuthService; readonly box: SecretBox },
): void {
  const { oidc, config, box, clock, auth } = deps;
  const loginCookie = (value: string, maxAgeS: number) =>
    [
      `${LOGIN_COOKIE}=${value}`,
      "Path=/auth",
      "HttpOnly",
      "SameSite=Lax",
      `Max-Age=${maxAgeS}`,
      ...(config.secureCookies ? ["Secure"] : []),
    ].join("; ");
  const page = (reply: FastifyReply, status: number, title: string, text: string) =>
    reply
      .code(status)
      .type("text/html; charset=utf-8")
      .header("content-security-policy", "default-src 'none'")
      .send(
        `<!doctype html><html lang="en"><meta charset="utf-8"><title>${escapeHtml(title)}</title><h1>${escapeHtml(title)}</h1><p>${escapeHtml(text)}</p><p><a href="/">Back to Breakglass</a></p></html>`,
      );
  const ctxOf = (request: FastifyRequest): RequestContext => ({
    actor: "anonymous",
    requestId: request.id,
    sourceAddress: request.ip,
  });

  app.get("/auth/login", async (request, reply) => {
    if (!oidc) return page(reply, 404, "No IdP login", "This broker has no IdP configured (auth.oidc).");
    const returnTo = safeReturnTo((request.query as Record<string, unknown> | undefined)?.return_to);
    try {
      const { url, pending } = await oidc.begin(returnTo, clock.now());
      const sealed = box.seal(JSON.stringify(pending), "oidc_login");
      return reply.header("set-cookie", loginCookie(sealed, LOGIN_TTL_MS / 1000)).redirect(url, 302);
    } catch (e) {
      if (e instanceof BreakglassError && e.code === "ERR_IDP_UNAVAILABLE") {
        return page(reply, 503, "The identity provider is unreachable", e.message);
      }
      throw e;
    }
  });

  app.get("/auth/callback", async (request, reply) => {
    if (!oidc) return page(reply, 404, "No IdP login", "This broker has no IdP configured (auth.oidc).");
    const sealed = readCookie(request.headers.cookie, LOGIN_COOKIE);
    let pending: PendingLogin | null = null;
    try {
      pending = sealed ? (JSON.parse(box.open(sealed, "oidc_login").reveal()) as PendingLogin) : null;
    } catch {
      pending = null;
    }
    if (!pending || clock.now() - pending.startedAt > LOGIN_TTL_MS) {
      return page(reply, 400, "Login expired", "This login took too long or was started elsewhere: start again.");
    }
    const url = new URL(request.url, deps.publicUrl);
    try {
      const login = await oidc.finish(url, pending);
      const groups = mapGroups(login.idpGroups, config.oidc?.groupMap ?? new Map());
      const issued = await auth.loginWithIdp(ctxOf(request), login, groups);
      return reply
        .header("set-cookie", [
          sessionCookie(config, issued.token.reveal(), (issued.session.expiresAt - clock.now()) / 1000),
          loginCookie("", 0),
        ])
        .redirect(pending.returnTo, 302);
    } catch (e) {
      if (e instanceof BreakglassError && (e.code === "ERR_UNAUTHENTICATED" || e.code === "ERR_IDP_UNAVAILABLE")) {
        return page(reply, e.code === "ERR_IDP_UNAVAILABLE" ? 503 : 401, "Login refused", e.message);
      }
      throw e;
    }
  });

  // `breakglass login`: after the IdP login, a second session for the terminal, shown once to copy.
  app.get("/auth/cli", async (request, reply) => {
    const token = readCookie(request.headers.cookie, SESSION_COOKIE);
    if (!token) return reply.redirect("/auth/login?return_to=/auth/cli", 302);
    let who: Awaited<ReturnType<AuthService["authenticate"]>>;
    try {
      who = await auth.authenticate(token);
    } catch {
      return reply.redirect("/auth/login?return_to=/auth/cli", 302);
    }
    if (!who.auth.sessionId) return page(reply, 401, "Not signed in", "Sign in first.");
    const issued = await auth.cliSession({ ...ctxOf(request), actor: who.user }, who.auth.sessionId);
    return page(
      reply,
      200,
      "Breakglass CLI login",
      `Signed in as ${who.user}. Paste this session token into the terminal that runs \`breakglass login\` (it is shown once; it ends ${new Date(issued.session.expiresAt).toISOString()}): ${issued.token.reveal()}`,
    );
  });

  // Logout changes state, so it is a POST carrying the session's CSRF token: a cross-site link or
  // image cannot end anyone's session. GET shows a page with the button that sends it.
  const csrfMatches = (token: string, sent: unknown): boolean => {
    const expected = Buffer.from(auth.csrfFor(token));
    const given = Buffer.from(typeof sent === "string" ? sent : "");
    return given.length === expected.length && expected.length > 0 && timingSafeEqual(given, expected);
  };

  app.get("/auth/logout", async (request, reply) => {
    const token = readCookie(request.headers.cookie, SESSION_COOKIE);
    const csrf = token ? auth.csrfFor(token) : "";
    return reply
      .code(200)
      .type("text/html; charset=utf-8")
      .header("content-security-policy", "default-src 'none'; frame-ancestors 'none'")
      .header("x-frame-options", "DENY")
      .send(
        `<!doctype html><html lang="en"><meta charset="utf-8"><title>Sign out of Breakglass</title><h1>Sign out of Breakglass</h1>${
          token
            ? `<form method="post" action="/auth/logout"><input type="hidden" name="csrf" value="${escapeHtml(csrf)}"><button type="submit">Sign out</button></form>`
            : "<p>You are not signed in.</p>"
        }<p><a href="/">Back to Breakglass</a></p></html>`,
      );
  });

  app.register(async (scope) => {
    // The logout form's body (`csrf=…`); nothing else on the broker takes a form.
    scope.addContentTypeParser("application/x-www-form-urlencoded", { parseAs: "string" }, (_request, body, done) => {
      done(null, Object.fromEntries(new URLSearchParams(String(body))));
    });
    scope.post("/auth/logout", async (request, reply) => {
      const token = readCookie(request.headers.cookie, SESSION_COOKIE);
      if (!token) return reply.header("set-cookie", sessionCookie(config, "", 0)).redirect("/", 303);
      const sent = (request.body as Record<string, unknown> | undefined)?.csrf ?? request.headers["x-csrf-token"];
      if (!csrfMatches(token, sent)) {
        return page(
          reply,
          403,
          "Sign-out refused",
          "The request did not come from Breakglass's own page (missing or wrong CSRF token): sign out from the console or from /auth/logout.",
        );
      }
      let target = "/";
      try {
        const who = await auth.authenticate(token);
        const ended = who.auth.sessionId
          ? await auth.logout({ ...ctxOf(request), actor: who.user }, who.auth.sessionId)
          : null;
        if (ended?.idp && oidc) {
          const { idToken } = JSON.parse(box.open(ended.idp, `web_session:${ended.id}`).reveal()) as IdpTokens;
          target = (await oidc.logoutUrl(idToken, `${deps.publicUrl}/`)) ?? "/";
        }
      } catch {
        // Unknown or expired session: nothing to end; the cookie is cleared all the same.
      }
      return reply.header("set-cookie", sessionCookie(config, "", 0)).redirect(target, 303);
    });
  });
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
