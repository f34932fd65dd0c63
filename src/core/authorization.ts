/**
 * Who may do what, in one place. Pure rules over the policy (users, groups, roles, admin groups),
 * a grant, and how the caller signed in; the grant machine, the services, the alarm channels,
 * the server, the routes and the console's views ask here and nowhere else whether someone is an
 * admin, an approver of a role, the holder, or may review, respond, read a recording or the audit.
 *
 * The grant machine keeps the order of its checks and the wording of its refusals (a state check
 * may come before or after a person check, and the API's answers depend on which): it asks these
 * predicates where it decides.
 *
 * Who may do what (the authorization matrix, test/authz-matrix.test.ts, checks every route):
 *
 * | action                          | who                                                         |
 * |---------------------------------|-------------------------------------------------------------|
 * | request a role                  | members of its requester groups                             |
 * | approve                         | approvers of the role (its rule's groups), never the holder |
 * | deny, revoke, acknowledge alarm | approvers of the role and admins (deny: never the holder)   |
 * | cancel, activate, release, use  | the holder (a drill's grant: only the drill reads its credential) |
 * | extend                          | the holder and admins                                       |
 * | read a grant's recording        | the holder, approvers of the role, admins                   |
 * | review, resolve containment     | neither the holder nor one of its approvers; an emergency use: the role's emergency reviewers |
 * | review a tier-2 opening         | the vault's reviewer groups, never a custodian who opened it |
 * | audit log, reconcile, drills, IdP declaration, others' tokens | admins                        |
 *
 * On top of these, the caller's kind of sign-in ({@link signInRefusal}): an API token needs the
 * route's scope, and a login via local fallback opens only the routes marked for it. A local
 * command carries no sign-in ({@link isSignedIn}); `breakglass token create` makes anyone's token.
 */
import { groupsOf, ruleGroups } from "./approval-policy.js";
import { BreakglassError } from "./errors.js";
import { type Grant, isEmergencyUse, type Policy, type RoleDef, type VaultOpening } from "./model.js";
import type { AuthInfo, RequestContext } from "./request-context.js";

/** What membership questions read from the policy. */
type Membership = Pick<Policy, "groups">;
type Admins = Pick<Policy, "groups" | "adminGroups">;
type Roles = Pick<Policy, "groups" | "adminGroups" | "roles">;

/** Whether `user` is a member of any of `groups`. */
export function inAnyGroup(policy: Membership, user: string, groups: Iterable<string>): boolean {
  const mine = groupsOf(policy, user);
  for (const g of groups) if (mine.has(g)) return true;
  return false;
}

/** Members of an admin group: the audit log, reconciliation, drills, the IdP's state, anyone's grant. */
export function isAdmin(policy: Admins, user: string): boolean {
  return inAnyGroup(policy, user, policy.adminGroups);
}

/**
 * `what` needs an admin.
 * @throws ERR_FORBIDDEN naming the admin groups (or that none is configured)
 */
export function requireAdmin(policy: Admins, user: string, what: string): void {
  if (isAdmin(policy, user)) return;
  throw new BreakglassError(
    "ERR_FORBIDDEN",
    `${what} needs membership of ${policy.adminGroups.join(" or ") || "an admin group (none is configured: set admin_groups)"}`,
    { groups: policy.adminGroups },
  );
}

/** The groups a role's approval rule draws approvers from; none for a role that is not configured. */
export function approverGroups(policy: Pick<Policy, "roles">, roleId: string): ReadonlySet<string> {
  const role = policy.roles.get(roleId);
  return role ? ruleGroups(role.approval) : new Set();
}

/** A member of one of the role's approver groups (whether they may approve a given grant: the machine). */
export function isApprover(policy: Pick<Policy, "groups" | "roles">, roleId: string, user: string): boolean {
  return inAnyGroup(policy, user, approverGroups(policy, roleId));
}

/**
 * Who looks after a role's grants: its approvers and the admins. They deny and revoke them, and
 * answer their activation alarms (acknowledging stops the escalation).
 */
export function isApproverOrAdmin(policy: Roles, roleId: string, user: string): boolean {
  return isApprover(policy, roleId, user) || isAdmin(policy, user);
}

/** Who may request the role: members of its requester groups. */
export function isRequesterOf(policy: Membership, role: Pick<RoleDef, "requesters">, user: string): boolean {
  return inAnyGroup(policy, user, role.requesters);
}

/** The grant's holder (its requester): cancels, activates, releases, uses and reads its credential. */
export function isHolder(grant: Pick<Grant, "requester">, user: string): boolean {
  return grant.requester === user;
}

/** The holder, or an admin, extends an active grant. */
export function mayExtend(policy: Admins, grant: Pick<Grant, "requester">, user: string): boolean {
  return isHolder(grant, user) || isAdmin(policy, user);
}

/** What a grant's sessions did (its recording): the holder, the approvers of its role, and admins. */
export function mayReadRecording(policy: Roles, grant: Pick<Grant, "requester" | "roleId">, user: string): boolean {
  return isHolder(grant, user) || isApproverOrAdmin(policy, grant.roleId, user);
}

/** Someone's service tokens: their own; admins anyone's. */
export function mayManageTokensOf(policy: Admins, user: string, owner: string): boolean {
  return user === owner || isAdmin(policy, user);
}

/**
 * Whose tokens `user`'s list shows: their own, or everyone's (null) for an admin.
 */
export function tokenListOwner(policy: Admins, user: string): string | null {
  return isAdmin(policy, user) ? null : user;
}

