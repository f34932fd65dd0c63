/**
 * A slow alarm receiver must not hold the others: a webhook that takes 30 s to answer (within its
 * 45 s timeout) beside a healthy one. Promised: every activation alarm reaches the healthy channel
 * at once — including ones raised while the slow receiver is still holding earlier deliveries —,
 * the grant is not flagged unalarmed, and the slow channel's deliveries complete when it answers,
 * each once.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { silentLogger } from "../src/adapters/logger.js";
import { type Broker, createBroker } from "../src/app.js";
import { loadConfigFile } from "../src/config/load-config.js";
import { connectorConfigChecks } from "../src/connectors/registry.js";
import { Receiver, WEBHOOK_SECRET } from "./support/webhook-receiver.js";

const SLOW_MS = 30_000;
let dir: string;
let broker: Broker;
const slow = new Receiver();
const fast = new Receiver();

beforeAll(async () => {
  await Promise.all([slow.start(), fast.start()]);
  slow.delayMs = SLOW_MS;
  dir = mkdtempSync(join(tmpdir(), "bg-slow-hook-"));
  writeFileSync(
    join(dir, "breakglass.yaml"),
    `version: 1
server: { host: 127.0.0.1, port: 0 }
storage: { driver: sqlite, path: ./breakglass.db }
audit: { signing_key_file: ./audit-signing.pem, generate_key_if_missing: true }
alarms:
  channels:
    slow-hook: { type: webhook, url: "http://127.0.0.1:${slow.port}/hook", secret: { env: HOOK_SECRET }, timeout: 45s }
    fast-hook: { type: webhook, url: "http://127.0.0.1:${fast.port}/hook", secret: { env: HOOK_SECRET }, timeout: 2s }
  security_channels: [slow-hook, fast-hook]
  unalarmed_after: 2s
  routes: []
users: { alice: {}, dave: {}, bob: {} }
groups: { oncall: [alice, dave], leads: [bob] }
domains:
  production:
    roles:
      db: { target: box, max_duration: 1h, approval: "1 of leads", requesters: [oncall] }
targets:
  box: { connector: exec, settings: { grant: ["true"], revoke: ["true"] } }
`,
  );
  const env = { HOOK_SECRET: WEBHOOK_SECRET };
  broker = await createBroker(loadConfigFile(join(dir, "breakglass.yaml"), { ...connectorConfigChecks, env }), {
    log: silentLogger,
    env,
  });
  await broker.start();
}, 30_000);

afterAll(async () => {
  await Promise.all([slow.stop(), fast.stop()]);
  await broker?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const ctx = (actor: string) => ({ actor, requestId: null, sourceAddress: null });

async function until<T>(what: string, fn: () => T | null | undefined | Promise<T | null | undefined>, ms: number) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== null && v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function activate(user: string): Promise<{ id: string; at: number }> {
  const g = await broker.service.request(ctx(user), {
    roleId: "production/db",
    justification: "slow receiver test",
    incident: "INC-30",
    durationS: 600,
  });
  await broker.service.approve(ctx("bob"), g.id, null);
  return { id: g.id, at: Date.now() };
}

const arrived = (r: Receiver, grant: string) =>
  r.received.find((x) => (x.body.event as { grant?: string; type?: string }).grant === grant);

describe("a 30 s webhook beside a healthy one", () => {
  it("the healthy channel gets every alarm at once, even those raised while the slow one holds; the slow one completes, once each", async () => {
    const first = await activate("alice");
    await until("the slow receiver holding the first alarm", () => arrived(slow, first.id), 5_000);
    const firstFast = await until("the first alarm on the healthy channel", () => arrived(fast, first.id), 5_000);
    expect(firstFast).toBeDefined();

    // Raised while the slow receiver holds the first one: must not wait behind it.
    const second = await activate("dave");
    await until("the second alarm on the healthy channel", () => arrived(fast, second.id), 5_000);
    const secondMs = Date.now() - second.at;
    expect(secondMs).toBeLessThan(2_000);
    const view = await broker.service.get(second.id);
    expect(view.state).toBe("active");
    // Past unalarmed_after (2 s): a security channel delivered, so the grant is not unalarmed.
    await new Promise((r) => setTimeout(r, 2_500));
    const secondAlarms = await broker.store.listAlarms(second.id);
    expect(secondAlarms.find((a) => a.channel === "fast-hook")).toMatchObject({ state: "delivered", attempts: 1 });
    expect(secondAlarms.find((a) => a.channel === "slow-hook")).toMatchObject({ state: "queued", attempts: 0 });

    // The slow receiver answers after 30 s: both deliveries complete, at the first attempt.
    const delivered = await until(
      "the slow channel's deliveries",
      async () => {
        const all = [...(await broker.store.listAlarms(first.id)), ...(await broker.store.listAlarms(second.id))];
        const onSlow = all.filter((a) => a.channel === "slow-hook" && a.eventType === "grant.activated");
        return onSlow.length === 2 && onSlow.every((a) => a.state === "delivered") ? onSlow : null;
      },
      SLOW_MS + 15_000,
    );
    for (const a of delivered) {
      expect(a.attempts).toBe(1);
      expect((a.deliveredAt ?? 0) - a.createdAt).toBeGreaterThanOrEqual(SLOW_MS - 100);
      expect(slow.received.filter((r) => r.key === a.id)).toHaveLength(1);
    }
    console.log(
      `slow webhook: healthy channel got the alarm raised during the 30 s hold after ${secondMs} ms; slow deliveries took ${delivered.map((a) => (a.deliveredAt ?? 0) - a.createdAt).join(", ")} ms`,
    );
  }, 90_000);
});
