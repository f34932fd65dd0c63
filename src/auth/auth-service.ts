/**
 * Who is asking, once they are past the door: sessions (web cookie or CLI bearer), local second
 * factors (TOTP and one-time recovery codes), step-up, the loud local fallback login for when the
 * IdP is down, and brute-force protection.
 *
 * - A session token is `ws_<id>.<secret>`; only SHA-256 of the secret is stored, compared in
 *   constant time. Sessions are absolute (never extended) and end at logout.
 * - A browser's CSRF token is derived from the session secret (HMAC), so it needs no storage and
 *   changes with the session.
 * - A TOTP code is accepted once: the accepted time step is stored with a conditional update, so
 *   two requests with the same code cannot both pass. Recovery codes: 10 per batch, hashed, each
 *   usable once.
 * - Failed logins and factor checks are counted per (user, address) and per address, locked at
 *   `auth.lockout.max_failures` within the window, and per user with a growing wait instead of a
 *   lock; known and unknown names alike; security is paged.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import * as OTPAuth from "otpauth";
import type { AuditAppender } from "../audit/audit-journal.js";
import { stamp } from "../audit/audit-journal.js";
import type { AuthConfig } from "../config/app-config.js";
import { nonGrantEvent } from "../core/audit-event.js";
import { BreakglassError } from "../core/errors.js";
import { SYSTEM_ACTOR } from "../core/grant-machine.js";
import type { Policy } from "../core/model.js";
import type { Clock, IdGenerator } from "../core/ports/runtime.js";
import type { Store } from "../core/ports/store.js";
import type { FactorKind, Identity, LocalFactor, LoginMethod, WebSession } from "../core/records.js";
import { Redacted } from "../core/redacted.js";
import type { AuthInfo, RequestContext } from "../core/request-context.js";
import { normalizeUserName, userNameProblem } from "../core/user-name.js";
import type { SecretBox } from "../secrets/secret-box.js";
import type { Directory } from "./directory.js";
import { type IdpHealth, type IdpLogin, mapGroups, type RefreshResult } from "./oidc.js";
import { authenticationOptions, registrationOptions, verifyAssertion, verifyRegistration } from "./webauthn.js";

/** A second factor presented: an authenticator or recovery code, or a WebAuthn assertion. */
export interface FactorProof {
  readonly code?: string | undefined;
  readonly webauthn?: unknown;
}

export interface IssuedSession {
  readonly session: WebSession;
  /** `ws_<id>.<secret>`: the cookie value or CLI bearer token; shown once, never stored. */
  readonly token: Redacted<string>;
  readonly csrf: string;
}

/** The IdP's tokens of a session, kept sealed: for logout, and to ask the IdP again. */
export interface IdpTokens {
  readonly idToken: string;
  readonly refreshToken: string | null;
  /** When the IdP last confirmed the person (login or refresh). */
  readonly checkedAt: number;
}

/** Asks the IdP again about a session's person (see OidcLogin.refresh). */
export interface IdpRefresher {
  refresh(refreshToken: string, subject: string, idToken: string): Promise<RefreshResult>;
  /** How old a confirmation may be before the next request asks again. */
  readonly intervalMs: number;
  readonly groupMap: ReadonlyMap<string, readonly string[]>;
}

export interface FactorView {
  readonly id: string;
  readonly kind: FactorKind;
  readonly label: string;
  readonly createdAt: number;
  readonly confirmed: boolean;
  readonly lastUsedAt: number | null;
}

