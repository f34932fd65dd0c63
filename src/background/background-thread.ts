/**
 * The broker's background thread: expiry (ending grants, revoking at the target, retrying failed
 * activations, notices, taking over a dead process's leases), alarm delivery and escalation, on an
 * event loop of their own with a store connection of their own — so that no amount of request
 * handling on the broker's main thread delays them (docs/adr/0008). The composition root of this
 * thread: it loads the broker's configuration file again (and refuses to run if it is not the
 * configuration the broker runs), builds its adapters, and answers the main thread's messages
 * (thread-protocol.ts).
 */
import { dirname } from "node:path";
import { parentPort } from "node:worker_threads";
import { createLogger } from "../adapters/logger.js";
import { systemClock } from "../adapters/system-clock.js";
import { createAlarmChannels } from "../alarms/channel-registry.js";
import { createDirectory } from "../auth/directory.js";
import type { AppConfig } from "../config/app-config.js";
import { fingerprintConfig } from "../config/config-fingerprint.js";
import { loadConfigFile } from "../config/load-config.js";
import { connectorConfigChecks } from "../connectors/registry.js";
import { Histogram } from "../metrics/metrics.js";
import { loadSecretBox } from "../secrets/secret-box.js";
import { createSecretResolver } from "../secrets/secret-ref.js";
import { openStore } from "../store/open-store.js";
import { createBackgroundWorkers, createConnectors, wireGrants } from "../wiring.js";
import type { BackgroundThreadInput, FromBackground, ToBackground } from "./thread-protocol.js";

if (!parentPort) throw new Error("background-thread.js runs as a worker thread of the broker");
const port = parentPort;
const post = (m: FromBackground) => port.postMessage(m);
/** Messages are kept until the thread is built and can act on them. */
const inbox: ToBackground[] = [];
let deliver: ((m: ToBackground) => void) | null = null;
// The first message says what to build: the thread is spawned before the broker knows it.
let init: (input: BackgroundThreadInput) => void = () => {};
const initialised = new Promise<BackgroundThreadInput>((resolve) => {
  init = resolve;
});
port.on("message", (m: ToBackground) => {
  if (m.type === "init") init(m.input);
  else if (deliver) deliver(m);
  else inbox.push(m);
});

/** Observations go to the main thread, which serves /metrics. */
class ForwardedHistogram extends Histogram {
  constructor(readonly metric: "expiryLag" | "alarmDelivery") {
    super(metric, "");
  }
  override observe(seconds: number, label = ""): void {
    post({ type: "metric", name: this.metric, seconds, label });
  }
}

async function main(): Promise<void> {
  const input = await initialised;
  const log = createLogger(input.logLevel);
  const logFn = (msg: string, fields?: Record<string, unknown>) => log.warn(msg, { thread: "background", ...fields });
  const loaded = loadConfigFile(input.configFile, { ...connectorConfigChecks, env: input.env });
  const config: AppConfig = { ...loaded, server: input.server };
  const fingerprint = fingerprintConfig(config).fingerprint;
  if (fingerprint !== input.fingerprint) {
    throw new Error(
      `${input.configFile} changed while the broker started (its fingerprint differs from the broker's): start the broker again`,
    );
  }
  const clock = systemClock;
  const store = await openStore(config.storage, { owner: input.owner, migrate: false });
  const directory = createDirectory(config.policy, config.auth.fallback.maxMembershipAgeMs);
  const refreshIdentity = async () => directory.load(await store.listIdentities(), clock.now());
  await refreshIdentity();
  const box =
    config.secrets.keyFile === null ? null : loadSecretBox(config.secrets.keyFile, { generateIfMissing: false });
  const baseDir = dirname(config.source);
  const resolveSecret = createSecretResolver({ baseDir, env: input.env, box });
  const { policy } = directory;
  const connectors = createConnectors(policy, baseDir, resolveSecret, logFn, clock);
  const channels = createAlarmChannels(config, policy, store, resolveSecret, clock);
  const wiring = wireGrants({
    config,
    policy,
    store,
    connectors,
    clock,
    box,
    wakeAlarms: () => workers.alarms.kick(),
    beforeRevoke: (g) => post({ type: "cut", grantId: g.id, reason: g.endReason ?? "ended" }),
    log: logFn,
  });
  const workers = createBackgroundWorkers({
    config,
    policy,
    store,
    wiring,
    channels,
    clock,
    metrics: { expiryLag: new ForwardedHistogram("expiryLag"), alarmDelivery: new ForwardedHistogram("alarmDelivery") },
    log: logFn,
  });

  const timers: NodeJS.Timeout[] = [];
  let lastHealth = "";
  const sendHealth = () => {
    const health = workers.alarms.channels();
    const text = JSON.stringify(health);
    if (text === lastHealth) return;
    lastHealth = text;
    post({ type: "channels", health });
  };
  const start = async (): Promise<void> => {
    // End everything that fell due while the broker was down before it serves anyone.
    await workers.expiry.tick();
    workers.expiry.start();
    workers.alarms.start();
    workers.escalation?.start();
    timers.push(
      setInterval(() => {
        refreshIdentity().catch((e: unknown) => logFn("could not refresh IdP identities", { error: String(e) }));
      }, 60_000),
      // The channels' health, for GET /alarms/channels on the main thread, whenever it changes.
      setInterval(() => sendHealth(), 250),
    );
    sendHealth();
  };

  const stop = async (): Promise<void> => {
    for (const t of timers) clearInterval(t);
    await workers.expiry.stop();
    await workers.alarms.stop();
    await workers.escalation?.stop();
    await Promise.all([...connectors.values()].map((c) => c.close?.()));
    await store.close();
  };
  const calls: Record<string, () => Promise<unknown>> = {
    "expiry.tick": () => workers.expiry.tick(),
    "expiry.drain": () => workers.expiry.drain(),
    "alarms.tick": () => workers.alarms.tick(),
    "alarms.drain": () => workers.alarms.drain(),
    stop,
  };
  // Messages the broker sent while this thread was being built are delivered from here on.
  const dispatch = (m: ToBackground) => {
    if (m.type === "start") {
      start().then(
        () => post({ type: "ready" }),
        (e: unknown) => post({ type: "failed", error: e instanceof Error ? e.message : String(e) }),
      );
      return;
    }
    if (m.type === "kick") {
      workers[m.worker].kick();
      return;
    }
    if (m.type === "init") return;
    const call = calls[m.op];
    if (!call) return;
    call().then(
      (value) => {
        post({ type: "result", id: m.id, ok: true, value });
        if (m.op === "stop") port.close();
      },
      (e: unknown) => post({ type: "result", id: m.id, ok: false, error: String(e) }),
    );
  };
  deliver = dispatch;
  for (const m of inbox.splice(0)) dispatch(m);
}

main().catch((e: unknown) => {
  post({ type: "failed", error: e instanceof Error ? e.message : String(e) });
  port.close();
});
