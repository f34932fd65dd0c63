/**
 * The `aws` connector, through the real AWS SDK v3. A grant is `sts:AssumeRole` into the role's
 * break-glass IAM role: session name `bg-<grant>`, `SourceIdentity` = the user (it follows the
 * session through CloudTrail and role chaining), session tags `breakglass-grant` and
 * `breakglass-incident`, `DurationSeconds` = the rest of the window. The holder gets temporary
 * keys and a console sign-in link (federation endpoint). STS credentials end by themselves; STS's
 * minimum is 15 minutes, so a shorter grant relies on the revoke below for the rest (both ends are
 * in the audit detail).
 *
 * Revoke is "revoke active sessions", per grant: an inline Deny on the role for sessions tagged
 * with the grant's id whose token was issued before the revocation — so already-issued
 * credentials die at once (the gap Teleport #62578 and TEAM #195 leave open), and an overlapping
 * grant of the same role keeps working (TEAM #279). Entries are grouped per hour and pruned once
 * no credential of theirs can still be alive (13 h); the document stays under IAM's 10,240
 * character limit for hundreds of grants.
 *
 * Credential text:
 *   # comment lines (grant, role, ends)
 *   export AWS_ACCESS_KEY_ID=…
 *   export AWS_SECRET_ACCESS_KEY=…
 *   export AWS_SESSION_TOKEN=…
 *   # console: https://signin.aws.amazon.com/federation?Action=login&…
 */
import { GetRolePolicyCommand, IAMClient, PutRolePolicyCommand } from "@aws-sdk/client-iam";
import { AssumeRoleCommand, STSClient } from "@aws-sdk/client-sts";
import { z } from "zod";
import { Duration } from "../contract/config-schema.js";
import { parseDuration } from "../core/duration.js";
import { BreakglassError } from "../core/errors.js";
import type { RoleDef } from "../core/model.js";
import type { Connector, ConnectorResult, VerifyResult } from "../core/ports/connector.js";
import { Redacted } from "../core/redacted.js";
import { secretRefSchema } from "../secrets/secret-ref.js";
import { cloudTrailSettingsSchema, createCloudTrailWatcher } from "./cloudtrail.js";
import { type ConnectorContext, parseRoleGrants } from "./connector-context.js";

export const awsSettingsSchema = z
  .object({
    region: z
      .string()
      .regex(/^[a-z]{2}(-[a-z]+)+-\d$/, { message: "an AWS region like eu-central-1" })
      .default("us-east-1"),
    credentials: z
      .object({ access_key_id: secretRefSchema, secret_access_key: secretRefSchema })
      .strict()
      .optional()
      .describe("The broker's own AWS keys; when absent, the SDK's default chain (instance role, environment)"),
    sts_endpoint: z.url().optional().describe("STS endpoint override (VPC endpoints, tests)"),
    iam_endpoint: z.url().optional().describe("IAM endpoint override (tests)"),
    federation_endpoint: z
      .url()
      .default("https://signin.aws.amazon.com/federation")
      .describe("Console federation endpoint for sign-in links"),
    revoke_policy_name: z
      .string()
      .regex(/^[\w+=,.@-]{1,128}$/)
      .default("BreakglassRevokedGrants")
      .describe("Inline policy on the break-glass role that denies revoked grants' sessions"),
    timeout: Duration.default("15s").describe("Longest one AWS call may take"),
    cloudtrail: cloudTrailSettingsSchema.optional(),
  })
  .strict();

export type AwsSettings = z.infer<typeof awsSettingsSchema>;

const ROLE_ARN = /^arn:aws[a-z-]*:iam::\d{12}:role\/(?:[\w+=,.@-]+\/)*([\w+=,.@-]{1,64})$/;

export const awsRoleGrantsSchema = z
  .object({
    role_arn: z
      .string()
      .regex(ROLE_ARN, { message: "an IAM role ARN: arn:aws:iam::123456789012:role/BreakGlassEmergency" }),
    max_session: Duration.default("1h").describe("The role's MaxSessionDuration in IAM (1h–12h)"),
    session_policy_arns: z
      .array(z.string().startsWith("arn:"))
      .default([])
      .describe("Managed policies that further limit the session"),
  })
  .strict();

