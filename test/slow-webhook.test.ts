/**
 * A slow alarm receiver must not hold the others: a webhook that holds every delivery (well within
 * its timeout) until the test lets it answer, beside a healthy one. Promised: every activation
 * alarm reaches the healthy channel while the slow receiver still holds — including ones raised
 * after it began holding —, the grants are not flagged unalarmed, and the slow channel's
 * deliveries complete when it answers, each once. Order, not speed: how soon the healthy channel
 * got them is reported as a figure.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Broker } from "../src/app.js";
import { ctx } from "./support/ctx.js";
import { startTestBroker, type TestBroker } from "./support/test-broker.js";
import { until } from "./support/wait.js";
import { Receiver, WEBHOOK_SECRET } from "./support/webhook-receiver.js";

let t: TestBroker;
let broker: Broker;
const slow = new Receiver();
const fast = new Receiver();
/** Lets the slow receiver answer what it holds. */
let letGo: () => void = () => {};

beforeAll(async () => {
  await Promise.all([slow.start(), fast.start()]);
  slow.holdUntil = new Promise<void>((resolve) => {
    letGo = resolve;
  });
  t = await startTestBroker({
    base: "minimal",
    env: { HOOK_SECRET: WEBHOOK_SECRET },
    config: {
      alarms: {
        channels: {
          "slow-hook": {
            type: "webhook",
            url: `http://127.0.0.1:${slow.port}/hook`,
            secret: { env: "HOOK_SECRET" },
            timeout: "4m",
          },
          "fast-hook": {
            type: "webhook",
            url: `http://127.0.0.1:${fast.port}/hook`,
            secret: { env: "HOOK_SECRET" },
            timeout: "30s",
          },
        },
        security_channels: ["slow-hook", "fast-hook"],
        unalarmed_after: "1s",
        delivery_lease: "5m",
        routes: [],
      },
      users: { alice: {}, dave: {}, bob: {} },
      groups: { oncall: ["alice", "dave"], leads: ["bob"] },
      domains: {
        production: {
          roles: { db: { target: "box", max_duration: "1h", approval: "1 of leads", requesters: ["oncall"] } },
        },
      },
      targets: { box: { connector: "exec", settings: { grant: ["true"], revoke: ["true"] } } },
    },
  });
  broker = t.broker;
});

afterAll(async () => {
  letGo();
  await Promise.all([slow.stop(), fast.stop()]);
  await t?.stop();
});

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

describe("a webhook that holds its deliveries beside a healthy one", () => {
  it("the healthy channel gets every alarm while the slow one holds, even those raised after it began; the slow one completes, once each", async () => {
    const first = await activate("alice");
    await until("the slow receiver holding the first alarm", () => arrived(slow, first.id));
    await until("the first alarm on the healthy channel", () => arrived(fast, first.id));

    // Raised while the slow receiver holds the first one: must not wait behind it.
    const second = await activate("dave");
    await until("the second alarm on the healthy channel", () => arrived(fast, second.id));
    const secondMs = Date.now() - second.at;
    const view = await broker.service.get(second.id);
    expect(view.state).toBe("active");
    // Still held: the healthy channel did not wait for the slow one to answer or time out.
    const secondAlarms = await broker.store.listAlarms(second.id);
    expect(secondAlarms.find((a) => a.channel === "fast-hook")).toMatchObject({ state: "delivered", attempts: 1 });
    expect(secondAlarms.find((a) => a.channel === "slow-hook")).toMatchObject({ state: "queued", attempts: 0 });
    // Past unalarmed_after (1 s): a security channel delivered, so neither grant is flagged.
    const token = await t.token("alice");
    await until("unalarmed_after to pass", () => Date.now() - second.at > 1_500 || null);
    for (const id of [first.id, second.id]) {
      const res = await broker.http.inject({
        method: "GET",
        url: `/api/v1/grants/${id}`,
        headers: { authorization: `Bearer ${token}` },
      });
      expect(res.json(), res.body).toMatchObject({ id, unalarmed: false });
    }
    expect(await broker.store.listAlarms(first.id)).toContainEqual(
      expect.objectContaining({ channel: "slow-hook", eventType: "grant.activated", state: "queued", attempts: 0 }),
    );

    // The slow receiver answers: both deliveries complete, at the first attempt, once each.
    const letGoAt = Date.now();
    letGo();
    const delivered = await until("the slow channel's deliveries", async () => {
      const all = [...(await broker.store.listAlarms(first.id)), ...(await broker.store.listAlarms(second.id))];
      const onSlow = all.filter((a) => a.channel === "slow-hook" && a.eventType === "grant.activated");
      return onSlow.length === 2 && onSlow.every((a) => a.state === "delivered") ? onSlow : null;
    });
    for (const a of delivered) {
      expect(a.attempts).toBe(1);
      expect(a.deliveredAt ?? 0).toBeGreaterThanOrEqual(letGoAt);
      expect(slow.received.filter((r) => r.key === a.id)).toHaveLength(1);
    }
    console.log(
      `slow webhook: healthy channel got the alarm raised during the hold ${secondMs} ms after its activation; slow deliveries held ${delivered.map((a) => (a.deliveredAt ?? 0) - a.createdAt).join(", ")} ms`,
    );
  });
});
