/**
 * The grant lifecycle as pure functions: each takes the current grant and the facts of one
 * action and returns the next grant plus exactly one audit event, or throws a BreakglassError.
 * No I/O, no clock: `now` is an argument. See docs/grant-lifecycle.md for the diagram.
 */
import { groupsOf, ruleSatisfied } from "./approval-policy.js";
import type { AuditEventDraft, AuditEventType } from "./audit-event.js";
import {
  approverGroups,
  isApprover,
  isApproverOrAdmin,
  isHolder,
  isRequesterOf,
  mayExtend,
  reviewRefusal,
} from "./authorization.js";
import type { DriftItem } from "./containment-drift.js";
import { BreakglassError } from "./errors.js";
import {
  type FollowUp,
  type Grant,
  type GrantReview,
  type GrantState,
  isEmergencyUse,
  type Policy,
  type ReviewOutcome,
  type RoleDef,
} from "./model.js";
import { unknownRoleHint } from "./suggest.js";
import { requirePlainText, visibleLength } from "./text.js";

export const SYSTEM_ACTOR = "system";

/** How long an activation may take at the target before the broker treats it as abandoned (same default). */
export const ACTIVATION_LEASE_MS = 120_000;
/**
 * How long one revocation attempt may hold its claim before another worker may retry it, when
 * the connector does not say how long its calls may take (see `leaseFor` in the access controller).
 */
export const REVOCATION_LEASE_MS = 120_000;
const BACKOFF_BASE_MS = 1_000;
const BACKOFF_CAP_MS = 300_000;
/**
 * A failed activation is tried again after 2 s, 4 s, 8 s … at most a minute apart — the holder is
 * waiting, and a target that was down (the reason for breaking the glass) may be back any moment.
 */
const ACTIVATION_RETRY_BASE_MS = 2_000;
const ACTIVATION_RETRY_CAP_MS = 60_000;

export interface Transition {
  readonly grant: Grant;
  readonly event: AuditEventDraft;
}

export interface RequestInput {
  readonly id: string;
  readonly requester: string;
  readonly roleId: string;
  readonly justification: string;
  readonly incident: string;
  readonly durationS?: number | undefined;
  readonly emergency?: boolean | undefined;
  /** The requester signed in via local fallback (IdP down): only roles allowing it, flagged for review. */
  readonly viaFallback?: boolean | undefined;
  /** A drill's grant: the real path, tagged so nobody mistakes it for an emergency. */
  readonly drill?: boolean | undefined;
}

/** Without a configured one, emergency activations are reviewed within 24 h. */
const EMERGENCY_REVIEW_S = 86_400;

/** Seconds after its end by which a grant must be reviewed. */
function reviewDeadlineS(r: RoleDef | undefined, grant: Grant): number {
  const base = r?.reviewDeadlineS ?? EMERGENCY_REVIEW_S;
  return isEmergencyUse(grant) ? (r?.emergencyReviewDeadlineS ?? Math.min(base, EMERGENCY_REVIEW_S)) : base;
}

/**
 * A drill's grant is a rehearsal run by the broker, not a person's use of privilege: its record
 * is the drill run (`drill.started`/`drill.finished`, every step timed), so it is never put in
 * front of a human reviewer. It ends in `ended` and stays there — no review deadline, no
 * overdue alarm, and `review` refuses it (no verdict is ever recorded for a use that was none).
 */
const isDrill = (grant: Grant): boolean => grant.drill === true;

/** An ended grant waiting for its review (a drill's grant never is). */
export function awaitsReview(grant: Grant): boolean {
  return grant.state === "ended" && !isDrill(grant);
}

/** When `grant`, ending at `endsAt`, must be reviewed by; null for a drill's grant. */
function reviewDueAt(r: RoleDef | undefined, grant: Grant, endsAt: number): number | null {
  return isDrill(grant) ? null : endsAt + reviewDeadlineS(r, grant) * 1000;
}

function role(policy: Policy, roleId: string): RoleDef {
  const r = policy.roles.get(roleId);
  if (!r) throw new BreakglassError("ERR_NOT_FOUND", `no role "${roleId}" is configured`, { roleId });
  return r;
}

/** The audit event of something that happened to `grant` (its facts copied into the event). */
export function grantEvent(
  grant: Grant,
  type: AuditEventType,
  actor: string,
  at: number,
  data: Record<string, unknown> = {},
): AuditEventDraft {
  return {
    type,
    actor,
    at,
    grantId: grant.id,
    roleId: grant.roleId,
    domain: grant.domain,
    target: grant.target,
    justification: grant.justification,
    incident: grant.incident,
    requestId: null,
    sourceAddress: null,
    // Every event of a drill's grant says so: receivers and auditors can tell it from a real use.
    data: grant.drill === true ? { ...data, drill: true } : data,
  };
}

function requireState(grant: Grant, action: string, allowed: readonly GrantState[]): void {
  if (!allowed.includes(grant.state)) {
    throw new BreakglassError(
      "ERR_INVALID_TRANSITION",
      `cannot ${action} grant ${grant.id}: it is ${describeState(grant)}; ${action} needs ${allowed.join(" or ")}`,
      { grantId: grant.id, state: grant.state, action, allowed },
    );
  }
}

export function describeState(grant: Pick<Grant, "state" | "endReason">): string {
  return grant.state === "ended" && grant.endReason ? `ended (${grant.endReason})` : grant.state;
}

/** Access that may exist at the target and must be revoked once the grant is no longer active. */
function mayHoldAccess(grant: Grant): boolean {
  return grant.access === "granting" || grant.access === "granted" || grant.access === "revoking";
}

