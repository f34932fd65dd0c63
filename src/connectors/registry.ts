/** The connectors Breakglass knows, by the name a target's `connector:` uses. */
import type { z } from "zod";
import { BreakglassError } from "../core/errors.js";
import type { TargetDef } from "../core/model.js";
import type { Connector } from "../core/ports.js";
import { createExecConnector, execSettingsSchema } from "./exec-connector.js";

export const connectorSettingsSchemas: Readonly<Record<string, z.ZodType>> = {
  exec: execSettingsSchema,
};

/** @throws ERR_CONFIG_INVALID for an unknown connector (the config loader rejects it first). */
export function createConnector(target: TargetDef, opts: { baseDir: string }): Connector {
  switch (target.connector) {
    case "exec":
      return createExecConnector(execSettingsSchema.parse(target.settings), { cwd: opts.baseDir });
    default:
      throw new BreakglassError(
        "ERR_CONFIG_INVALID",
        `target ${target.name} uses unknown connector ${target.connector}`,
      );
  }
}
