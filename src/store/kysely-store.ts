/**
 * The one implementation of {@link Store} / {@link StoreTx}, over Kysely. SQLite (embedded
 * default) and PostgreSQL (several replicas) differ only where the `dialect` flag says so:
 *
 * - row locks (`FOR UPDATE`, `FOR UPDATE SKIP LOCKED`) exist on PostgreSQL only, always taken in
 *   a statement of their own, with what they guard read by the next statement (READ COMMITTED
 *   gives each statement a fresh snapshot); SQLite has one writer at a time, and transactions
 *   open with `BEGIN IMMEDIATE` so a second process waits on `busy_timeout` instead of failing
 *   when a reader turns writer;
 * - booleans are 0/1 on SQLite;
 * - constraint violations are recognised from each driver's error shape.
 *
 * Transactions are strict: the first failed statement poisons the transaction, which then rolls
 * back even if the caller swallowed the error (PostgreSQL would silently turn the COMMIT of an
 * aborted transaction into a ROLLBACK; SQLite would commit half the work). A Store method called
 * inside its own `transaction()` is refused rather than left to deadlock on SQLite's single
 * connection or read around the transaction on PostgreSQL.
 */
import { AsyncLocalStorage } from "node:async_hooks";
import { type Kysely, type RawBuilder, type Selectable, sql } from "kysely";
import { storedAuditEvent } from "../core/audit-columns.js";
import type { LinkedAuditEvent, SealedAuditEvent, StoredAuditEvent } from "../core/audit-event.js";
import { BreakglassError, type ErrorCode, isBreakglassError } from "../core/errors.js";
import type {
  AccessState,
  ActivationFailure,
  Approval,
  EndReason,
  Grant,
  GrantReview,
  GrantState,
  VaultOpening,
} from "../core/model.js";
import { OPEN_STATES } from "../core/model.js";
import type {
  AlarmRecord,
  AlarmState,
  AuditHead,
  AuthThrottle,
  Checkpoint,
  DrillRun,
  DrillStep,
  FactorKind,
  GatewayLogin,
  GrantFilter,
  Identity,
  LocalFactor,
  LoginMethod,
  RecordingRef,
  StatementBatch,
  StatementRecord,
  Store,
  StoreTx,
  TerminalEvent,
  TerminalSession,
  TokenRecord,
  WebSession,
} from "../core/ports.js";
import { byStart, unpackStatements } from "../core/statement-batch.js";
import type { Database, GrantsTable, TokensTable } from "./schema.js";

export type StoreDialect = "sqlite" | "postgres";

export interface KyselyStoreOptions {
  readonly db: Kysely<Database>;
  readonly dialect: StoreDialect;
  /**
   * What `close()` does (default: destroy `db`). Stores sharing one connection pass a
   * reference-counted release instead.
   */
  readonly close?: () => Promise<void>;
  /**
   * This broker process, written as the owner of the leases it takes (`grants.lease_owner`);
   * null writes no owner (such leases only run out).
   */
  readonly owner?: string | null;
  /**
   * For `reclaimLeases`: how a lease's owner is known to be alive. `lock`: it holds the session
   * advisory lock (LEASE_LOCK_CLASS, hashtext(owner)) — PostgreSQL. `self`: only this process
   * is alive — SQLite, one broker per file.
   */
  readonly liveness?: "lock" | "self";
}

/** The first key of the session advisory lock each PostgreSQL broker process holds while alive ("BGLS"). */
export const LEASE_LOCK_CLASS = 1112951891;

/** The first key of the transaction advisory lock on one user's factors ("BGFA"). */
const FACTOR_LOCK_CLASS = 1111967297;

/** Kysely over the pool, or bound to the connection of one transaction. */
type Db = Kysely<Database>;
type GrantRow = Selectable<GrantsTable> & { approvals: string | null };

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

// Bound parameters per statement stay far below SQLite's limit (32766) and PostgreSQL's (65535).
const CHUNK = 500;

export function createKyselyStore(options: KyselyStoreOptions): Store {
  return new KyselyStore(options);
}

class KyselyStore implements Store {
  readonly #db: Kysely<Database>;
  readonly #owner: string | null;
  readonly #liveness: "lock" | "self";
  readonly #dialect: StoreDialect;
  readonly #close: () => Promise<void>;
  readonly #scope: AsyncLocalStorage<TxState>;
  #closed = false;

  constructor(options: KyselyStoreOptions) {
    this.#db = options.db;
    this.#owner = options.owner ?? null;
    this.#liveness = options.liveness ?? "self";
    this.#dialect = options.dialect;
    this.#close = options.close ?? (() => options.db.destroy());
    this.#scope = scopeOf(options.db);
  }

