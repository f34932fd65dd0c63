/**
 * The registry builds every configured channel — e-mail included — from a real configuration file,
 * each from its own settings: checked by delivering real alarms through the file, webhook and
 * e-mail channels (the latter mailing the grant's holder, read from the store).
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeGrant } from "../../test/support/core-fixtures.js";
import { SmtpReceiver } from "../../test/support/smtp-receiver.js";
import { loadTestConfig, writeTestConfig } from "../../test/support/test-broker.js";
import { openUnitStore, type UnitStore } from "../../test/support/unit-store.js";
import { Receiver, WEBHOOK_SECRET } from "../../test/support/webhook-receiver.js";
import type { AppConfig } from "../config/app-config.js";
import { grantEvent } from "../core/grant-machine.js";
import { createSecretResolver } from "../secrets/secret-ref.js";
import { createAlarmChannels } from "./channel-registry.js";

let dir: string;
let receiver: Receiver;
const smtp = new SmtpReceiver();
let config: AppConfig;
let u: UnitStore;
const env = { HOOK_SECRET: WEBHOOK_SECRET, SLACK_URL: "http://127.0.0.1:9/slack", PD_KEY: "pd-key" };

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "bg-registry-"));
  receiver = new Receiver();
  await receiver.start();
  await smtp.start();
  config = loadTestConfig(
    writeTestConfig({
      base: "minimal",
      dir,
      env,
      config: {
        server: { public_url: "https://bg.example.com" },
        users: { alice: { name: "Alice", email: "alice@example.com" }, bob: { name: "Bob" } },
        groups: { oncall: ["alice"], leads: ["bob"] },
        alarms: {
          channels: {
            record: { type: "file", path: "./alarms.jsonl" },
            hook: { type: "webhook", url: `http://127.0.0.1:${receiver.port}/hook`, secret: { env: "HOOK_SECRET" } },
            chat: { type: "slack", url: { env: "SLACK_URL" } },
            pager: { type: "pagerduty", routing_key: { env: "PD_KEY" } },
            siem: { type: "syslog", host: "127.0.0.1", port: 6514, tls: false },
            mail: {
              type: "email",
              smtp_url: `smtp://127.0.0.1:${smtp.port}`,
              require_tls: false,
              from: "bg@example.com",
              to_holder: true,
            },
          },
          security_channels: ["record", "hook", "mail"],
          routes: [],
        },
      },
    }),
  );
  u = await openUnitStore({ now: Date.now(), routing: config.alarms.routing });
  receiver.now = () => u.clock.now();
});
afterAll(async () => {
  await u?.close();
  await receiver?.stop();
  await smtp.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("the channel registry", () => {
  it("builds every configured channel by its name, e-mail included", () => {
    const channels = createAlarmChannels(
      config,
      config.policy,
      u.store,
      createSecretResolver({ baseDir: dir, env, box: null }),
      u.clock,
    );
    expect([...channels.keys()].sort()).toEqual(["chat", "hook", "mail", "pager", "record", "siem"]);
    for (const [name, channel] of channels) expect(channel.name).toBe(name);
  });

  it("builds each from its own settings: the file's path, the webhook's secret and clock, the holder read for e-mail", async () => {
    const channels = createAlarmChannels(
      config,
      config.policy,
      u.store,
      createSecretResolver({ baseDir: dir, env, box: null }),
      u.clock,
    );
    const grant = makeGrant({ id: "g_reg", requester: "alice" });
    await u.store.transaction((tx) => tx.saveGrant(grant, null));
    const alarms = await u.record(grantEvent(grant, "grant.activated", "system", u.clock.now()));
    expect(alarms.map((a) => a.channel).sort()).toEqual(["hook", "mail", "record"]);
    for (const a of alarms) await channels.get(a.channel)?.deliver(a);
    const line = JSON.parse(readFileSync(join(dir, "alarms.jsonl"), "utf8"));
    expect(line).toMatchObject({ channel: "record", event: { grant: "g_reg" } });
    expect(receiver.received.map((r) => r.body.event)).toMatchObject([{ grant: "g_reg" }]);
    expect(smtp.received.map((m) => m.rcpt)).toEqual([["alice@example.com"]]);
  });
});
