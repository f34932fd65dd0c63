/**
 * The ports `core` and the services depend on. Adapters implement them; only the composition
 * root (src/app.ts) constructs adapters. Each method says what it throws.
 */
import type { AuditEventDraft, LinkedAuditEvent, SealedAuditEvent, StoredAuditEvent } from "./audit-event.js";
import type { Grant, GrantState, RoleDef, TargetDef, VaultOpening } from "./model.js";
import type { Redacted } from "./redacted.js";

/** Milliseconds since the epoch. Injected so tests and core never read the wall clock. */
export interface Clock {
  now(): number;
}

/** Unique, unguessable ids (`g_…` grants, `t_…` tokens, request ids). */
export interface IdGenerator {
  next(prefix: string): string;
}

/** Hex SHA-256 over the concatenation of `parts`. */
export type Sha256 = (...parts: (string | Uint8Array)[]) => string;

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

/** A signed statement "the chain had head `hash` at `seq`". */
export interface Checkpoint {
  readonly seq: number;
  readonly hash: string;
  readonly at: number;
  readonly keyId: string;
  /** Base64 Ed25519 signature over the canonical JSON of {at, hash, keyId, seq}. */
  readonly signature: string;
}

/** An API token as stored: only the SHA-256 of its secret part. */
export interface TokenRecord {
  readonly id: string;
  readonly user: string;
  readonly secretHash: string;
  readonly createdAt: number;
  readonly expiresAt: number | null;
  readonly revokedAt: number | null;
  readonly description: string;
  /** What the token may do (`read`, `request`, `approve`, `review`, `admin`; `*` for all). */
  readonly scopes: readonly string[];
}

/** How a session was opened. */
export type LoginMethod = "oidc" | "fallback";

/** A browser or CLI session, as stored: only the SHA-256 of its secret. */
export interface WebSession {
  readonly id: string;
  readonly secretHash: string;
  readonly user: string;
  readonly method: LoginMethod;
  readonly createdAt: number;
  readonly expiresAt: number;
  /** When a local second factor was last verified in this session (step-up). */
  readonly factorAt: number | null;
  readonly revokedAt: number | null;
  /** Sealed IdP facts for logout (ID token hint); null for fallback sessions. */
  readonly idp: string | null;
}

/** What the IdP last said about a user: the last-known group membership and its age. */
export interface Identity {
  readonly user: string;
  readonly issuer: string;
  readonly subject: string;
  /** Breakglass groups mapped from the IdP's groups claim. */
  readonly groups: readonly string[];
  readonly email: string | null;
  readonly name: string | null;
  readonly refreshedAt: number;
}

export type FactorKind = "totp" | "recovery" | "webauthn";

/** A local second factor, enrolled while the IdP is healthy. */
export interface LocalFactor {
  readonly id: string;
  readonly user: string;
  readonly kind: FactorKind;
  readonly label: string;
  /**
   * TOTP: sealed shared secret; recovery code: SHA-256 of the code; WebAuthn: the credential's id
   * and public key (JSON), or while registering, the sealed challenge.
   */
  readonly secret: string;
  readonly createdAt: number;
  /** TOTP: when the first code was verified (unconfirmed factors do not count). */
  readonly confirmedAt: number | null;
  /** TOTP: the last time step accepted; WebAuthn: the last signature counter. */
  readonly lastStep: number | null;
  readonly usedAt: number | null;
  readonly removedAt: number | null;
}

/** Failed logins or factor checks for one key (`user:alice`, `ip:10.0.0.1`). */
export interface AuthThrottle {
  readonly key: string;
  readonly failures: number;
  readonly windowStart: number;
  readonly lockedUntil: number | null;
}

/** One timed step of a drill. */
export interface DrillStep {
  readonly name: string;
  readonly startedAt: number;
  readonly ms: number;
  readonly ok: boolean;
  /** What happened, or exactly what failed. Never a secret. */
  readonly detail: string;
}

/** A drill run: the real break-glass path, rehearsed, step by step. */
export interface DrillRun {
  readonly id: string;
  readonly name: string;
  readonly scenario: string;
  readonly startedBy: string;
  readonly startedAt: number;
  readonly endedAt: number | null;
  readonly result: "running" | "passed" | "failed";
  readonly grantId: string | null;
  /** From the request to usable access at the target. */
  readonly timeToAccessMs: number | null;
  readonly steps: readonly DrillStep[];
}

