// biome-ignore-all lint/style/noRestrictedImports: tests import vitest; the purity rule guards shipped core code
import { describe, expect, it } from "vitest";
import {
  deepFreeze,
  FIXTURE_HANDLE,
  grantAt,
  HOUR,
  MINUTE,
  makeGrant,
  makePolicy,
  makeRequestInput,
  makeRole,
  ROLE_DB_ADMIN,
  ROLE_EDGE_ADMIN,
  ROLE_GRAFANA_ADMIN,
  ROLE_SIEM_ADMIN,
  rule,
  SECOND,
  T0,
} from "../../test/support/core-fixtures.js";
import type { AuditEventType } from "./audit-event.js";
import { BreakglassError, type ErrorCode } from "./errors.js";
import {
  ACTIVATION_LEASE_MS,
  activationRetryMs,
  approveGrant,
  awaitsReview,
  beginRevocation,
  cancelGrant,
  claimActivationRetry,
  completeActivation,
  denyGrant,
  describeState,
  dueAction,
  dueAt,
  expireGrant,
  extendGrant,
  failActivation,
  lapseGrant,
  markGranting,
  REVOCATION_LEASE_MS,
  releaseGrant,
  reportReviewOverdue,
  requestGrant,
  reviewGrant,
  revocationBackoffMs,
  revocationFailed,
  revocationSucceeded,
  revokeGrant,
  SYSTEM_ACTOR,
  type Transition,
  warnEnding,
  warnTime,
} from "./grant-machine.js";
import type { EndReason, Grant, GrantState } from "./model.js";

const policy = makePolicy();

/** Run `fn`, which must throw a BreakglassError; return it. */
function thrown(fn: () => unknown): BreakglassError {
  try {
    fn();
  } catch (e) {
    if (e instanceof BreakglassError) return e;
    throw e;
  }
  throw new Error("expected a BreakglassError, but nothing was thrown");
}

function expectCode(fn: () => unknown, code: ErrorCode): BreakglassError {
  const e = thrown(fn);
  expect(e.code).toBe(code);
  return e;
}

/** The event facts every grant event carries, taken from the grant. */
function expectEventFacts(t: Transition, type: AuditEventType, actor: string, at: number): void {
  expect(t.event).toMatchObject({
    type,
    actor,
    at,
    grantId: t.grant.id,
    roleId: t.grant.roleId,
    domain: t.grant.domain,
    target: t.grant.target,
    justification: t.grant.justification,
    incident: t.grant.incident,
    requestId: null,
    sourceAddress: null,
  });
}

// ---------------------------------------------------------------------------------------------
// The transition table
// ---------------------------------------------------------------------------------------------

type StateKey =
  | "requested"
  | "approved"
  | "active"
  | "ended:expired"
  | "ended:revoked"
  | "ended:released"
  | "reviewed"
  | "denied"
  | "cancelled"
  | "approval_expired";

type Action = "approve" | "deny" | "cancel" | "activate" | "revoke" | "release" | "expire" | "lapse" | "review";

const ACTIONS: readonly Action[] = [
  "approve",
  "deny",
  "cancel",
  "activate",
  "revoke",
  "release",
  "expire",
  "lapse",
  "review",
];

/** A grant (grafana-admin: one sre-lead approves) in every state, reached through the machine itself. */
function grantIn(key: StateKey): { grant: Grant; now: number } {
  const active = grantAt("active");
  const endsAt = active.grant.endsAt ?? 0;
  switch (key) {
    case "requested":
    case "approved":
    case "active":
      return grantAt(key);
    case "ended:expired":
      return { grant: expireGrant(policy, active.grant, endsAt).grant, now: endsAt };
    case "ended:revoked":
      return {
        grant: revokeGrant(policy, active.grant, "dave", "done", active.now + MINUTE).grant,
        now: active.now + MINUTE,
      };
    case "ended:released":
      return {
        grant: releaseGrant(policy, active.grant, "alice", active.now + MINUTE).grant,
        now: active.now + MINUTE,
      };
    case "reviewed": {
      const ended = expireGrant(policy, active.grant, endsAt).grant;
      return {
        grant: reviewGrant(policy, ended, "carol", { outcome: "justified", notes: "fine" }, endsAt + HOUR).grant,
        now: endsAt + HOUR,
      };
    }
    case "denied": {
      const r = grantAt("requested");
      return { grant: denyGrant(policy, r.grant, "dave", "no incident", r.now + MINUTE).grant, now: r.now + MINUTE };
    }
    case "cancelled": {
      const r = grantAt("requested");
      return { grant: cancelGrant(r.grant, "alice", "fixed itself", r.now + MINUTE).grant, now: r.now + MINUTE };
    }
    case "approval_expired": {
      const r = grantAt("requested");
      const at = r.grant.lapseAt ?? 0;
      return { grant: lapseGrant(r.grant, at).grant, now: at };
    }
  }
}

/**
 * Each action done by someone allowed to do it, at a time when it would be due, so that the only
 * reason left for refusing it is the grant's state.
 */
function atFor(action: Action, grant: Grant, now: number): number {
  const t = now + SECOND;
  if (action === "activate") return t + SECOND;
  if (action === "expire") return Math.max(t, grant.endsAt ?? t);
  if (action === "lapse") return Math.max(t, grant.lapseAt ?? t);
  return t;
}

function perform(action: Action, grant: Grant, now: number): Transition {
  const at = atFor(action, grant, now);
  switch (action) {
    case "approve":
      return approveGrant(policy, grant, "carol", "looks right", at);
    case "deny":
      return denyGrant(policy, grant, "dave", "not justified", at);
    case "cancel":
      return cancelGrant(grant, "alice", "no longer needed", at);
    case "activate": {
      const begun = markGranting(grant, "alice", FIXTURE_HANDLE, at - SECOND);
      return completeActivation(begun, "alice", at, policy);
    }
    case "revoke":
      return revokeGrant(policy, grant, "dave", "suspicious queries", at);
    case "release":
      return releaseGrant(policy, grant, "alice", at);
    case "expire":
      return expireGrant(policy, grant, at);
    case "lapse":
      return lapseGrant(grant, at);
    case "review":
      return reviewGrant(policy, grant, "carol", { outcome: "justified", notes: "restarted the primary" }, at);
  }
}

interface Expected {
  readonly state: GrantState;
  readonly endReason?: EndReason;
  readonly event: AuditEventType;
  readonly actor: string;
  readonly data: Record<string, unknown>;
}

const approve: Expected = {
  state: "approved",
  event: "grant.approved",
  actor: "carol",
  data: { approver: "carol", comment: "looks right", approvals: 1 },
};
const deny: Expected = { state: "denied", event: "grant.denied", actor: "dave", data: { reason: "not justified" } };
const cancel: Expected = {
  state: "cancelled",
  event: "grant.cancelled",
  actor: "alice",
  data: { reason: "no longer needed" },
};
const activate: Expected = { state: "active", event: "grant.activated", actor: "alice", data: { durationS: 1_800 } };
const revoke: Expected = {
  state: "ended",
  endReason: "revoked",
  event: "grant.revoked",
  actor: "dave",
  data: { reason: "suspicious queries" },
};
const release: Expected = { state: "ended", endReason: "released", event: "grant.released", actor: "alice", data: {} };
const expire: Expected = {
  state: "ended",
  endReason: "expired",
  event: "grant.expired",
  actor: SYSTEM_ACTOR,
  data: { lagMs: 0 },
};
const lapse = (from: GrantState): Expected => ({
  state: "approval_expired",
  event: "grant.approval_expired",
  actor: SYSTEM_ACTOR,
  data: { from },
});
const review: Expected = {
  state: "reviewed",
  event: "grant.reviewed",
  actor: "carol",
  data: { outcome: "justified", notes: "restarted the primary" },
};

