/** The store's audit chain and its signed checkpoints. */
import type { LinkedAuditEvent, SealedAuditEvent, StoredAuditEvent } from "../audit-event.js";
import type { AuditHead, Checkpoint } from "../records.js";

/** Appending to the chain, inside a transaction (src/audit/audit-journal.ts is its one writer). */
export interface AuditWrites {
  /** The chain's head, locked so appends are serialised across replicas. seq 0 when empty. */
  lockAuditHead(): Promise<AuditHead>;
  /** @throws ERR_AUDIT_WRITE_FAILED — the caller's transaction must then roll back. */
  insertAuditEvents(events: readonly SealedAuditEvent[]): Promise<void>;
  /**
   * The events of these grants, in seq order, as committed now: after `lockGrant`, everything
   * recorded by the writers that held the grant before (an acknowledgement, an escalation).
   */
  readGrantAudit(grantIds: readonly string[]): Promise<SealedAuditEvent[]>;
  insertCheckpoint(checkpoint: Checkpoint): Promise<void>;
}

/** Reading the chain, outside a transaction. */
export interface AuditReads {
  /**
   * The events of these grants (found by the `grant_id` index), in seq order, each with its
   * neighbours' hashes so the reader can check it (see core/audit-record.ts).
   */
  readGrantAudit(grantIds: readonly string[]): Promise<LinkedAuditEvent[]>;
  /**
   * Rows with seq ≥ `fromSeq`, in seq order, at most `limit`, exactly as stored (verification must
   * see tampering, so nothing is checked or repaired here).
   */
  readAudit(fromSeq: number, limit: number): Promise<StoredAuditEvent[]>;
  /** Stored events at these seqs (those that exist), in seq order. */
  readAuditAt(seqs: readonly number[]): Promise<StoredAuditEvent[]>;
  /**
   * Events of these types that belong to no grant (`grant_id` null: tier-2 openings, drills, the
   * alarm outbox's), in seq order, each with its neighbours' hashes like `readGrantAudit`.
   */
  readNonGrantAudit(types: readonly string[]): Promise<LinkedAuditEvent[]>;
  readCheckpoints(): Promise<Checkpoint[]>;
}