  async transaction<T>(fn: (tx: StoreTx) => Promise<T>): Promise<T> {
    this.#assertOutsideTransaction("transaction");
    const state: TxState = { active: false, failure: undefined, afterCommit: [] };
    // Errors from `fn` pass through untouched; only the store's own statements are mapped.
    let fnFailed = false;
    try {
      return await this.#db.connection().execute(async (conn) => {
        // PostgreSQL: READ COMMITTED whatever the server's default_transaction_isolation says;
        // the store's locking is written for it (each statement after a lock sees what the lock
        // waited for; see docs/deployment.md, "Transactions and isolation").
        await sql
          .raw(this.#dialect === "sqlite" ? "BEGIN IMMEDIATE" : "BEGIN ISOLATION LEVEL READ COMMITTED")
          .execute(conn);
        state.active = true;
        let result: T;
        try {
          result = await this.#scope.run(state, () => fn(new KyselyStoreTx(conn, this.#dialect, state, this.#owner)));
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
  }

  getGrant(id: string): Promise<Grant | null> {
    return this.#read("getGrant", async () => {
      const row = await selectGrants(this.#db, this.#dialect).where("id", "=", id).executeTakeFirst();
      return row === undefined ? null : grantFromRow(row);
    });
  }

  listGrants(filter: GrantFilter): Promise<Grant[]> {
    return this.#read("listGrants", async () => {
      if (filter.states !== undefined && filter.states.length === 0) return [];
      if (filter.limit !== undefined && filter.limit <= 0) return [];
      let q = selectGrants(this.#db, this.#dialect);
      if (filter.states !== undefined) q = q.where("state", "in", [...filter.states]);
      if (filter.requester !== undefined) q = q.where("requester", "=", filter.requester);
      if (filter.roleId !== undefined) q = q.where("role_id", "=", filter.roleId);
      if (filter.endedAfter !== undefined) q = q.where("ended_at", ">=", filter.endedAfter);
      if (filter.incident !== undefined) q = q.where("incident", "=", filter.incident);
      const after = filter.after;
      if (after !== undefined) {
        q = q.where((eb) =>
          eb.or([
            eb("requested_at", "<", after.requestedAt),
            eb.and([eb("requested_at", "=", after.requestedAt), eb("id", "<", after.id)]),
          ]),
        );
      }
      q = q.orderBy("requested_at", "desc").orderBy("id", "desc");
      if (filter.limit !== undefined) q = q.limit(filter.limit);
      return (await q.execute()).map(grantFromRow);
    });
  }

  readGrantAudit(grantIds: readonly string[]): Promise<LinkedAuditEvent[]> {
    return this.#read("readGrantAudit", () => selectGrantAudit(this.#db, grantIds));
  }

  readNonGrantAudit(types: readonly string[]): Promise<LinkedAuditEvent[]> {
    return this.#read("readNonGrantAudit", () => selectNonGrantAudit(this.#db, types));
  }

  readAuditAt(seqs: readonly number[]): Promise<StoredAuditEvent[]> {
    return this.#read("readAuditAt", async () => {
      const out: StoredAuditEvent[] = [];
      const unique = [...new Set(seqs)];
      for (let i = 0; i < unique.length; i += 500) {
        const rows = await this.#db
          .selectFrom("audit_events")
          .selectAll()
          .where("seq", "in", unique.slice(i, i + 500))
          .execute();
        out.push(...rows.map(auditRow));
      }
      return out.sort((a, b) => a.seq - b.seq);
    });
  }

  readAudit(fromSeq: number, limit: number): Promise<StoredAuditEvent[]> {
    return this.#read("readAudit", async () => {
      if (limit <= 0) return [];
      const rows = await this.#db
        .selectFrom("audit_events")
        .selectAll()
        .where("seq", ">=", fromSeq)
        .orderBy("seq")
        .limit(limit)
        .execute();
      // Exactly as stored: verification must see tampering, so nothing is checked or repaired here.
      return rows.map(auditRow);
    });
  }

  readCheckpoints(): Promise<Checkpoint[]> {
    return this.#read("readCheckpoints", async () => {
      const rows = await this.#db.selectFrom("audit_checkpoints").selectAll().orderBy("seq").execute();
      return rows.map((r) => ({ seq: r.seq, hash: r.hash, at: r.at, keyId: r.key_id, signature: r.signature }));
    });
  }

  findToken(id: string): Promise<TokenRecord | null> {
    return this.#read("findToken", async () => {
      const row = await this.#db.selectFrom("tokens").selectAll().where("id", "=", id).executeTakeFirst();
      return row === undefined ? null : tokenFromRow(row);
    });
  }

  stats(): ReturnType<Store["stats"]> {
    return this.#read("stats", async () => {
      const active = await this.#db
        .selectFrom("grants")
        .select(["role_id", (eb) => eb.fn.countAll<number>().as("n")])
        .where("state", "=", "active")
        .groupBy("role_id")
        .orderBy("role_id")
        .execute();
      const alarms = await this.#db
        .selectFrom("alarms")
        .select(["channel", "state", (eb) => eb.fn.countAll<number>().as("n")])
        .groupBy(["channel", "state"])
        .orderBy("channel")
        .orderBy("state")
        .execute();
      const failing = await this.#db
        .selectFrom("grants")
        .select((eb) => eb.fn.countAll<number>().as("n"))
        .where("access", "=", "revoking")
        .where("access_attempts", ">", 0)
        .executeTakeFirst();
      return {
        activeByRole: active.map((r) => ({ role: r.role_id, count: Number(r.n) })),
        alarms: alarms.map((r) => ({ channel: r.channel, state: r.state, count: Number(r.n) })),
        revocationsFailing: Number(failing?.n ?? 0),
      };
    });
  }

  listAlarms(grantId: string): Promise<AlarmRecord[]> {
    return this.#read("listAlarms", async () => {
      const rows = await this.#db
        .selectFrom("alarms")
        .selectAll()
        .where("grant_id", "=", grantId)
        .orderBy("event_seq")
        .orderBy("channel")
        .execute();
      return rows.map(alarmFromRow);
    });
  }

  readAlarms(afterId: string | null, limit: number): Promise<AlarmRecord[]> {
    return this.#read("readAlarms", async () => {
      const rows = await this.#db
        .selectFrom("alarms")
        .selectAll()
        .$if(afterId !== null, (q) => q.where("id", ">", afterId as string))
        .orderBy("id")
        .limit(limit)
        .execute();
      return rows.map(alarmFromRow);
    });
  }

  listAlarmsOfGrants(grantIds: readonly string[], eventTypes: readonly string[]): Promise<AlarmRecord[]> {
    return this.#read("listAlarmsOfGrants", async () => {
      const out: AlarmRecord[] = [];
      // In slices: a bound parameter per id, well under either database's limit.
      for (let i = 0; i < grantIds.length; i += 500) {
        const rows = await this.#db
          .selectFrom("alarms")
          .selectAll()
          .where("grant_id", "in", grantIds.slice(i, i + 500))
          .$if(eventTypes.length > 0, (q) => q.where("event_type", "in", eventTypes))
          .orderBy("event_seq")
          .orderBy("channel")
          .execute();
        out.push(...rows.map(alarmFromRow));
      }
      return out;
    });
  }

  listTokens(user: string | null): Promise<TokenRecord[]> {
    return this.#read("listTokens", async () => {
      const rows = await this.#db
        .selectFrom("tokens")
        .selectAll()
        .$if(user !== null, (q) => q.where("user_name", "=", user as string))
        .orderBy("created_at", "desc")
        .orderBy("id")
        .execute();
      return rows.map(tokenFromRow);
    });
  }

  getDrillRun(id: string): Promise<DrillRun | null> {
    return this.#read("getDrillRun", async () => {
      const row = await this.#db.selectFrom("drill_runs").selectAll().where("id", "=", id).executeTakeFirst();
      return row === undefined ? null : drillRunFromRow(row);
    });
  }

  listDrillRuns(name: string | null, limit: number): Promise<DrillRun[]> {
    return this.#read("listDrillRuns", async () => {
      const rows = await this.#db
        .selectFrom("drill_runs")
        .selectAll()
        .$if(name !== null, (q) => q.where("name", "=", name as string))
        .orderBy("started_at", "desc")
        .orderBy("id", "desc")
        .limit(limit)
        .execute();
      return rows.map(drillRunFromRow);
    });
  }

  getVaultOpening(id: string): Promise<VaultOpening | null> {
    return this.#read("getVaultOpening", async () => {
      const row = await this.#db.selectFrom("vault_openings").selectAll().where("id", "=", id).executeTakeFirst();
      return row === undefined ? null : vaultOpeningFromRow(row);
    });
  }

  listVaultOpenings(unreviewed: boolean): Promise<VaultOpening[]> {
    return this.#read("listVaultOpenings", async () => {
      const rows = await this.#db
        .selectFrom("vault_openings")
        .selectAll()
        .$if(unreviewed, (q) => q.where("review", "is", null))
        .orderBy("opened_at")
        .orderBy("id")
        .execute();
      return rows.map(vaultOpeningFromRow);
    });
  }

  readState(key: string): Promise<string | null> {
    return this.#read("readState", async () => {
      const row = await this.#db.selectFrom("broker_state").select("value").where("key", "=", key).executeTakeFirst();
      return row === undefined || row.value === "" ? null : row.value;
    });
  }

  listState(prefix: string): Promise<{ key: string; value: string }[]> {
    return this.#read("listState", async () => {
      const rows = await this.#db.selectFrom("broker_state").select(["key", "value"]).orderBy("key").execute();
      // Filtered here: LIKE treats `_` and `%` in a prefix as wildcards.
      return rows.filter((r) => r.key.startsWith(prefix));
    });
  }

  findWebSession(id: string): Promise<WebSession | null> {
    return this.#read("findWebSession", async () => {
      const row = await this.#db.selectFrom("web_sessions").selectAll().where("id", "=", id).executeTakeFirst();
      return row === undefined ? null : webSessionFromRow(row);
    });
  }

  findIdentity(user: string): Promise<Identity | null> {
    return this.#read("findIdentity", async () => {
      const row = await this.#db.selectFrom("identities").selectAll().where("user_name", "=", user).executeTakeFirst();
      return row === undefined ? null : identityFromRow(row);
    });
  }

  listIdentities(): Promise<Identity[]> {
    return this.#read("listIdentities", async () => {
      const rows = await this.#db.selectFrom("identities").selectAll().orderBy("user_name").execute();
      return rows.map(identityFromRow);
    });
  }

  listFactors(user: string): Promise<LocalFactor[]> {
    return this.#read("listFactors", async () => {
      const rows = await this.#db
        .selectFrom("local_factors")
        .selectAll()
        .where("user_name", "=", user)
        .where("removed_at", "is", null)
        .orderBy("created_at")
        .orderBy("id")
        .execute();
      return rows.map(factorFromRow);
    });
  }

  findThrottle(key: string): Promise<AuthThrottle | null> {
    return this.#read("findThrottle", async () => {
      const row = await this.#db.selectFrom("auth_throttle").selectAll().where("key", "=", key).executeTakeFirst();
      return row === undefined
        ? null
        : { key: row.key, failures: row.failures, windowStart: row.window_start, lockedUntil: row.locked_until };
    });
  }

  findGatewayLogin(user: string): Promise<GatewayLogin | null> {
    return this.#read("findGatewayLogin", async () => {
      const row = await this.#db
        .selectFrom("gateway_logins")
        .selectAll()
        .where("user_name", "=", user)
        .executeTakeFirst();
      return row
        ? { grantId: row.grant_id, user: row.user_name, verifier: row.verifier, upstream: row.upstream }
        : null;
    });
  }

  listStatements(grantId: string): Promise<StatementRecord[]> {
    return this.#read("listStatements", async () => {
      const rows = await this.#db
        .selectFrom("statement_batches")
        .select(["grant_id", "session_id", "first_seq", "entries"])
        .where("grant_id", "=", grantId)
        .execute();
      return rows
        .flatMap((r) =>
          unpackStatements({ grantId: r.grant_id, sessionId: r.session_id, firstSeq: r.first_seq, entries: r.entries }),
        )
        .sort(byStart);
    });
  }

  getTerminalSession(id: string): Promise<TerminalSession | null> {
    return this.#read("getTerminalSession", async () => {
      const row = await this.#db.selectFrom("terminal_sessions").selectAll().where("id", "=", id).executeTakeFirst();
      return row ? terminalFromRow(row) : null;
    });
  }

  listTerminalSessions(grantId: string | null): Promise<TerminalSession[]> {
    return this.#read("listTerminalSessions", async () => {
      const rows = await this.#db
        .selectFrom("terminal_sessions")
        .selectAll()
        .$if(grantId !== null, (q) => q.where("grant_id", "=", grantId as string))
        .orderBy("started_at")
        .orderBy("id")
        .execute();
      return rows.map(terminalFromRow);
    });
  }

  readTerminalEvents(sessionId: string): Promise<TerminalEvent[]> {
    return this.#read("readTerminalEvents", () => terminalEvents(this.#db, sessionId));
  }

  listRecordings(): Promise<RecordingRef[]> {
    return this.#read("listRecordings", async () => {
      const terminals = await this.#db.selectFrom("terminal_sessions").select(["id", "grant_id"]).execute();
      // Events without a session row too: a recording is whatever rows there are.
      const orphans = await this.#db
        .selectFrom("terminal_events")
        .select("session_id")
        .distinct()
        .where("session_id", "not in", (q) => q.selectFrom("terminal_sessions").select("id"))
        .execute();
      const gateway = await this.#db
        .selectFrom("statement_batches")
        .select(["session_id", "grant_id"])
        .distinct()
        .execute();
      return [
        ...terminals.map((r) => ({ kind: "terminal" as const, sessionId: r.id, grantId: r.grant_id })),
        ...orphans.map((r) => ({ kind: "terminal" as const, sessionId: r.session_id, grantId: null })),
        ...gateway.map((r) => ({ kind: "gateway" as const, sessionId: r.session_id, grantId: r.grant_id })),
      ];
    });
  }

  readCredential(grantId: string): Promise<string | null> {
    return this.#read("readCredential", async () => {
      const row = await this.#db
        .selectFrom("grant_credentials")
        .select("box")
        .where("grant_id", "=", grantId)
        .executeTakeFirst();
      return row?.box ?? null;
    });
  }

  nextDueAt(): Promise<number | null> {
    return this.#read("nextDueAt", async () => {
      const row = await this.#db
        .selectFrom("grants")
        .select((eb) => eb.fn.min("due_at").as("next"))
        .executeTakeFirst();
      return row?.next ?? null;
    });
  }
  reclaimLeases(now: number): Promise<number> {
    return this.#read("reclaimLeases", async () => {
      /** The lease's owner is another broker process, and it is gone. */
      const gone = (owner: RawBuilder<unknown>) =>
        this.#liveness === "lock"
          ? sql`${owner} <> ${this.#owner ?? ""} AND hashtext(${owner})::oid NOT IN (SELECT l.objid
               FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted AND l.classid = ${LEASE_LOCK_CLASS}::oid AND l.objsubid = 2)`
          : sql`${owner} <> ${this.#owner ?? ""}`;
      const grants = await sql`UPDATE grants
        SET access_next_at = ${now}, due_at = ${now}, lease_owner = NULL, version = version + 1
        WHERE access IN (${sql.join([...LEASED_ACCESS])}) AND lease_owner IS NOT NULL
          AND access_next_at > ${now} AND ${gone(sql.ref("grants.lease_owner"))}`.execute(this.#db);
      const alarms = await sql`UPDATE alarms SET next_at = ${now}, lease_owner = NULL
        WHERE state = 'queued' AND lease_owner IS NOT NULL AND next_at > ${now}
          AND ${gone(sql.ref("alarms.lease_owner"))}`.execute(this.#db);
      return Number(grants.numAffectedRows ?? 0) + Number(alarms.numAffectedRows ?? 0);
    });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#close();
  }

  async #read<T>(operation: string, run: () => Promise<T>): Promise<T> {
    this.#assertOutsideTransaction(operation);
    try {
      return await run();
    } catch (e) {
      throw isBreakglassError(e) ? e : storageError(operation, e);
    }
  }

  #assertOutsideTransaction(operation: string): void {
    if (this.#scope.getStore()?.active === true) {
      throw new BreakglassError(
        "ERR_INTERNAL",
        `store.${operation} was called inside a transaction of the same store; use the transaction's handle`,
        { operation },
      );
    }
  }
}

