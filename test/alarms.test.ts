/**
 * Alarms through the outbox to a real HTTP receiver on loopback that verifies the HMAC signature
 * and the timestamp: activation alarms arrive signed and deduplicable; a receiver answering 500 or
 * down is retried until it takes the alarm; an emergency activation with the channel down still
 * works and its alarm is delivered when the receiver is back; the delivery shows on the grant.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadPublicKeys } from "../src/audit/signing-key.js";
import { GrantViewSchema, IncidentViewSchema } from "../src/contract/api.js";
import { checkpointMessage } from "../src/core/audit-chain.js";
import type { Checkpoint } from "../src/core/records.js";
import { runCli } from "./support/broker-process.js";
import { ctx } from "./support/ctx.js";
import { readJsonLines } from "./support/json-lines.js";
import { startTestBroker, type TestBroker } from "./support/test-broker.js";
import { sleep, until } from "./support/wait.js";
import { Receiver, WEBHOOK_SECRET as SECRET } from "./support/webhook-receiver.js";

let t: TestBroker;
let dir: string;
let broker: TestBroker["broker"];
let url: string;
const receiver = new Receiver();

beforeAll(async () => {
  await receiver.start();
  t = await startTestBroker({
    base: "minimal",
    env: { HOOK_SECRET: SECRET },
    config: {
      alarms: {
        channels: {
          "security-hook": {
            type: "webhook",
            url: `http://127.0.0.1:${receiver.port}/hook`,
            secret: { env: "HOOK_SECRET" },
            timeout: "2s",
          },
          record: { type: "file", path: "./alarms.jsonl" },
        },
        security_channels: ["security-hook"],
        unalarmed_after: "500ms",
        escalation: { after: "1500ms", channels: ["record"] },
        routes: [{ events: ["*"], channels: ["record"] }],
      },
      users: { alice: { name: "Alice" }, bob: { name: "Bob" }, carol: { name: "Carol" }, dave: { name: "Dave" } },
      groups: { oncall: ["alice", "dave"], leads: ["bob", "carol"], security: ["carol"] },
      admin_groups: ["security"],
      domains: {
        production: {
          description: "Production",
          roles: {
            "db-admin": {
              description: "Recovery DBA",
              target: "box",
              max_duration: "1h",
              approval: "1 of leads",
              requesters: ["oncall"],
              emergency: true,
            },
          },
        },
      },
      targets: { box: { connector: "exec", settings: { grant: ["true"], revoke: ["true"] } } },
    },
  });
  ({ dir, broker, url } = t);
});
afterAll(async () => {
  await t?.stop();
  await receiver.stop();
});

let previous: string | null = null;
/** A fresh active grant of alice's; `beforeActivation` runs between its request and its approval. */
async function activate(emergency = false, beforeActivation?: (id: string) => void): Promise<string> {
  // One open grant per user and role: give the last one back first.
  if (previous) await broker.service.release(ctx("alice"), previous).catch(() => {});
  const g = await broker.service.request(ctx("alice"), {
    roleId: "production/db-admin",
    justification: "primary is down, failover stuck",
    incident: "INC-11",
    durationS: 600,
    emergency,
  });
  beforeActivation?.(g.id);
  if (!emergency) await broker.service.approve(ctx("bob"), g.id, null);
  previous = g.id;
  return g.id;
}

