/**
 * A real PostgreSQL server as a break-glass *target* (not the broker's store): database `app`
 * with a table owned by `app_owner`, a NOLOGIN recovery role `recovery_rw` that may read and
 * write it (with grant option, so a holder can try to hand privileges on), and a bystander role
 * `reporting` that must never end up with more than it had.
 */

import pg from "pg";
import { systemClock } from "../../src/adapters/system-clock.js";
import { createPostgresConnector, postgresSettingsSchema } from "../../src/connectors/postgres-connector.js";
import type { RoleDef } from "../../src/core/model.js";
import type { Connector } from "../../src/core/ports/connector.js";
import { createSecretResolver } from "../../src/secrets/secret-ref.js";
import { type PostgresCluster, type StartPostgresOptions, startPostgres } from "./postgres-cluster.js";

export interface PostgresTarget {
  readonly cluster: PostgresCluster;
  /** Superuser on database `app`. */
  readonly adminUrl: string;
  /** Run SQL as the superuser on `app`. */
  sql<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string, values?: unknown[]): Promise<R[]>;
  /** A connector against this target; extra settings override the defaults. */
  connector(extra?: Record<string, unknown>, roles?: readonly RoleDef[]): Connector;
  /** Drop every role and object a test made, back to the initial state. */
  reset(): Promise<void>;
  stop(): Promise<void>;
}

export const TARGET_ENV = "BG_TEST_TARGET_ADMIN_URL";

export async function startPostgresTarget(opts: StartPostgresOptions = {}): Promise<PostgresTarget> {
  const cluster = await startPostgres(opts);
  const root = new pg.Client({ connectionString: cluster.adminUrl });
  await root.connect();
  try {
    await root.query("CREATE ROLE app_owner NOLOGIN");
    await root.query("CREATE DATABASE app OWNER app_owner");
  } finally {
    await root.end();
  }
  const adminUrl = cluster.adminUrl.replace(/\/postgres$/, "/app");
  const sql = async <R extends pg.QueryResultRow>(text: string, values?: unknown[]): Promise<R[]> => {
    const c = new pg.Client({ connectionString: adminUrl });
    await c.connect();
    try {
      return (await c.query<R>(text, values)).rows;
    } finally {
      await c.end();
    }
  };
  const setUp = async () => {
    await sql(`
      CREATE ROLE recovery_rw NOLOGIN;
      CREATE ROLE reporting NOLOGIN;
      CREATE TABLE public.accounts (id int PRIMARY KEY, owner text NOT NULL, balance int NOT NULL);
      ALTER TABLE public.accounts OWNER TO app_owner;
      INSERT INTO public.accounts VALUES (1, 'acme', 100), (2, 'globex', 250);
      GRANT USAGE, CREATE ON SCHEMA public TO recovery_rw;
      GRANT SELECT, INSERT, UPDATE, DELETE ON public.accounts TO recovery_rw WITH GRANT OPTION;`);
  };
  await setUp();
  const open = new Set<Connector>();
  return {
    cluster,
    adminUrl,
    sql,
    connector(extra = {}, roles = []) {
      const c = createPostgresConnector(
        postgresSettingsSchema.parse({ admin_url: { env: TARGET_ENV }, timeout: "10s", ...extra }),
        {
          baseDir: "/",
          clock: systemClock,
          resolveSecret: createSecretResolver({ baseDir: "/", env: { [TARGET_ENV]: adminUrl }, box: null }),
          log: () => {},
          targetName: "pg-app",
          roles,
        },
      );
      open.add(c);
      return c;
    },
    async reset() {
      for (const c of open) await c.close?.();
      open.clear();
      const roles = await sql<{ rolname: string }>(
        "SELECT rolname FROM pg_roles WHERE rolname NOT LIKE 'pg\\_%' AND rolname NOT IN ('postgres', 'breakglass', 'app_owner')",
      );
      await sql(
        `SELECT pg_terminate_backend(pid, 2000) FROM pg_stat_activity WHERE usename <> ALL($1) AND pid <> pg_backend_pid()`,
        [["postgres", "breakglass", "app_owner"]],
      );
      await sql(
        "DROP SCHEMA public CASCADE; CREATE SCHEMA public AUTHORIZATION app_owner; GRANT USAGE ON SCHEMA public TO PUBLIC",
      );
      for (const { rolname } of roles) {
        await sql(`REASSIGN OWNED BY "${rolname}" TO app_owner; DROP OWNED BY "${rolname}"; DROP ROLE "${rolname}"`);
      }
      await setUp();
    },
    async stop() {
      for (const c of open) await c.close?.();
      await cluster.stop();
    },
  };
}

/** Try a login with a connection string; resolves to the error message, or null when it worked. */
export async function tryLogin(
  url: string,
  query = "SELECT count(*)::int AS n FROM public.accounts",
): Promise<string | null> {
  const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000 });
  try {
    await c.connect();
    await c.query(query);
    return null;
  } catch (e) {
    return (e as Error).message;
  } finally {
    await c.end().catch(() => {});
  }
}