export type AlarmState = "queued" | "delivered" | "failed";

/**
 * One alarm to one channel, written in the same transaction as the audit event that caused it
 * (the outbox), delivered after commit, at least once.
 */
/** How the gateway lets a grant's holder in, and what it connects upstream with. */
export interface GatewayLogin {
  readonly grantId: string;
  /** The user name the holder gives the gateway (the grant's role name at the target). */
  readonly user: string;
  /** SCRAM-SHA-256 verifier of the gateway password (src/secrets/scram.ts); never the password. */
  readonly verifier: string;
  /** The target credential the gateway connects with, sealed (secret box bound to the grant). */
  readonly upstream: string;
}

/** One statement of a recorded gateway session. */
export interface StatementRecord {
  readonly grantId: string;
  readonly sessionId: string;
  /** Order within the session, from 1. */
  readonly seq: number;
  readonly startedAt: number;
  readonly endedAt: number | null;
  /**
   * `simple` (Query), `extended` (Execute of a prepared statement), `blocked` (refused by the
   * guard), `function` (FunctionCall), `prepare` (a Parse no Execute followed before the server
   * answered it: prepared or described only, or refused by the server; see docs/gateway.md).
   */
  readonly kind: "simple" | "extended" | "blocked" | "function" | "prepare";
  readonly text: string;
  /** Parameter values of an Execute, as text (redacted per role); null for simple queries. */
  readonly params: readonly (string | null)[] | null;
  /** Rows returned (DataRow) or affected (from the command tag). */
  readonly rows: number;
  /** Command tags, e.g. `SELECT 1`, `UPDATE 3`. */
  readonly tag: string | null;
  readonly error: string | null;
  /** Bytes sent to the client for this statement. */
  readonly bytes: number;
}

/**
 * A run of one gateway session's statements, stored as one row (core/statement-batch.ts): the
 * recorder writes a session's statements in batches, and a row per statement cost the relay more
 * than the statement itself (ADR 0010).
 */
export interface StatementBatch {
  readonly grantId: string;
  readonly sessionId: string;
  /** The first and last statement's seq (the batch holds every seq between, in order). */
  readonly firstSeq: number;
  readonly lastSeq: number;
  /** When the first statement started (orders a grant's batches). */
  readonly startedAt: number;
  /**
   * The statements as one JSON array of their digest entries (core/recording-digest.ts
   * `statementEntry`: `[seq, startedAt, endedAt, kind, text, params, rows, tag, error, bytes]`),
   * the very text the session's seal hashed.
   */
  readonly entries: string;
}

/** A recorded terminal session (`breakglass shell`), asciicast v2 in the making. */
export interface TerminalSession {
  readonly id: string;
  readonly grantId: string;
  readonly command: string;
  readonly width: number;
  readonly height: number;
  readonly recordInput: boolean;
  readonly startedAt: number;
  readonly endedAt: number | null;
  /** `exited 0`, `grant ended`, … */
  readonly endReason: string | null;
}

/** A recording known to the store, by session. */
export interface RecordingRef {
  readonly kind: "terminal" | "gateway";
  readonly sessionId: string;
  /** Null for terminal events left without their session row. */
  readonly grantId: string | null;
}

/** One asciicast event: `t` seconds after the start, output (`o`) or input (`i`). */
export interface TerminalEvent {
  readonly seq: number;
  readonly t: number;
  readonly kind: "o" | "i";
  readonly data: string;
}

export interface AlarmRecord {
  /** `a_<event seq>_<channel>`: also the idempotency key receivers dedupe on. */
  readonly id: string;
  readonly channel: string;
  readonly eventSeq: number;
  readonly eventType: string;
  readonly grantId: string | null;
  /** The message as JSON text (never secrets). */
  readonly payload: string;
  /** `failed` = gave up after the channel's last attempt; otherwise retried. */
  readonly state: AlarmState;
  readonly attempts: number;
  readonly lastError: string | null;
  readonly createdAt: number;
  /** When to try (or, while a worker holds it, when its lease runs out). */
  readonly nextAt: number;
  readonly deliveredAt: number | null;
}

export interface AuditHead {
  readonly seq: number;
  readonly hash: string;
}

