/** The connectors Breakglass knows, by the name a target's `connector:` uses. */
import type { z } from "zod";
import { BreakglassError } from "../core/errors.js";
import type { RoleDef, TargetDef } from "../core/model.js";
import type { Connector } from "../core/ports/connector.js";
import { awsRoleGrantsSchema, awsSettingsSchema, createAwsConnector } from "./aws-connector.js";
import type { ConnectorContext } from "./connector-context.js";
import { createExecConnector, execSettingsSchema } from "./exec-connector.js";
import { createPostgresConnector, postgresRoleGrantsSchema, postgresSettingsSchema } from "./postgres-connector.js";
import { createSshConnector, sshRoleGrantsSchema, sshSettingsSchema } from "./ssh-connector.js";

export const connectorSettingsSchemas: Readonly<Record<string, z.ZodType>> = {
  exec: execSettingsSchema,
  postgres: postgresSettingsSchema,
  ssh: sshSettingsSchema,
  aws: awsSettingsSchema,
};

/** What a role's `grants:` must look like on a target of each connector (none: free-form). */
export const connectorRoleGrantsSchemas: Readonly<Record<string, z.ZodType>> = {
  postgres: postgresRoleGrantsSchema,
  ssh: sshRoleGrantsSchema,
  aws: awsRoleGrantsSchema,
};

/** Connectors that hand the holder a credential, which the broker must keep encrypted (`secrets.key_file`). */
export const CREDENTIAL_CONNECTORS: ReadonlySet<string> = new Set(["postgres", "ssh", "aws"]);

/** What the configuration loader checks with: spread into `loadConfigFile`/`checkConfigText` options. */
export const connectorConfigChecks = {
  connectorSchemas: connectorSettingsSchemas,
  roleGrantsSchemas: connectorRoleGrantsSchemas,
  credentialConnectors: CREDENTIAL_CONNECTORS,
} as const;

/**
 * @param roles the roles that use this target (for drift checks)
 * @throws ERR_CONFIG_INVALID for an unknown connector (the config loader rejects it first), or a
 *   secret reference that cannot be opened.
 */
export function createConnector(target: TargetDef, ctx: ConnectorContext, roles: readonly RoleDef[] = []): Connector {
  switch (target.connector) {
    case "exec":
      return createExecConnector(execSettingsSchema.parse(target.settings), { cwd: ctx.baseDir });
    case "postgres":
      return createPostgresConnector(postgresSettingsSchema.parse(target.settings), {
        ...ctx,
        targetName: target.name,
        roles,
      });
    case "ssh":
      return createSshConnector(sshSettingsSchema.parse(target.settings), { ...ctx, targetName: target.name });
    case "aws":
      return createAwsConnector(awsSettingsSchema.parse(target.settings), { ...ctx, targetName: target.name });
    default:
      throw new BreakglassError(
        "ERR_CONFIG_INVALID",
        `target ${target.name} uses unknown connector ${target.connector}`,
      );
  }
}
