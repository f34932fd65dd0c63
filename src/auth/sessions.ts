/**
 * Sessions (web cookie or CLI bearer): issuing, authenticating, ending, and the CLI's second
 * session from a browser one.
 *
 * - A session token is `ws_<id>.<secret>`; only SHA-256 of the secret is stored, compared in
 *   constant time. Sessions are absolute (never extended) and end at logout.
 * - A browser's CSRF token is derived from the session secret (HMAC), so it needs no storage and
 *   changes with the session.
 * - A person no longer in the policy cannot use a session they still hold.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import type { AuditTx } from "../audit/audit-journal.js";
import { type AuditAppender, stamp } from "../audit/audit-journal.js";
import { nonGrantEvent } from "../core/audit-event.js";
import { BreakglassError } from "../core/errors.js";
import type { Policy } from "../core/model.js";
import type { SessionReads, SessionWrites } from "../core/ports/auth.js";
import type { Clock, IdGenerator } from "../core/ports/runtime.js";
import type { Transactions } from "../core/ports/transactions.js";
import type { FactorKind, Identity, LoginMethod, WebSession } from "../core/records.js";
import { Redacted } from "../core/redacted.js";
import type { AuthInfo, RequestContext } from "../core/request-context.js";
import type { SecretBox } from "../secrets/secret-box.js";
import type { Directory } from "./directory.js";

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

/** What a new session is: whose, how they signed in, for how long, and the event that records it. */
export interface SessionRequest {
  readonly user: string;
  readonly method: LoginMethod;
  readonly ttlMs: number;
  /** When a second factor was verified for it (a fallback login); null otherwise. */
  readonly factorAt: number | null;
  readonly idp: IdpTokens | null;
  /** The login's audit event; its data gets the session id. */
  readonly event: Parameters<typeof nonGrantEvent>;
  /** What the IdP said about the user, saved with the session and applied to the directory. */
  readonly identity: Identity | null;
}

export interface Sessions {
  /** Open a session and record its event, in one transaction. */
  issue(ctx: RequestContext, request: SessionRequest): Promise<IssuedSession>;
  /** The user and session behind a session token. @throws ERR_UNAUTHENTICATED */
  authenticate(token: string): Promise<{ user: string; auth: AuthInfo }>;
  /** The CSRF token a browser must echo for the session behind this token ("" for no token). */
  csrfFor(token: string): string;
  /** End a session (audited once, however many logouts race); the session, or null if already over. */
  logout(ctx: RequestContext, sessionId: string): Promise<WebSession | null>;
  /** A second session for the CLI, from a browser session (same user and end). @throws ERR_UNAUTHENTICATED */
  cliSession(ctx: RequestContext, fromSessionId: string): Promise<IssuedSession>;
  /** Record a second factor verified now in this session (step-up). @throws ERR_UNAUTHENTICATED */
  recordStepUp(ctx: RequestContext, sessionId: string, factor: FactorKind): Promise<{ factorAt: number }>;
}

const TOKEN = /^(ws_[A-Za-z0-9_-]+)\.([A-Za-z0-9_-]{16,})$/;

const sha256 = (text: string): string => createHash("sha256").update(text).digest("hex");
const sameHex = (a: string, b: string): boolean => {
  const x = Buffer.from(a, "hex");
  const y = Buffer.from(b, "hex");
  return x.length === y.length && x.length > 0 && timingSafeEqual(x, y);
};
const csrfOf = (secret: string): string => createHmac("sha256", secret).update("csrf").digest("base64url");

/** The sealed form of a session's IdP tokens (bound to the session id). */
export const sealIdpTokens = (box: SecretBox, sessionId: string, t: IdpTokens): string =>
  box.seal(JSON.stringify(t), `web_session:${sessionId}`);

/** A session's IdP tokens. @throws when they cannot be opened (another key, another session's) */
export const openIdpTokens = (box: SecretBox, sessionId: string, sealed: string): IdpTokens =>
  JSON.parse(box.open(sealed, `web_session:${sessionId}`).reveal()) as IdpTokens;

export const unauthenticated = (why = "missing, unknown, expired or ended session: sign in again") =>
  new BreakglassError("ERR_UNAUTHENTICATED", why);

export function createSessions(deps: {
  readonly policy: Policy;
  readonly directory: Directory;
  readonly store: Transactions<SessionWrites & AuditTx> & SessionReads;
  readonly audit: AuditAppender;
  readonly clock: Clock;
  readonly ids: IdGenerator;
  readonly box: SecretBox;
  /** Runs on every authenticated session before it is accepted (asking the IdP again); may end it. */
  readonly recheck?: (session: WebSession) => Promise<void>;
}): Sessions {
  const { policy, directory, store, audit, clock, ids, box } = deps;
  const recheck = deps.recheck ?? (async () => {});

  const issue = async (ctx: RequestContext, r: SessionRequest): Promise<IssuedSession> => {
    const now = clock.now();
    const id = ids.next("ws");
    const secret = randomBytes(32).toString("base64url");
    const session: WebSession = {
      id,
      secretHash: sha256(secret),
      user: r.user,
      method: r.method,
      createdAt: now,
      expiresAt: now + r.ttlMs,
      factorAt: r.factorAt,
      revokedAt: null,
      idp: r.idp === null ? null : sealIdpTokens(box, id, r.idp),
    };
    await store.transaction(async (tx) => {
      if (r.identity) await tx.saveIdentity(r.identity);
      await tx.saveWebSession(session);
      const [type, actor, at, data] = r.event;
      await audit.append(tx, [stamp(nonGrantEvent(type, actor, at, { ...data, sessionId: id }), ctx)]);
    });
    if (r.identity) directory.apply(r.identity, now);
    return { session, token: new Redacted(`${id}.${secret}`), csrf: csrfOf(secret) };
  };

  return {
    issue,

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
      return issue(
        { ...ctx, actor: from.user },
        {
          user: from.user,
          method: from.method,
          ttlMs: from.expiresAt - clock.now(),
          factorAt: null,
          idp: null,
          event: [
            "auth.login",
            from.user,
            clock.now(),
            { user: from.user, method: from.method, client: "cli", from: from.id },
          ],
          identity: null,
        },
      );
    },

    async recordStepUp(ctx, sessionId, factor) {
      const session = await store.findWebSession(sessionId);
      if (!session) throw unauthenticated();
      const now = clock.now();
      await store.transaction(async (tx) => {
        await tx.saveWebSession({ ...session, factorAt: now });
        await audit.append(tx, [
          stamp(nonGrantEvent("auth.step_up", ctx.actor, now, { user: ctx.actor, sessionId, factor }), ctx),
        ]);
      });
      return { factorAt: now };
    },
  };
}
