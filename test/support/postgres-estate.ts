/**
 * A realistic PostgreSQL estate for the containment suite (ADR 0009): two databases owned by
 * the application's owner role, and recovery roles set up the way DBAs set them up.
 *
 * - `app_owner` LOGIN (migrations log in with it) owns everything in `app` and `billing`.
 * - `recovery_dba` — the DBA recovery role: a member of `app_owner` WITH ADMIN OPTION and of
 *   `reporting`, with CREATEDB. The holder of a grant of it can do anything the owner can.
 * - `recovery_admin` — CREATEROLE (which PostgreSQL 15 cannot contain: accepted in the
 *   connector's settings with a reason), a member of `app_owner` WITH ADMIN OPTION.
 * - `recovery_rw` — another recovery role with table privileges granted by the owner; whatever
 *   the holder does, they must survive the end of the window.
 * - `reporting` and `app_user` — everyday logins with passwords (the "other role" the tests try
 *   every path as).
 */

import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import pg from "pg";
import { systemClock } from "../../src/adapters/system-clock.js";
import { createPostgresConnector, postgresSettingsSchema } from "../../src/connectors/postgres-connector.js";
import type { RoleDef } from "../../src/core/model.js";
import type { Connector } from "../../src/core/ports/connector.js";
import { createSecretResolver } from "../../src/secrets/secret-ref.js";
import { type PostgresCluster, startPostgres } from "./postgres-cluster.js";

export const PASSWORDS = { app_owner: "owner-pw", reporting: "reporting-pw", app_user: "app-pw" } as const;

const CLUSTER_SETUP = `
  CREATE ROLE app_owner LOGIN PASSWORD '${PASSWORDS.app_owner}';
  CREATE ROLE reporting LOGIN PASSWORD '${PASSWORDS.reporting}';
  CREATE ROLE app_user LOGIN PASSWORD '${PASSWORDS.app_user}';
  CREATE ROLE recovery_rw NOLOGIN;
  CREATE ROLE recovery_dba NOLOGIN CREATEDB;
  GRANT app_owner TO recovery_dba WITH ADMIN OPTION;
  GRANT reporting TO recovery_dba;
  CREATE ROLE recovery_admin NOLOGIN CREATEROLE;
  GRANT app_owner TO recovery_admin WITH ADMIN OPTION;
  CREATE DATABASE app OWNER app_owner;
  CREATE DATABASE billing OWNER app_owner;`;

const APP_SETUP = `
  CREATE TABLE public.accounts (id int PRIMARY KEY, owner text NOT NULL, balance int NOT NULL);
  ALTER TABLE public.accounts OWNER TO app_owner;
  INSERT INTO public.accounts VALUES (1, 'acme', 100), (2, 'globex', 250);
  GRANT SELECT, INSERT, UPDATE, DELETE ON public.accounts TO recovery_rw WITH GRANT OPTION;
  GRANT SELECT ON public.accounts TO reporting;
  GRANT SELECT, INSERT, UPDATE ON public.accounts TO app_user;
  CREATE TABLE public.secrets (id int PRIMARY KEY, holder text NOT NULL, secret text NOT NULL);
  ALTER TABLE public.secrets OWNER TO app_owner;
  INSERT INTO public.secrets VALUES (1, 'reporting', 'r-secret'), (2, 'app_user', 'a-secret');
  ALTER TABLE public.secrets ENABLE ROW LEVEL SECURITY;
  CREATE POLICY own_rows ON public.secrets USING (holder = current_user);
  GRANT SELECT ON public.secrets TO reporting, app_user;
  CREATE FUNCTION public.balance_of(int) RETURNS int LANGUAGE sql STABLE AS 'SELECT balance FROM public.accounts WHERE id = $1';
  ALTER FUNCTION public.balance_of(int) OWNER TO app_owner;
  REVOKE EXECUTE ON FUNCTION public.balance_of(int) FROM PUBLIC;
  GRANT EXECUTE ON FUNCTION public.balance_of(int) TO app_user;
  CREATE VIEW public.account_summary AS SELECT id, owner FROM public.accounts;
  ALTER VIEW public.account_summary OWNER TO app_owner;
  GRANT SELECT ON public.account_summary TO reporting;
  CREATE FOREIGN DATA WRAPPER noop_fdw;
  GRANT USAGE ON FOREIGN DATA WRAPPER noop_fdw TO app_owner;
  CREATE TABLE public.scratch (id int);
  ALTER TABLE public.scratch OWNER TO app_owner;`;

const BILLING_SETUP = `
  CREATE TABLE public.invoices (id int PRIMARY KEY, amount int NOT NULL);
  ALTER TABLE public.invoices OWNER TO app_owner;
  INSERT INTO public.invoices VALUES (1, 40);
  GRANT SELECT ON public.invoices TO reporting;`;

export const TARGET_ENV = "BG_TEST_ESTATE_ADMIN_URL";

export interface PostgresEstate {
  readonly cluster: PostgresCluster;
  /** Run SQL as the superuser on a database (default `app`). */
  sql<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string, values?: unknown[], db?: string): Promise<R[]>;
  /** A connector on `app` with the estate's settings (`recovery_admin` accepted); `extra` overrides. */
  connector(extra?: Record<string, unknown>, roles?: readonly RoleDef[]): Connector;
  /** A connection string for `role` with `password` on `db`. */
  url(role: string, password: string, db?: string): string;
  /** Refuse (true) or allow the broker's admin on database `db` in pg_hba.conf — a database the broker cannot reach. */
  blockAdmin(db: string, blocked: boolean): Promise<void>;
  /** Back to the initial estate: every database and role the tests made is gone. */
  reset(): Promise<void>;
  stop(): Promise<void>;
}

