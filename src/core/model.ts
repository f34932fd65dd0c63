/**
 * The domain model, as `core` sees it: plain data, epoch-millisecond times, no I/O.
 * The configuration arrives here already parsed and checked (see `src/config`).
 */

/** `ended` carries an {@link EndReason}. See the state diagram in docs/grant-lifecycle.md. */
export type GrantState =
  | "requested"
  | "approved"
  | "active"
  | "ended"
  | "reviewed"
  | "denied"
  | "cancelled"
  | "approval_expired";

export type EndReason = "expired" | "revoked" | "released";

/** A grant's failed activations at its target (see Grant.activationFailure). */
export interface ActivationFailure {
  readonly attempts: number;
  readonly lastError: string;
  readonly lastAt: number;
  readonly nextAt: number | null;
}

/** What the broker believes exists at the target for this grant. */
export type AccessState = "none" | "granting" | "granted" | "revoking" | "revoked";

export const OPEN_STATES: readonly GrantState[] = ["requested", "approved", "active"];
export const TERMINAL_STATES: readonly GrantState[] = ["reviewed", "denied", "cancelled", "approval_expired"];

/** One term of an approval rule: `count` distinct approvers from `group`. */
export interface ApprovalTerm {
  readonly group: string;
  readonly count: number;
}

/**
 * An approval rule in disjunctive normal form: satisfied when every term of at least one
 * clause is satisfied by distinct approvers (one approver counts for one term only).
 * `"2 of sre-leads"` is `[[{group: "sre-leads", count: 2}]]`;
 * `"1 of security and 1 of dba"` is `[[{security,1},{dba,1}]]`.
 */
export interface ApprovalRule {
  readonly anyOf: readonly (readonly ApprovalTerm[])[];
}

export interface UserDef {
  readonly name: string;
  readonly displayName: string;
  readonly email: string | null;
  /** The group that manages this person (e-mailed about their grants when a channel asks). */
  readonly managerGroup: string | null;
}

export interface TargetDef {
  readonly name: string;
  readonly connector: string;
  /** Connector-specific settings, validated by the connector's own schema. */
  readonly settings: Readonly<Record<string, unknown>>;
}

export interface RoleDef {
  /** `domain/name`, unique across the configuration. */
  readonly id: string;
  readonly domain: string;
  readonly name: string;
  readonly description: string;
  readonly target: string;
  /** What the role grants on the target (connector-specific, e.g. PostgreSQL roles). */
  readonly grants: Readonly<Record<string, unknown>>;
  readonly defaultDurationS: number;
  readonly maxDurationS: number;
  readonly approval: ApprovalRule;
  /** Groups whose members may request this role. */
  readonly requesters: readonly string[];
  readonly emergencyAllowed: boolean;
  readonly reviewDeadlineS: number;
  /** Deadline of emergency activations and fallback grants (at most reviewDeadlineS). */
  readonly emergencyReviewDeadlineS?: number;
  /** Groups that review emergency activations and fallback grants; none listed: anyone independent. */
  readonly emergencyReviewers?: readonly string[];
  /** Tell the holder this long before the grant ends (0: never); see {@link warnTime}. */
  readonly endingWarningS: number;
  /** How loud a normal activation is (an emergency activation is always critical). */
  readonly alarmSeverity: AlarmSeverity;
  /** Statements the gateway refuses for this role; null when it has no guard. */
  readonly guard?: GuardRules | null;
  /**
   * Holders get a gateway login only, never the target's own credential (the role says
   * `gateway_only`, or its target is behind the gateway).
   */
  readonly gatewayOnly?: boolean;
  /** Record prepared statements' parameter values as `<redacted>`. */
  readonly redactParameters?: boolean;
  /** Record what is typed in `breakglass shell` sessions too (output is always recorded). */
  readonly recordTerminalInput?: boolean;
  readonly justificationMinLength: number;
  /** RegExp source an incident id must match in full. */
  readonly incidentPattern: string;
  /** A request not fully approved within this time lapses (`approval_expired`). */
  readonly approvalTimeoutS: number;
  /** An approved grant not activated within this time lapses (`approval_expired`). */
  readonly activationTimeoutS: number;
  /** Activate as soon as the approval rule is satisfied, without a separate `activate` call. */
  readonly autoActivate: boolean;
  /** A second factor verified at most this long ago is needed to activate or approve; null: none. */
  readonly stepUpS?: number | null;
  /** May be requested from a login via local fallback (IdP down). */
  readonly fallbackAllowed?: boolean;
}

export type AlarmSeverity = "critical" | "warning" | "info";

/** A statement-guard rule: a parse node type anywhere in the statement, with field conditions. */
export interface DenyRule {
  /** PostgreSQL parse node type, e.g. `DropStmt`, `TruncateStmt`. */
  readonly node: string;
  /** Conditions on the node's fields (`{removeType: "OBJECT_TABLE"}`); null means "absent". */
  readonly where?: Readonly<Record<string, unknown>>;
  /** How the rule is named in messages (`DROP TABLE`). */
  readonly label: string;
}