/** Close the window: the grant leaves `active`, and whatever exists at the target is due for revocation now. */
function closeAccess(grant: Grant, now: number): Pick<Grant, "access" | "accessNextAt" | "accessAttempts"> {
  return mayHoldAccess(grant)
    ? { access: "revoking", accessNextAt: now, accessAttempts: 0 }
    : { access: grant.access, accessNextAt: null, accessAttempts: grant.accessAttempts };
}

/** Has the open request's deadline passed? The worker may lapse it from this instant on. */
function hasLapsed(grant: Grant, now: number): boolean {
  return grant.lapseAt !== null && grant.lapseAt <= now;
}

/** A lapsed request must not be approved or activated just because the worker has not run yet. */
function requireNotLapsed(grant: Grant, action: string, now: number): void {
  if (hasLapsed(grant, now)) {
    throw new BreakglassError(
      "ERR_INVALID_TRANSITION",
      `cannot ${action} grant ${grant.id}: it lapsed at ${grant.lapseAt} (${grant.state === "requested" && !grant.emergency ? "approval" : "activation"} timeout); request it again`,
      { grantId: grant.id, state: grant.state, action, lapseAt: grant.lapseAt },
    );
  }
}

function bump(grant: Grant, patch: Partial<Grant>): Grant {
  return { ...grant, ...patch, version: grant.version + 1 };
}

/**
 * Create a grant request.
 * @throws ERR_NOT_FOUND, ERR_NOT_ELIGIBLE_REQUESTER, ERR_EMERGENCY_NOT_ALLOWED,
 *   ERR_JUSTIFICATION_REQUIRED, ERR_INCIDENT_REQUIRED, ERR_DURATION_EXCEEDS_MAX, ERR_VALIDATION,
 *   ERR_OPEN_GRANT_EXISTS (when `openGrant` is the requester's open grant of the same role)
 */
export function requestGrant(policy: Policy, input: RequestInput, now: number, openGrant: Grant | null): Transition {
  const r = policy.roles.get(input.roleId);
  if (!r) {
    throw new BreakglassError(
      "ERR_NOT_FOUND",
      `no role "${input.roleId}" is configured; ${unknownRoleHint(input.roleId, policy.roles.keys())}`,
      { roleId: input.roleId },
    );
  }
  if (!policy.users.has(input.requester)) {
    throw new BreakglassError("ERR_NOT_ELIGIBLE_REQUESTER", `"${input.requester}" is not a configured user`, {
      user: input.requester,
    });
  }
  if (!isRequesterOf(policy, r, input.requester)) {
    throw new BreakglassError(
      "ERR_NOT_ELIGIBLE_REQUESTER",
      `${input.requester} may not request ${r.id}: requesters must be in ${r.requesters.join(" or ")}`,
      { user: input.requester, roleId: r.id, requesters: r.requesters },
    );
  }
  const viaFallback = input.viaFallback === true;
  if (viaFallback && r.fallbackAllowed !== true) {
    throw new BreakglassError(
      "ERR_FORBIDDEN",
      `${r.id} cannot be requested from a login via local fallback (the IdP is down); roles with \`fallback: true\` can — or sign in through the IdP once it is back`,
      { roleId: r.id, reason: "fallback_not_allowed" },
    );
  }
  const emergency = input.emergency === true;
  if (emergency && !r.emergencyAllowed) {
    throw new BreakglassError(
      "ERR_EMERGENCY_NOT_ALLOWED",
      `${r.id} does not allow emergency self-activation; request it for approval instead`,
      { roleId: r.id },
    );
  }
  const justification = input.justification.trim();
  const incident = input.incident.trim();
  requirePlainText("justification", justification, "prose");
  requirePlainText("incident", incident, "line");
  // Zero-width spaces or NULs are not a justification: only what a reader can see counts.
  const visible = visibleLength(justification);
  if (visible < r.justificationMinLength) {
    throw new BreakglassError(
      "ERR_JUSTIFICATION_REQUIRED",
      `a justification of at least ${r.justificationMinLength} visible characters is required for ${r.id} (got ${visible})`,
      { roleId: r.id, minLength: r.justificationMinLength, length: visible },
    );
  }
  // Every request names its incident, even where a permissive pattern (`.*`) would match nothing.
  if (incident === "" || !new RegExp(`^(?:${r.incidentPattern})$`).test(incident)) {
    throw new BreakglassError(
      "ERR_INCIDENT_REQUIRED",
      incident === ""
        ? `an incident id is required for ${r.id} (pattern ${r.incidentPattern})`
        : `incident id "${incident}" does not match ${r.incidentPattern} required by ${r.id}`,
      { roleId: r.id, pattern: r.incidentPattern },
    );
  }
  const durationS = input.durationS ?? r.defaultDurationS;
  if (!Number.isInteger(durationS) || durationS <= 0) {
    throw new BreakglassError("ERR_VALIDATION", "duration must be a positive whole number of seconds", {
      durationS,
    });
  }
  if (durationS > r.maxDurationS) {
    throw new BreakglassError(
      "ERR_DURATION_EXCEEDS_MAX",
      `duration ${durationS}s exceeds the maximum of ${r.maxDurationS}s for ${r.id}`,
      { roleId: r.id, durationS, maxDurationS: r.maxDurationS },
    );
  }
  if (openGrant) {
    throw new BreakglassError(
      "ERR_OPEN_GRANT_EXISTS",
      `${input.requester} already has grant ${openGrant.id} for ${r.id} (${describeState(openGrant)}); release or cancel it first — nothing is extended silently`,
      { grantId: openGrant.id, state: openGrant.state, roleId: r.id },
    );
  }
  const grant: Grant = {
    id: input.id,
    roleId: r.id,
    domain: r.domain,
    target: r.target,
    requester: input.requester,
    state: "requested",
    endReason: null,
    justification,
    incident,
    durationS,
    emergency,
    ...(viaFallback ? { viaFallback } : {}),
    ...(input.drill === true ? { drill: true } : {}),
    requestedAt: now,
    approvedAt: null,
    activatedAt: null,
    endsAt: null,
    endedAt: null,
    lapseAt: now + (emergency ? r.activationTimeoutS : r.approvalTimeoutS) * 1000,
    reviewDueAt: null,
    warnAt: null,
    reviewOverdueAt: null,
    approvals: [],
    closedBy: null,
    closeReason: null,
    access: "none",
    accessHandle: null,
    accessAttempts: 0,
    accessLastError: null,
    accessNextAt: null,
    activationFailure: null,
    review: null,
    version: 1,
  };
  return {
    grant,
    event: grantEvent(grant, "grant.requested", input.requester, now, {
      durationS,
      emergency,
      ...(viaFallback ? { viaFallback } : {}),
    }),
  };
}

