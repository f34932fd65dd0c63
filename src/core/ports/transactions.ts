/**
 * How the narrow store ports are used together: one database transaction whose handle offers the
 * write ports a caller asks for (`Transactions<GrantWrites & AuditWrites>`), and nothing else.
 */

/**
 * What every transaction handle has. Rules every implementation keeps: a failed call poisons the
 * transaction (it rolls back even if the caller caught the error); the handle is dead once the
 * transaction ends; and the store's reads (outside a transaction) must not be called from inside
 * `transaction()` (they are refused with ERR_INTERNAL).
 */
export interface TxScope {
  /** Call `fn` once this transaction has committed (never if it rolls back); the same `fn` once. */
  afterCommit(fn: () => void): void;
}

/** Runs work in one database transaction: every write commits together or not at all. */
export interface Transactions<Tx> {
  /**
   * Run `fn` in one transaction; rolls back if it throws (and rethrows).
   * @throws ERR_STORAGE when the database fails.
   */
  transaction<T>(fn: (tx: TxScope & Tx) => Promise<T>): Promise<T>;
}
