/**
 * The loud local fallback login: user name plus a local factor, for when the IdP is down. It is
 * open only while the IdP is unreachable (or declared down), when `auth.fallback.enabled` and an
 * IdP is configured at all; every login is audited with why the IdP counts as down and how old
 * the person's last-known group membership is (`auth.fallback_login` pages security). A fallback
 * session may only request break-glass roles (see factors.ts, http/).
 *
 * A name that does not exist gets the same work and the same counting as one that does: the
 * answers, and how many tries each name gets, say nothing about which names exist.
 */
import type { AuthConfig } from "../config/app-config.js";
import { BreakglassError } from "../core/errors.js";
import type { Policy } from "../core/model.js";
import type { Clock } from "../core/ports/runtime.js";
import type { RequestContext } from "../core/request-context.js";
import { normalizeUserName } from "../core/user-name.js";
import type { Directory } from "./directory.js";
import type { FactorProof, ProofCheck } from "./factor-proof.js";
import type { IdpHealth } from "./oidc.js";
import type { IssuedSession, Sessions } from "./sessions.js";
import { type Throttle, throttleKeys } from "./throttle.js";

/**
 * Sign in with user name + local factor while the IdP is unreachable.
 * @throws ERR_FORBIDDEN when the IdP is up, no IdP is configured, or fallback is off;
 *   ERR_UNAUTHENTICATED (counted); ERR_LOCKED_OUT
 */
export type FallbackLogin = (
  ctx: RequestContext,
  user: string,
  proof: FactorProof,
  idp: IdpHealth,
  opts?: { readonly drill?: boolean },
) => Promise<IssuedSession>;

export function createFallbackLogin(deps: {
  readonly config: Pick<AuthConfig, "fallback" | "oidc">;
  readonly policy: Policy;
  readonly directory: Directory;
  readonly clock: Clock;
  readonly throttle: Throttle;
  readonly checkProof: ProofCheck;
  readonly sessions: Pick<Sessions, "issue">;
}): FallbackLogin {
  const { config, policy, directory, clock, throttle, checkProof, sessions } = deps;
  return async (ctx, userInput, proof, idp, opts) => {
    const user = normalizeUserName(userInput);
    const keys = throttleKeys(ctx, user);
    await throttle.assertNotLocked(keys);
    if (!config.fallback.enabled) {
      throw new BreakglassError("ERR_FORBIDDEN", "local fallback login is switched off (auth.fallback.enabled)");
    }
    if (config.oidc === null) {
      throw new BreakglassError(
        "ERR_FORBIDDEN",
        "no IdP is configured (auth.oidc), so there is nothing to fall back from: use an API token",
      );
    }
    if (idp.reachable) {
      throw new BreakglassError(
        "ERR_FORBIDDEN",
        "the identity provider is reachable: sign in through it (an admin can declare it down if it misbehaves)",
      );
    }
    const known = policy.users.has(user) || directory.identity(user) !== null;
    const proven = await checkProof(user, proof);
    const factor = known ? proven : null;
    if (!factor) return throttle.fail(ctx, keys, "fallback login");
    await throttle.succeed(keys);
    const now = clock.now();
    const identity = directory.identity(user);
    const ageS = identity === null ? null : Math.round((now - identity.refreshedAt) / 1000);
    const stale = identity !== null && now - identity.refreshedAt > config.fallback.maxMembershipAgeMs;
    return sessions.issue(
      { ...ctx, actor: user },
      {
        user,
        method: "fallback",
        ttlMs: config.fallback.sessionTtlMs,
        factorAt: now,
        idp: null,
        event: [
          "auth.fallback_login",
          user,
          now,
          {
            user,
            factor: factor.kind,
            factorId: factor.id,
            idp: idp.declaredDown ? `declared down by ${idp.declaredDown.by}` : `unreachable: ${idp.lastError ?? "?"}`,
            membershipAgeS: ageS,
            membershipStale: stale,
            groups: identity?.groups ?? [],
            ...(opts?.drill ? { drill: true } : {}),
          },
        ],
        identity: null,
      },
    );
  };
}