/**
 * Record one approval; the grant becomes `approved` when the role's rule is satisfied.
 * @throws ERR_INVALID_TRANSITION (also when the request has lapsed), ERR_SELF_APPROVAL, ERR_DUPLICATE_APPROVAL, ERR_NOT_ELIGIBLE_APPROVER
 */
export function approveGrant(
  policy: Policy,
  grant: Grant,
  approver: string,
  comment: string | null,
  now: number,
): Transition {
  // First: someone who already approved is told so, whatever the grant's state has become since.
  if (grant.approvals.some((a) => a.approver === approver)) {
    throw new BreakglassError("ERR_DUPLICATE_APPROVAL", `${approver} has already approved grant ${grant.id}`, {
      grantId: grant.id,
      user: approver,
    });
  }
  requireState(grant, "approve", ["requested"]);
  if (comment !== null) requirePlainText("comment", comment, "prose");
  if (grant.emergency) {
    throw new BreakglassError(
      "ERR_INVALID_TRANSITION",
      `grant ${grant.id} is an emergency activation; it is reviewed afterwards, not approved`,
      { grantId: grant.id },
    );
  }
  if (isHolder(grant, approver)) {
    throw new BreakglassError("ERR_SELF_APPROVAL", `${approver} requested grant ${grant.id} and cannot approve it`, {
      grantId: grant.id,
      user: approver,
    });
  }
  requireNotLapsed(grant, "approve", now);
  const r = role(policy, grant.roleId);
  if (!isApprover(policy, r.id, approver)) {
    const eligible = [...approverGroups(policy, r.id)];
    throw new BreakglassError(
      "ERR_NOT_ELIGIBLE_APPROVER",
      `${approver} cannot approve ${r.id}: approvers must be in ${eligible.join(" or ")}`,
      { grantId: grant.id, user: approver, groups: eligible },
    );
  }
  const approvals = [...grant.approvals, { approver, at: now, comment }];
  const membership = (u: string): Set<string> => groupsOf(policy, u);
  const done = ruleSatisfied(
    r.approval,
    approvals.map((a) => a.approver),
    membership,
  );
  const next = bump(
    grant,
    done
      ? { approvals, state: "approved", approvedAt: now, lapseAt: now + r.activationTimeoutS * 1000 }
      : { approvals },
  );
  return {
    grant: next,
    event: grantEvent(next, done ? "grant.approved" : "grant.approval_added", approver, now, {
      approver,
      comment,
      approvals: approvals.length,
    }),
  };
}

/** @throws ERR_INVALID_TRANSITION, ERR_SELF_APPROVAL, ERR_NOT_ELIGIBLE_APPROVER */
export function denyGrant(policy: Policy, grant: Grant, actor: string, reason: string, now: number): Transition {
  requireState(grant, "deny", ["requested", "approved"]);
  requireNoActivationInFlight(grant, "deny");
  if (isHolder(grant, actor)) {
    throw new BreakglassError("ERR_SELF_APPROVAL", `${actor} cannot decide on their own grant; cancel it instead`, {
      grantId: grant.id,
    });
  }
  const r = role(policy, grant.roleId);
  if (!isApproverOrAdmin(policy, r.id, actor)) {
    throw new BreakglassError("ERR_NOT_ELIGIBLE_APPROVER", `${actor} cannot deny ${r.id}`, {
      grantId: grant.id,
      user: actor,
    });
  }
  requireReason(reason, "deny");
  const next = bump(grant, {
    state: "denied",
    closedBy: actor,
    closeReason: reason,
    endedAt: now,
    lapseAt: null,
    // An approved grant may be mid-activation: whatever the target made is due for revocation now.
    ...closeAccess(grant, now),
  });
  return { grant: next, event: grantEvent(next, "grant.denied", actor, now, { reason }) };
}

function requireReason(reason: string, action: string): void {
  requirePlainText("reason", reason, "prose");
  if (reason.trim().length === 0) {
    throw new BreakglassError("ERR_VALIDATION", `a reason is required to ${action} a grant`, { field: "reason" });
  }
}

/** The requester withdraws a request that is not active yet. @throws ERR_INVALID_TRANSITION, ERR_FORBIDDEN */
export function cancelGrant(grant: Grant, actor: string, reason: string, now: number): Transition {
  requireState(grant, "cancel", ["requested", "approved"]);
  requirePlainText("reason", reason, "prose");
  requireNoActivationInFlight(grant, "cancel");
  if (!isHolder(grant, actor)) {
    throw new BreakglassError("ERR_FORBIDDEN", `only the requester (${grant.requester}) can cancel grant ${grant.id}`, {
      grantId: grant.id,
    });
  }
  const next = bump(grant, {
    state: "cancelled",
    closedBy: actor,
    closeReason: reason,
    endedAt: now,
    lapseAt: null,
    ...closeAccess(grant, now),
  });
  return { grant: next, event: grantEvent(next, "grant.cancelled", actor, now, { reason }) };
}

