/**
 * The AWS guardrail (seed 001): a service control policy that denies the actions an attacker
 * would use to blind or undo the account's safety controls to every principal except the one
 * break-glass role, plus that role's permission policy (an SCP only sets the ceiling) and its
 * trust policy (only the broker may assume it, and only with the grant's tag and the user's
 * source identity). Pure: documents in, documents out.
 */

export const DEFAULT_PROTECTED_ACTIONS: readonly string[] = [
  "cloudtrail:StopLogging",
  "cloudtrail:DeleteTrail",
  "config:DeleteConfigurationRecorder",
  "guardduty:DeleteDetector",
  "kms:ScheduleKeyDeletion",
  "iam:DeleteRolePermissionsBoundary",
  "organizations:LeaveOrganization",
];

export class GuardrailError extends Error {}

/** IAM role names: letters, digits and `+=,.@_-`, at most 64 characters. */
export function checkRoleName(name: string): void {
  if (!/^[\w+=,.@-]{1,64}$/.test(name)) {
    throw new GuardrailError(`"${name}" is not a valid IAM role name: use 1–64 letters, digits and + = , . @ _ -`);
  }
}

export function checkAction(action: string): void {
  if (!/^[a-z0-9-]+:[A-Za-z0-9*?]+$/.test(action)) {
    throw new GuardrailError(`"${action}" is not an IAM action; write it like cloudtrail:StopLogging`);
  }
}

export interface GuardrailOptions {
  /** The break-glass role's name (no path: the SCP names it directly under `role/`). */
  readonly roleName: string;
  readonly actions?: readonly string[];
  /** The principal the broker runs as, allowed to assume the role. */
  readonly brokerPrincipal?: string;
}

export interface GuardrailDocuments {
  readonly scp: Record<string, unknown>;
  readonly rolePermissions: Record<string, unknown>;
  readonly roleTrust: Record<string, unknown>;
}

export function awsGuardrail(opts: GuardrailOptions): GuardrailDocuments {
  checkRoleName(opts.roleName);
  const actions = [...(opts.actions ?? DEFAULT_PROTECTED_ACTIONS)];
  if (actions.length === 0) throw new GuardrailError("at least one action must be protected");
  for (const a of actions) checkAction(a);
  const broker = opts.brokerPrincipal ?? "arn:aws:iam::111122223333:role/BreakglassBroker";
  if (!/^arn:aws[a-z-]*:iam::\d{12}:(role|user)\/[\w+=,.@/-]+$/.test(broker)) {
    throw new GuardrailError(`"${broker}" is not an IAM role or user ARN (arn:aws:iam::ACCOUNT:role/NAME)`);
  }
  return {
    scp: {
      Version: "2012-10-17",
      Statement: [
        {
          Sid: "DenyGuardrailTamperingExceptBreakGlass",
          Effect: "Deny",
          Action: actions,
          Resource: "*",
          Condition: { ArnNotLike: { "aws:PrincipalArn": `arn:aws:iam::*:role/${opts.roleName}` } },
        },
      ],
    },
    rolePermissions: {
      Version: "2012-10-17",
      Statement: [{ Sid: "BreakGlassRecoveryActions", Effect: "Allow", Action: actions, Resource: "*" }],
    },
    roleTrust: {
      Version: "2012-10-17",
      Statement: [
        {
          Sid: "OnlyTheBrokerWithAGrant",
          Effect: "Allow",
          Principal: { AWS: broker },
          Action: ["sts:AssumeRole", "sts:SetSourceIdentity", "sts:TagSession"],
          Condition: {
            StringLike: { "aws:RequestTag/breakglass-grant": "g_*", "sts:SourceIdentity": "*" },
          },
        },
      ],
    },
  };
}
