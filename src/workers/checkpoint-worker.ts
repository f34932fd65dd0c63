/**
 * Signs checkpoints: "the chain had head `hash` at `seq`", Ed25519-signed. A checkpoint pins
 * everything up to it, so a rewritten chain or a truncated tail no longer verifies. Events after
 * the last checkpoint are only chained, not pinned; signing often keeps that window short.
 *
 * A checkpoint is due when the head has moved past the last one and either `everyEvents` events
 * arrived since, or `intervalMs` passed since it was signed (or there is none yet).
 */

import type { SigningKey } from "../audit/signing-key.js";
import { checkpointMessage } from "../core/audit-chain.js";
import { BreakglassError } from "../core/errors.js";
import type { AlarmWrites } from "../core/ports/alarms.js";
import type { AuditReads, AuditWrites } from "../core/ports/audit.js";
import type { Clock } from "../core/ports/runtime.js";
import type { Transactions } from "../core/ports/transactions.js";
import type { Checkpoint } from "../core/records.js";
import { createLoop } from "./loop.js";

export interface CheckpointWorker {
  /**
   * Sign and store a checkpoint of the current head if one is due.
   * @returns the new checkpoint, or null when none was due (or another replica just signed it).
   * @throws whatever the store throws (ERR_STORAGE) — only `start()`'s timer swallows errors.
   */
  runOnce(): Promise<Checkpoint | null>;
  /** Sign the current head now if it is not checkpointed yet (graceful shutdown). */
  checkpointNow(): Promise<Checkpoint | null>;
  /** Run every `pollMs` until {@link CheckpointWorker.stop}; runs never overlap; errors are logged. */
  start(): void;
  /** Stop the timer and wait for a run in progress. */
  stop(): Promise<void>;
}

/** A checkpoint's transaction: the chain's head, the checkpoint, and the alarms it raises. */
export type CheckpointTx = Pick<AuditWrites, "lockAuditHead" | "insertCheckpoint"> & Pick<AlarmWrites, "insertAlarms">;

export interface CheckpointWorkerDeps {
  readonly store: Transactions<CheckpointTx> & Pick<AuditReads, "readCheckpoints">;
  readonly signer: Pick<SigningKey, "keyId" | "sign">;
  readonly clock: Clock;
  /** Sign at least this often while events arrive (ms). */
  readonly intervalMs: number;
  /** …or once this many events arrived since the last checkpoint. */
  readonly everyEvents: number;
  /** How often the timer looks (default: the smaller of `intervalMs` and 5 s). */
  readonly pollMs?: number;
  readonly log?: (message: string, fields?: Record<string, unknown>) => void;
  /** Runs inside the checkpoint's transaction (the alarm outbox: checkpoints as external anchors). */
  readonly onCheckpoint?: (tx: CheckpointTx, checkpoint: Checkpoint) => Promise<void>;
}

export function createCheckpointWorker(deps: CheckpointWorkerDeps): CheckpointWorker {
  const { store, signer, clock, intervalMs, everyEvents } = deps;
  const pollMs = deps.pollMs ?? Math.min(intervalMs, 5_000);
  const log = deps.log ?? ((message, fields) => console.error(message, fields));

  // The latest checkpoint known to this process; undefined until first read. It can only lag
  // behind the store (another replica signed since), which makes us sign early, never late.
  let last: Checkpoint | null | undefined;
  let queue: Promise<unknown> = Promise.resolve();

  async function latestStored(): Promise<Checkpoint | null> {
    let latest: Checkpoint | null = null;
    for (const cp of await store.readCheckpoints()) if (!latest || cp.seq > latest.seq) latest = cp;
    return latest;
  }

  async function attempt(force: boolean): Promise<Checkpoint | null> {
    // Read before the transaction: on a single-connection SQLite store a read from inside
    // `transaction` would wait for the transaction itself.
    if (last === undefined) last = await latestStored();
    const known = last;
    try {
      const made = await store.transaction(async (tx) => {
        const head = await tx.lockAuditHead();
        const lastSeq = known?.seq ?? 0;
        if (head.seq <= lastSeq) return null;
        const at = clock.now();
        const due = force || known === null || head.seq - lastSeq >= everyEvents || at - known.at >= intervalMs;
        if (!due) return null;
        const unsigned = { seq: head.seq, hash: head.hash, at, keyId: signer.keyId };
        const checkpoint: Checkpoint = { ...unsigned, signature: signer.sign(checkpointMessage(unsigned)) };
        await tx.insertCheckpoint(checkpoint);
        await deps.onCheckpoint?.(tx, checkpoint);
        return checkpoint;
      });
      if (made) last = made;
      return made;
    } catch (e) {
      // Another replica may have signed this very head first (unique seq): that is success.
      last = await latestStored().catch(() => undefined);
      if (last && (!known || last.seq > known.seq)) return null;
      if (e instanceof BreakglassError) throw e;
      const error = new BreakglassError("ERR_STORAGE", "signing an audit checkpoint failed");
      error.cause = e;
      throw error;
    }
  }

  /** Runs never overlap, whoever asks (timer, shutdown, tests). */
  function exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const result = queue.then(fn, fn);
    queue = result.catch(() => undefined);
    return result;
  }

  const loop = createLoop({
    name: "audit checkpoint",
    run: () => exclusive(() => attempt(false)),
    intervalMs: pollMs,
    log,
  });

  return {
    runOnce: () => exclusive(() => attempt(false)),
    checkpointNow: () => exclusive(() => attempt(true)),
    start: loop.start,
    stop: loop.stop,
  };
}
