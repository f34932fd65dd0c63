/**
 * Test fixtures for the pure core, shared by other suites: a small policy (five users, a few
 * groups, roles with the interesting approval rules), grant builders, and a deep-freeze helper
 * that proves a function does not mutate its input, and an audit event draft. Lives under test/support so it is never built.
 *
 * People and groups:
 *
 * | user  | groups                          |
 * |-------|---------------------------------|
 * | alice | oncall                          |
 * | bob   | oncall, sre-leads               |
 * | carol | sre-leads, security, dba        |
 * | dave  | sre-leads, dba                  |
 * | erin  | oncall, security, platform-admins |
 */
import { parseRule } from "../../src/core/approval-policy.js";
import type { AuditEventDraft } from "../../src/core/audit-event.js";
import {
  approveGrant,
  completeActivation,
  markGranting,
  type RequestInput,
  requestGrant,
} from "../../src/core/grant-machine.js";
import type { ApprovalRule, Grant, Policy, RoleDef, UserDef } from "../../src/core/model.js";

/** 2025-01-01T00:00:00Z, the fixed "now" of every fixture. */
export const T0 = 1_735_689_600_000;
export const SECOND = 1_000;
export const MINUTE = 60 * SECOND;
export const HOUR = 60 * MINUTE;

export const USER_NAMES = ["alice", "bob", "carol", "dave", "erin"] as const;
export type FixtureUser = (typeof USER_NAMES)[number];

export const FIXTURE_GROUPS: Readonly<Record<string, readonly FixtureUser[]>> = {
  oncall: ["alice", "bob", "erin"],
  "sre-leads": ["bob", "carol", "dave"],
  security: ["carol", "erin"],
  dba: ["carol", "dave"],
  "platform-admins": ["erin"],
};
export const ADMIN_GROUP = "platform-admins";

/** `2 of sre-leads`, emergency allowed: the everyday production role. */
export const ROLE_DB_ADMIN = "production/db-admin";
/** `1 of security and 1 of dba`, no emergency: the rule carol alone cannot satisfy. */
export const ROLE_SIEM_ADMIN = "security/siem-admin";
/** `1 of security and 1 of dba or 2 of sre-leads`: two ways to get approved. */
export const ROLE_EDGE_ADMIN = "network/edge-admin";
/** `1 of sre-leads`, emergency allowed, auto-activates: one approval is enough. */
export const ROLE_GRAFANA_ADMIN = "observability/grafana-admin";

/** Parse a rule or fail the test that wrote it wrong. */
export function rule(text: string): ApprovalRule {
  const parsed = parseRule(text);
  if ("error" in parsed) throw new Error(`bad rule in fixture: ${parsed.error}`);
  return parsed;
}

/** A role with sensible defaults (1 h default, 4 h max, `INC-<digits>` incidents, 15 min to approve). */
export function makeRole(overrides: Partial<RoleDef> & Pick<RoleDef, "id">): RoleDef {
  const [domain = "production", name = overrides.id] = overrides.id.split("/");
  return {
    domain,
    name,
    description: `${overrides.id} (fixture)`,
    target: `${domain}-target`,
    grants: { roles: [name] },
    defaultDurationS: 3_600,
    maxDurationS: 4 * 3_600,
    approval: rule("2 of sre-leads"),
    requesters: ["oncall"],
    emergencyAllowed: false,
    reviewDeadlineS: 3 * 86_400,
    endingWarningS: 600,
    alarmSeverity: "warning",
    justificationMinLength: 10,
    incidentPattern: "INC-\\d+",
    approvalTimeoutS: 15 * 60,
    activationTimeoutS: 10 * 60,
    autoActivate: false,
    ...overrides,
  };
}

export const FIXTURE_ROLES: readonly RoleDef[] = [
  makeRole({ id: ROLE_DB_ADMIN, approval: rule("2 of sre-leads"), emergencyAllowed: true }),
  makeRole({ id: ROLE_SIEM_ADMIN, approval: rule("1 of security and 1 of dba"), incidentPattern: "SEC-[0-9]{4}" }),
  makeRole({ id: ROLE_EDGE_ADMIN, approval: rule("1 of security and 1 of dba or 2 of sre-leads") }),
  makeRole({
    id: ROLE_GRAFANA_ADMIN,
    approval: rule("1 of sre-leads"),
    emergencyAllowed: true,
    autoActivate: true,
    justificationMinLength: 0,
    defaultDurationS: 1_800,
    maxDurationS: 3_600,
  }),
];

export interface PolicyOverrides {
  /** Extra or replacement roles (matched by id). */
  readonly roles?: readonly RoleDef[];
  /** Replacement group memberships (whole groups). */
  readonly groups?: Readonly<Record<string, readonly string[]>>;
  /** Extra users beyond alice…erin. */
  readonly users?: readonly string[];
  readonly adminGroups?: readonly string[];
}

