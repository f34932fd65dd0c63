/**
 * Sessions that come from the IdP: the login that records who the IdP says someone is, and the
 * periodic re-check that asks it again while the session is used.
 *
 * - One person per IdP subject: a user name claimed by another subject (or issuer) is refused, as
 *   is a name the configuration could never hold; refusals are audited and page security.
 * - A session whose confirmation is older than the refresher's interval asks the IdP again:
 *   current groups are applied; a refused refresh (account disabled, session revoked at the IdP)
 *   ends the session; an unreachable IdP changes nothing (the broker must work without it).
 */

import type { AuditTx } from "../audit/audit-journal.js";
import { type AuditAppender, stamp } from "../audit/audit-journal.js";
import type { AuthConfig } from "../config/app-config.js";
import { nonGrantEvent } from "../core/audit-event.js";
import { BreakglassError } from "../core/errors.js";
import { SYSTEM_ACTOR } from "../core/grant-machine.js";
import type { SessionReads, SessionWrites } from "../core/ports/auth.js";
import type { Clock } from "../core/ports/runtime.js";
import type { Transactions } from "../core/ports/transactions.js";
import type { Identity, WebSession } from "../core/records.js";
import type { RequestContext } from "../core/request-context.js";
import { userNameProblem } from "../core/user-name.js";
import type { SecretBox } from "../secrets/secret-box.js";
import type { Directory } from "./directory.js";
import { type IdpLogin, mapGroups, type RefreshResult } from "./oidc.js";
import {
  type IdpTokens,
  type IssuedSession,
  openIdpTokens,
  type Sessions,
  sealIdpTokens,
  unauthenticated,
} from "./sessions.js";

/** Asks the IdP again about a session's person (see OidcLogin.refresh). */
export interface IdpRefresher {
  refresh(refreshToken: string, subject: string, idToken: string): Promise<RefreshResult>;
  /** How old a confirmation may be before the next request asks again. */
  readonly intervalMs: number;
  readonly groupMap: ReadonlyMap<string, readonly string[]>;
}

type IdpStore = Transactions<SessionWrites & AuditTx> & SessionReads;

/**
 * The re-check `Sessions.authenticate` runs: a no-op without a refresher, for sessions not from
 * the IdP, and while the last confirmation is fresh.
 * @throws ERR_UNAUTHENTICATED when the IdP refused to refresh (the session is ended, audited)
 */
export function createIdpRecheck(deps: {
  readonly refresher: IdpRefresher | null;
  readonly directory: Directory;
  readonly store: IdpStore;
  readonly audit: AuditAppender;
  readonly clock: Clock;
  readonly box: SecretBox;
}): (session: WebSession) => Promise<void> {
  const { refresher, directory, store, audit, clock, box } = deps;
  return async (session) => {
    if (!refresher || session.method !== "oidc" || session.idp === null) return;
    const now = clock.now();
    let t: IdpTokens;
    try {
      t = openIdpTokens(box, session.id, session.idp);
    } catch {
      return;
    }
    if (t.refreshToken === null || now - t.checkedAt < refresher.intervalMs) return;
    const identity = await store.findIdentity(session.user);
    if (!identity) return;
    const r = await refresher.refresh(t.refreshToken, identity.subject, t.idToken);
    if (r.kind === "unavailable") {
      await store.transaction((tx) =>
        tx.saveWebSession({ ...session, idp: sealIdpTokens(box, session.id, { ...t, checkedAt: now }) }),
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
        idp: sealIdpTokens(box, session.id, {
          idToken: r.login.idToken,
          refreshToken: r.login.refreshToken,
          checkedAt: now,
        }),
      });
    });
    directory.apply(fresh, now);
  };
}

/**
 * A finished IdP login: record the identity (membership and its age) and open a session.
 * @throws ERR_UNAUTHENTICATED when the account cannot sign in here (audited)
 */
export function createIdpLogin(deps: {
  readonly config: Pick<AuthConfig, "sessionTtlMs">;
  readonly sessions: Pick<Sessions, "issue">;
  readonly store: Transactions<AuditTx> & Pick<SessionReads, "findIdentity">;
  readonly audit: AuditAppender;
  readonly clock: Clock;
}): (ctx: RequestContext, login: IdpLogin, groups: readonly string[]) => Promise<IssuedSession> {
  const { config, sessions, store, audit, clock } = deps;
  return async (ctx, login, groups) => {
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
    return sessions.issue(
      { ...ctx, actor: login.username },
      {
        user: login.username,
        method: "oidc",
        ttlMs: config.sessionTtlMs,
        factorAt: null,
        idp: { idToken: login.idToken, refreshToken: login.refreshToken, checkedAt: now },
        event: [
          "auth.login",
          login.username,
          now,
          { user: login.username, method: "oidc", groups, idpGroups: login.idpGroups },
        ],
        identity,
      },
    );
  };
}