class KyselyStoreTx implements StoreTx {
  readonly #db: Db;
  readonly #dialect: StoreDialect;
  readonly #state: TxState;
  readonly #owner: string | null;

  constructor(db: Db, dialect: StoreDialect, state: TxState, owner: string | null) {
    this.#db = db;
    this.#dialect = dialect;
    this.#state = state;
    this.#owner = owner;
  }

  afterCommit(fn: () => void): void {
    if (!this.#state.afterCommit.includes(fn)) this.#state.afterCommit.push(fn);
  }

  lockGrant(id: string): Promise<Grant | null> {
    return this.#run("lockGrant", async (db) => {
      if (this.#dialect === "postgres") {
        // Lock first, read after, in two statements. Under READ COMMITTED a statement that waits
        // for a row lock gets the row as the other transaction committed it, but its subqueries
        // (the approvals) from the snapshot taken before the wait: one statement would pair the
        // new row with the old approvals. The next statement takes a fresh snapshot, and nobody
        // can change the grant or its approvals while the lock is held.
        const locked = await db.selectFrom("grants").select("id").where("id", "=", id).forUpdate().executeTakeFirst();
        if (locked === undefined) return null;
      }
      const row = await selectGrants(db, this.#dialect).where("id", "=", id).executeTakeFirst();
      return row === undefined ? null : grantFromRow(row);
    });
  }

