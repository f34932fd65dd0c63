/**
 * Domain objects → API views (src/contract/api.ts). Epoch milliseconds become ISO-8601 strings;
 * nothing secret or internal (access handles, lease times) is copied.
 */

import { sha256 } from "../adapters/node-crypto.js";
import { type AlarmCheck, alarmsAsRecorded, type RowIntegrity } from "../audit/evidence-rows.js";
import type {
  AlarmView,
  AuditEventView,
  AuditVerdictView,
  CheckpointView,
  DomainView,
  GrantView,
  Me,
  RoleView,
} from "../contract/api.js";
import { describeRule, groupsOf } from "../core/approval-policy.js";
import type { ChainVerdict } from "../core/audit-chain.js";
import type { LinkedAuditEvent, SealedAuditEvent } from "../core/audit-event.js";
import { type AuditIntegrity, checkStoredEvent } from "../core/audit-record.js";
import { isAdmin, isRequesterOf } from "../core/authorization.js";
import type { FollowUp, Grant, GrantReview, Policy, RoleDef, VaultOpening } from "../core/model.js";
import type { AlarmRecord, Checkpoint, TerminalSession } from "../core/records.js";

const iso = (ms: number): string => new Date(ms).toISOString();
const isoOrNull = (ms: number | null): string | null => (ms === null ? null : iso(ms));

/** A recorded review (of a grant or a tier-2 opening). */
export function reviewView(r: GrantReview) {
  return {
    reviewer: r.reviewer,
    at: iso(r.at),
    outcome: r.outcome,
    notes: r.notes,
    followUps: (r.followUps ?? []).map((f) => ({
      action: f.action,
      owner: f.owner,
      due: f.due === null ? null : iso(f.due).slice(0, 10),
    })),
  };
}

/** Follow-ups as a review request gives them (`due` as YYYY-MM-DD) → the model's. */
export function followUpsFrom(
  given: readonly { action: string; owner: string; due?: string | undefined }[] | undefined,
): FollowUp[] {
  return (given ?? []).map((f) => ({
    action: f.action,
    owner: f.owner,
    due: f.due === undefined ? null : Date.parse(f.due),
  }));
}

export function rowIntegrityView(i: RowIntegrity | null | undefined) {
  return i === null || i === undefined ? null : { columns: [...i.columns], seq: i.seq, message: i.message };
}

/** A tier-2 opening, with what its events say about its row (`integrity`, from vaultOpeningIntegrity). */
export function vaultOpeningView(o: VaultOpening, integrity: RowIntegrity | null | undefined) {
  return {
    id: o.id,
    envelope: { id: o.envelopeId, name: o.envelopeName },
    record: { seq: o.recordSeq, hash: o.recordHash },
    openedAt: iso(o.openedAt),
    custodians: o.custodians.map((c) => ({ name: c.name, fingerprint: c.fingerprint })),
    reason: o.reason,
    incident: o.incident,
    importedAt: iso(o.importedAt),
    reviewDueAt: iso(o.reviewDueAt),
    review: o.review === null ? null : reviewView(o.review),
    alarm: { pending: o.alarmPending, deliveredAt: o.alarmDeliveredAt === null ? null : iso(o.alarmDeliveredAt) },
    integrity: rowIntegrityView(integrity),
  };
}

/** A recorded terminal session, with what its grant's events say about its row. */
export function terminalSessionView(t: TerminalSession, integrity: RowIntegrity | null | undefined) {
  return {
    id: t.id,
    grantId: t.grantId,
    command: t.command,
    width: t.width,
    height: t.height,
    recordInput: t.recordInput,
    startedAt: iso(t.startedAt),
    endedAt: isoOrNull(t.endedAt),
    endReason: t.endReason,
    integrity: rowIntegrityView(integrity),
  };
}

/**
 * What exists at the target, and the work on it. After a failed activation the grant still says
 * why (`lastError`, the target's error, redacted), how often it failed (`attempts`) and when the
 * broker tries again (`nextAttemptAt`) — also once the cleanup of the failed attempt is done.
 */
function accessView(grant: Grant): GrantView["access"] {
  const af = grant.activationFailure;
  const idle = grant.access === "none" || grant.access === "revoked";
  const activatable = grant.state === "approved" || (grant.state === "requested" && grant.emergency);
  const activationPending = af !== null && activatable && idle;
  return {
    state: grant.access,
    attempts: activationPending ? af.attempts : grant.accessAttempts,
    lastError: grant.accessLastError ?? af?.lastError ?? null,
    nextAttemptAt: isoOrNull(activationPending ? af.nextAt : grant.accessNextAt),
    revocationFailing: grant.access === "revoking" && grant.accessAttempts > 0,
    activationFailure:
      af === null
        ? null
        : {
            attempts: af.attempts,
            lastError: af.lastError,
            lastAttemptAt: iso(af.lastAt),
            nextAttemptAt: activatable ? isoOrNull(af.nextAt) : null,
          },
  };
}

