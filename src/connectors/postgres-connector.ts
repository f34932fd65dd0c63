/**
 * The `postgres` connector: one login role per grant, whose password stops working at the grant's
 * end by itself (`VALID UNTIL`), so access ends on time even when the broker is down.
 *
 * Grant: `CREATE ROLE bg_<grant> LOGIN … VALID UNTIL <end> IN ROLE <recovery roles>` with a random
 * password sent as a SCRAM verifier (the plaintext never reaches the server or its logs), a
 * connection limit and per-role settings; at the first grant, a snapshot of roles, memberships
 * and privileges is taken for the side-permission sweep and kept in the grant's handle.
 * Revoke: `NOLOGIN` (no new sessions), terminate the role's backends, sweep what changed since the
 * snapshot (privileges granted to others, new roles, escalated role attributes, new memberships),
 * reassign what the role owns to a configured owner (data is never dropped), drop the role.
 * Verify: the role is gone, no backend remains, and the sweep finds nothing left.
 *
 * The sweep works in the target's configured database; cluster-wide objects (roles, memberships)
 * are global. Column privileges and default privileges of other roles are not swept (see
 * docs/connectors/postgres.md).
 */
import { randomBytes } from "node:crypto";
import pg from "pg";
import { z } from "zod";
import { Duration } from "../contract/config-schema.js";
import { parseDuration } from "../core/duration.js";
import { BreakglassError } from "../core/errors.js";
import type { RoleDef } from "../core/model.js";
import type {
  Connector,
  ConnectorResult,
  DriftItem,
  TargetInventory,
  VerifyResult,
  WatchedSession,
} from "../core/ports.js";
import { Redacted } from "../core/redacted.js";
import { formatVerifier, scramVerifier } from "../secrets/scram.js";
import { secretRefSchema } from "../secrets/secret-ref.js";
import { type ConnectorContext, parseRoleGrants } from "./connector-context.js";

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
      "Prefix of the per-grant login roles. Reserved for Breakglass: reconciliation removes leftover roles with it",
    ),
    reassign_owned_to: Ident.optional().describe(
      "Role that receives objects a grant role created, so nothing made during an incident is lost (default: the grant's first recovery role)",
    ),
    sweep: z
      .enum(["revoke", "report"])
      .default("revoke")
      .describe("Side permissions found at the end of a grant: `revoke` them (and record each), or only `report` them"),
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

/** What the side-permission sweep compares: taken at activation, kept in the grant's handle. */
export interface Snapshot {
  /** role name → its escalation-relevant attributes, e.g. `super=f,createrole=f,…` */
  readonly roles: Readonly<Record<string, string>>;
  /** `role>member` for every membership. */
  readonly members: readonly string[];
  /** One entry per privilege: {@link aclKey}. */
  readonly acl: readonly string[];
}

export interface SweepItem {
  readonly kind: "privilege" | "membership" | "role_created" | "role_attribute";
  readonly description: string;
  /** How it was fixed, or null when only reported. */
  readonly fix: string | null;
}

interface AclRow {
  kind: string;
  obj: string;
  grantor: string;
  grantee: string;
  privilege: string;
  grantable: boolean;
}

/** How long revoke waits for terminated sessions to exit before it reports failure (and is retried). */
const TERMINATE_WAIT_MS = 2000;

const ATTRIBUTES = ["super", "createrole", "createdb", "login", "replication", "bypassrls"] as const;
const ATTRIBUTE_SQL: Record<(typeof ATTRIBUTES)[number], string> = {
  super: "SUPERUSER",
  createrole: "CREATEROLE",
  createdb: "CREATEDB",
  login: "LOGIN",
  replication: "REPLICATION",
  bypassrls: "BYPASSRLS",
};

const aclKey = (r: AclRow): string => JSON.stringify([r.kind, r.obj, r.grantor, r.grantee, r.privilege, r.grantable]);

