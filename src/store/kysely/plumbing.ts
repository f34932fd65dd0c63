/**
 * What every concern of the Kysely store shares: the dialect differences, how a statement group
 * runs outside and inside a transaction, the transaction itself, error mapping, and the SQL shapes
 * several concerns use (the upsert, bulk updates). SQLite (embedded default) and PostgreSQL
 * (several replicas) differ only where the `dialect` flag says so:
 *
 * - row locks (`FOR UPDATE`, `FOR UPDATE SKIP LOCKED`) exist on PostgreSQL only, always taken in
 *   a statement of their own, with what they guard read by the next statement (READ COMMITTED
 *   gives each statement a fresh snapshot); SQLite has one writer at a time, and transactions
 *   open with `BEGIN IMMEDIATE` so a second process waits on `busy_timeout` instead of failing
 *   when a reader turns writer;
 * - booleans are 0/1 on SQLite ({@link flag});
 * - constraint violations are recognised from each driver's error shape ({@link guard}).
 *
 * Transactions are strict: the first failed statement poisons the transaction, which then rolls
 * back even if the caller swallowed the error (PostgreSQL would silently turn the COMMIT of an
 * aborted transaction into a ROLLBACK; SQLite would commit half the work). A store read called
 * inside the same store's `transaction()` is refused rather than left to deadlock on SQLite's
 * single connection or read around the transaction on PostgreSQL.
 */
import { AsyncLocalStorage } from "node:async_hooks";
import { type Kysely, type RawBuilder, sql } from "kysely";
import { BreakglassError, type ErrorCode, isBreakglassError } from "../../core/errors.js";
import type { Database } from "../schema.js";

export type StoreDialect = "sqlite" | "postgres";

/** Kysely over the pool, or bound to the connection of one transaction. */
export type Db = Kysely<Database>;

/** Bound parameters per statement stay far below SQLite's limit (32766) and PostgreSQL's (65535). */
export const CHUNK = 500;

/**
 * Where a concern's statements run: the store's database outside any transaction (its reads), or
 * the connection of one transaction (its writes). Each concern's adapter is a factory over it.
 */
export interface StoreScope {
  readonly dialect: StoreDialect;
  /**
   * This broker process, written as the owner of the leases it takes (`grants.lease_owner`,
   * `alarms.lease_owner`); null writes no owner (such leases only run out).
   */
  readonly owner: string | null;
  /**
   * Run one operation's statements. Outside a transaction: refused (ERR_INTERNAL) when called
   * inside a transaction of the same store. Inside: refused once the transaction has ended or an
   * earlier statement failed, and a failure poisons the transaction. Either way a database
   * error becomes ERR_STORAGE (or ERR_CONFLICT when a concurrent writer won).
   */
  run<T>(operation: string, statements: (db: Db) => Promise<T>): Promise<T>;
}

/** A transaction's scope: its statements, and work to run once it has committed. */
export interface TxStoreScope extends StoreScope {
  afterCommit(fn: () => void): void;
}

interface TxState {
  active: boolean;
  /** The first error a statement raised; the transaction will not commit. */
  failure: unknown;
  /** Run once the transaction has committed. */
  afterCommit: (() => void)[];
}

/** One scope per Kysely instance, so stores sharing a connection also share the re-entry guard. */
const scopes = new WeakMap<Kysely<Database>, AsyncLocalStorage<TxState>>();
function scopeOf(db: Kysely<Database>): AsyncLocalStorage<TxState> {
  let scope = scopes.get(db);
  if (scope === undefined) {
    scope = new AsyncLocalStorage<TxState>();
    scopes.set(db, scope);
  }
  return scope;
}

/** A store's database: the scope of its reads, and its transactions. */
export interface StoreDatabase {
  /** Statements outside a transaction (the read ports, `reclaimLeases`). */
  readonly reads: StoreScope;
  /**
   * Run `fn` in one transaction over the scope of its connection; commits when `fn` resolves,
   * rolls back (and rethrows) when it throws or when a statement failed, even one whose error
   * `fn` caught. `afterCommit` work runs only after the commit.
   * @throws ERR_STORAGE when the database fails; `fn`'s own errors pass through untouched
   */
  transaction<T>(fn: (scope: TxStoreScope) => Promise<T>): Promise<T>;
}

