/**
 * At least once, never lost: a broker that dies after sending an alarm but before recording it
 * leaves the lease to run out, and the next worker sends it again with the same idempotency key.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createAlarmChannel } from "../src/alarms/channel-registry.js";
import type { Store } from "../src/core/ports/store.js";
import type { AlarmRecord } from "../src/core/records.js";
import { createSecretResolver } from "../src/secrets/secret-ref.js";
import { createSqliteStore } from "../src/store/sqlite-store.js";
import { createAlarmWorker } from "../src/workers/alarm-worker.js";
import { manualClock } from "./support/manual-clock.js";
import { Receiver, WEBHOOK_SECRET } from "./support/webhook-receiver.js";

const receiver = new Receiver();
let dir: string;
let store: Store;
beforeAll(async () => {
  await receiver.start();
  dir = mkdtempSync(join(tmpdir(), "bg-outbox-"));
  store = await createSqliteStore({ path: join(dir, "b.db") });
});
afterAll(async () => {
  await store?.close();
  await receiver.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("alarm outbox", () => {
  it("delivers again after a crash between send and record, with the same idempotency key", async () => {
    const clock = manualClock(Date.UTC(2026, 10, 22));
    const alarm: AlarmRecord = {
      id: "a_7_hook",
      channel: "hook",
      eventSeq: 7,
      eventType: "grant.emergency_activated",
      grantId: "g_1",
      payload: JSON.stringify({ idempotencyKey: "a_7_hook", severity: "critical", summary: "x", event: {} }),
      state: "queued",
      attempts: 0,
      lastError: null,
      createdAt: clock.now(),
      nextAt: clock.now(),
      deliveredAt: null,
    };
    await store.transaction((tx) => tx.insertAlarms([alarm]));
    const hook = createAlarmChannel(
      {
        type: "webhook",
        name: "hook",
        url: `http://127.0.0.1:${receiver.port}/`,
        secret: { env: "S" },
        timeoutMs: 2000,
      },
      createSecretResolver({ baseDir: dir, env: { S: WEBHOOK_SECRET }, box: null }),
      () => Date.now(),
    );
    const worker = (s: Store) =>
      createAlarmWorker({
        store: s,
        channels: new Map([["hook", hook]]),
        clock,
        leaseMs: 60_000,
        pollMs: 100,
        batchSize: 10,
        log: () => {},
      });

    // Replica A claims and sends, then "dies": its second transaction (the result) never happens.
    let calls = 0;
    const dying: Store = {
      ...store,
      transaction: (fn) => (++calls === 2 ? Promise.reject(new Error("kill -9")) : store.transaction(fn)),
    };
    await expect(worker(dying).tick()).rejects.toThrow("kill -9");
    expect(receiver.received.map((r) => r.key)).toEqual(["a_7_hook"]);

    // Within the lease nobody sends it again; after it, replica B does, with the same key.
    const b = worker(store);
    expect(await b.tick()).toBe(0);
    clock.advance(60_001);
    expect(await b.tick()).toBe(1);
    expect(receiver.received.map((r) => r.key)).toEqual(["a_7_hook", "a_7_hook"]);
    const [saved] = await store.listAlarms("g_1");
    expect(saved).toMatchObject({ state: "delivered", attempts: 1 });
    expect(await b.tick()).toBe(0);
  });
});