const ACL_QUERY = `
  SELECT CASE c.relkind WHEN 'S' THEN 'SEQUENCE' ELSE 'TABLE' END AS kind, c.oid::regclass::text AS obj,
         a.grantor::regrole::text AS grantor,
         CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE a.grantee::regrole::text END AS grantee,
         a.privilege_type AS privilege, a.is_grantable AS grantable
    FROM pg_class c CROSS JOIN LATERAL aclexplode(c.relacl) a
   WHERE c.relacl IS NOT NULL AND c.relnamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace)
  UNION ALL
  SELECT 'SCHEMA', quote_ident(n.nspname), a.grantor::regrole::text,
         CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE a.grantee::regrole::text END, a.privilege_type, a.is_grantable
    FROM pg_namespace n CROSS JOIN LATERAL aclexplode(n.nspacl) a
   WHERE n.nspacl IS NOT NULL AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
  UNION ALL
  SELECT 'FUNCTION', p.oid::regprocedure::text, a.grantor::regrole::text,
         CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE a.grantee::regrole::text END, a.privilege_type, a.is_grantable
    FROM pg_proc p CROSS JOIN LATERAL aclexplode(p.proacl) a
   WHERE p.proacl IS NOT NULL AND p.pronamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace)
  UNION ALL
  SELECT 'DATABASE', quote_ident(d.datname), a.grantor::regrole::text,
         CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE a.grantee::regrole::text END, a.privilege_type, a.is_grantable
    FROM pg_database d CROSS JOIN LATERAL aclexplode(d.datacl) a
   WHERE d.datname = current_database() AND d.datacl IS NOT NULL`;

const ident = (name: string): string => `"${name.replaceAll('"', '""')}"`;
const literal = (value: string): string => `'${value.replaceAll("'", "''")}'`;

/**
 * Did the statement fail because the connection is gone rather than because of the statement?
 * The server ended the session (57P01 admin shutdown, 57P02 crash, 57P03 starting up; class 08),
 * or the socket closed under the driver.
 * @see https://www.postgresql.org/docs/current/errcodes-appendix.html
 */
function connectionLost(e: unknown): boolean {
  const { code, message } = e as { code?: unknown; message?: unknown };
  if (typeof code === "string") {
    return code.startsWith("08") || ["57P01", "57P02", "57P03", "ECONNRESET", "EPIPE"].includes(code);
  }
  return typeof message === "string" && /^Connection terminated|not queryable/.test(message);
}

/** Role names from `::regrole::text` are already quoted where needed; strip for comparison. */
const bare = (name: string): string => (name.startsWith('"') ? name.slice(1, -1).replaceAll('""', '"') : name);

