/** The postgres connector's settings (`targets.<name>.settings`) and a role's `grants` for it. */
import { z } from "zod";
import { Duration } from "../contract/config-schema.js";
import type { RoleDef } from "../core/model.js";
import { secretRefSchema } from "../secrets/secret-ref.js";
import { parseRoleGrants } from "./connector-context.js";

const Ident = z
  .string()
  .regex(/^[a-z_][a-z0-9_$]{0,62}$/, { message: "use a lower-case PostgreSQL identifier (a-z, 0-9, _)" });

export const postgresSettingsSchema = z
  .object({
    admin_url: secretRefSchema.describe(
      "The broker's admin connection to the target (postgres://user:password@host:port/database): a role with CREATEROLE, pg_signal_backend and ADMIN OPTION on the recovery roles (or a superuser, which the side-permission sweep needs to revoke grants made by other roles)",
    ),
    connect_host: z
      .string()
      .min(1)
      .optional()
      .describe("Host in the connection string given to holders (default: the admin URL's)"),
    connect_port: z
      .number()
      .int()
      .min(1)
      .max(65535)
      .optional()
      .describe("Port in the holder's connection string (default: the admin URL's)"),
    connect_options: z
      .string()
      .default("")
      .describe("Query string appended to the holder's connection string, e.g. `sslmode=verify-full`"),
    role_prefix: Ident.default("bg_").describe(
      "Prefix of the per-grant login roles. A role with it counts as a grant's only when the broker's admin granted its membership: any other (e.g. one a holder created) is contained and dropped like every role made in a window",
    ),
    reassign_owned_to: Ident.optional().describe(
      "Role that receives the data objects made during a window (kept, private), and what cannot be dropped (default: the grant's first recovery role)",
    ),
    containment: z
      .object({
        accept: z
          .record(
            Ident,
            z
              .string()
              .trim()
              .min(10, { message: "give the reason in a sentence (at least 10 characters)" })
              .describe("Why this recovery role is accepted although containment cannot work for it"),
          )
          .default({})
          .describe(
            "Recovery roles whose power makes containment impossible (SUPERUSER, server-file or server-program roles, CREATEROLE on PostgreSQL 15 or older), accepted anyway — each with a reason. Without it, their grants are refused",
          ),
      })
      .strict()
      .default({ accept: {} })
      .describe("How the end of a window is contained (docs/connectors/postgres.md#containment)"),
    sweep: z
      .enum(["revoke", "report"])
      .default("revoke")
      .describe(
        "Changes found at the end of a window: `revoke` (revert or contain them, recording each), or only `report` them (each left one pages)",
      ),
    sweep_ignore_roles: z
      .array(z.string().min(1))
      .default([])
      .describe("Roles whose privilege changes during a window are legitimate (e.g. a migration role); never swept"),
    standing_allowed: z
      .array(z.string().min(1))
      .default([])
      .describe(
        "Login roles allowed to hold recovery roles or superuser permanently; everything else is reported as drift",
      ),
    timeout: Duration.default("15s").describe("Longest one grant, revoke or verify may take"),
    watch_roles: z
      .array(z.string().min(1))
      .default([])
      .describe(
        "Standing break-glass login roles to watch (e.g. an emergency DBA account): any session of theirs — and of a grant role outside its grant — raises target.unauthorized_login",
      ),
    terminate_unauthorized: z
      .boolean()
      .default(false)
      .describe("Also terminate such sessions at once (pg_terminate_backend)"),
    pool_size: z
      .number()
      .int()
      .min(1)
      .max(64)
      .default(4)
      .describe("Admin connections the broker keeps to this target (bounds concurrent grants and revocations)"),
  })
  .strict();

export type PostgresSettings = z.infer<typeof postgresSettingsSchema>;

export const postgresRoleGrantsSchema = z
  .object({
    roles: z.array(Ident).min(1).describe("Recovery roles the grant role becomes a member of, e.g. [recovery_rw]"),
    connection_limit: z.number().int().min(1).max(1000).default(5).describe("Concurrent sessions of the grant role"),
    statement_timeout: z
      .string()
      .regex(/^\d+(ms|s|min|h)?$/, { message: "write it like 30s, 5min or 500ms" })
      .optional()
      .describe("statement_timeout of the grant role's sessions"),
    search_path: z
      .string()
      .regex(/^[a-z_][a-z0-9_$]*(\s*,\s*[a-z_][a-z0-9_$]*)*$/)
      .optional()
      .describe("search_path of the grant role's sessions"),
  })
  .strict();

export type PostgresRoleGrants = z.infer<typeof postgresRoleGrantsSchema>;

/**
 * A role's `grants` for a postgres target (the config loader checks them first).
 * @throws ERR_CONNECTOR_FAILED naming the role and every problem
 */
export const postgresRoleGrants = (role: RoleDef): PostgresRoleGrants =>
  parseRoleGrants(postgresRoleGrantsSchema, role, "a postgres", "{roles: [recovery_rw]}");