export function grantView(grant: Grant, policy: Policy, now: number): GrantView {
  const role = policy.roles.get(grant.roleId);
  return {
    id: grant.id,
    role: grant.roleId,
    domain: grant.domain,
    target: grant.target,
    requester: grant.requester,
    state: grant.state,
    endReason: grant.endReason,
    emergency: grant.emergency,
    viaFallback: grant.viaFallback === true,
    drill: grant.drill === true,
    justification: grant.justification,
    incident: grant.incident,
    durationS: grant.durationS,
    approvalRule: role ? describeRule(role.approval) : null,
    approvals: grant.approvals.map((a) => ({ approver: a.approver, at: iso(a.at), comment: a.comment })),
    requestedAt: iso(grant.requestedAt),
    approvedAt: isoOrNull(grant.approvedAt),
    activatedAt: isoOrNull(grant.activatedAt),
    endsAt: isoOrNull(grant.endsAt),
    endedAt: isoOrNull(grant.endedAt),
    lapseAt: isoOrNull(grant.lapseAt),
    reviewDueAt: isoOrNull(grant.reviewDueAt),
    remainingS:
      grant.state === "active" && grant.endsAt !== null ? Math.max(0, Math.floor((grant.endsAt - now) / 1000)) : null,
    closedBy: grant.closedBy,
    closeReason: grant.closeReason,
    access: accessView(grant),
    review: grant.review ? reviewView(grant.review) : null,
    version: grant.version,
  };
}

export function meView(policy: Policy, user: string): Me {
  const def = policy.users.get(user);
  const groups = groupsOf(policy, user);
  return {
    user,
    displayName: def?.displayName ?? user,
    email: def?.email ?? null,
    groups: [...groups].sort(),
    admin: isAdmin(policy, user),
  };
}

function roleView(policy: Policy, role: RoleDef, caller: string): RoleView {
  return {
    id: role.id,
    domain: role.domain,
    name: role.name,
    description: role.description,
    target: role.target,
    defaultDurationS: role.defaultDurationS,
    maxDurationS: role.maxDurationS,
    approval: describeRule(role.approval),
    emergencyAllowed: role.emergencyAllowed,
    requesters: [...role.requesters],
    canRequest: isRequesterOf(policy, role, caller),
    autoActivate: role.autoActivate,
  };
}

export function domainViews(policy: Policy, caller: string): DomainView[] {
  const byDomain = new Map<string, RoleView[]>();
  for (const role of policy.roles.values()) {
    const list = byDomain.get(role.domain) ?? [];
    list.push(roleView(policy, role, caller));
    byDomain.set(role.domain, list);
  }
  const names = new Set([...policy.domains.keys(), ...byDomain.keys()]);
  return [...names].sort().map((name) => ({
    name,
    description: policy.domains.get(name)?.description ?? "",
    roles: (byDomain.get(name) ?? []).sort((a, b) => a.id.localeCompare(b.id)),
  }));
}

export function integrityView(i: AuditIntegrity | null) {
  return i === null ? null : { problem: i.problem, columns: [...i.columns], message: i.message };
}

/** A row of the log browser: its facts from the payload, with what checking it on its own found. */
export function auditEventView(event: LinkedAuditEvent): AuditEventView {
  const { record, integrity } = checkStoredEvent(sha256, event);
  const facts = record ?? event;
  return {
    seq: event.seq,
    at: Number.isFinite(facts.at) ? iso(facts.at) : iso(0),
    type: facts.type,
    actor: facts.actor,
    grantId: facts.grantId,
    payload: event.payload,
    hash: event.hash,
    integrity: integrityView(integrity),
  };
}

export function checkpointView(cp: Checkpoint): CheckpointView {
  return { seq: cp.seq, hash: cp.hash, at: iso(cp.at), keyId: cp.keyId, signature: cp.signature };
}

export function verdictView(verdict: ChainVerdict, summary: string): AuditVerdictView {
  return verdict.ok
    ? {
        ok: true,
        summary,
        eventsChecked: verdict.eventsChecked,
        headSeq: verdict.headSeq,
        headHash: verdict.headHash,
        checkpointsChecked: verdict.checkpointsChecked,
        unanchoredEvents: verdict.unanchoredEvents,
        recordings: verdict.recordings ?? null,
        failure: null,
      }
    : {
        ok: false,
        summary,
        eventsChecked: verdict.eventsChecked,
        headSeq: null,
        headHash: null,
        checkpointsChecked: null,
        unanchoredEvents: null,
        recordings: null,
        failure: { seq: verdict.seq, problem: verdict.problem, column: verdict.column, message: verdict.message },
      };
}

/**
 * An alarm with its delivery: as the chain records it where it does (activation alarms, see
 * evidence-rows.ts alarmsAsRecorded), else the outbox's bookkeeping (`deliveryCovered: false`).
 */
export function alarmView(
  stored: AlarmRecord,
  check: (AlarmCheck & { integrity: RowIntegrity | null }) | undefined,
): AlarmView {
  const [a] = check === undefined ? [stored] : alarmsAsRecorded([stored], new Map([[stored.id, check]]));
  if (a === undefined) throw new Error("unreachable");
  return {
    id: a.id,
    channel: a.channel,
    event: a.eventType,
    state: a.state,
    attempts: a.attempts,
    lastError: a.lastError,
    createdAt: iso(a.createdAt),
    deliveredAt: isoOrNull(a.deliveredAt),
    latencyMs: a.deliveredAt === null ? null : a.deliveredAt - a.createdAt,
    nextAttemptAt: a.state === "queued" ? iso(a.nextAt) : null,
    deliveryCovered: check?.deliveredAt !== undefined,
    integrity: rowIntegrityView(check?.integrity),
  };
}

/** A grant's extensions, oldest first, from its `grant.extended` audit events. */
export function extensionsOf(events: readonly SealedAuditEvent[]): NonNullable<GrantView["extensions"]> {
  return events
    .filter((e) => e.type === "grant.extended")
    .map((e) => {
      const d = (JSON.parse(e.payload) as { data?: Record<string, unknown> }).data ?? {};
      return {
        at: iso(e.at),
        by: e.actor,
        extraS: typeof d.extraS === "number" ? d.extraS : 0,
        endsAt: iso(typeof d.to === "number" ? d.to : e.at),
        reason: typeof d.reason === "string" ? d.reason : "",
      };
    });
}