export interface AuthService {
  /** A finished IdP login: record the identity (membership + age) and open a session. */
  loginWithIdp(ctx: RequestContext, login: IdpLogin, groups: readonly string[]): Promise<IssuedSession>;
  /**
   * Sign in with user name + local factor while the IdP is unreachable; pages security.
   * @throws ERR_FORBIDDEN when the IdP is up or fallback is off; ERR_UNAUTHENTICATED; ERR_LOCKED_OUT
   */
  loginWithFallback(
    ctx: RequestContext,
    user: string,
    proof: FactorProof,
    idp: IdpHealth,
    opts?: { readonly drill?: boolean },
  ): Promise<IssuedSession>;
  /** The user and session behind a session token. @throws ERR_UNAUTHENTICATED */
  authenticate(token: string): Promise<{ user: string; auth: AuthInfo }>;
  /** The CSRF token a browser must echo for the session behind this token. */
  csrfFor(token: string): string;
  logout(ctx: RequestContext, sessionId: string): Promise<WebSession | null>;
  /** A second session for the CLI, from a browser session (same user and end; `breakglass login`). */
  cliSession(ctx: RequestContext, fromSessionId: string): Promise<IssuedSession>;
  listFactors(user: string): Promise<FactorView[]>;
  /** Start a TOTP enrolment: the shared secret, shown once; confirmed by the first valid code. */
  enrollTotp(ctx: RequestContext, label: string): Promise<{ factorId: string; secret: string; uri: string }>;
  /**
   * Provision a confirmed TOTP factor for a configured non-person identity (a drill's requester),
   * by an operator on the broker's host: the secret goes to the operator, shown once. Audited and
   * alarmed like any enrolment.
   */
  provisionTotp(ctx: RequestContext, user: string, label: string): Promise<{ factorId: string; secret: string }>;
  /** Start registering a security key or passkey: the browser's creation options. */
  enrollWebauthn(ctx: RequestContext, label: string): Promise<{ factorId: string; options: unknown }>;
  /** Finish enrolling a factor: a TOTP factor's first code, or the key's registration answer. */
  confirmFactor(ctx: RequestContext, factorId: string, proof: FactorProof): Promise<FactorView>;
  /** Assertion options for `user`'s security keys (before a step-up or fallback login with one). */
  webauthnChallenge(user: string): Promise<unknown>;
  /** A new batch of 10 recovery codes (older unused ones stop working); shown once. */
  newRecoveryCodes(ctx: RequestContext): Promise<string[]>;
  removeFactor(ctx: RequestContext, factorId: string): Promise<void>;
  /** Verify a second factor now, for this session (MFA step-up). */
  stepUp(ctx: RequestContext, proof: FactorProof): Promise<{ factorAt: number }>;
}

const TOKEN = /^(ws_[A-Za-z0-9_-]+)\.([A-Za-z0-9_-]{16,})$/;
const RECOVERY_CODES = 10;
const TOTP_PERIOD_S = 30;
/** One step either side: a phone clock 30 s off still works. */
const TOTP_WINDOW = 1;

const sha256 = (text: string): string => createHash("sha256").update(text).digest("hex");
const sameHex = (a: string, b: string): boolean => {
  const x = Buffer.from(a, "hex");
  const y = Buffer.from(b, "hex");
  return x.length === y.length && x.length > 0 && timingSafeEqual(x, y);
};
const csrfOf = (secret: string): string => createHmac("sha256", secret).update("csrf").digest("base64url");
const normalizeCode = (code: string): string => code.replace(/[\s-]/g, "").toLowerCase();

