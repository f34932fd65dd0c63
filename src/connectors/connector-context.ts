/** What a connector gets from the composition root besides its own settings. */
import type { z } from "zod";
import { BreakglassError } from "../core/errors.js";
import type { RoleDef } from "../core/model.js";
import type { Clock } from "../core/ports/runtime.js";
import type { SecretResolver } from "../secrets/secret-ref.js";

export interface ConnectorContext {
  /** The configuration file's folder: relative paths in settings resolve against it. */
  readonly baseDir: string;
  /** Opens `{env}`, `{file}` and `{sealed}` secret references from the settings. */
  readonly resolveSecret: SecretResolver;
  readonly log: (msg: string, fields?: Record<string, unknown>) => void;
  /** The broker's clock: a credential's validity and a grant's end are judged by it, never Date.now(). */
  readonly clock: Clock;
}

/**
 * A role's `grants`, parsed by the connector's schema (the config loader checks them first; this
 * guards a role that reaches a connector anyway).
 * @param article "a postgres" / "an ssh" — for the message
 * @param example what valid grants look like, for the fix
 * @throws ERR_CONNECTOR_FAILED naming the role and every problem
 */
export function parseRoleGrants<S extends z.ZodType>(
  schema: S,
  role: RoleDef,
  article: string,
  example: string,
): z.output<S> {
  const parsed = schema.safeParse(role.grants);
  if (!parsed.success) {
    throw new BreakglassError(
      "ERR_CONNECTOR_FAILED",
      `role ${role.id}: grants for ${article} target must be like ${example}: ${parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`,
    );
  }
  return parsed.data;
}