export function storeDatabase(db: Db, dialect: StoreDialect, owner: string | null): StoreDatabase {
  const scope = scopeOf(db);
  const assertOutsideTransaction = (operation: string): void => {
    if (scope.getStore()?.active === true) {
      throw new BreakglassError(
        "ERR_INTERNAL",
        `store.${operation} was called inside a transaction of the same store; use the transaction's handle`,
        { operation },
      );
    }
  };
  const reads: StoreScope = {
    dialect,
    owner,
    async run<T>(operation: string, statements: (db: Db) => Promise<T>): Promise<T> {
      assertOutsideTransaction(operation);
      try {
        return await statements(db);
      } catch (e) {
        throw isBreakglassError(e) ? e : storageError(operation, e);
      }
    },
  };
  const txScope = (conn: Db, state: TxState): TxStoreScope => ({
    dialect,
    owner,
    async run<T>(operation: string, statements: (db: Db) => Promise<T>): Promise<T> {
      if (!state.active) {
        throw new BreakglassError("ERR_INTERNAL", `tx.${operation} was called after its transaction ended`, {
          operation,
        });
      }
      if (state.failure !== undefined) {
        throw new BreakglassError(
          "ERR_STORAGE",
          `tx.${operation} was called after an earlier statement failed; the transaction will roll back`,
          { operation },
        );
      }
      try {
        return await statements(conn);
      } catch (e) {
        const err = isBreakglassError(e) ? e : storageError(operation, e);
        state.failure = err;
        throw err;
      }
    },
    afterCommit(fn: () => void): void {
      if (!state.afterCommit.includes(fn)) state.afterCommit.push(fn);
    },
  });
  return {
    reads,
    async transaction<T>(fn: (scope: TxStoreScope) => Promise<T>): Promise<T> {
      assertOutsideTransaction("transaction");
      const state: TxState = { active: false, failure: undefined, afterCommit: [] };
      // Errors from `fn` pass through untouched; only the store's own statements are mapped.
      let fnFailed = false;
      try {
        return await db.connection().execute(async (conn) => {
          // PostgreSQL: READ COMMITTED whatever the server's default_transaction_isolation says;
          // the store's locking is written for it (each statement after a lock sees what the lock
          // waited for; see docs/deployment.md, "Transactions and isolation").
          await sql
            .raw(dialect === "sqlite" ? "BEGIN IMMEDIATE" : "BEGIN ISOLATION LEVEL READ COMMITTED")
            .execute(conn);
          state.active = true;
          let result: T;
          try {
            result = await scope.run(state, () => fn(txScope(conn, state)));
          } catch (e) {
            fnFailed = true;
            state.active = false;
            await rollbackQuietly(conn);
            throw e;
          }
          state.active = false;
          if (state.failure !== undefined) {
            // The caller caught a store error and carried on: the work is incomplete, refuse it.
            fnFailed = true;
            await rollbackQuietly(conn);
            throw state.failure;
          }
          try {
            await sql.raw("COMMIT").execute(conn);
          } catch (e) {
            await rollbackQuietly(conn);
            throw e;
          }
          for (const f of state.afterCommit) queueMicrotask(f);
          return result;
        });
      } catch (e) {
        if (fnFailed || isBreakglassError(e)) throw e;
        throw storageError("transaction", e);
      }
    },
  };
}

async function rollbackQuietly(conn: Db): Promise<void> {
  try {
    await sql.raw("ROLLBACK").execute(conn);
  } catch {
    // The connection is already gone, and with it the transaction.
  }
}

// ---------------------------------------------------------------------------------------------
// SQL shapes

type Table = keyof Database & string;
type Column<T extends Table> = keyof Database[T] & string;

/** What an upsert's `DO UPDATE SET` writes: values, or SQL over the stored row and `excluded`. */
export type UpsertSet<T extends Table> = { readonly [C in Column<T>]?: Database[T][C] | RawBuilder<unknown> };

interface UpsertOn<T extends Table> {
  /** The primary key or unique columns a new row may collide on. */
  readonly key: Column<T> | readonly Column<T>[];
  /**
   * What to write over a stored row that collides: these columns (default: every column of the
   * row given), or `"nothing"` to keep the stored row as it is (insert if missing).
   */
  readonly update?: UpsertSet<T> | "nothing";
}

/**
 * `INSERT INTO table … ON CONFLICT (key) DO UPDATE SET … | DO NOTHING`, the one upsert of the
 * store (same SQL on both dialects). Several rows at once need an explicit `update`.
 */
export function upsert<T extends Table>(db: Db, table: T, row: Database[T], on: UpsertOn<T>): Promise<void>;
export function upsert<T extends Table>(
  db: Db,
  table: T,
  rows: readonly Database[T][],
  on: UpsertOn<T> & { readonly update: UpsertSet<T> | "nothing" },
): Promise<void>;
export async function upsert<T extends Table>(
  db: Db,
  table: T,
  values: Database[T] | readonly Database[T][],
  on: UpsertOn<T>,
): Promise<void> {
  const update = on.update ?? (values as UpsertSet<T>);
  const key = (typeof on.key === "string" ? [on.key] : on.key) as never;
  await db
    .insertInto(table)
    .values(values as never)
    .onConflict((oc) =>
      update === "nothing" ? oc.columns(key).doNothing() : oc.columns(key).doUpdateSet(update as never),
    )
    .execute();
}