/**
 * First half of activation, as a row change only: fix the end time, mark access `granting` and
 * save the connector's handle *before* the target is called, so a crash mid-call leaves a record
 * of what may exist there. No audit event (the state does not change until
 * {@link completeActivation}); {@link startActivation} is this with its event.
 * @throws ERR_INVALID_TRANSITION (also when the grant has lapsed), ERR_FORBIDDEN, ERR_CONFLICT
 */
export function markGranting(
  grant: Grant,
  actor: string,
  handle: Readonly<Record<string, unknown>>,
  now: number,
  leaseMs: number = ACTIVATION_LEASE_MS,
): Grant {
  if (!(grant.state === "approved" || (grant.state === "requested" && grant.emergency))) {
    requireState(grant, "activate", grant.emergency ? ["requested"] : ["approved"]);
  }
  if (!isHolder(grant, actor) && actor !== SYSTEM_ACTOR) {
    throw new BreakglassError(
      "ERR_FORBIDDEN",
      `only the requester (${grant.requester}) can activate grant ${grant.id}`,
      {
        grantId: grant.id,
      },
    );
  }
  if (grant.access !== "none" && grant.access !== "revoked") {
    throw new BreakglassError(
      "ERR_CONFLICT",
      `grant ${grant.id} has access work in progress (${grant.access}); try again shortly`,
      { grantId: grant.id, access: grant.access },
    );
  }
  requireNotLapsed(grant, "activate", now);
  return bump(grant, {
    endsAt: now + grant.durationS * 1000,
    access: "granting",
    accessHandle: handle,
    accessNextAt: now + leaseMs,
    accessAttempts: 0,
    accessLastError: null,
  });
}

/**
 * {@link markGranting} with its audit event (`target.grant_started`), written in the same
 * transaction before the target is called: if the audit log cannot take it, nothing is created
 * at the target (fail closed).
 */
export function startActivation(
  grant: Grant,
  actor: string,
  handle: Readonly<Record<string, unknown>>,
  now: number,
  leaseMs: number = ACTIVATION_LEASE_MS,
): Transition {
  const next = markGranting(grant, actor, handle, now, leaseMs);
  return {
    grant: next,
    event: grantEvent(next, "target.grant_started", actor, now, {
      endsAt: next.endsAt,
      leaseUntil: next.accessNextAt,
      handle,
    }),
  };
}

/** Deciding on a grant while the target is being called would race the activation: refuse, briefly. */
function requireNoActivationInFlight(grant: Grant, action: string): void {
  if (grant.access === "granting") {
    throw new BreakglassError(
      "ERR_CONFLICT",
      `cannot ${action} grant ${grant.id} while its activation at the target is in progress; try again in a few seconds`,
      { grantId: grant.id, access: grant.access },
    );
  }
}

/**
 * Second half: the target granted access; the window is open. `targetDetail` is what the
 * connector reported (e.g. command output), kept in the audit event.
 * @throws ERR_INVALID_TRANSITION, ERR_CONFLICT
 */
export function completeActivation(
  grant: Grant,
  actor: string,
  now: number,
  policy: Policy,
  targetDetail: Readonly<Record<string, unknown>> = {},
  handleUpdate: Readonly<Record<string, unknown>> = {},
): Transition {
  requireState(grant, "activate", grant.emergency ? ["requested"] : ["approved"]);
  if (grant.access !== "granting" || grant.endsAt === null) {
    throw new BreakglassError("ERR_CONFLICT", `activation of grant ${grant.id} was abandoned`, {
      grantId: grant.id,
      access: grant.access,
    });
  }
  const r = role(policy, grant.roleId);
  const next = bump(grant, {
    state: "active",
    activatedAt: now,
    lapseAt: null,
    access: "granted",
    accessHandle:
      Object.keys(handleUpdate).length > 0 ? { ...grant.accessHandle, ...handleUpdate } : grant.accessHandle,
    accessNextAt: null,
    activationFailure: null,
    reviewDueAt: reviewDueAt(r, grant, grant.endsAt),
    warnAt: warnTime(r, now, grant.endsAt),
  });
  const type = grant.emergency ? "grant.emergency_activated" : "grant.activated";
  const data: Record<string, unknown> = { endsAt: grant.endsAt, durationS: grant.durationS };
  if (grant.activationFailure) data.afterFailedAttempts = grant.activationFailure.attempts;
  if (grant.emergency) data.policyBypass = true;
  if (Object.keys(targetDetail).length > 0) data.target = targetDetail;
  return { grant: next, event: grantEvent(next, type, actor, now, data) };
}

/** When a failed activation is tried again: 2 s, 4 s, 8 s … capped at a minute. */
export function activationRetryMs(attempts: number): number {
  return Math.min(ACTIVATION_RETRY_BASE_MS * 2 ** Math.max(0, attempts - 1), ACTIVATION_RETRY_CAP_MS);
}

/**
 * The target refused or failed; anything half-made there is revoked. The state stays as it was,
 * and the grant says why (`activationFailure`: attempts, the target's error, the next attempt):
 * the broker tries again by itself with backoff while the grant can still be activated (until it
 * lapses — `activation_timeout` after its approval, or after an emergency request); the holder can
 * activate again at any time.
 * @throws ERR_INVALID_TRANSITION on an active grant: its activation completed, and clearing `endsAt`
 *   would leave a window that never expires.
 */