  findOpenGrant(requester: string, roleId: string): Promise<Grant | null> {
    return this.#run("findOpenGrant", async (db) => {
      const row = await selectGrants(db, this.#dialect)
        .where("requester", "=", requester)
        .where("role_id", "=", roleId)
        .where("state", "in", [...OPEN_STATES])
        .executeTakeFirst();
      return row === undefined ? null : grantFromRow(row);
    });
  }

  saveGrant(grant: Grant, dueAt: number | null): Promise<void> {
    return this.#run("saveGrant", async (db) => {
      const values = grantToRow(grant, dueAt, this.#dialect, this.#owner);
      const insert = () =>
        guard(
          () => db.insertInto("grants").values(values).execute(),
          (kind) => (kind === "primary" ? conflict(grant, null) : kind === "unique" ? openGrantExists(grant) : null),
        );
      let inserted = false;
      if (grant.version <= 1) {
        // A new grant; if the id exists, someone else created it first.
        await insert();
        inserted = true;
      } else {
        const { id: _id, ...changes } = values;
        const updated = await guard(
          () =>
            db
              .updateTable("grants")
              .set(changes)
              .where("id", "=", grant.id)
              .where("version", "=", grant.version - 1)
              .executeTakeFirst(),
          (kind) => (kind === "unique" ? openGrantExists(grant) : null),
        );
        if (updated.numUpdatedRows === 0n) {
          const existing = await db
            .selectFrom("grants")
            .select("version")
            .where("id", "=", grant.id)
            .executeTakeFirst();
          if (existing !== undefined) throw conflict(grant, existing.version);
          await insert();
          inserted = true;
        }
      }
      await this.#saveApprovals(db, grant, inserted);
    });
  }

  updateGrants(items: readonly { grant: Grant; dueAt: number | null }[]): Promise<void> {
    return this.#run("updateGrants", async (db) => {
      for (let i = 0; i < items.length; i += CHUNK) {
        const chunk = items.slice(i, i + CHUNK);
        const rows = chunk.map(({ grant, dueAt }) => grantToRow(grant, dueAt, this.#dialect, this.#owner));
        const { set, source } = bulkValues(this.#dialect, BULK_COLUMNS, rows);
        const result =
          await sql`UPDATE grants SET ${set} FROM ${source} WHERE grants.id = v.id AND grants.version = v.version - 1`.execute(
            db,
          );
        if (Number(result.numAffectedRows ?? 0) !== chunk.length) {
          throw new BreakglassError(
            "ERR_CONFLICT",
            "some grants were changed by another writer; reload them and try again",
            {
              expected: chunk.length,
              updated: Number(result.numAffectedRows ?? 0),
            },
          );
        }
      }
    });
  }

  claimDue(now: number, limit: number): Promise<Grant[]> {
    return this.#run("claimDue", async (db) => {
      if (limit <= 0) return [];
      if (this.#dialect === "sqlite") {
        const rows = await selectGrants(db, this.#dialect)
          .where("due_at", "is not", null)
          .where("due_at", "<=", now)
          .orderBy("due_at")
          .orderBy("id")
          .limit(limit)
          .execute();
        return rows.map(grantFromRow);
      }
      // Claim, then read in a later statement with a fresh snapshot (see lockGrant): a row whose
      // newer version the claim locked would otherwise come with its approvals from before.
      const claimed = await db
        .selectFrom("grants")
        .select("id")
        .where("due_at", "is not", null)
        .where("due_at", "<=", now)
        .orderBy("due_at")
        .orderBy("id")
        .limit(limit)
        .forUpdate()
        .skipLocked()
        .execute();
      if (claimed.length === 0) return [];
      const rows = await selectGrants(db, this.#dialect)
        .where(
          "id",
          "in",
          claimed.map((r) => r.id),
        )
        .orderBy("due_at")
        .orderBy("id")
        .execute();
      return rows.map(grantFromRow);
    });
  }

  readGrantAudit(grantIds: readonly string[]): Promise<SealedAuditEvent[]> {
    return this.#run("readGrantAudit", (db) => selectGrantAudit(db, grantIds));
  }

  lockAuditHead(): Promise<AuditHead> {
    return this.#run("lockAuditHead", async (db) => {
      const row = await db
        .selectFrom("audit_head")
        .select(["seq", "hash"])
        .where("id", "=", 1)
        .$if(this.#dialect === "postgres", (q) => q.forUpdate())
        .executeTakeFirst();
      if (row === undefined) {
        throw new BreakglassError("ERR_STORAGE", "the audit head is missing; the schema was not migrated", {
          operation: "lockAuditHead",
        });
      }
      return { seq: row.seq, hash: row.hash };
    });
  }

  insertAuditEvents(events: readonly SealedAuditEvent[]): Promise<void> {
    return this.#run("insertAuditEvents", async (db) => {
      try {
        const first = events[0];
        const last = events[events.length - 1];
        if (first === undefined || last === undefined) return;
        events.forEach((e, i) => {
          if (e.seq !== first.seq + i) throw new Error("audit events are not consecutive");
        });
        for (let i = 0; i < events.length; i += CHUNK) {
          const rows = events.slice(i, i + CHUNK).map((e) => ({
            seq: e.seq,
            at: e.at,
            type: e.type,
            actor: e.actor,
            grant_id: e.grantId,
            payload: e.payload,
            hash: e.hash,
          }));
          await db.insertInto("audit_events").values(rows).execute();
        }
        // Moves only from the head these events were sealed against: a writer that skipped
        // lockAuditHead() or sealed against a stale head cannot fork the chain.
        const moved = await db
          .updateTable("audit_head")
          .set({ seq: last.seq, hash: last.hash })
          .where("id", "=", 1)
          .where("seq", "=", first.seq - 1)
          .executeTakeFirst();
        if (moved.numUpdatedRows !== 1n) throw new Error("the audit head is not where the events were sealed");
      } catch (e) {
        const err = new BreakglassError(
          "ERR_AUDIT_WRITE_FAILED",
          "the audit record could not be written; the action is refused",
          { count: events.length },
        );
        err.cause = e;
        throw err;
      }
    });
  }

  insertAlarms(alarms: readonly AlarmRecord[]): Promise<void> {
    return this.#run("insertAlarms", async (db) => {
      for (let i = 0; i < alarms.length; i += CHUNK) {
        await db
          .insertInto("alarms")
          .values(alarms.slice(i, i + CHUNK).map(alarmToRow))
          .execute();
      }
    });
  }

  claimAlarms(now: number, limit: number, excludeChannels: readonly string[] = []): Promise<AlarmRecord[]> {
    return this.#run("claimAlarms", async (db) => {
      if (limit <= 0) return [];
      const rows = await db
        .selectFrom("alarms")
        .selectAll()
        .where("state", "=", "queued")
        .where("next_at", "<=", now)
        .$if(excludeChannels.length > 0, (q) => q.where("channel", "not in", excludeChannels))
        .orderBy("next_at")
        .orderBy("id")
        .limit(limit)
        .$if(this.#dialect === "postgres", (q) => q.forUpdate().skipLocked())
        .execute();
      return rows.map(alarmFromRow);
    });
  }

  leaseAlarms(ids: readonly string[], until: number): Promise<void> {
    return this.#run("leaseAlarms", async (db) => {
      for (let i = 0; i < ids.length; i += CHUNK) {
        await db
          .updateTable("alarms")
          .set({ next_at: until, lease_owner: this.#owner })
          .where("id", "in", ids.slice(i, i + CHUNK))
          .execute();
      }
    });
  }

  saveAlarms(alarms: readonly AlarmRecord[]): Promise<number> {
    return this.#run("saveAlarms", async (db) => {
      // Only while this process still holds the lease: a result computed from what it claimed
      // must not overwrite the work of a replica that has taken the alarm over since.
      const mine =
        this.#dialect === "postgres"
          ? sql`alarms.lease_owner IS NOT DISTINCT FROM ${this.#owner}`
          : sql`alarms.lease_owner IS ${this.#owner}`;
      let saved = 0;
      for (let i = 0; i < alarms.length; i += CHUNK) {
        const { set, source } = bulkValues(
          this.#dialect,
          ALARM_STATE_COLUMNS,
          alarms.slice(i, i + CHUNK).map(alarmToRow),
        );
        const result = await sql`UPDATE alarms SET ${set}, lease_owner = NULL FROM ${source}
          WHERE alarms.id = v.id AND alarms.state = 'queued' AND ${mine}`.execute(db);
        saved += Number(result.numAffectedRows ?? 0);
      }
      return saved;
    });
  }

  readCredential(grantId: string): Promise<string | null> {
    return this.#run("readCredential", async (db) => {
      const row = await db
        .selectFrom("grant_credentials")
        .select("box")
        .where("grant_id", "=", grantId)
        .executeTakeFirst();
      return row?.box ?? null;
    });
  }

  saveCredential(grantId: string, box: string, at: number): Promise<void> {
    return this.#run("saveCredential", async (db) => {
      await db
        .insertInto("grant_credentials")
        .values({ grant_id: grantId, box, updated_at: at })
        .onConflict((oc) => oc.column("grant_id").doUpdateSet({ box, updated_at: at }))
        .execute();
    });
  }

  deleteCredentials(grantIds: readonly string[]): Promise<void> {
    return this.#run("deleteCredentials", async (db) => {
      if (grantIds.length === 0) return;
      await db
        .deleteFrom("grant_credentials")
        .where("grant_id", "in", [...grantIds])
        .execute();
      await db
        .deleteFrom("gateway_logins")
        .where("grant_id", "in", [...grantIds])
        .execute();
    });
  }

  saveTerminalSession(t: TerminalSession): Promise<void> {
    return this.#run("saveTerminalSession", async (db) => {
      const end = { ended_at: t.endedAt, end_reason: t.endReason };
      await db
        .insertInto("terminal_sessions")
        .values({
          id: t.id,
          grant_id: t.grantId,
          command: t.command,
          width: t.width,
          height: t.height,
          record_input: this.#dialect === "sqlite" ? (t.recordInput ? 1 : 0) : t.recordInput,
          started_at: t.startedAt,
          ...end,
        })
        .onConflict((oc) => oc.column("id").doUpdateSet(end))
        .execute();
    });
  }

  appendTerminalEvents(sessionId: string, events: readonly TerminalEvent[]): Promise<void> {
    return this.#run("appendTerminalEvents", async (db) => {
      for (let i = 0; i < events.length; i += 1000) {
        await db
          .insertInto("terminal_events")
          .values(
            events.slice(i, i + 1000).map((e) => ({
              session_id: sessionId,
              seq: e.seq,
              t_ms: Math.round(e.t * 1000),
              kind: e.kind,
              data: e.data,
            })),
          )
          .onConflict((oc) => oc.columns(["session_id", "seq"]).doNothing())
          .execute();
      }
    });
  }

  /** The session as it is now, inside the transaction (the caller holds its grant's lock). */
  getTerminalSession(id: string): Promise<TerminalSession | null> {
    return this.#run("getTerminalSession", async (db) => {
      const row = await db.selectFrom("terminal_sessions").selectAll().where("id", "=", id).executeTakeFirst();
      return row ? terminalFromRow(row) : null;
    });
  }

  readTerminalEvents(sessionId: string): Promise<TerminalEvent[]> {
    return this.#run("readTerminalEvents", (db) => terminalEvents(db, sessionId));
  }

  saveGatewayLogin(login: GatewayLogin, at: number): Promise<void> {
    return this.#run("saveGatewayLogin", async (db) => {
      const values = { verifier: login.verifier, upstream: login.upstream, updated_at: at };
      await db
        .insertInto("gateway_logins")
        .values({ grant_id: login.grantId, user_name: login.user, ...values })
        .onConflict((oc) => oc.column("grant_id").doUpdateSet(values))
        .execute();
    });
  }

  insertStatementBatches(batches: readonly StatementBatch[]): Promise<void> {
    return this.#run("insertStatementBatches", async (db) => {
      // At most 500 rows (3,000 parameters) a statement, well within either database's limit.
      for (let i = 0; i < batches.length; i += 500) {
        await db
          .insertInto("statement_batches")
          .values(
            batches.slice(i, i + 500).map((b) => ({
              grant_id: b.grantId,
              session_id: b.sessionId,
              first_seq: b.firstSeq,
              last_seq: b.lastSeq,
              started_at: b.startedAt,
              entries: b.entries,
            })),
          )
          .onConflict((oc) => oc.columns(["session_id", "first_seq"]).doNothing())
          .execute();
      }
    });
  }

  insertToken(token: TokenRecord): Promise<void> {
    return this.#run("insertToken", async (db) => {
      await guard(
        () =>
          db
            .insertInto("tokens")
            .values({
              id: token.id,
              user_name: token.user,
              secret_hash: token.secretHash,
              created_at: token.createdAt,
              expires_at: token.expiresAt,
              revoked_at: token.revokedAt,
              description: token.description,
              scopes: JSON.stringify(token.scopes),
            })
            .execute(),
        (kind) =>
          kind === "primary"
            ? new BreakglassError("ERR_CONFLICT", "a token with this id exists", { id: token.id })
            : null,
      );
    });
  }

  revokeToken(id: string, at: number): Promise<boolean> {
    return this.#run("revokeToken", async (db) => {
      const r = await db
        .updateTable("tokens")
        .set({ revoked_at: at })
        .where("id", "=", id)
        .where("revoked_at", "is", null)
        .executeTakeFirst();
      return Number(r.numUpdatedRows) === 1;
    });
  }

  saveDrillRun(run: DrillRun): Promise<void> {
    return this.#run("saveDrillRun", async (db) => {
      const row = {
        id: run.id,
        name: run.name,
        scenario: run.scenario,
        started_by: run.startedBy,
        started_at: run.startedAt,
        ended_at: run.endedAt,
        result: run.result,
        grant_id: run.grantId,
        time_to_access_ms: run.timeToAccessMs,
        steps: JSON.stringify(run.steps),
      };
      await db
        .insertInto("drill_runs")
        .values(row)
        .onConflict((oc) => oc.column("id").doUpdateSet(row))
        .execute();
    });
  }

  saveVaultOpening(o: VaultOpening): Promise<void> {
    return this.#run("saveVaultOpening", async (db) => {
      const row = {
        id: o.id,
        envelope_id: o.envelopeId,
        envelope_name: o.envelopeName,
        record_seq: o.recordSeq,
        record_hash: o.recordHash,
        opened_at: o.openedAt,
        custodians: JSON.stringify(o.custodians),
        reason: o.reason,
        incident: o.incident,
        imported_at: o.importedAt,
        review_due_at: o.reviewDueAt,
        review: o.review === null ? null : JSON.stringify(o.review),
        alarm_pending: o.alarmPending ? 1 : 0,
        alarm_delivered_at: o.alarmDeliveredAt,
      };
      await db
        .insertInto("vault_openings")
        .values(row)
        .onConflict((oc) => oc.column("id").doUpdateSet(row))
        .execute();
    });
  }

  saveWebSession(w: WebSession): Promise<void> {
    return this.#run("saveWebSession", async (db) => {
      const row = {
        id: w.id,
        secret_hash: w.secretHash,
        user_name: w.user,
        method: w.method,
        created_at: w.createdAt,
        expires_at: w.expiresAt,
        factor_at: w.factorAt,
        revoked_at: w.revokedAt,
        idp: w.idp,
      };
      // Saved whole from a copy read earlier (a step-up, an IdP refresh): an end recorded
      // meanwhile stays, and the factor time only moves forward.
      await db
        .insertInto("web_sessions")
        .values(row)
        .onConflict((oc) =>
          oc.column("id").doUpdateSet({
            ...row,
            revoked_at: sql`COALESCE(web_sessions.revoked_at, excluded.revoked_at)`,
            factor_at: later("web_sessions", "factor_at"),
          }),
        )
        .execute();
    });
  }

  saveIdentity(i: Identity): Promise<void> {
    return this.#run("saveIdentity", async (db) => {
      const row = {
        user_name: i.user,
        issuer: i.issuer,
        subject: i.subject,
        groups: JSON.stringify(i.groups),
        email: i.email,
        display_name: i.name,
        refreshed_at: i.refreshedAt,
      };
      await db
        .insertInto("identities")
        .values(row)
        .onConflict((oc) => oc.column("user_name").doUpdateSet(row))
        .execute();
    });
  }

  saveFactor(f: LocalFactor): Promise<void> {
    return this.#run("saveFactor", async (db) => {
      const row = {
        id: f.id,
        user_name: f.user,
        kind: f.kind,
        label: f.label,
        secret: f.secret,
        created_at: f.createdAt,
        confirmed_at: f.confirmedAt,
        last_step: f.lastStep,
        used_at: f.usedAt,
        removed_at: f.removedAt,
      };
      // Saved whole from a copy read earlier (a confirmation, a sign-in, a removal): a removal
      // or confirmation recorded meanwhile stays, the secret changes only before confirmation,
      // and the accepted step and the last use only move forward (a replayed code stays refused).
      await db
        .insertInto("local_factors")
        .values(row)
        .onConflict((oc) =>
          oc.column("id").doUpdateSet({
            ...row,
            removed_at: sql`COALESCE(local_factors.removed_at, excluded.removed_at)`,
            confirmed_at: sql`COALESCE(local_factors.confirmed_at, excluded.confirmed_at)`,
            secret: sql`CASE WHEN local_factors.confirmed_at IS NULL THEN excluded.secret ELSE local_factors.secret END`,
            last_step: later("local_factors", "last_step"),
            used_at: later("local_factors", "used_at"),
          }),
        )
        .execute();
    });
  }

  advanceFactorStep(factorId: string, step: number, at: number): Promise<boolean> {
    return this.#run("advanceFactorStep", async (db) => {
      // One conditional update: two requests with the same code cannot both see "unused".
      const r = await db
        .updateTable("local_factors")
        .set({ last_step: step, used_at: at })
        .where("id", "=", factorId)
        .where((eb) => eb.or([eb("last_step", "is", null), eb("last_step", "<", step)]))
        .executeTakeFirst();
      return Number(r.numUpdatedRows) === 1;
    });
  }

  endWebSession(sessionId: string, at: number): Promise<boolean> {
    return this.#run("endWebSession", async (db) => {
      const r = await db
        .updateTable("web_sessions")
        .set({ revoked_at: at })
        .where("id", "=", sessionId)
        .where("revoked_at", "is", null)
        .executeTakeFirst();
      return Number(r.numUpdatedRows) === 1;
    });
  }

  confirmFactor(f: LocalFactor): Promise<boolean> {
    return this.#run("confirmFactor", async (db) => {
      // One conditional update: two confirmations at once cannot both see "unconfirmed".
      const r = await db
        .updateTable("local_factors")
        .set({ secret: f.secret, confirmed_at: f.confirmedAt, last_step: f.lastStep, used_at: f.usedAt })
        .where("id", "=", f.id)
        .where("confirmed_at", "is", null)
        .where("removed_at", "is", null)
        .executeTakeFirst();
      return Number(r.numUpdatedRows) === 1;
    });
  }

  removeFactors(
    user: string,
    which: { readonly kind: FactorKind } | { readonly id: string },
    at: number,
  ): Promise<LocalFactor[]> {
    return this.#run("removeFactors", async (db) => {
      if (this.#dialect === "postgres") {
        // The user's lock in a statement of its own; the next statement sees what the holder
        // before us committed (a concurrent replacement's new codes included).
        await sql`SELECT pg_advisory_xact_lock(${FACTOR_LOCK_CLASS}, hashtext(${user}))`.execute(db);
      }
      const rows = await db
        .updateTable("local_factors")
        .set({ removed_at: at })
        .where("user_name", "=", user)
        .$if("kind" in which, (q) => q.where("kind", "=", (which as { kind: FactorKind }).kind))
        .$if("id" in which, (q) => q.where("id", "=", (which as { id: string }).id))
        .where("removed_at", "is", null)
        .returningAll()
        .execute();
      return rows.map(factorFromRow).sort((a, b) => a.createdAt - b.createdAt || a.id.localeCompare(b.id));
    });
  }

  useRecoveryCode(factorId: string, at: number): Promise<boolean> {
    return this.#run("useRecoveryCode", async (db) => {
      const r = await db
        .updateTable("local_factors")
        .set({ used_at: at })
        .where("id", "=", factorId)
        .where("used_at", "is", null)
        .executeTakeFirst();
      return Number(r.numUpdatedRows) === 1;
    });
  }

  lockThrottle(key: string): Promise<AuthThrottle> {
    return this.#run("lockThrottle", async (db) => {
      // Insert-if-missing first, so a first failure has a row to wait on; then lock and read in
      // statements of their own (see lockGrant).
      await db
        .insertInto("auth_throttle")
        .values({ key, failures: 0, window_start: 0, locked_until: null })
        .onConflict((oc) => oc.column("key").doNothing())
        .execute();
      if (this.#dialect === "postgres") {
        await db.selectFrom("auth_throttle").select("key").where("key", "=", key).forUpdate().execute();
      }
      const row = await db.selectFrom("auth_throttle").selectAll().where("key", "=", key).executeTakeFirstOrThrow();
      return { key: row.key, failures: row.failures, windowStart: row.window_start, lockedUntil: row.locked_until };
    });
  }

  saveThrottle(t: AuthThrottle): Promise<void> {
    return this.#run("saveThrottle", async (db) => {
      const row = { key: t.key, failures: t.failures, window_start: t.windowStart, locked_until: t.lockedUntil };
      await db
        .insertInto("auth_throttle")
        .values(row)
        .onConflict((oc) => oc.column("key").doUpdateSet(row))
        .execute();
    });
  }

  swapState(key: string, value: string, at: number): Promise<string | null> {
    return this.#run("swapState", async (db) => {
      // Insert-if-missing first: a concurrent first start waits for this row instead of both
      // reading "nothing" and both reporting a change.
      await db
        .insertInto("broker_state")
        .values({ key, value: "", updated_at: at })
        .onConflict((oc) => oc.column("key").doNothing())
        .execute();
      const row = await db
        .selectFrom("broker_state")
        .select("value")
        .where("key", "=", key)
        .$if(this.#dialect === "postgres", (q) => q.forUpdate())
        .executeTakeFirstOrThrow();
      await db.updateTable("broker_state").set({ value, updated_at: at }).where("key", "=", key).execute();
      return row.value === "" ? null : row.value;
    });
  }

  insertCheckpoint(checkpoint: Checkpoint): Promise<void> {
    return this.#run("insertCheckpoint", async (db) => {
      await guard(
        () =>
          db
            .insertInto("audit_checkpoints")
            .values({
              seq: checkpoint.seq,
              hash: checkpoint.hash,
              at: checkpoint.at,
              key_id: checkpoint.keyId,
              signature: checkpoint.signature,
            })
            .execute(),
        (kind) =>
          kind === "primary"
            ? new BreakglassError("ERR_CONFLICT", `a checkpoint at seq ${checkpoint.seq} exists`, {
                seq: checkpoint.seq,
              })
            : null,
      );
    });
  }

  /**
   * Approvals are only ever added. Those the grant lists that are not stored are inserted — a
   * plain INSERT, so the database itself refuses a second approval by the same person — and a
   * stored approval is never deleted or rewritten: a grant that does not list every stored
   * approval was read before that approval was given, and saving it would erase a confirmed
   * approval (ERR_CONFLICT).
   */
  async #saveApprovals(db: Db, grant: Grant, inserted: boolean): Promise<void> {
    const stored = inserted
      ? []
      : await db
          .selectFrom("grant_approvals")
          .select(["approver", "at", "comment"])
          .where("grant_id", "=", grant.id)
          .orderBy("position")
          .execute();
    const same = (a: Approval, s: { approver: string; at: number; comment: string | null }) =>
      a.approver === s.approver && a.at === Number(s.at) && a.comment === s.comment;
    const fresh = grant.approvals
      .map((a, position) => ({ grant_id: grant.id, approver: a.approver, position, at: a.at, comment: a.comment }))
      .filter((r) => !stored.some((s) => same(r, s)));
    if (fresh.length > 0) {
      const storedApprovers = new Set(stored.map((s) => s.approver));
      const again = fresh.find((r) => storedApprovers.has(r.approver))?.approver;
      await guard(
        () => db.insertInto("grant_approvals").values(fresh).execute(),
        (kind) =>
          kind === "primary" || kind === "unique"
            ? new BreakglassError(
                "ERR_DUPLICATE_APPROVAL",
                again === undefined
                  ? `grant ${grant.id} lists the same approver twice`
                  : `${again} has already approved grant ${grant.id}`,
                { grantId: grant.id, ...(again === undefined ? {} : { user: again }) },
              )
            : null,
      );
    }
    const missing = stored.filter((s) => !grant.approvals.some((a) => same(a, s)));
    if (missing.length > 0) {
      throw new BreakglassError(
        "ERR_CONFLICT",
        `grant ${grant.id} was read before ${missing.map((m) => m.approver).join(", ")} approved it; reload it and try again`,
        { grantId: grant.id, approvers: missing.map((m) => m.approver) },
      );
    }
  }

  async #run<T>(operation: string, run: (db: Db) => Promise<T>): Promise<T> {
    if (!this.#state.active) {
      throw new BreakglassError("ERR_INTERNAL", `tx.${operation} was called after its transaction ended`, {
        operation,
      });
    }
    if (this.#state.failure !== undefined) {
      throw new BreakglassError(
        "ERR_STORAGE",
        `tx.${operation} was called after an earlier statement failed; the transaction will roll back`,
        { operation },
      );
    }
    try {
      return await run(this.#db);
    } catch (e) {
      const err = isBreakglassError(e) ? e : storageError(operation, e);
      this.#state.failure = err;
      throw err;
    }
  }
}

