/**
 * The `postgres` connector: one login role per grant, whose password stops working at the grant's
 * end by itself (`VALID UNTIL`), so new logins end on time even when the broker is down.
 *
 * Grant: `CREATE ROLE bg_<grant> LOGIN … VALID UNTIL <end> IN ROLE <recovery roles>` with a random
 * password sent as a SCRAM verifier (the plaintext never reaches the server or its logs), a
 * connection limit and per-role settings. Before, at the first grant, a snapshot of the whole
 * cluster (every database) is kept in the grant's handle, and recovery roles whose reach makes
 * containment impossible are refused unless accepted (ADR 0009).
 * Cut access (at expiry, for every grant a tick ends at once): `NOLOGIN`, terminate the roles'
 * backends and await their exit.
 * Revoke: the same cut for this role (the `NOLOGIN` skipped when just done), roll back the
 * prepared transactions it left (`PREPARE TRANSACTION` outlives the session), compare the cluster
 * with the snapshot (a read begun after the sessions were gone, shared between revocations) and
 * revert, keep or contain each difference (src/core/pg-containment.ts), then drop the role —
 * giving what it still owns to the configured owner first (data is never dropped).
 * Verify: the role is gone, no backend remains, and the comparison finds nothing left to do
 * (the revocation's own, when it changed nothing; else read again).
 */
import { randomBytes } from "node:crypto";
import pg from "pg";
import { z } from "zod";
import { Duration } from "../contract/config-schema.js";
import { parseDuration } from "../core/duration.js";
import { BreakglassError } from "../core/errors.js";
import type { RoleDef } from "../core/model.js";
import {
  assessReach,
  type CatalogSnapshot,
  type ClusterFacts,
  type CompareContext,
  compareCatalogs,
  type DatabaseFacts,
  type Finding,
  type Outcome,
} from "../core/pg-containment.js";
import type {
  Connector,
  ConnectorGrantFacts,
  ConnectorResult,
  DriftItem,
  TargetInventory,
  VerifyResult,
  WatchedSession,
} from "../core/ports/connector.js";
import { Redacted } from "../core/redacted.js";
import { formatVerifier, scramVerifier } from "../secrets/scram.js";
import { secretRefSchema } from "../secrets/secret-ref.js";
import { type ConnectorContext, parseRoleGrants } from "./connector-context.js";
import { readCluster, readDatabase } from "./postgres-catalog.js";

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

/** One item of the comparison at the end, as the broker records it. */
export interface SweepItem {
  readonly id: string;
  readonly kind: string;
  readonly outcome: Outcome;
  readonly description: string;
  /** What was done, or null when only reported (`sweep: report`). */
  readonly fix: string | null;
}

