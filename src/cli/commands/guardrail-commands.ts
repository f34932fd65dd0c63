/**
 * `breakglass guardrail aws` (the SCP, the break-glass role's permission and trust policies) and
 * `breakglass guardrail simulate` (evaluate policy JSON for one principal and action, and explain
 * why). Offline: files in, text out.
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { awsGuardrail, GuardrailError } from "../../guardrail/aws-guardrail.js";
import { contextFor, evaluate, type PolicyDocument, PolicyError, parsePolicy } from "../../guardrail/iam-policy.js";
import { CliError, type CliIo, UsageError } from "../cli-io.js";
import type { Command } from "../command.js";
import { EXIT } from "../exit-codes.js";

export const guardrailAwsCommand: Command = {
  name: "guardrail aws",
  summary: "Print the AWS SCP that keeps tamper actions for the break-glass role only, and the role's policies",
  args: [],
  options: {
    role: { type: "string", value: "NAME", required: true, description: "The break-glass IAM role's name" },
    "broker-principal": {
      type: "string",
      value: "ARN",
      description: "The IAM role or user the broker runs as: the only principal the role trusts",
    },
    action: {
      type: "string",
      value: "SERVICE:ACTION",
      multiple: true,
      description: "An action to protect instead of the default list",
    },
    out: {
      type: "string",
      value: "DIR",
      description: "Write scp.json, role-permissions.json, role-trust.json into DIR",
    },
  },
  notes: [
    "Default actions: cloudtrail:StopLogging, cloudtrail:DeleteTrail, config:DeleteConfigurationRecorder,",
    "guardduty:DeleteDetector, kms:ScheduleKeyDeletion, iam:DeleteRolePermissionsBoundary, organizations:LeaveOrganization.",
    "Check the result with `breakglass guardrail simulate scp.json --scp --principal ARN --action ACTION`.",
  ],
  async run(input, io) {
    const actions = input.strings("action");
    const broker = input.string("broker-principal");
    let docs: ReturnType<typeof awsGuardrail>;
    try {
      docs = awsGuardrail({
        roleName: input.requireString("role"),
        ...(actions.length > 0 ? { actions } : {}),
        ...(broker === undefined ? {} : { brokerPrincipal: broker }),
      });
    } catch (e) {
      if (e instanceof GuardrailError) throw new UsageError(e.message, "guardrail aws");
      throw e;
    }
    const out = input.string("out");
    const files = {
      "scp.json": docs.scp,
      "role-permissions.json": docs.rolePermissions,
      "role-trust.json": docs.roleTrust,
    };
    if (out === undefined) {
      for (const [name, doc] of Object.entries(files)) io.out(`// ${name}\n${JSON.stringify(doc, null, 2)}`);
      return EXIT.OK;
    }
    const dir = resolve(io.cwd, out);
    mkdirSync(dir, { recursive: true });
    for (const [name, doc] of Object.entries(files))
      writeFileSync(join(dir, name), `${JSON.stringify(doc, null, 2)}\n`);
    io.out(
      `Wrote ${Object.keys(files)
        .map((f) => join(dir, f))
        .join(", ")}`,
    );
    return EXIT.OK;
  },
};

function loadPolicy(io: CliIo, file: string): PolicyDocument {
  const path = resolve(io.cwd, file);
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new CliError(
      EXIT.CONFIG,
      `cannot read ${path} (${String((e as NodeJS.ErrnoException).code)})`,
      undefined,
      "ERR_VALIDATION",
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new CliError(EXIT.CONFIG, `${path} is not valid JSON: ${(e as Error).message}`, undefined, "ERR_VALIDATION");
  }
  try {
    return parsePolicy(json, file);
  } catch (e) {
    if (e instanceof PolicyError) throw new CliError(EXIT.CONFIG, `${path}: ${e.message}`, undefined, "ERR_VALIDATION");
    throw e;
  }
}

export const guardrailSimulateCommand: Command = {
  name: "guardrail simulate",
  summary: "Evaluate policy JSON for one principal and action, and explain the decision",
  args: [{ name: "POLICY.json", required: true, description: "A policy document (an SCP with --scp)" }],
  options: {
    principal: {
      type: "string",
      value: "ARN",
      required: true,
      description: "Who acts (a role, user or assumed-role session ARN)",
    },
    action: { type: "string", value: "SERVICE:ACTION", required: true, description: "What they do" },
    resource: { type: "string", value: "ARN", description: "On what (default *)" },
    scp: {
      type: "boolean",
      description: "POLICY.json is a service control policy (AWS's default FullAWSAccess allow assumed beside it)",
    },
    identity: {
      type: "string",
      value: "FILE",
      multiple: true,
      description: "An identity policy of the principal, evaluated together with POLICY.json",
    },
    json: { type: "boolean", description: "Print the decision and explanation as JSON" },
  },
  notes: [
    "Exit code 0 when the action is allowed, 6 when it is denied, 3 when a policy file is invalid.",
    "Not modelled: resource-based policies, permission boundaries, session and VPC endpoint policies,",
    "ForAnyValue/ForAllValues, policy variables. See docs/guardrail-aws.md.",
  ],
  async run(input, io) {
    const main = loadPolicy(io, input.arg(0));
    const extra = input.strings("identity").map((f) => loadPolicy(io, f));
    const isScp = input.flag("scp");
    const identity = isScp ? (extra.length > 0 ? extra : null) : [main, ...extra];
    const resource = input.string("resource");
    const ctx = contextFor(input.requireString("principal"), input.requireString("action"), {
      ...(resource === undefined ? {} : { resource }),
    });
    const result = evaluate({ identity, scps: isScp ? [main] : null }, ctx);
    if (input.flag("json")) {
      io.out(
        JSON.stringify(
          { ...result, principalArn: ctx.keys["aws:PrincipalArn"], action: ctx.action, resource: ctx.resource },
          null,
          2,
        ),
      );
    } else {
      io.out(
        `${result.decision === "allow" ? "ALLOWED" : "DENIED"} (${result.decision}): ${ctx.action} by ${input.requireString("principal")}`,
      );
      for (const line of result.explanation) io.out(`  ${line}`);
    }
    return result.decision === "allow" ? EXIT.OK : EXIT.CHECK_FAILED;
  },
};

export const guardrailCommands: readonly Command[] = [guardrailAwsCommand, guardrailSimulateCommand];
