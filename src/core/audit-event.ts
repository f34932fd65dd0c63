/** Every kind of audit event Breakglass writes. Grant transitions write exactly one each. */
export type AuditEventType =
  | "grant.requested"
  | "grant.approval_added"
  | "grant.approved"
  | "grant.denied"
  | "grant.cancelled"
  | "grant.activated"
  | "grant.emergency_activated"
  | "grant.expired"
  | "grant.revoked"
  | "grant.released"
  | "grant.approval_expired"
  | "grant.reviewed"
  | "target.grant_started"
  | "target.grant_failed"
  | "target.revoked"
  | "target.revoke_failed"
  | "target.side_permission_swept"
  | "target.drift_fixed"
  | "target.drift_reported"
  | "target.containment_drift"
  | "grant.containment_resolved"
  | "grant.credential_read"
  | "grant.recording_read"
  | "grant.terminal_started"
  | "grant.terminal_ended"
  | "grant.terminal_late_events"
  | "target.unauthorized_login"
  | "alarm.acknowledged"
  | "alarm.delivered"
  | "alarm.deliveries_sealed"
  | "alarm.escalated"
  | "alarm.channel_failing"
  | "alarm.channel_recovered"
  | "grant.extended"
  | "grant.ending_soon"
  | "grant.review_overdue"
  | "config.changed"
  | "gateway.session_started"
  | "gateway.session_ended"
  | "gateway.statement_blocked"
  | "token.created"
  | "token.revoked"
  | "auth.login"
  | "auth.login_refused"
  | "auth.logout"
  | "auth.fallback_login"
  | "auth.locked_out"
  | "auth.factor_enrolled"
  | "auth.factor_removed"
  | "auth.recovery_code_used"
  | "auth.step_up"
  | "auth.idp_declared"
  | "drill.started"
  | "drill.finished"
  | "vault.opened"
  | "vault.opening_reviewed"
  | "vault.alarm_delivered"
  | "vault.review_overdue"
  | "credential.rotated"
  | "credential.rotation_overdue"
  | "credential.rotation_failed";

/** An audit event before the log gives it a sequence number and a place in the chain. */
export interface AuditEventDraft {
  readonly type: AuditEventType;
  /** Who did it: a user name, or `system` for the broker's own workers. */
  readonly actor: string;
  readonly at: number;
  readonly grantId: string | null;
  readonly roleId: string | null;
  readonly domain: string | null;
  readonly target: string | null;
  readonly justification: string | null;
  readonly incident: string | null;
  readonly requestId: string | null;
  readonly sourceAddress: string | null;
  /** Event-specific facts (never secrets). */
  readonly data: Readonly<Record<string, unknown>>;
}

/**
 * An event that is not about a grant: the broker's own (configuration, alarm channels), a
 * target's (drift, unauthorized use), a token's.
 */
export function nonGrantEvent(
  type: AuditEventType,
  actor: string,
  at: number,
  data: Readonly<Record<string, unknown>>,
  target: string | null = null,
): AuditEventDraft {
  return {
    type,
    actor,
    at,
    grantId: null,
    roleId: null,
    domain: null,
    target,
    justification: null,
    incident: null,
    requestId: null,
    sourceAddress: null,
    data,
  };
}

/** An audit event as stored: its canonical payload and its place in the hash chain. */
export interface SealedAuditEvent {
  readonly seq: number;
  readonly at: number;
  readonly type: AuditEventType;
  readonly actor: string;
  readonly grantId: string | null;
  /** RFC 8785 canonical JSON of the event, the exact bytes the hash covers. */
  readonly payload: string;
  /** Hex SHA-256 of the previous event's hash bytes followed by this payload. */
  readonly hash: string;
}

/**
 * The columns an audit row keeps beside its payload, as stored. They repeat payload fields so
 * events can be looked up (by grant, by type) without parsing, and they are *only* an index: an
 * insider can edit them without touching the hashed payload. Nothing shown to a person is taken
 * from them; `audit verify` compares them with the payload and names any that differ.
 */
export interface AuditColumns {
  readonly at: number;
  readonly type: string;
  readonly actor: string;
  readonly grantId: string | null;
}

/**
 * An audit row as read back from storage. `at`, `type`, `actor` and `grantId` are what the hashed
 * payload states (a row whose payload is not a readable event keeps its columns there; it never
 * verifies, and `checkStoredEvent` refuses it); `columns` are the index columns as stored, for
 * verification to compare.
 */
export interface StoredAuditEvent extends SealedAuditEvent {
  readonly columns: AuditColumns;
}

/**
 * A stored row with what a reader needs to check it on its own: the hash of the row before it
 * (it must chain from that) and the row after it (which must chain from this one), so an edit of
 * this row's payload or hash shows without verifying the whole log.
 */
export interface LinkedAuditEvent extends StoredAuditEvent {
  /** Hash column of the row at seq − 1 (the genesis hash for seq 1); null when that row is missing. */
  readonly prevHash: string | null;
  /** The row at seq + 1; null when this is the newest row (or the next one is missing). */
  readonly next: { readonly payload: string; readonly hash: string } | null;
}
