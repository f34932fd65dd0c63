/**
 * The gateway's statement recorder: each session's statements are gathered in memory as the
 * JSON entries its seal hashes, and written as batches — one row per session per write
 * (core/statement-batch.ts) — every `flushMs`, or at once when `batchSize` statements are
 * waiting, so recording never waits on the data path. Where a write runs is the caller's
 * choice (`write`: the broker's recording thread, or the store on this thread; ADR 0010); the
 * writer also folds each session's seal digest over the entries it stores, and `seal` hands it
 * to the session's end.
 *
 * When a write fails its batches are kept, ahead of what came meanwhile, and retried; the
 * recorder reports itself `failing`, and the gateway then refuses new statements and new
 * sessions rather than run unrecorded ones (fail closed), until a write succeeds again.
 *
 * What a crash of the broker process can lose is what was gathered and not yet written: at most
 * `flushMs` of statements, and the write in flight (documented in docs/gateway.md).
 */

import { EMPTY_RECORDING_DIGEST } from "../core/recording-digest.js";
import type { StatementRecord } from "../core/records.js";
import type { GatheredBatch } from "../core/statement-batch.js";

export interface Recorder {
  /** A finished statement, with its digest entry (core/recording-digest.ts `statementEntry`). */
  record(statement: StatementRecord, entry: string): void;
  /** True while the last write failed (and nothing has been written since). */
  readonly failing: boolean;
  /** Write everything gathered now. @throws the write's error when it fails */
  flush(): Promise<void>;
  /**
   * A session that ended: write everything gathered, then its seal — the digest of every
   * statement of it stored, in order (core/recording-digest.ts), and how many — and forget it.
   * @throws the write's error when it fails (call again: nothing is forgotten until it succeeds)
   */
  seal(sessionId: string): Promise<{ readonly digest: string; readonly statements: number }>;
  close(): Promise<void>;
}

/** Statements of one session gathered since its last batch. */
interface Open {
  readonly grantId: string;
  readonly sessionId: string;
  readonly firstSeq: number;
  lastSeq: number;
  readonly startedAt: number;
  readonly entries: string[];
}

/**
 * Store gathered batches durably, folding each session's digest from `before` over their entries
 * (core/statement-batch.ts `sealBatches`); resolves to each session's digest after them.
 * @throws when they could not be stored (nothing of them is, or all)
 */
export type RecordingWrite = (
  batches: readonly GatheredBatch[],
  before: Readonly<Record<string, string>>,
) => Promise<Readonly<Record<string, string>>>;

export function createRecorder(deps: {
  readonly write: RecordingWrite;
  /** Called once the last write at `close` is done (the recording thread ends). */
  readonly closeWriter?: () => Promise<void>;
  readonly flushMs: number;
  readonly batchSize: number;
  readonly log: (msg: string, fields?: Record<string, unknown>) => void;
}): Recorder {
  let open = new Map<string, Open>();
  let gathered = 0;
  /** Batches made and not yet stored (a failed write's first), in order per session. */
  let queue: GatheredBatch[] = [];
  /** Per session: the digest over its statements stored so far, and how many there are. */
  const stored = new Map<string, { digest: string; statements: number }>();
  let failing = false;
  let writing: Promise<void> | null = null;
  let timer: NodeJS.Timeout | null = null;
  let closed = false;

  /** Every session's gathered statements become a batch at the end of the queue. */
  const seal = () => {
    if (gathered === 0) return;
    for (const o of open.values()) {
      queue.push({
        grantId: o.grantId,
        sessionId: o.sessionId,
        firstSeq: o.firstSeq,
        lastSeq: o.lastSeq,
        startedAt: o.startedAt,
        count: o.entries.length,
        lines: o.entries.join("\n"),
      });
    }
    open = new Map();
    gathered = 0;
  };

  const write = (): Promise<void> => {
    if (writing) return writing;
    seal();
    if (queue.length === 0) return Promise.resolve();
    const batches = queue;
    queue = [];
    const before: Record<string, string> = {};
    for (const b of batches) before[b.sessionId] = stored.get(b.sessionId)?.digest ?? EMPTY_RECORDING_DIGEST;
    writing = deps
      .write(batches, before)
      .then(
        (after) => {
          for (const b of batches) {
            const s = stored.get(b.sessionId);
            const digest = after[b.sessionId] ?? EMPTY_RECORDING_DIGEST;
            const n = b.count;
            if (s === undefined) stored.set(b.sessionId, { digest, statements: n });
            else {
              s.digest = digest;
              s.statements += n;
            }
          }
          if (failing) deps.log("recording storage is back");
          failing = false;
        },
        (e: unknown) => {
          // Keep the batches, in order, ahead of what came meanwhile.
          queue = [...batches, ...queue];
          if (!failing) deps.log("recording storage failed; the gateway refuses new statements", { error: String(e) });
          failing = true;
          throw e;
        },
      )
      .finally(() => {
        writing = null;
      });
    return writing;
  };

  const schedule = () => {
    if (timer || closed) return;
    timer = setTimeout(() => {
      timer = null;
      write()
        .catch(() => {})
        .finally(() => {
          if (queue.length > 0 || gathered > 0) schedule();
        });
    }, deps.flushMs);
    timer.unref();
  };

  return {
    record(statement, entry) {
      const o = open.get(statement.sessionId);
      if (o === undefined) {
        open.set(statement.sessionId, {
          grantId: statement.grantId,
          sessionId: statement.sessionId,
          firstSeq: statement.seq,
          lastSeq: statement.seq,
          startedAt: statement.startedAt,
          entries: [entry],
        });
      } else {
        o.lastSeq = statement.seq;
        o.entries.push(entry);
      }
      gathered += 1;
      if (gathered >= deps.batchSize) void write().catch(() => {});
      schedule();
    },
    get failing() {
      return failing;
    },
    async flush() {
      await writing?.catch(() => {});
      await write();
    },
    async seal(sessionId) {
      await writing?.catch(() => {});
      await write();
      const s = stored.get(sessionId);
      stored.delete(sessionId);
      return s ?? { digest: EMPTY_RECORDING_DIGEST, statements: 0 };
    },
    async close() {
      closed = true;
      if (timer) clearTimeout(timer);
      timer = null;
      await writing?.catch(() => {});
      await write().catch((e: unknown) =>
        deps.log("recording lost at shutdown", {
          error: String(e),
          batches: queue.length,
        }),
      );
      await deps.closeWriter?.();
    },
  };
}
