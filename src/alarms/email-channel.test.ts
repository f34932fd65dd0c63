/**
 * The e-mail channel: who gets an alarm, what the mail says, and when a failed send is retried —
 * against a real SMTP server on loopback (smtp-server), mails parsed with postal-mime.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { makeGrant, makePolicy, ROLE_DB_ADMIN } from "../../test/support/core-fixtures.js";
import { freePort } from "../../test/support/free-port.js";
import { SmtpReceiver } from "../../test/support/smtp-receiver.js";
import { openUnitStore, routeAllTo, type UnitStore } from "../../test/support/unit-store.js";
import type { AlarmChannelConfig } from "../config/app-config.js";
import type { AuditEventDraft } from "../core/audit-event.js";
import { grantEvent } from "../core/grant-machine.js";
import type { Policy } from "../core/model.js";
import { createSecretResolver } from "../secrets/secret-ref.js";
import { createEmailChannel, recipients, renderEmail } from "./email-channel.js";

type EmailConfig = Extract<AlarmChannelConfig, { type: "email" }>;
const URL_BASE = "https://breakglass.example.com";

const smtp = new SmtpReceiver();
let u: UnitStore;

beforeAll(() => smtp.start());
afterAll(() => smtp.stop());
beforeEach(async () => {
  u = await openUnitStore({ routing: routeAllTo("mail") });
  smtp.received.length = 0;
  smtp.refuseWith = null;
});
afterEach(() => u.close());

const config = (over: Partial<EmailConfig> = {}): EmailConfig => ({
  type: "email",
  name: "mail",
  smtpUrl: `smtp://127.0.0.1:${smtp.port}`,
  requireTls: false,
  from: "Breakglass <breakglass@example.com>",
  to: [],
  toGroups: [],
  toApprovers: false,
  toHolder: false,
  toHolderManagers: false,
  timeoutMs: 5_000,
  ...over,
});
/** The fixture policy with alice's manager group set (sre-leads: bob, carol, dave). */
const policy = (): Policy => {
  const p = makePolicy();
  const users = new Map(p.users);
  const alice = users.get("alice");
  if (alice) users.set("alice", { ...alice, managerGroup: "sre-leads" });
  return { ...p, users };
};
const channel = (c: EmailConfig, holder: string | null = null) =>
  createEmailChannel(
    c,
    createSecretResolver({ baseDir: "/", env: {}, box: null }),
    policy(),
    URL_BASE,
    async () => holder,
  );
const queued = (draft: AuditEventDraft) => u.alarmFor("mail", draft);
const requested = () => grantEvent(makeGrant({ id: "g_mail" }), "grant.requested", "alice", u.clock.now());

describe("who gets an alarm by e-mail", () => {
  it("fixed addresses, members of the listed groups and the role's approvers, each once, sorted", () => {
    const event = { type: "grant.requested", role: ROLE_DB_ADMIN };
    const c = config({ to: ["soc@example.com"], toGroups: ["security"], toApprovers: true });
    expect(recipients(c, policy(), event)).toEqual([
      "bob@example.test",
      "carol@example.test",
      "dave@example.test",
      "erin@example.test",
      "soc@example.com",
    ]);
    // No role (an event that is not a grant's): no approvers.
    expect(recipients(c, policy(), { type: "auth.fallback_login" })).toEqual([
      "carol@example.test",
      "erin@example.test",
      "soc@example.com",
    ]);
  });

  it("the grant's holder and the holder's manager group, when asked", () => {
    const event = { type: "grant.ending_soon", role: ROLE_DB_ADMIN };
    expect(recipients(config({ toHolder: true }), policy(), event, "alice")).toEqual(["alice@example.test"]);
    expect(recipients(config({ toHolderManagers: true }), policy(), event, "alice")).toEqual([
      "bob@example.test",
      "carol@example.test",
      "dave@example.test",
    ]);
    expect(recipients(config({ toHolder: true }), policy(), event, null)).toEqual([]);
  });
});