export function failActivation(
  grant: Grant,
  error: string,
  now: number,
  targetDetail: Readonly<Record<string, unknown>> = {},
): Transition {
  if (grant.state === "active") {
    throw new BreakglassError(
      "ERR_INVALID_TRANSITION",
      `activation of grant ${grant.id} already completed; revoke or release it instead`,
      { grantId: grant.id, state: grant.state },
    );
  }
  const attempts = (grant.activationFailure?.attempts ?? 0) + 1;
  const retryAt = now + activationRetryMs(attempts);
  // No automatic attempt the grant would not live to see: it lapses first, saying why.
  const nextAt = grant.lapseAt !== null && retryAt >= grant.lapseAt ? null : retryAt;
  const next = bump(grant, {
    endsAt: null,
    access: "revoking",
    accessNextAt: now,
    accessAttempts: 0,
    accessLastError: error,
    activationFailure: { attempts, lastError: error, lastAt: now, nextAt },
  });
  const data: Record<string, unknown> = {
    error,
    attempt: attempts,
    nextAttemptAt: nextAt,
    emergency: grant.emergency,
    holder: grant.requester,
  };
  if (Object.keys(targetDetail).length > 0) data.target = targetDetail;
  return { grant: next, event: grantEvent(next, "target.grant_failed", SYSTEM_ACTOR, now, data) };
}

/**
 * Who answers a grant's activation alarm (acknowledging it stops its escalation): approvers of
 * its role and admins, once it was activated.
 * @throws ERR_FORBIDDEN, ERR_INVALID_TRANSITION (never activated: no alarm to acknowledge)
 */
export function requireAcknowledger(policy: Policy, grant: Grant, actor: string): void {
  if (!isApproverOrAdmin(policy, grant.roleId, actor)) {
    throw new BreakglassError(
      "ERR_FORBIDDEN",
      `${actor} cannot acknowledge grant ${grant.id}: only approvers of ${grant.roleId} and admins respond to its alarms`,
      { grantId: grant.id },
    );
  }
  if (grant.activatedAt === null) {
    throw new BreakglassError(
      "ERR_INVALID_TRANSITION",
      `grant ${grant.id} was never activated; there is no alarm to acknowledge`,
      { grantId: grant.id },
    );
  }
}

/**
 * Only the holder reads a grant's credential, only while its window is open, and a drill's grant
 * only from within the drill (`byDrill`).
 * @throws ERR_FORBIDDEN (not the holder; a drill's grant outside its drill), ERR_INVALID_TRANSITION (not active)
 */
export function requireCredentialReader(grant: Grant, actor: string, now: number, byDrill = false): void {
  if (!isHolder(grant, actor)) {
    throw new BreakglassError(
      "ERR_FORBIDDEN",
      `only the holder (${grant.requester}) can read the credential of grant ${grant.id}`,
      { grantId: grant.id },
    );
  }
  // A drill's grant is nobody's to use: a credential read outside the drill would be access that
  // no review ever looks at (drill grants skip the review queue).
  if (grant.drill === true && !byDrill) {
    throw new BreakglassError(
      "ERR_FORBIDDEN",
      `grant ${grant.id} belongs to a drill: only the drill itself reads its credential`,
      { grantId: grant.id, drill: true },
    );
  }
  if (grant.state !== "active" || grant.access !== "granted" || grant.endsAt === null || grant.endsAt <= now) {
    throw new BreakglassError("ERR_INVALID_TRANSITION", `grant ${grant.id} is not active; its credential is gone`, {
      grantId: grant.id,
      state: grant.state,
    });
  }
}

/**
 * An approver of the role, or an admin, ends a grant early (or stops an approved one).
 * @throws ERR_INVALID_TRANSITION, ERR_FORBIDDEN, ERR_VALIDATION
 */
export function revokeGrant(policy: Policy, grant: Grant, actor: string, reason: string, now: number): Transition {
  requireState(grant, "revoke", ["active", "approved"]);
  requireNoActivationInFlight(grant, "revoke");
  const r = role(policy, grant.roleId);
  if (!isApproverOrAdmin(policy, r.id, actor)) {
    throw new BreakglassError(
      "ERR_FORBIDDEN",
      `${actor} cannot revoke grant ${grant.id}: only approvers of ${r.id} or admins can; the holder can release it`,
      { grantId: grant.id },
    );
  }
  requireReason(reason, "revoke");
  return end(grant, "revoked", actor, now, reason, policy);
}

/** The holder gives the access back early. @throws ERR_INVALID_TRANSITION, ERR_FORBIDDEN */
export function releaseGrant(policy: Policy, grant: Grant, actor: string, now: number): Transition {
  requireState(grant, "release", ["active"]);
  if (!isHolder(grant, actor)) {
    throw new BreakglassError("ERR_FORBIDDEN", `only the holder (${grant.requester}) can release grant ${grant.id}`, {
      grantId: grant.id,
    });
  }
  return end(grant, "released", actor, now, null, policy);
}

/**
 * The holder (or an admin) extends an active grant by `extraS` seconds, within the role's
 * maximum duration counted from activation. The caller moves the target-side expiry first.
 * @throws ERR_INVALID_TRANSITION, ERR_FORBIDDEN, ERR_DURATION_EXCEEDS_MAX, ERR_VALIDATION
 */
