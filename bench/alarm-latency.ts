/**
 * Activation → webhook received: 1,000 activations through the real path (request, approval,
 * exec target), each alarm routed to a signed webhook on loopback; the receiver records, per
 * alarm, the time from the activation event (`event.at`) to its arrival. Streamed (the next
 * request and approval start 2 ms after the last, so a delivery can wait behind the next
 * activation's work on the same thread), then a fifth as many one at a time (each activation waits
 * for its alarm): the delivery path alone. Baseline, same run: the same receiver's latency for a
 * plain signed POST made directly (no broker, no outbox).
 */
import { createHmac } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { silentLogger } from "../src/adapters/logger.js";
import { createBroker } from "../src/app.js";
import { loadConfigFile } from "../src/config/load-config.js";
import { connectorConfigChecks } from "../src/connectors/registry.js";
import { type Summary, summarize } from "./stats.js";

export interface AlarmLatencyResult {
  readonly activations: number;
  /** Activations streamed: a delivery shares the thread with the next activations. */
  readonly activationToReceivedMs: Summary;
  /** Each activation waits for its alarm before the next: the delivery path alone. */
  readonly oneAtATimeMs: Summary;
  readonly directPostMs: Summary;
}

const ctx = (actor: string) => ({ actor, requestId: null, sourceAddress: null });

export async function runAlarmLatency(n = 1000): Promise<AlarmLatencyResult> {
  const lat: number[] = [];
  const server = createServer((req, res) => {
    let body = "";
    req.on("data", (c: Buffer) => {
      body += c.toString("utf8");
    });
    req.on("end", () => {
      const msg = JSON.parse(body) as { event?: { at?: string; type?: string }; sentAt?: number };
      if (msg.sentAt !== undefined) lat.push(Date.now() - msg.sentAt);
      else if (msg.event?.type === "grant.activated") lat.push(Date.now() - Date.parse(msg.event.at ?? ""));
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  const dir = mkdtempSync(join(tmpdir(), "bg-bench-alarms-"));
  try {
    const alone = Math.max(1, Math.floor(n / 5));
    const users = Array.from({ length: n + alone }, (_, i) => `u${i}`);
    writeFileSync(
      join(dir, "breakglass.yaml"),
      `version: 1
server: { host: 127.0.0.1, port: 0 }
storage: { driver: sqlite, path: ./breakglass.db }
audit: { signing_key_file: ./audit-signing.pem, generate_key_if_missing: true }
alarms:
  channels: { hook: { type: webhook, url: "http://127.0.0.1:${port}/", secret: { env: HOOK } } }
  security_channels: [hook]
  routes: []
users: { bob: { name: Bob }, ${users.map((u) => `${u}: { name: ${u} }`).join(", ")} }
groups: { oncall: [${users.join(", ")}], leads: [bob] }
domains:
  production:
    description: Production
    roles:
      db-admin:
        description: Recovery DBA
        target: box
        max_duration: 1h
        approval: "1 of leads"
        requesters: [oncall]
targets:
  box: { connector: exec, settings: { grant: ["true"], revoke: ["true"] } }
`,
    );
    const env = { HOOK: "bench-secret" };
    const broker = await createBroker(loadConfigFile(join(dir, "breakglass.yaml"), { ...connectorConfigChecks, env }), {
      log: silentLogger,
      env,
    });
    await broker.start();
    const activate = async (u: string) => {
      const g = await broker.service.request(ctx(u), {
        roleId: "production/db-admin",
        justification: "alarm latency benchmark",
        incident: "INC-1",
        durationS: 600,
      });
      await broker.service.approve(ctx("bob"), g.id, null);
    };
    /** Until `count` alarms have arrived (10 s at most). */
    const received = async (count: number, everyMs = 50) => {
      const deadline = Date.now() + 10_000;
      while (lat.length < count && Date.now() < deadline) await new Promise((r) => setTimeout(r, everyMs));
      if (lat.length < count) throw new Error(`only ${lat.length} of ${count} alarms arrived`);
    };
    for (const u of users.slice(0, n)) {
      await activate(u);
      await new Promise((r) => setTimeout(r, 2)); // a steady stream, not one burst
    }
    await received(n);
    const activation = summarize(lat.splice(0));
    for (const [i, u] of users.slice(n).entries()) {
      await activate(u);
      await received(i + 1, 1);
    }
    await broker.stop();
    const oneAtATime = summarize(lat.splice(0));

    // Baseline: the same receiver, a signed POST sent directly.
    for (let i = 0; i < n; i++) {
      const body = JSON.stringify({ sentAt: Date.now(), i });
      const t = Math.floor(Date.now() / 1000);
      await fetch(`http://127.0.0.1:${port}/`, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          "breakglass-signature": `t=${t},v1=${createHmac("sha256", "bench-secret").update(`${t}.${body}`).digest("hex")}`,
        },
        body,
      });
    }
    return {
      activations: n,
      activationToReceivedMs: activation,
      oneAtATimeMs: oneAtATime,
      directPostMs: summarize(lat),
    };
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    rmSync(dir, { recursive: true, force: true });
  }
}