describe("the mail", () => {
  it("says what happened in text and HTML, with the grant's link; an emergency says so in the subject", async () => {
    const payload = JSON.parse((await queued(requested())).payload);
    const m = renderEmail(payload, URL_BASE);
    expect(m.subject).toBe(`[Breakglass] ${payload.summary}`);
    expect(m.text).toContain(`Open: ${URL_BASE}/grants/g_mail`);
    expect(m.text).toContain("Incident: INC-4711");
    expect(m.html).toContain(`<a href="${URL_BASE}/grants/g_mail">`);
    const emergency = renderEmail({ ...payload, severity: "critical" }, URL_BASE);
    expect(emergency.subject).toMatch(/^\[Breakglass\] EMERGENCY: /);
  });

  it("keeps someone's text from adding headers or markup", async () => {
    const sneaky = makeGrant({
      id: "g_mail",
      incident: "INC-1\r\nBcc: attacker@example.com",
      justification: "<img src=x onerror=alert(1)>",
    });
    const payload = JSON.parse((await queued(grantEvent(sneaky, "grant.requested", "alice", 1))).payload);
    const m = renderEmail({ ...payload, summary: `${payload.summary}\nBcc: attacker@example.com` }, URL_BASE);
    expect(m.subject).not.toMatch(/[\r\n]/);
    expect(m.text).toContain("Incident: INC-1\\x0d\\x0aBcc: attacker@example.com");
    // Nothing of someone's text starts a line of the body: not in a fact, not in the summary.
    expect(m.text.split("\n").filter((line) => line.startsWith("Bcc:"))).toEqual([]);
    expect(m.html).not.toContain("<img");
    expect(m.html).toContain("&lt;img src=x onerror=alert(1)&gt;");
  });
});

describe("delivery", () => {
  it("sends one mail per alarm whose Message-ID is its idempotency key", async () => {
    const alarm = await queued(requested());
    await channel(config({ to: ["soc@example.com"], toApprovers: true })).deliver(alarm);
    const [sent] = smtp.received;
    expect(sent?.rcpt).toEqual(["bob@example.test", "carol@example.test", "dave@example.test", "soc@example.com"]);
    expect(sent?.mail.messageId).toBe(`<${alarm.id}@breakglass>`);
    expect(sent?.mail.headers).toEqual(
      expect.arrayContaining([expect.objectContaining({ key: "x-breakglass-idempotency-key", value: alarm.id })]),
    );
  });

  it("asks who holds the grant only when mailing holders", async () => {
    const alarm = await queued(
      grantEvent(makeGrant({ id: "g_mail" }), "grant.ending_soon", "system", 1, { remainingS: 60, holder: "alice" }),
    );
    await channel(config({ toHolder: true }), "alice").deliver(alarm);
    expect(smtp.received[0]?.rcpt).toEqual(["alice@example.test"]);
  });

  it("gives up when nobody is left to mail, or the server refuses for good (5xx); retries a 4xx or no server", async () => {
    const alarm = await queued(requested());
    await expect(channel(config()).deliver(alarm)).rejects.toMatchObject({
      permanent: true,
      message: "no recipients with an e-mail address for grant.requested",
    });
    const c = config({ to: ["soc@example.com"] });
    smtp.refuseWith = 550;
    await expect(channel(c).deliver(alarm)).rejects.toMatchObject({
      permanent: true,
      message: expect.stringContaining("550"),
    });
    smtp.refuseWith = 451;
    await expect(channel(c).deliver(alarm)).rejects.toMatchObject({
      permanent: false,
      message: expect.stringContaining("451"),
    });
    smtp.refuseWith = null;
    const down = config({ to: ["soc@example.com"], smtpUrl: `smtp://127.0.0.1:${await freePort()}` });
    await expect(channel(down).deliver(alarm)).rejects.toMatchObject({ permanent: false });
    expect(smtp.received).toEqual([]);
  });
});
