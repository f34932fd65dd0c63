/**
 * The embedded default: one SQLite file, WAL, every commit durable (`synchronous=FULL`: an
 * audit event that was acknowledged survives a power cut). One process holds one connection
 * per file, so its transactions are serialised; another process on the same file (the CLI
 * beside the server) waits up to `busy_timeout` for the write lock.
 *
 * @see https://www.sqlite.org/wal.html
 * @see https://www.sqlite.org/pragma.html#pragma_synchronous
 */
import { randomUUID } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, realpathSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import BetterSqlite3 from "better-sqlite3";
import { Kysely, SqliteDialect, sql } from "kysely";
import { isBreakglassError } from "../core/errors.js";
import type { Store } from "../core/ports/store.js";
import { createKyselyStore, storageError } from "./kysely-store.js";
import { migrateToLatest } from "./migrations.js";
import type { Database } from "./schema.js";

export interface SqliteStoreOptions {
  /** File path, or `:memory:` for a private in-memory database (unit tests). */
  readonly path: string;
  /** Apply pending migrations on open (default true). */
  readonly migrate?: boolean;
  /**
   * The broker process this store writes as lease owner (default: one per file in this thread).
   * The broker and its background thread pass the same: their leases are one process's.
   */
  readonly owner?: string;
}

/**
 * Connections by file, shared by every store this process opens on it. better-sqlite3 is
 * synchronous: a second connection in the same process waiting on `busy_timeout` would block
 * the event loop, and with it the transaction it waits for. One connection per file (whose
 * transactions Kysely queues) cannot deadlock that way.
 */
const connections = new Map<string, { db: Kysely<Database>; owner: string; users: number }>();

/**
 * Open (creating if needed) the SQLite store at `path`. Opening the same file again in this
 * process shares its connection; `close()` releases it.
 * @throws ERR_STORAGE when the file cannot be opened or migrated.
 */
export async function createSqliteStore(options: SqliteStoreOptions): Promise<Store> {
  const { path, migrate = true } = options;
  if (path === ":memory:" || path === "") {
    const db = connect(path, false);
    if (migrate) {
      try {
        await migrateAtomically(db);
      } catch (e) {
        await db.destroy().catch(() => {});
        throw e;
      }
    }
    return createKyselyStore({ db, dialect: "sqlite" });
  }

  let key: string;
  try {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    key = join(realpathSync(dirname(path)), basename(path));
  } catch (e) {
    throw storageError("open", e);
  }
  let conn = connections.get(key);
  if (conn === undefined) {
    // One lease owner per file in this process: stores sharing the connection never take over each other's leases.
    conn = { db: connect(key, !existsSync(key)), owner: `bg-${randomUUID()}`, users: 0 };
    connections.set(key, conn);
  }
  conn.users += 1;
  const release = async () => {
    conn.users -= 1;
    if (conn.users > 0) return;
    connections.delete(key);
    await conn.db.destroy();
  };
  if (migrate) {
    try {
      await migrateAtomically(conn.db);
    } catch (e) {
      await release().catch(() => {});
      throw e;
    }
  }
  let released = false;
  return createKyselyStore({
    db: conn.db,
    owner: options.owner ?? conn.owner,
    liveness: "self",
    dialect: "sqlite",
    close: async () => {
      if (released) return;
      released = true;
      await release();
    },
  });
}

function connect(path: string, isNew: boolean): Kysely<Database> {
  let sqlite: BetterSqlite3.Database;
  try {
    sqlite = new BetterSqlite3(path);
  } catch (e) {
    throw storageError("open", e);
  }
  try {
    // Grants and token hashes live here: owner only. SQLite gives -wal/-shm the same mode.
    if (isNew) chmodSync(path, 0o600);
    sqlite.pragma("journal_mode = WAL");
    sqlite.pragma("synchronous = FULL");
    sqlite.pragma("busy_timeout = 5000");
    sqlite.pragma("foreign_keys = ON");
  } catch (e) {
    sqlite.close();
    throw storageError("open", e);
  }
  return new Kysely<Database>({ dialect: new SqliteDialect({ database: sqlite }) });
}

/**
 * Kysely runs SQLite migrations outside a transaction; run them inside one `BEGIN IMMEDIATE`
 * on the (queued) connection, so a failed migration leaves nothing behind and two processes
 * opening a new file together apply it once.
 */
async function migrateAtomically(db: Kysely<Database>): Promise<void> {
  await db.connection().execute(async (conn) => {
    try {
      await sql.raw("BEGIN IMMEDIATE").execute(conn);
    } catch (e) {
      throw storageError("migrate", e);
    }
    try {
      await migrateToLatest(conn);
      await sql.raw("COMMIT").execute(conn);
    } catch (e) {
      await sql
        .raw("ROLLBACK")
        .execute(conn)
        .catch(() => {});
      throw isBreakglassError(e) ? e : storageError("migrate", e);
    }
  });
}