export type AwsRoleGrants = z.infer<typeof awsRoleGrantsSchema>;

const STS_MIN_S = 900;
const MAX_SESSION_S = 12 * 3600;
const KEEP_MS = 13 * 3600_000;
const POLICY_LIMIT = 10_240;
const SID_PREFIX = "BreakglassRevoked";

interface RevokeStatement {
  Sid: string;
  Effect: "Deny";
  Action: "*";
  Resource: "*";
  Condition: {
    StringEquals: { "aws:PrincipalTag/breakglass-grant": string[] };
    DateLessThan: { "aws:TokenIssueTime": string };
  };
}

/** STS's charset for SourceIdentity and tag values: letters, digits, spaces and `_.:/=+-@`. */
const stsSafe = (s: string, max: number) => s.replace(/[^\w .:/=+@-]/g, "_").slice(0, max);

/** The hour bucket's Sid, e.g. `BreakglassRevoked2026112214`. */
const bucketSid = (at: Date) => `${SID_PREFIX}${at.toISOString().slice(0, 13).replace(/[-T]/g, "")}`;
const bucketStart = (sid: string): number => {
  const d = sid.slice(SID_PREFIX.length);
  return Date.UTC(Number(d.slice(0, 4)), Number(d.slice(4, 6)) - 1, Number(d.slice(6, 8)), Number(d.slice(8, 10)));
};

/** Add `grantId` (revoked at `now`) to the deny document; prune buckets no credential can outlive. */
export function addRevocation(doc: { Version: string; Statement: unknown[] } | null, grantId: string, now: Date) {
  const keep = (doc?.Statement ?? []).filter(
    (s) =>
      !(s as { Sid?: string }).Sid?.startsWith(SID_PREFIX) ||
      bucketStart((s as { Sid: string }).Sid) > now.getTime() - KEEP_MS,
  );
  const sid = bucketSid(now);
  const existing = keep.find((s) => (s as { Sid?: string }).Sid === sid) as RevokeStatement | undefined;
  const ids = new Set(existing?.Condition.StringEquals["aws:PrincipalTag/breakglass-grant"] ?? []);
  ids.add(grantId);
  // The bound only moves later: every listed grant is revoked, so a later bound never spares one.
  const statement: RevokeStatement = {
    Sid: sid,
    Effect: "Deny",
    Action: "*",
    Resource: "*",
    Condition: {
      StringEquals: { "aws:PrincipalTag/breakglass-grant": [...ids].sort() },
      DateLessThan: { "aws:TokenIssueTime": now.toISOString() },
    },
  };
  return { Version: "2012-10-17", Statement: [...keep.filter((s) => s !== existing), statement] };
}

export function isRevokedIn(doc: { Statement?: unknown[] } | null, grantId: string): boolean {
  return (doc?.Statement ?? []).some((s) =>
    ((s as Partial<RevokeStatement>).Condition?.StringEquals?.["aws:PrincipalTag/breakglass-grant"] ?? []).includes(
      grantId,
    ),
  );
}

