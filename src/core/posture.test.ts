// biome-ignore-all lint/style/noRestrictedImports: tests import vitest; the purity rule guards shipped core code
import { describe, expect, it } from "vitest";
import { HOUR, makeRole, T0 } from "../../test/support/core-fixtures.js";
import type { AlarmRouting } from "./alarm-routing.js";
import type { Grant, VaultOpening } from "./model.js";
import { assessPosture, assessVaultAlarms, assessVaultReviews, type PostureInput } from "./posture.js";
import type { AlarmRecord, DrillRun } from "./records.js";

const DAY = 24 * HOUR;
const NOW = T0 + 200 * DAY;
const role = makeRole({ id: "production/db-admin" });
const routing: AlarmRouting = { securityChannels: ["sec"], routes: [] };

const run = (over: Partial<DrillRun> = {}): DrillRun => ({
  id: "d_1",
  name: "db-approval",
  scenario: "approval-path",
  startedBy: "erin",
  startedAt: NOW - 3 * DAY,
  endedAt: NOW - 3 * DAY + 40_000,
  result: "passed",
  grantId: "g_d",
  timeToAccessMs: 1200,
  steps: [],
  ...over,
});

const grant = (over: Partial<Grant>): Grant =>
  ({
    id: "g_1",
    roleId: role.id,
    state: "ended",
    emergency: false,
    activatedAt: NOW - 2 * DAY,
    reviewDueAt: NOW + DAY,
    ...over,
  }) as Grant;

function input(over: Partial<PostureInput> = {}): PostureInput {
  return {
    roles: [role],
    drills: [{ name: "db-approval", scenario: "approval-path", roleId: role.id, everyS: 30 * 86_400, lastRun: run() }],
    grants: [],
    lastUseByRole: new Map([[role.id, NOW - 10 * DAY]]),
    alarmsByGrant: new Map(),
    routing,
    unalarmedAfterMs: 60_000,
    ...over,
  };
}

const itemsOf = (i: PostureInput) => assessPosture(i, NOW).roles[0]?.items ?? [];

describe("posture", () => {
  it("is green with a recent passed drill, nothing open and nothing unalarmed", () => {
    const p = assessPosture(input(), NOW);
    expect(p.status).toBe("green");
    expect(p.roles[0]).toMatchObject({
      lastUse: NOW - 10 * DAY,
      lastDrill: { name: "db-approval", result: "passed" },
      items: [],
    });
  });

  it("is red for a role no drill rehearses, with the fix", () => {
    const items = itemsOf(input({ drills: [] }));
    expect(items).toEqual([expect.objectContaining({ level: "red", what: "no drill rehearses this role" })]);
    expect(items[0]?.fix).toContain("drills");
  });

  it("is red for a drill never run, failed, or older than its interval (90 days at most); amber when due soon", () => {
    const at = (lastRun: DrillRun | null, everyS = 30 * 86_400) =>
      itemsOf(
        input({ drills: [{ name: "db-approval", scenario: "approval-path", roleId: role.id, everyS, lastRun }] }),
      );
    expect(at(null)[0]).toMatchObject({ level: "red", fix: "breakglass drill run db-approval" });
    const failed = at(
      run({
        result: "failed",
        steps: [{ name: "access works (probe)", startedAt: NOW, ms: 5, ok: false, detail: "ECONNREFUSED" }],
      }),
    )[0];
    expect(failed).toMatchObject({ level: "red" });
    expect(failed?.what).toContain('"access works (probe)": ECONNREFUSED');
    expect(failed?.fix).toContain("docs/runbooks/drill-approval-path.md");
    expect(at(run({ startedAt: NOW - 31 * DAY }))[0]).toMatchObject({ level: "red" });
    // A yearly drill is still red after 90 days.
    expect(at(run({ startedAt: NOW - 91 * DAY }), 365 * 86_400)[0]?.what).toContain("due every 90 days");
    expect(at(run({ startedAt: NOW - 25 * DAY }))[0]).toMatchObject({ level: "amber" });
  });

  it("is red for overdue reviews, amber for open ones", () => {
    expect(itemsOf(input({ grants: [grant({ reviewDueAt: NOW - HOUR })] }))[0]).toMatchObject({
      level: "red",
      what: "1 review overdue (g_1)",
    });
    expect(itemsOf(input({ grants: [grant({})] }))[0]).toMatchObject({ level: "amber" });
  });

  it("is red for an active grant whose activation alarm nobody delivered", () => {
    const active = grant({ state: "active", activatedAt: NOW - 5 * 60_000 });
    const alarm = (state: AlarmRecord["state"]): AlarmRecord => ({
      id: "a_1_sec",
      channel: "sec",
      eventSeq: 1,
      eventType: "grant.activated",
      grantId: "g_1",
      payload: "{}",
      state,
      attempts: 3,
      lastError: "timeout",
      createdAt: NOW - 5 * 60_000,
      nextAt: NOW,
      deliveredAt: state === "delivered" ? NOW : null,
    });
    const red = assessPosture(input({ grants: [active], alarmsByGrant: new Map([["g_1", [alarm("queued")]]]) }), NOW);
    expect(red.status).toBe("red");
    expect(red.roles[0]?.items[0]?.what).toContain("no security channel has delivered");
    const ok = assessPosture(input({ grants: [active], alarmsByGrant: new Map([["g_1", [alarm("delivered")]]]) }), NOW);
    expect(ok.status).toBe("green");
  });

  it("takes the worst role as the overall status", () => {
    const other = makeRole({ id: "network/edge-admin" });
    const p = assessPosture(input({ roles: [role, other] }), NOW);
    expect(p.roles.map((r) => r.status)).toEqual(["green", "red"]);
    expect(p.status).toBe("red");
  });
});

