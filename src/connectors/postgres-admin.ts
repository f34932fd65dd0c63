/**
 * The postgres connector's admin connections to its target, and carrying on after the admin
 * password is rotated (by `breakglass rotation`, the rotation worker, another replica, or by hand).
 *
 * - One pool for the configured database, one per other database the containment comparison
 *   reads and fixes (made when first needed), and one connection only for cutting access, so a
 *   cut never waits behind revocations' slower work.
 * - A login refused for its password (28P01) reads the admin URL's reference again; when it
 *   changed, every pool is replaced and the call connects with the new one — no restart.
 * - A call whose pooled connection the server ended while it sat idle is made again on another
 *   connection (connector calls are idempotent), up to once per pooled connection.
 * - Connections to template databases are never kept idle: an idle session in template1 makes
 *   everyone's `CREATE DATABASE` from it fail.
 */
import pg from "pg";
import { BreakglassError } from "../core/errors.js";
import type { ConnectorContext } from "./connector-context.js";
import type { PostgresSettings } from "./postgres-settings.js";

/**
 * Did the statement fail because the connection is gone rather than because of the statement?
 * The server ended the session (57P01 admin shutdown, 57P02 crash, 57P03 starting up; class 08),
 * or the socket closed under the driver.
 * @see https://www.postgresql.org/docs/current/errcodes-appendix.html
 */
export function connectionLost(e: unknown): boolean {
  const { code, message } = e as { code?: unknown; message?: unknown };
  if (typeof code === "string") {
    return code.startsWith("08") || ["57P01", "57P02", "57P03", "ECONNRESET", "EPIPE"].includes(code);
  }
  return typeof message === "string" && /^Connection terminated|not queryable/.test(message);
}

export interface PostgresAdmin {
  /** The admin URL's database: the one the grant roles' connection strings name. */
  readonly database: string;
  readonly adminUser: string;
  /** The admin URL's host and port (the holder's connection string defaults to them). */
  readonly host: string;
  readonly port: string;
  /**
   * A connector failure of `step`, with the SQLSTATE when there is one; a BreakglassError as it is.
   * @throws always: ERR_CONNECTOR_FAILED
   */
  fail(step: string, e: unknown, detail?: Record<string, unknown>): never;
  /**
   * Run `fn` on a pooled admin connection to the configured database (rolled back and released
   * when it throws; made again on another connection when the connection was lost).
   * @throws ERR_CONNECTOR_FAILED naming `step`
   */
  withClient<T>(step: string, fn: (c: pg.PoolClient) => Promise<T>): Promise<T>;
  /** The connection reserved for cutting access. @throws ERR_CONNECTOR_FAILED ("cut access") */
  cutClient(): Promise<pg.PoolClient>;
  /** Run `fn` on a connection to database `db` (the configured one: `main`, already checked out). */
  onDb<T>(main: pg.ClientBase, db: string, fn: (c: pg.ClientBase) => Promise<T>): Promise<T>;
  /** The template databases as last read (their connections are closed after use). */
  setTemplates(names: ReadonlySet<string>): void;
  close(): Promise<void>;
}

export function createPostgresAdmin(
  settings: Pick<PostgresSettings, "admin_url" | "pool_size">,
  ctx: Pick<ConnectorContext, "resolveSecret" | "log"> & { readonly targetName: string },
  timeoutMs: number,
): PostgresAdmin {
  const resolveAdminUrl = () => ctx.resolveSecret(settings.admin_url, `targets.${ctx.targetName}.settings.admin_url`);
  let adminUrl = resolveAdminUrl();
  const parsedAdmin = new URL(adminUrl.reveal());
  const database = decodeURIComponent(parsedAdmin.pathname.replace(/^\//, "")) || "postgres";
  const adminUser = decodeURIComponent(parsedAdmin.username);

  const newPool = (connectionString: string, max: number, db?: string): pg.Pool => {
    const p = new pg.Pool({
      connectionString,
      max,
      connectionTimeoutMillis: timeoutMs,
      query_timeout: timeoutMs,
      idleTimeoutMillis: 10_000,
      application_name: "breakglass",
    });
    // An idle client's error (server restart) must not crash the broker.
    p.on("error", (e) =>
      ctx.log("postgres target connection dropped", {
        target: ctx.targetName,
        ...(db === undefined ? {} : { db }),
        error: e.message,
      }),
    );
    // Nor a checked-out one's (the pool listens only to idle clients): the call in flight fails
    // with the error, and the pool discards the client when it is released.
    p.on("connect", (client) => client.on("error", () => {}));
    return p;
  };

  let pool: pg.Pool | null = null;
  const admin = (): pg.Pool => {
    pool ??= newPool(adminUrl.reveal(), settings.pool_size);
    return pool;
  };
  let cutPool: pg.Pool | null = null;
  const cutter = (): pg.Pool => {
    cutPool ??= newPool(adminUrl.reveal(), 1);
    return cutPool;
  };
  const dbPools = new Map<string, pg.Pool>();
  const poolFor = (db: string): pg.Pool => {
    if (db === database) return admin();
    let p = dbPools.get(db);
    if (!p) {
      const url = new URL(adminUrl.reveal());
      url.pathname = `/${encodeURIComponent(db)}`;
      p = newPool(url.toString(), settings.pool_size, db);
      dbPools.set(db, p);
    }
    return p;
  };
  let templates: ReadonlySet<string> = new Set(["template1"]);

  /** Read the admin URL again; true (and new pools) when it changed. */
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

  /** A pooled admin connection; a rotated admin password is picked up here. */
  const connectAdmin = async (step: string): Promise<pg.PoolClient> => {
    try {
      return await admin().connect();
    } catch (e) {
      // The admin password was rotated: read the reference again and, if it changed, connect
      // with the new one.
      const fresh = (e as { code?: string }).code === "28P01" ? reResolveAdmin() : false;
      if (!fresh) return fail(`${step} (connecting as ${adminUser})`, e);
      try {
        return await admin().connect();
      } catch (e2) {
        return fail(`${step} (connecting as ${adminUser} with the admin URL read again)`, e2);
      }
    }
  };

  return {
    database,
    adminUser,
    host: parsedAdmin.hostname,
    port: parsedAdmin.port || "5432",
    fail,

    async withClient(step, fn) {
      // A pooled connection the server ended while it sat idle (a restart, a pooler, an idle
      // timeout) fails the call's first statement if this process has not read the goodbye yet —
      // likely on a busy machine. The call is made again on another connection, up to once per
      // pooled connection: the server may have ended all of them.
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
    },

    async cutClient() {
      try {
        return await cutter().connect();
      } catch (e) {
        return fail("cut access", e);
      }
    },

    async onDb(main, db, fn) {
      if (db === database) return fn(main);
      const c = await poolFor(db).connect();
      try {
        return await fn(c);
      } finally {
        c.release(templates.has(db));
      }
    },

    setTemplates(names) {
      templates = names;
    },

    async close() {
      const p = pool;
      pool = null;
      const others = [...dbPools.values(), ...(cutPool ? [cutPool] : [])];
      dbPools.clear();
      cutPool = null;
      await Promise.all([p?.end(), ...others.map((o) => o.end())]);
    },
  };
}