/**
 * In an upsert's `DO UPDATE SET`: the later of the stored value and the new one (null counts as
 * earliest), so a save from a stale copy cannot move a time or counter back.
 */
export function later(table: string, column: string): RawBuilder<number | null> {
  const stored = sql.ref(`${table}.${column}`);
  const incoming = sql.ref(`excluded.${column}`);
  return sql<number | null>`CASE WHEN ${incoming} IS NULL THEN ${stored}
    WHEN ${stored} IS NULL OR ${incoming} > ${stored} THEN ${incoming} ELSE ${stored} END`;
}

/**
 * Many rows' values as one JSON parameter the database unpacks into a relation `v` (one
 * statement, however many rows), and `SET col = v.col` for every column but `id`: for
 * `UPDATE … SET ${set} FROM ${source} WHERE t.id = v.id`.
 */
export function bulkValues<R>(
  dialect: StoreDialect,
  columns: readonly (readonly [keyof R & string, string])[],
  rows: readonly R[],
): { set: RawBuilder<unknown>; source: RawBuilder<unknown> } {
  const json = JSON.stringify(rows.map((row) => Object.fromEntries(columns.map(([name]) => [name, row[name]]))));
  const set = sql.join(columns.filter(([n]) => n !== "id").map(([n]) => sql`${sql.ref(n)} = v.${sql.ref(n)}`));
  const source =
    dialect === "postgres"
      ? sql`jsonb_to_recordset(${json}::jsonb) AS v(${sql.join(columns.map(([n, t]) => sql`${sql.ref(n)} ${sql.raw(t)}`))})`
      : sql`(SELECT ${sql.join(columns.map(([n]) => sql`json_extract(value, ${`$.${n}`}) AS ${sql.ref(n)}`))} FROM json_each(${json})) AS v`;
  return { set, source };
}

/** A boolean as the column takes it: `boolean` on PostgreSQL, 0/1 on SQLite (better-sqlite3 cannot bind booleans). */
export function flag(dialect: StoreDialect, value: boolean): boolean | number {
  return dialect === "sqlite" ? (value ? 1 : 0) : value;
}

/** A boolean column as read back from either dialect. */
export function isSet(value: boolean | number): boolean {
  return value === true || value === 1;
}

/** How many rows an UPDATE changed was exactly one (a conditional update won). */
export function changedOne(result: { numUpdatedRows: bigint }): boolean {
  return Number(result.numUpdatedRows) === 1;
}

// ---------------------------------------------------------------------------------------------
// Errors

type ViolationKind = "primary" | "unique";

/** Run a write; a constraint violation becomes the domain error `map` gives for it, if any. */
export async function guard<T>(
  write: () => Promise<T>,
  map: (kind: ViolationKind) => BreakglassError | null,
): Promise<T> {
  try {
    return await write();
  } catch (e) {
    const kind = violationKind(e);
    const mapped = kind === null ? null : map(kind);
    if (mapped === null) throw e;
    mapped.cause = e;
    throw mapped;
  }
}

/**
 * Which uniqueness rule a driver error broke, if any. PostgreSQL names the constraint
 * (`*_pkey` for primary keys); better-sqlite3 sets an extended result code.
 */
function violationKind(e: unknown): ViolationKind | null {
  if (typeof e !== "object" || e === null) return null;
  const { code, constraint } = e as { code?: unknown; constraint?: unknown };
  if (code === "23505") return typeof constraint === "string" && constraint.endsWith("_pkey") ? "primary" : "unique";
  if (code === "SQLITE_CONSTRAINT_PRIMARYKEY") return "primary";
  if (code === "SQLITE_CONSTRAINT_UNIQUE") return "unique";
  return null;
}

// PostgreSQL: serialization failure / deadlock — a concurrent writer won; retrying is safe.
const RETRYABLE_SQLSTATES = new Set(["40001", "40P01"]);

/**
 * A database failure as the store reports it: a message with no SQL and no values (those can
 * hold secrets and reach users), the driver's error code in `detail`, the original as `cause`.
 */
export function storageError(operation: string, cause: unknown): BreakglassError {
  const dbCode =
    typeof cause === "object" && cause !== null && typeof (cause as { code?: unknown }).code === "string"
      ? (cause as { code: string }).code
      : null;
  const code: ErrorCode = dbCode !== null && RETRYABLE_SQLSTATES.has(dbCode) ? "ERR_CONFLICT" : "ERR_STORAGE";
  const message =
    code === "ERR_CONFLICT"
      ? `storage: ${operation} lost a race with a concurrent transaction; try again`
      : `storage: ${operation} failed`;
  const err = new BreakglassError(code, message, { operation, dbCode });
  err.cause = cause;
  return err;
}
