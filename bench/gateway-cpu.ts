/**
 * The gateway's own CPU per transaction, without sockets, PostgreSQL or pgbench: a session's
 * relay (src/gateway/session.ts) between two in-memory streams, fed pgbench's `-S` transaction
 * (simple protocol: a Query; RowDescription, DataRow, CommandComplete, ReadyForQuery back) as
 * at 20,000 a second, beside `pipe()` between the same streams — the bare relay's JavaScript.
 * The kernel's part (a read and a write each way, the same for every relay) is left out, so what
 * is measured is what the gateway adds, steadily enough to compare on a loaded machine: process
 * CPU time (every thread — a recording thread's too) per transaction.
 *
 *   node dist-bench/bench/gateway-cpu.js [transactions] [write]
 *
 * `write`: where the recorder's batches go — `thread` (a recording thread with its own SQLite
 * connection, as `breakglass server` runs), `store` (the SQLite store on the relay's thread), or
 * `none` (discarded: the relay alone, no digest).
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Duplex } from "node:stream";
import { message } from "../src/gateway/pg-wire.js";
import { createRecorder, type RecordingWrite } from "../src/gateway/recorder.js";
import { createRecordingThread, storeWrite } from "../src/gateway/recording-writer.js";
import { Session } from "../src/gateway/session.js";
import { createSqliteStore } from "../src/store/sqlite-store.js";

/** A stream whose writes go nowhere and whose reads are what the test emits. */
class Sink extends Duplex {
  override _read(): void {}
  override _write(_chunk: Buffer, _enc: BufferEncoding, done: (e?: Error | null) => void): void {
    done();
  }
  override _writev(_chunks: unknown, done: (e?: Error | null) => void): void {
    done();
  }
}

const dataRow = (v: string) => {
  const body = Buffer.alloc(6 + v.length);
  body.writeInt16BE(1, 0);
  body.writeInt32BE(v.length, 2);
  body.write(v, 6, "latin1");
  return message("D", body);
};
const query = (aid: number) => message("Q", Buffer.from(`SELECT abalance FROM pgbench_accounts WHERE aid = ${aid};\0`));
const answer = Buffer.concat([
  message("T", Buffer.from("\0\x01abalance\0\0\0\0\0\0\0\0\0\0\x17\0\x04\xff\xff\xff\xff\0\0", "latin1")),
  dataRow("0"),
  message("C", Buffer.from("SELECT 1\0")),
  message("Z", Buffer.from("I")),
]);

const cpu = () => {
  const u = process.cpuUsage();
  return u.user + u.system;
};
/** CPU time of this process's main thread alone, µs (Linux /proc; 10 ms resolution). */
const mainThreadCpu = (): number => {
  const stat = readFileSync(`/proc/self/task/${process.pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 10_000;
};

export type WriteMode = "thread" | "store" | "none";

/** CPU µs per transaction of `relay` relaying `n` pgbench transactions between in-memory streams. */
async function perTransaction(
  n: number,
  relay: (client: Sink, upstream: Sink) => Promise<() => Promise<void>>,
): Promise<{ all: number; main: number }> {
  const client = new Sink();
  const upstream = new Sink();
  const finish = await relay(client, upstream);
  const queries = Array.from({ length: 1000 }, (_, i) => query(i * 7919));
  // Warm up, then measure.
  for (let i = 0; i < 20_000; i++) {
    client.emit("data", queries[i % 1000]);
    upstream.emit("data", answer);
  }
  await finish();
  const start = cpu();
  const startMain = mainThreadCpu();
  for (let i = 0; i < n; i++) {
    client.emit("data", queries[i % 1000]);
    upstream.emit("data", answer);
    // At most 200 transactions every 10 ms (20,000 a second, what the gateway relays here under
    // pgbench), with timers and the recorder's writes running between, as on a real event loop.
    if (i % 200 === 199) await new Promise((r) => setTimeout(r, 10));
  }
  await finish();
  return { all: (cpu() - start) / n, main: (mainThreadCpu() - startMain) / n };
}

/** CPU µs per transaction: the whole process (every thread), and its main thread (the relay's) alone. */
export interface GatewayCpu {
  readonly pipe: { readonly all: number; readonly main: number };
  readonly gateway: { readonly all: number; readonly main: number };
}

export async function runGatewayCpu(opts: { transactions: number; write: WriteMode }): Promise<GatewayCpu> {
  const dir = mkdtempSync(join(tmpdir(), "bg-gateway-cpu-"));
  const store = await createSqliteStore({ path: join(dir, "breakglass.db") });
  try {
    const pipe = await perTransaction(opts.transactions, async (client, upstream) => {
      client.pipe(upstream);
      upstream.pipe(client);
      return async () => {};
    });
    const thread =
      opts.write === "thread" ? createRecordingThread({ driver: "sqlite", path: join(dir, "breakglass.db") }) : null;
    const write: RecordingWrite =
      thread?.write ?? (opts.write === "store" ? storeWrite(store) : async (_batches, before) => ({ ...before }));
    const recorder = createRecorder({
      write,
      ...(thread ? { closeWriter: () => thread.close() } : {}),
      flushMs: 100,
      batchSize: 1000,
      log: () => {},
    });
    const gateway = await perTransaction(opts.transactions, async (client, upstream) => {
      const session = new Session(client as never, 1, 1, {
        now: Date.now,
        recorder,
        onBlocked: () => {},
        onSessionEnd: () => {},
        log: () => {},
        onClosed: () => {},
      });
      session.grantId = "g_bench";
      session.started = true;
      session.relay(upstream as never, Buffer.alloc(0), Buffer.alloc(0));
      return () => recorder.flush();
    });
    await recorder.close();
    return { pipe, gateway };
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1]?.endsWith("gateway-cpu.js")) {
  const [n, write] = process.argv.slice(2);
  const r = await runGatewayCpu({
    transactions: Number(n ?? 200_000),
    write: (write ?? "store") as WriteMode,
  });
  const f = (x: { all: number; main: number }) => `${x.all.toFixed(2)} µs/tx (main thread ${x.main.toFixed(2)})`;
  console.log(`pipe ${f(r.pipe)}; gateway ${f(r.gateway)}`);
}