/** The fixture policy; `overrides` replace roles/groups by name. */
export function makePolicy(overrides: PolicyOverrides = {}): Policy {
  const users = new Map<string, UserDef>();
  for (const name of [...USER_NAMES, ...(overrides.users ?? [])]) {
    users.set(name, {
      name,
      displayName: name.charAt(0).toUpperCase() + name.slice(1),
      email: `${name}@example.test`,
      managerGroup: null,
    });
  }
  const groups = new Map<string, ReadonlySet<string>>();
  for (const [g, members] of Object.entries({ ...FIXTURE_GROUPS, ...overrides.groups }))
    groups.set(g, new Set(members));
  const roles = new Map<string, RoleDef>();
  for (const r of [...FIXTURE_ROLES, ...(overrides.roles ?? [])]) roles.set(r.id, r);
  const domains = new Map([...roles.values()].map((r) => [r.domain, { name: r.domain, description: r.domain }]));
  const targets = new Map(
    [...roles.values()].map((r) => [r.target, { name: r.target, connector: "exec", settings: {} }] as const),
  );
  return { users, groups, domains, roles, targets, adminGroups: overrides.adminGroups ?? [ADMIN_GROUP] };
}

/** A well-formed request input: alice asks for db-admin with a valid justification and incident. */
export function makeRequestInput(overrides: Partial<RequestInput> = {}): RequestInput {
  return {
    id: "g_1",
    requester: "alice",
    roleId: ROLE_DB_ADMIN,
    justification: "primary database is down, need to fail over",
    incident: "INC-4711",
    ...overrides,
  };
}

/** A raw grant record (`requested`, alice, db-admin, requested at T0) with any fields replaced. No checks. */
export function makeGrant(overrides: Partial<Grant> = {}): Grant {
  return {
    id: "g_1",
    roleId: ROLE_DB_ADMIN,
    domain: "production",
    target: "production-target",
    requester: "alice",
    state: "requested",
    endReason: null,
    justification: "primary database is down, need to fail over",
    incident: "INC-4711",
    durationS: 3_600,
    emergency: false,
    requestedAt: T0,
    approvedAt: null,
    activatedAt: null,
    endsAt: null,
    endedAt: null,
    lapseAt: T0 + 15 * MINUTE,
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
    activationFailure: null,
    accessNextAt: null,
    review: null,
    version: 1,
    ...overrides,
  };
}

/** The handle a connector would have planned; saved by markGranting. */
export const FIXTURE_HANDLE: Readonly<Record<string, unknown>> = { principal: "bg_g_1" };

/** A point in the lifecycle {@link grantAt} can drive a grant to. `granting` is approved, activation begun. */
export type GrantStage = "requested" | "approved" | "granting" | "active" | "emergency-requested" | "emergency-active";

/**
 * Drive a grant through the machine (alice on `roleId`, approved by as many sre-leads/rule
 * members as needed) and return it with the time it reached the stage. Defaults to
 * {@link ROLE_GRAFANA_ADMIN}, whose single approver makes every step one call.
 */
export function grantAt(
  stage: GrantStage,
  opts: {
    policy?: Policy;
    roleId?: string;
    approvers?: readonly string[];
    request?: Partial<RequestInput>;
  } = {},
): { grant: Grant; now: number } {
  const policy = opts.policy ?? makePolicy();
  const roleId = opts.roleId ?? ROLE_GRAFANA_ADMIN;
  const emergency = stage.startsWith("emergency");
  let now = T0;
  let grant = requestGrant(policy, makeRequestInput({ roleId, emergency, ...opts.request }), now, null).grant;
  if (stage === "requested" || stage === "emergency-requested") return { grant, now };
  if (!emergency) {
    for (const approver of opts.approvers ?? ["bob"]) {
      now += MINUTE;
      grant = approveGrant(policy, grant, approver, null, now).grant;
    }
    if (grant.state !== "approved") throw new Error(`fixture approvers did not satisfy ${roleId}`);
    if (stage === "approved") return { grant, now };
  }
  now += SECOND;
  grant = markGranting(grant, "alice", FIXTURE_HANDLE, now);
  if (stage === "granting") return { grant, now };
  now += SECOND;
  grant = completeActivation(grant, "alice", now, policy).grant;
  return { grant, now };
}

/**
 * An audit event as a writer hands it to the chain: `grant.activated` of g_1 on
 * production/db-admin (target orders-db, INC-7) by the system at T0, with any field replaced.
 */
export function makeAuditDraft(overrides: Partial<AuditEventDraft> = {}): AuditEventDraft {
  return {
    type: "grant.activated",
    actor: "system",
    at: T0,
    grantId: "g_1",
    roleId: "production/db-admin",
    domain: "production",
    target: "orders-db",
    justification: null,
    incident: "INC-7",
    requestId: null,
    sourceAddress: null,
    data: {},
    ...overrides,
  };
}

/**
 * Recursively freeze plain objects and arrays (not Maps/Sets), so any write to the input of a
 * pure function throws in strict mode. Returns the same value, typed unchanged.
 */
export function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === "object" && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const key of Reflect.ownKeys(value)) deepFreeze((value as Record<PropertyKey, unknown>)[key]);
  }
  return value;
}
