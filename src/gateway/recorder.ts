/**
 * The gateway's statement recorder: statements are queued in memory and written in batches
 * (every `flushMs`, or at once when `batchSize` are waiting), so recording never waits on the
 * data path. When a write fails the batch is kept and retried, and the recorder reports itself
 * `failing`: the gateway then refuses new statements and new sessions rather than run unrecorded
 * ones (fail closed), until a write succeeds again.
 *
 * What a crash of the broker process can lose is what was queued and not yet written: at most
 * `flushMs` of statements (documented in docs/gateway.md).
 */

import type { GatewayWrites } from "../core/ports/recordings.js";
import type { Transactions } from "../core/ports/transactions.js";
import type { StatementRecord } from "../core/records.js";

export interface Recorder {
  record(statement: StatementRecord): void;
  /** True while the last write failed (and nothing has been written since). */
  readonly failing: boolean;
  /** Write everything queued now. @throws the store's error when the write fails */
  flush(): Promise<void>;
  close(): Promise<void>;
}

export function createRecorder(deps: {
  readonly store: Transactions<Pick<GatewayWrites, "insertStatements">>;
  readonly flushMs: number;
  readonly batchSize: number;
  readonly log: (msg: string, fields?: Record<string, unknown>) => void;
}): Recorder {
  let queue: StatementRecord[] = [];
  let failing = false;
  let writing: Promise<void> | null = null;
  let timer: NodeJS.Timeout | null = null;
  let closed = false;

  const write = (): Promise<void> => {
    if (writing) return writing;
    if (queue.length === 0) return Promise.resolve();
    const batch = queue;
    queue = [];
    writing = deps.store
      .transaction((tx) => tx.insertStatements(batch))
      .then(
        () => {
          if (failing) deps.log("recording storage is back");
          failing = false;
        },
        (e: unknown) => {
          // Keep the batch, in order, ahead of what came meanwhile.
          queue = [...batch, ...queue];
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
          if (queue.length > 0) schedule();
        });
    }, deps.flushMs);
    timer.unref();
  };

  return {
    record(statement) {
      queue.push(statement);
      if (queue.length >= deps.batchSize) void write().catch(() => {});
      schedule();
    },
    get failing() {
      return failing;
    },
    async flush() {
      await writing?.catch(() => {});
      await write();
    },
    async close() {
      closed = true;
      if (timer) clearTimeout(timer);
      timer = null;
      await writing?.catch(() => {});
      await write().catch((e: unknown) =>
        deps.log("recording lost at shutdown", { error: String(e), statements: queue.length }),
      );
    },
  };
}
