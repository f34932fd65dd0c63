/**
 * The Slack channel: Block Kit messages built from real alarms (queued by the audit journal), what
 * someone's text can and cannot do inside them, and delivery to a real HTTP receiver.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { makeGrant } from "../../test/support/core-fixtures.js";
import { type HttpCapture, startHttpCapture } from "../../test/support/http-capture.js";
import { openUnitStore, routeAllTo, type UnitStore } from "../../test/support/unit-store.js";
import type { AuditEventDraft } from "../core/audit-event.js";
import { nonGrantEvent } from "../core/audit-event.js";
import { grantEvent } from "../core/grant-machine.js";
import { createSecretResolver } from "../secrets/secret-ref.js";
import type { AlarmMessage } from "./alarm-channel.js";
import { createSlackChannel, mrkdwnText, slackMessage } from "./slack-channel.js";

const URL_BASE = "https://breakglass.example.com";
let u: UnitStore;
let capture: HttpCapture;

beforeAll(async () => {
  capture = await startHttpCapture();
});
afterAll(() => capture.stop());
beforeEach(async () => {
  u = await openUnitStore({ routing: routeAllTo("slack") });
});
afterEach(() => u.close());

const queued = (draft: AuditEventDraft) => u.alarmFor("slack", draft);
const messageOf = async (draft: AuditEventDraft) =>
  slackMessage(JSON.parse((await queued(draft)).payload) as AlarmMessage, URL_BASE) as {
    text: string;
    blocks: { type: string; text?: { text: string }; fields?: { text: string }[]; elements?: unknown[] }[];
  };
const grant = makeGrant({ id: "g_slack", justification: "db down <!channel> see <https://evil.example|the runbook>" });

describe("Slack messages", () => {
  it("escape someone's text: no @channel, no planted link", async () => {
    const m = await messageOf(grantEvent(grant, "grant.requested", "alice", u.clock.now()));
    const justification = m.blocks.flatMap((b) => b.fields ?? []).find((f) => f.text.startsWith("*Justification*"));
    expect(justification?.text).toBe(
      "*Justification*\ndb down &lt;!channel&gt; see &lt;https://evil.example|the runbook&gt;",
    );
    expect(JSON.stringify(m)).not.toContain("<!channel>");
    expect(mrkdwnText("a & b <@U123> \u202e")).toBe("a &amp; b &lt;@U123&gt; \\u202e");
  });

  it("keep someone's text from starting a line of the message: the summary and every fact but the justification on one line", async () => {
    const sneaky = makeGrant({
      id: "g_slack",
      incident: "INC-1\n*Approved by* security",
      justification: "db down\nsee runbook",
    });
    const m = await messageOf(grantEvent(sneaky, "grant.requested", "alice", u.clock.now()));
    const section = m.blocks.find((b) => b.type === "section" && b.text)?.text?.text ?? "";
    const fields = m.blocks.flatMap((b) => b.fields ?? []).map((f) => f.text);
    expect(section).toContain("INC-1\\x0a*Approved by* security");
    expect(m.text).not.toContain("\n");
    expect(fields).toContain("*Incident*\nINC-1\\x0a*Approved by* security");
    // The justification is prose: its lines are kept.
    expect(fields).toContain("*Justification*\ndb down\nsee runbook");
  });

  it("say what to do: approve a request, review an ended grant, open an active one", async () => {
    const buttons = async (type: "grant.requested" | "grant.expired" | "grant.activated") => {
      const m = await messageOf(grantEvent(grant, type, "alice", u.clock.now()));
      return m.blocks.find((b) => b.type === "actions")?.elements;
    };
    expect(await buttons("grant.requested")).toEqual([
      { type: "button", text: { type: "plain_text", text: "Approve or deny" }, url: `${URL_BASE}/grants/g_slack` },
    ]);
    expect(await buttons("grant.expired")).toMatchObject([{ text: { text: "Review" } }]);
    expect(await buttons("grant.activated")).toMatchObject([{ text: { text: "Open grant" } }]);
  });

  it("shout an emergency, and carry no buttons for an event without a grant", async () => {
    const emergency = await messageOf(grantEvent(grant, "grant.emergency_activated", "alice", u.clock.now()));
    expect(emergency.blocks[0]?.text?.text).toBe("EMERGENCY: grant.emergency_activated");
    expect(emergency.text).toMatch(/^:rotating_light: EMERGENCY break-glass activation g_slack/);
    const login = await messageOf(nonGrantEvent("auth.fallback_login", "bob", u.clock.now(), { user: "bob" }));
    expect(login.blocks.some((b) => b.type === "actions")).toBe(false);
    expect(login.blocks.at(-1)).toMatchObject({ type: "context" });
  });

  it("are posted to the incoming-webhook URL from the secret reference", async () => {
    const alarm = await queued(grantEvent(grant, "grant.requested", "alice", u.clock.now()));
    const channel = createSlackChannel(
      { type: "slack", name: "slack", url: { env: "SLACK_URL" }, timeoutMs: 2_000 },
      createSecretResolver({ baseDir: "/", env: { SLACK_URL: `${capture.url}/services/T/B/X` }, box: null }),
      URL_BASE,
    );
    await channel.deliver(alarm);
    const [req] = capture.requests;
    expect(req?.path).toBe("/services/T/B/X");
    expect(JSON.parse(req?.body ?? "{}")).toEqual(slackMessage(JSON.parse(alarm.payload) as AlarmMessage, URL_BASE));
  });
});
