/**
 * PostgreSQL for high availability: several broker replicas share one database. Background
 * work is claimed with `FOR UPDATE SKIP LOCKED`, the audit head is a locked row, and replicas
 * starting together take turns migrating under an advisory lock.
 *
 * @see https://www.postgresql.org/docs/current/sql-select.html#SQL-FOR-UPDATE-SHARE
 * @see https://www.postgresql.org/docs/current/explicit-locking.html#ADVISORY-LOCKS
 */
import { randomUUID } from "node:crypto";
import { Kysely, PostgresDialect } from "kysely";
import pg from "pg";
import { isBreakglassError } from "../core/errors.js";
import type { Store } from "../core/ports/store.js";
import { createKyselyStore, LEASE_LOCK_CLASS, storageError } from "./kysely-store.js";
import { migrateToLatest } from "./migrations.js";
import type { Database } from "./schema.js";

export interface PostgresStoreOptions {
  /** libpq-style connection string (`postgres://user:pass@host:port/db?sslmode=…`). */
  readonly url: string;
  /** Connections per replica (default 10). */
  readonly poolSize?: number;
  /** Apply pending migrations on open (default true). */
  readonly migrate?: boolean;
  /**
   * The broker process this store writes as lease owner (default: a new one). The broker and its
   * background thread pass the same: one process, one owner, alive while either holds its lock.
   */
  readonly owner?: string;
}

/** "breakgla" in ASCII: the advisory lock key replicas take while migrating. */
export const MIGRATION_LOCK_KEY = "7093843832150125665";

const INT8_OID = 20;

/**
 * Times and sequence numbers are `bigint` (int8), which pg returns as strings by default.
 * Epoch milliseconds and audit seqs stay far below 2^53, so parse them as numbers — for this
 * pool only, never by mutating the global `pg.types`.
 */
const types = {
  getTypeParser: ((oid: number, format?: "text" | "binary") =>
    oid === INT8_OID && format !== "binary"
      ? (value: string) => Number(value)
      : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
};

/**
 * Connect to the PostgreSQL store.
 * @throws ERR_STORAGE when the database cannot be reached or migrated (no URL in the message).
 */
export async function createPostgresStore(options: PostgresStoreOptions): Promise<Store> {
  const { url, poolSize = 10, migrate = true } = options;
  const pool = new pg.Pool({
    connectionString: url,
    max: poolSize,
    types,
    application_name: "breakglass",
    // A database that does not answer surfaces as ERR_STORAGE instead of a hung request.
    connectionTimeoutMillis: 10_000,
  });
  // An idle connection dropped by the server is discarded by the pool; the next query reconnects.
  // Without a listener the 'error' event would crash the process.
  pool.on("error", () => {});
  // A client that is checked out has no pool listener: if its connection drops (a failover, a
  // restart) it emits 'error', which would crash the process. The query in flight fails with the
  // same error (→ ERR_STORAGE), and the pool discards the client when it is released.
  pool.on("connect", (client) => client.on("error", () => {}));
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  if (migrate) {
    try {
      await migrateUnderLock(url, db);
    } catch (e) {
      await db.destroy().catch(() => {});
      throw e;
    }
  }
  const owner = options.owner ?? `bg-${randomUUID()}`;
  let liveness: { stop(): Promise<void> };
  try {
    liveness = await holdLiveness(url, owner);
  } catch (e) {
    await db.destroy().catch(() => {});
    throw storageError("open", e);
  }
  const store = createKyselyStore({
    db,
    dialect: "postgres",
    owner,
    liveness: "lock",
    close: async () => {
      await liveness.stop();
      await db.destroy();
    },
  });
  return store;
}

/**
 * This process's liveness: a session advisory lock on a connection of its own, held for the
 * store's life. When the process dies the server ends the session and releases the lock, and the
 * other replicas take over the leases it held (`reclaimLeases`). A lost connection is made again
 * every second; until then this process looks gone, and its leases may be taken over — the work
 * is idempotent and the second result is refused by the grant's version.
 */
async function holdLiveness(url: string, owner: string): Promise<{ stop(): Promise<void> }> {
  let client: pg.Client | null = null;
  let stopped = false;
  let retry: NodeJS.Timeout | null = null;
  /** @throws when the lock cannot be taken (the first time only; later attempts retry) */
  const connect = async (): Promise<void> => {
    if (stopped) return;
    const c = new pg.Client({ connectionString: url, application_name: "breakglass-liveness" });
    c.on("error", () => {});
    try {
      await c.connect();
      // Shared: the broker's two threads each hold it, so the process counts as alive while either does.
      await c.query("SELECT pg_advisory_lock_shared($1, hashtext($2))", [LEASE_LOCK_CLASS, owner]);
    } catch (e) {
      await c.end().catch(() => {});
      throw e;
    }
    c.on("end", () => {
      if (client === c) client = null;
      schedule();
    });
    if (stopped) await c.end().catch(() => {});
    else client = c;
  };
  const schedule = () => {
    if (stopped || retry) return;
    retry = setTimeout(() => {
      retry = null;
      connect().catch(schedule);
    }, 1_000);
    retry.unref();
  };
  await connect();
  return {
    async stop() {
      stopped = true;
      if (retry) clearTimeout(retry);
      await client?.end().catch(() => {});
      client = null;
    },
  };
}

/**
 * Hold a session advisory lock on a connection of its own (not the pool's, which may have
 * a single slot) while migrating, so replicas starting together apply each migration once.
 */
async function migrateUnderLock(url: string, db: Kysely<Database>): Promise<void> {
  const lock = new pg.Client({ connectionString: url, application_name: "breakglass-migrate" });
  lock.on("error", () => {});
  try {
    await lock.connect();
    await lock.query("SELECT pg_advisory_lock($1::bigint)", [MIGRATION_LOCK_KEY]);
  } catch (e) {
    await lock.end().catch(() => {});
    throw storageError("migrate", e);
  }
  try {
    await migrateToLatest(db);
  } catch (e) {
    throw isBreakglassError(e) ? e : storageError("migrate", e);
  } finally {
    // Ending the session releases the lock even if the unlock fails.
    await lock.query("SELECT pg_advisory_unlock($1::bigint)", [MIGRATION_LOCK_KEY]).catch(() => {});
    await lock.end().catch(() => {});
  }
}