export async function startPostgresEstate(): Promise<PostgresEstate> {
  // Prepared transactions allowed: a holder's PREPARE TRANSACTION is a persistence path.
  const cluster = await startPostgres({ maxPreparedTransactions: 10 });
  const root = cluster.adminUrl; // superuser on `postgres`
  const urlOf = (db: string) => root.replace(/\/postgres$/, `/${db}`);
  const sql = async <R extends pg.QueryResultRow>(text: string, values?: unknown[], db = "app"): Promise<R[]> => {
    const c = new pg.Client({ connectionString: urlOf(db) });
    await c.connect();
    try {
      return (await c.query<R>(text, values)).rows;
    } finally {
      await c.end();
    }
  };
  const setUp = async () => {
    // One statement at a time: CREATE DATABASE cannot run in the implicit transaction of a multi-statement string.
    for (const statement of CLUSTER_SETUP.split(/;\s*\n/)) {
      if (statement.trim() !== "") await sql(statement, undefined, "postgres");
    }
    await sql(APP_SETUP, undefined, "app");
    await sql(BILLING_SETUP, undefined, "billing");
  };
  const hba = join(cluster.dir, "data", "pg_hba.conf");
  const hbaOriginal = readFileSync(hba, "utf8");
  const open = new Set<Connector>();
  await setUp();
  return {
    cluster,
    sql,
    connector(extra = {}, roles = []) {
      const c = createPostgresConnector(
        postgresSettingsSchema.parse({
          admin_url: { env: TARGET_ENV },
          timeout: "10s",
          reassign_owned_to: "app_owner",
          containment: {
            accept: { recovery_admin: "PostgreSQL 15: the identity team's role administrator, reviewed" },
          },
          ...extra,
        }),
        {
          baseDir: "/",
          resolveSecret: createSecretResolver({ baseDir: "/", env: { [TARGET_ENV]: urlOf("app") }, box: null }),
          log: () => {},
          clock: systemClock,
          targetName: "pg-estate",
          roles,
        },
      );
      open.add(c);
      return c;
    },
    url(role, password, db = "app") {
      const u = new URL(urlOf(db));
      u.username = role;
      u.password = password;
      return u.toString();
    },
    async blockAdmin(db, blocked) {
      writeFileSync(hba, blocked ? `host ${db} postgres 127.0.0.1/32 reject\n${hbaOriginal}` : hbaOriginal);
      await sql("SELECT pg_reload_conf()", undefined, "postgres");
      if (blocked) {
        // pg_hba.conf is read at login: connections the broker's pools already hold there must go too.
        await sql(
          "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND usename = 'postgres' AND pid <> pg_backend_pid()",
          [db],
          "postgres",
        );
      }
    },
    async reset() {
      for (const c of open) await c.close?.();
      open.clear();
      writeFileSync(hba, hbaOriginal);
      await sql("SELECT pg_reload_conf()", undefined, "postgres");
      await sql(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename <> 'postgres' AND backend_type = 'client backend'",
        undefined,
        "postgres",
      );
      const prepared = await sql<{ gid: string; db: string }>(
        "SELECT gid, database AS db FROM pg_prepared_xacts",
        undefined,
        "postgres",
      );
      for (const { gid, db } of prepared) await sql(`ROLLBACK PREPARED '${gid.replaceAll("'", "''")}'`, undefined, db);
      const dbs = await sql<{ datname: string }>(
        "SELECT datname FROM pg_database WHERE datname NOT IN ('postgres', 'template0', 'template1', 'breakglass')",
        undefined,
        "postgres",
      );
      for (const { datname } of dbs) {
        await sql(`ALTER DATABASE "${datname}" ALLOW_CONNECTIONS true`, undefined, "postgres");
        await sql(`DROP DATABASE "${datname}" WITH (FORCE)`, undefined, "postgres");
      }
      const roles = await sql<{ rolname: string }>(
        "SELECT rolname FROM pg_roles WHERE rolname NOT LIKE 'pg\\_%' AND rolname NOT IN ('postgres', 'breakglass')",
        undefined,
        "postgres",
      );
      for (const db of ["postgres", "template1"]) {
        for (const { rolname } of roles) await sql(`DROP OWNED BY "${rolname}"`, undefined, db).catch(() => {});
      }
      for (const { rolname } of roles) await sql(`DROP ROLE "${rolname}"`, undefined, "postgres");
      await setUp();
    },
    async stop() {
      for (const c of open) await c.close?.();
      await cluster.stop();
    },
  };
}

/** Run `statements` in one session as the connection string's role; null when all worked, else the error. */
export async function runAs(url: string, ...statements: string[]): Promise<string | null> {
  const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000 });
  c.on("error", () => {});
  try {
    await c.connect();
    for (const s of statements) await c.query(s);
    return null;
  } catch (e) {
    return (e as Error).message;
  } finally {
    await c.end().catch(() => {});
  }
}

/** Rows of a query run as the connection string's role (throws on error). */
export async function queryAs<R extends pg.QueryResultRow = pg.QueryResultRow>(
  url: string,
  text: string,
): Promise<R[]> {
  const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000 });
  c.on("error", () => {});
  await c.connect();
  try {
    return (await c.query<R>(text)).rows;
  } finally {
    await c.end().catch(() => {});
  }
}
