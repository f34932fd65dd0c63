/**
 * The e-mail channel against a real SMTP server on loopback (smtp-server), mails parsed with
 * postal-mime: recipients from fixed addresses, groups, the role's approvers, the holder and the
 * holder's manager group; plain text and
 * HTML; the Message-ID from the idempotency key; a server that refuses with 5xx is not retried.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Broker } from "../src/app.js";
import { ctx } from "./support/ctx.js";
import { SmtpReceiver } from "./support/smtp-receiver.js";
import { startTestBroker, type TestBroker } from "./support/test-broker.js";
import { until } from "./support/wait.js";

const smtp = new SmtpReceiver();
const received = smtp.received;
let t: TestBroker;
let broker: Broker;

beforeAll(async () => {
  await smtp.start();
  const mail = {
    type: "email",
    smtp_url: `smtp://127.0.0.1:${smtp.port}`,
    require_tls: false,
    from: "Breakglass <breakglass@example.com>",
  } as const;
  t = await startTestBroker({
    base: "minimal",
    config: {
      server: { public_url: "https://breakglass.example.com" },
      alarms: {
        channels: {
          mail: { ...mail, to: ["soc@example.com"], to_groups: ["security"], to_approvers: true },
          holder: { ...mail, to_holder: true, to_holder_managers: true },
        },
        security_channels: ["mail"],
        routes: [
          { events: ["grant.requested"], channels: ["mail"] },
          { events: ["grant.ending_soon"], channels: ["holder"] },
        ],
      },
      users: {
        alice: { name: "Alice", email: "alice@example.com", manager_group: "leads" },
        bob: { name: "Bob", email: "bob@example.com" },
        carol: { name: "Carol", email: "carol@example.com" },
        erin: { name: "Erin" },
      },
      groups: { oncall: ["alice"], leads: ["bob", "erin"], security: ["carol"] },
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
  await smtp.stop();
});

describe("e-mail channel", () => {
  it("mails the request to the approvers and security, and the activation, in text and HTML", async () => {
    const g = await broker.service.request(ctx("alice"), {
      roleId: "production/db-admin",
      justification: "disk <full> & growing",
      incident: "INC-31",
      durationS: 600,
    });
    const request = await until("request mail", () =>
      received.find((r) => r.mail.subject?.includes("requests break-glass access")),
    );
    // Fixed address, the security group, and the approvers (erin has no address).
    expect(request.rcpt).toEqual(["bob@example.com", "carol@example.com", "soc@example.com"]);
    expect(request.mail.from?.address).toBe("breakglass@example.com");
    expect(request.mail.messageId).toMatch(/^<a_\d+_mail@breakglass>$/);
    expect(request.mail.text).toContain("Justification: disk <full> & growing");
    expect(request.mail.text).toContain(`Open: https://breakglass.example.com/grants/${g.id}`);
    expect(request.mail.html).toContain("disk &lt;full&gt; &amp; growing");
    expect(request.mail.headers.find((h) => h.key === "x-breakglass-idempotency-key")?.value).toMatch(/^a_\d+_mail$/);

    await broker.service.approve(ctx("bob"), g.id, null);
    const activation = await until("activation mail", () =>
      received.find((r) => r.mail.subject?.includes("is active")),
    );
    expect(activation.mail.subject).toBe(
      `[Breakglass] Break-glass grant ${g.id} (production/db-admin, INC-31) is active`,
    );
    await broker.service.release(ctx("alice"), g.id);
  });

  it("tells the holder and their manager group that the grant is ending", async () => {
    const g = await broker.service.request(ctx("alice"), {
      roleId: "production/db-admin",
      justification: "short repair window",
      incident: "INC-33",
      durationS: 4,
    });
    await broker.service.approve(ctx("bob"), g.id, null);
    const warning = await until("ending-soon mail", () =>
      received.find((r) => r.mail.subject?.includes(`grant ${g.id}`) && r.mail.subject.includes("ends in")),
    );
    // The holder, and the members of her manager group with an address (erin has none).
    expect(warning.rcpt).toEqual(["alice@example.com", "bob@example.com"]);
    // Warned halfway through a 4 s grant (the 10 min default warning is longer than the grant).
    expect(warning.mail.subject).toBe(
      `[Breakglass] Break-glass grant ${g.id} (production/db-admin, INC-33) of alice ends in ${warning.mail.subject?.match(/ends in (\d) s/)?.[1]} s: finish up, or \`breakglass extend ${g.id}\` if the role allows`,
    );
    expect(warning.mail.subject).toMatch(/ends in [12] s/);
    await broker.service.release(ctx("alice"), g.id);
  });

  it("does not retry a message the server refuses for good (5xx), and records why", async () => {
    smtp.refuseWith = 550;
    const g = await broker.service.request(ctx("alice"), {
      roleId: "production/db-admin",
      justification: "second incident today",
      incident: "INC-32",
      durationS: 600,
    });
    const failed = await until("failed alarm", async () =>
      (await broker.store.listAlarms(g.id)).find((a) => a.state === "failed"),
    );
    expect(failed).toMatchObject({ attempts: 1, lastError: expect.stringContaining("550") });
    smtp.refuseWith = null;
  });
});
