/**
 * Slack and PagerDuty channels against local receivers, checked against the documented payload
 * shapes: Slack incoming webhooks (text + Block Kit) and PagerDuty Events API v2 (trigger at
 * activation, resolve at the end, one dedup_key per grant).
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Broker } from "../src/app.js";
import { ctx } from "./support/ctx.js";
import { startTestBroker, type TestBroker } from "./support/test-broker.js";
import { until } from "./support/wait.js";

const ROUTING_KEY = "R0123456789abcdef0123456789abcdef";
const bodies = new Map<string, Record<string, unknown>[]>();
let server: Server;
let t: TestBroker;
let broker: Broker;

beforeAll(async () => {
  server = createServer((req, res) => {
    let body = "";
    req.on("data", (c: Buffer) => {
      body += c.toString("utf8");
    });
    req.on("end", () => {
      const list = bodies.get(req.url ?? "") ?? [];
      list.push(JSON.parse(body) as Record<string, unknown>);
      bodies.set(req.url ?? "", list);
      // What the real services answer: Slack "ok", PagerDuty 202 with a status object.
      if (req.url === "/pd") res.writeHead(202, { "content-type": "application/json" }).end('{"status":"success"}');
      else res.writeHead(200).end("ok");
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  t = await startTestBroker({
    base: "minimal",
    env: { SLACK_URL: `http://127.0.0.1:${port}/slack`, PD_KEY: ROUTING_KEY },
    config: {
      server: { public_url: "https://breakglass.example.com" },
      alarms: {
        channels: {
          slack: { type: "slack", url: { env: "SLACK_URL" } },
          pager: { type: "pagerduty", routing_key: { env: "PD_KEY" }, url: `http://127.0.0.1:${port}/pd` },
        },
        security_channels: ["pager", "slack"],
        routes: [
          {
            events: ["grant.requested", "grant.released", "grant.expired", "grant.revoked"],
            channels: ["slack", "pager"],
          },
        ],
      },
      users: { alice: { name: "Alice" }, bob: { name: "Bob" } },
      groups: { oncall: ["alice"], leads: ["bob"] },
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
            },
          },
        },
      },
      targets: { box: { connector: "exec", settings: { grant: ["true"], revoke: ["true"] } } },
    },
  });
  broker = t.broker;
});
afterAll(async () => {
  await t?.stop();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

describe("slack and pagerduty channels", () => {
  it("page at activation and resolve at the end under one dedup_key; Slack gets Block Kit with links", async () => {
    const g = await broker.service.request(ctx("alice"), {
      roleId: "production/db-admin",
      justification: "replica lag is growing",
      incident: "INC-21",
      durationS: 600,
    });
    await broker.service.approve(ctx("bob"), g.id, null);
    const trigger = await until("PagerDuty trigger", () =>
      bodies
        .get("/pd")
        ?.find((b) => b.event_action === "trigger" && (b.payload as { class?: string })?.class === "grant.activated"),
    );
    expect(trigger).toMatchObject({
      routing_key: ROUTING_KEY,
      dedup_key: `breakglass-${g.id}`,
      payload: {
        summary: `Break-glass grant ${g.id} (production/db-admin, INC-21) is active`,
        source: "breakglass",
        severity: "warning",
        component: "production/db-admin",
        group: "production",
      },
      links: [{ href: `https://breakglass.example.com/grants/${g.id}`, text: `Grant ${g.id} in Breakglass` }],
    });
    expect(["critical", "error", "warning", "info"]).toContain((trigger.payload as { severity: string }).severity);

    await broker.service.release(ctx("alice"), g.id);
    const resolve = await until("PagerDuty resolve", () =>
      bodies.get("/pd")?.find((b) => b.event_action === "resolve"),
    );
    expect(resolve).toEqual({ routing_key: ROUTING_KEY, event_action: "resolve", dedup_key: `breakglass-${g.id}` });

    const slack = await until("Slack request message", () =>
      bodies.get("/slack")?.find((b) => String(b.text).includes("requests break-glass access")),
    );
    const blocks = slack.blocks as { type: string; elements?: { url?: string; text?: { text: string } }[] }[];
    expect(blocks[0]).toMatchObject({ type: "header", text: { type: "plain_text", text: "grant.requested" } });
    expect(blocks.map((b) => b.type)).toEqual(["header", "section", "section", "actions", "context"]);
    expect(blocks.find((b) => b.type === "actions")?.elements?.[0]).toMatchObject({
      type: "button",
      text: { text: "Approve or deny" },
      url: `https://breakglass.example.com/grants/${g.id}`,
    });
    // The request also went to PagerDuty as its own incident, not under the grant's dedup_key.
    const requested = bodies.get("/pd")?.find((b) => (b.payload as { class?: string })?.class === "grant.requested");
    expect(requested?.dedup_key).toMatch(/^breakglass-a_\d+_pager$/);
  });
});
