/**
 * Drills' step accounting over the real grant services (in-memory store, `exec` targets whose
 * access is a file): each step timed and pass/fail, the run stored and audited, a failed drill's
 * grant ended.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ROLE_DB_ADMIN } from "../../test/support/core-fixtures.js";
import { ctx } from "../../test/support/ctx.js";
import { type GrantKit, openGrantKit } from "../../test/support/unit-grants.js";
import type { DrillDef } from "../config/app-config.js";
import { createDrillService, type DrillService } from "./drill-service.js";

const drill = (over: Partial<DrillDef> = {}): DrillDef => ({
  name: "db-emergency",
  scenario: "emergency",
  roleId: ROLE_DB_ADMIN,
  requester: "alice",
  approvers: [],
  durationS: 600,
  incident: "INC-1",
  probe: null,
  checks: [],
  factorSecret: null,
  guardProbe: null,
  everyS: 90 * 86_400,
  ...over,
});

let k: GrantKit;
let drills: DrillService;

beforeEach(async () => {
  k = await openGrantKit();
  drills = createDrillService({
    drills: [drill(), drill({ name: "unknown-role", roleId: "production/nope" })],
    policy: k.policy,
    service: k.grants,
    store: k.store,
    audit: k.audit,
    clock: k.clock,
    ids: k.ids,
    log: () => {},
  });
});
afterEach(() => k.close());

describe("a drill", () => {
  it("runs the real path as its requester, each step passed and timed, the run stored and audited", async () => {
    const started = await drills.start(ctx("erin"), "db-emergency");
    expect(started).toMatchObject({ result: "running", startedBy: "erin", steps: [] });
    const run = await drills.finished(started.id);
    expect(run.steps.map((s) => [s.name, s.ok])).toEqual([
      ["request", true],
      ["access granted at the target", true],
      ["release", true],
      ["window closed at the target", true],
    ]);
    expect(run).toMatchObject({ result: "passed", timeToAccessMs: 0 });
    const grant = await k.grants.get(run.grantId ?? "");
    expect(grant).toMatchObject({ requester: "alice", emergency: true, state: "ended", access: "revoked" });
    expect(grant.justification).toBe("[DRILL] db-emergency: rehearsal of the break-glass path");
    expect(k.hasAccess(grant.id)).toBe(false);
    expect(await k.store.getDrillRun(run.id)).toEqual(run);
    const [finished] = await k.events("drill.finished");
    expect(finished).toMatchObject({
      actor: "erin",
      data: { run: run.id, result: "passed", grantId: grant.id, steps: run.steps },
    });
    expect(await k.events("drill.started")).toHaveLength(1);
  });

  it("stops at the first failed step, says why, reports no time to access, and ends its grant", async () => {
    k.targetsDown(true);
    const run = await drills.finished((await drills.start(ctx("erin"), "db-emergency")).id);
    const last = run.steps.at(-1);
    expect(run.steps.map((s) => [s.name, s.ok])).toEqual([
      ["request", true],
      ["access granted at the target", false],
    ]);
    expect(last?.detail).toMatch(/is requested|not active/);
    expect(run).toMatchObject({ result: "failed", timeToAccessMs: null });
    expect((await k.events("drill.finished"))[0]?.data).toMatchObject({
      result: "failed",
      failedStep: "access granted at the target",
    });
    const grant = await k.grants.get(run.grantId ?? "");
    expect(grant.state).not.toBe("active");
    expect(["cancelled", "ended"]).toContain(grant.state);
  });

  it("records a refusal by the grant service as the failed step", async () => {
    const run = await drills.finished((await drills.start(ctx("erin"), "unknown-role")).id);
    expect(run.steps).toMatchObject([
      { name: "request", ok: false, detail: expect.stringContaining("production/nope") },
    ]);
    expect(run).toMatchObject({ result: "failed", grantId: null });
  });

  it("is refused when no drill has that name, naming those configured", async () => {
    await expect(drills.start(ctx("erin"), "nope")).rejects.toMatchObject({
      code: "ERR_NOT_FOUND",
      message: 'no drill "nope" is configured (drills: db-emergency, unknown-role)',
    });
  });
});