export function createPostgresConnector(
  settings: PostgresSettings,
  ctx: ConnectorContext & { readonly targetName: string; readonly roles?: readonly RoleDef[] },
): Connector {
  const timeoutMs = parseDuration(settings.timeout) * 1000;
  const resolveAdminUrl = () => ctx.resolveSecret(settings.admin_url, `targets.${ctx.targetName}.settings.admin_url`);
  let adminUrl = resolveAdminUrl();
  const parsedAdmin = new URL(adminUrl.reveal());
  const database = decodeURIComponent(parsedAdmin.pathname.replace(/^\//, "")) || "postgres";
  const adminUser = decodeURIComponent(parsedAdmin.username);
  let pool: pg.Pool | null = null;
  const admin = (): pg.Pool => {
    if (!pool) {
      pool = new pg.Pool({
        connectionString: adminUrl.reveal(),
        max: settings.pool_size,
        connectionTimeoutMillis: timeoutMs,
        query_timeout: timeoutMs,
        idleTimeoutMillis: 10_000,
        application_name: "breakglass",
      });
      // An idle client's error (server restart) must not crash the broker.
      pool.on("error", (e) =>
        ctx.log("postgres target connection dropped", { target: ctx.targetName, error: e.message }),
      );
      // Nor a checked-out one's (the pool listens only to idle clients): the call in flight fails
      // with the error, and the pool discards the client when it is released.
      pool.on("connect", (client) => client.on("error", () => {}));
    }
    return pool;
  };

  /** Read the admin URL again; true (and a new pool) when it changed. */
  const reResolveAdmin = (): boolean => {
    let next: ReturnType<typeof resolveAdminUrl>;
    try {
      next = resolveAdminUrl();
    } catch {
      return false;
    }
    if (next.reveal() === adminUrl.reveal()) return false;
    adminUrl = next;
    const old = pool;
    pool = null;
    void old?.end().catch(() => {});
    ctx.log("postgres target admin URL changed; reconnecting with the new one", { target: ctx.targetName });
    return true;
  };

  const fail = (step: string, e: unknown, detail: Record<string, unknown> = {}): never => {
    if (e instanceof BreakglassError) throw e;
    const err = e as { message?: string; code?: string };
    throw new BreakglassError(
      "ERR_CONNECTOR_FAILED",
      `postgres target ${ctx.targetName}: ${step} failed: ${err.message ?? String(e)}${err.code ? ` (SQLSTATE ${err.code})` : ""}`,
      { step, sqlstate: err.code ?? null, ...detail },
    );
  };

  /** A pooled admin connection; a rotated admin password is picked up here (see below). */
  const connectAdmin = async (step: string): Promise<pg.PoolClient> => {
    try {
      return await admin().connect();
    } catch (e) {
      // The admin password was rotated (by `breakglass rotation`, another replica, or by hand):
      // read the reference again and, if it changed, connect with the new one — no restart.
      const fresh = (e as { code?: string }).code === "28P01" ? reResolveAdmin() : false;
      if (!fresh) return fail(`${step} (connecting as ${adminUser})`, e);
      try {
        return await admin().connect();
      } catch (e2) {
        return fail(`${step} (connecting as ${adminUser} with the admin URL read again)`, e2);
      }
    }
  };

  const withClient = async <T>(step: string, fn: (c: pg.PoolClient) => Promise<T>): Promise<T> => {
    // A pooled connection the server ended while it sat idle (a restart, a pooler, an idle
    // timeout) fails the call's first statement if this process has not read the goodbye yet —
    // likely on a busy machine. The call is made again on another connection (connector calls
    // are idempotent), up to once per pooled connection: the server may have ended all of them.
    let lost: unknown = null;
    for (let attempt = 0; ; attempt++) {
      let client: pg.PoolClient;
      try {
        client = await connectAdmin(step);
      } catch (e) {
        // The server itself is gone: report what the call ran into, and why it was not made again.
        if (lost !== null) return fail(step, lost, { reconnect: (e as Error).message });
        throw e;
      }
      try {
        const result = await fn(client);
        client.release();
        return result;
      } catch (e) {
        if (connectionLost(e)) {
          client.release(e as Error); // discarded, not given back to the pool
          if (attempt < settings.pool_size) {
            lost = e;
            continue;
          }
          return fail(step, e);
        }
        await client.query("ROLLBACK").catch(() => {});
        client.release();
        return fail(step, e);
      }
    }
  };

  const roleGrants = (role: RoleDef): PostgresRoleGrants =>
    parseRoleGrants(postgresRoleGrantsSchema, role, "a postgres", "{roles: [recovery_rw]}");

  const principalOf = (handle: Readonly<Record<string, unknown>>): string => {
    const p = handle.principal;
    if (typeof p !== "string" || !p.startsWith(settings.role_prefix)) {
      throw new BreakglassError(
        "ERR_CONNECTOR_FAILED",
        `handle has no ${settings.role_prefix} role: ${JSON.stringify(handle)}`,
      );
    }
    return p;
  };

  const isOurs = (name: string): boolean => bare(name).startsWith(settings.role_prefix);
  const ignored = new Set([adminUser, ...settings.sweep_ignore_roles]);

  /** One round trip: roles, memberships and privileges, as JSON. */
  const takeSnapshot = async (c: pg.ClientBase): Promise<Snapshot> => {
    const { rows } = await c.query<{ roles: { rolname: string; a: string }[]; members: string[]; acl: AclRow[] }>(
      `SELECT
         (SELECT coalesce(json_agg(json_build_object('rolname', rolname, 'a', concat_ws(',', 'super=' || rolsuper,
                   'createrole=' || rolcreaterole, 'createdb=' || rolcreatedb, 'login=' || rolcanlogin,
                   'replication=' || rolreplication, 'bypassrls=' || rolbypassrls))), '[]')
            FROM pg_roles WHERE rolname NOT LIKE 'pg\\_%') AS roles,
         (SELECT coalesce(json_agg(r.rolname || '>' || m.rolname), '[]') FROM pg_auth_members am
            JOIN pg_roles r ON r.oid = am.roleid JOIN pg_roles m ON m.oid = am.member) AS members,
         (SELECT coalesce(json_agg(x), '[]') FROM (${ACL_QUERY}) x) AS acl`,
    );
    const row = rows[0] ?? { roles: [], members: [], acl: [] };
    return {
      roles: Object.fromEntries(row.roles.filter((r) => !isOurs(r.rolname)).map((r) => [r.rolname, r.a])),
      members: row.members.filter((m) => !isOurs(m.split(">")[1] ?? "")),
      // An owner's own privileges (grantor = grantee) are not something anyone handed out.
      acl: row.acl.filter((r) => !isOurs(r.grantee) && r.grantee !== r.grantor).map(aclKey),
    };
  };

  /**
   * What changed since `before` that the sweep undoes, each with the SQL that undoes it. New
   * roles' objects go to `owner`. Grants are revoked as their grantor (PostgreSQL records grants
   * made through a membership as made by the owning role), which the admin must be able to SET
   * ROLE to — a superuser admin always can.
   */
  const diff = async (
    c: pg.ClientBase,
    before: Snapshot,
    owner: string,
  ): Promise<{ item: SweepItem; sql: string[] }[]> => {
    const now = await takeSnapshot(c);
    const out: { item: SweepItem; sql: string[] }[] = [];
    const existedBefore = (name: string) => before.roles[bare(name)] !== undefined;
    for (const [name, attrs] of Object.entries(now.roles)) {
      if (ignored.has(name)) continue;
      const old = before.roles[name];
      if (old === undefined) {
        out.push({
          item: { kind: "role_created", description: `role ${name} was created during the window`, fix: null },
          sql: [
            `REASSIGN OWNED BY ${ident(name)} TO ${ident(owner)}`,
            `DROP OWNED BY ${ident(name)}`,
            `DROP ROLE ${ident(name)}`,
          ],
        });
        continue;
      }
      for (const attr of ATTRIBUTES) {
        if (attrs.includes(`${attr}=true`) && old.includes(`${attr}=false`)) {
          out.push({
            item: { kind: "role_attribute", description: `role ${name} gained ${ATTRIBUTE_SQL[attr]}`, fix: null },
            sql: [`ALTER ROLE ${ident(name)} NO${ATTRIBUTE_SQL[attr]}`],
          });
        }
      }
    }
    const oldMembers = new Set(before.members);
    for (const m of now.members) {
      const [role, member] = m.split(">") as [string, string];
      // A new member role is dropped as a whole above.
      if (oldMembers.has(m) || ignored.has(member) || !existedBefore(member)) continue;
      out.push({
        item: { kind: "membership", description: `${member} was made a member of ${role}`, fix: null },
        sql: [`REVOKE ${ident(role)} FROM ${ident(member)} CASCADE`],
      });
    }
    const oldAcl = new Set(before.acl);
    for (const key of now.acl) {
      if (oldAcl.has(key)) continue;
      const [kind, obj, grantor, grantee, privilege] = JSON.parse(key) as [string, string, string, string, string];
      if (ignored.has(bare(grantee)) || (grantee !== "PUBLIC" && !existedBefore(grantee))) continue;
      const as = bare(grantor);
      out.push({
        item: {
          kind: "privilege",
          description: `${privilege} on ${kind.toLowerCase()} ${obj} was granted to ${grantee} (grantor ${grantor})`,
          fix: null,
        },
        sql: [
          ...(as === adminUser ? [] : [`SET LOCAL ROLE ${ident(as)}`]),
          `REVOKE ${privilege} ON ${kind} ${obj} FROM ${grantee} CASCADE`,
          "RESET ROLE",
        ],
      });
    }
    return out;
  };

  const snapshotOf = (handle: Readonly<Record<string, unknown>>): Snapshot | null => {
    const s = handle.snapshot as Snapshot | undefined;
    return s && typeof s === "object" && Array.isArray(s.acl) ? s : null;
  };

  const connectionString = (role: string, password: string): string => {
    const host = settings.connect_host ?? parsedAdmin.hostname;
    const port = settings.connect_port ?? (parsedAdmin.port || "5432");
    const hostPart = host.includes(":") ? `[${host}]` : host;
    const query = settings.connect_options ? `?${settings.connect_options.replace(/^\?/, "")}` : "";
    return `postgresql://${encodeURIComponent(role)}:${encodeURIComponent(password)}@${hostPart}:${port}/${encodeURIComponent(database)}${query}`;
  };

  return {
    timeoutMs: timeoutMs * 4,
    plan: (facts) => ({
      principal: `${settings.role_prefix}${facts.grantId.toLowerCase().replace(/[^a-z0-9_]/g, "_")}`.slice(0, 63),
    }),

    grant: (facts, handle) =>
      withClient("grant", async (c): Promise<ConnectorResult> => {
        const g = roleGrants(facts.role);
        const role = principalOf(handle);
        const password = randomBytes(24).toString("base64url");
        const validUntil = new Date(facts.endsAt).toISOString();
        await c.query("BEGIN");
        const snapshot = snapshotOf(handle) ? null : await takeSnapshot(c);
        const exists = (await c.query("SELECT 1 FROM pg_roles WHERE rolname = $1", [role])).rowCount === 1;
        const common = `LOGIN CONNECTION LIMIT ${g.connection_limit} PASSWORD ${literal(formatVerifier(scramVerifier(password)))} VALID UNTIL ${literal(validUntil)}`;
        if (!exists) {
          await c.query(
            `CREATE ROLE ${ident(role)} INHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS ${common}`,
          );
        } else {
          await c.query(`ALTER ROLE ${ident(role)} ${common}`);
        }
        await c.query(`GRANT ${g.roles.map(ident).join(", ")} TO ${ident(role)}`);
        await c.query(
          `COMMENT ON ROLE ${ident(role)} IS ${literal(`breakglass grant ${facts.grantId} for ${facts.requester} until ${validUntil}`)}`,
        );
        for (const [name, value] of [
          ["statement_timeout", g.statement_timeout],
          ["search_path", g.search_path],
        ] as const) {
          await c.query(
            value === undefined
              ? `ALTER ROLE ${ident(role)} RESET ${name}`
              : `ALTER ROLE ${ident(role)} SET ${name} = ${name === "search_path" ? value : literal(value)}`,
          );
        }
        await c.query("COMMIT");
        return {
          credential: new Redacted(connectionString(role, password)),
          detail: {
            role,
            validUntil,
            memberOf: g.roles,
            connectionLimit: g.connection_limit,
            database,
            reissued: exists,
          },
          ...(snapshot ? { handle: { snapshot } } : {}),
        };
      }),

    // Only the end moves: the password, memberships and settings stay, so the holder's
    // connection string keeps working. A role that can no longer log in (revoked) is not revived.
    extend: (facts, handle) =>
      withClient("extend", async (c): Promise<ConnectorResult> => {
        const role = principalOf(handle);
        const validUntil = new Date(facts.endsAt).toISOString();
        await c.query("BEGIN");
        const { rows } = await c.query<{ login: boolean }>(
          "SELECT rolcanlogin AS login FROM pg_roles WHERE rolname = $1",
          [role],
        );
        if (rows[0]?.login !== true) {
          throw new Error(`role ${role} ${rows.length === 0 ? "does not exist" : "can no longer log in (revoked)"}`);
        }
        await c.query(`ALTER ROLE ${ident(role)} VALID UNTIL ${literal(validUntil)}`);
        await c.query(
          `COMMENT ON ROLE ${ident(role)} IS ${literal(`breakglass grant ${facts.grantId} for ${facts.requester} until ${validUntil}`)}`,
        );
        await c.query("COMMIT");
        return { credential: null, detail: { role, validUntil } };
      }),

    revoke: (facts, handle) =>
      withClient("revoke", async (c): Promise<ConnectorResult> => {
        const role = principalOf(handle);
        // 1. No new sessions (first, so nobody slips in), 2. end the open ones, waiting up to
        //    1 s each for them to exit. A role that is already gone is not an error.
        let exists = true;
        try {
          await c.query(`ALTER ROLE ${ident(role)} NOLOGIN VALID UNTIL '-infinity'`);
        } catch (e) {
          if ((e as { code?: string }).code !== "42704") throw e; // undefined_object
          exists = false;
        }
        const killed = (
          await c.query<{ pid: number }>(
            // MATERIALIZED: the pid list is fixed before any backend is signalled (a plain WHERE
            // could evaluate pg_terminate_backend before the user filter and hit everyone).
            // No wait here (PostgreSQL's own wait polls every 100 ms); the exit is awaited below.
            `WITH victims AS MATERIALIZED (SELECT pid FROM pg_stat_activity WHERE usename = $1 AND pid <> pg_backend_pid())
             SELECT pid FROM victims WHERE pg_terminate_backend(victims.pid)`,
            [role],
          )
        ).rows.map((r) => r.pid);
        const terminated = killed.length;
        // 3. The sweep: every change since the snapshot, undone one by one so one failure does not hide the rest.
        const swept: SweepItem[] = [];
        const failures: string[] = [];
        const snapshot = snapshotOf(handle);
        const owner = settings.reassign_owned_to ?? roleGrants(facts.role).roles[0] ?? adminUser;
        if (snapshot) {
          for (const d of await diff(c, snapshot, owner)) {
            if (settings.sweep === "report") {
              swept.push(d.item);
              continue;
            }
            try {
              await c.query("BEGIN");
              for (const q of d.sql) await c.query(q);
              await c.query("COMMIT");
              swept.push({ ...d.item, fix: d.sql.filter((q) => !/^(SET LOCAL|RESET) ROLE/.test(q)).join("; ") });
            } catch (e) {
              await c.query("ROLLBACK").catch(() => {});
              failures.push(`${d.item.description}: ${(e as Error).message}`);
            }
          }
        }
        // 4. Keep what the role made, then drop it.
        let reassignedTo: string | null = null;
        if (exists) {
          // One round trip; PostgreSQL runs a multi-statement string as one transaction.
          await c.query(
            `REASSIGN OWNED BY ${ident(role)} TO ${ident(owner)}; DROP OWNED BY ${ident(role)}; DROP ROLE ${ident(role)}`,
          );
          reassignedTo = owner;
        }
        // 5. The signalled backends must really be gone before this counts as revoked.
        for (let waited = 0; killed.length > 0; waited += 5) {
          const left = await c.query("SELECT 1 FROM pg_stat_activity WHERE pid = ANY($1::int[])", [killed]);
          if (left.rowCount === 0) break;
          if (waited >= TERMINATE_WAIT_MS) {
            throw new BreakglassError(
              "ERR_CONNECTOR_FAILED",
              `postgres target ${ctx.targetName}: ${left.rowCount} session(s) of ${role} still running ${TERMINATE_WAIT_MS} ms after pg_terminate_backend`,
              { role },
            );
          }
          await new Promise((r) => setTimeout(r, 5));
        }
        if (failures.length > 0) {
          throw new BreakglassError(
            "ERR_CONNECTOR_FAILED",
            `postgres target ${ctx.targetName}: role ${role} is gone, but ${failures.length} side permission(s) could not be swept: ${failures.join("; ")}`,
            { role, swept, failures },
          );
        }
        return { credential: null, detail: { role, existed: exists, terminated, reassignedTo, swept } };
      }),

    verify: (_facts, handle) =>
      withClient("verify", async (c): Promise<VerifyResult> => {
        const role = principalOf(handle);
        const [state] = (
          await c.query<{ exists: boolean; open: number }>(
            `SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1) AS exists,
                    (SELECT count(*)::int FROM pg_stat_activity WHERE usename = $1) AS open`,
            [role],
          )
        ).rows;
        const exists = state?.exists ?? false;
        const open = state?.open ?? 0;
        const snapshot = snapshotOf(handle);
        const left =
          snapshot && settings.sweep === "revoke"
            ? (await diff(c, snapshot, adminUser)).map((d) => d.item.description)
            : [];
        return {
          revoked: !exists && open === 0 && left.length === 0,
          detail: { role, roleExists: exists, backends: open, sweepLeft: left },
        };
      }),

    watchSessions: () =>
      withClient("watch", async (c): Promise<WatchedSession[]> => {
        const rows = await c.query<{ pid: number; usename: string; started: Date | null; addr: string | null }>(
          `SELECT pid, usename, backend_start AS started, host(client_addr) AS addr FROM pg_stat_activity
            WHERE usename = ANY($1) OR starts_with(usename, $2)`,
          [settings.watch_roles, settings.role_prefix],
        );
        return rows.rows.map((r) => ({
          principal: r.usename,
          sessionId: `${r.pid}:${r.started?.getTime() ?? 0}`,
          grantId: r.usename.startsWith(settings.role_prefix) ? r.usename.slice(settings.role_prefix.length) : null,
          startedAt: r.started?.getTime() ?? null,
          from: r.addr,
        }));
      }),

    endSession: (session) =>
      withClient("terminate", async (c): Promise<boolean> => {
        if (!settings.terminate_unauthorized) return false;
        const [pid, started] = session.sessionId.split(":");
        // Only that backend, and only if it is still the same session (pids are reused).
        const r = await c.query(
          `WITH v AS MATERIALIZED (SELECT pid FROM pg_stat_activity
              WHERE pid = $1 AND usename = $2 AND floor(extract(epoch FROM backend_start) * 1000)::bigint = $3)
           SELECT pid FROM v WHERE pg_terminate_backend(v.pid)`,
          [Number(pid), session.principal, Number(started)],
        );
        return (r.rowCount ?? 0) > 0;
      }),

    async close() {
      const p = pool;
      pool = null;
      await p?.end();
    },

    inventory: () =>
      withClient("inventory", async (c): Promise<TargetInventory> => {
        const ours = await c.query<{ rolname: string }>(
          "SELECT rolname FROM pg_roles WHERE starts_with(rolname, $1) ORDER BY rolname",
          [settings.role_prefix],
        );
        const recovery = new Set(
          (ctx.roles ?? []).flatMap((r) => postgresRoleGrantsSchema.safeParse(r.grants).data?.roles ?? []),
        );
        const allowed = new Set([adminUser, ...settings.standing_allowed]);
        const standing = await c.query<{ rolname: string; super: boolean; via: string | null }>(
          `SELECT m.rolname, m.rolsuper AS super, string_agg(r.rolname, ',' ORDER BY r.rolname) AS via
             FROM pg_roles m
             LEFT JOIN pg_auth_members am ON am.member = m.oid
             LEFT JOIN pg_roles r ON r.oid = am.roleid AND r.rolname = ANY($1)
            WHERE m.rolcanlogin AND NOT starts_with(m.rolname, $2)
            GROUP BY m.rolname, m.rolsuper
           HAVING m.rolsuper OR count(r.rolname) > 0`,
          [[...recovery], settings.role_prefix],
        );
        const drift: DriftItem[] = standing.rows
          .filter((r) => !allowed.has(r.rolname))
          .map((r) => ({
            kind: r.super ? "standing_superuser" : "standing_recovery_member",
            principal: r.rolname,
            description: r.super
              ? `login role ${r.rolname} is a standing superuser on ${ctx.targetName}`
              : `login role ${r.rolname} holds recovery role(s) ${r.via} permanently on ${ctx.targetName}`,
          }));
        return {
          managed: ours.rows.map((r) => ({
            grantId: r.rolname.slice(settings.role_prefix.length),
            handle: { principal: r.rolname },
          })),
          drift,
        };
      }),
  };
}