/**
 * In an upsert's `DO UPDATE SET`: the later of the stored value and the new one (null counts as
 * earliest), so a save from a stale copy cannot move a time or counter back.
 */
function later(table: string, column: string): RawBuilder<number | null> {
  const stored = sql.ref(`${table}.${column}`);
  const incoming = sql.ref(`excluded.${column}`);
  return sql<number | null>`CASE WHEN ${incoming} IS NULL THEN ${stored}
    WHEN ${stored} IS NULL OR ${incoming} > ${stored} THEN ${incoming} ELSE ${stored} END`;
}

// ---------------------------------------------------------------------------------------------
// Rows ↔ domain

/**
 * Many rows' values as one JSON parameter the database unpacks into a relation `v` (one
 * statement, however many rows), and `SET col = v.col` for every column but `id`: for
 * `UPDATE … SET ${set} FROM ${source} WHERE t.id = v.id`.
 */
function bulkValues<R>(
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

/** The delivery state of an alarm (`saveAlarms`), with PostgreSQL types for `jsonb_to_recordset`. */
const ALARM_STATE_COLUMNS: readonly (readonly [keyof Database["alarms"], string])[] = [
  ["id", "text"],
  ["state", "text"],
  ["attempts", "integer"],
  ["last_error", "text"],
  ["next_at", "bigint"],
  ["delivered_at", "bigint"],
];

/** The columns bookkeeping may change (`updateGrants`), with their PostgreSQL types for `jsonb_to_recordset`. */
const BULK_COLUMNS: readonly (readonly [keyof GrantsTable, string])[] = [
  ["id", "text"],
  ["state", "text"],
  ["end_reason", "text"],
  ["approved_at", "bigint"],
  ["activated_at", "bigint"],
  ["ends_at", "bigint"],
  ["ended_at", "bigint"],
  ["lapse_at", "bigint"],
  ["review_due_at", "bigint"],
  ["warn_at", "bigint"],
  ["review_overdue_at", "bigint"],
  ["closed_by", "text"],
  ["close_reason", "text"],
  ["access", "text"],
  ["access_handle", "text"],
  ["access_attempts", "integer"],
  ["access_last_error", "text"],
  ["access_next_at", "bigint"],
  ["activation_failure", "text"],
  ["review", "text"],
  ["version", "integer"],
  ["due_at", "bigint"],
  ["lease_owner", "text"],
];

/** Accesses whose `access_next_at` is a lease held by the broker working on them. */
const LEASED_ACCESS = ["granting", "revoking"] as const;

function grantToRow(grant: Grant, dueAt: number | null, dialect: StoreDialect, owner: string | null): GrantsTable {
  return {
    id: grant.id,
    role_id: grant.roleId,
    domain: grant.domain,
    target: grant.target,
    requester: grant.requester,
    state: grant.state,
    end_reason: grant.endReason,
    justification: grant.justification,
    incident: grant.incident,
    duration_s: grant.durationS,
    emergency: dialect === "sqlite" ? (grant.emergency ? 1 : 0) : grant.emergency,
    via_fallback: dialect === "sqlite" ? (grant.viaFallback ? 1 : 0) : grant.viaFallback === true,
    drill: dialect === "sqlite" ? (grant.drill ? 1 : 0) : grant.drill === true,
    requested_at: grant.requestedAt,
    approved_at: grant.approvedAt,
    activated_at: grant.activatedAt,
    ends_at: grant.endsAt,
    ended_at: grant.endedAt,
    lapse_at: grant.lapseAt,
    review_due_at: grant.reviewDueAt,
    warn_at: grant.warnAt,
    review_overdue_at: grant.reviewOverdueAt,
    closed_by: grant.closedBy,
    close_reason: grant.closeReason,
    access: grant.access,
    access_handle: grant.accessHandle === null ? null : JSON.stringify(grant.accessHandle),
    access_attempts: grant.accessAttempts,
    access_last_error: grant.accessLastError,
    access_next_at: grant.accessNextAt,
    activation_failure: grant.activationFailure === null ? null : JSON.stringify(grant.activationFailure),
    review:
      grant.review === null
        ? null
        : JSON.stringify({
            reviewer: grant.review.reviewer,
            at: grant.review.at,
            outcome: grant.review.outcome,
            notes: grant.review.notes,
          }),
    version: grant.version,
    due_at: dueAt,
    lease_owner: (LEASED_ACCESS as readonly string[]).includes(grant.access) ? owner : null,
  };
}

/**
 * Grants with their approvals in one statement — one snapshot, so a grant is never paired with
 * approvals from another commit — as a JSON array in approval order. Never add a row lock to
 * this statement: a locking read that waits returns the row as committed after the wait with
 * its subqueries from before it (lock in a statement of its own, then read; see lockGrant).
 */
function selectGrants(db: Db, dialect: StoreDialect) {
  const approvals =
    dialect === "postgres"
      ? sql<
          string | null
        >`(SELECT json_agg(json_build_object('approver', a.approver, 'at', a.at, 'comment', a.comment) ORDER BY a.position)::text FROM grant_approvals a WHERE a.grant_id = grants.id)`
      : sql<
          string | null
        >`(SELECT json_group_array(json_object('approver', a.approver, 'at', a.at, 'comment', a.comment) ORDER BY a.position) FROM grant_approvals a WHERE a.grant_id = grants.id)`;
  return db.selectFrom("grants").selectAll("grants").select(approvals.as("approvals"));
}

async function terminalEvents(db: Db, sessionId: string): Promise<TerminalEvent[]> {
  const rows = await db
    .selectFrom("terminal_events")
    .selectAll()
    .where("session_id", "=", sessionId)
    .orderBy("seq")
    .execute();
  return rows.map((r) => ({ seq: r.seq, t: r.t_ms / 1000, kind: r.kind as TerminalEvent["kind"], data: r.data }));
}

/** An audit row as stored: payload and hash, and the index columns kept apart from them. */
function auditRow(r: Selectable<Database["audit_events"]>): StoredAuditEvent {
  const columns = { at: Number(r.at), type: r.type, actor: r.actor, grantId: r.grant_id };
  return storedAuditEvent(Number(r.seq), r.payload, r.hash, columns);
}

/**
 * The audit events of these grants, in seq order, each with the hash of the row before it and the
 * row after it (one lookup by key each), so a reader can check the row against its neighbours.
 */
async function selectGrantAudit(db: Db, grantIds: readonly string[]): Promise<LinkedAuditEvent[]> {
  if (grantIds.length === 0) return [];
  const rows = await db
    .selectFrom("audit_events as e")
    .leftJoin("audit_events as p", (j) => j.on("p.seq", "=", sql<number>`e.seq - 1`))
    .leftJoin("audit_events as n", (j) => j.on("n.seq", "=", sql<number>`e.seq + 1`))
    .selectAll("e")
    .select(["p.hash as prev_hash", "n.payload as next_payload", "n.hash as next_hash"])
    .where("e.grant_id", "in", [...grantIds])
    .orderBy("e.seq")
    .execute();
  return rows.map((r) => ({
    ...auditRow(r),
    prevHash: r.prev_hash,
    next: r.next_payload === null || r.next_hash === null ? null : { payload: r.next_payload, hash: r.next_hash },
  }));
}

/**
 * Events of these types that belong to no grant (tier-2 openings, drills, the alarm outbox's own),
 * linked like {@link selectGrantAudit}. Found through `audit_events_grant_id` (its null entries:
 * the non-grant events only, never the grant events that make up most of the log).
 */
async function selectNonGrantAudit(db: Db, types: readonly string[]): Promise<LinkedAuditEvent[]> {
  if (types.length === 0) return [];
  const rows = await db
    .selectFrom("audit_events as e")
    .leftJoin("audit_events as p", (j) => j.on("p.seq", "=", sql<number>`e.seq - 1`))
    .leftJoin("audit_events as n", (j) => j.on("n.seq", "=", sql<number>`e.seq + 1`))
    .selectAll("e")
    .select(["p.hash as prev_hash", "n.payload as next_payload", "n.hash as next_hash"])
    .where("e.grant_id", "is", null)
    .where("e.type", "in", [...types])
    .orderBy("e.seq")
    .execute();
  return rows.map((r) => ({
    ...auditRow(r),
    prevHash: r.prev_hash,
    next: r.next_payload === null || r.next_hash === null ? null : { payload: r.next_payload, hash: r.next_hash },
  }));
}

function terminalFromRow(r: Selectable<Database["terminal_sessions"]>): TerminalSession {
  return {
    id: r.id,
    grantId: r.grant_id,
    command: r.command,
    width: r.width,
    height: r.height,
    recordInput: r.record_input === true || r.record_input === 1,
    startedAt: r.started_at,
    endedAt: r.ended_at,
    endReason: r.end_reason,
  };
}

function grantFromRow(r: GrantRow): Grant {
  return {
    id: r.id,
    roleId: r.role_id,
    domain: r.domain,
    target: r.target,
    requester: r.requester,
    state: r.state as GrantState,
    endReason: r.end_reason as EndReason | null,
    justification: r.justification,
    incident: r.incident,
    durationS: r.duration_s,
    emergency: r.emergency === true || r.emergency === 1,
    ...(r.via_fallback === true || r.via_fallback === 1 ? { viaFallback: true } : {}),
    ...(r.drill === true || r.drill === 1 ? { drill: true } : {}),
    requestedAt: r.requested_at,
    approvedAt: r.approved_at,
    activatedAt: r.activated_at,
    endsAt: r.ends_at,
    endedAt: r.ended_at,
    lapseAt: r.lapse_at,
    reviewDueAt: r.review_due_at,
    warnAt: r.warn_at,
    reviewOverdueAt: r.review_overdue_at,
    approvals: r.approvals === null ? [] : parseApprovals(r.approvals, r.id),
    closedBy: r.closed_by,
    closeReason: r.close_reason,
    access: r.access as AccessState,
    accessHandle: r.access_handle === null ? null : parseObject(r.access_handle, r.id, "access_handle"),
    accessAttempts: r.access_attempts,
    accessLastError: r.access_last_error,
    accessNextAt: r.access_next_at,
    activationFailure:
      r.activation_failure === null
        ? null
        : (parseObject(r.activation_failure, r.id, "activation_failure") as unknown as ActivationFailure),
    review: r.review === null ? null : (parseObject(r.review, r.id, "review") as unknown as GrantReview),
    version: r.version,
  };
}

function parseApprovals(text: string, grantId: string): Approval[] {
  const list: unknown = JSON.parse(text);
  if (!Array.isArray(list)) throw unreadable(grantId, "approvals");
  return list.map((a: { approver: string; at: number; comment: string | null }) => ({
    approver: a.approver,
    at: a.at,
    comment: a.comment,
  }));
}

function unreadable(grantId: string, column: string): BreakglassError {
  return new BreakglassError("ERR_STORAGE", `stored grant ${grantId} has an unreadable ${column}`, { grantId, column });
}

function parseObject(text: string, grantId: string, column: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    value = undefined;
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw unreadable(grantId, column);
  }
  return value as Record<string, unknown>;
}

