/**
 * The records the store keeps besides grants and audit events (those are in model.ts and
 * audit-event.ts): plain data, shared by the store ports (core/ports/) and the code that reads them.
 */

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

/**
 * One alarm to one channel, written in the same transaction as the audit event that caused it
 * (the outbox), delivered after commit, at least once.
 */
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
