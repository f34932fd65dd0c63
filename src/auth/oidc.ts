/**
 * Login through the organisation's OpenID provider with `openid-client`: authorization code +
 * PKCE (S256), state and nonce, ID-token signature checked against the IdP's keys (not only
 * trusted because it came over TLS), issuer and audience checked; groups from the ID token or,
 * when it does not carry them, from userinfo.
 *
 * The broker must start and serve while the IdP is down — it may be part of the outage — so
 * discovery is lazy and retried, and a health check keeps {@link IdpHealth} current. An admin can
 * also declare the IdP down (or up again) when the detection disagrees with reality.
 */
import * as client from "openid-client";
import type { OidcConfig } from "../config/app-config.js";
import { BreakglassError } from "../core/errors.js";
import { normalizeUserName } from "../core/user-name.js";

/** What must survive between the redirect to the IdP and the callback (kept sealed in a cookie). */
export interface PendingLogin {
  readonly state: string;
  readonly nonce: string;
  readonly verifier: string;
  /** Where to send the browser after login (a path on the broker). */
  readonly returnTo: string;
  readonly startedAt: number;
}

/** What a finished IdP login says about the person. */
export interface IdpLogin {
  readonly issuer: string;
  readonly subject: string;
  /**
   * The username claim NFKC-normalised and lower-cased: the form it is checked and compared in
   * (not yet checked against the user-name rule: the auth service refuses, audits and pages).
   */
  readonly username: string;
  /** The IdP's group names (unmapped). */
  readonly idpGroups: readonly string[];
  readonly email: string | null;
  readonly name: string | null;
  /** For RP-initiated logout (`id_token_hint`). */
  readonly idToken: string;
  /** To ask the IdP again later whether the person is still who they were (null: not offered). */
  readonly refreshToken: string | null;
}

/** What asking the IdP again gives: the person as they are now, an ended session, or no answer. */
export type RefreshResult =
  | { readonly kind: "ok"; readonly login: IdpLogin }
  | { readonly kind: "ended"; readonly why: string }
  | { readonly kind: "unavailable" };

export interface IdpHealth {
  readonly reachable: boolean;
  readonly lastCheckAt: number | null;
  readonly lastError: string | null;
  /** Set when an admin declared the IdP down; detection does not clear it. */
  readonly declaredDown: { readonly by: string; readonly at: number; readonly reason: string } | null;
}

export interface OidcLogin {
  begin(returnTo: string, now: number): Promise<{ url: string; pending: PendingLogin }>;
  /** @throws ERR_UNAUTHENTICATED when the IdP's answer does not check out; ERR_IDP_UNAVAILABLE */
  finish(callbackUrl: URL, pending: PendingLogin): Promise<IdpLogin>;
  /**
   * Refresh the login of `subject` with its refresh token: current groups, or "ended" when the
   * IdP refuses (the account was disabled, the session revoked), or "unavailable".
   */
  refresh(refreshToken: string, subject: string, idToken: string): Promise<RefreshResult>;
  /** The IdP's logout URL for this ID token, or null when it offers none. */
  logoutUrl(idToken: string, postLogoutUrl: string): Promise<string | null>;
  /** Fetch the discovery document now; updates {@link health}. */
  check(now: number): Promise<IdpHealth>;
  health(): IdpHealth;
  declare(down: boolean, by: string, reason: string, now: number): void;
  /** Take over a declaration stored by another replica (or before a restart); null: none. */
  restoreDeclaration(stored: string | null): void;
}

const TIMEOUT_S = 5;

