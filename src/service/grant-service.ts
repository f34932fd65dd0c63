/**
 * The application service for grants: one method per user action. Each method runs its state
 * change and audit event in one transaction (see grant-transitions.ts), then talks to the target
 * outside it (see target-access.ts).
 */

import { type AuditAppender, stamp } from "../audit/audit-journal.js";
import { isHolder, mayReadRecording } from "../core/authorization.js";
import { type DriftItem, openContainmentDrift } from "../core/containment-drift.js";
import { BreakglassError } from "../core/errors.js";
import {
  approveGrant,
  cancelGrant,
  denyGrant,
  grantEvent,
  releaseGrant,
  requestGrant,
  requireAcknowledger,
  requireCredentialReader,
  resolveContainment,
  reviewGrant,
  revokeGrant,
  type Transition,
} from "../core/grant-machine.js";
import type { FollowUp, Grant, Policy, ReviewOutcome, RoleDef } from "../core/model.js";
import type { CredentialWrites, GrantFilter, GrantReads } from "../core/ports/grants.js";
import type { GatewayReads } from "../core/ports/recordings.js";
import type { Clock, IdGenerator } from "../core/ports/runtime.js";
import type { Transactions } from "../core/ports/transactions.js";
import type { StatementRecord } from "../core/records.js";
import type { Redacted } from "../core/redacted.js";
import type { RequestContext } from "../core/request-context.js";
import type { SecretBox } from "../secrets/secret-box.js";
import { commitTransition, type GrantWriter, type TransitionTx } from "./grant-transitions.js";
import { credentialAad, type TargetAccess } from "./target-access.js";

export interface RequestGrantInput {
  readonly roleId: string;
  readonly justification: string;
  readonly incident: string;
  readonly durationS?: number | undefined;
  readonly emergency?: boolean | undefined;
  /** Set by the drill runner only (never from the API): the grant and its events are a drill's. */
  readonly drill?: boolean | undefined;
}

export interface GrantService {
  /** Request a role; an emergency request is activated at once. @throws see requestGrant */
  request(ctx: RequestContext, input: RequestGrantInput): Promise<Grant>;
  /** Approve; activates when the rule is satisfied and the role auto-activates. */
  approve(ctx: RequestContext, id: string, comment: string | null): Promise<Grant>;
  deny(ctx: RequestContext, id: string, reason: string): Promise<Grant>;
  cancel(ctx: RequestContext, id: string, reason: string): Promise<Grant>;
  /** The requester activates an approved grant (roles with `auto_activate: false`, or a retry). */
  activate(ctx: RequestContext, id: string): Promise<Grant>;
  /** End early (approvers/admins); access at the target is revoked before this returns, or scheduled. */
  revoke(ctx: RequestContext, id: string, reason: string): Promise<Grant>;
  /** The holder gives access back early. */
  release(ctx: RequestContext, id: string): Promise<Grant>;
  /**
   * Acknowledge an activation's alarm (stops its escalation); approvers of the role and admins.
   * @throws ERR_FORBIDDEN, ERR_INVALID_TRANSITION (never activated)
   */
  acknowledge(ctx: RequestContext, id: string, comment: string | null): Promise<Grant>;
  /** @throws ERR_FORBIDDEN, ERR_INVALID_TRANSITION, ERR_DURATION_EXCEEDS_MAX, ERR_CONNECTOR_FAILED */
  extend(ctx: RequestContext, id: string, extraS: number, reason: string): Promise<Grant>;
  /**
   * The holder's credential of an active grant, opened from its sealed form; the read is audited
   * first (no event, no credential) and only when there is a credential to read.
   * @throws ERR_FORBIDDEN (not the holder; a drill's grant outside its drill), ERR_INVALID_TRANSITION
   *   (not active), ERR_NOT_FOUND (no such grant, or its target hands out no credential)
   */
  credential(ctx: RequestContext, id: string): Promise<{ credential: Redacted<string>; endsAt: number }>;
  /**
   * What the grant's gateway sessions ran, in order (holder, approvers of the role, admins; every
   * read of a recording that holds statements is audited, before they are returned).
   * @throws ERR_NOT_FOUND, ERR_FORBIDDEN, ERR_AUDIT_WRITE_FAILED
   */
  recording(ctx: RequestContext, id: string): Promise<StatementRecord[]>;
  /**
   * Record the review; `justified` is refused while containment drift is open (ADR 0009).
   * @throws ERR_FORBIDDEN, ERR_INVALID_TRANSITION, ERR_VALIDATION
   */
  review(
    ctx: RequestContext,
    id: string,
    review: { outcome: ReviewOutcome; notes: string; followUps?: readonly FollowUp[] },
  ): Promise<Grant>;
  /**
   * Record what was done about the grant's open containment drift (one `grant.containment_resolved`).
   * @throws ERR_NOT_FOUND, ERR_FORBIDDEN, ERR_INVALID_TRANSITION (nothing open), ERR_VALIDATION
   */
  resolveContainment(ctx: RequestContext, id: string, note: string): Promise<Grant>;
  /** @throws ERR_NOT_FOUND */
  get(id: string): Promise<Grant>;
  list(filter: GrantFilter): Promise<Grant[]>;
}