/** Everything not listed is forbidden. */
const ALLOWED: Readonly<Record<StateKey, Partial<Record<Action, Expected>>>> = {
  requested: { approve, deny, cancel, lapse: lapse("requested") },
  // Revoking an approved, never-activated grant ends it as `revoked` (documented behaviour; see the report).
  approved: { deny, cancel, activate, revoke, lapse: lapse("approved") },
  active: { revoke, release, expire },
  "ended:expired": { review },
  "ended:revoked": { review },
  "ended:released": { review },
  reviewed: {},
  denied: {},
  cancelled: {},
  approval_expired: {},
};

describe("grant machine transition table", () => {
  for (const [key, allowed] of Object.entries(ALLOWED) as [StateKey, Partial<Record<Action, Expected>>][]) {
    describe(`from ${key}`, () => {
      it(`reaches ${key} through the machine`, () => {
        const { grant } = grantIn(key);
        expect(describeState(grant)).toBe(key.includes(":") ? `ended (${key.split(":")[1]})` : key);
      });

      for (const action of ACTIONS) {
        const expected = allowed[action];
        if (expected) {
          it(`allows ${action}: ${key} → ${expected.endReason ? `ended (${expected.endReason})` : expected.state} with one ${expected.event} event`, () => {
            const { grant, now } = grantIn(key);
            const before = structuredClone(grant);
            const t = perform(action, deepFreeze(grant), now);
            expect(grant).toEqual(before);
            expect(t.grant.id).toBe(grant.id);
            expect(t.grant.state).toBe(expected.state);
            expect(t.grant.endReason).toBe(expected.endReason ?? grant.endReason);
            expect(t.grant.version).toBe(grant.version + (action === "activate" ? 2 : 1));
            expect(Object.keys(t).sort()).toEqual(["event", "grant"]);
            expectEventFacts(t, expected.event, expected.actor, atFor(action, grant, now));
            expect(t.event.data).toMatchObject(expected.data);
          });
        } else {
          it(`forbids ${action} from ${key} with ERR_INVALID_TRANSITION`, () => {
            const { grant, now } = grantIn(key);
            const before = structuredClone(grant);
            const e = expectCode(() => perform(action, deepFreeze(grant), now), "ERR_INVALID_TRANSITION");
            expect(e.detail).toMatchObject({ grantId: grant.id, state: grant.state });
            expect(grant).toEqual(before);
          });
        }
      }
    });
  }

  it("forbids completeActivation from every state but approved (no markGranting shortcut)", () => {
    for (const key of Object.keys(ALLOWED) as StateKey[]) {
      if (key === "approved") continue;
      const { grant, now } = grantIn(key);
      const granting = deepFreeze({ ...grant, access: "granting" as const, endsAt: now + HOUR });
      expectCode(() => completeActivation(granting, "alice", now, policy), "ERR_INVALID_TRANSITION");
    }
  });

  it("gives ended grants a review deadline from the moment they end", () => {
    for (const key of ["ended:expired", "ended:revoked", "ended:released"] as const) {
      const { grant, now } = grantIn(key);
      expect(grant.endedAt).toBe(now);
      expect(grant.reviewDueAt).toBe(now + 3 * 86_400 * SECOND);
      expect(grant.lapseAt).toBeNull();
    }
  });
});

describe("emergency grant transition table", () => {
  const emergencyRequested = (): { grant: Grant; now: number } => grantAt("emergency-requested");
  const emergencyAllowed: Partial<Record<Action, Expected>> = {
    activate: {
      state: "active",
      event: "grant.emergency_activated",
      actor: "alice",
      data: { policyBypass: true, durationS: 1_800 },
    },
    deny,
    cancel,
    lapse: lapse("requested"),
  };
  for (const action of ACTIONS) {
    const expected = emergencyAllowed[action];
    if (expected) {
      it(`allows ${action} of a requested emergency grant → ${expected.state}`, () => {
        const { grant, now } = emergencyRequested();
        const t = perform(action, deepFreeze(grant), now);
        expect(t.grant.state).toBe(expected.state);
        expectEventFacts(t, expected.event, expected.actor, atFor(action, grant, now));
        expect(t.event.data).toMatchObject(expected.data);
      });
    } else {
      it(`forbids ${action} of a requested emergency grant with ERR_INVALID_TRANSITION`, () => {
        const { grant, now } = emergencyRequested();
        expectCode(() => perform(action, deepFreeze(grant), now), "ERR_INVALID_TRANSITION");
      });
    }
  }
});

// ---------------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------------