export function createOidcLogin(cfg: OidcConfig, clientSecret: string | null): OidcLogin {
  let config: client.Configuration | null = null;
  let reachable = true;
  let checking: Promise<IdpHealth> | null = null;
  let lastCheckAt: number | null = null;
  let lastError: string | null = null;
  let declaredDown: IdpHealth["declaredDown"] = null;

  const discover = async (): Promise<client.Configuration> => {
    const c = await client.discovery(
      new URL(cfg.issuer),
      cfg.clientId,
      clientSecret ?? undefined,
      clientSecret === null ? client.None() : client.ClientSecretBasic(clientSecret),
      {
        timeout: TIMEOUT_S,
        execute: [client.enableNonRepudiationChecks, ...(cfg.allowInsecureHttp ? [client.allowInsecureRequests] : [])],
      },
    );
    return c;
  };

  const configuration = async (): Promise<client.Configuration> => {
    if (declaredDown) {
      throw new BreakglassError(
        "ERR_IDP_UNAVAILABLE",
        `the identity provider was declared down by ${declaredDown.by}: use the local fallback login`,
      );
    }
    if (config) return config;
    try {
      config = await discover();
      reachable = true;
      lastError = null;
      return config;
    } catch (e) {
      reachable = false;
      lastError = describe(e);
      throw unavailable(e);
    }
  };

  /** A network failure talking to the IdP (not a refusal by it) marks it unreachable. */
  const network = async <T>(fn: () => Promise<T>): Promise<T> => {
    try {
      return await fn();
    } catch (e) {
      if (isNetworkError(e)) {
        reachable = false;
        lastError = describe(e);
        throw unavailable(e);
      }
      throw e;
    }
  };

  /** The person from a token response: ID-token claims, completed from userinfo when needed. */
  const loginFrom = async (
    c: client.Configuration,
    tokens: client.TokenEndpointResponse,
    claims: Record<string, unknown> & { sub: string },
    idToken: string,
  ): Promise<IdpLogin> => {
    let all: Record<string, unknown> = claims;
    const accessToken = tokens.access_token;
    if ((!(cfg.groupsClaim in all) || !(cfg.usernameClaim in all)) && accessToken) {
      const info = await network(() => client.fetchUserInfo(c, accessToken, claims.sub));
      all = { ...info, ...all };
    }
    const username = all[cfg.usernameClaim];
    if (typeof username !== "string" || username === "") {
      throw new BreakglassError(
        "ERR_UNAUTHENTICATED",
        `the IdP's token has no \`${cfg.usernameClaim}\` claim (auth.oidc.username_claim); ask for the scope that releases it`,
      );
    }
    const rawGroups = all[cfg.groupsClaim];
    return {
      issuer: typeof all.iss === "string" ? all.iss : cfg.issuer,
      subject: claims.sub,
      username: normalizeUserName(username),
      idpGroups: Array.isArray(rawGroups) ? rawGroups.filter((g): g is string => typeof g === "string") : [],
      email: typeof all.email === "string" ? all.email : null,
      name: typeof all.name === "string" ? all.name : null,
      idToken,
      refreshToken: tokens.refresh_token ?? null,
    };
  };

  return {
    async begin(returnTo, now) {
      const c = await configuration();
      const verifier = client.randomPKCECodeVerifier();
      const pending: PendingLogin = {
        state: client.randomState(),
        nonce: client.randomNonce(),
        verifier,
        returnTo,
        startedAt: now,
      };
      const url = client.buildAuthorizationUrl(c, {
        redirect_uri: cfg.redirectUrl,
        scope: cfg.scopes.join(" "),
        code_challenge: await client.calculatePKCECodeChallenge(verifier),
        code_challenge_method: "S256",
        state: pending.state,
        nonce: pending.nonce,
      });
      return { url: url.href, pending };
    },

    async finish(callbackUrl, pending) {
      const c = await configuration();
      let tokens: Awaited<ReturnType<typeof client.authorizationCodeGrant>>;
      try {
        tokens = await network(() =>
          client.authorizationCodeGrant(c, callbackUrl, {
            pkceCodeVerifier: pending.verifier,
            expectedState: pending.state,
            expectedNonce: pending.nonce,
            idTokenExpected: true,
          }),
        );
      } catch (e) {
        if (e instanceof BreakglassError) throw e;
        throw new BreakglassError("ERR_UNAUTHENTICATED", `the identity provider's answer was refused: ${describe(e)}`);
      }
      const claims = tokens.claims();
      if (!claims || !tokens.id_token) throw new BreakglassError("ERR_UNAUTHENTICATED", "the IdP returned no ID token");
      return loginFrom(c, tokens, { ...claims }, tokens.id_token);
    },

    async refresh(refreshToken, subject, idToken) {
      let c: client.Configuration;
      try {
        c = await configuration();
      } catch {
        return { kind: "unavailable" };
      }
      let tokens: Awaited<ReturnType<typeof client.refreshTokenGrant>>;
      try {
        tokens = await client.refreshTokenGrant(c, refreshToken);
      } catch (e) {
        if (isNetworkError(e)) {
          reachable = false;
          lastError = describe(e);
          return { kind: "unavailable" };
        }
        return { kind: "ended", why: describe(e) };
      }
      const claims = tokens.claims();
      if (claims && claims.sub !== subject) return { kind: "ended", why: "the IdP answered for another subject" };
      try {
        const login = await loginFrom(c, tokens, { ...(claims ?? { sub: subject }) }, tokens.id_token ?? idToken);
        return { kind: "ok", login: { ...login, refreshToken: tokens.refresh_token ?? refreshToken } };
      } catch (e) {
        return e instanceof BreakglassError && e.code === "ERR_IDP_UNAVAILABLE"
          ? { kind: "unavailable" }
          : { kind: "ended", why: describe(e) };
      }
    },

    async logoutUrl(idToken, postLogoutUrl) {
      let c: client.Configuration;
      try {
        c = await configuration();
      } catch {
        return null; // the IdP is down: the local session still ends
      }
      if (!c.serverMetadata().end_session_endpoint) return null;
      return client.buildEndSessionUrl(c, { id_token_hint: idToken, post_logout_redirect_uri: postLogoutUrl }).href;
    },

    check(now) {
      // One check at a time; its time is recorded when it has an answer, so a check still in
      // flight never passes for a fresh "reachable" (a fallback login right after a start waits
      // for the first answer instead of being told the IdP is up).
      checking ??= (async () => {
        try {
          config = await discover();
          reachable = true;
          lastError = null;
        } catch (e) {
          reachable = false;
          lastError = describe(e);
        }
        lastCheckAt = now;
        return this.health();
      })().finally(() => {
        checking = null;
      });
      return checking;
    },

    health() {
      return { reachable: reachable && declaredDown === null, lastCheckAt, lastError, declaredDown };
    },

    declare(down, by, reason, now) {
      declaredDown = down ? { by, at: now, reason } : null;
    },

    restoreDeclaration(stored) {
      try {
        const d = stored ? (JSON.parse(stored) as { by?: unknown; at?: unknown; reason?: unknown }) : null;
        declaredDown =
          d && typeof d.by === "string" && typeof d.at === "number" && typeof d.reason === "string"
            ? { by: d.by, at: d.at, reason: d.reason }
            : null;
      } catch {
        // unreadable: keep what this replica knows
      }
    },
  };
}

/** Map an IdP's groups to Breakglass groups through `group_map` (unmapped groups do not count). */
export function mapGroups(idpGroups: readonly string[], groupMap: ReadonlyMap<string, readonly string[]>): string[] {
  const out = new Set<string>();
  for (const g of idpGroups) for (const mapped of groupMap.get(g) ?? []) out.add(mapped);
  return [...out].sort();
}

function unavailable(e: unknown): BreakglassError {
  const err = new BreakglassError(
    "ERR_IDP_UNAVAILABLE",
    "the identity provider cannot be reached: use the local fallback login if you have a local factor",
  );
  err.cause = e;
  return err;
}

function isNetworkError(e: unknown): boolean {
  if (!(e instanceof Error)) return false;
  const text = `${e.name} ${e.message} ${String((e as { cause?: unknown }).cause ?? "")}`;
  return /fetch failed|ECONNREFUSED|ECONNRESET|ETIMEDOUT|ENOTFOUND|AbortError|TimeoutError|socket/i.test(text);
}

function describe(e: unknown): string {
  if (!(e instanceof Error)) return String(e);
  const cause = (e as { cause?: unknown }).cause;
  return cause instanceof Error ? `${e.message} (${cause.message})` : e.message;
}
