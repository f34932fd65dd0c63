// biome-ignore lint/style/noRestrictedImports: tests use vitest
import { describe, expect, it } from "vitest";
import { type AlarmRouting, alarmBackoffMs, eventMatches, isUnalarmed, routeAlarms } from "./alarm-routing.js";
import type { SealedAuditEvent } from "./audit-event.js";

const event = (seq: number, type: string, domain: string | null = "production"): SealedAuditEvent => ({
  seq,
  at: 1_000 + seq,
  type: type as SealedAuditEvent["type"],
  actor: "alice",
  grantId: "g_1",
  payload: JSON.stringify({
    type,
    actor: "alice",
    grant: "g_1",
    role: "production/db-admin",
    domain,
    incident: "INC-1",
  }),
  hash: `h${seq}`,
});

const routing: AlarmRouting = {
  securityChannels: ["security"],
  routes: [
    { events: ["grant.requested"], channels: ["approvers"], domains: null },
    { events: ["target.*"], channels: ["ops"], domains: ["production"] },
  ],
};

describe("alarm routing", () => {
  it("always sends activations to the security channels, whatever the routes say", () => {
    const out = routeAlarms([event(1, "grant.activated"), event(2, "grant.emergency_activated", "staging")], {
      securityChannels: ["security", "pager"],
      routes: [],
    });
    expect(out.map((a) => a.id)).toEqual(["a_1_pager", "a_1_security", "a_2_pager", "a_2_security"]);
    expect(JSON.parse(out[2]?.payload ?? "{}")).toMatchObject({
      idempotencyKey: "a_2_pager",
      severity: "critical",
      summary: "EMERGENCY break-glass activation g_1 (production/db-admin, INC-1) by alice, without approval",
      event: { seq: 2, hash: "h2", type: "grant.emergency_activated" },
    });
  });

  it("escalates an overdue review: to the security and escalation channels, whatever the routes say", () => {
    const out = routeAlarms([event(1, "grant.review_overdue", "staging")], {
      securityChannels: ["security"],
      escalationChannels: ["pager-secondary"],
      routes: [{ events: ["grant.requested"], channels: ["approvers"], domains: null }],
    });
    expect(out.map((a) => a.id)).toEqual(["a_1_pager-secondary", "a_1_security"]);
  });

  it("routes other events by type glob and domain, one alarm per channel, queued at the event's time", () => {
    const out = routeAlarms(
      [
        event(1, "grant.requested"),
        event(2, "target.revoke_failed"),
        event(3, "target.revoke_failed", "staging"),
        event(4, "grant.denied"),
      ],
      routing,
    );
    expect(out.map((a) => [a.id, a.state, a.nextAt])).toEqual([
      ["a_1_approvers", "queued", 1001],
      ["a_2_ops", "queued", 1002],
    ]);
    expect(eventMatches("*", "anything")).toBe(true);
    expect(eventMatches("grant.*", "grant.activated")).toBe(true);
    expect(eventMatches("grant.*", "target.revoked")).toBe(false);
  });

  it("takes a normal activation's severity from its role; an emergency is always critical", () => {
    const perRole: AlarmRouting = {
      securityChannels: ["security"],
      routes: [],
      roleSeverity: new Map([["production/db-admin", "critical" as const]]),
    };
    const severity = (e: SealedAuditEvent, r: AlarmRouting) =>
      (JSON.parse(routeAlarms([e], r)[0]?.payload ?? "{}") as { severity: string }).severity;
    expect(severity(event(1, "grant.activated"), perRole)).toBe("critical");
    expect(
      severity(event(1, "grant.activated"), { ...perRole, roleSeverity: new Map([["production/db-admin", "info"]]) }),
    ).toBe("info");
    expect(severity(event(1, "grant.activated"), { securityChannels: ["security"], routes: [] })).toBe("warning");
    expect(
      severity(event(2, "grant.emergency_activated"), {
        ...perRole,
        roleSeverity: new Map([["production/db-admin", "info"]]),
      }),
    ).toBe("critical");
  });

  it("tells people what to do about an ending grant and an overdue review", () => {
    const all: AlarmRouting = {
      securityChannels: ["security"],
      routes: [{ events: ["*"], channels: ["ops"], domains: null }],
    };
    const withData = (seq: number, type: string, data: Record<string, unknown>): SealedAuditEvent => {
      const e = event(seq, type);
      return { ...e, payload: JSON.stringify({ ...JSON.parse(e.payload), data }) };
    };
    const summary = (e: SealedAuditEvent) =>
      (JSON.parse(routeAlarms([e], all)[0]?.payload ?? "{}") as { summary: string }).summary;
    expect(summary(withData(1, "grant.ending_soon", { remainingS: 599, holder: "alice" }))).toBe(
      "Break-glass grant g_1 (production/db-admin, INC-1) of alice ends in 10 min: finish up, or `breakglass extend g_1` if the role allows",
    );
    expect(summary(withData(2, "grant.review_overdue", { overdueS: 7300, emergency: true }))).toBe(
      "Review overdue by 2 h: emergency break-glass grant g_1 (production/db-admin, INC-1) has not been reviewed — `breakglass review g_1`",
    );
  });

  it("backs off 1 s, 2 s, 4 s … up to 5 minutes", () => {
    expect([1, 2, 3, 10, 50].map(alarmBackoffMs)).toEqual([1000, 2000, 4000, 300_000, 300_000]);
  });

  it("flags an activation unalarmed once no security channel delivered it in time — not before, not after a delivery", () => {
    const alarms = routeAlarms([event(5, "grant.emergency_activated")], { securityChannels: ["a", "b"], routes: [] });
    const at = 1_005;
    expect(isUnalarmed(alarms, { securityChannels: ["a", "b"], routes: [] }, at, at + 59_999, 60_000)).toBe(false);
    expect(isUnalarmed(alarms, { securityChannels: ["a", "b"], routes: [] }, at, at + 60_000, 60_000)).toBe(true);
    const oneDelivered = alarms.map((a) => (a.channel === "b" ? { ...a, state: "delivered" as const } : a));
    expect(isUnalarmed(oneDelivered, { securityChannels: ["a", "b"], routes: [] }, at, at + 120_000, 60_000)).toBe(
      false,
    );
    expect(isUnalarmed([], { securityChannels: ["a"], routes: [] }, at, at + 120_000, 60_000)).toBe(false);
  });
});