export function createAuthService(deps: {
  config: AuthConfig;
  policy: Policy;
  directory: Directory;
  store: Store;
  audit: AuditAppender;
  clock: Clock;
  ids: IdGenerator;
  box: SecretBox;
  /** Without it, sessions are not re-checked with the IdP (no IdP, or it offers no refresh). */
  refresher?: IdpRefresher | null;
}): AuthService {
  const { config, policy, directory, store, audit, clock, ids, box } = deps;
  const refresher = deps.refresher ?? null;
  const sealIdp = (sessionId: string, t: IdpTokens) => box.seal(JSON.stringify(t), `web_session:${sessionId}`);

  /**
   * A session whose IdP confirmation is older than the refresher's interval asks the IdP again:
   * current groups are applied; a refused refresh (account disabled, session revoked at the IdP)
   * ends the session; an unreachable IdP changes nothing (the broker must work without it).
   */
  const recheck = async (session: WebSession): Promise<void> => {
    if (!refresher || session.method !== "oidc" || session.idp === null) return;
    const now = clock.now();
    let t: IdpTokens;
    try {
      t = JSON.parse(box.open(session.idp, `web_session:${session.id}`).reveal()) as IdpTokens;
    } catch {
      return;
    }
    if (t.refreshToken === null || now - t.checkedAt < refresher.intervalMs) return;
    const identity = await store.findIdentity(session.user);
    if (!identity) return;
    const r = await refresher.refresh(t.refreshToken, identity.subject, t.idToken);
    if (r.kind === "unavailable") {
      await store.transaction((tx) =>
        tx.saveWebSession({ ...session, idp: sealIdp(session.id, { ...t, checkedAt: now }) }),
      );
      return;
    }
    if (r.kind === "ended") {
      await store.transaction(async (tx) => {
        await tx.saveWebSession({ ...session, revokedAt: now });
        await audit.append(tx, [
          nonGrantEvent("auth.logout", SYSTEM_ACTOR, now, {
            user: session.user,
            sessionId: session.id,
            reason: `the IdP refused to refresh the session: ${r.why}`,
          }),
        ]);
      });
      throw new BreakglassError("ERR_UNAUTHENTICATED", "the identity provider ended your session: sign in again");
    }
    const groups = mapGroups(r.login.idpGroups, refresher.groupMap);
    const fresh: Identity = { ...identity, groups, email: r.login.email, name: r.login.name, refreshedAt: now };
    await store.transaction(async (tx) => {
      await tx.saveIdentity(fresh);
      await tx.saveWebSession({
        ...session,
        idp: sealIdp(session.id, { idToken: r.login.idToken, refreshToken: r.login.refreshToken, checkedAt: now }),
      });
    });
    directory.apply(fresh, now);
  };

  const unauthenticated = (why = "missing, unknown, expired or ended session: sign in again") =>
    new BreakglassError("ERR_UNAUTHENTICATED", why);

  const issue = async (
    ctx: RequestContext,
    user: string,
    method: LoginMethod,
    ttlMs: number,
    factorAt: number | null,
    idp: IdpTokens | null,
    event: Parameters<typeof nonGrantEvent>,
    identity: Identity | null,
  ): Promise<IssuedSession> => {
    const now = clock.now();
    const id = ids.next("ws");
    const secret = randomBytes(32).toString("base64url");
    const session: WebSession = {
      id,
      secretHash: sha256(secret),
      user,
      method,
      createdAt: now,
      expiresAt: now + ttlMs,
      factorAt,
      revokedAt: null,
      idp: idp === null ? null : sealIdp(id, idp),
    };
    await store.transaction(async (tx) => {
      if (identity) await tx.saveIdentity(identity);
      await tx.saveWebSession(session);
      const [type, actor, at, data] = event;
      await audit.append(tx, [stamp(nonGrantEvent(type, actor, at, { ...data, sessionId: id }), ctx)]);
    });
    if (identity) directory.apply(identity, now);
    return { session, token: new Redacted(`${id}.${secret}`), csrf: csrfOf(secret) };
  };

  // --- brute-force protection ---------------------------------------------------------------
  // Failures are counted per (user, address) and per address, each locked for
  // `auth.lockout.duration` at `max_failures`; and per user across all addresses, which never
  // locks hard: past `max_failures` each further failure only makes the next try wait a little
  // longer (1 s, doubling, at most a minute). So nobody elsewhere can lock a named person out
  // during the outage the fallback exists for, while guessing one person's codes stays slow. A
  // name that does not exist is counted exactly like one that does: the answers cannot tell them
  // apart.
  const USER_BACKOFF_MAX_MS = 60_000;
  const keysOf = (ctx: RequestContext, user: string | null): string[] => [
    ...(user && ctx.sourceAddress ? [`user-ip:${user} ${ctx.sourceAddress}`] : []),
    ...(ctx.sourceAddress ? [`ip:${ctx.sourceAddress}`] : []),
    ...(user ? [`user:${user}`] : []),
  ];
  const isUserKey = (key: string) => key.startsWith("user:");

  const assertNotLocked = async (keys: readonly string[]) => {
    const now = clock.now();
    let until = 0;
    for (const key of keys) {
      const t = await store.findThrottle(key);
      if (t?.lockedUntil != null && t.lockedUntil > now) until = Math.max(until, t.lockedUntil);
    }
    // One answer whichever key it was: it names neither the user nor whether they exist.
    if (until > 0) {
      const at = new Date(until).toISOString();
      throw new BreakglassError("ERR_LOCKED_OUT", `too many failed attempts: try again after ${at}`, {
        lockedUntil: at,
      });
    }
  };

  const fail = async (ctx: RequestContext, keys: readonly string[], what: string): Promise<never> => {
    const now = clock.now();
    const { maxFailures, windowMs, durationMs } = config.lockout;
    const locked: string[] = [];
    let until = now + durationMs;
    await store.transaction(async (tx) => {
      for (const key of keys) {
        // Read under the counter's lock: failures arriving together are each counted.
        const t = await tx.lockThrottle(key);
        const fresh = now - t.windowStart > windowMs;
        const failures = fresh ? 1 : t.failures + 1;
        if (isUserKey(key)) {
          // Never a hard lock: a growing wait between tries, counted over the window.
          const over = failures - maxFailures;
          const wait = over < 0 ? 0 : Math.min(1000 * 2 ** over, USER_BACKOFF_MAX_MS);
          await tx.saveThrottle({
            key,
            failures,
            windowStart: fresh ? now : t.windowStart,
            lockedUntil: wait > 0 ? now + wait : t.lockedUntil,
          });
          if (over === 0) {
            locked.push(key);
            until = Math.min(until, now + wait);
          }
          continue;
        }
        const lock = failures >= maxFailures;
        await tx.saveThrottle({
          key,
          failures: lock ? 0 : failures,
          windowStart: fresh || lock ? now : t.windowStart,
          lockedUntil: lock ? now + durationMs : t.lockedUntil,
        });
        if (lock) locked.push(key);
      }
      if (locked.length > 0) {
        await audit.append(tx, [
          stamp(
            nonGrantEvent("auth.locked_out", ctx.actor, now, {
              keys: locked,
              failures: maxFailures,
              until: locked.some((k) => !isUserKey(k)) ? now + durationMs : until,
              what,
            }),
            ctx,
          ),
        ]);
      }
    });
    throw unauthenticated(`${what} failed`);
  };

  /** A success clears the counters it was checked against. */
  const succeed = async (keys: readonly string[]) => {
    await store.transaction(async (tx) => {
      for (const key of keys) {
        await tx.saveThrottle({ key, failures: 0, windowStart: clock.now(), lockedUntil: null });
      }
    });
  };

  // --- factors -------------------------------------------------------------------------------
  const totpOf = (f: LocalFactor, user: string) =>
    new OTPAuth.TOTP({
      issuer: config.totpIssuer,
      label: user,
      algorithm: "SHA1",
      digits: 6,
      period: TOTP_PERIOD_S,
      secret: OTPAuth.Secret.fromBase32(box.open(f.secret, `factor:${f.id}`).reveal()),
    });

  /** Check a proof against the user's confirmed factors; the factor used, or null. */
  const verifyProof = async (user: string, proof: FactorProof): Promise<LocalFactor | null> => {
    const factors = await store.listFactors(user);
    const now = clock.now();
    if (proof.webauthn !== undefined) {
      const r = await verifyAssertion(config.webauthn, store, user, factors, proof.webauthn, now);
      if (!r) return null;
      // The signature counter must move on (authenticators without one always report 0).
      if (r.counter === 0 && (r.factor.lastStep ?? 0) === 0) {
        await store.transaction((tx) => tx.saveFactor({ ...r.factor, usedAt: now }));
        return r.factor;
      }
      const fresh = await store.transaction((tx) => tx.advanceFactorStep(r.factor.id, r.counter, now));
      return fresh ? r.factor : null;
    }
    const clean = normalizeCode(proof.code ?? "");
    if (/^\d{6}$/.test(clean)) {
      for (const f of factors) {
        if (f.kind !== "totp" || f.confirmedAt === null) continue;
        const delta = totpOf(f, user).validate({ token: clean, timestamp: now, window: TOTP_WINDOW });
        if (delta === null) continue;
        const step = Math.floor(now / 1000 / TOTP_PERIOD_S) + delta;
        const fresh = await store.transaction((tx) => tx.advanceFactorStep(f.id, step, now));
        return fresh ? f : null; // a replayed code is a failure, not a try of the next factor
      }
      return null;
    }
    const hash = sha256(clean);
    for (const f of factors) {
      if (f.kind !== "recovery" || f.usedAt !== null) continue;
      if (!sameHex(f.secret, hash)) continue;
      const first = await store.transaction(async (tx) => {
        const ok = await tx.useRecoveryCode(f.id, now);
        if (ok) {
          await audit.append(tx, [
            nonGrantEvent("auth.recovery_code_used", user, now, {
              user,
              factorId: f.id,
              left: factors.filter((x) => x.kind === "recovery" && x.usedAt === null).length - 1,
            }),
          ]);
        }
        return ok;
      });
      return first ? f : null;
    }
    return null;
  };

  /** A factor as first stored: unused, not removed. */
  const newFactor = (
    id: string,
    user: string,
    kind: LocalFactor["kind"],
    label: string,
    secret: string,
    confirmedAt: number | null,
  ): LocalFactor => ({
    id,
    user,
    kind,
    label,
    secret,
    createdAt: clock.now(),
    confirmedAt,
    lastStep: null,
    usedAt: null,
    removedAt: null,
  });

  const view = (f: LocalFactor): FactorView => ({
    id: f.id,
    kind: f.kind,
    label: f.label,
    createdAt: f.createdAt,
    confirmed: f.kind === "recovery" || f.confirmedAt !== null,
    lastUsedAt: f.usedAt,
  });

  /** Factor management needs a full login (IdP session or API token), never a fallback one. */
  const requireFullLogin = (ctx: RequestContext, what: string) => {
    if (ctx.auth?.method === "fallback") {
      throw new BreakglassError(
        "ERR_FORBIDDEN",
        `${what} needs a normal login: a login via local fallback may only request break-glass roles`,
      );
    }
  };

  return {
    async loginWithIdp(ctx, login, groups) {
      const now = clock.now();
      /** Refused: said to the person, written to the audit log, paged to security. */
      const refuse = async (why: string): Promise<never> => {
        await store.transaction((tx) =>
          audit.append(tx, [
            stamp(
              nonGrantEvent("auth.login_refused", ctx.actor, now, {
                claimed: login.username,
                issuer: login.issuer,
                subject: login.subject,
                why,
              }),
              ctx,
            ),
          ]),
        );
        throw unauthenticated(`the IdP's account cannot sign in here: ${why}; ask an admin`);
      };
      // A name the configuration could never hold (or a reserved one: `system` would read as the
      // broker's own actions in the audit log) is refused, not taken as it comes.
      const problem = userNameProblem(login.username);
      if (problem !== null) return refuse(`${problem} (claim ${JSON.stringify(login.username)})`);
      const identity: Identity = {
        user: login.username,
        issuer: login.issuer,
        subject: login.subject,
        groups,
        email: login.email,
        name: login.name,
        refreshedAt: now,
      };
      // One person per IdP subject: a user name claimed by another subject is refused.
      const known = await store.findIdentity(login.username);
      if (known && (known.subject !== login.subject || known.issuer !== login.issuer)) {
        return refuse(`user name "${login.username}" belongs to another IdP account (subject differs)`);
      }
      const withCtx = { ...ctx, actor: login.username };
      return issue(
        withCtx,
        login.username,
        "oidc",
        config.sessionTtlMs,
        null,
        { idToken: login.idToken, refreshToken: login.refreshToken, checkedAt: now },
        [
          "auth.login",
          login.username,
          now,
          { user: login.username, method: "oidc", groups, idpGroups: login.idpGroups },
        ],
        identity,
      );
    },

    async loginWithFallback(ctx, userInput, proof, idp, opts) {
      const user = normalizeUserName(userInput);
      const keys = keysOf(ctx, user);
      await assertNotLocked(keys);
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
      // The same work and the same counting for a name that does not exist (it has no factor):
      // the answers, and how many tries each name gets, say nothing about which names exist.
      const known = policy.users.has(user) || directory.identity(user) !== null;
      const proven = await verifyProof(user, proof);
      const factor = known ? proven : null;
      if (!factor) return fail(ctx, keys, "fallback login");
      await succeed(keys);
      const now = clock.now();
      const identity = directory.identity(user);
      const ageS = identity === null ? null : Math.round((now - identity.refreshedAt) / 1000);
      const stale = identity !== null && now - identity.refreshedAt > config.fallback.maxMembershipAgeMs;
      return issue(
        { ...ctx, actor: user },
        user,
        "fallback",
        config.fallback.sessionTtlMs,
        now,
        null,
        [
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
        null,
      );
    },

    async authenticate(token) {
      const m = TOKEN.exec(token);
      if (!m) throw unauthenticated();
      const [, id, secret] = m as unknown as [string, string, string];
      const session = await store.findWebSession(id);
      // Hash and compare even for an unknown id: timing tells nothing about which ids exist.
      const match = sameHex(sha256(secret), session?.secretHash ?? "00".repeat(32));
      if (!session || !match) throw unauthenticated();
      if (session.revokedAt !== null || session.expiresAt <= clock.now()) throw unauthenticated();
      await recheck(session);
      if (!policy.users.has(session.user)) throw unauthenticated();
      return {
        user: session.user,
        auth: { method: session.method, sessionId: session.id, factorAt: session.factorAt },
      };
    },

    csrfFor(token) {
      const m = TOKEN.exec(token);
      return m?.[2] ? csrfOf(m[2]) : "";
    },

    async logout(ctx, sessionId) {
      const session = await store.findWebSession(sessionId);
      if (!session || session.revokedAt !== null) return null;
      const now = clock.now();
      // Ended by one conditional update: of two logouts at once, one records `auth.logout`.
      const ended = await store.transaction(async (tx) => {
        if (!(await tx.endWebSession(sessionId, now))) return false;
        await audit.append(tx, [
          stamp(nonGrantEvent("auth.logout", ctx.actor, now, { user: session.user, sessionId }), ctx),
        ]);
        return true;
      });
      return ended ? session : null;
    },

    async cliSession(ctx, fromSessionId) {
      const from = await store.findWebSession(fromSessionId);
      if (!from || from.revokedAt !== null || from.expiresAt <= clock.now()) throw unauthenticated();
      const issued = await issue(
        { ...ctx, actor: from.user },
        from.user,
        from.method,
        from.expiresAt - clock.now(),
        null,
        null,
        ["auth.login", from.user, clock.now(), { user: from.user, method: from.method, client: "cli", from: from.id }],
        null,
      );
      return issued;
    },

    async listFactors(user) {
      return (await store.listFactors(user)).map(view);
    },

    async enrollTotp(ctx, label) {
      requireFullLogin(ctx, "enrolling a factor");
      const secret = new OTPAuth.Secret({ size: 20 });
      const id = ids.next("f");
      const factor = newFactor(
        id,
        ctx.actor,
        "totp",
        label.trim() || "authenticator app",
        box.seal(secret.base32, `factor:${id}`),
        null,
      );
      await store.transaction((tx) => tx.saveFactor(factor));
      const uri = totpOf(factor, ctx.actor).toString();
      return { factorId: id, secret: secret.base32, uri };
    },

    async provisionTotp(ctx, user, label) {
      if (!policy.users.has(user)) {
        throw new BreakglassError("ERR_VALIDATION", `"${user}" is not a configured user`, { user });
      }
      const secret = new OTPAuth.Secret({ size: 20 });
      const id = ids.next("f");
      const now = clock.now();
      await store.transaction(async (tx) => {
        await tx.saveFactor(newFactor(id, user, "totp", label, box.seal(secret.base32, `factor:${id}`), now));
        await audit.append(tx, [
          stamp(
            nonGrantEvent("auth.factor_enrolled", ctx.actor, now, {
              user,
              factorId: id,
              kind: "totp",
              label,
              provisionedBy: ctx.actor,
            }),
            ctx,
          ),
        ]);
      });
      return { factorId: id, secret: secret.base32 };
    },

    async enrollWebauthn(ctx, label) {
      requireFullLogin(ctx, "enrolling a factor");
      const options = await registrationOptions(config.webauthn, ctx.actor, await store.listFactors(ctx.actor));
      const id = ids.next("f");
      await store.transaction((tx) =>
        tx.saveFactor(
          newFactor(
            id,
            ctx.actor,
            "webauthn",
            label.trim() || "security key",
            box.seal(options.challenge, `factor:${id}`),
            null,
          ),
        ),
      );
      return { factorId: id, options };
    },

    async confirmFactor(ctx, factorId, proof) {
      requireFullLogin(ctx, "enrolling a factor");
      const keys = keysOf(ctx, ctx.actor);
      await assertNotLocked(keys);
      const f = (await store.listFactors(ctx.actor)).find((x) => x.id === factorId && x.kind !== "recovery");
      if (!f) throw new BreakglassError("ERR_NOT_FOUND", `no factor ${factorId} of yours is being enrolled`);
      if (f.confirmedAt !== null) return view(f);
      const now = clock.now();
      let confirmed: LocalFactor;
      if (f.kind === "totp") {
        const delta = totpOf(f, ctx.actor).validate({
          token: normalizeCode(proof.code ?? ""),
          timestamp: now,
          window: TOTP_WINDOW,
        });
        if (delta === null) return fail(ctx, keys, "TOTP enrolment check");
        const step = Math.floor(now / 1000 / TOTP_PERIOD_S) + delta;
        confirmed = { ...f, confirmedAt: now, lastStep: step, usedAt: now };
      } else {
        const challenge = box.open(f.secret, `factor:${f.id}`).reveal();
        const r =
          proof.webauthn === undefined ? null : await verifyRegistration(config.webauthn, challenge, proof.webauthn);
        if (!r) return fail(ctx, keys, "security key registration");
        confirmed = { ...f, secret: r.secret, confirmedAt: now, lastStep: r.counter, usedAt: now };
      }
      await succeed(keys);
      const first = await store.transaction(async (tx) => {
        // Confirmed by this call, or by a concurrent one first (then one enrolment, one event).
        if (!(await tx.confirmFactor(confirmed))) return false;
        await audit.append(tx, [
          stamp(
            nonGrantEvent("auth.factor_enrolled", ctx.actor, now, {
              user: ctx.actor,
              factorId,
              kind: f.kind,
              label: f.label,
            }),
            ctx,
          ),
        ]);
        return true;
      });
      if (!first) {
        const current = (await store.listFactors(ctx.actor)).find((x) => x.id === factorId);
        if (!current) throw new BreakglassError("ERR_NOT_FOUND", `no factor ${factorId} of yours is being enrolled`);
        return view(current);
      }
      return view(confirmed);
    },

    async webauthnChallenge(user) {
      const name = normalizeUserName(user);
      return authenticationOptions(config.webauthn, store, name, await store.listFactors(name), clock.now(), (u) =>
        // 32 bytes, like the credential ids of common security keys.
        box.mac("webauthn-decoy", u).slice(0, 43),
      );
    },

    async newRecoveryCodes(ctx) {
      requireFullLogin(ctx, "creating recovery codes");
      const now = clock.now();
      const codes = Array.from({ length: RECOVERY_CODES }, () => {
        const raw = randomBytes(10).toString("hex");
        return `${raw.slice(0, 5)}-${raw.slice(5, 10)}-${raw.slice(10, 15)}-${raw.slice(15)}`;
      });
      await store.transaction(async (tx) => {
        // The codes the database has now (a concurrent replacement's included), not a list read before.
        const old = await tx.removeFactors(ctx.actor, { kind: "recovery" }, now);
        for (const code of codes) {
          await tx.saveFactor(
            newFactor(ids.next("f"), ctx.actor, "recovery", "recovery code", sha256(normalizeCode(code)), now),
          );
        }
        await audit.append(tx, [
          stamp(
            nonGrantEvent("auth.factor_enrolled", ctx.actor, now, {
              user: ctx.actor,
              kind: "recovery",
              count: codes.length,
              replaced: old.filter((f) => f.usedAt === null).length,
            }),
            ctx,
          ),
        ]);
      });
      return codes;
    },

    async removeFactor(ctx, factorId) {
      requireFullLogin(ctx, "removing a factor");
      const now = clock.now();
      await store.transaction(async (tx) => {
        // Removed by this call, or by a concurrent one first (then it is gone: one event, not two).
        const [removed] = await tx.removeFactors(ctx.actor, { id: factorId }, now);
        if (!removed) throw new BreakglassError("ERR_NOT_FOUND", `no factor ${factorId} of yours`);
        await audit.append(tx, [
          stamp(
            nonGrantEvent("auth.factor_removed", ctx.actor, now, {
              user: ctx.actor,
              factorId,
              kind: removed.kind,
              label: removed.label,
            }),
            ctx,
          ),
        ]);
      });
    },

    async stepUp(ctx, proof) {
      const sessionId = ctx.auth?.sessionId;
      if (!sessionId) {
        throw new BreakglassError(
          "ERR_FORBIDDEN",
          "step-up needs a signed-in session (web or `breakglass login`); an API token cannot step up",
        );
      }
      const keys = keysOf(ctx, ctx.actor);
      await assertNotLocked(keys);
      const factor = await verifyProof(ctx.actor, proof);
      if (!factor) return fail(ctx, keys, "second factor check");
      await succeed(keys);
      const session = await store.findWebSession(sessionId);
      if (!session) throw unauthenticated();
      const now = clock.now();
      await store.transaction(async (tx) => {
        await tx.saveWebSession({ ...session, factorAt: now });
        await audit.append(tx, [
          stamp(
            nonGrantEvent("auth.step_up", ctx.actor, now, { user: ctx.actor, sessionId, factor: factor.kind }),
            ctx,
          ),
        ]);
      });
      return { factorAt: now };
    },
  };
}
