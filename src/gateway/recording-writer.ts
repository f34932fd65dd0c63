/**
 * Where the recorder's batches are written (its `write`, recorder.ts): through the store on this
 * thread, or by the recording thread (recording-thread.ts), each write a message to it, resolved
 * when the thread has committed the batches (or rejected with its error). The thread is started
 * with the first write; if it dies, the writes it held fail — the recorder keeps their batches
 * and fails closed — and the next write starts a new one. ADR 0010 says why the recording is
 * written off the relay's thread.
 */
import { Worker } from "node:worker_threads";
import { sha256 } from "../adapters/node-crypto.js";
import type { Store } from "../core/ports/store.js";
import { type GatheredBatch, sealBatches } from "../core/statement-batch.js";
import type { RecordingWrite } from "./recorder.js";

/** What the thread opens: the broker's store, by its driver. */
export type RecordingThreadInput =
  | { readonly driver: "sqlite"; readonly path: string }
  | { readonly driver: "postgres"; readonly url: string };

export type ToRecordingThread =
  | {
      readonly type: "write";
      readonly id: number;
      readonly batches: readonly GatheredBatch[];
      readonly before: Readonly<Record<string, string>>;
    }
  | { readonly type: "close" };

export type FromRecordingThread =
  | { readonly id: number; readonly error: null; readonly digests: Readonly<Record<string, string>> }
  /** Why the write failed: nothing of it was stored. */
  | { readonly id: number; readonly error: string };

/** The recorder's writes on this thread, through the store. */
export function storeWrite(store: Pick<Store, "transaction">): RecordingWrite {
  return async (gathered, before) => {
    const { batches, digests } = sealBatches(sha256, gathered, before);
    await store.transaction((tx) => tx.insertStatementBatches(batches));
    return digests;
  };
}

export interface RecordingThread {
  /** The recorder's writes, by the thread. @throws Error with the thread's reason when they were not stored */
  readonly write: RecordingWrite;
  /** Let the thread finish the writes it has, close its store, and end. */
  close(): Promise<void>;
}

export function createRecordingThread(input: RecordingThreadInput): RecordingThread {
  let worker: Worker | null = null;
  let nextId = 1;
  const waiting = new Map<
    number,
    { resolve: (digests: Readonly<Record<string, string>>) => void; reject: (e: Error) => void }
  >();

  const failAll = (why: string) => {
    for (const w of waiting.values()) w.reject(new Error(`the recording thread ended: ${why}`));
    waiting.clear();
  };
  const start = (): Worker => {
    const w = new Worker(new URL("./recording-thread.js", import.meta.url), { workerData: input });
    // An idle thread does not keep the process alive; one with writes to finish does (a write
    // at shutdown is the session's last statements).
    w.unref();
    w.on("message", (m: FromRecordingThread) => {
      const pending = waiting.get(m.id);
      waiting.delete(m.id);
      if (waiting.size === 0) w.unref();
      if (m.error === null) pending?.resolve(m.digests);
      else pending?.reject(new Error(m.error));
    });
    w.on("error", (e) => {
      if (worker === w) worker = null;
      failAll(e.message);
    });
    w.on("exit", (code) => {
      if (worker === w) worker = null;
      failAll(`it exited (${code})`);
    });
    return w;
  };

  return {
    write(batches, before) {
      worker ??= start();
      const id = nextId++;
      const done = new Promise<Readonly<Record<string, string>>>((resolve, reject) =>
        waiting.set(id, { resolve, reject }),
      );
      const message: ToRecordingThread = { type: "write", id, batches, before };
      worker.ref();
      worker.postMessage(message);
      return done;
    },
    async close() {
      const w = worker;
      worker = null;
      if (!w) return;
      const exited = new Promise<void>((resolve) => w.once("exit", () => resolve()));
      const message: ToRecordingThread = { type: "close" };
      w.ref();
      w.postMessage(message);
      await exited;
    },
  };
}