/**
 * Work done inside one database transaction. Every write commits together or not at all.
 * Rules every implementation keeps: a failed call poisons the transaction (it rolls back even if
 * the caller caught the error); the handle is dead once the transaction ends; and `Store`
 * methods must not be called from inside `transaction()` (they are refused with ERR_INTERNAL).
 */
export interface StoreTx {
  /** Call `fn` once this transaction has committed (never if it rolls back); the same `fn` once. */
  afterCommit(fn: () => void): void;
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
  /**
   * The events of these grants, in seq order, as committed now: after `lockGrant`, everything
   * recorded by the writers that held the grant before (an acknowledgement, an escalation).
   */
  readGrantAudit(grantIds: readonly string[]): Promise<SealedAuditEvent[]>;
  /** The chain's head, locked so appends are serialised across replicas. seq 0 when empty. */
  lockAuditHead(): Promise<AuditHead>;
  /** @throws ERR_AUDIT_WRITE_FAILED — the caller's transaction must then roll back. */
  insertAuditEvents(events: readonly SealedAuditEvent[]): Promise<void>;
  insertToken(token: TokenRecord): Promise<void>;
  /** Mark a token revoked; false when it is unknown or already revoked. */
  revokeToken(id: string, at: number): Promise<boolean>;
  /** Queue alarms (the outbox): they commit with the events that caused them, or not at all. */
  insertAlarms(alarms: readonly AlarmRecord[]): Promise<void>;
  /**
   * Queued alarms whose `nextAt` has passed, oldest first, locked for this transaction and skipped
   * by other replicas' claims; the caller leases them (`leaseAlarms`) before delivering.
   */
  claimAlarms(now: number, limit: number, excludeChannels?: readonly string[]): Promise<AlarmRecord[]>;
  /**
   * Hold claimed alarms for this broker process until `until` (the delivery lease): others' claims
   * skip them until then, or until this process is gone (`Store.reclaimLeases`).
   */
  leaseAlarms(ids: readonly string[], until: number): Promise<void>;
  /**
   * Record delivery results (delivered, a retry, failed) in one statement, and release the lease;
   * the rest of each row stays. Only for alarms this process still leases: a result for one taken
   * over by another process since, or already settled, is not recorded.
   * @returns how many results were recorded
   */
  saveAlarms(alarms: readonly AlarmRecord[]): Promise<number>;
  /** Store (or replace) the sealed credential of a grant's holder. */
  saveCredential(grantId: string, box: string, at: number): Promise<void>;
  /**
   * The sealed credential of a grant's holder, read in this transaction (after `lockGrant`, so
   * it is the one that belongs to the grant as locked); null when none is held.
   */
  readCredential(grantId: string): Promise<string | null>;
  /** Forget the credentials of these grants (their access has ended). */
  deleteCredentials(grantIds: readonly string[]): Promise<void>;
  insertCheckpoint(checkpoint: Checkpoint): Promise<void>;
  /**
   * Set the broker's named state `key` (e.g. the configuration's fingerprint) and return what it
   * was (null the first time). The row stays locked until the transaction ends, so replicas
   * starting together see each other's value rather than the same old one.
   */
  swapState(key: string, value: string, at: number): Promise<string | null>;
  /** Store (or replace) the gateway login of a grant. */
  saveGatewayLogin(login: GatewayLogin, at: number): Promise<void>;
  /**
   * Append recorded statements, a row per batch (from the gateway's recorder). A batch already
   * stored (same session and first seq: a write retried after it had in fact committed) is left
   * as it is.
   */
  insertStatementBatches(batches: readonly StatementBatch[]): Promise<void>;
  /** Insert a terminal session, or record its end (by id). */
  saveTerminalSession(session: TerminalSession): Promise<void>;
  /** Append events; an event whose seq is already stored is ignored (a client's retry). */
  appendTerminalEvents(sessionId: string, events: readonly TerminalEvent[]): Promise<void>;
  /** A terminal session as it is inside this transaction (lock its grant first). */
  getTerminalSession(id: string): Promise<TerminalSession | null>;
  /** A terminal session's events in order, inside this transaction. */
  readTerminalEvents(sessionId: string): Promise<TerminalEvent[]>;
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
  /**
   * A brute-force counter, locked until the transaction ends, for a read-modify-write of it:
   * concurrent failures are counted one after the other, none lost. A key never seen before
   * reads as no failures (`failures` 0, `windowStart` 0).
   */
  lockThrottle(key: string): Promise<AuthThrottle>;
  saveThrottle(throttle: AuthThrottle): Promise<void>;
  /** Insert or replace a drill run (by id). */
  saveDrillRun(run: DrillRun): Promise<void>;
  /** Insert or replace a tier-2 opening (by id). */
  saveVaultOpening(opening: VaultOpening): Promise<void>;
}

