/**
 * The webhook channel against a real receiver on loopback that checks the signature the way
 * docs/alarms.md tells receivers to; the alarms are queued by the real audit journal.
 */
import { createHmac } from "node:crypto";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { makeGrant } from "../../test/support/core-fixtures.js";
import { openUnitStore, routeAllTo, type UnitStore } from "../../test/support/unit-store.js";
import { Receiver, WEBHOOK_SECRET } from "../../test/support/webhook-receiver.js";
import { grantEvent } from "../core/grant-machine.js";
import type { AlarmRecord } from "../core/records.js";
import { createSecretResolver } from "../secrets/secret-ref.js";
import type { AlarmChannel } from "./alarm-channel.js";
import { createWebhookChannel, signatureHeader } from "./webhook-channel.js";

let receiver: Receiver;
let u: UnitStore;
let alarm: AlarmRecord;

beforeAll(async () => {
  receiver = new Receiver();
  await receiver.start();
});
afterAll(() => receiver.stop());
beforeEach(async () => {
  u = await openUnitStore({ now: Date.now(), routing: routeAllTo("hook") });
  receiver.now = () => u.clock.now();
  const [queued] = await u.record(grantEvent(makeGrant({ id: "g_hook" }), "grant.requested", "alice", u.clock.now()));
  if (!queued) throw new Error("no alarm queued");
  alarm = queued;
});
afterEach(() => u.close());

const channel = (over: { url?: string; now?: () => number } = {}): AlarmChannel =>
  createWebhookChannel(
    {
      type: "webhook",
      name: "hook",
      url: { env: "HOOK_URL" },
      secret: { env: "HOOK_SECRET" },
      timeoutMs: 2_000,
    },
    createSecretResolver({
      baseDir: "/",
      env: { HOOK_URL: over.url ?? `http://127.0.0.1:${receiver.port}/hook`, HOOK_SECRET: WEBHOOK_SECRET },
      box: null,
    }),
    over.now ?? (() => u.clock.now()),
  );

describe("the webhook channel", () => {
  it("posts the alarm's message, signed over its exact body, with the idempotency key", async () => {
    await channel().deliver(alarm);
    const [got] = receiver.received;
    expect(got?.key).toBe(alarm.id);
    expect(alarm.id).toMatch(/^a_\d+_hook$/);
    expect(got?.body).toEqual(JSON.parse(alarm.payload));
    expect(got?.body).toMatchObject({ idempotencyKey: alarm.id, event: { type: "grant.requested", grant: "g_hook" } });
    receiver.received.length = 0;
  });

  it("signs with the broker's clock: a receiver refuses a signature minutes old, for good", async () => {
    const stale = channel({ now: () => u.clock.now() - 10 * 60_000 });
    await expect(stale.deliver(alarm)).rejects.toMatchObject({
      permanent: true,
      message: "webhook answered HTTP 401",
    });
    expect(receiver.rejected).toHaveLength(1);
  });

  it("writes t=<unix seconds>,v1=<hex HMAC-SHA256 of '<t>.<body>'>", () => {
    const body = '{"idempotencyKey":"a_1_hook"}';
    const hmac = createHmac("sha256", "secret").update(`1700000000.${body}`).digest("hex");
    expect(signatureHeader("secret", body, 1_700_000_000)).toBe(`t=1700000000,v1=${hmac}`);
    expect(signatureHeader("secret", `${body} `, 1_700_000_000)).not.toBe(`t=1700000000,v1=${hmac}`);
  });

  it("retries a receiver that fails (5xx) and takes the URL from a secret reference", async () => {
    receiver.failNext = 1;
    receiver.failStatus = 503;
    await expect(channel().deliver(alarm)).rejects.toMatchObject({ permanent: false });
    await channel().deliver(alarm);
    expect(receiver.received.map((r) => r.key)).toEqual([alarm.id]);
    receiver.received.length = 0;
  });
});
