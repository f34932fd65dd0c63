/**
 * The broker's side of the gateway thread (gateway-thread.ts): the gateway — its listener, every
 * session's relay, its recorder — runs on a thread of its own, and this stands in for it as a
 * `PgGateway`, answering the thread's calls to the broker (`GatewayHost`: logins, grant windows,
 * guard rules, session events) and passing `cutGrant` on. ADR 0011 says why.
 *
 * The thread dying is the broker losing its gateway: every session through it is gone with it,
 * and no new one can open. `onDeath` is told (the server exits so that a supervisor starts it
 * again, as for the background thread).
 */
import { Worker } from "node:worker_threads";
import type { GatewayHost, GatewaySettings, PgGateway } from "./pg-gateway.js";
import type { RecordingThreadInput } from "./recording-writer.js";

export interface GatewayThreadInput {
  readonly settings: GatewaySettings;
  /** Where the gateway's recording thread writes. */
  readonly recording: RecordingThreadInput;
  readonly recordFlushMs: number;
}

/** The calls the thread makes to the broker, by name: `GatewayHost`'s asynchronous methods. */
export type HostCall = "findLogin" | "grantWindow" | "guardFor" | "onSessionStart";

export type ToGatewayThread =
  | { readonly type: "listen" }
  | { readonly type: "cut"; readonly grantId: string; readonly why: string }
  | { readonly type: "close" }
  | { readonly type: "answer"; readonly id: number; readonly value?: unknown; readonly error?: string };

export type FromGatewayThread =
  | { readonly type: "call"; readonly id: number; readonly call: HostCall; readonly arg: unknown }
  | { readonly type: "listening"; readonly host: string; readonly port: number }
  | { readonly type: "failed"; readonly error: string }
  | { readonly type: "sessions"; readonly count: number }
  | { readonly type: "ended"; readonly session: Parameters<GatewayHost["onSessionEnd"]>[0] }
  | { readonly type: "blocked"; readonly blocked: Parameters<GatewayHost["onBlocked"]>[0] }
  | { readonly type: "log"; readonly msg: string; readonly fields?: Record<string, unknown> }
  | { readonly type: "closed" };

export function createGatewayThread(
  input: GatewayThreadInput,
  host: GatewayHost,
  onDeath: (reason: string) => void,
): PgGateway {
  const worker = new Worker(new URL("./gateway-thread.js", import.meta.url), { workerData: input });
  // Its listener keeps the thread alive; the broker's own handles keep the process alive.
  worker.unref();
  let sessionCount = 0;
  let stopping = false;
  let listening: { resolve: (a: { host: string; port: number }) => void; reject: (e: Error) => void } | null = null;
  let closed: (() => void) | null = null;
  const post = (m: ToGatewayThread) => worker.postMessage(m);

  const answer = (id: number, call: HostCall, arg: unknown) => {
    const run = (): Promise<unknown> => {
      switch (call) {
        case "findLogin":
          return host.findLogin(arg as string);
        case "grantWindow":
          return host.grantWindow(arg as string);
        case "guardFor":
          return host.guardFor(arg as string);
        case "onSessionStart":
          return host.onSessionStart(arg as Parameters<GatewayHost["onSessionStart"]>[0]);
      }
    };
    run().then(
      (value) => post({ type: "answer", id, value }),
      (e: unknown) => post({ type: "answer", id, error: e instanceof Error ? e.message : String(e) }),
    );
  };

  worker.on("message", (m: FromGatewayThread) => {
    switch (m.type) {
      case "call":
        answer(m.id, m.call, m.arg);
        return;
      case "listening":
        listening?.resolve({ host: m.host, port: m.port });
        listening = null;
        return;
      case "failed":
        listening?.reject(new Error(m.error));
        listening = null;
        return;
      case "sessions":
        sessionCount = m.count;
        return;
      case "ended":
        host.onSessionEnd(m.session);
        return;
      case "blocked":
        host.onBlocked(m.blocked);
        return;
      case "log":
        host.log(m.msg, m.fields);
        return;
      case "closed":
        closed?.();
        return;
    }
  });
  const died = (why: string) => {
    listening?.reject(new Error(`the gateway thread ended: ${why}`));
    listening = null;
    closed?.();
    if (!stopping) onDeath(why);
  };
  worker.on("error", (e) => died(e.message));
  worker.on("exit", (code) => died(`it exited (${code})`));

  return {
    listen() {
      return new Promise((resolve, reject) => {
        listening = { resolve, reject };
        worker.ref();
        post({ type: "listen" });
      });
    },
    cutGrant(grantId, why) {
      post({ type: "cut", grantId, why });
    },
    get sessionCount() {
      return sessionCount;
    },
    async close() {
      if (stopping) return;
      stopping = true;
      // Sessions closed, their last statements written and sealed, then the thread ends.
      await new Promise<void>((resolve) => {
        closed = resolve;
        post({ type: "close" });
      });
      await worker.terminate();
    },
  };
}
