/**
 * The one implementation of {@link Store} / {@link StoreTx}, over Kysely: one adapter per port
 * concern in `kysely/` (grants, audit, alarms, auth, recordings, evidence, broker state), composed
 * here over the shared transaction and error plumbing of `kysely/plumbing.ts` (where the SQLite and
 * PostgreSQL differences and the transaction rules are written down).
 */
import type { Kysely } from "kysely";
import type { Store, StoreTx } from "../core/ports/store.js";
import { alarmReads, alarmWrites } from "./kysely/alarms.js";
import { auditReads, auditWrites } from "./kysely/audit.js";
import {
  factorReads,
  factorWrites,
  sessionReads,
  sessionWrites,
  throttleReads,
  throttleWrites,
  tokenReads,
  tokenWrites,
} from "./kysely/auth.js";
import { type Liveness, leases, stateReads, stateWrites, storeStats } from "./kysely/broker-state.js";
import { evidenceReads, evidenceWrites } from "./kysely/evidence.js";
import { credentialReads, credentialWrites, grantReads, grantWrites } from "./kysely/grants.js";
import { type StoreDialect, storeDatabase, type TxStoreScope } from "./kysely/plumbing.js";
import { gatewayReads, gatewayWrites, terminalReads, terminalWrites } from "./kysely/recordings.js";
import type { Database } from "./schema.js";

export { LEASE_LOCK_CLASS } from "./kysely/broker-state.js";
export { type StoreDialect, storageError } from "./kysely/plumbing.js";

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
  /** For `reclaimLeases`: how a lease's owner is known to be alive (see {@link Liveness}). */
  readonly liveness?: Liveness;
}

export function createKyselyStore(options: KyselyStoreOptions): Store {
  const database = storeDatabase(options.db, options.dialect, options.owner ?? null);
  const close = options.close ?? (() => options.db.destroy());
  const reads = database.reads;
  let closed = false;
  return {
    transaction: <T>(fn: (tx: StoreTx) => Promise<T>): Promise<T> =>
      database.transaction((scope) => fn(storeTx(scope))),
    ...grantReads(reads),
    ...credentialReads(reads),
    ...auditReads(reads),
    ...alarmReads(reads),
    ...tokenReads(reads),
    ...sessionReads(reads),
    ...factorReads(reads),
    ...throttleReads(reads),
    ...gatewayReads(reads),
    ...terminalReads(reads),
    ...evidenceReads(reads),
    ...stateReads(reads),
    ...leases(reads, options.liveness ?? "self"),
    ...storeStats(reads),
    async close() {
      if (closed) return;
      closed = true;
      await close();
    },
  };
}

/** One transaction's handle: every write port over its connection. */
function storeTx(scope: TxStoreScope): StoreTx {
  return {
    afterCommit: (fn) => scope.afterCommit(fn),
    ...grantWrites(scope),
    ...credentialWrites(scope),
    ...auditWrites(scope),
    ...alarmWrites(scope),
    ...tokenWrites(scope),
    ...sessionWrites(scope),
    ...factorWrites(scope),
    ...throttleWrites(scope),
    ...gatewayWrites(scope),
    ...terminalWrites(scope),
    ...evidenceWrites(scope),
    ...stateWrites(scope),
  };
}
