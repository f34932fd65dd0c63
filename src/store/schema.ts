/**
 * The tables of the Breakglass store, as Kysely sees them. Times are epoch milliseconds in
 * `bigint` columns (read back as JS numbers on both dialects); JSON is stored as text so both
 * dialects keep the exact bytes. Created by src/store/migrations.ts.
 */

export interface GrantsTable {
  id: string;
  role_id: string;
  domain: string;
  target: string;
  requester: string;
  state: string;
  end_reason: string | null;
  justification: string;
  incident: string;
  duration_s: number;
  /** `boolean` on PostgreSQL; 0/1 on SQLite (better-sqlite3 cannot bind JS booleans). */
  emergency: boolean | number;
  via_fallback: boolean | number;
  drill: boolean | number;
  requested_at: number;
  approved_at: number | null;
  activated_at: number | null;
  ends_at: number | null;
  ended_at: number | null;
  lapse_at: number | null;
  review_due_at: number | null;
  warn_at: number | null;
  review_overdue_at: number | null;
  closed_by: string | null;
  close_reason: string | null;
  access: string;
  /** JSON text of the connector's handle. */
  access_handle: string | null;
  access_attempts: number;
  access_last_error: string | null;
  /** JSON of the activation's failures (attempts, lastError, lastAt, nextAt); null when none */
  activation_failure: string | null;
  access_next_at: number | null;
  /** The broker process that holds the activation or revocation lease (`access_next_at`). */
  lease_owner: string | null;
  /** JSON text of the {@link import("../core/model.js").GrantReview}. */
  review: string | null;
  version: number;
  /** When a worker must next look at this grant; null when nothing is pending. */
  due_at: number | null;
}

export interface GrantApprovalsTable {
  grant_id: string;
  approver: string;
  /** Keeps the grant's approvals in the order they were given (two can share a millisecond). */
  position: number;
  at: number;
  comment: string | null;
}

export interface AuditEventsTable {
  seq: number;
  at: number;
  type: string;
  actor: string;
  grant_id: string | null;
  /** The canonical JSON the hash covers, byte for byte. */
  payload: string;
  hash: string;
}

/** One row (id = 1): the chain's last seq and hash; appends lock it. */
export interface AuditHeadTable {
  id: number;
  seq: number;
  hash: string;
}

export interface AuditCheckpointsTable {
  seq: number;
  hash: string;
  at: number;
  key_id: string;
  signature: string;
}

export interface TokensTable {
  id: string;
  user_name: string;
  secret_hash: string;
  created_at: number;
  expires_at: number | null;
  revoked_at: number | null;
  description: string;
  /** JSON array of scopes (`read`, `request`, `approve`, `review`, `admin`, or `*`). */
  scopes: string;
}

export interface GrantCredentialsTable {
  grant_id: string;
  /** A secret box (src/secrets/secret-box.ts) bound to the grant id. */
  box: string;
  updated_at: number;
}

export interface GatewayLoginsTable {
  grant_id: string;
  user_name: string;
  verifier: string;
  upstream: string;
  updated_at: number;
}

/** One batch of a gateway session's statements (core/statement-batch.ts). */
export interface StatementBatchesTable {
  grant_id: string;
  session_id: string;
  first_seq: number;
  last_seq: number;
  started_at: number;
  /** JSON array of the statements' digest entries. */
  entries: string;
}

export interface TerminalSessionsTable {
  id: string;
  grant_id: string;
  command: string;
  width: number;
  height: number;
  record_input: boolean | number;
  started_at: number;
  ended_at: number | null;
  end_reason: string | null;
}

export interface TerminalEventsTable {
  session_id: string;
  seq: number;
  /** Milliseconds since the session started. */
  t_ms: number;
  kind: string;
  data: string;
}

export interface AlarmsTable {
  id: string;
  channel: string;
  event_seq: number;
  event_type: string;
  grant_id: string | null;
  payload: string;
  state: string;
  attempts: number;
  last_error: string | null;
  created_at: number;
  next_at: number;
  delivered_at: number | null;
  /** The broker process delivering it, while it holds the delivery lease (`next_at`). */
  lease_owner: string | null;
}

/** Small named facts of the broker itself (the last configuration's fingerprint). */
export interface BrokerStateTable {
  key: string;
  value: string;
  updated_at: number;
}

export interface WebSessionsTable {
  id: string;
  secret_hash: string;
  user_name: string;
  method: string;
  created_at: number;
  expires_at: number;
  factor_at: number | null;
  revoked_at: number | null;
  /** A secret box with the IdP's ID token (for logout), bound to the session id. */
  idp: string | null;
}

export interface IdentitiesTable {
  user_name: string;
  issuer: string;
  subject: string;
  /** JSON array of Breakglass group names (mapped from the IdP's). */
  groups: string;
  email: string | null;
  display_name: string | null;
  refreshed_at: number;
}

export interface LocalFactorsTable {
  id: string;
  user_name: string;
  kind: string;
  label: string;
  /** TOTP: a secret box of the shared secret; recovery code: its SHA-256. */
  secret: string;
  created_at: number;
  confirmed_at: number | null;
  /** TOTP: the last time step accepted (a code is accepted once). */
  last_step: number | null;
  used_at: number | null;
  removed_at: number | null;
}

export interface AuthThrottleTable {
  key: string;
  failures: number;
  window_start: number;
  locked_until: number | null;
}

export interface DrillRunsTable {
  id: string;
  name: string;
  scenario: string;
  started_by: string;
  started_at: number;
  ended_at: number | null;
  /** running, passed, failed */
  result: string;
  grant_id: string | null;
  time_to_access_ms: number | null;
  /** JSON array of steps: name, startedAt, ms, ok, detail */
  steps: string;
}

export interface VaultOpeningsTable {
  id: string;
  envelope_id: string;
  envelope_name: string;
  record_seq: number;
  record_hash: string;
  opened_at: number;
  /** JSON array of { name, fingerprint } */
  custodians: string;
  reason: string;
  incident: string;
  imported_at: number;
  review_due_at: number;
  /** JSON of the review (reviewer, at, outcome, notes, followUps); null until reviewed */
  review: string | null;
  /** 1 while the envelope's own alarm for this opening is undelivered */
  alarm_pending: number;
  alarm_delivered_at: number | null;
}

export interface Database {
  grants: GrantsTable;
  grant_approvals: GrantApprovalsTable;
  audit_events: AuditEventsTable;
  audit_head: AuditHeadTable;
  audit_checkpoints: AuditCheckpointsTable;
  tokens: TokensTable;
  grant_credentials: GrantCredentialsTable;
  alarms: AlarmsTable;
  broker_state: BrokerStateTable;
  gateway_logins: GatewayLoginsTable;
  statement_batches: StatementBatchesTable;
  terminal_sessions: TerminalSessionsTable;
  terminal_events: TerminalEventsTable;
  web_sessions: WebSessionsTable;
  identities: IdentitiesTable;
  local_factors: LocalFactorsTable;
  auth_throttle: AuthThrottleTable;
  drill_runs: DrillRunsTable;
  vault_openings: VaultOpeningsTable;
}