/** What the gateway refuses to run for a role. */
export interface GuardRules {
  /** Named rules (`drop_table`, `set_role`, …): what each refuses is in src/contract/guard-classes.ts. */
  readonly named: readonly string[];
  /** Custom rules. */
  readonly deny: readonly DenyRule[];
  /** Any statement naming a relation in these schemas is refused. */
  readonly denySchemas: readonly string[];
  /**
   * Roles `set_role` lets a session switch to: the recovery roles the grant holds at the target
   * (the gateway adds the grant's own role).
   */
  readonly setRoles: readonly string[];
}

export interface DomainDef {
  readonly name: string;
  readonly description: string;
}

/** The parsed configuration, as far as `core` needs it. Maps are keyed by name / role id. */
export interface Policy {
  readonly users: ReadonlyMap<string, UserDef>;
  /** group name → member user names */
  readonly groups: ReadonlyMap<string, ReadonlySet<string>>;
  readonly domains: ReadonlyMap<string, DomainDef>;
  readonly roles: ReadonlyMap<string, RoleDef>;
  readonly targets: ReadonlyMap<string, TargetDef>;
  /** Members of these groups may revoke any grant. */
  readonly adminGroups: readonly string[];
}

export interface Approval {
  readonly approver: string;
  readonly at: number;
  readonly comment: string | null;
}

export interface Grant {
  readonly id: string;
  readonly roleId: string;
  readonly domain: string;
  readonly target: string;
  readonly requester: string;
  readonly state: GrantState;
  readonly endReason: EndReason | null;
  readonly justification: string;
  readonly incident: string;
  readonly durationS: number;
  /** Self-activated without approval: a recorded policy bypass that must be reviewed. */
  readonly emergency: boolean;
  /** Requested from a login via local fallback (IdP down): flagged for review. */
  readonly viaFallback?: boolean;
  /** Part of a drill (`breakglass drill run`): its events say so, its alarms start with [DRILL]. */
  readonly drill?: boolean;
  readonly requestedAt: number;
  readonly approvedAt: number | null;
  readonly activatedAt: number | null;
  /** Set when activation begins; the credential at the target carries this end. */
  readonly endsAt: number | null;
  readonly endedAt: number | null;
  /** When an open request lapses if nothing happens (`approval_expired`). */
  readonly lapseAt: number | null;
  readonly reviewDueAt: number | null;
  /** When the holder is told the end is near (`grant.ending_soon`); null once told, or never. */
  readonly warnAt: number | null;
  /** When an overdue review was reported (`grant.review_overdue`); null until then. */
  readonly reviewOverdueAt: number | null;
  readonly approvals: readonly Approval[];
  /** Who ended, denied or cancelled the grant, and why. */
  readonly closedBy: string | null;
  readonly closeReason: string | null;
  readonly access: AccessState;
  /** The connector's handle for what it created at the target; saved before the target is called. */
  readonly accessHandle: Readonly<Record<string, unknown>> | null;
  readonly accessAttempts: number;
  readonly accessLastError: string | null;
  /** When the access work (finish granting, revoke, retry) must next be looked at. */
  readonly accessNextAt: number | null;
  /**
   * The target refused or failed this grant's activation: how often, its last error (sanitised),
   * and when the broker tries again by itself (null: no more automatic attempts — the grant lapses
   * first). Cleared when an activation succeeds; kept on a grant that lapsed, to say why.
   */
  readonly activationFailure: ActivationFailure | null;
  readonly review: GrantReview | null;
  /** Increments on every write; guards against lost updates. */
  readonly version: number;
}

/** An emergency activation or a grant from a fallback login: reviewed sooner, by the emergency reviewers. */
export const isEmergencyUse = (grant: Pick<Grant, "emergency" | "viaFallback">): boolean =>
  grant.emergency || grant.viaFallback === true;

export type ReviewOutcome = "justified" | "justified_with_findings" | "unjustified";

/** Something to do after a review, and who does it. */
export interface FollowUp {
  readonly action: string;
  readonly owner: string;
  /** Epoch ms, when a date was given. */
  readonly due: number | null;
}

export interface GrantReview {
  readonly reviewer: string;
  readonly at: number;
  readonly outcome: ReviewOutcome;
  readonly notes: string;
  readonly followUps?: readonly FollowUp[];
}

/**
 * A tier-2 envelope opening, imported from its signed opening record: reviewed like an emergency
 * activation (by the vault's reviewers, never by a custodian who opened it).
 */
export interface VaultOpening {
  /** `vo_<envelope id>_<record seq>`. */
  readonly id: string;
  readonly envelopeId: string;
  readonly envelopeName: string;
  readonly recordSeq: number;
  readonly recordHash: string;
  readonly openedAt: number;
  /** The custodians who opened it, by the names and fingerprints the envelope gives them. */
  readonly custodians: readonly { readonly name: string; readonly fingerprint: string }[];
  readonly reason: string;
  readonly incident: string;
  readonly importedAt: number;
  readonly reviewDueAt: number;
  readonly review: GrantReview | null;
  /**
   * The envelope's own alarm (told by the CLI at the opening): true while no endpoint has taken it
   * (pending at the opening, and no delivery receipt imported since) — posture is red meanwhile.
   */
  readonly alarmPending: boolean;
  /** When the envelope's alarm was delivered: at the opening, or later by `vault flush-alarms`; null while pending (or unknown for openings imported before this was recorded). */
  readonly alarmDeliveredAt: number | null;
}