/**
 * Whether `ctx` is a person signed in (an API token or a login). The broker's own work and a
 * local command run with the configuration and the database at hand carry no sign-in: what they
 * may do is not a question about people (they could change the configuration).
 */
export const isSignedIn = (ctx: Pick<RequestContext, "auth">): boolean => ctx.auth !== undefined;

/**
 * Creating a token for `owner`: a person signed in makes their own, an admin anyone's; a local
 * command (`breakglass token create`, how the first token is made) and the broker's own work
 * make anyone's.
 * @throws ERR_FORBIDDEN naming the admin groups
 */
export function requireTokenCreation(policy: Admins, ctx: Pick<RequestContext, "actor" | "auth">, owner: string): void {
  if (!isSignedIn(ctx) || mayManageTokensOf(policy, ctx.actor, owner)) return;
  requireAdmin(policy, ctx.actor, "creating a token for someone else");
}

/**
 * Why `reviewer` may not review this grant (or resolve its containment drift), or null when they
 * may, its state aside: the holder never reviews their own use, an approver never what they
 * approved, and an emergency use (or one from a fallback login) only the role's emergency reviewers.
 */
export function reviewRefusal(policy: Pick<Policy, "groups" | "roles">, grant: Grant, reviewer: string): string | null {
  if (isHolder(grant, reviewer)) return `${reviewer} held grant ${grant.id} and cannot review it`;
  if (grant.approvals.some((a) => a.approver === reviewer)) {
    return `${reviewer} approved grant ${grant.id} and cannot also review it; ask someone independent`;
  }
  const reviewers = policy.roles.get(grant.roleId)?.emergencyReviewers ?? [];
  if (isEmergencyUse(grant) && reviewers.length > 0 && !inAnyGroup(policy, reviewer, reviewers)) {
    return `grant ${grant.id} was ${grant.emergency ? "an emergency activation" : "requested from a login via local fallback"}: it is reviewed by a member of ${reviewers.join(" or ")}`;
  }
  return null;
}

/**
 * Why `actor` cannot record this grant's verdict now — a drill's grant, one already reviewed or
 * not ended yet, or who they are — or null when they can (what a reviewer's screen says).
 */
export function reviewBlocker(policy: Pick<Policy, "groups" | "roles">, grant: Grant, actor: string): string | null {
  if (grant.drill === true) return "it belongs to a drill: drills are not reviewed, their run is the record";
  if (grant.state === "reviewed") return "it has been reviewed already";
  if (grant.state !== "ended") return `it is ${grant.state}; grants are reviewed once they have ended`;
  return reviewRefusal(policy, grant, actor);
}

/**
 * Why `reviewer` may not review a tier-2 opening, or null when they may: a member of the vault's
 * reviewer groups who was not one of the custodians who opened it (a custodian is matched by the
 * name the envelope gives them).
 */
export function vaultReviewRefusal(
  policy: Membership,
  opening: Pick<VaultOpening, "custodians" | "envelopeName">,
  reviewer: string,
  reviewerGroups: readonly string[],
): string | null {
  if (opening.custodians.some((c) => c.name === reviewer)) {
    return `${reviewer} opened envelope ${opening.envelopeName} as a custodian and cannot review that opening`;
  }
  if (reviewerGroups.length === 0) {
    return "no reviewer groups for tier-2 openings: set vault.reviewers (or defaults.emergency_reviewers, or admin_groups)";
  }
  if (!inAnyGroup(policy, reviewer, reviewerGroups)) {
    return `tier-2 openings are reviewed by a member of ${reviewerGroups.join(" or ")}`;
  }
  return null;
}

/** The scope an API token needs for a route; `session`: people only (a signed-in session), never a token. */
export type Scope = "read" | "request" | "approve" | "review" | "admin" | "session";

/** What the sign-in gate looks at in a route. */
export interface SignInGate {
  readonly method: "GET" | "POST";
  /** The scope a token needs; default `read` for GET, `request` for POST. */
  readonly scope?: Scope | undefined;
  /** Open to a login via local fallback (IdP down), which may only request roles and use its grants. */
  readonly fallback?: boolean | undefined;
}

/** The scope an API token needs for the route: its own, else `read` for GET and `request` for POST. */
export const neededScope = (gate: SignInGate): Scope => gate.scope ?? (gate.method === "GET" ? "read" : "request");

/**
 * Why this caller's kind of sign-in may not use the route, or null when it may: an API token
 * needs the route's scope and never opens a people-only route; a login via local fallback (IdP
 * down) opens only the routes marked `fallback`. The server applies it before a route runs;
 * grant views apply it to the grant machine's answer of what the caller may do (`can`).
 */
export function signInRefusal(gate: SignInGate, auth: AuthInfo): BreakglassError | null {
  if (auth.method === "token") {
    const needed = neededScope(gate);
    if (needed === "session") {
      return new BreakglassError(
        "ERR_FORBIDDEN",
        "this needs a person signed in (web console or `breakglass login`), not an API token",
      );
    }
    const scopes = auth.scopes ?? [];
    if (!scopes.includes("*") && !scopes.includes(needed)) {
      return new BreakglassError(
        "ERR_FORBIDDEN",
        `this token lacks the \`${needed}\` scope (it has: ${scopes.join(", ") || "none"}); create one with it`,
        { scope: needed },
      );
    }
  }
  if (auth.method === "fallback" && gate.fallback !== true) {
    return new BreakglassError(
      "ERR_FORBIDDEN",
      "a login via local fallback (IdP down) may only request break-glass roles and use its own grants; this needs a normal login",
    );
  }
  return null;
}