function drillRunFromRow(r: Selectable<Database["drill_runs"]>): DrillRun {
  let steps: DrillStep[] = [];
  try {
    const parsed: unknown = JSON.parse(r.steps);
    if (Array.isArray(parsed)) steps = parsed as DrillStep[];
  } catch {
    steps = [];
  }
  return {
    id: r.id,
    name: r.name,
    scenario: r.scenario,
    startedBy: r.started_by,
    startedAt: r.started_at,
    endedAt: r.ended_at,
    result: r.result as DrillRun["result"],
    grantId: r.grant_id,
    timeToAccessMs: r.time_to_access_ms,
    steps,
  };
}

function vaultOpeningFromRow(r: Selectable<Database["vault_openings"]>): VaultOpening {
  return {
    id: r.id,
    envelopeId: r.envelope_id,
    envelopeName: r.envelope_name,
    recordSeq: Number(r.record_seq),
    recordHash: r.record_hash,
    openedAt: Number(r.opened_at),
    custodians: JSON.parse(r.custodians) as VaultOpening["custodians"],
    reason: r.reason,
    incident: r.incident,
    importedAt: Number(r.imported_at),
    reviewDueAt: Number(r.review_due_at),
    review: r.review === null ? null : (JSON.parse(r.review) as VaultOpening["review"]),
    alarmPending: Number(r.alarm_pending) === 1,
    alarmDeliveredAt: r.alarm_delivered_at === null ? null : Number(r.alarm_delivered_at),
  };
}

