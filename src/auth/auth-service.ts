/**
 * Who is asking, once they are past the door — the facade the HTTP layer and the drill runner
 * use, wiring the parts that each hold one concern:
 *
 * - sessions.ts: session tokens (web cookie or CLI bearer), CSRF, logout, the CLI's session;
 * - idp-sessions.ts: the IdP login and the periodic re-check with the IdP;
 * - factors.ts: enrolling, confirming and removing TOTP, security keys and recovery codes;
 * - factor-proof.ts: checking a presented factor once (factor-codes.ts, webauthn.ts);
 * - fallback.ts: the loud local login while the IdP is down; step-up.ts: MFA step-up;
 * - throttle.ts: brute-force counters every check of a secret goes through.
 */
import type { AuditAppender, AuditTx } from "../audit/audit-journal.js";
import type { AuthConfig } from "../config/app-config.js";
import type { Policy } from "../core/model.js";
import type {
  FactorReads,
  FactorWrites,
  SessionReads,
  SessionWrites,
  ThrottleReads,
  ThrottleWrites,
} from "../core/ports/auth.js";
import type { StateWrites } from "../core/ports/broker-state.js";
import type { Clock, IdGenerator } from "../core/ports/runtime.js";
import type { Transactions } from "../core/ports/transactions.js";
import type { WebSession } from "../core/records.js";
import type { AuthInfo, RequestContext } from "../core/request-context.js";
import type { SecretBox } from "../secrets/secret-box.js";
import type { Directory } from "./directory.js";
import { createProofCheck, type FactorProof } from "./factor-proof.js";
import { createFactors, type FactorView } from "./factors.js";
import { createFallbackLogin } from "./fallback.js";
import { createIdpLogin, createIdpRecheck, type IdpRefresher } from "./idp-sessions.js";
import type { IdpHealth, IdpLogin } from "./oidc.js";
import { createSessions, type IssuedSession } from "./sessions.js";
import { createStepUp } from "./step-up.js";
import { createThrottle } from "./throttle.js";

export type { FactorProof } from "./factor-proof.js";
export type { FactorView } from "./factors.js";
export type { IdpRefresher } from "./idp-sessions.js";
export type { IdpTokens, IssuedSession } from "./sessions.js";

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

/** The store ports sign-in uses: sessions and identities, factors, throttles, WebAuthn challenges. */
export type AuthStore = Transactions<SessionWrites & FactorWrites & ThrottleWrites & StateWrites & AuditTx> &
  SessionReads &
  FactorReads &
  ThrottleReads;

export function createAuthService(deps: {
  config: AuthConfig;
  policy: Policy;
  directory: Directory;
  store: AuthStore;
  audit: AuditAppender;
  clock: Clock;
  ids: IdGenerator;
  box: SecretBox;
  /** Without it, sessions are not re-checked with the IdP (no IdP, or it offers no refresh). */
  refresher?: IdpRefresher | null;
}): AuthService {
  const { config, policy, directory, store, audit, clock, ids, box } = deps;
  const throttle = createThrottle({ lockout: config.lockout, store, audit, clock });
  const recheck = createIdpRecheck({ refresher: deps.refresher ?? null, directory, store, audit, clock, box });
  const sessions = createSessions({ policy, directory, store, audit, clock, ids, box, recheck });
  const checkProof = createProofCheck({ config, store, audit, clock, box });
  const factors = createFactors({ config, policy, store, audit, clock, ids, box, throttle });

  return {
    loginWithIdp: createIdpLogin({ config, sessions, store, audit, clock }),
    loginWithFallback: createFallbackLogin({ config, policy, directory, clock, throttle, checkProof, sessions }),
    authenticate: (token) => sessions.authenticate(token),
    csrfFor: (token) => sessions.csrfFor(token),
    logout: (ctx, sessionId) => sessions.logout(ctx, sessionId),
    cliSession: (ctx, fromSessionId) => sessions.cliSession(ctx, fromSessionId),
    listFactors: (user) => factors.list(user),
    enrollTotp: (ctx, label) => factors.enrollTotp(ctx, label),
    provisionTotp: (ctx, user, label) => factors.provisionTotp(ctx, user, label),
    enrollWebauthn: (ctx, label) => factors.enrollWebauthn(ctx, label),
    confirmFactor: (ctx, factorId, proof) => factors.confirm(ctx, factorId, proof),
    webauthnChallenge: (user) => factors.webauthnChallenge(user),
    newRecoveryCodes: (ctx) => factors.newRecoveryCodes(ctx),
    removeFactor: (ctx, factorId) => factors.remove(ctx, factorId),
    stepUp: createStepUp({ throttle, checkProof, sessions }),
  };
}
