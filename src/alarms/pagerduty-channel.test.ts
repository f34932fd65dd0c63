/**
 * The PagerDuty channel: Events API v2 events built from real alarms (queued by the audit
 * journal) — one incident per grant, triggered at activation and resolved at its end — and
 * delivery to a real HTTP receiver.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { makeGrant } from "../../test/support/core-fixtures.js";
import { type HttpCapture, startHttpCapture } from "../../test/support/http-capture.js";
import { openUnitStore, routeAllTo, type UnitStore } from "../../test/support/unit-store.js";
import type { AuditEventDraft } from "../core/audit-event.js";
import { grantEvent } from "../core/grant-machine.js";
import { createSecretResolver } from "../secrets/secret-ref.js";
import type { AlarmMessage } from "./alarm-channel.js";
import { createPagerDutyChannel, pagerDutyEvent } from "./pagerduty-channel.js";

const URL_BASE = "https://breakglass.example.com";
let u: UnitStore;
let capture: HttpCapture;

beforeAll(async () => {
  capture = await startHttpCapture();
});
afterAll(() => capture.stop());
beforeEach(async () => {
  u = await openUnitStore({ routing: routeAllTo("pd") });
});
afterEach(() => u.close());

const queued = (draft: AuditEventDraft) => u.alarmFor("pd", draft);
const eventOf = async (draft: AuditEventDraft) =>
  pagerDutyEvent(JSON.parse((await queued(draft)).payload) as AlarmMessage, "routing-key", URL_BASE);
const grant = makeGrant({ id: "g_pd" });

describe("PagerDuty events", () => {
  it("trigger one incident per grant at activation and resolve it at the grant's end", async () => {
    const trigger = await eventOf(grantEvent(grant, "grant.emergency_activated", "alice", u.clock.now()));
    expect(trigger).toMatchObject({
      routing_key: "routing-key",
      event_action: "trigger",
      dedup_key: "breakglass-g_pd",
      payload: {
        source: "breakglass",
        severity: "critical",
        class: "grant.emergency_activated",
        component: grant.roleId,
        group: "production",
        custom_details: { type: "grant.emergency_activated", grant: "g_pd" },
      },
      links: [{ href: `${URL_BASE}/grants/g_pd`, text: "Grant g_pd in Breakglass" }],
    });
    for (const end of ["grant.expired", "grant.revoked", "grant.released"] as const) {
      expect(await eventOf(grantEvent(grant, end, "system", u.clock.now()))).toEqual({
        routing_key: "routing-key",
        event_action: "resolve",
        dedup_key: "breakglass-g_pd",
      });
    }
  });

  it("page anything else as its own incident, with a one-line summary of at most 1024 characters", async () => {
    const alarm = await queued(
      grantEvent(
        makeGrant({ id: "g_pd", incident: `INC-1\nfake line ${"x".repeat(2000)}` }),
        "grant.requested",
        "alice",
        1,
      ),
    );
    const e = pagerDutyEvent(JSON.parse(alarm.payload) as AlarmMessage, "routing-key", URL_BASE) as {
      event_action: string;
      dedup_key: string;
      payload: { summary: string };
    };
    expect(e.event_action).toBe("trigger");
    expect(e.dedup_key).toBe(`breakglass-${alarm.id}`);
    expect(e.payload.summary).toHaveLength(1024);
    expect(e.payload.summary).not.toContain("\n");
  });

  it("are posted to the configured Events API URL with the routing key from its secret", async () => {
    const alarm = await queued(grantEvent(grant, "grant.activated", "system", u.clock.now()));
    const channel = createPagerDutyChannel(
      {
        type: "pagerduty",
        name: "pd",
        routingKey: { env: "PD_KEY" },
        url: `${capture.url}/v2/enqueue`,
        timeoutMs: 2_000,
      },
      createSecretResolver({ baseDir: "/", env: { PD_KEY: "key-from-secret" }, box: null }),
      URL_BASE,
    );
    await channel.deliver(alarm);
    expect(capture.requests.map((r) => r.path)).toEqual(["/v2/enqueue"]);
    expect(JSON.parse(capture.requests[0]?.body ?? "{}")).toMatchObject({
      routing_key: "key-from-secret",
      event_action: "trigger",
      dedup_key: "breakglass-g_pd",
    });
    capture.status = 400;
    await expect(channel.deliver(alarm)).rejects.toMatchObject({ permanent: true });
    capture.status = 202;
  });
});