function webSessionFromRow(r: Selectable<Database["web_sessions"]>): WebSession {
  return {
    id: r.id,
    secretHash: r.secret_hash,
    user: r.user_name,
    method: r.method as LoginMethod,
    createdAt: r.created_at,
    expiresAt: r.expires_at,
    factorAt: r.factor_at,
    revokedAt: r.revoked_at,
    idp: r.idp,
  };
}

function identityFromRow(r: Selectable<Database["identities"]>): Identity {
  let groups: string[] = [];
  try {
    const parsed: unknown = JSON.parse(r.groups);
    if (Array.isArray(parsed)) groups = parsed.filter((g): g is string => typeof g === "string");
  } catch {
    // An unreadable row counts as no groups (fail closed).
  }
  return {
    user: r.user_name,
    issuer: r.issuer,
    subject: r.subject,
    groups,
    email: r.email,
    name: r.display_name,
    refreshedAt: r.refreshed_at,
  };
}

function factorFromRow(r: Selectable<Database["local_factors"]>): LocalFactor {
  return {
    id: r.id,
    user: r.user_name,
    kind: r.kind as FactorKind,
    label: r.label,
    secret: r.secret,
    createdAt: r.created_at,
    confirmedAt: r.confirmed_at,
    lastStep: r.last_step,
    usedAt: r.used_at,
    removedAt: r.removed_at,
  };
}