export function extendGrant(
  policy: Policy,
  grant: Grant,
  actor: string,
  extraS: number,
  reason: string,
  now: number,
): Transition {
  requireState(grant, "extend", ["active"]);
  if (!mayExtend(policy, grant, actor)) {
    throw new BreakglassError(
      "ERR_FORBIDDEN",
      `only the holder (${grant.requester}) or an admin can extend grant ${grant.id}`,
      {
        grantId: grant.id,
      },
    );
  }
  if (!Number.isInteger(extraS) || extraS <= 0) {
    throw new BreakglassError("ERR_VALIDATION", "an extension must be a positive whole number of seconds", { extraS });
  }
  requireReason(reason, "extend");
  if (grant.access !== "granted" || grant.endsAt === null || grant.endsAt <= now) {
    throw new BreakglassError("ERR_INVALID_TRANSITION", `grant ${grant.id} is ending; request a new grant instead`, {
      grantId: grant.id,
      access: grant.access,
    });
  }
  const r = role(policy, grant.roleId);
  const durationS = grant.durationS + extraS;
  if (durationS > r.maxDurationS) {
    throw new BreakglassError(
      "ERR_DURATION_EXCEEDS_MAX",
      `grant ${grant.id} would last ${durationS}s in total, more than ${r.id} allows (${r.maxDurationS}s); request a new grant`,
      { grantId: grant.id, durationS, maxDurationS: r.maxDurationS },
    );
  }
  const endsAt = grant.endsAt + extraS * 1000;
  const next = bump(grant, {
    durationS,
    endsAt,
    reviewDueAt: reviewDueAt(r, grant, endsAt),
    // Warned again before the new end (the old warning, if any, no longer holds).
    warnAt: warnTime(r, now, endsAt),
  });
  return {
    grant: next,
    event: grantEvent(next, "grant.extended", actor, now, { from: grant.endsAt, to: endsAt, extraS, reason }),
  };
}

/** The window closed on time. @throws ERR_INVALID_TRANSITION */
export function expireGrant(policy: Policy, grant: Grant, now: number): Transition {
  requireState(grant, "expire", ["active"]);
  if (grant.endsAt === null || grant.endsAt > now) {
    throw new BreakglassError("ERR_INVALID_TRANSITION", `grant ${grant.id} has not reached its end`, {
      grantId: grant.id,
    });
  }
  return end(grant, "expired", SYSTEM_ACTOR, now, null, policy);
}

function end(
  grant: Grant,
  reason: "expired" | "revoked" | "released",
  actor: string,
  now: number,
  why: string | null,
  policy: Policy,
): Transition {
  const r = policy.roles.get(grant.roleId);
  const next = bump(grant, {
    state: "ended",
    endReason: reason,
    endedAt: now,
    closedBy: actor,
    closeReason: why,
    lapseAt: null,
    reviewDueAt: reviewDueAt(r, grant, now),
    warnAt: null,
    ...closeAccess(grant, now),
  });
  const data: Record<string, unknown> = {
    endsAt: grant.endsAt,
    lagMs: grant.endsAt === null ? null : now - grant.endsAt,
  };
  if (why !== null) data.reason = why;
  return { grant: next, event: grantEvent(next, `grant.${reason}`, actor, now, data) };
}

/**
 * A request nobody approved, or an approval nobody used, lapses.
 * @throws ERR_INVALID_TRANSITION, ERR_CONFLICT (while an activation is in flight)
 */
export function lapseGrant(grant: Grant, now: number): Transition {
  requireState(grant, "lapse", ["requested", "approved"]);
  if (!hasLapsed(grant, now)) {
    throw new BreakglassError("ERR_INVALID_TRANSITION", `grant ${grant.id} has not lapsed`, { grantId: grant.id });
  }
  if (grant.access === "granting") {
    // The activation in flight either completes or is abandoned (its lease ends and it is revoked) first.
    throw new BreakglassError("ERR_CONFLICT", `grant ${grant.id} is being activated; it cannot lapse now`, {
      grantId: grant.id,
      access: grant.access,
    });
  }
  const failure = grant.activationFailure;
  const next = bump(grant, {
    state: "approval_expired",
    endedAt: now,
    lapseAt: null,
    ...closeAccess(grant, now),
    ...(failure ? { activationFailure: { ...failure, nextAt: null } } : {}),
  });
  const data: Record<string, unknown> = { from: grant.state };
  // An activation that kept failing until the grant lapsed: it gave up, and says why.
  if (failure) {
    data.activationFailed = { attempts: failure.attempts, lastError: failure.lastError };
    data.emergency = grant.emergency;
  }
  return { grant: next, event: grantEvent(next, "grant.approval_expired", SYSTEM_ACTOR, now, data) };
}

/**
 * A review as recorded (of a grant, or of a tier-2 opening): follow-ups only for known users.
 * @throws ERR_VALIDATION naming a follow-up owner nobody knows
 */
export function reviewRecord(
  policy: Policy,
  reviewer: string,
  review: { outcome: ReviewOutcome; notes: string; followUps?: readonly FollowUp[] },
  now: number,
): GrantReview {
  requirePlainText("notes", review.notes, "prose");
  for (const f of review.followUps ?? []) {
    requirePlainText("follow-up action", f.action, "prose");
    if (!policy.users.has(f.owner)) {
      throw new BreakglassError("ERR_VALIDATION", `follow-up owner "${f.owner}" is not a known user`, {
        field: "followUps",
      });
    }
  }
  const followUps = review.followUps ?? [];
  return {
    reviewer,
    at: now,
    outcome: review.outcome,
    notes: review.notes,
    ...(followUps.length > 0 ? { followUps } : {}),
  };
}

/**
 * Record the review of an ended grant. `openDrift`: what its revocation could only contain or
 * had to leave and nobody has resolved yet (ADR 0009) — while any is open, `justified` is refused.
 * @throws ERR_INVALID_TRANSITION (not ended; a drill; `justified` with open drift), ERR_FORBIDDEN, ERR_VALIDATION
 */