describe("alarms", () => {
  it("delivers the activation alarm to the security webhook, signed and with its idempotency key", async () => {
    const id = await activate();
    const got = await until("activation alarm", () =>
      receiver.received.find((r) => (r.body.event as { grant?: string }).grant === id),
    );
    expect(got.key).toMatch(/^a_\d+_security-hook$/);
    expect(got.body).toMatchObject({
      idempotencyKey: got.key,
      severity: "warning",
      summary: `Break-glass grant ${id} (production/db-admin, INC-11) is active`,
      event: { type: "grant.activated", grant: id, role: "production/db-admin", incident: "INC-11" },
    });
    expect(receiver.rejected).toEqual([]);
    // Only activations go to the security hook here; everything goes to the file record.
    expect(receiver.received.filter((r) => (r.body.event as { grant?: string }).grant === id)).toHaveLength(1);
    await until("file record", () => readFileSync(join(dir, "alarms.jsonl"), "utf8").includes(`"grant":"${id}"`));
  });

  it("retries a receiver that answers 500, and shows the delivery on the grant (API and CLI)", async () => {
    receiver.failNext = 2;
    const id = await activate();
    const got = await until("alarm after retries", () =>
      receiver.received.find((r) => (r.body.event as { grant?: string }).grant === id),
    );
    const token = await t.token("alice");
    const view = GrantViewSchema.parse(
      (
        await broker.http.inject({
          method: "GET",
          url: `/api/v1/grants/${id}`,
          headers: { authorization: `Bearer ${token}` },
        })
      ).json(),
    );
    const hook = view.alarms?.find((a) => a.channel === "security-hook");
    expect(hook).toMatchObject({
      id: got.key,
      state: "delivered",
      attempts: 3,
      lastError: null,
      event: "grant.activated",
    });
    expect(hook?.latencyMs).toBeGreaterThan(0);
    const shown = await runCli(["show", id], { BREAKGLASS_URL: url, BREAKGLASS_TOKEN: token });
    expect(shown.stdout).toMatch(/security-hook\s+grant\.activated\s+delivered in \d+ ms \(3 attempts\)/);
  });

  it("retries a receiver that never answers, once the channel's timeout (2 s) cuts the attempt", async () => {
    // The first request about this grant hangs — not whatever else reaches the receiver first.
    const id = await activate(false, (requested) => {
      receiver.hangGrant = requested;
      receiver.hangNext = 1;
    });
    const got = await until("alarm after a timed-out attempt", () =>
      receiver.received.find((r) => (r.body.event as { grant?: string }).grant === id),
    );
    expect(receiver.hung.map((r) => r.key)).toEqual([got.key]);
    receiver.hangGrant = null;
    // The receiver has it; the broker records the delivery right after its answer.
    const hook = await until("the delivery recorded", async () =>
      (await broker.store.listAlarms(id)).find((a) => a.channel === "security-hook" && a.state === "delivered"),
    );
    expect(hook).toMatchObject({ id: got.key, state: "delivered", attempts: 2, lastError: null });
    // The same idempotency key on the retry: a receiver that did process the first can dedupe.
    expect(receiver.received.filter((r) => r.key === got.key)).toHaveLength(1);
  });

  it("lets an emergency activation through with the channel down, and delivers when it is back", async () => {
    const port = receiver.port;
    await receiver.stop();
    const id = await activate(true);
    expect((await broker.service.get(id)).state).toBe("active");
    const pending = await until("a failed attempt", async () =>
      (await broker.store.listAlarms(id)).find((a) => a.channel === "security-hook" && a.attempts >= 1),
    );
    expect(pending).toMatchObject({ state: "queued", lastError: expect.stringContaining("webhook unreachable") });
    const token = await t.token("carol");
    const viewOf = async () =>
      GrantViewSchema.parse(
        (
          await broker.http.inject({
            method: "GET",
            url: `/api/v1/grants/${id}`,
            headers: { authorization: `Bearer ${token}` },
          })
        ).json(),
      );
    await until("flagged unalarmed", async () => (await viewOf()).unalarmed === true);
    const shown = await runCli(["show", id], { BREAKGLASS_URL: url, BREAKGLASS_TOKEN: token });
    expect(shown.stdout).toContain("UNALARMED: no security channel has delivered the activation alarm");
    expect(shown.stdout).toMatch(/NOT DELIVERED yet \(\d+ attempts?; last error: webhook unreachable/);
    await receiver.start(port);
    const got = await until("delivery after the receiver is back", () =>
      receiver.received.find((r) => (r.body.event as { grant?: string }).grant === id),
    );
    expect(got.body).toMatchObject({ severity: "critical", summary: expect.stringContaining("EMERGENCY") });
    await until("no longer unalarmed", async () => (await viewOf()).unalarmed === false);
  });

  it("reports a channel that keeps failing on the other channels, and its recovery", async () => {
    const port = receiver.port;
    await receiver.stop();
    await activate();
    const types = async () => (await broker.store.readAudit(1, 100_000)).map((e) => e.type);
    await until("channel_failing event", async () => (await types()).includes("alarm.channel_failing"));
    const record = await until("alarm on the file channel", () =>
      readJsonLines<{ summary: string; severity: string; event: { type: string } }>(join(dir, "alarms.jsonl")).find(
        (m) => m.event.type === "alarm.channel_failing",
      ),
    );
    expect(record).toMatchObject({
      severity: "critical",
      summary: expect.stringMatching(
        /^Alarm channel security-hook is failing: 3 deliveries in a row \(webhook unreachable/,
      ),
    });
    await receiver.start(port);
    await until("channel_recovered event", async () => (await types()).includes("alarm.channel_recovered"));
  });

  it("gives up on a receiver that refuses the message itself (4xx), and says so", async () => {
    receiver.failNext = 1;
    receiver.failStatus = 400;
    const id = await activate();
    const failed = await until("failed alarm", async () =>
      (await broker.store.listAlarms(id)).find((a) => a.channel === "security-hook" && a.state === "failed"),
    );
    expect(failed).toMatchObject({ attempts: 1, lastError: "webhook answered HTTP 400" });
    receiver.failStatus = 500;
  });

  it("exposes Prometheus metrics: active grants, alarms by channel and state, outbox depth, delivery latency", async () => {
    const res = await fetch(`${url}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toContain("text/plain; version=0.0.4");
    const text = await res.text();
    expect(text).toMatch(/^breakglass_active_grants\{role="production\/db-admin"\} 1$/m);
    expect(text).toMatch(/^breakglass_alarms\{channel="security-hook",state="delivered"\} [1-9]\d*$/m);
    expect(text).toMatch(/^breakglass_alarms\{channel="security-hook",state="failed"\} 1$/m);
    expect(text).toMatch(/^breakglass_outbox_depth \d+$/m);
    expect(text).toMatch(/^breakglass_revocations_failing 0$/m);
    expect(text).toMatch(/^breakglass_alarm_delivery_seconds_bucket\{channel="security-hook",le="\+Inf"\} [1-9]\d*$/m);
    expect(text).toMatch(/^breakglass_alarm_delivery_seconds_count\{channel="record"\} [1-9]\d*$/m);
    expect(text).toContain("# TYPE breakglass_expiry_lag_seconds histogram");
  });

  it("keeps an incident record: every grant of the incident, its timeline and its alarms (API and CLI)", async () => {
    const first = await activate();
    const second = await activate(); // releases the first
    const token = await t.token("bob");
    await until("the second activation's alarm", async () =>
      (await broker.store.listAlarms(second)).some((a) => a.channel === "security-hook" && a.state === "delivered"),
    );
    const res = await broker.http.inject({
      method: "GET",
      url: "/api/v1/incidents/INC-11",
      headers: { authorization: `Bearer ${token}` },
    });
    const r = IncidentViewSchema.parse(res.json());
    expect(r.grants.map((g) => g.id)).toEqual(expect.arrayContaining([first, second]));
    const ofFirst = r.timeline.filter((e) => e.grantId === first).map((e) => e.type);
    expect(ofFirst).toEqual(
      expect.arrayContaining(["grant.requested", "grant.approved", "grant.activated", "grant.released"]),
    );
    expect(ofFirst.indexOf("grant.requested")).toBeLessThan(ofFirst.indexOf("grant.released"));
    expect(r.alarms).toContainEqual(
      expect.objectContaining({
        grantId: second,
        channel: "security-hook",
        event: "grant.activated",
        state: "delivered",
      }),
    );
    const cli = await runCli(["incident", "INC-11"], { BREAKGLASS_URL: url, BREAKGLASS_TOKEN: token });
    expect(cli.code, cli.stderr).toBe(0);
    expect(cli.stdout).toMatch(/^Incident INC-11: \d+ grant\(s\)/);
    expect(cli.stdout).toMatch(/security-hook\s+grant\.activated\s+delivered in \d+ ms/);
    const missing = await broker.http.inject({
      method: "GET",
      url: "/api/v1/incidents/INC-0",
      headers: { authorization: `Bearer ${token}` },
    });
    expect(missing.json()).toMatchObject({ code: "ERR_NOT_FOUND" });
  });

  it("escalates an activation nobody acknowledged, and not one that was acknowledged", async () => {
    // No escalation pass while the test acknowledges one of the two: the CLI takes as long as it
    // takes on a busy machine, and the order is what is tested, not how fast a human acks.
    await broker.escalation?.stop();
    const ignored = await activate();
    const acked = await broker.service.request(ctx("dave"), {
      roleId: "production/db-admin",
      justification: "second responder needs access",
      incident: "INC-12",
      durationS: 600,
    });
    const ackedAt = (await broker.service.approve(ctx("bob"), acked.id, null)).activatedAt ?? 0;
    await expect(broker.service.acknowledge(ctx("dave"), acked.id, null)).rejects.toMatchObject({
      code: "ERR_FORBIDDEN",
    });
    const token = await t.token("carol");
    const ack = await runCli(["ack", acked.id, "--comment", "on it"], { BREAKGLASS_URL: url, BREAKGLASS_TOKEN: token });
    expect(ack.code, ack.stderr).toBe(0);
    // Both are past escalation.after (1.5 s) when the running worker's passes resume.
    await until("both activations past escalation.after", () => Date.now() - ackedAt > 1_600);
    broker.escalation?.start();
    const escalatedIds = () =>
      readJsonLines<{ event: { type: string; grant?: string }; summary: string }>(join(dir, "alarms.jsonl")).filter(
        (m) => m.event.type === "alarm.escalated",
      );
    const esc = await until("escalation of the ignored grant", () =>
      escalatedIds().find((m) => m.event.grant === ignored),
    );
    expect(esc.summary).toContain(`ESCALATED: nobody acknowledged break-glass grant ${ignored}`);
    await sleep(1500);
    expect(escalatedIds().filter((m) => m.event.grant === acked.id)).toEqual([]);
    expect(escalatedIds().filter((m) => m.event.grant === ignored)).toHaveLength(1);
    await broker.service.release(ctx("dave"), acked.id);
  });

  it("sends each signed checkpoint to the channels routed audit.checkpoint: an anchor outside the broker", async () => {
    const cp = await broker.checkpoints.checkpointNow();
    expect(cp).not.toBeNull();
    const copy = await until("checkpoint in the file channel", () =>
      readJsonLines<{ event: { type: string }; checkpoint?: Checkpoint }>(join(dir, "alarms.jsonl")).find(
        (m) => m.event.type === "audit.checkpoint" && m.checkpoint?.seq === cp?.seq,
      ),
    );
    // The receiver's copy verifies with the public key alone.
    const keys = loadPublicKeys([broker.signingKey.publicKeyPem]);
    expect(copy.checkpoint && keys.verifySignature(checkpointMessage(copy.checkpoint), copy.checkpoint)).toBe(true);
  });
});