/** Durable state: grants, the audit log, checkpoints, tokens. */
export interface Store {
  /**
   * Run `fn` in one transaction; rolls back if it throws (and rethrows).
   * @throws ERR_STORAGE when the database fails.
   */
  transaction<T>(fn: (tx: StoreTx) => Promise<T>): Promise<T>;
  getGrant(id: string): Promise<Grant | null>;
  listGrants(filter: GrantFilter): Promise<Grant[]>;
  /**
   * The events of these grants (found by the `grant_id` index), in seq order, each with its
   * neighbours' hashes so the reader can check it (see core/audit-record.ts).
   */
  readGrantAudit(grantIds: readonly string[]): Promise<LinkedAuditEvent[]>;
  /**
   * Rows with seq ≥ `fromSeq`, in seq order, at most `limit`, exactly as stored (verification must
   * see tampering, so nothing is checked or repaired here).
   */
  readAudit(fromSeq: number, limit: number): Promise<StoredAuditEvent[]>;
  /** Stored events at these seqs (those that exist), in seq order. */
  readAuditAt(seqs: readonly number[]): Promise<StoredAuditEvent[]>;
  /**
   * Events of these types that belong to no grant (`grant_id` null: tier-2 openings, drills, the
   * alarm outbox's), in seq order, each with its neighbours' hashes like `readGrantAudit`.
   */
  readNonGrantAudit(types: readonly string[]): Promise<LinkedAuditEvent[]>;
  readCheckpoints(): Promise<Checkpoint[]>;
  findToken(id: string): Promise<TokenRecord | null>;
  /** Tokens of a user (all users when null), newest first. */
  listTokens(user: string | null): Promise<TokenRecord[]>;
  /** Counts for monitoring: active grants by role, alarms by channel and state, failing revocations. */
  stats(): Promise<{
    activeByRole: { role: string; count: number }[];
    alarms: { channel: string; state: string; count: number }[];
    revocationsFailing: number;
  }>;
  /** Alarms caused by a grant's events, oldest first. */
  listAlarms(grantId: string): Promise<AlarmRecord[]>;
  /** Every alarm, a page at a time by id (after `afterId`; null: from the first). */
  readAlarms(afterId: string | null, limit: number): Promise<AlarmRecord[]>;
  /** The alarms of these grants raised by events of these types, in one read (lists of grants). */
  listAlarmsOfGrants(grantIds: readonly string[], eventTypes: readonly string[]): Promise<AlarmRecord[]>;
  /** The sealed credential of a grant's holder, if one is held. */
  readCredential(grantId: string): Promise<string | null>;
  /** The gateway login for a user name, if that grant has one (deleted with the credentials). */
  findGatewayLogin(user: string): Promise<GatewayLogin | null>;
  /** A grant's recorded statements, by session and order. */
  listStatements(grantId: string): Promise<StatementRecord[]>;
  getTerminalSession(id: string): Promise<TerminalSession | null>;
  /** A grant's terminal sessions (null: every grant's), oldest first. */
  listTerminalSessions(grantId: string | null): Promise<TerminalSession[]>;
  /** A terminal session's events in order. */
  readTerminalEvents(sessionId: string): Promise<TerminalEvent[]>;
  /**
   * Every recording there are rows of: terminal sessions (and terminal events whose session row is
   * gone), gateway sessions with statements. For verification to account for each.
   */
  listRecordings(): Promise<RecordingRef[]>;
  /** The smallest persisted due time, so a worker can sleep until then. */
  nextDueAt(): Promise<number | null>;
  /**
   * Activation, revocation and alarm delivery leases held by broker processes that are gone
   * (killed, crashed) become due now, so the work they held is taken over at once rather than
   * when the lease runs out. A process is gone when it no longer holds its liveness lock (PostgreSQL: a session
   * advisory lock, released by the server when the connection drops); on SQLite, where one
   * broker runs per file, every lease not this process's is from a previous process.
   * @returns how many leases were taken over
   */
  reclaimLeases(now: number): Promise<number>;
  /** The broker's named state `key` (see StoreTx.swapState); null when unset. */
  readState(key: string): Promise<string | null>;
  /** Every named state whose key starts with `prefix`, by key, values as stored (`""` included). */
  listState(prefix: string): Promise<{ readonly key: string; readonly value: string }[]>;
  findWebSession(id: string): Promise<WebSession | null>;
  findIdentity(user: string): Promise<Identity | null>;
  listIdentities(): Promise<Identity[]>;
  /** A user's factors that are not removed, oldest first. */
  listFactors(user: string): Promise<LocalFactor[]>;
  findThrottle(key: string): Promise<AuthThrottle | null>;
  getDrillRun(id: string): Promise<DrillRun | null>;
  /** Drill runs, newest first (of one drill when `name` is given). */
  listDrillRuns(name: string | null, limit: number): Promise<DrillRun[]>;
  getVaultOpening(id: string): Promise<VaultOpening | null>;
  /** Tier-2 openings, oldest first; only those not yet reviewed when `unreviewed`. */
  listVaultOpenings(unreviewed: boolean): Promise<VaultOpening[]>;
  close(): Promise<void>;
}

