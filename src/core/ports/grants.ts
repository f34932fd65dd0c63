/** The store's grants, with their due times and their holders' sealed credentials. */
import type { Grant, GrantState } from "../model.js";

export interface GrantFilter {
  readonly states?: readonly GrantState[] | undefined;
  readonly requester?: string | undefined;
  readonly roleId?: string | undefined;
  /** Only grants for this incident id. */
  readonly incident?: string | undefined;
  /** Only grants that ended at or after this time (epoch ms). */
  readonly endedAfter?: number | undefined;
  /**
   * Only grants after this one in the list's order (newest first: requested earlier, or at the
   * same time with a smaller id) — the keyset of the page before, so a page costs what its rows do.
   */
  readonly after?: { readonly requestedAt: number; readonly id: string } | undefined;
  readonly limit?: number | undefined;
}

/** Grant writes, inside a transaction. */
export interface GrantWrites {
  /**
   * The grant, locked against concurrent writers until the transaction ends; null if none. What
   * it returns (approvals included) is read after the lock was granted, so it includes every
   * change committed before.
   */
  lockGrant(id: string): Promise<Grant | null>;
  /** The requester's grant of this role that is requested, approved or active, if any. */
  findOpenGrant(requester: string, roleId: string): Promise<Grant | null>;
  /**
   * Insert or update a grant (with its approvals). Updates are checked against `version - 1`.
   * Approvals are only added: those not stored are inserted, and a stored one is never deleted
   * or rewritten.
   * @throws ERR_CONFLICT when another writer changed it first, or when the grant does not list
   *   an approval that is stored (it was read before that approval was given);
   *   ERR_OPEN_GRANT_EXISTS on the open-grant uniqueness constraint; ERR_DUPLICATE_APPROVAL when
   *   the database refuses a second approval by the same person.
   */
  saveGrant(grant: Grant, dueAt: number | null): Promise<void>;
  /**
   * Save many existing grants in one statement: the workers' bookkeeping (expiry, lapse,
   * revocation results), where approvals do not change. Each row is checked against
   * `version - 1` like {@link saveGrant}.
   * @throws ERR_CONFLICT when any row was changed by another writer (nothing is applied).
   */
  updateGrants(items: readonly { readonly grant: Grant; readonly dueAt: number | null }[]): Promise<void>;
  /**
   * Grants whose persisted due time has passed, locked for this transaction and skipped by
   * other replicas' claims (`FOR UPDATE SKIP LOCKED` on PostgreSQL), oldest first.
   */
  claimDue(now: number, limit: number): Promise<Grant[]>;
}

/** Grant reads, outside a transaction. */
export interface GrantReads {
  getGrant(id: string): Promise<Grant | null>;
  listGrants(filter: GrantFilter): Promise<Grant[]>;
  /** The smallest persisted due time, so a worker can sleep until then. */
  nextDueAt(): Promise<number | null>;
}

/** The holders' sealed credentials, inside a transaction. */
export interface CredentialWrites {
  /** Store (or replace) the sealed credential of a grant's holder. */
  saveCredential(grantId: string, box: string, at: number): Promise<void>;
  /**
   * The sealed credential of a grant's holder, read in this transaction (after `lockGrant`, so
   * it is the one that belongs to the grant as locked); null when none is held.
   */
  readCredential(grantId: string): Promise<string | null>;
  /** Forget the credentials of these grants (their access has ended). */
  deleteCredentials(grantIds: readonly string[]): Promise<void>;
}

/** The holders' sealed credentials, outside a transaction. */
export interface CredentialReads {
  /** The sealed credential of a grant's holder, if one is held. */
  readCredential(grantId: string): Promise<string | null>;
}