export function reviewGrant(
  policy: Policy,
  grant: Grant,
  reviewer: string,
  review: { outcome: ReviewOutcome; notes: string; followUps?: readonly FollowUp[] },
  now: number,
  openDrift: readonly DriftItem[] = [],
): Transition {
  requireState(grant, "review", ["ended"]);
  if (review.outcome === "justified" && openDrift.length > 0) {
    throw new BreakglassError(
      "ERR_INVALID_TRANSITION",
      `grant ${grant.id} cannot be reviewed as justified: ${openDrift.length} thing(s) done in its window were only contained or left in place (${openDrift
        .slice(0, 3)
        .map((d) => d.description)
        .join(
          "; ",
        )}${openDrift.length > 3 ? "; …" : ""}). Record what was done about them first (breakglass containment resolve ${grant.id} --note "…"), or review it as justified_with_findings or unjustified`,
      { grantId: grant.id, openDrift: openDrift.map((d) => d.id) },
    );
  }
  if (isDrill(grant)) {
    throw new BreakglassError(
      "ERR_INVALID_TRANSITION",
      `grant ${grant.id} belongs to a drill: drills are not reviewed; their run is the record (breakglass drill list)`,
      { grantId: grant.id, drill: true },
    );
  }
  const refusal = reviewRefusal(policy, grant, reviewer);
  if (refusal !== null) throw new BreakglassError("ERR_FORBIDDEN", refusal, { grantId: grant.id });
  const record = reviewRecord(policy, reviewer, review, now);
  const followUps = record.followUps ?? [];
  const next = bump(grant, { state: "reviewed", review: record });
  return {
    grant: next,
    event: grantEvent(next, "grant.reviewed", reviewer, now, {
      outcome: review.outcome,
      notes: review.notes,
      emergency: isEmergencyUse(grant),
      ...(followUps.length > 0 ? { followUps } : {}),
    }),
  };
}

/**
 * Someone records what was done about a grant's containment drift (ADR 0009): every open item is
 * resolved by one `grant.containment_resolved` event; the review may then be `justified`. Allowed
 * to whoever may review the grant (never its holder nor an approver), also after the review.
 * @throws ERR_INVALID_TRANSITION (not ended or reviewed; nothing open), ERR_FORBIDDEN, ERR_VALIDATION
 */
export function resolveContainment(
  policy: Policy,
  grant: Grant,
  actor: string,
  note: string,
  openDrift: readonly DriftItem[],
  now: number,
): Transition {
  requireState(grant, "resolve", ["ended", "reviewed"]);
  const refusal = reviewRefusal(policy, grant, actor);
  if (refusal !== null) throw new BreakglassError("ERR_FORBIDDEN", refusal, { grantId: grant.id });
  requirePlainText("note", note, "prose");
  if (note.trim() === "") throw new BreakglassError("ERR_VALIDATION", "note: say what was done", { field: "note" });
  if (openDrift.length === 0) {
    throw new BreakglassError("ERR_INVALID_TRANSITION", `grant ${grant.id} has no containment drift left to resolve`, {
      grantId: grant.id,
    });
  }
  const next = bump(grant, {});
  return {
    grant: next,
    event: grantEvent(next, "grant.containment_resolved", actor, now, {
      note,
      items: openDrift.map((d) => d.id),
      descriptions: openDrift.map((d) => d.description),
    }),
  };
}

/**
 * A worker claims a failed activation's automatic retry (moves its next attempt `leaseMs` on), so
 * no other replica starts it too; the attempt itself is {@link startActivation}. No event.
 * @throws ERR_INVALID_TRANSITION when no retry is due
 */
export function claimActivationRetry(grant: Grant, now: number, leaseMs: number): Grant {
  const retryAt = activationRetryAt(grant);
  if (retryAt === null || retryAt > now || grant.activationFailure === null) {
    throw new BreakglassError("ERR_INVALID_TRANSITION", `grant ${grant.id} has no activation attempt due`, {
      grantId: grant.id,
    });
  }
  return bump(grant, { activationFailure: { ...grant.activationFailure, nextAt: now + leaseMs } });
}

/**
 * A worker claims the revocation, so no other replica runs it at the same time. No event.
 * @throws ERR_INVALID_TRANSITION on an active grant: its window is closed by expire, revoke or release.
 */
export function beginRevocation(grant: Grant, now: number, leaseMs: number = REVOCATION_LEASE_MS): Grant {
  if (grant.state === "active") {
    throw new BreakglassError(
      "ERR_INVALID_TRANSITION",
      `grant ${grant.id} is active; end it (expire, revoke, release) before revoking its access`,
      { grantId: grant.id, state: grant.state },
    );
  }
  return bump(grant, { access: "revoking", accessNextAt: now + leaseMs });
}

function requireRevoking(grant: Grant): void {
  if (grant.access !== "revoking") {
    throw new BreakglassError(
      "ERR_CONFLICT",
      `grant ${grant.id} has no revocation in progress (access is ${grant.access}); it was settled elsewhere`,
      { grantId: grant.id, access: grant.access },
    );
  }
}

/** The connector revoked and verified that access is gone. @throws ERR_CONFLICT unless access is `revoking` */
export function revocationSucceeded(grant: Grant, now: number, detail: Record<string, unknown>): Transition {
  requireRevoking(grant);
  const next = bump(grant, { access: "revoked", accessNextAt: null, accessLastError: null });
  return {
    grant: next,
    event: grantEvent(next, "target.revoked", SYSTEM_ACTOR, now, { attempts: grant.accessAttempts + 1, ...detail }),
  };
}

/** Capped exponential backoff: 1 s, 2 s, 4 s … 5 min, forever. */
export function revocationBackoffMs(attempts: number): number {
  return Math.min(BACKOFF_BASE_MS * 2 ** Math.max(0, attempts - 1), BACKOFF_CAP_MS);
}

/**
 * The connector failed to revoke, or access is still there: try again later, and say so.
 * @throws ERR_CONFLICT unless access is `revoking`
 */