describe("requestGrant", () => {
  const request = (overrides: Parameters<typeof makeRequestInput>[0] = {}, open: Grant | null = null) =>
    requestGrant(policy, makeRequestInput(overrides), T0, open);

  it("creates a requested grant with the role's default duration and an approval deadline", () => {
    const t = request();
    expect(t.grant).toMatchObject({
      id: "g_1",
      roleId: ROLE_DB_ADMIN,
      domain: "production",
      target: "production-target",
      requester: "alice",
      state: "requested",
      endReason: null,
      durationS: 3_600,
      emergency: false,
      requestedAt: T0,
      lapseAt: T0 + 15 * MINUTE,
      approvals: [],
      access: "none",
      version: 1,
    });
    expectEventFacts(t, "grant.requested", "alice", T0);
    expect(t.event.data).toEqual({ durationS: 3_600, emergency: false });
  });

  it("stores the justification and incident trimmed", () => {
    const t = request({ justification: "  primary database is down  ", incident: " INC-1 " });
    expect(t.grant.justification).toBe("primary database is down");
    expect(t.grant.incident).toBe("INC-1");
  });

  it("rejects a justification shorter than the role's minimum once trimmed", () => {
    const e = expectCode(() => request({ justification: "   too short \n " }), "ERR_JUSTIFICATION_REQUIRED");
    expect(e.detail).toMatchObject({ minLength: 10, length: 9 });
  });

  it("accepts a justification of exactly the minimum length", () => {
    expect(request({ justification: " 0123456789 " }).grant.justification).toBe("0123456789");
  });

  it("rejects an empty incident id with ERR_INCIDENT_REQUIRED", () => {
    const e = expectCode(() => request({ incident: "   " }), "ERR_INCIDENT_REQUIRED");
    expect(e.message).toMatch(/is required/);
  });

  it("requires an incident id even where the role's pattern would match an empty one", () => {
    const p = makePolicy({ roles: [makeRole({ id: "ops/any", incidentPattern: ".*" })] });
    const req = (incident: string) => requestGrant(p, makeRequestInput({ roleId: "ops/any", incident }), T0, null);
    expectCode(() => req(""), "ERR_INCIDENT_REQUIRED");
    expectCode(() => req("  "), "ERR_INCIDENT_REQUIRED");
    expect(req("anything").grant.incident).toBe("anything");
  });

  it("requires the incident id to match the role's pattern in full", () => {
    for (const incident of ["INC-", "xINC-1", "INC-1x", "inc-1", "INC-1 INC-2"]) {
      expectCode(() => request({ incident }), "ERR_INCIDENT_REQUIRED");
    }
    expect(request({ incident: "INC-123456" }).grant.incident).toBe("INC-123456");
  });

  it("uses each role's own incident pattern", () => {
    const siem = (incident: string) => request({ roleId: ROLE_SIEM_ADMIN, incident });
    expect(siem("SEC-0042").grant.incident).toBe("SEC-0042");
    expectCode(() => siem("INC-4711"), "ERR_INCIDENT_REQUIRED");
    expectCode(() => siem("SEC-42"), "ERR_INCIDENT_REQUIRED");
  });

  it("anchors an alternation pattern as a whole, not just its first branch", () => {
    const p = makePolicy({ roles: [makeRole({ id: "ops/alt", incidentPattern: "INC-\\d+|SEV[1-3]" })] });
    const req = (incident: string) => requestGrant(p, makeRequestInput({ roleId: "ops/alt", incident }), T0, null);
    expect(req("SEV2").grant.incident).toBe("SEV2");
    expect(req("INC-9").grant.incident).toBe("INC-9");
    expectCode(() => req("INC-9 and more"), "ERR_INCIDENT_REQUIRED");
    expectCode(() => req("xSEV2"), "ERR_INCIDENT_REQUIRED");
  });

  it("accepts a duration up to and including the role's maximum", () => {
    expect(request({ durationS: 60 }).grant.durationS).toBe(60);
    expect(request({ durationS: 4 * 3_600 }).grant.durationS).toBe(4 * 3_600);
  });

  it("rejects a duration above the role's maximum with ERR_DURATION_EXCEEDS_MAX", () => {
    const e = expectCode(() => request({ durationS: 4 * 3_600 + 1 }), "ERR_DURATION_EXCEEDS_MAX");
    expect(e.detail).toMatchObject({ durationS: 4 * 3_600 + 1, maxDurationS: 4 * 3_600 });
  });

  it("rejects non-positive and non-integer durations with ERR_VALIDATION", () => {
    for (const durationS of [0, -60, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
      expectCode(() => request({ durationS }), "ERR_VALIDATION");
    }
  });

  it("rejects a requester outside the role's requester groups", () => {
    const e = expectCode(() => request({ requester: "carol" }), "ERR_NOT_ELIGIBLE_REQUESTER");
    expect(e.detail).toMatchObject({ user: "carol", requesters: ["oncall"] });
  });

  it("rejects an unknown user", () => {
    expectCode(() => request({ requester: "mallory" }), "ERR_NOT_ELIGIBLE_REQUESTER");
  });

  it("rejects an unknown role with ERR_NOT_FOUND", () => {
    const e = expectCode(() => request({ roleId: "production/nope" }), "ERR_NOT_FOUND");
    expect(e.detail).toEqual({ roleId: "production/nope" });
  });

  it("names the role that was meant: DOMAIN/ROLE for a bare role name, the closest id for a typo", () => {
    const id = ROLE_DB_ADMIN;
    const bare = id.slice(id.indexOf("/") + 1);
    expect(expectCode(() => request({ roleId: bare }), "ERR_NOT_FOUND").message).toBe(
      `no role "${bare}" is configured; roles are named DOMAIN/ROLE: did you mean \`${id}\`?`,
    );
    expect(expectCode(() => request({ roleId: `${id}x` }), "ERR_NOT_FOUND").message).toContain(
      `did you mean \`${id}\`?`,
    );
  });

  it("allows one open grant per role and names the open one", () => {
    const open = makeGrant({ id: "g_open", state: "approved" });
    const e = expectCode(() => request({ id: "g_2" }, open), "ERR_OPEN_GRANT_EXISTS");
    expect(e.detail).toMatchObject({ grantId: "g_open", state: "approved", roleId: ROLE_DB_ADMIN });
    expect(e.message).toContain("g_open");
  });

  it("rejects emergency self-activation where the role does not allow it", () => {
    const e = expectCode(
      () => request({ roleId: ROLE_SIEM_ADMIN, incident: "SEC-0001", emergency: true }),
      "ERR_EMERGENCY_NOT_ALLOWED",
    );
    expect(e.detail).toEqual({ roleId: ROLE_SIEM_ADMIN });
  });

  it("gives an emergency request the activation deadline, not the approval one", () => {
    const t = request({ emergency: true });
    expect(t.grant).toMatchObject({ emergency: true, state: "requested", lapseAt: T0 + 10 * MINUTE });
    expect(t.event.data).toEqual({ durationS: 3_600, emergency: true });
  });

  it("does not mutate its input", () => {
    const input = deepFreeze(makeRequestInput({ justification: "  padded justification  " }));
    const open = deepFreeze(makeGrant({ id: "g_other" }));
    expect(requestGrant(policy, input, T0, null).grant.justification).toBe("padded justification");
    expectCode(() => requestGrant(policy, input, T0, open), "ERR_OPEN_GRANT_EXISTS");
    expect(input.justification).toBe("  padded justification  ");
  });
});

// ---------------------------------------------------------------------------------------------
// Emergency activation
// ---------------------------------------------------------------------------------------------

describe("emergency activation", () => {
  it("goes requested → active via begin/completeActivation with grant.emergency_activated and policyBypass", () => {
    const req = requestGrant(policy, makeRequestInput({ emergency: true }), T0, null).grant;
    const begun = markGranting(deepFreeze(req), "alice", FIXTURE_HANDLE, T0 + SECOND);
    expect(begun).toMatchObject({
      state: "requested",
      access: "granting",
      endsAt: T0 + SECOND + HOUR,
      accessHandle: FIXTURE_HANDLE,
    });
    const t = completeActivation(deepFreeze(begun), "alice", T0 + 2 * SECOND, policy);
    expect(t.grant).toMatchObject({
      state: "active",
      emergency: true,
      approvals: [],
      approvedAt: null,
      activatedAt: T0 + 2 * SECOND,
      access: "granted",
      lapseAt: null,
      reviewDueAt: T0 + SECOND + HOUR + 86_400 * SECOND,
    });
    expectEventFacts(t, "grant.emergency_activated", "alice", T0 + 2 * SECOND);
    expect(t.event.data).toEqual({ endsAt: T0 + SECOND + HOUR, durationS: 3_600, policyBypass: true });
  });

  it("cannot be approved, even by an eligible approver", () => {
    const { grant } = grantAt("emergency-requested", { roleId: ROLE_DB_ADMIN });
    const e = expectCode(() => approveGrant(policy, grant, "bob", null, T0 + SECOND), "ERR_INVALID_TRANSITION");
    expect(e.message).toMatch(/emergency/);
  });

  it("marks only emergency activations as a policy bypass", () => {
    const { grant } = grantAt("granting");
    const t = completeActivation(grant, "alice", T0 + 3 * MINUTE, policy);
    expect(t.event.type).toBe("grant.activated");
    expect(t.event.data).not.toHaveProperty("policyBypass");
  });

  it("is reviewed like any other use once it ends", () => {
    const { grant, now } = grantAt("emergency-active");
    const ended = releaseGrant(policy, grant, "alice", now + MINUTE).grant;
    // Emergency activations are reviewed within 24 h even where the role allows 3 days.
    expect(ended.reviewDueAt).toBe(now + MINUTE + 86_400 * SECOND);
    expect(
      reviewGrant(policy, ended, "erin", { outcome: "justified", notes: "page-out was real" }, now + HOUR).grant.state,
    ).toBe("reviewed");
  });
});

// ---------------------------------------------------------------------------------------------
// Approvals
// ---------------------------------------------------------------------------------------------

describe("approveGrant", () => {
  const requested = (roleId: string, requester = "alice", incident = "INC-1"): Grant =>
    deepFreeze(requestGrant(policy, makeRequestInput({ roleId, requester, incident }), T0, null).grant);

  it("rejects approval by the requester", () => {
    const g = requested(ROLE_DB_ADMIN, "bob");
    const e = expectCode(() => approveGrant(policy, g, "bob", null, T0 + SECOND), "ERR_SELF_APPROVAL");
    expect(e.detail).toEqual({ grantId: "g_1", user: "bob" });
  });

  it("rejects a second approval by the same approver", () => {
    const once = approveGrant(policy, requested(ROLE_DB_ADMIN), "bob", null, T0 + SECOND).grant;
    expectCode(() => approveGrant(policy, deepFreeze(once), "bob", "again", T0 + 2 * SECOND), "ERR_DUPLICATE_APPROVAL");
  });

  it("tells an approver who already approved so, also once the grant is approved", () => {
    // Two simultaneous calls by one approver: the second is a duplicate whichever state it finds.
    const once = approveGrant(policy, requested(ROLE_DB_ADMIN), "bob", null, T0 + SECOND).grant;
    const approved = approveGrant(policy, deepFreeze(once), "carol", null, T0 + 2 * SECOND).grant;
    expect(approved.state).toBe("approved");
    expectCode(
      () => approveGrant(policy, deepFreeze(approved), "bob", null, T0 + 3 * SECOND),
      "ERR_DUPLICATE_APPROVAL",
    );
    expectCode(
      () => approveGrant(policy, deepFreeze(approved), "dave", null, T0 + 3 * SECOND),
      "ERR_INVALID_TRANSITION",
    );
  });

  it("rejects an approver outside the rule's groups", () => {
    const g = requested(ROLE_DB_ADMIN);
    const e = expectCode(() => approveGrant(policy, g, "erin", null, T0 + SECOND), "ERR_NOT_ELIGIBLE_APPROVER");
    expect(e.detail).toMatchObject({ user: "erin", groups: ["sre-leads"] });
    expectCode(() => approveGrant(policy, g, "mallory", null, T0 + SECOND), "ERR_NOT_ELIGIBLE_APPROVER");
  });

  it("does not let an admin approve unless they are in the rule's groups", () => {
    // erin is a platform admin: admins may revoke and deny, but approval is the two-person rule's alone.
    expectCode(
      () => approveGrant(policy, requested(ROLE_GRAFANA_ADMIN), "erin", null, T0 + SECOND),
      "ERR_NOT_ELIGIBLE_APPROVER",
    );
  });

  it("keeps a partly approved grant requested with grant.approval_added", () => {
    const g = requested(ROLE_DB_ADMIN);
    const t = approveGrant(policy, g, "bob", "ack", T0 + MINUTE);
    expect(t.grant).toMatchObject({
      state: "requested",
      approvedAt: null,
      lapseAt: g.lapseAt,
      approvals: [{ approver: "bob", at: T0 + MINUTE, comment: "ack" }],
      version: 2,
    });
    expectEventFacts(t, "grant.approval_added", "bob", T0 + MINUTE);
    expect(t.event.data).toEqual({ approver: "bob", comment: "ack", approvals: 1 });
  });

  it("approves on the completing approval with grant.approved and an activation deadline", () => {
    const once = approveGrant(policy, requested(ROLE_DB_ADMIN), "bob", null, T0 + MINUTE).grant;
    const t = approveGrant(policy, deepFreeze(once), "carol", null, T0 + 2 * MINUTE);
    expect(t.grant).toMatchObject({
      state: "approved",
      approvedAt: T0 + 2 * MINUTE,
      lapseAt: T0 + 2 * MINUTE + 10 * MINUTE,
    });
    expect(t.grant.approvals.map((a) => a.approver)).toEqual(["bob", "carol"]);
    expectEventFacts(t, "grant.approved", "carol", T0 + 2 * MINUTE);
    expect(t.event.data).toMatchObject({ approvals: 2 });
  });

  it("needs two distinct sre-leads for 2 of sre-leads", () => {
    let g = requested(ROLE_DB_ADMIN);
    g = approveGrant(policy, g, "dave", null, T0 + SECOND).grant;
    expect(g.state).toBe("requested");
    g = approveGrant(policy, g, "bob", null, T0 + 2 * SECOND).grant;
    expect(g.state).toBe("approved");
  });

  it("does not count a requester who is in the approver group", () => {
    // bob is oncall and an sre-lead: his own request still needs two *other* sre-leads.
    let g = requested(ROLE_DB_ADMIN, "bob");
    g = approveGrant(policy, g, "carol", null, T0 + SECOND).grant;
    expect(g.state).toBe("requested");
    g = approveGrant(policy, g, "dave", null, T0 + 2 * SECOND).grant;
    expect(g.state).toBe("approved");
  });

  it("does not let one person in both groups satisfy 1 of security and 1 of dba alone", () => {
    const g = approveGrant(policy, requested(ROLE_SIEM_ADMIN, "alice", "SEC-0001"), "carol", null, T0 + SECOND);
    expect(g.grant.state).toBe("requested");
    expect(g.event.type).toBe("grant.approval_added");
    expectCode(() => approveGrant(policy, g.grant, "carol", null, T0 + 2 * SECOND), "ERR_DUPLICATE_APPROVAL");
    expect(approveGrant(policy, g.grant, "dave", null, T0 + 2 * SECOND).grant.state).toBe("approved");
  });

  it("re-seats an earlier approver when a later one can only fill the other term", () => {
    // carol (security+dba) first, then erin (security only): carol must move to the dba seat.
    const g = approveGrant(policy, requested(ROLE_SIEM_ADMIN, "alice", "SEC-0001"), "carol", null, T0 + SECOND).grant;
    expect(approveGrant(policy, g, "erin", null, T0 + 2 * SECOND).grant.state).toBe("approved");
  });

  it("approves through either clause of an OR rule", () => {
    const edge = requested(ROLE_EDGE_ADMIN);
    // clause 2: two sre-leads
    const viaLeads = approveGrant(policy, approveGrant(policy, edge, "bob", null, T0 + 1).grant, "dave", null, T0 + 2);
    expect(viaLeads.grant.state).toBe("approved");
    // clause 1: one of security and one of dba
    const viaSecDba = approveGrant(
      policy,
      approveGrant(policy, edge, "erin", null, T0 + 1).grant,
      "dave",
      null,
      T0 + 2,
    );
    expect(viaSecDba.grant.state).toBe("approved");
    // neither: bob (sre-lead) + erin (security) satisfy no clause on their own
    const neither = approveGrant(policy, approveGrant(policy, edge, "bob", null, T0 + 1).grant, "erin", null, T0 + 2);
    expect(neither.grant.state).toBe("requested");
  });

  it("refuses an approval after the request's approval deadline, even before the worker lapses it", () => {
    const g = requested(ROLE_GRAFANA_ADMIN);
    const lapseAt = g.lapseAt ?? 0;
    expect(approveGrant(policy, g, "bob", null, lapseAt - 1).grant.state).toBe("approved");
    const e = expectCode(() => approveGrant(policy, g, "bob", null, lapseAt), "ERR_INVALID_TRANSITION");
    expect(e.detail).toMatchObject({ lapseAt });
  });
});

// ---------------------------------------------------------------------------------------------
// Who may deny, cancel, revoke, release, review
// ---------------------------------------------------------------------------------------------

describe("denyGrant", () => {
  it("lets an approver of the role or an admin deny, with a reason", () => {
    const { grant } = grantAt("requested");
    expect(denyGrant(policy, grant, "bob", "no", T0 + 1).grant.closedBy).toBe("bob");
    const byAdmin = denyGrant(policy, grant, "erin", "no", T0 + 1);
    expect(byAdmin.grant).toMatchObject({ state: "denied", closedBy: "erin", closeReason: "no", endedAt: T0 + 1 });
    expect(byAdmin.grant.lapseAt).toBeNull();
  });

  it("rejects a denial by the requester", () => {
    const { grant } = grantAt("requested");
    expectCode(() => denyGrant(policy, grant, "alice", "changed my mind", T0 + 1), "ERR_SELF_APPROVAL");
  });

  it("rejects a denial by someone who is neither approver nor admin", () => {
    const { grant } = grantAt("requested", { roleId: ROLE_SIEM_ADMIN, request: { incident: "SEC-0001" } });
    expectCode(() => denyGrant(policy, grant, "bob", "no", T0 + 1), "ERR_NOT_ELIGIBLE_APPROVER");
  });

  it("requires a reason", () => {
    const { grant } = grantAt("requested");
    expectCode(() => denyGrant(policy, grant, "bob", "  ", T0 + 1), "ERR_VALIDATION");
  });

  it("refuses while an activation is in flight at the target, so it cannot race it", () => {
    const { grant, now } = grantAt("granting");
    expectCode(() => denyGrant(policy, deepFreeze(grant), "dave", "stop", now + SECOND), "ERR_CONFLICT");
    // After an abandoned activation (cleanup scheduled) the decision goes through and revocation stays due.
    const failed = failActivation(grant, "target timed out", now + SECOND).grant;
    const t = denyGrant(policy, deepFreeze(failed), "dave", "stop", now + 2 * SECOND);
    expect(t.grant).toMatchObject({ state: "denied", access: "revoking", accessNextAt: now + 2 * SECOND });
    expect(dueAction(t.grant, now + 2 * SECOND)).toBe("revoke");
  });
});

describe("cancelGrant", () => {
  it("lets only the requester cancel", () => {
    const { grant } = grantAt("approved");
    for (const actor of ["bob", "erin", SYSTEM_ACTOR]) {
      expectCode(() => cancelGrant(grant, actor, "x", T0 + HOUR), "ERR_FORBIDDEN");
    }
    const t = cancelGrant(grant, "alice", "fixed", T0 + 5 * MINUTE);
    expect(t.grant).toMatchObject({ state: "cancelled", closedBy: "alice", closeReason: "fixed", lapseAt: null });
  });

  it("refuses while an activation is in flight, and schedules revocation after a failed one", () => {
    const { grant, now } = grantAt("granting");
    expectCode(() => cancelGrant(deepFreeze(grant), "alice", "not needed", now + SECOND), "ERR_CONFLICT");
    const failed = failActivation(grant, "target timed out", now + SECOND).grant;
    const t = cancelGrant(deepFreeze(failed), "alice", "not needed", now + 2 * SECOND);
    expect(t.grant).toMatchObject({ access: "revoking", accessNextAt: now + 2 * SECOND, accessAttempts: 0 });
  });
});

describe("revokeGrant", () => {
  const siem = () =>
    grantAt("active", { roleId: ROLE_SIEM_ADMIN, approvers: ["erin", "dave"], request: { incident: "SEC-0001" } });

  it("lets a member of the role's approver groups revoke", () => {
    const { grant, now } = siem();
    const t = revokeGrant(policy, grant, "carol", "done", now + MINUTE);
    expect(t.grant).toMatchObject({ state: "ended", endReason: "revoked", closedBy: "carol", closeReason: "done" });
  });

  it("lets an admin who is not an approver revoke", () => {
    const { grant, now } = grantAt("active", { roleId: ROLE_DB_ADMIN, approvers: ["bob", "carol"] });
    expect(revokeGrant(policy, grant, "erin", "audit hold", now + MINUTE).grant.closedBy).toBe("erin");
  });

  it("forbids everyone else, including the holder", () => {
    const { grant, now } = siem();
    for (const actor of ["bob", "alice", "mallory", SYSTEM_ACTOR]) {
      expectCode(() => revokeGrant(policy, grant, actor, "because", now + MINUTE), "ERR_FORBIDDEN");
    }
  });

  it("requires a reason", () => {
    const { grant, now } = siem();
    expectCode(() => revokeGrant(policy, grant, "carol", "", now + MINUTE), "ERR_VALIDATION");
    expectCode(() => revokeGrant(policy, grant, "carol", " \t ", now + MINUTE), "ERR_VALIDATION");
  });

  it("records how early the window was closed", () => {
    const { grant, now } = grantAt("active");
    const t = revokeGrant(policy, grant, "bob", "done", now + MINUTE);
    expect(t.event.data).toEqual({ endsAt: grant.endsAt, lagMs: now + MINUTE - (grant.endsAt ?? 0), reason: "done" });
    expect(t.event.data.lagMs).toBeLessThan(0);
  });
});

describe("releaseGrant", () => {
  it("lets only the holder release", () => {
    const { grant, now } = grantAt("active");
    for (const actor of ["bob", "erin", SYSTEM_ACTOR]) {
      expectCode(() => releaseGrant(policy, grant, actor, now + MINUTE), "ERR_FORBIDDEN");
    }
    const t = releaseGrant(policy, grant, "alice", now + MINUTE);
    expect(t.grant).toMatchObject({ state: "ended", endReason: "released", closedBy: "alice", closeReason: null });
    expect(t.event.data).not.toHaveProperty("reason");
  });
});

describe("a drill's grant", () => {
  it("ends without a review deadline, never falls due for review, and refuses a review", () => {
    const { grant, now } = grantAt("active", { request: { drill: true } });
    expect(grant).toMatchObject({ drill: true, reviewDueAt: null });
    const extended = extendGrant(policy, grant, "alice", 60, "longer rehearsal", now + SECOND).grant;
    expect(extended.reviewDueAt).toBeNull();
    const ended = releaseGrant(policy, extended, "alice", now + MINUTE).grant;
    expect(ended).toMatchObject({ state: "ended", reviewDueAt: null });
    expect(awaitsReview(ended)).toBe(false);
    // Even a drill grant stored with a deadline (before drills were kept out of review) never alarms.
    const legacy = { ...ended, access: "revoked" as const, reviewDueAt: now + HOUR };
    expect(dueAction(legacy, now + 400 * 24 * HOUR)).toBeNull();
    expect(dueAt(legacy)).toBeNull();
    const e = expectCode(
      () => reviewGrant(policy, ended, "erin", { outcome: "justified", notes: "rehearsal" }, now + HOUR),
      "ERR_INVALID_TRANSITION",
    );
    expect(e.message).toContain("belongs to a drill");
  });

  it("is the only kind of ended grant that does not await review", () => {
    const { grant, now } = grantAt("active");
    expect(awaitsReview(releaseGrant(policy, grant, "alice", now + MINUTE).grant)).toBe(true);
  });
});

describe("reviewGrant", () => {
  it("never lets the holder review their own use", () => {
    const { grant } = grantIn("ended:expired");
    expectCode(
      () => reviewGrant(policy, grant, "alice", { outcome: "justified", notes: "trust me" }, T0 + 2 * HOUR),
      "ERR_FORBIDDEN",
    );
  });

  it("records the reviewer, outcome and notes", () => {
    const { grant } = grantIn("ended:released");
    const t = reviewGrant(
      policy,
      deepFreeze(grant),
      "erin",
      { outcome: "justified_with_findings", notes: "left a temp table" },
      T0 + 2 * HOUR,
    );
    expect(t.grant.review).toEqual({
      reviewer: "erin",
      at: T0 + 2 * HOUR,
      outcome: "justified_with_findings",
      notes: "left a temp table",
    });
    expect(t.event.data).toEqual({ outcome: "justified_with_findings", notes: "left a temp table", emergency: false });
  });

  it("records follow-ups with owners, and refuses an owner nobody knows", () => {
    const { grant } = grantIn("ended:released");
    const followUps = [{ action: "rotate the replica password", owner: "bob", due: T0 + 86_400_000 }];
    const t = reviewGrant(policy, grant, "erin", { outcome: "justified_with_findings", notes: "n", followUps }, T0);
    expect(t.grant.review?.followUps).toEqual(followUps);
    expect(t.event.data).toMatchObject({ followUps });
    expectCode(
      () =>
        reviewGrant(
          policy,
          grant,
          "erin",
          { outcome: "justified", notes: "n", followUps: [{ action: "x", owner: "nobody", due: null }] },
          T0,
        ),
      "ERR_VALIDATION",
    );
  });

  it("needs a member of the reviewer group for an emergency activation", () => {
    const { grant, now } = grantAt("emergency-active");
    const ended = releaseGrant(policy, grant, "alice", now + MINUTE).grant;
    const withReviewers: typeof policy = {
      ...policy,
      roles: new Map(
        [...policy.roles].map(([id, r]) => [id, id === grant.roleId ? { ...r, emergencyReviewers: ["security"] } : r]),
      ),
    };
    const err = expectCode(
      () => reviewGrant(withReviewers, ended, "bob", { outcome: "justified", notes: "n" }, now + HOUR),
      "ERR_FORBIDDEN",
    );
    expect(err.message).toContain("reviewed by a member of security");
    const ok = reviewGrant(withReviewers, ended, "erin", { outcome: "unjustified", notes: "no incident" }, now + HOUR);
    expect(ok.event.data).toMatchObject({ outcome: "unjustified", emergency: true });
  });
});

// ---------------------------------------------------------------------------------------------
// Activation, expiry, lapse and revocation bookkeeping
// ---------------------------------------------------------------------------------------------

describe("activation", () => {
  it("fixes the end and saves the handle before the target is called, without an event", () => {
    const { grant, now } = grantAt("approved");
    const begun = markGranting(deepFreeze(grant), "alice", FIXTURE_HANDLE, now + SECOND);
    expect(begun).toMatchObject({
      state: "approved",
      access: "granting",
      accessHandle: FIXTURE_HANDLE,
      endsAt: now + SECOND + 1_800 * SECOND,
      accessNextAt: now + SECOND + ACTIVATION_LEASE_MS,
      accessAttempts: 0,
      version: grant.version + 1,
    });
  });

  it("lets the system activate on the requester's behalf, and nobody else", () => {
    const { grant, now } = grantAt("approved");
    expect(markGranting(grant, SYSTEM_ACTOR, FIXTURE_HANDLE, now).access).toBe("granting");
    expectCode(() => markGranting(grant, "bob", FIXTURE_HANDLE, now), "ERR_FORBIDDEN");
  });

  it("refuses to begin a second activation while one is in flight", () => {
    const { grant, now } = grantAt("granting");
    expectCode(() => markGranting(grant, "alice", FIXTURE_HANDLE, now + SECOND), "ERR_CONFLICT");
  });

  it("refuses to activate after the activation deadline, even before the worker lapses it", () => {
    const { grant } = grantAt("approved");
    const lapseAt = grant.lapseAt ?? 0;
    expect(markGranting(grant, "alice", FIXTURE_HANDLE, lapseAt - 1).access).toBe("granting");
    expectCode(() => markGranting(grant, "alice", FIXTURE_HANDLE, lapseAt), "ERR_INVALID_TRANSITION");
  });

  it("refuses to complete an activation that never began", () => {
    const { grant, now } = grantAt("approved");
    expectCode(() => completeActivation(grant, "alice", now, policy), "ERR_CONFLICT");
  });

  it("sets the review deadline from the end of the window", () => {
    const { grant } = grantAt("active");
    expect(grant.reviewDueAt).toBe((grant.endsAt ?? 0) + 3 * 86_400 * SECOND);
    expect(grant).toMatchObject({ access: "granted", accessNextAt: null, lapseAt: null });
  });

  it("failActivation leaves the state and schedules cleanup now", () => {
    const { grant, now } = grantAt("granting");
    const t = failActivation(deepFreeze(grant), "connection refused", now + SECOND);
    expect(t.grant).toMatchObject({
      state: "approved",
      endsAt: null,
      access: "revoking",
      accessNextAt: now + SECOND,
      accessAttempts: 0,
      accessLastError: "connection refused",
      accessHandle: FIXTURE_HANDLE,
    });
    expectEventFacts(t, "target.grant_failed", SYSTEM_ACTOR, now + SECOND);
    // The grant says why and when the broker tries again (issue 19: it said nothing, tried nothing).
    expect(t.grant.activationFailure).toEqual({
      attempts: 1,
      lastError: "connection refused",
      lastAt: now + SECOND,
      nextAt: now + SECOND + activationRetryMs(1),
    });
    expect(t.event.data).toEqual({
      error: "connection refused",
      attempt: 1,
      nextAttemptAt: now + SECOND + activationRetryMs(1),
      emergency: false,
      holder: grant.requester,
    });
    expect(dueAction(t.grant, now + SECOND)).toBe("revoke");
    expect(dueAt(t.grant)).toBe(now + SECOND);
  });

  it("a failed activation is tried again with backoff once cleaned up, until the grant would lapse", () => {
    expect([1, 2, 3, 4, 5, 6, 7, 10].map(activationRetryMs)).toEqual([
      2_000, 4_000, 8_000, 16_000, 32_000, 60_000, 60_000, 60_000,
    ]);
    const { grant, now } = grantAt("granting");
    const failed = failActivation(grant, "role does not exist", now + SECOND).grant;
    const cleaned = revocationSucceeded(beginRevocation(failed, now + SECOND), now + 2 * SECOND, {}).grant;
    const retryAt = failed.activationFailure?.nextAt ?? 0;
    expect(cleaned.accessLastError).toBeNull();
    expect(cleaned.activationFailure?.lastError).toBe("role does not exist"); // still says why
    expect(dueAt(cleaned)).toBe(retryAt);
    expect(dueAction(cleaned, retryAt - 1)).toBeNull();
    expect(dueAction(cleaned, retryAt)).toBe("activate");
    // The worker claims it (no other replica starts it too), then activates as usual.
    const claimed = claimActivationRetry(cleaned, retryAt, 30_000);
    expect(dueAction(claimed, retryAt)).toBeNull();
    expect(dueAt(claimed)).toBe(retryAt + 30_000);
    expectCode(() => claimActivationRetry(claimed, retryAt, 30_000), "ERR_INVALID_TRANSITION");
    const again = markGranting(claimed, SYSTEM_ACTOR, FIXTURE_HANDLE, retryAt + SECOND);
    const second = failActivation(again, "role does not exist", retryAt + 2 * SECOND);
    expect(second.grant.activationFailure).toMatchObject({
      attempts: 2,
      nextAt: retryAt + 2 * SECOND + activationRetryMs(2),
    });
    expect(second.event.data).toMatchObject({ attempt: 2 });
    // Success clears it, and the activation event says how many attempts failed before.
    const cleaned2 = revocationSucceeded(beginRevocation(second.grant, retryAt), retryAt + 3 * SECOND, {}).grant;
    const done = completeActivation(
      markGranting(cleaned2, "alice", FIXTURE_HANDLE, retryAt + 4 * SECOND),
      "alice",
      retryAt + 5 * SECOND,
      policy,
    );
    expect(done.grant.activationFailure).toBeNull();
    expect(done.event.data).toMatchObject({ afterFailedAttempts: 2 });
    // No automatic attempt the grant would not live to see.
    const late = failActivation(
      { ...again, lapseAt: retryAt + 3 * SECOND },
      "role does not exist",
      retryAt + 2 * SECOND,
    ).grant;
    expect(late.activationFailure?.nextAt).toBeNull();
    // Denied or cancelled meanwhile: nothing is retried.
    expect(dueAction({ ...cleaned, state: "cancelled" }, retryAt)).toBeNull();
  });

  it("can be retried once the failed attempt is cleaned up", () => {
    const { grant, now } = grantAt("granting");
    const failed = failActivation(grant, "timeout", now + SECOND).grant;
    expectCode(() => markGranting(failed, "alice", FIXTURE_HANDLE, now + 2 * SECOND), "ERR_CONFLICT");
    const cleaned = revocationSucceeded(beginRevocation(failed, now + 2 * SECOND), now + 3 * SECOND, {}).grant;
    const retried = markGranting(cleaned, "alice", FIXTURE_HANDLE, now + 4 * SECOND);
    const done = completeActivation(retried, "alice", now + 5 * SECOND, policy);
    expect(done.grant.state).toBe("active");
  });

  it("failActivation refuses an activation that already completed", () => {
    const { grant, now } = grantAt("active");
    expectCode(() => failActivation(grant, "late failure report", now + SECOND), "ERR_INVALID_TRANSITION");
  });

  it("completeActivation after the activation was abandoned and revoked → ERR_CONFLICT", () => {
    const { grant, now } = grantAt("granting");
    const leaseEnd = grant.accessNextAt ?? 0;
    expect(leaseEnd).toBe(now + ACTIVATION_LEASE_MS);
    expect(dueAction(grant, leaseEnd - 1)).toBeNull();
    expect(dueAction(grant, leaseEnd)).toBe("revoke");
    const claimed = beginRevocation(grant, leaseEnd);
    const e = expectCode(() => completeActivation(claimed, "alice", leaseEnd + SECOND, policy), "ERR_CONFLICT");
    expect(e.detail).toMatchObject({ access: "revoking" });
    const revoked = revocationSucceeded(claimed, leaseEnd + SECOND, {}).grant;
    expectCode(() => completeActivation(revoked, "alice", leaseEnd + 2 * SECOND, policy), "ERR_CONFLICT");
  });
});

describe("expiry and lapse", () => {
  it("expires only once the window's end is reached", () => {
    const { grant } = grantAt("active");
    const endsAt = grant.endsAt ?? 0;
    expectCode(() => expireGrant(policy, grant, endsAt - 1), "ERR_INVALID_TRANSITION");
    const t = expireGrant(policy, deepFreeze(grant), endsAt + 250);
    expect(t.grant).toMatchObject({ state: "ended", endReason: "expired", endedAt: endsAt + 250, closedBy: "system" });
    expect(t.event.data).toEqual({ endsAt, lagMs: 250 });
  });

  it("lapses only once the deadline is reached", () => {
    const { grant } = grantAt("requested");
    const lapseAt = grant.lapseAt ?? 0;
    expectCode(() => lapseGrant(grant, lapseAt - 1), "ERR_INVALID_TRANSITION");
    const t = lapseGrant(deepFreeze(grant), lapseAt);
    expect(t.grant).toMatchObject({ state: "approval_expired", endedAt: lapseAt, lapseAt: null, access: "none" });
  });

  it("does not lapse while an activation is in flight", () => {
    const p = makePolicy({
      roles: [makeRole({ id: ROLE_GRAFANA_ADMIN, approval: rule("1 of sre-leads"), activationTimeoutS: 60 })],
    });
    const { grant, now } = grantAt("granting", { policy: p });
    const lapseAt = grant.lapseAt ?? 0;
    expect(lapseAt).toBeLessThan(now + ACTIVATION_LEASE_MS);
    expect(dueAction(grant, lapseAt)).toBeNull();
    expectCode(() => lapseGrant(grant, lapseAt), "ERR_CONFLICT");
    // Completing late is fine: the activation began in time.
    expect(completeActivation(grant, "alice", lapseAt + SECOND, p).grant.state).toBe("active");
  });

  it("lapses an approved grant whose failed activation was cleaned up", () => {
    const { grant, now } = grantAt("granting");
    const failed = failActivation(grant, "boom", now + SECOND).grant;
    const cleaned = revocationSucceeded(failed, now + 2 * SECOND, {}).grant;
    const lapseAt = cleaned.lapseAt ?? 0;
    // Its automatic retry comes first; the lapse wins once it is due.
    expect(dueAt(cleaned)).toBe(failed.activationFailure?.nextAt);
    expect(dueAction(cleaned, lapseAt)).toBe("lapse");
    const lapsed = lapseGrant(cleaned, lapseAt);
    expect(lapsed.grant).toMatchObject({
      state: "approval_expired",
      access: "revoked",
      activationFailure: { attempts: 1, lastError: "boom", nextAt: null },
    });
    expect(lapsed.event.data).toEqual({
      from: "approved",
      activationFailed: { attempts: 1, lastError: "boom" },
      emergency: false,
    });
    expect(dueAt(lapsed.grant)).toBeNull();
  });
});

describe("dueAt and dueAction", () => {
  it("an open request is due at its lapse time", () => {
    for (const stage of ["requested", "approved", "emergency-requested"] as const) {
      const { grant } = grantAt(stage);
      const lapseAt = grant.lapseAt ?? 0;
      expect(dueAt(grant)).toBe(lapseAt);
      expect(dueAction(grant, lapseAt - 1)).toBeNull();
      expect(dueAction(grant, lapseAt)).toBe("lapse");
    }
  });

  it("an activation in flight is due when its lease ends, not at the lapse time", () => {
    const p = makePolicy({
      roles: [makeRole({ id: ROLE_GRAFANA_ADMIN, approval: rule("1 of sre-leads"), activationTimeoutS: 60 })],
    });
    const { grant, now } = grantAt("granting", { policy: p });
    // Were dueAt the (earlier) lapse time, the worker would claim the grant on every tick and find nothing to do.
    expect(dueAt(grant)).toBe(now + ACTIVATION_LEASE_MS);
    expect(dueAction(grant, (grant.lapseAt ?? 0) + 1)).toBeNull();
  });

  it("an active grant is due at its ending warning, then at its end", () => {
    const { grant } = grantAt("active");
    const endsAt = grant.endsAt ?? 0;
    expect(grant.warnAt).toBe(endsAt - 10 * MINUTE);
    expect(dueAt(grant)).toBe(endsAt - 10 * MINUTE);
    expect(dueAction(grant, endsAt - 10 * MINUTE - 1)).toBeNull();
    expect(dueAction(grant, endsAt - 10 * MINUTE)).toBe("warn");
    const warned = warnEnding(grant, endsAt - 10 * MINUTE).grant;
    expect(dueAt(warned)).toBe(endsAt);
    expect(dueAction(warned, endsAt - 1)).toBeNull();
    expect(dueAction(warned, endsAt)).toBe("expire");
    // A warning that is late (the broker was down) does not hold up the expiry.
    expect(dueAction(grant, endsAt)).toBe("expire");
  });

  it("an ended grant whose access is being revoked is due at the next access step", () => {
    for (const key of ["ended:expired", "ended:revoked", "ended:released"] as const) {
      const { grant, now } = grantIn(key);
      expect(grant).toMatchObject({ access: "revoking", accessNextAt: now, accessAttempts: 0 });
      expect(dueAt(grant)).toBe(now);
      expect(dueAction(grant, now)).toBe("revoke");
    }
  });

  it("once access is revoked, only the review deadline is due; nothing once reported or reviewed", () => {
    const { grant, now } = grantIn("ended:expired");
    const revoked = revocationSucceeded(grant, now + SECOND, {}).grant;
    const deadline = revoked.reviewDueAt ?? 0;
    expect(dueAt(revoked)).toBe(deadline);
    expect(dueAction(revoked, deadline - 1)).toBeNull();
    expect(dueAction(revoked, deadline)).toBe("review_overdue");
    const reported = reportReviewOverdue(revoked, deadline + 5);
    expect(reported.grant.reviewOverdueAt).toBe(deadline + 5);
    expect(dueAt(reported.grant)).toBeNull();
    expect(dueAction(reported.grant, now + 365 * 86_400 * SECOND)).toBeNull();
    for (const key of ["denied", "cancelled", "approval_expired"] as const) {
      const g = grantIn(key).grant;
      expect(g.access).toBe("none");
      expect(dueAt(g)).toBeNull();
      expect(dueAction(g, T0 + 365 * 86_400 * SECOND)).toBeNull();
    }
    const reviewed = reviewGrant(policy, revoked, "carol", { outcome: "justified", notes: "" }, now + HOUR).grant;
    expect(dueAt(reviewed)).toBeNull();
  });

  it("keeps retrying revocation after the review is recorded", () => {
    const { grant, now } = grantIn("ended:expired");
    const failing = revocationFailed(grant, now + SECOND, "target down").grant;
    const reviewed = reviewGrant(policy, failing, "carol", { outcome: "justified", notes: "" }, now + 2 * SECOND).grant;
    expect(dueAt(reviewed)).toBe(failing.accessNextAt);
    expect(dueAction(reviewed, failing.accessNextAt ?? 0)).toBe("revoke");
  });

  it("an ended grant that never reached the target has nothing to revoke", () => {
    const { grant, now } = grantAt("approved");
    const t = revokeGrant(policy, grant, "bob", "not needed after all", now + SECOND);
    expect(t.grant).toMatchObject({ state: "ended", access: "none", accessNextAt: null });
    expect(dueAt(t.grant)).toBe(t.grant.reviewDueAt);
  });
});

describe("ending warning", () => {
  const role = (endingWarningS: number) => makeRole({ id: ROLE_DB_ADMIN, endingWarningS });

  it("warns endingWarningS before the end, but never in the first half of the window", () => {
    expect(warnTime(role(600), T0, T0 + HOUR)).toBe(T0 + HOUR - 10 * MINUTE);
    expect(warnTime(role(600), T0, T0 + 5 * MINUTE)).toBe(T0 + 150 * SECOND);
    expect(warnTime(role(600), T0, T0 + 20 * MINUTE)).toBe(T0 + 10 * MINUTE);
    expect(warnTime(role(0), T0, T0 + HOUR)).toBeNull();
    expect(warnTime(role(600), T0 + HOUR, T0 + HOUR)).toBeNull();
  });

  it("sends grant.ending_soon once, to the holder, with the time left", () => {
    const { grant } = grantAt("active");
    const at = grant.warnAt ?? 0;
    const t = warnEnding(grant, at + SECOND);
    expect(t.grant.warnAt).toBeNull();
    expect(t.event).toMatchObject({
      type: "grant.ending_soon",
      actor: SYSTEM_ACTOR,
      grantId: grant.id,
      data: { endsAt: grant.endsAt, remainingS: 599, holder: grant.requester },
    });
    expect(thrown(() => warnEnding(t.grant, at + 2 * SECOND)).code).toBe("ERR_INVALID_TRANSITION");
    expect(thrown(() => warnEnding(grant, at - 1)).code).toBe("ERR_INVALID_TRANSITION");
  });

  it("warns again before the new end after an extension", () => {
    const { grant } = grantAt("active");
    const at = grant.warnAt ?? 0;
    const warned = warnEnding(grant, at).grant;
    const extended = extendGrant(policy, warned, grant.requester, 30 * 60, "still repairing", at + MINUTE).grant;
    expect(extended.warnAt).toBe((extended.endsAt ?? 0) - 10 * MINUTE);
    expect(dueAction(extended, extended.warnAt ?? 0)).toBe("warn");
  });

  it("clears the warning when the grant ends early", () => {
    const { grant, now } = grantAt("active");
    const released = releaseGrant(policy, grant, grant.requester, now + MINUTE).grant;
    expect(released.warnAt).toBeNull();
  });
});

describe("overdue reviews", () => {
  it("reports an unreviewed grant past its deadline once, and not while access is still being revoked", () => {
    const { grant, now } = grantIn("ended:expired");
    const deadline = grant.reviewDueAt ?? 0;
    expect(dueAction(grant, deadline)).toBe("revoke");
    expect(thrown(() => reportReviewOverdue(grant, deadline)).code).toBe("ERR_INVALID_TRANSITION");
    const revoked = revocationSucceeded(grant, now + SECOND, {}).grant;
    const t = reportReviewOverdue(revoked, deadline + HOUR);
    expect(t.event).toMatchObject({
      type: "grant.review_overdue",
      actor: SYSTEM_ACTOR,
      data: { reviewDueAt: deadline, overdueS: 3600, endReason: "expired", emergency: false },
    });
    expect(thrown(() => reportReviewOverdue(t.grant, deadline + 2 * HOUR)).code).toBe("ERR_INVALID_TRANSITION");
  });

  it("does not report a review that was recorded, or is not due yet", () => {
    const { grant, now } = grantIn("ended:expired");
    const revoked = revocationSucceeded(grant, now + SECOND, {}).grant;
    expect(thrown(() => reportReviewOverdue(revoked, (revoked.reviewDueAt ?? 0) - 1)).code).toBe(
      "ERR_INVALID_TRANSITION",
    );
    const reviewed = reviewGrant(policy, revoked, "carol", { outcome: "justified", notes: "" }, now + HOUR).grant;
    expect(thrown(() => reportReviewOverdue(reviewed, (revoked.reviewDueAt ?? 0) + 1)).code).toBe(
      "ERR_INVALID_TRANSITION",
    );
  });
});

describe("revocation", () => {
  const endedRevoking = () => grantIn("ended:expired");

  it("closing the window makes access revoking and due now, resetting the attempt count", () => {
    const { grant } = grantAt("active");
    const t = expireGrant(policy, { ...grant, accessAttempts: 3 }, (grant.endsAt ?? 0) + 5);
    expect(t.grant).toMatchObject({ access: "revoking", accessNextAt: (grant.endsAt ?? 0) + 5, accessAttempts: 0 });
  });

  it("a claim holds a lease so no other worker runs it meanwhile", () => {
    const { grant, now } = endedRevoking();
    const claimed = beginRevocation(deepFreeze(grant), now + SECOND);
    expect(claimed).toMatchObject({ access: "revoking", accessNextAt: now + SECOND + REVOCATION_LEASE_MS });
    expect(dueAction(claimed, now + SECOND + REVOCATION_LEASE_MS - 1)).toBeNull();
    expect(dueAction(claimed, now + SECOND + REVOCATION_LEASE_MS)).toBe("revoke");
  });

  it("refuses to claim the revocation of an active grant", () => {
    const { grant, now } = grantAt("active");
    expectCode(() => beginRevocation(grant, now + SECOND), "ERR_INVALID_TRANSITION");
  });

  it("backs off 1 s, 2 s, 4 s … capped at 5 minutes, counting attempts", () => {
    let { grant, now } = endedRevoking();
    const waits: number[] = [];
    for (let i = 1; i <= 12; i++) {
      const t = revocationFailed(deepFreeze(grant), now, `refused #${i}`);
      expect(t.grant).toMatchObject({ access: "revoking", accessAttempts: i, accessLastError: `refused #${i}` });
      expectEventFacts(t, "target.revoke_failed", SYSTEM_ACTOR, now);
      expect(t.event.data).toEqual({ attempt: i, error: `refused #${i}`, retryAt: t.grant.accessNextAt });
      waits.push((t.grant.accessNextAt ?? 0) - now);
      grant = t.grant;
      now = t.grant.accessNextAt ?? 0;
    }
    expect(waits).toEqual([1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300].map((s) => s * SECOND));
  });

  it("revocationBackoffMs is capped for any number of attempts", () => {
    expect(revocationBackoffMs(0)).toBe(1_000);
    expect(revocationBackoffMs(1)).toBe(1_000);
    expect(revocationBackoffMs(9)).toBe(256_000);
    expect(revocationBackoffMs(10)).toBe(300_000);
    expect(revocationBackoffMs(10_000)).toBe(300_000);
  });

  it("revocationSucceeded records the attempts it took and clears the schedule", () => {
    const { grant, now } = endedRevoking();
    const twice = revocationFailed(revocationFailed(grant, now, "a").grant, now + SECOND, "b").grant;
    const t = revocationSucceeded(deepFreeze(twice), now + 3 * SECOND, { dropped: "bg_g_1" });
    expect(t.grant).toMatchObject({ access: "revoked", accessNextAt: null, accessLastError: null, accessAttempts: 2 });
    expectEventFacts(t, "target.revoked", SYSTEM_ACTOR, now + 3 * SECOND);
    expect(t.event.data).toEqual({ attempts: 3, dropped: "bg_g_1" });
    // Nothing left at the target: next is the review deadline.
    expect(dueAt(t.grant)).toBe(t.grant.reviewDueAt);
  });

  it("refuses to settle a revocation that is not in progress", () => {
    const { grant, now } = endedRevoking();
    const done = revocationSucceeded(grant, now, {}).grant;
    expectCode(() => revocationSucceeded(done, now + 1, {}), "ERR_CONFLICT");
    expectCode(() => revocationFailed(done, now + 1, "late"), "ERR_CONFLICT");
    const active = grantAt("active").grant;
    expectCode(() => revocationSucceeded(active, now, {}), "ERR_CONFLICT");
    expectCode(() => revocationFailed(active, now, "x"), "ERR_CONFLICT");
  });
});

describe("describeState", () => {
  it("names the end reason of an ended grant", () => {
    expect(describeState({ state: "ended", endReason: "revoked" })).toBe("ended (revoked)");
    expect(describeState({ state: "approved", endReason: null })).toBe("approved");
  });
});
