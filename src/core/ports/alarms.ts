/** The alarm outbox: alarms queued with the audit events that caused them, delivered after commit. */
import type { AlarmRecord } from "../records.js";

/** Queueing and delivering alarms, inside a transaction. */
export interface AlarmWrites {
  /** Queue alarms (the outbox): they commit with the events that caused them, or not at all. */
  insertAlarms(alarms: readonly AlarmRecord[]): Promise<void>;
  /**
   * Queued alarms whose `nextAt` has passed, oldest first, locked for this transaction and skipped
   * by other replicas' claims; the caller leases them (`leaseAlarms`) before delivering.
   */
  claimAlarms(now: number, limit: number, excludeChannels?: readonly string[]): Promise<AlarmRecord[]>;
  /**
   * Hold claimed alarms for this broker process until `until` (the delivery lease): others' claims
   * skip them until then, or until this process is gone (`Leases.reclaimLeases`).
   */
  leaseAlarms(ids: readonly string[], until: number): Promise<void>;
  /**
   * Record delivery results (delivered, a retry, failed) in one statement, and release the lease;
   * the rest of each row stays. Only for alarms this process still leases: a result for one taken
   * over by another process since, or already settled, is not recorded.
   * @returns how many results were recorded
   */
  saveAlarms(alarms: readonly AlarmRecord[]): Promise<number>;
}

/** Reading alarms, outside a transaction. */
export interface AlarmReads {
  /** Alarms caused by a grant's events, oldest first. */
  listAlarms(grantId: string): Promise<AlarmRecord[]>;
  /** Every alarm, a page at a time by id (after `afterId`; null: from the first). */
  readAlarms(afterId: string | null, limit: number): Promise<AlarmRecord[]>;
  /** The alarms of these grants raised by events of these types, in one read (lists of grants). */
  listAlarmsOfGrants(grantIds: readonly string[], eventTypes: readonly string[]): Promise<AlarmRecord[]>;
}