export interface GrantServiceDeps {
  readonly policy: Policy;
  /** Transitions (and reading the holder's credential in one); grants and their recordings read outside. */
  readonly store: Transactions<TransitionTx & CredentialWrites> & GrantReads & Pick<GatewayReads, "listStatements">;
  readonly audit: AuditAppender;
  readonly writer: GrantWriter;
  readonly access: TargetAccess;
  readonly clock: Clock;
  readonly ids: IdGenerator;
  /** Opens holders' sealed credentials; null when no secret key is configured. */
  readonly box: SecretBox | null;
}

export function createGrantService(deps: GrantServiceDeps): GrantService {
  const { policy, store, audit, writer, access, clock, ids, box } = deps;

  const roleOf = (grant: Grant) => policy.roles.get(grant.roleId);

  /** After a grant leaves `active`, take access away at the target now rather than at the next worker tick. */
  const settle = async (grant: Grant): Promise<Grant> => {
    if (grant.access !== "revoking") return grant;
    const claimed = await access.claimRevocation(grant.id);
    return claimed ? access.revoke(claimed) : grant;
  };

  /** Lock the grant, read its open containment drift from its audit events, apply `fn`, commit. */
  const withOpenDrift = (
    id: string,
    ctx: RequestContext,
    fn: (grant: Grant, open: readonly DriftItem[]) => Transition,
  ): Promise<Grant> =>
    store.transaction(async (tx) => {
      const g = await tx.lockGrant(id);
      if (!g) throw new BreakglassError("ERR_NOT_FOUND", `no grant ${id}`, { grantId: id });
      const events = (await tx.readGrantAudit([id])).map((e) => ({
        type: e.type,
        data: (JSON.parse(e.payload) as { data?: unknown }).data,
      }));
      return commitTransition(tx, audit, fn(g, openContainmentDrift(events)), ctx);
    });

  return {
    async request(ctx, input) {
      const grant = await store.transaction(async (tx) => {
        const open = await tx.findOpenGrant(ctx.actor, input.roleId);
        const t = requestGrant(
          policy,
          {
            id: ids.next("g"),
            requester: ctx.actor,
            roleId: input.roleId,
            justification: input.justification,
            incident: input.incident,
            durationS: input.durationS,
            emergency: input.emergency,
            viaFallback: ctx.auth?.method === "fallback",
            drill: input.drill,
          },
          clock.now(),
          open,
        );
        requireFreshFactor(ctx, roleOf(t.grant), clock.now(), "request");
        return commitTransition(tx, audit, t, ctx);
      });
      return grant.emergency ? access.activate(grant, ctx) : grant;
    },

    async approve(ctx, id, comment) {
      const grant = await writer.transition(id, ctx, (g) => {
        const t = approveGrant(policy, g, ctx.actor, comment, clock.now());
        requireFreshFactor(ctx, roleOf(g), clock.now(), "approve");
        return t;
      });
      if (grant.state === "approved" && roleOf(grant)?.autoActivate) {
        return access.activate(grant, { ...ctx, actor: "system" });
      }
      return grant;
    },

    deny: (ctx, id, reason) => writer.transition(id, ctx, (g) => denyGrant(policy, g, ctx.actor, reason, clock.now())),

    async cancel(ctx, id, reason) {
      return settle(await writer.transition(id, ctx, (g) => cancelGrant(g, ctx.actor, reason, clock.now())));
    },

    async activate(ctx, id) {
      const grant = await this.get(id);
      if (!isHolder(grant, ctx.actor)) {
        throw new BreakglassError("ERR_FORBIDDEN", `only the requester (${grant.requester}) can activate grant ${id}`, {
          grantId: id,
        });
      }
      requireFreshFactor(ctx, roleOf(grant), clock.now(), "activate");
      return access.activate(grant, ctx);
    },

    async revoke(ctx, id, reason) {
      return settle(await writer.transition(id, ctx, (g) => revokeGrant(policy, g, ctx.actor, reason, clock.now())));
    },

    async release(ctx, id) {
      return settle(await writer.transition(id, ctx, (g) => releaseGrant(policy, g, ctx.actor, clock.now())));
    },

    acknowledge: (ctx, id, comment) =>
      store.transaction(async (tx) => {
        const g = await tx.lockGrant(id);
        if (!g) throw new BreakglassError("ERR_NOT_FOUND", `no grant ${id}`, { grantId: id });
        requireAcknowledger(policy, g, ctx.actor);
        await audit.append(tx, [stamp(grantEvent(g, "alarm.acknowledged", ctx.actor, clock.now(), { comment }), ctx)]);
        return g;
      }),

    async extend(ctx, id, extraS, reason) {
      return access.extend(await this.get(id), ctx, extraS, reason);
    },

    async credential(ctx, id) {
      // Audit first, and only a real read: the credential is opened inside the transaction that
      // writes `grant.credential_read`, and handed out only once that event has committed. No
      // credential (a target that hands none out), no event and no alarm.
      return store.transaction(async (tx) => {
        const g = await tx.lockGrant(id);
        if (!g) throw new BreakglassError("ERR_NOT_FOUND", `no grant ${id}`, { grantId: id });
        const now = clock.now();
        requireCredentialReader(g, ctx.actor, now, ctx.drillRun !== undefined);
        const sealed = await tx.readCredential(id);
        if (sealed === null || !box) {
          throw new BreakglassError(
            "ERR_NOT_FOUND",
            `grant ${id} has no credential: its target (${g.target}) hands none out; the access is at the target itself`,
            { grantId: id, target: g.target },
          );
        }
        const credential = box.open(sealed, credentialAad(id));
        await audit.append(tx, [stamp(grantEvent(g, "grant.credential_read", ctx.actor, now), ctx)]);
        return { credential, endsAt: g.endsAt ?? now };
      });
    },

    async recording(ctx, id) {
      // Read first, disclose after the event has committed; an empty recording discloses nothing
      // and writes no `grant.recording_read` (a read event is only ever a real read).
      const statements = await store.listStatements(id);
      await store.transaction(async (tx) => {
        const g = await tx.lockGrant(id);
        if (!g) throw new BreakglassError("ERR_NOT_FOUND", `no grant ${id}`, { grantId: id });
        if (!mayReadRecording(policy, g, ctx.actor)) {
          throw new BreakglassError(
            "ERR_FORBIDDEN",
            `${ctx.actor} cannot read the recording of grant ${id}: the holder, approvers of ${g.roleId} and admins can`,
            { grantId: id },
          );
        }
        if (statements.length === 0) return;
        await audit.append(tx, [
          stamp(grantEvent(g, "grant.recording_read", ctx.actor, clock.now(), { statements: statements.length }), ctx),
        ]);
      });
      return statements;
    },

    review: (ctx, id, review) =>
      withOpenDrift(id, ctx, (g, open) => reviewGrant(policy, g, ctx.actor, review, clock.now(), open)),

    resolveContainment: (ctx, id, note) =>
      withOpenDrift(id, ctx, (g, open) => resolveContainment(policy, g, ctx.actor, note, open, clock.now())),

    async get(id) {
      const grant = await store.getGrant(id);
      if (!grant) throw new BreakglassError("ERR_NOT_FOUND", `no grant ${id}`, { grantId: id });
      return grant;
    },

    list: (filter) => store.listGrants(filter),
  };
}

/**
 * A role with `step_up` needs a second factor verified in the caller's session within that
 * time. The broker's own work and local (offline) commands carry no session and are not asked.
 * @throws ERR_STEP_UP_REQUIRED
 */
export function requireFreshFactor(ctx: RequestContext, role: RoleDef | undefined, now: number, action: string): void {
  const maxS = role?.stepUpS ?? null;
  if (maxS === null || role === undefined || ctx.auth === undefined) return;
  const { factorAt, method } = ctx.auth;
  if (factorAt !== null && now - factorAt <= maxS * 1000) return;
  const window = maxS >= 120 ? `${Math.round(maxS / 60)} minutes` : `${maxS} seconds`;
  const how =
    method === "token"
      ? "an API token cannot prove a second factor: sign in (web console or `breakglass login`), then run `breakglass step-up`"
      : "verify your authenticator code with `breakglass step-up` (or POST /api/v1/auth/step-up) and try again";
  throw new BreakglassError(
    "ERR_STEP_UP_REQUIRED",
    `${role.id} requires a second factor verified within the last ${window} to ${action}: ${how}`,
    { roleId: role.id, maxAgeS: maxS, action },
  );
}