/** Facts a connector gets about a grant. Never includes secrets of other grants. */
export interface ConnectorGrantFacts {
  readonly grantId: string;
  readonly requester: string;
  readonly role: RoleDef;
  readonly target: TargetDef;
  readonly incident: string;
  readonly justification: string;
  /** Epoch ms; the credential minted at the target must stop working by then. */
  readonly endsAt: number;
}

export interface ConnectorResult {
  /**
   * What the holder uses to get in (a connection string, a certificate, temporary keys). Kept
   * encrypted at rest and readable only by the holder while the grant is active.
   */
  readonly credential: Redacted<string> | null;
  /** Non-secret facts for the audit trail (e.g. command output, created role name). */
  readonly detail: Readonly<Record<string, unknown>>;
  /**
   * Non-secret state `revoke`/`verify` need later (e.g. a snapshot taken at grant time), merged
   * into the saved handle when activation completes. Only `grant` returns it.
   */
  readonly handle?: Readonly<Record<string, unknown>>;
}

/** Something at a target that is not explained by the broker's records. */
export interface DriftItem {
  /** Short stable kind, e.g. `standing_superuser`, `leftover_role`. */
  readonly kind: string;
  /** The principal at the target (role name, certificate key id, IAM role ARN). */
  readonly principal: string;
  readonly description: string;
}

/** A live session at a target of a watched break-glass identity (use detection). */
export interface WatchedSession {
  /** The identity: a role name, a certificate key id, a principal ARN. */
  readonly principal: string;
  /** Stable for the session's life, e.g. `pid:backend_start`. */
  readonly sessionId: string;
  /** The grant the principal belongs to, when it is one of the broker's own; else null. */
  readonly grantId: string | null;
  readonly startedAt: number | null;
  readonly from: string | null;
  /**
   * A past event (a CloudTrail record) rather than a live session: the grant must have covered
   * `startedAt`, not be active now — such events arrive minutes late.
   */
  readonly pointInTime?: boolean;
}

/** What a target holds now, as far as break-glass access goes. */
export interface TargetInventory {
  /** Principals this connector created, with the grant each belongs to and the handle to revoke it. */
  readonly managed: readonly { readonly grantId: string; readonly handle: Readonly<Record<string, unknown>> }[];
  /** Standing privilege made outside Breakglass: reported, never changed by the broker. */
  readonly drift: readonly DriftItem[];
}

export interface VerifyResult {
  readonly revoked: boolean;
  readonly detail: Readonly<Record<string, unknown>>;
}

/**
 * Grants and revokes access on one kind of target. Every method is idempotent and safe to
 * retry: `grant` twice for the same handle must not create two principals; `grant` again with a
 * later `endsAt` moves the target-side expiry (that is how a grant is extended); `revoke` of
 * something already gone succeeds. Overlapping grants get separate principals, so revoking
 * one never ends another.
 */
