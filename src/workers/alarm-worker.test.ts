/**
 * The alarm worker delivering a real outbox (queued by the audit journal over an in-memory store)
 * through real channels — a file, and a webhook to a receiver on loopback that checks signatures
 * and fails when told to: delivered, retried with backoff, given up for good, and channel health.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { makeGrant } from "../../test/support/core-fixtures.js";
import { openUnitStore, type UnitStore } from "../../test/support/unit-store.js";
import { Receiver, WEBHOOK_SECRET } from "../../test/support/webhook-receiver.js";
import type { AlarmChannel } from "../alarms/alarm-channel.js";
import { createFileChannel } from "../alarms/file-channel.js";
import { createWebhookChannel } from "../alarms/webhook-channel.js";
import { alarmBackoffMs } from "../core/alarm-routing.js";
import { nonGrantEvent } from "../core/audit-event.js";
import { grantEvent } from "../core/grant-machine.js";
import { createSecretResolver } from "../secrets/secret-ref.js";
import { type AlarmWorker, createAlarmWorker } from "./alarm-worker.js";

let receiver: Receiver;
let dir: string;
let u: UnitStore;
let worker: AlarmWorker;

beforeAll(async () => {
  receiver = new Receiver();
  await receiver.start();
});
afterAll(() => receiver.stop());
beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), "bg-alarm-worker-"));
  // The webhook is the security channel; every event also goes to the file.
  u = await openUnitStore({
    now: Date.now(),
    routing: { securityChannels: ["hook"], routes: [{ events: ["*"], channels: ["record"], domains: null }] },
  });
  receiver.now = () => u.clock.now();
  receiver.received.length = 0;
  receiver.failNext = 0;
  worker = workerWith(channels());
});
afterEach(async () => {
  await worker.stop();
  await u.close();
  rmSync(dir, { recursive: true, force: true });
});

const channels = (): Map<string, AlarmChannel> =>
  new Map<string, AlarmChannel>([
    ["record", createFileChannel({ type: "file", name: "record", path: join(dir, "alarms.jsonl") })],
    [
      "hook",
      createWebhookChannel(
        {
          type: "webhook",
          name: "hook",
          url: `http://127.0.0.1:${receiver.port}/`,
          secret: { env: "S" },
          timeoutMs: 2_000,
        },
        createSecretResolver({ baseDir: "/", env: { S: WEBHOOK_SECRET }, box: null }),
        () => u.clock.now(),
      ),
    ],
  ]);
const workerWith = (c: Map<string, AlarmChannel>) =>
  createAlarmWorker({
    store: u.store,
    channels: c,
    clock: u.clock,
    leaseMs: 60_000,
    pollMs: 60_000,
    batchSize: 50,
    audit: u.audit,
    failureThreshold: 3,
    log: () => {},
  });
const alarmsOf = async (channel: string) => (await u.alarms()).filter((a) => a.channel === channel);
const login = () => u.record(nonGrantEvent("auth.fallback_login", "bob", u.clock.now(), { user: "bob" }));

describe("the alarm worker", () => {
  it("delivers each queued alarm once and records it delivered, an activation's in the chain too", async () => {
    await u.record(grantEvent(makeGrant({ id: "g_aw" }), "grant.activated", "system", u.clock.now()));
    u.clock.advance(250);
    await worker.drain();
    const [hook] = await alarmsOf("hook");
    expect(hook).toMatchObject({ state: "delivered", attempts: 1, lastError: null, deliveredAt: u.clock.now() });
    expect(receiver.received.map((r) => r.key)).toEqual([hook?.id]);
    expect(readFileSync(join(dir, "alarms.jsonl"), "utf8").trim().split("\n")).toHaveLength(1);
    const delivered = await u.events("alarm.delivered");
    expect(delivered.map((e) => e.data)).toEqual(
      expect.arrayContaining([expect.objectContaining({ alarm: hook?.id, channel: "hook", latencyMs: 250 })]),
    );
    expect(await u.events("alarm.deliveries_sealed")).toHaveLength(1);
    await worker.drain();
    expect(receiver.received).toHaveLength(1);
  });

  it("retries a failed delivery after a backoff that grows with the attempts", async () => {
    await login();
    receiver.failNext = 2;
    receiver.failStatus = 503;
    await worker.drain();
    const first = (await alarmsOf("hook"))[0];
    expect(first).toMatchObject({ state: "queued", attempts: 1, lastError: "webhook answered HTTP 503" });
    expect(first?.nextAt).toBe(u.clock.now() + alarmBackoffMs(1));
    u.clock.advance(alarmBackoffMs(1) - 1);
    expect(await worker.tick()).toBe(0);
    u.clock.advance(1);
    await worker.drain();
    const second = (await alarmsOf("hook"))[0];
    expect(second).toMatchObject({ state: "queued", attempts: 2, nextAt: u.clock.now() + alarmBackoffMs(2) });
    u.clock.advance(alarmBackoffMs(2));
    await worker.drain();
    expect((await alarmsOf("hook"))[0]).toMatchObject({ state: "delivered", attempts: 3 });
  });

  it("gives up on an alarm the receiver refuses for good, and keeps retrying one whose channel is gone", async () => {
    await login();
    receiver.failNext = 1;
    receiver.failStatus = 400;
    await worker.stop();
    worker = workerWith(new Map([...channels()].filter(([name]) => name === "hook")));
    await worker.drain();
    expect((await alarmsOf("hook"))[0]).toMatchObject({ state: "failed", lastError: "webhook answered HTTP 400" });
    expect((await alarmsOf("record"))[0]).toMatchObject({
      state: "queued",
      lastError: "channel record is no longer configured",
    });
  });

  it("reports a channel failing after three failures in a row, once, and its recovery", async () => {
    receiver.failNext = 4;
    receiver.failStatus = 500;
    for (let i = 0; i < 4; i++) {
      await login();
      await worker.drain();
    }
    expect(worker.channels()).toContainEqual({
      channel: "hook",
      failing: true,
      consecutiveFailures: 4,
      lastError: "webhook answered HTTP 500",
    });
    const failing = await u.events("alarm.channel_failing");
    expect(failing.map((e) => e.data)).toEqual([
      { channel: "hook", failures: 3, lastError: "webhook answered HTTP 500" },
    ]);
    // The file channel heard about it.
    const told = (await alarmsOf("record")).filter((a) => a.eventType === "alarm.channel_failing");
    expect(told).toHaveLength(1);
    u.clock.advance(300_000);
    await worker.drain();
    expect((await u.events("alarm.channel_recovered")).map((e) => e.data)).toEqual([{ channel: "hook" }]);
    expect(worker.channels().find((c) => c.channel === "hook")).toMatchObject({
      failing: false,
      consecutiveFailures: 0,
    });
  });
});
