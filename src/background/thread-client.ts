/**
 * The broker's side of its background thread (background-thread.ts): starts it, waits until it
 * has ended what fell due while the broker was down, and stands in for the workers that run
 * there — `expiry` and `alarms` with their usual interfaces, each call a message.
 *
 * The thread dying is the broker dying: a broker whose expiry no longer runs must not go on
 * granting access. `onDeath` is told (the server exits; a supervisor starts it again, and the new
 * process takes over the dead one's leases at once).
 */
import { Worker } from "node:worker_threads";
import type { Metrics } from "../metrics/metrics.js";
import type { AlarmWorker, ChannelHealth } from "../workers/alarm-worker.js";
import type { ExpiryWorker, TickResult } from "../workers/expiry-worker.js";
import type { BackgroundCall, BackgroundThreadInput, FromBackground, ToBackground } from "./thread-protocol.js";

export interface BackgroundThread {
  readonly expiry: ExpiryWorker;
  readonly alarms: AlarmWorker;
  /** Let the thread begin (it was spawned when created); resolves once it runs. @throws when it cannot (its reason) */
  start(): Promise<void>;
  /** Stop the workers (unstarted revocations are handed back), close the thread's store, end the thread. */
  stop(): Promise<void>;
}

/** A background thread spawned before its broker was built (`spawnBackgroundThread`). */
export interface SpawnedBackgroundThread {
  readonly worker: Worker;
  /** Why the thread ended before `createBackgroundThread` took it over; null while it runs. */
  endedEarly(): string | null;
  /** End it (the broker it was spawned for could not be built). */
  terminate(): Promise<void>;
}

/**
 * Spawn the thread now, before the broker is built: it loads its modules on the other core while
 * the broker loads its own, and waits for `createBackgroundThread` to say what to build.
 */
export function spawnBackgroundThread(): SpawnedBackgroundThread {
  const worker = new Worker(new URL("./background-thread.js", import.meta.url));
  // The broker's own handles (its server) keep the process alive, not this thread: a broker that
  // fails before it starts must not hang its process.
  worker.unref();
  // Until the broker listens, a thread that fails to load is remembered here (an 'error' nobody
  // listened to would throw in the broker's thread; an 'exit' nobody saw would leave start() waiting).
  let ended: string | null = null;
  const onError = (e: Error) => {
    ended ??= e.message;
  };
  const onExit = (code: number) => {
    ended ??= `it exited (${code})`;
  };
  worker.on("error", onError);
  worker.on("exit", onExit);
  return {
    worker,
    endedEarly() {
      worker.off("error", onError);
      worker.off("exit", onExit);
      return ended;
    },
    async terminate() {
      await worker.terminate();
    },
  };
}

export function createBackgroundThread(
  input: BackgroundThreadInput,
  deps: {
    readonly metrics: Metrics;
    /** Close a grant's gateway sessions (its access is being revoked). */
    readonly cut: (grantId: string, reason: string) => void;
    /** The thread ended without being asked to. */
    readonly onDeath: (reason: string) => void;
  },
  spawned: SpawnedBackgroundThread = spawnBackgroundThread(),
): BackgroundThread {
  let worker: Worker | null = null;
  let stopping = false;
  let health: readonly ChannelHealth[] = [];
  let nextId = 1;
  const pending = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();

  const send = (m: ToBackground) => worker?.postMessage(m);
  const call = <T>(op: BackgroundCall): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      if (!worker) {
        reject(new Error(`the background thread is not running (${op})`));
        return;
      }
      const id = nextId++;
      pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      send({ type: "call", id, op });
    });
  const failAll = (reason: string) => {
    for (const p of pending.values()) p.reject(new Error(reason));
    pending.clear();
  };

  const expiry: ExpiryWorker = {
    tick: () => call<TickResult>("expiry.tick"),
    drain: () => call<void>("expiry.drain"),
    start: () => {},
    stop: async () => {},
    kick: () => send({ type: "kick", worker: "expiry" }),
  };
  const alarms: AlarmWorker = {
    tick: () => call<number>("alarms.tick"),
    drain: () => call<void>("alarms.drain"),
    start: () => {},
    stop: async () => {},
    kick: () => send({ type: "kick", worker: "alarms" }),
    channels: () => health.map((h) => ({ ...h })),
  };

  // The thread builds its workers while the broker gets ready; `start()` lets it begin.
  let started = false;
  let startFailure: Error | null = null;
  let onStarted: { resolve(): void; reject(e: Error): void } | null = null;
  const settleStart = (e: Error | null) => {
    if (e) startFailure ??= e;
    const waiter = onStarted;
    onStarted = null;
    if (e) waiter?.reject(e);
    else waiter?.resolve();
  };
  worker = spawned.worker;
  worker.on("message", (m: FromBackground) => {
    switch (m.type) {
      case "ready":
        started = true;
        settleStart(null);
        return;
      case "failed":
        settleStart(new Error(`the background thread could not start: ${m.error}`));
        return;
      case "result": {
        const p = pending.get(m.id);
        pending.delete(m.id);
        if (m.ok) p?.resolve(m.value);
        else p?.reject(new Error(m.error ?? "failed"));
        return;
      }
      case "metric":
        deps.metrics[m.name].observe(m.seconds, m.label);
        return;
      case "channels":
        health = m.health;
        return;
      case "cut":
        deps.cut(m.grantId, m.reason);
        return;
    }
  });
  worker.on("error", (e) => {
    if (!started) settleStart(e);
    else if (!stopping) deps.onDeath(`the background thread failed: ${e.stack ?? e.message}`);
  });
  worker.on("exit", (code) => {
    worker = null;
    failAll(`the background thread exited (${code})`);
    if (!started) settleStart(new Error(`the background thread exited (${code}) before it ran`));
    else if (!stopping) deps.onDeath(`the background thread exited (${code})`);
  });
  const endedEarly = spawned.endedEarly();
  if (endedEarly === null) send({ type: "init", input });
  else {
    worker = null;
    startFailure = new Error(`the background thread could not start: ${endedEarly}`);
  }

  return {
    expiry,
    alarms,
    start() {
      if (startFailure) return Promise.reject(startFailure);
      return new Promise<void>((resolve, reject) => {
        onStarted = { resolve, reject };
        send({ type: "start" });
      });
    },
    async stop() {
      if (!worker || stopping) return;
      stopping = true;
      const w = worker;
      try {
        if (started) await call<void>("stop");
      } finally {
        await w.terminate();
      }
    },
  };
}