function tokenFromRow(r: Selectable<TokensTable>): TokenRecord {
  return {
    id: r.id,
    user: r.user_name,
    secretHash: r.secret_hash,
    createdAt: r.created_at,
    expiresAt: r.expires_at,
    revokedAt: r.revoked_at,
    description: r.description,
    scopes: parseScopes(r.scopes),
  };
}

function parseScopes(text: string): string[] {
  try {
    const v: unknown = JSON.parse(text);
    return Array.isArray(v) ? v.filter((x): x is string => typeof x === "string") : [];
  } catch {
    return []; // unreadable: no scope at all (fail closed)
  }
}

// ---------------------------------------------------------------------------------------------
// Errors

type ViolationKind = "primary" | "unique";

/** Run a write; a constraint violation becomes the domain error `map` gives for it, if any. */
async function guard<T>(write: () => Promise<T>, map: (kind: ViolationKind) => BreakglassError | null): Promise<T> {
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

function conflict(grant: Grant, storedVersion: number | null): BreakglassError {
  return new BreakglassError(
    "ERR_CONFLICT",
    `grant ${grant.id} was changed by another writer; reload it and try again`,
    { grantId: grant.id, expectedVersion: grant.version - 1, storedVersion },
  );
}

function openGrantExists(grant: Grant): BreakglassError {
  return new BreakglassError(
    "ERR_OPEN_GRANT_EXISTS",
    `${grant.requester} already has an open grant for ${grant.roleId}; release or cancel it first`,
    { grantId: grant.id, roleId: grant.roleId },
  );
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

async function rollbackQuietly(conn: Db): Promise<void> {
  try {
    await sql.raw("ROLLBACK").execute(conn);
  } catch {
    // The connection is already gone, and with it the transaction.
  }
}

function alarmToRow(a: AlarmRecord): Database["alarms"] {
  return {
    id: a.id,
    channel: a.channel,
    event_seq: a.eventSeq,
    event_type: a.eventType,
    grant_id: a.grantId,
    payload: a.payload,
    state: a.state,
    attempts: a.attempts,
    last_error: a.lastError,
    created_at: a.createdAt,
    next_at: a.nextAt,
    delivered_at: a.deliveredAt,
    lease_owner: null,
  };
}

function alarmFromRow(r: Database["alarms"]): AlarmRecord {
  return {
    id: r.id,
    channel: r.channel,
    eventSeq: Number(r.event_seq),
    eventType: r.event_type,
    grantId: r.grant_id,
    payload: r.payload,
    state: r.state as AlarmState,
    attempts: r.attempts,
    lastError: r.last_error,
    createdAt: Number(r.created_at),
    nextAt: Number(r.next_at),
    deliveredAt: r.delivered_at === null ? null : Number(r.delivered_at),
  };
}