/** How long revoke waits for terminated sessions to exit before it reports failure (and is retried). */
const TERMINATE_WAIT_MS = 2000;
/** Passes over drops that failed because another dropped object still depended on them. */
const DROP_PASSES = 4;

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

  /**
   * One more admin connection, only for cutting access ahead of revocations (`cutAccess`): the
   * pool's connections may all be busy with revocations' slower work, and a cut must not wait
   * behind them.
   */
  let cutPool: pg.Pool | null = null;
  const cutter = (): pg.Pool => {
    if (!cutPool) {
      cutPool = new pg.Pool({
        connectionString: adminUrl.reveal(),
        max: 1,
        connectionTimeoutMillis: timeoutMs,
        query_timeout: timeoutMs,
        idleTimeoutMillis: 10_000,
        application_name: "breakglass",
      });
      cutPool.on("error", (e) =>
        ctx.log("postgres target connection dropped", { target: ctx.targetName, error: e.message }),
      );
      cutPool.on("connect", (client) => client.on("error", () => {}));
    }
    return cutPool;
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
    for (const p of dbPools.values()) void p.end().catch(() => {});
    dbPools.clear();
    void cutPool?.end().catch(() => {});
    cutPool = null;
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

  const ignored = new Set([adminUser, ...settings.sweep_ignore_roles]);

  /** Pools for the target's other databases (the comparison reads and fixes each), made when first needed. */
  const dbPools = new Map<string, pg.Pool>();
  const poolFor = (db: string): pg.Pool => {
    if (db === database) return admin();
    let p = dbPools.get(db);
    if (!p) {
      const url = new URL(adminUrl.reveal());
      url.pathname = `/${encodeURIComponent(db)}`;
      p = new pg.Pool({
        connectionString: url.toString(),
        max: settings.pool_size,
        connectionTimeoutMillis: timeoutMs,
        query_timeout: timeoutMs,
        idleTimeoutMillis: 10_000,
        application_name: "breakglass",
      });
      p.on("error", (e) =>
        ctx.log("postgres target connection dropped", { target: ctx.targetName, db, error: e.message }),
      );
      p.on("connect", (client) => client.on("error", () => {}));
      dbPools.set(db, p);
    }
    return p;
  };
  /** Template databases as last read: connections to them are never kept idle. */
  let templates: ReadonlySet<string> = new Set(["template1"]);
  /**
   * Run `fn` on a connection to database `db` (the configured one: `main`, already checked out).
   * Connections to template databases are closed after use: an idle session in template1 (or
   * any database used as a template) makes everyone's `CREATE DATABASE` from it fail.
   */
  const onDb = async <T>(main: pg.ClientBase, db: string, fn: (c: pg.ClientBase) => Promise<T>): Promise<T> => {
    if (db === database) return fn(main);
    const c = await poolFor(db).connect();
    try {
      return await fn(c);
    } finally {
      c.release(templates.has(db));
    }
  };

  /** The cluster and every database that allows connections; databases that cannot be read are named. */
  const readSnapshot = async (c: pg.ClientBase): Promise<{ snapshot: CatalogSnapshot; unreadable: string[] }> => {
    const cluster = await readCluster(c);
    templates = new Set(Object.values(cluster.databases).flatMap((d) => (d.template ? [d.name] : [])));
    const databases: Record<string, DatabaseFacts> = {};
    const unreadable: string[] = [];
    await Promise.all(
      Object.entries(cluster.databases)
        .filter(([, d]) => d.allowConn)
        .map(async ([oid, d]) => {
          try {
            databases[oid] = await onDb(c, d.name, (dc) => readDatabase(dc, cluster.version));
          } catch (e) {
            unreadable.push(`${d.name}: ${(e as Error).message}`);
          }
        }),
    );
    return { snapshot: { cluster, databases }, unreadable };
  };

  /**
   * Catalog reads shared between callers. A caller names a moment (`after`, a {@link mark}) and
   * gets a read that *began after it*: the last completed read or the one in flight when either
   * began later, else the read queued behind the one in flight (started when that one ends). A
   * revocation's moment is when its holder's sessions were known gone (by `cutAccess` or by
   * itself): from then on the holder can change nothing, so any read begun later sees all it did —
   * exactly what a read of its own would. When many grants end together, one read of the cluster
   * and of each database then serves every revocation whose access was cut before it began,
   * instead of one read each. The read runs on the connection of the caller that queued it (that
   * caller waits for it, so the connection is idle): waiting callers may hold every pooled
   * connection, and a read needing another one would wait forever.
   */
  type Read = Awaited<ReturnType<typeof readSnapshot>> & { readonly began: number };
  let seq = 0;
  /** A point in this process's order of events: later marks are greater. */
  const mark = (): number => ++seq;
  let lastRead: Read | null = null;
  let inFlight: { began: number; promise: Promise<Read> } | null = null;
  let queued: Promise<Read> | null = null;
  const startRead = async (c: pg.ClientBase): Promise<Read> => {
    const began = mark();
    const read = { ...(await readSnapshot(c)), began };
    if (lastRead === null || lastRead.began < began) lastRead = read;
    return read;
  };
  const sharedRead = (c: pg.ClientBase, after: number): Promise<Read> => {
    if (lastRead !== null && lastRead.began > after) return Promise.resolve(lastRead);
    if (inFlight !== null && inFlight.began > after) return joined(inFlight.promise);
    if (queued) return joined(queued);
    if (!inFlight) {
      const began = seq + 1; // startRead marks it synchronously
      const promise: Promise<Read> = startRead(c).finally(() => {
        if (inFlight?.promise === promise) inFlight = null;
      });
      inFlight = { began, promise };
      return promise;
    }
    const before = inFlight.promise;
    const promise: Promise<Read> = before
      .then(
        () => {},
        () => {},
      )
      .then(() => {
        queued = null;
        const read = startRead(c);
        inFlight = { began: seq, promise };
        return read;
      })
      .finally(() => {
        if (inFlight?.promise === promise) inFlight = null;
      });
    queued = promise;
    return promise;
  };
  /** A joiner's copy of a shared read: its failure is not a failure of the joiner's own connection (which is not discarded). */
  const joined = (p: Promise<Read>): Promise<Read> =>
    p.catch((e: unknown) => fail("reading the catalogs (a read shared with other revocations)", e));

  /** Who receives what a window made and must keep: the configured owner, else the grant's first recovery role. */
  const ownerFor = (facts: ConnectorGrantFacts): string =>
    settings.reassign_owned_to ?? roleGrants(facts.role).roles[0] ?? adminUser;

  const snapshotOf = (handle: Readonly<Record<string, unknown>>): CatalogSnapshot | null => {
    const s = handle.containment as CatalogSnapshot | undefined;
    return s && typeof s === "object" && typeof s.cluster === "object" && typeof s.databases === "object" ? s : null;
  };

  const compareContext = (role: string, owner: string, adminOid: number): CompareContext => ({
    ownRole: role,
    rolePrefix: settings.role_prefix,
    owner,
    ignored,
    adminOid,
  });
  const adminOidOf = (cluster: ClusterFacts): number =>
    Number(Object.entries(cluster.roles).find(([, r]) => r.name === adminUser)?.[0] ?? -1);

  /** Databases where `role` still owns something or holds a privilege (pg_shdepend), for REASSIGN/DROP OWNED. */
  const dependentDatabases = async (c: pg.ClientBase, role: string): Promise<string[]> =>
    (
      await c.query<{ datname: string }>(
        `SELECT DISTINCT coalesce(d.datname, current_database()) AS datname FROM pg_shdepend s
           LEFT JOIN pg_database d ON d.oid = s.dbid
          WHERE s.refclassid = 'pg_authid'::regclass AND s.refobjid = (SELECT oid FROM pg_roles WHERE rolname = $1)`,
        [role],
      )
    ).rows.map((r) => r.datname);

  /** Give what `role` still owns to `owner` and drop the rest of it in every database, then the role. */
  const dropRole = async (c: pg.ClientBase, role: string, owner: string): Promise<void> => {
    // Most grant roles own nothing by now (containment gave it away): try the drop first.
    try {
      await c.query(`DROP ROLE ${ident(role)}`);
      return;
    } catch (e) {
      if ((e as { code?: string }).code !== "2BP01") throw e; // dependent_objects_still_exist
    }
    for (const db of await dependentDatabases(c, role)) {
      await onDb(c, db, (dc) =>
        dc.query(`REASSIGN OWNED BY ${ident(role)} TO ${ident(owner)}; DROP OWNED BY ${ident(role)}`),
      );
    }
    await c.query(`DROP ROLE ${ident(role)}`);
  };

  const terminate = async (c: pg.ClientBase, role: string, since: number | null): Promise<number[]> =>
    (
      await c.query<{ pid: number }>(
        // MATERIALIZED: the pid list is fixed before any backend is signalled (a plain WHERE
        // could evaluate pg_terminate_backend before the user filter and hit everyone).
        `WITH victims AS MATERIALIZED (SELECT pid FROM pg_stat_activity WHERE usename = $1 AND pid <> pg_backend_pid()
            AND ($2::float8 IS NULL OR backend_start >= to_timestamp($2::float8 / 1000)))
         SELECT pid FROM victims WHERE pg_terminate_backend(victims.pid)`,
        [role, since],
      )
    ).rows.map((r) => r.pid);

  /** Wait until the signalled backends are gone; a revocation does not go on (nor count) while one runs. */
  const awaitExit = async (c: pg.ClientBase, pids: readonly number[], role: string): Promise<void> => {
    for (let waited = 0; pids.length > 0; waited += 5) {
      const left = await c.query("SELECT 1 FROM pg_stat_activity WHERE pid = ANY($1::int[])", [pids]);
      if (left.rowCount === 0) return;
      if (waited >= TERMINATE_WAIT_MS) {
        throw new BreakglassError(
          "ERR_CONNECTOR_FAILED",
          `postgres target ${ctx.targetName}: ${left.rowCount} session(s) still running ${TERMINATE_WAIT_MS} ms after pg_terminate_backend`,
          { role },
        );
      }
      await new Promise((r) => setTimeout(r, 5));
    }
  };

  /** Roles `cutAccess` cut (when, and how many sessions it ended), until their revocation reports them. */
  const cutKilled = new Map<string, { at: number; mark: number; killed: number }>();

  /** Roles whose revocation in this process compared the cluster and found nothing to change: when (verify reuses it once). */
  const settledAt = new Map<string, number>();

  interface Prepared {
    readonly gid: string;
    readonly db: string;
    readonly owner: string;
    readonly prepared: Date;
  }
  /**
   * Prepared transactions at the end of `role`'s window: its own (`own`), and those prepared
   * during the window by another role the holder could act as (`inReach`: in the recovery roles'
   * reach at activation, or created since), except the broker's admin, ignored roles and grant roles.
   */
  const preparedOf = async (
    c: pg.ClientBase,
    role: string,
    snapshot: CatalogSnapshot | null,
    facts: ConnectorGrantFacts,
  ): Promise<{ own: Prepared[]; inReach: Prepared[] }> =>
    classifyPrepared(await readPrepared(c, [role], [snapshot]), role, snapshot, facts);
  /** Prepared transactions of `roles`, and all prepared since the earliest of the windows began. */
  const readPrepared = async (
    c: pg.ClientBase,
    roles: readonly string[],
    snapshots: readonly (CatalogSnapshot | null)[],
  ): Promise<Prepared[]> => {
    const since = Math.min(...snapshots.map((s) => s?.cluster.at ?? Number.POSITIVE_INFINITY));
    return (
      await c.query<Prepared>(
        `SELECT gid, database AS db, owner, prepared FROM pg_prepared_xacts
          WHERE owner = ANY($1) OR prepared >= to_timestamp($2::float8 / 1000) ORDER BY prepared`,
        [roles, Number.isFinite(since) ? since : null],
      )
    ).rows;
  };
  const classifyPrepared = (
    rows: readonly Prepared[],
    role: string,
    snapshot: CatalogSnapshot | null,
    facts: ConnectorGrantFacts,
  ): { own: Prepared[]; inReach: Prepared[] } => {
    const own = rows.filter((p) => p.owner === role);
    const since = snapshot?.cluster.at;
    const others = rows.filter((p) => p.owner !== role && since !== undefined && p.prepared.getTime() >= since);
    if (!snapshot || others.length === 0) return { own, inReach: [] };
    const known = new Set(Object.values(snapshot.cluster.roles).map((r) => r.name));
    const reach = new Set(assessReach(snapshot.cluster, roleGrants(facts.role).roles).reach);
    const inReach = others.filter(
      (p) =>
        !ignored.has(p.owner) &&
        !p.owner.startsWith(settings.role_prefix) &&
        (reach.has(p.owner) || !known.has(p.owner)),
    );
    return { own, inReach };
  };
  const preparedItem = (p: Prepared): Omit<SweepItem, "outcome" | "fix"> => ({
    id: `prepared_xact:${p.db}:${p.gid}`,
    kind: "prepared_transaction",
    description: `prepared transaction ${literal(p.gid)} of ${p.owner} in database ${p.db} (prepared ${p.prepared.toISOString()}) was left open`,
  });
  /**
   * Roll back these prepared transactions; `ROLLBACK PREPARED` must run in the
   * transaction's own database. One already finished (committed or rolled back by someone else
   * meanwhile: 42704) is not an error — what it wrote is then the incident's, like any row.
   */
  const rollbackPrepared = async (
    c: pg.ClientBase,
    prepared: readonly Prepared[],
  ): Promise<{ done: SweepItem[]; failures: string[] }> => {
    const done: SweepItem[] = [];
    const failures: string[] = [];
    for (const p of prepared) {
      const fix = `ROLLBACK PREPARED ${literal(p.gid)}`;
      try {
        await onDb(c, p.db, (dc) => dc.query(fix));
        done.push({ ...preparedItem(p), outcome: "reverted", fix });
      } catch (e) {
        if ((e as { code?: string }).code === "42704") continue;
        failures.push(`${preparedItem(p).description}: ${(e as Error).message}`);
      }
    }
    return { done, failures };
  };

  /** One finding's statements in one transaction; false (and rolled back) when they fail. */
  const tryRun = async (c: pg.ClientBase, sql: readonly string[]): Promise<string | null> => {
    if (sql.length === 0) return null;
    try {
      await c.query("BEGIN");
      for (const q of sql) await c.query(q);
      await c.query("COMMIT");
      return null;
    } catch (e) {
      await c.query("ROLLBACK").catch(() => {});
      return (e as Error).message;
    }
  };

  const fixText = (sql: readonly string[], fallback: string) =>
    sql.length === 0 ? fallback : sql.filter((q) => !q.startsWith("SET LOCAL ROLE")).join("; ");

  /**
   * Undo what the comparison found, in order (ADR 0009): roles contained first, then per
   * database hooks, owners, privileges, definitions, code, data; then databases; then created
   * roles dropped. Each item in its own transaction, so one failure does not hide the rest.
   */
  const applyFindings = async (
    c: pg.ClientBase,
    findings: readonly Finding[],
    owner: string,
  ): Promise<{ done: SweepItem[]; failures: string[]; killed: number[] }> => {
    const done: SweepItem[] = [];
    const failures: string[] = [];
    const killed: number[] = [];
    const record = (f: Finding, outcome: Outcome, fix: string) =>
      done.push({ id: f.id, kind: f.kind, outcome, description: f.description, fix });
    const runOne = async (dc: pg.ClientBase, f: Finding): Promise<void> => {
      const error = await tryRun(dc, f.sql);
      if (error === null) {
        if (!f.dropRole) record(f, f.outcome, fixText(f.sql, f.fix));
        return;
      }
      if (f.fallback) {
        const second = await tryRun(dc, f.fallback.sql);
        if (second === null) {
          record(f, f.fallback.outcome, `${f.fallback.fix} (${error})`);
          return;
        }
        failures.push(`${f.description}: ${error}; then ${second}`);
        return;
      }
      if (f.settled) {
        record(f, "contained", f.fix);
        return;
      }
      failures.push(`${f.description}: ${error}`);
    };
    const active = findings.filter((f) => f.outcome !== "reported");
    for (const f of active.filter((x) => x.outcome === "left")) record(f, "left", f.fix);
    const work = active.filter((f) => f.outcome !== "left");
    // 0: roles — contained at once, their sessions cut.
    for (const f of work.filter((x) => x.step === 0)) {
      await runOne(c, f);
      if (f.terminate) killed.push(...(await terminate(c, f.terminate.role, f.terminate.since)));
    }
    // 1–4: per database, all databases at once.
    const byDb = new Map<string, Finding[]>();
    for (const f of work.filter((x) => x.step >= 1 && x.step <= 4)) {
      const db = f.db ?? database;
      byDb.set(db, [...(byDb.get(db) ?? []), f]);
    }
    await Promise.all(
      [...byDb].map(async ([db, list]) => {
        try {
          await onDb(c, db, async (dc) => {
            for (const step of [1, 2]) for (const f of list.filter((x) => x.step === step)) await runOne(dc, f);
            // Code: drop in passes (a view on a view), then make inert what still cannot be dropped.
            let pending = list.filter((x) => x.step === 3);
            for (let pass = 0; pass < DROP_PASSES && pending.length > 0; pass++) {
              const next: Finding[] = [];
              for (const f of pending) {
                if ((await tryRun(dc, f.sql)) === null) record(f, f.outcome, fixText(f.sql, f.fix));
                else next.push(f);
              }
              if (next.length === pending.length) break;
              pending = next;
            }
            for (const f of pending) {
              const error = await tryRun(dc, f.fallback?.sql ?? []);
              if (error === null && f.fallback) record(f, f.fallback.outcome, f.fallback.fix);
              else if (error === null && f.settled) record(f, "contained", f.fix);
              else
                failures.push(
                  `${f.description}: cannot be dropped${error === null ? "" : ` nor made inert: ${error}`}`,
                );
            }
            for (const f of list.filter((x) => x.step === 4)) await runOne(dc, f);
          });
        } catch (e) {
          failures.push(`database ${db}: ${(e as Error).message}`);
        }
      }),
    );
    // 5: databases; 6: roles created in the window, dropped now that their objects are handled.
    for (const f of work.filter((x) => x.step === 5)) await runOne(c, f);
    for (const f of work.filter((x) => x.dropRole !== undefined)) {
      try {
        await dropRole(c, f.dropRole as string, owner);
        record(f, "reverted", `contained at once (${f.fix.split(";")[0]}), then dropped`);
      } catch (e) {
        record(
          f,
          "contained",
          `no login, no password, no memberships, sessions ended; not dropped: ${(e as Error).message}`,
        );
      }
    }
    return { done, failures, killed };
  };

  /** Refuse recovery roles whose reach makes containment impossible, unless the target accepts them with a reason. */
  const checkReach = (cluster: ClusterFacts, roles: readonly string[]): Record<string, string> => {
    const accepted: Record<string, string> = {};
    for (const role of roles) {
      const { impossible } = assessReach(cluster, [role]);
      if (impossible.length === 0) continue;
      const reason = settings.containment.accept[role];
      if (reason === undefined) {
        throw new BreakglassError(
          "ERR_CONNECTOR_FAILED",
          `postgres target ${ctx.targetName}: recovery role ${role} cannot be contained: ${impossible.join("; ")}. Remove that power from it, or accept it with a reason under targets.${ctx.targetName}.settings.containment.accept.${role} (see docs/connectors/postgres.md)`,
          { role, impossible },
        );
      }
      accepted[role] = reason;
    }
    return accepted;
  };

  const connectionString = (role: string, password: string): string => {
    const host = settings.connect_host ?? parsedAdmin.hostname;
    const port = settings.connect_port ?? (parsedAdmin.port || "5432");
    const hostPart = host.includes(":") ? `[${host}]` : host;
    const query = settings.connect_options ? `?${settings.connect_options.replace(/^\?/, "")}` : "";
    return `postgresql://${encodeURIComponent(role)}:${encodeURIComponent(password)}@${hostPart}:${port}/${encodeURIComponent(database)}${query}`;
  };

  /**
   * A revocation after its cut (revoke's steps 2b–4): prepared transactions, the comparison with
   * the window's snapshot and what it finds, then the grant role dropped.
   */
  const finishRevoke = async (
    c: pg.ClientBase,
    facts: ConnectorGrantFacts,
    handle: Readonly<Record<string, unknown>>,
    cut: { role: string; started: number; exists: boolean; terminated: number; goneAt: number },
  ): Promise<ConnectorResult> => {
    const { role, started, exists, terminated, goneAt } = cut;
    const swept: SweepItem[] = [];
    const reported: string[] = [];
    const failures: string[] = [];
    // 2b. Prepared transactions the role left (`PREPARE TRANSACTION`) outlive its sessions: they
    //     hold their locks and can be committed later by anyone allowed to. Rolled back, each in
    //     its own database, before the comparison (their changes are not visible to it anyway).
    //     Those prepared in the window as another role in reach (after `SET ROLE`) are left and
    //     page: they may be the application's own two-phase commits.
    const snapshot = snapshotOf(handle);
    const pending = await preparedOf(c, role, snapshot, facts);
    if (settings.sweep === "revoke") {
      const rolledBack = await rollbackPrepared(c, pending.own);
      swept.push(...rolledBack.done);
      failures.push(...rolledBack.failures);
    } else {
      for (const p of pending.own) swept.push({ ...preparedItem(p), outcome: "left", fix: null });
    }
    for (const p of pending.inReach) {
      swept.push({
        ...preparedItem(p),
        outcome: "left",
        fix: `not rolled back (it may be another session's two-phase commit): check it, then COMMIT PREPARED or ROLLBACK PREPARED ${literal(p.gid)} in database ${p.db}`,
      });
    }
    // 3. Containment (ADR 0009): every difference from the window's snapshot, in every database.
    const owner = ownerFor(facts);
    /** Something was changed at the target: verify must compare again, not trust the comparison above. */
    let changed = false;
    if (snapshot) {
      // A read begun after the holder's sessions were gone (see sharedRead); when it shows
      // anything, a read begun after this revocation started is what is acted on.
      let read = await sharedRead(c, goneAt);
      let findings = compareCatalogs(
        snapshot,
        read.snapshot,
        compareContext(role, owner, adminOidOf(read.snapshot.cluster)),
      );
      if ((findings.length > 0 || read.unreadable.length > 0) && read.began < started) {
        read = await sharedRead(c, started);
        findings = compareCatalogs(
          snapshot,
          read.snapshot,
          compareContext(role, owner, adminOidOf(read.snapshot.cluster)),
        );
      }
      const { unreadable } = read;
      failures.push(...unreadable.map((u) => `database ${u} (cannot be compared)`));
      reported.push(...findings.filter((f) => f.outcome === "reported").map((f) => f.description));
      if (settings.sweep === "report") {
        // Nothing is changed: whatever would have been undone is left, and pages.
        for (const f of findings) {
          if (f.outcome !== "reported" && (f.sql.length > 0 || f.outcome === "left")) {
            swept.push({ id: f.id, kind: f.kind, outcome: "left", description: f.description, fix: null });
          }
        }
      } else {
        changed = findings.some((f) => f.sql.length > 0 || f.dropRole !== undefined);
        const applied = await applyFindings(c, findings, owner);
        swept.push(...applied.done);
        failures.push(...applied.failures);
        await awaitExit(c, applied.killed, role);
      }
    }
    // 4. The grant role itself: what it still owns goes to the owner (data is never dropped), then it goes.
    let reassignedTo: string | null = null;
    if (exists) {
      await dropRole(c, role, owner);
      reassignedTo = owner;
    }
    if (failures.length > 0) {
      throw new BreakglassError(
        "ERR_CONNECTOR_FAILED",
        `postgres target ${ctx.targetName}: role ${role} is gone, but ${failures.length} change(s) of the window could not be compared or undone: ${failures.join("; ")}`,
        { role, swept, reported, failures },
      );
    }
    // The comparison found nothing to do, read after the holder's sessions were gone: it is
    // the verification too (see verify). After changes, verify reads again.
    if (snapshot && settings.sweep === "revoke" && !changed) settledAt.set(role, Date.now());
    return { credential: null, detail: { role, existed: exists, terminated, reassignedTo, swept, reported } };
  };

  interface RoleState {
    readonly exists: boolean;
    readonly open: number;
    readonly prepared: number;
  }
  /** Does each role still exist, with how many backends and prepared transactions (one statement for all; literals, so it can follow another in one round trip). */
  const statesSql = (roles: readonly string[]): string =>
    `SELECT r AS role, EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) AS exists,
            (SELECT count(*)::int FROM pg_stat_activity WHERE usename = r) AS open,
            (SELECT count(*)::int FROM pg_prepared_xacts WHERE owner = r) AS prepared
       FROM unnest(ARRAY[${roles.map(literal).join(", ")}]::text[]) AS r`;
  const roleStates = async (c: pg.ClientBase, roles: readonly string[]): Promise<Map<string, RoleState>> => {
    const { rows } = await c.query<{ role: string } & RoleState>(statesSql(roles));
    return new Map(rows.map((r) => [r.role, { exists: r.exists, open: r.open, prepared: r.prepared }]));
  };

  /** Verify one grant; `known` is its role's state when already read (a batch reads all at once). */
  const verifyOn = async (
    c: pg.ClientBase,
    facts: ConnectorGrantFacts,
    handle: Readonly<Record<string, unknown>>,
    known: RoleState | null,
  ): Promise<VerifyResult> => {
    const role = principalOf(handle);
    const state = known ?? (await roleStates(c, [role])).get(role);
    const exists = state?.exists ?? false;
    const open = state?.open ?? 0;
    const prepared = state?.prepared ?? 0;
    const snapshot = snapshotOf(handle);
    const left: string[] = [];
    // This process's revocation of the role just compared the cluster, after its sessions
    // had ended, and found nothing to change: reading it again would find the same.
    const settled = settledAt.get(role);
    settledAt.delete(role);
    const reused = snapshot !== null && settled !== undefined && Date.now() - settled < timeoutMs;
    if (snapshot && settings.sweep === "revoke" && !reused) {
      const { snapshot: now, unreadable } = await sharedRead(c, mark());
      const owner = ownerFor(facts);
      left.push(...unreadable.map((u) => `database ${u} (cannot be compared)`));
      for (const f of compareCatalogs(snapshot, now, compareContext(role, owner, adminOidOf(now.cluster)))) {
        if (
          f.sql.length > 0 &&
          f.settled === undefined &&
          f.outcome !== "left" &&
          f.outcome !== "reported" &&
          !f.dropRole
        ) {
          left.push(f.description);
        }
      }
    }
    return {
      revoked: !exists && open === 0 && prepared === 0 && left.length === 0,
      detail: {
        role,
        roleExists: exists,
        backends: open,
        preparedTransactions: prepared,
        sweepLeft: left,
        ...(snapshot && settings.sweep === "revoke" ? { compared: reused ? "at revocation" : "again" } : {}),
      },
    };
  };

  type BatchItem = { readonly facts: ConnectorGrantFacts; readonly handle: Readonly<Record<string, unknown>> };
  type BatchOutcome = { readonly revoke: ConnectorResult; readonly verify: VerifyResult } | { readonly error: unknown };

  /**
   * Revoke and verify many grants together, with the round trips of one (revokeMany): the cut
   * (`NOLOGIN` for roles not cut just before, sessions terminated and awaited), the prepared
   * transactions, the catalog read and the verification are one statement for all roles; every
   * role whose comparison finds nothing to do is dropped in one `DROP ROLE a, b, …`. A role with
   * anything to do (a finding, a prepared transaction, a database not read, a legacy handle)
   * takes the single revocation's path, one after another; a failed batched drop is retried
   * role by role. Each grant gets the same result and items as from `revoke` and `verify`.
   */
  const revokeBatch = (items: readonly BatchItem[]): Promise<BatchOutcome[]> =>
    withClient("revoke", async (c): Promise<BatchOutcome[]> => {
      const started = mark();
      const out: (BatchOutcome | undefined)[] = items.map(() => undefined);
      const roleOf: (string | null)[] = items.map((it, i) => {
        try {
          return principalOf(it.handle);
        } catch (e) {
          out[i] = { error: e };
          return null;
        }
      });
      const roles = [...new Set(roleOf.filter((r): r is string => r !== null))];
      for (const r of roles) settledAt.delete(r);
      // 1. No new sessions: NOLOGIN for roles `cutAccess` did not cut moments ago.
      const cuts = new Map<string, { mark: number; killed: number } | undefined>();
      for (const r of roles) {
        const entry = cutKilled.get(r);
        cutKilled.delete(r);
        cuts.set(r, entry && Date.now() - entry.at < timeoutMs * 4 ? entry : undefined);
      }
      // Roles not cut just before: NOLOGIN first (the existence check is then read again below).
      if (roles.some((r) => cuts.get(r) === undefined)) {
        const present = new Set(
          (
            await c.query<{ rolname: string }>("SELECT rolname FROM pg_roles WHERE rolname = ANY($1)", [roles])
          ).rows.map((r) => r.rolname),
        );
        const toCut = roles.filter((r) => present.has(r) && cuts.get(r) === undefined);
        if (toCut.length > 0) {
          await c.query(toCut.map((r) => `ALTER ROLE ${ident(r)} NOLOGIN VALID UNTIL '-infinity';`).join("\n"));
        }
      }
      // 2. The open sessions ended (and awaited); in the same round trip, which roles exist and the
      //    prepared transactions (2b). When no session was left to end, none of these roles has a
      //    backend, so none can prepare anything later: the read is final. Otherwise it is read
      //    again once the ended sessions are gone.
      const snapshots = items.map((it) => snapshotOf(it.handle));
      const since = Math.min(...snapshots.map((sn) => sn?.cluster.at ?? Number.POSITIVE_INFINITY));
      const [state] = (
        await c.query<{
          existing: string[];
          killed: { pid: number; role: string }[];
          prepared: (Omit<Prepared, "prepared"> & { prepared: string })[];
        }>(
          `WITH victims AS MATERIALIZED (SELECT pid, usename FROM pg_stat_activity
              WHERE usename = ANY($1) AND pid <> pg_backend_pid()),
                killed AS MATERIALIZED (SELECT pid, usename AS role FROM victims WHERE pg_terminate_backend(victims.pid))
           SELECT (SELECT coalesce(json_agg(rolname), '[]') FROM pg_roles WHERE rolname = ANY($1)) AS existing,
                  (SELECT coalesce(json_agg(json_build_object('pid', pid, 'role', role)), '[]') FROM killed) AS killed,
                  (SELECT coalesce(json_agg(json_build_object('gid', gid, 'db', database, 'owner', owner, 'prepared', prepared)
                            ORDER BY prepared), '[]')
                     FROM pg_prepared_xacts WHERE owner = ANY($1) OR prepared >= to_timestamp($2::float8 / 1000)) AS prepared`,
          [roles, Number.isFinite(since) ? since : null],
        )
      ).rows;
      const existing = new Set(state?.existing ?? []);
      const killed = state?.killed ?? [];
      let prepared: Prepared[] = (state?.prepared ?? []).map((p) => ({ ...p, prepared: new Date(p.prepared) }));
      if (killed.length > 0) {
        await awaitExit(
          c,
          killed.map((k) => k.pid),
          roles.join(", "),
        );
        prepared = await readPrepared(c, roles, snapshots);
      }
      const afterKill = mark();
      // 3. Each role compared with its window's snapshot, against a read shared by all.
      const quick: { i: number; role: string; result: ConnectorResult }[] = [];
      const slow: { i: number; role: string; cut: Parameters<typeof finishRevoke>[3] }[] = [];
      for (const [i, it] of items.entries()) {
        const role = roleOf[i];
        if (role === null || role === undefined) continue;
        const cutEntry = cuts.get(role);
        const ownKilled = killed.filter((k) => k.role === role).length;
        const exists = existing.has(role);
        const terminated = ownKilled + (cutEntry?.killed ?? 0);
        const goneAt = cutEntry !== undefined && ownKilled === 0 ? cutEntry.mark : afterKill;
        const cut = { role, started, exists, terminated, goneAt };
        const snapshot = snapshotOf(it.handle);
        const pending = prepared.length > 0 ? classifyPrepared(prepared, role, snapshot, it.facts) : null;
        if (
          !snapshot ||
          settings.sweep !== "revoke" ||
          (pending !== null && pending.own.length + pending.inReach.length > 0)
        ) {
          slow.push({ i, role, cut });
          continue;
        }
        try {
          const read = await sharedRead(c, goneAt);
          const owner = ownerFor(it.facts);
          const findings = compareCatalogs(
            snapshot,
            read.snapshot,
            compareContext(role, owner, adminOidOf(read.snapshot.cluster)),
          );
          if (findings.length > 0 || read.unreadable.length > 0) {
            slow.push({ i, role, cut });
            continue;
          }
          quick.push({
            i,
            role,
            result: {
              credential: null,
              detail: {
                role,
                existed: exists,
                terminated,
                reassignedTo: exists ? owner : null,
                swept: [],
                reported: [],
              },
            },
          });
        } catch (e) {
          out[i] = { error: e };
        }
      }
      // 4. Roles with nothing left to do, dropped together and their state read for verification
      //    in the same round trip; one by one (and read again) if the drop fails.
      const drop = quick.filter((q) => existing.has(q.role));
      const states = new Map<string, RoleState>();
      if (quick.length > 0) {
        const quickRoles = quick.map((q) => q.role);
        try {
          const results = (await c.query(
            `${drop.length > 0 ? `DROP ROLE ${drop.map((q) => ident(q.role)).join(", ")}; ` : ""}${statesSql(quickRoles)}`,
          )) as unknown as
            | pg.QueryResult<{ role: string } & RoleState>
            | pg.QueryResult<{ role: string } & RoleState>[];
          const rows = Array.isArray(results) ? (results.at(-1)?.rows ?? []) : results.rows;
          for (const r of rows) states.set(r.role, { exists: r.exists, open: r.open, prepared: r.prepared });
        } catch {
          for (const q of drop) {
            try {
              await dropRole(c, q.role, ownerFor((items[q.i] as BatchItem).facts));
            } catch (e) {
              out[q.i] = { error: e };
            }
          }
          for (const [r, st] of await roleStates(c, quickRoles)) states.set(r, st);
        }
      }
      for (const q of quick) if (out[q.i] === undefined) settledAt.set(q.role, Date.now());
      const revoked = new Map<number, ConnectorResult>(
        quick.filter((q) => out[q.i] === undefined).map((q) => [q.i, q.result]),
      );
      // The others: the single revocation's path, one after another, then one read of their state.
      for (const s of slow) {
        try {
          const it = items[s.i] as BatchItem;
          revoked.set(s.i, await finishRevoke(c, it.facts, it.handle, s.cut));
        } catch (e) {
          out[s.i] = { error: e };
        }
      }
      const slowRoles = slow.filter((s) => revoked.has(s.i)).map((s) => s.role);
      if (slowRoles.length > 0) for (const [r, st] of await roleStates(c, slowRoles)) states.set(r, st);
      // 5. Verified from those reads.
      for (const [i, result] of revoked) {
        const it = items[i] as BatchItem;
        try {
          out[i] = {
            revoke: result,
            verify: await verifyOn(c, it.facts, it.handle, states.get(roleOf[i] as string) ?? null),
          };
        } catch (e) {
          out[i] = { error: e };
        }
      }
      return out.map((o) => o ?? { error: new Error("not revoked") });
    });

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
        // The baseline of the window (ADR 0009), before the role exists; an extension keeps the first.
        const taken = snapshotOf(handle) ? null : await sharedRead(c, mark());
        const accepted = checkReach(taken?.snapshot.cluster ?? (await readCluster(c)), g.roles);
        if (taken && taken.unreadable.length > 0) {
          ctx.log("postgres target: databases not readable at activation are not compared at the end", {
            target: ctx.targetName,
            grantId: facts.grantId,
            unreadable: taken.unreadable,
          });
        }
        await c.query("BEGIN");
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
            ...(Object.keys(accepted).length > 0 ? { containmentAccepted: accepted } : {}),
            ...(taken && taken.unreadable.length > 0 ? { notCompared: taken.unreadable } : {}),
          },
          ...(taken ? { handle: { containment: taken.snapshot } } : {}),
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
        const started = mark();
        const role = principalOf(handle);
        settledAt.delete(role);
        // 1. No new sessions (first, so nobody slips in), 2. end the open ones and wait until
        //    they are gone — access is cut here, and the comparison below sees everything they
        //    did (a transaction still committing is either in or aborted). A role that is
        //    already gone is not an error.
        let exists = true;
        const cutEntry = cutKilled.get(role);
        cutKilled.delete(role);
        // A cut older than one revocation's lease is not trusted: someone may have changed the role since.
        const cut = cutEntry && Date.now() - cutEntry.at < timeoutMs * 4 ? cutEntry.killed : undefined;
        if (cut === undefined) {
          try {
            await c.query(`ALTER ROLE ${ident(role)} NOLOGIN VALID UNTIL '-infinity'`);
          } catch (e) {
            if ((e as { code?: string }).code !== "42704") throw e; // undefined_object
            exists = false;
          }
        } // else `cutAccess` set NOLOGIN moments ago (and nothing can log in as the role to undo it)
        const killed = await terminate(c, role, null);
        const terminated = killed.length + (cut ?? 0);
        await awaitExit(c, killed, role);
        // When the holder could no longer change anything: the cut, unless sessions were still ended here.
        const goneAt = cutEntry !== undefined && cut !== undefined && killed.length === 0 ? cutEntry.mark : mark();
        return finishRevoke(c, facts, handle, { role, started, exists, terminated, goneAt });
      }),

    async cutAccess(grants) {
      // A handle without a grant role is its revocation's to report; the others are cut.
      const roles = [
        ...new Set(
          grants.flatMap((g) => {
            try {
              return [principalOf(g.handle)];
            } catch {
              return [];
            }
          }),
        ),
      ];
      if (roles.length === 0) return;
      let c: pg.PoolClient;
      try {
        c = await cutter().connect();
      } catch (e) {
        return fail("cut access", e);
      }
      try {
        // The same first two steps as revoke, for every role in three round trips.
        const existing = (
          await c.query<{ rolname: string }>("SELECT rolname FROM pg_roles WHERE rolname = ANY($1)", [roles])
        ).rows.map((r) => r.rolname);
        if (existing.length > 0) {
          await c.query(existing.map((r) => `ALTER ROLE ${ident(r)} NOLOGIN VALID UNTIL '-infinity';`).join("\n"));
        }
        const killed = (
          await c.query<{ pid: number; role: string }>(
            `WITH victims AS MATERIALIZED (SELECT pid, usename FROM pg_stat_activity
                WHERE usename = ANY($1) AND pid <> pg_backend_pid())
             SELECT pid, usename AS role FROM victims WHERE pg_terminate_backend(victims.pid)`,
            [roles],
          )
        ).rows;

        await awaitExit(
          c,
          killed.map((k) => k.pid),
          roles.join(", "),
        );
        // From here none of these holders can change anything: a catalog read begun later serves their revocations.
        const at = Date.now();
        const gone = mark();
        for (const r of existing)
          cutKilled.set(r, { at, mark: gone, killed: killed.filter((k) => k.role === r).length });
        c.release();
      } catch (e) {
        c.release(e as Error);
        fail("cut access", e, { roles });
      }
    },

    verify: (facts, handle) => withClient("verify", async (c) => verifyOn(c, facts, handle, null)),

    async revokeMany(items) {
      return revokeBatch(items);
    },

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
      const others = [...dbPools.values(), ...(cutPool ? [cutPool] : [])];
      dbPools.clear();
      cutPool = null;
      await Promise.all([p?.end(), ...others.map((o) => o.end())]);
    },

    assess: () =>
      withClient("assess", async (c) => {
        const cluster = await readCluster(c);
        return (ctx.roles ?? []).flatMap((r) =>
          (postgresRoleGrantsSchema.safeParse(r.grants).data?.roles ?? []).map((principal) => {
            const a = assessReach(cluster, [principal]);
            return {
              roleId: r.id,
              principal,
              limits: a.limits,
              impossible: a.impossible,
              acceptedBecause: settings.containment.accept[principal] ?? null,
              missing: a.missing.length > 0,
            };
          }),
        );
      }),

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
