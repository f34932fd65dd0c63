/**
 * The gateway thread: the PostgreSQL gateway of `breakglass server` — its listener, every
 * session's relay, the guard and the recorder — on an event loop of its own, so that relaying
 * shares its thread with nothing of the broker's (ADR 0011). The composition root of this thread:
 * it builds the gateway with the broker's part (`GatewayHost`: logins, grant windows, guard rules,
 * session events) as messages to the broker's thread, and a recorder that writes through a
 * recording thread of its own (ADR 0010).
 */
import { parentPort, workerData } from "node:worker_threads";
import type { FromGatewayThread, GatewayThreadInput, HostCall, ToGatewayThread } from "./gateway-thread-client.js";
import { createPgGateway, type GatewayHost } from "./pg-gateway.js";
import { createRecorder } from "./recorder.js";
import { createRecordingThread } from "./recording-writer.js";

if (!parentPort) throw new Error("gateway-thread.js runs as a worker thread of the broker");
const port = parentPort;
const input = workerData as GatewayThreadInput;
const post = (m: FromGatewayThread) => port.postMessage(m);

let nextId = 1;
const waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
const call = <T>(name: HostCall, arg: unknown): Promise<T> =>
  new Promise<T>((resolve, reject) => {
    const id = nextId++;
    waiting.set(id, { resolve: resolve as (v: unknown) => void, reject });
    post({ type: "call", id, call: name, arg });
  });

const host: GatewayHost = {
  findLogin: (user) => call("findLogin", user),
  grantWindow: (grantId) => call("grantWindow", grantId),
  guardFor: (grantId) => call("guardFor", grantId),
  onSessionStart: (s) => call("onSessionStart", s),
  onSessionEnd: (session) => post({ type: "ended", session }),
  onBlocked: (blocked) => post({ type: "blocked", blocked }),
  log: (msg, fields) => post({ type: "log", msg, ...(fields ? { fields } : {}) }),
};

const recording = createRecordingThread(input.recording);
const recorder = createRecorder({
  write: recording.write,
  closeWriter: () => recording.close(),
  flushMs: input.recordFlushMs,
  batchSize: 1000,
  log: host.log,
});
// Certificates arrive as plain byte arrays.
const tlsFiles = input.settings.tls;
const gateway = createPgGateway({
  ...input.settings,
  tls: tlsFiles ? { cert: Buffer.from(tlsFiles.cert), key: Buffer.from(tlsFiles.key) } : null,
  ...host,
  recorder,
  now: Date.now,
});

// The broker's /metrics and tests read how many sessions are open.
let lastCount = -1;
const sessionsTimer = setInterval(() => {
  if (gateway.sessionCount === lastCount) return;
  lastCount = gateway.sessionCount;
  post({ type: "sessions", count: lastCount });
}, 250);
sessionsTimer.unref();

port.on("message", (m: ToGatewayThread) => {
  switch (m.type) {
    case "answer": {
      const w = waiting.get(m.id);
      waiting.delete(m.id);
      if (m.error === undefined) w?.resolve(m.value);
      else w?.reject(new Error(m.error));
      return;
    }
    case "listen":
      gateway.listen().then(
        (address) => post({ type: "listening", ...address }),
        (e: unknown) => post({ type: "failed", error: e instanceof Error ? e.message : String(e) }),
      );
      return;
    case "cut":
      gateway.cutGrant(m.grantId, m.why);
      return;
    case "close":
      clearInterval(sessionsTimer);
      void gateway.close().finally(() => {
        post({ type: "closed" });
        port.close();
      });
      return;
  }
});
