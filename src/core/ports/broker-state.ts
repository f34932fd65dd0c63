/** The broker's own bookkeeping: named state, leases held by processes, counts for monitoring. */

/** Named state (e.g. the configuration's fingerprint), inside a transaction. */
export interface StateWrites {
  /**
   * Set the broker's named state `key` and return what it was (null the first time). The row
   * stays locked until the transaction ends, so replicas starting together see each other's value
   * rather than the same old one.
   */
  swapState(key: string, value: string, at: number): Promise<string | null>;
}

/** Named state, outside a transaction. */
export interface StateReads {
  /** The broker's named state `key` (see StateWrites.swapState); null when unset. */
  readState(key: string): Promise<string | null>;
  /** Every named state whose key starts with `prefix`, by key, values as stored (`""` included). */
  listState(prefix: string): Promise<{ readonly key: string; readonly value: string }[]>;
}

/** Leases held by broker processes (activation, revocation, alarm delivery). */
export interface Leases {
  /**
   * Activation, revocation and alarm delivery leases held by broker processes that are gone
   * (killed, crashed) become due now, so the work they held is taken over at once rather than
   * when the lease runs out. A process is gone when it no longer holds its liveness lock
   * (PostgreSQL: a session advisory lock, released by the server when the connection drops); on
   * SQLite, where one broker runs per file, every lease not this process's is from a previous
   * process.
   * @returns how many leases were taken over
   */
  reclaimLeases(now: number): Promise<number>;
}

/** Counts for monitoring (the metrics endpoint). */
export interface StoreStats {
  /** Active grants by role, alarms by channel and state, failing revocations. */
  stats(): Promise<{
    activeByRole: { role: string; count: number }[];
    alarms: { channel: string; state: string; count: number }[];
    revocationsFailing: number;
  }>;
}
