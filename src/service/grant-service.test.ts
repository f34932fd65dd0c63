/**
 * The grant service's rules over a real in-memory store, the real audit journal, grant writer and
 * target access, with `exec` targets whose access is a file (test/support/unit-grants.ts).
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { makePolicy, makeRole, ROLE_DB_ADMIN, ROLE_GRAFANA_ADMIN, rule } from "../../test/support/core-fixtures.js";
import { ctx } from "../../test/support/ctx.js";
import { type GrantKit, openGrantKit } from "../../test/support/unit-grants.js";
import type { RequestContext } from "../core/request-context.js";
import { requireFreshFactor } from "./grant-service.js";

const ROLE_STEP_UP = "production/step-up-admin";
let k: GrantKit;

beforeEach(async () => {
  k = await openGrantKit({
    policy: makePolicy({
      roles: [makeRole({ id: ROLE_STEP_UP, approval: rule("1 of sre-leads"), emergencyAllowed: true, stepUpS: 300 })],
    }),
  });
});
afterEach(() => k.close());

const valid = { justification: "primary database is down, need to fail over", incident: "INC-4711" };
const session = (actor: string, factorAt: number | null): RequestContext =>
  ctx(actor, { auth: { method: "oidc", sessionId: "ws_1", factorAt } });

describe("requesting a role", () => {
  it("refuses what the role does not allow, and records nothing", async () => {
    for (const [who, input, code] of [
      ["alice", { ...valid, roleId: ROLE_DB_ADMIN, justification: "down" }, "ERR_JUSTIFICATION_REQUIRED"],
      ["alice", { ...valid, roleId: ROLE_DB_ADMIN, incident: "ticket 12" }, "ERR_INCIDENT_REQUIRED"],
      ["alice", { ...valid, roleId: ROLE_DB_ADMIN, durationS: 5 * 3600 }, "ERR_DURATION_EXCEEDS_MAX"],
      ["carol", { ...valid, roleId: ROLE_DB_ADMIN }, "ERR_NOT_ELIGIBLE_REQUESTER"],
      ["alice", { ...valid, roleId: "production/nope" }, "ERR_NOT_FOUND"],
    ] as const) {
      await expect(k.grants.request(ctx(who), input), code).rejects.toMatchObject({ code });
    }
    expect(await k.events()).toEqual([]);
  });

  it("records the request, stamped with who asked and from where, and refuses a second open one", async () => {
    const g = await k.grants.request(ctx("alice", { requestId: "r-1", sourceAddress: "10.0.0.9" }), {
      ...valid,
      roleId: ROLE_DB_ADMIN,
    });
    expect(g).toMatchObject({ state: "requested", requester: "alice", durationS: 3600 });
    expect(await k.events("grant.requested")).toMatchObject([
      { actor: "alice", grantId: g.id, requestId: "r-1", sourceAddress: "10.0.0.9" },
    ]);
    await expect(k.grants.request(ctx("alice"), { ...valid, roleId: ROLE_DB_ADMIN })).rejects.toMatchObject({
      code: "ERR_OPEN_GRANT_EXISTS",
      detail: { grantId: g.id },
    });
  });

  it("activates an emergency request at the target at once, and pages", async () => {
    const g = await k.grants.request(ctx("alice"), { ...valid, roleId: ROLE_DB_ADMIN, emergency: true });
    expect(g).toMatchObject({ state: "active", emergency: true, access: "granted" });
    expect(k.hasAccess(g.id)).toBe(true);
    expect((await k.alarms()).map((a) => a.eventType)).toContain("grant.emergency_activated");
  });
});

describe("approving", () => {
  it("refuses the requester approving their own grant, and someone outside the rule", async () => {
    const g = await k.grants.request(ctx("bob"), { ...valid, roleId: ROLE_GRAFANA_ADMIN });
    await expect(k.grants.approve(ctx("bob"), g.id, null)).rejects.toMatchObject({ code: "ERR_SELF_APPROVAL" });
    await expect(k.grants.approve(ctx("erin"), g.id, null)).rejects.toMatchObject({
      code: "ERR_NOT_ELIGIBLE_APPROVER",
    });
    expect((await k.grants.get(g.id)).state).toBe("requested");
  });

  it("activates when the rule is met and the role auto-activates; waits for the requester otherwise", async () => {
    const auto = await k.grants.request(ctx("bob"), { ...valid, roleId: ROLE_GRAFANA_ADMIN });
    const active = await k.grants.approve(ctx("carol"), auto.id, "ok");
    expect(active).toMatchObject({ state: "active", access: "granted" });
    expect(k.hasAccess(auto.id)).toBe(true);

    const manual = await k.grants.request(ctx("alice"), { ...valid, roleId: ROLE_DB_ADMIN });
    await k.grants.approve(ctx("bob"), manual.id, null);
    const approved = await k.grants.approve(ctx("carol"), manual.id, null);
    expect(approved.state).toBe("approved");
    expect(k.hasAccess(manual.id)).toBe(false);
    await expect(k.grants.activate(ctx("bob"), manual.id)).rejects.toMatchObject({ code: "ERR_FORBIDDEN" });
    expect(await k.grants.activate(ctx("alice"), manual.id)).toMatchObject({ state: "active" });
    expect(k.hasAccess(manual.id)).toBe(true);
  });
});

describe("ending early", () => {
  it("takes access away at the target before the revocation returns", async () => {
    const g = await k.grants.request(ctx("alice"), { ...valid, roleId: ROLE_DB_ADMIN, emergency: true });
    const revoked = await k.grants.revoke(ctx("bob"), g.id, "incident closed");
    expect(revoked).toMatchObject({ state: "ended", endReason: "revoked", access: "revoked" });
    expect(k.hasAccess(g.id)).toBe(false);
  });

  it("lets the holder release, and keeps retrying a target that is down", async () => {
    const g = await k.grants.request(ctx("alice"), { ...valid, roleId: ROLE_DB_ADMIN, emergency: true });
    k.targetsDown(true);
    const released = await k.grants.release(ctx("alice"), g.id);
    expect(released).toMatchObject({ state: "ended", endReason: "released" });
    expect(released.access).not.toBe("revoked");
    expect(released.accessNextAt).not.toBeNull();
    expect(k.hasAccess(g.id)).toBe(true);
  });
});

describe("reading what a grant holds", () => {
  it("hands out no credential a target never gave, and records no read", async () => {
    const g = await k.grants.request(ctx("alice"), { ...valid, roleId: ROLE_DB_ADMIN, emergency: true });
    await expect(k.grants.credential(ctx("bob"), g.id)).rejects.toMatchObject({ code: "ERR_FORBIDDEN" });
    await expect(k.grants.credential(ctx("alice"), g.id)).rejects.toMatchObject({ code: "ERR_NOT_FOUND" });
    expect(await k.events("grant.credential_read")).toEqual([]);
  });

  it("records no read of an empty recording, and refuses someone who may not read it", async () => {
    const g = await k.grants.request(ctx("bob"), { ...valid, roleId: ROLE_GRAFANA_ADMIN, emergency: true });
    expect(await k.grants.recording(ctx("bob"), g.id)).toEqual([]);
    expect(await k.grants.recording(ctx("carol"), g.id)).toEqual([]); // an approver of the role
    await expect(k.grants.recording(ctx("alice"), g.id)).rejects.toMatchObject({ code: "ERR_FORBIDDEN" });
    expect(await k.events("grant.recording_read")).toEqual([]);
  });
});

describe("step-up", () => {
  it("asks a signed-in person for a recent second factor on a role that wants one", async () => {
    const input = { ...valid, roleId: ROLE_STEP_UP };
    await expect(k.grants.request(session("alice", null), input)).rejects.toMatchObject({
      code: "ERR_STEP_UP_REQUIRED",
    });
    await expect(k.grants.request(session("alice", k.clock.now() - 301_000), input)).rejects.toMatchObject({
      code: "ERR_STEP_UP_REQUIRED",
    });
    const g = await k.grants.request(session("alice", k.clock.now() - 300_000), input);
    // The approver too.
    await expect(k.grants.approve(session("bob", null), g.id, null)).rejects.toMatchObject({
      code: "ERR_STEP_UP_REQUIRED",
    });
    expect(await k.grants.approve(session("bob", k.clock.now()), g.id, null)).toMatchObject({ state: "approved" });
  });

  it("tells a token user to sign in, and leaves the broker's own work and offline commands alone", () => {
    const role = k.policy.roles.get(ROLE_STEP_UP);
    const token = ctx("alice", { auth: { method: "token", sessionId: null, factorAt: null } });
    expect(() => requireFreshFactor(token, role, 0, "request")).toThrow(/an API token cannot prove a second factor/);
    expect(() => requireFreshFactor(session("alice", null), role, 0, "approve")).toThrow(
      "production/step-up-admin requires a second factor verified within the last 5 minutes to approve",
    );
    expect(() => requireFreshFactor(ctx("system"), role, 0, "request")).not.toThrow();
    expect(() => requireFreshFactor(session("alice", null), k.policy.roles.get(ROLE_DB_ADMIN), 0, "x")).not.toThrow();
    const quick = makeRole({ id: "p/quick", stepUpS: 90 });
    expect(() => requireFreshFactor(session("alice", null), quick, 0, "request")).toThrow("within the last 90 seconds");
  });
});