export function revocationFailed(grant: Grant, now: number, error: string): Transition {
  requireRevoking(grant);
  const attempts = grant.accessAttempts + 1;
  const retryAt = now + revocationBackoffMs(attempts);
  const next = bump(grant, {
    access: "revoking",
    accessAttempts: attempts,
    accessLastError: error,
    accessNextAt: retryAt,
  });
  return {
    grant: next,
    event: grantEvent(next, "target.revoke_failed", SYSTEM_ACTOR, now, { attempt: attempts, error, retryAt }),
  };
}

/**
 * When to tell the holder their grant is ending: `endingWarningS` before the end, but never in
 * the first half of the window (a 5-minute grant with a 10-minute warning is warned at 2.5 min).
 * Null when the role asks for no warning.
 */
export function warnTime(r: RoleDef, from: number, endsAt: number): number | null {
  if (r.endingWarningS <= 0 || endsAt <= from) return null;
  return Math.max(endsAt - r.endingWarningS * 1000, from + Math.floor((endsAt - from) / 2));
}

/**
 * Tell the holder the window closes soon (`grant.ending_soon`, routed to them). Once per end:
 * an extension sets a new warning time.
 * @throws ERR_INVALID_TRANSITION when the grant is not active or the warning is not due
 */
export function warnEnding(grant: Grant, now: number): Transition {
  requireState(grant, "warn", ["active"]);
  if (grant.warnAt === null || grant.warnAt > now || grant.endsAt === null) {
    throw new BreakglassError("ERR_INVALID_TRANSITION", `grant ${grant.id} has no ending warning due`, {
      grantId: grant.id,
    });
  }
  const next = bump(grant, { warnAt: null });
  return {
    grant: next,
    event: grantEvent(next, "grant.ending_soon", SYSTEM_ACTOR, now, {
      endsAt: grant.endsAt,
      remainingS: Math.max(0, Math.round((grant.endsAt - now) / 1000)),
      holder: grant.requester,
    }),
  };
}

/** An ended grant nobody reviewed by its deadline, with its access closed at the target. */
function reviewOverdue(grant: Grant, now: number): boolean {
  return (
    grant.state === "ended" &&
    !isDrill(grant) &&
    grant.review === null &&
    grant.reviewOverdueAt === null &&
    grant.reviewDueAt !== null &&
    grant.reviewDueAt <= now &&
    !mayHoldAccess(grant)
  );
}

/**
 * Report a review past its deadline (`grant.review_overdue`), once. The grant stays in the review
 * queue; the alarm goes where the routes send it.
 * @throws ERR_INVALID_TRANSITION when the review is not overdue (or was reported already)
 */
export function reportReviewOverdue(grant: Grant, now: number): Transition {
  if (!reviewOverdue(grant, now) || grant.reviewDueAt === null) {
    throw new BreakglassError("ERR_INVALID_TRANSITION", `grant ${grant.id} has no overdue review to report`, {
      grantId: grant.id,
      state: grant.state,
    });
  }
  const next = bump(grant, { reviewOverdueAt: now });
  return {
    grant: next,
    event: grantEvent(next, "grant.review_overdue", SYSTEM_ACTOR, now, {
      reviewDueAt: grant.reviewDueAt,
      overdueS: Math.round((now - grant.reviewDueAt) / 1000),
      endedAt: grant.endedAt,
      endReason: grant.endReason,
      emergency: grant.emergency,
    }),
  };
}

export type DueAction = "expire" | "revoke" | "lapse" | "warn" | "review_overdue" | "activate";

/** A failed activation the broker tries again by itself: still activatable, nothing left at the target. */
function activationRetryAt(grant: Grant): number | null {
  const activatable = grant.state === "approved" || (grant.state === "requested" && grant.emergency);
  if (!activatable || (grant.access !== "none" && grant.access !== "revoked")) return null;
  return grant.activationFailure?.nextAt ?? null;
}

/** Open requests lapse, except while an activation is in flight (it completes or is abandoned first). */
function mayLapse(grant: Grant): boolean {
  return (grant.state === "requested" || grant.state === "approved") && grant.access !== "granting";
}

/** What the expiry worker must do with this grant at `now`, if anything. */
export function dueAction(grant: Grant, now: number): DueAction | null {
  if (grant.state === "active") {
    if (grant.endsAt !== null && grant.endsAt <= now) return "expire";
    return grant.warnAt !== null && grant.warnAt <= now ? "warn" : null;
  }
  if (mayHoldAccess(grant) && grant.accessNextAt !== null && grant.accessNextAt <= now) return "revoke";
  if (mayLapse(grant) && hasLapsed(grant, now)) return "lapse";
  const retryAt = activationRetryAt(grant);
  if (retryAt !== null && retryAt <= now) return "activate";
  if (reviewOverdue(grant, now)) return "review_overdue";
  return null;
}

/** The next instant at which {@link dueAction} may return something; persisted and indexed. */
export function dueAt(grant: Grant): number | null {
  const times: number[] = [];
  if (grant.state === "active") {
    if (grant.endsAt !== null) times.push(grant.endsAt);
    if (grant.warnAt !== null) times.push(grant.warnAt);
  } else if (mayHoldAccess(grant) && grant.accessNextAt !== null) {
    times.push(grant.accessNextAt);
  }
  if (
    grant.state === "ended" &&
    !isDrill(grant) &&
    grant.review === null &&
    grant.reviewOverdueAt === null &&
    grant.reviewDueAt !== null &&
    !mayHoldAccess(grant)
  ) {
    times.push(grant.reviewDueAt);
  }
  // Not while an activation is in flight: dueAction would return nothing, and the worker would claim
  // the grant again on every tick until the activation lease ends.
  if (mayLapse(grant) && grant.lapseAt !== null) times.push(grant.lapseAt);
  const retryAt = activationRetryAt(grant);
  if (retryAt !== null) times.push(retryAt);
  return times.length === 0 ? null : Math.min(...times);
}