describe("tier-2 openings in posture", () => {
  const opening = (id: string, reviewDueAt: number, reviewed = false): VaultOpening => ({
    id,
    envelopeId: "e1",
    envelopeName: "aws-root",
    recordSeq: 1,
    recordHash: "h",
    openedAt: 0,
    custodians: [{ name: "alice", fingerprint: "f" }],
    reason: "SSO down",
    incident: "INC-1",
    importedAt: 0,
    reviewDueAt,
    review: reviewed ? { reviewer: "erin", at: 1, outcome: "justified", notes: "n" } : null,
    alarmPending: false,
    alarmDeliveredAt: 0,
  });

  it("is amber while an opening awaits its review, red once overdue, silent once reviewed", () => {
    const items = assessVaultReviews(
      [opening("vo_e1_1", 5000), opening("vo_e1_2", 500), opening("vo_e1_3", 0, true)],
      1000,
    );
    expect(items).toEqual([
      {
        level: "amber",
        what: "tier-2 opening of envelope aws-root (INC-1) awaits its review",
        fix: "breakglass review vo_e1_1 --outcome … --notes …",
      },
      {
        level: "red",
        what: "tier-2 opening of envelope aws-root (INC-1) is overdue for its review",
        fix: "breakglass review vo_e1_2 --outcome … --notes …",
      },
    ]);
  });

  it("is red for every opening whose own alarm was never delivered, reviewed or not", () => {
    const pending = { alarmPending: true, alarmDeliveredAt: null };
    const items = assessVaultAlarms([
      { ...opening("vo_e1_1", 5000), ...pending },
      { ...opening("vo_e1_2", 5000, true), ...pending },
      opening("vo_e1_3", 5000),
    ]);
    expect(items.map((i) => i.level)).toEqual(["red", "red"]);
    expect(items[0]).toEqual({
      level: "red",
      what: "tier-2 opening of envelope aws-root (INC-1) at 1970-01-01T00:00:00.000Z: its alarm was never delivered (no endpoint answered)",
      fix: "tell security now; then breakglass vault flush-alarms <the aws-root envelope file> and vault import-record it again",
    });
  });
});
