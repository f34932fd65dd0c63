/**
 * The recording thread: writes the gateway recorder's batches with a store connection of its
 * own, so that neither the insert, its commit's fsync nor the seal digest's hashing runs on the
 * thread that relays sessions (ADR 0010). The composition root of this thread: it opens the store
 * it was given, answers every `write` in the order they came (the batches stored, each session's
 * digest folded over them), and closes the store when asked. Nothing else runs here.
 */
import { parentPort, workerData } from "node:worker_threads";
import { sha256 } from "../adapters/node-crypto.js";
import type { Store } from "../core/ports/store.js";
import { sealBatches } from "../core/statement-batch.js";
import { createPostgresStore } from "../store/postgres-store.js";
import { createSqliteStore } from "../store/sqlite-store.js";
import type { FromRecordingThread, RecordingThreadInput, ToRecordingThread } from "./recording-writer.js";

if (!parentPort) throw new Error("recording-thread.js runs as a worker thread of the broker");
const port = parentPort;
const input = workerData as RecordingThreadInput;
const post = (m: FromRecordingThread) => port.postMessage(m);

/** How long a write waits for SQLite's write lock held by another connection of the broker. */
const BUSY_PATIENCE_MS = 60_000;

const opened: Promise<Store> =
  input.driver === "sqlite"
    ? createSqliteStore({ path: input.path, migrate: false })
    : createPostgresStore({ url: input.url, poolSize: 1, migrate: false });
// An opening failure is each write's error (the recorder fails closed, and tries again).
opened.catch(() => {});

const busy = (e: unknown): boolean =>
  (e as { cause?: { code?: unknown } } | null)?.cause?.code === "SQLITE_BUSY" ||
  (e as { code?: unknown } | null)?.code === "SQLITE_BUSY";

let chain: Promise<void> = Promise.resolve();
port.on("message", (m: ToRecordingThread) => {
  if (m.type === "close") {
    chain = chain.then(async () => {
      await (await opened.catch(() => null))?.close();
      port.close();
    });
    return;
  }
  chain = chain.then(async () => {
    try {
      const store = await opened;
      const { batches, digests } = sealBatches(sha256, m.batches, m.before);
      // Another connection of this broker (the request thread, the background thread) may hold
      // SQLite's write lock for a while: that is waiting, not storage failing.
      for (const start = Date.now(); ; ) {
        try {
          await store.transaction((tx) => tx.insertStatementBatches(batches));
          break;
        } catch (e) {
          if (!busy(e) || Date.now() - start > BUSY_PATIENCE_MS) throw e;
        }
      }
      post({ id: m.id, error: null, digests });
    } catch (e) {
      post({ id: m.id, error: e instanceof Error ? e.message : String(e) });
    }
  });
});