export function createAwsConnector(
  settings: AwsSettings,
  ctx: ConnectorContext & { readonly targetName: string },
): Connector {
  const timeoutMs = parseDuration(settings.timeout) * 1000;
  const where = `targets.${ctx.targetName}.settings.credentials`;
  const credentials = settings.credentials
    ? {
        accessKeyId: ctx.resolveSecret(settings.credentials.access_key_id, `${where}.access_key_id`).reveal(),
        secretAccessKey: ctx
          .resolveSecret(settings.credentials.secret_access_key, `${where}.secret_access_key`)
          .reveal(),
      }
    : undefined;
  const common = {
    region: settings.region,
    maxAttempts: 2,
    requestHandler: { requestTimeout: timeoutMs, connectionTimeout: timeoutMs },
    ...(credentials ? { credentials } : {}),
  };
  const trail = settings.cloudtrail ? createCloudTrailWatcher(settings.cloudtrail, ctx) : null;
  const sts = new STSClient({ ...common, ...(settings.sts_endpoint ? { endpoint: settings.sts_endpoint } : {}) });
  const iam = new IAMClient({ ...common, ...(settings.iam_endpoint ? { endpoint: settings.iam_endpoint } : {}) });

  const fail = (step: string, e: unknown): never => {
    if (e instanceof BreakglassError) throw e;
    const err = e as { name?: string; message?: string; $metadata?: { httpStatusCode?: number } };
    const hint =
      err.name === "AccessDenied" || err.name === "AccessDeniedException"
        ? "; check the role's trust policy (the broker's principal, sts:TagSession, sts:SetSourceIdentity) and the broker's IAM permissions"
        : err.name === "Throttling" || err.name === "ThrottlingException"
          ? "; AWS is throttling, the broker retries"
          : "";
    throw new BreakglassError(
      "ERR_CONNECTOR_FAILED",
      `aws target ${ctx.targetName}: ${step} failed: ${err.name ?? "Error"}: ${err.message ?? String(e)}${hint}`,
      { step, awsError: err.name ?? null, httpStatus: err.$metadata?.httpStatusCode ?? null },
    );
  };

  const grantsOf = (role: RoleDef): AwsRoleGrants =>
    parseRoleGrants(
      awsRoleGrantsSchema,
      role,
      "an aws",
      "{role_arn: arn:aws:iam::123456789012:role/BreakGlassEmergency}",
    );
  const roleNameOf = (arn: string) => ROLE_ARN.exec(arn)?.[1] ?? "";

  const readDeny = async (roleName: string): Promise<{ Version: string; Statement: unknown[] } | null> => {
    try {
      const out = await iam.send(
        new GetRolePolicyCommand({ RoleName: roleName, PolicyName: settings.revoke_policy_name }),
      );
      return JSON.parse(decodeURIComponent(out.PolicyDocument ?? "")) as { Version: string; Statement: unknown[] };
    } catch (e) {
      if (
        (e as { name?: string }).name === "NoSuchEntityException" ||
        (e as { name?: string }).name === "NoSuchEntity"
      ) {
        return null;
      }
      throw e;
    }
  };

  // Read-modify-write of a role's deny policy, one at a time per role.
  const locks = new Map<string, Promise<unknown>>();
  const exclusive = <T>(key: string, fn: () => Promise<T>): Promise<T> => {
    const run = (locks.get(key) ?? Promise.resolve()).then(fn, fn);
    locks.set(
      key,
      run.catch(() => {}),
    );
    return run;
  };

  const signinUrl = async (c: {
    AccessKeyId?: string | undefined;
    SecretAccessKey?: string | undefined;
    SessionToken?: string | undefined;
  }): Promise<string> => {
    const session = JSON.stringify({
      sessionId: c.AccessKeyId,
      sessionKey: c.SecretAccessKey,
      sessionToken: c.SessionToken,
    });
    const res = await fetch(
      `${settings.federation_endpoint}?Action=getSigninToken&Session=${encodeURIComponent(session)}`,
      {
        signal: AbortSignal.timeout(timeoutMs),
      },
    );
    if (!res.ok) throw new Error(`federation endpoint answered HTTP ${res.status}`);
    const { SigninToken } = (await res.json()) as { SigninToken?: string };
    if (!SigninToken) throw new Error("federation endpoint returned no SigninToken");
    const q = new URLSearchParams({
      Action: "login",
      Issuer: "breakglass",
      Destination: "https://console.aws.amazon.com/",
      SigninToken,
    });
    return `${settings.federation_endpoint}?${q.toString()}`;
  };

  return {
    timeoutMs: timeoutMs * 3,
    plan: (facts) => ({
      principal: `bg-${facts.grantId}`.replace(/[^\w+=,.@-]/g, "-").slice(0, 64),
      roleArn: grantsOf(facts.role).role_arn,
    }),

    async grant(facts, handle): Promise<ConnectorResult> {
      try {
        const g = grantsOf(facts.role);
        const sessionName = String(handle.principal);
        const maxS = Math.min(parseDuration(g.max_session), MAX_SESSION_S);
        const wantS = Math.ceil((facts.endsAt - ctx.clock.now()) / 1000);
        const durationS = Math.max(STS_MIN_S, Math.min(wantS, maxS));
        const out = await sts.send(
          new AssumeRoleCommand({
            RoleArn: g.role_arn,
            RoleSessionName: sessionName,
            DurationSeconds: durationS,
            SourceIdentity: stsSafe(facts.requester, 64).padEnd(2, "_"),
            Tags: [
              { Key: "breakglass-grant", Value: facts.grantId },
              { Key: "breakglass-incident", Value: stsSafe(facts.incident, 256) || "none" },
            ],
            ...(g.session_policy_arns.length > 0 ? { PolicyArns: g.session_policy_arns.map((arn) => ({ arn })) } : {}),
          }),
        );
        const c = out.Credentials;
        if (!c?.AccessKeyId || !c.SecretAccessKey || !c.SessionToken)
          throw new Error("AssumeRole returned no credentials");
        const console = await signinUrl(c);
        const expires = c.Expiration ? new Date(c.Expiration).toISOString() : null;
        const credential = [
          `# Breakglass AWS credential: grant ${facts.grantId} for ${facts.requester} as ${g.role_arn}`,
          `# Keys expire ${expires}; the grant ends ${new Date(facts.endsAt).toISOString()} and is revoked then.`,
          `export AWS_ACCESS_KEY_ID=${c.AccessKeyId}`,
          `export AWS_SECRET_ACCESS_KEY=${c.SecretAccessKey}`,
          `export AWS_SESSION_TOKEN=${c.SessionToken}`,
          `# console: ${console}`,
          "",
        ].join("\n");
        return {
          credential: new Redacted(credential),
          detail: {
            roleArn: g.role_arn,
            sessionName,
            assumedRoleArn: out.AssumedRoleUser?.Arn ?? null,
            sourceIdentity: out.SourceIdentity ?? null,
            accessKeyId: c.AccessKeyId,
            durationS,
            credentialExpiresAt: expires,
            grantEndsAt: new Date(facts.endsAt).toISOString(),
            outlivesGrant: wantS < durationS,
          },
        };
      } catch (e) {
        return fail("grant (sts:AssumeRole)", e);
      }
    },

    async revoke(facts, handle): Promise<ConnectorResult> {
      const roleArn = typeof handle.roleArn === "string" ? handle.roleArn : grantsOf(facts.role).role_arn;
      const roleName = roleNameOf(roleArn);
      try {
        return await exclusive(roleName, async () => {
          const current = await readDeny(roleName);
          if (isRevokedIn(current, facts.grantId)) {
            return { credential: null, detail: { roleArn, policy: settings.revoke_policy_name, alreadyRevoked: true } };
          }
          const next = addRevocation(current, facts.grantId, new Date(ctx.clock.now()));
          const text = JSON.stringify(next);
          if (text.length > POLICY_LIMIT) {
            throw new BreakglassError(
              "ERR_CONNECTOR_FAILED",
              `aws target ${ctx.targetName}: the deny policy ${settings.revoke_policy_name} on ${roleName} would exceed IAM's ${POLICY_LIMIT}-character limit (${text.length}); too many grants revoked in 13 hours — rotate the role or shorten max_session`,
            );
          }
          await iam.send(
            new PutRolePolicyCommand({
              RoleName: roleName,
              PolicyName: settings.revoke_policy_name,
              PolicyDocument: text,
            }),
          );
          return {
            credential: null,
            detail: { roleArn, policy: settings.revoke_policy_name, policyChars: text.length },
          };
        });
      } catch (e) {
        return fail("revoke (iam:PutRolePolicy)", e);
      }
    },

    async verify(facts, handle): Promise<VerifyResult> {
      const roleArn = typeof handle.roleArn === "string" ? handle.roleArn : grantsOf(facts.role).role_arn;
      // No STS credential outlives 12 hours after the grant's end.
      const expired = ctx.clock.now() > facts.endsAt + MAX_SESSION_S * 1000;
      try {
        const denied = isRevokedIn(await readDeny(roleNameOf(roleArn)), facts.grantId);
        return { revoked: denied || expired, detail: { roleArn, denied, expired } };
      } catch (e) {
        return fail("verify (iam:GetRolePolicy)", e);
      }
    },

    ...(trail ? { watchSessions: trail.watchSessions, pushedSessions: trail.pushedSessions } : {}),

    async close() {
      sts.destroy();
      iam.destroy();
    },
  };
}