export interface Connector {
  /** The longest one call may take; activation leases are sized from it. */
  readonly timeoutMs?: number;
  /** The handle naming what `grant` will create; pure, saved before the target is called. */
  plan(facts: ConnectorGrantFacts): Record<string, unknown>;
  /** @throws ERR_CONNECTOR_FAILED */
  grant(facts: ConnectorGrantFacts, handle: Readonly<Record<string, unknown>>): Promise<ConnectorResult>;
  /**
   * Optional: move the end of access already granted to `facts.endsAt`, keeping the holder's
   * credential (returns `credential: null`). Without it an extension calls `grant` again, which
   * may hand over a fresh credential. The broker also calls it to put the old end back when it
   * cannot record an extension the target already took. @throws ERR_CONNECTOR_FAILED
   */
  extend?(facts: ConnectorGrantFacts, handle: Readonly<Record<string, unknown>>): Promise<ConnectorResult>;
  /** @throws ERR_CONNECTOR_FAILED */
  revoke(facts: ConnectorGrantFacts, handle: Readonly<Record<string, unknown>>): Promise<ConnectorResult>;
  /** Is access really gone at the target? @throws ERR_CONNECTOR_FAILED */
  verify(facts: ConnectorGrantFacts, handle: Readonly<Record<string, unknown>>): Promise<VerifyResult>;
  /**
   * Optional: cut access at once for grants whose revocation was just claimed — no new sessions,
   * open ones ended — ahead of their `revoke`, which does it again (idempotent) and then the
   * slower work (containment, cleanup). Many grants ending together then lose access within one
   * call instead of one revocation after another. Best effort: the caller logs a failure and
   * `revoke` decides. @throws ERR_CONNECTOR_FAILED
   */
  cutAccess?(
    grants: readonly { readonly facts: ConnectorGrantFacts; readonly handle: Readonly<Record<string, unknown>> }[],
  ): Promise<void>;
  /**
   * Optional: `revoke` then `verify` for many grants together, in fewer round trips than one by
   * one (grants ending together). Each grant's result is what `revoke` and `verify` would give it,
   * or the error either would throw; one grant's failure does not fail the others.
   * @throws ERR_CONNECTOR_FAILED when nothing could be done (e.g. the target is unreachable)
   */
  revokeMany?(
    grants: readonly { readonly facts: ConnectorGrantFacts; readonly handle: Readonly<Record<string, unknown>> }[],
  ): Promise<({ readonly revoke: ConnectorResult; readonly verify: VerifyResult } | { readonly error: unknown })[]>;
  /**
   * Optional, for reconciliation: the principals this connector created that still exist, and
   * standing privilege made outside Breakglass. @throws ERR_CONNECTOR_FAILED
   */
  inventory?(): Promise<TargetInventory>;
  /**
   * Optional, for `breakglass config check --targets`: what containment at the end of a window
   * can and cannot do for each role on this target, read from the target itself.
   * @throws ERR_CONNECTOR_FAILED when the target cannot be read
   */
  assess?(): Promise<readonly ContainmentAssessment[]>;
  /** Optional, for use detection: live sessions of watched break-glass identities. */
  watchSessions?(): Promise<readonly WatchedSession[]>;
  /** Optional: end a session `watchSessions` found (when configured to). */
  endSession?(session: WatchedSession): Promise<boolean>;
  /**
   * Optional: uses of watched identities pushed to the broker (the CloudTrail webhook), read
   * from `payload`. `key` is what the sender presented; compared in constant time.
   * @throws ERR_UNAUTHENTICATED when the key is wrong or the target takes no pushed events;
   *   ERR_VALIDATION when the payload is not in a known shape
   */
  pushedSessions?(payload: unknown, key: string): readonly WatchedSession[];
  /** Release connections and timers; the broker calls it on shutdown. */
  close?(): Promise<void>;
}

/** One role's containment limits on its target (ADR 0009). */
export interface ContainmentAssessment {
  readonly roleId: string;
  /** The target-side role (e.g. a PostgreSQL recovery role) assessed. */
  readonly principal: string;
  /** What the holder can reach and how the end of the window handles it, in words. */
  readonly limits: readonly string[];
  /** Why containment cannot work for it (empty: it can). */
  readonly impossible: readonly string[];
  /** The reason the configuration gives for accepting it anyway; null: not accepted. */
  readonly acceptedBecause: string | null;
  /** The target-side role does not exist (activation would fail). */
  readonly missing: boolean;
}

/** The draft type is re-exported for adapters that only need ports. */
export type { AuditEventDraft };
