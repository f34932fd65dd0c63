/**
 * What a person may do with a grant now, answered by the grant machine itself: each action's own
 * transition is run on the grant and thrown away (a dry run), so the answer cannot drift from what
 * the action would do. The console shows only the actions answered `true`.
 *
 * Not counted here: a fresh second factor (step-up; the console asks for it when an action needs
 * it), and the gates of the caller's kind of sign-in — an API token's scopes, a login via local
 * fallback — which the HTTP layer applies on top (`signInRefusal`, core/authorization.ts).
 */
import { mayReadRecording } from "./authorization.js";
import {
  approveGrant,
  cancelGrant,
  denyGrant,
  extendGrant,
  markGranting,
  releaseGrant,
  requireAcknowledger,
  requireCredentialReader,
  resolveContainment,
  reviewGrant,
  revokeGrant,
} from "./grant-machine.js";
import type { Grant, Policy } from "./model.js";

export const GRANT_PERMISSIONS = [
  "approve",
  "deny",
  "cancel",
  "activate",
  "revoke",
  "release",
  "extend",
  "review",
  "ack",
  "resolve",
  "credential",
  "recording",
] as const;
export type GrantPermission = (typeof GRANT_PERMISSIONS)[number];
export type GrantPermissions = Record<GrantPermission, boolean>;

/** A reason for the actions that need one: any non-empty text passes the machine's check. */
const DRY_RUN = "(dry run)";
const DRY_DRIFT = { id: "dry-run", outcome: "contained", description: DRY_RUN };

/**
 * Whether `check` returns rather than throws. The refusal is thrown away, so it is built without
 * a stack trace: capturing one costs more than the whole check, and a list of 200 grants asks
 * eleven questions of each (most answered by a refusal).
 */
export function passes(check: () => unknown): boolean {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    check();
    return true;
  } catch {
    return false;
  } finally {
    Error.stackTraceLimit = limit;
  }
}

/**
 * Whether `actor` may do each action on `grant` at `now`. `credential` says only that the holder
 * may ask: whether the target hands out a credential at all is the connector's business.
 */
export function grantPermissions(policy: Policy, grant: Grant, actor: string, now: number): GrantPermissions {
  return {
    approve: passes(() => approveGrant(policy, grant, actor, null, now)),
    deny: passes(() => denyGrant(policy, grant, actor, DRY_RUN, now)),
    cancel: passes(() => cancelGrant(grant, actor, DRY_RUN, now)),
    activate: passes(() => markGranting(grant, actor, {}, now)),
    revoke: passes(() => revokeGrant(policy, grant, actor, DRY_RUN, now)),
    release: passes(() => releaseGrant(policy, grant, actor, now)),
    // By one second: whether there is any room left under the role's maximum.
    extend: passes(() => extendGrant(policy, grant, actor, 1, DRY_RUN, now)),
    review: passes(() => reviewGrant(policy, grant, actor, { outcome: "justified", notes: DRY_RUN }, now)),
    ack: passes(() => requireAcknowledger(policy, grant, actor)),
    // Whether the actor could record a resolution, had the grant open drift (that is in its events, not here).
    resolve: passes(() => resolveContainment(policy, grant, actor, DRY_RUN, [DRY_DRIFT], now)),
    credential: passes(() => requireCredentialReader(grant, actor, now)),
    recording: mayReadRecording(policy, grant, actor),
  };
}
