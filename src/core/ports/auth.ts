/** What sign-in keeps: API tokens, sessions, what the IdP said, local second factors, throttles. */
import type { AuthThrottle, FactorKind, Identity, LocalFactor, TokenRecord, WebSession } from "../records.js";

/** API tokens, inside a transaction. */
export interface TokenWrites {
  insertToken(token: TokenRecord): Promise<void>;
  /** Mark a token revoked; false when it is unknown or already revoked. */
  revokeToken(id: string, at: number): Promise<boolean>;
}

/** API tokens, outside a transaction. */
export interface TokenReads {
  findToken(id: string): Promise<TokenRecord | null>;
  /** Tokens of a user (all users when null), newest first. */
  listTokens(user: string | null): Promise<TokenRecord[]>;
}

/** Sessions and identities, inside a transaction. */
export interface SessionWrites {
  /**
   * Insert or replace a session (by id). Callers save a copy read earlier, so an end already
   * recorded is kept (a logout is final) and the factor time never moves back.
   */
  saveWebSession(session: WebSession): Promise<void>;
  /**
   * End a session at `at` unless it has ended already (one conditional update): true when this
   * call ended it, so two logouts at once record one `auth.logout`.
   */
  endWebSession(sessionId: string, at: number): Promise<boolean>;
  /** Insert or replace what the IdP said about a user. */
  saveIdentity(identity: Identity): Promise<void>;
}

/** Sessions and identities, outside a transaction. */
export interface SessionReads {
  findWebSession(id: string): Promise<WebSession | null>;
  findIdentity(user: string): Promise<Identity | null>;
  listIdentities(): Promise<Identity[]>;
}

/** Local second factors, inside a transaction. */
export interface FactorWrites {
  /**
   * Insert or replace a local factor (by id). Callers save a copy read earlier, so what is
   * already recorded wins where going back would weaken it: a removal and a confirmation are
   * final, the secret changes only before confirmation, the last step and last use never move back.
   */
  saveFactor(factor: LocalFactor): Promise<void>;
  /**
   * Accept a factor's TOTP time step or WebAuthn signature counter once: true when `step` is
   * later than the last one accepted (and is now the last), false when it (or a later one) was
   * already used — a replayed code or a cloned key.
   */
  advanceFactorStep(factorId: string, step: number, at: number): Promise<boolean>;
  /**
   * Record a factor's confirmation (its secret, step and first use from `factor`) unless it is
   * already confirmed or removed: true when this call confirmed it.
   */
  confirmFactor(factor: LocalFactor): Promise<boolean>;
  /**
   * Remove `user`'s current factors of a kind, or the one with this id — as the database has them
   * now, not as a copy read earlier — and return those this call removed (none when another
   * removed them first). Calls for one user run one after the other (a lock held to the end of
   * the transaction), so a replacement also removes what a concurrent one added.
   */
  removeFactors(
    user: string,
    which: { readonly kind: FactorKind } | { readonly id: string },
    at: number,
  ): Promise<LocalFactor[]>;
  /** Mark a recovery code used; false when it already was. */
  useRecoveryCode(factorId: string, at: number): Promise<boolean>;
}

/** Local second factors, outside a transaction. */
export interface FactorReads {
  /** A user's factors that are not removed, oldest first. */
  listFactors(user: string): Promise<LocalFactor[]>;
}

/** Brute-force counters, inside a transaction. */
export interface ThrottleWrites {
  /**
   * A brute-force counter, locked until the transaction ends, for a read-modify-write of it:
   * concurrent failures are counted one after the other, none lost. A key never seen before
   * reads as no failures (`failures` 0, `windowStart` 0).
   */
  lockThrottle(key: string): Promise<AuthThrottle>;
  saveThrottle(throttle: AuthThrottle): Promise<void>;
}

/** Brute-force counters, outside a transaction. */
export interface ThrottleReads {
  findThrottle(key: string): Promise<AuthThrottle | null>;
}
