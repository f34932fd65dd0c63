/**
 * What a grant view tells the caller they may do (`can`, `canApprove`): the grant machine's own
 * dry run (core/grant-permissions.ts) through the sign-in gates (core/authorization.ts) of the
 * routes behind each permission. The grant routes take their scope and fallback from the same
 * table, so the view cannot promise what the route then refuses (test/authz-matrix.test.ts).
 */
import { CREDENTIAL_CONNECTORS } from "../connectors/registry.js";
import { GRANT_ACTIONS, type GrantAction } from "../contract/api.js";
import { type SignInGate, signInRefusal } from "../core/authorization.js";
import { approveGrant } from "../core/grant-machine.js";
import { GRANT_PERMISSIONS, type GrantPermission, grantPermissions, passes } from "../core/grant-permissions.js";
import type { Grant, Policy } from "../core/model.js";
import type { RequestContext } from "../core/request-context.js";
import type { RouteScope } from "./route-table.js";

/** The token scope each grant action needs. */
export const actionScope = (action: GrantAction): RouteScope =>
  action === "review" || action === "resolve"
    ? "review"
    : action === "approve" || action === "deny" || action === "ack" || action === "revoke"
      ? "approve"
      : "request";

/** The gates of the routes behind each of a grant view's permissions (`can`). */
export const PERMISSION_GATES: Readonly<Record<GrantPermission, SignInGate>> = {
  ...(Object.fromEntries(
    (Object.keys(GRANT_ACTIONS) as GrantAction[]).map((a) => [
      a,
      { method: "POST", scope: actionScope(a), fallback: a === "release" || a === "activate" },
    ]),
  ) as Record<GrantAction, SignInGate>),
  credential: { method: "GET", scope: "request", fallback: true },
  recording: { method: "GET", scope: "review", fallback: false },
};

/**
 * What the caller may do with the grant now: the grant machine's dry run, through the gates of
 * the caller's sign-in; a credential only where the target hands one out.
 */
export function grantCan(
  policy: Policy,
  grant: Grant,
  ctx: RequestContext,
  now: number,
): Record<GrantPermission, boolean> {
  const allowed = grantPermissions(policy, grant, ctx.actor, now);
  const out = {} as Record<GrantPermission, boolean>;
  for (const p of GRANT_PERMISSIONS) {
    out[p] = allowed[p] && (ctx.auth === undefined || signInRefusal(PERMISSION_GATES[p], ctx.auth) === null);
  }
  const connector = policy.targets.get(grant.target)?.connector;
  out.credential &&= connector !== undefined && CREDENTIAL_CONNECTORS.has(connector);
  return out;
}

/** Whether `actor`'s approval would be accepted now: the grant machine's own checks, dry-run. */
export const canApprove = (policy: Policy, grant: Grant, actor: string, now: number): boolean =>
  passes(() => approveGrant(policy, grant, actor, null, now));
