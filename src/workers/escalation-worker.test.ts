import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ROLE_DB_ADMIN } from "../../test/support/core-fixtures.js";
import { ctx } from "../../test/support/ctx.js";
import { type GrantKit, openGrantKit } from "../../test/support/unit-grants.js";
import { createEscalationWorker, type EscalationWorker } from "./escalation-worker.js";

const AFTER_MS = 5 * 60_000;
const valid = { justification: "primary database is down, need to fail over", incident: "INC-4711" };
let k: GrantKit;
let worker: EscalationWorker;

const escalationWorker = () =>
  createEscalationWorker({
    store: k.store,
    audit: k.audit,
    clock: k.clock,
    afterMs: AFTER_MS,
    intervalMs: 60_000,
    log: () => {},
  });

beforeEach(async () => {
  k = await openGrantKit();
  worker = escalationWorker();
});
afterEach(() => k.close());

const activation = (who = "alice") => k.grants.request(ctx(who), { ...valid, roleId: ROLE_DB_ADMIN, emergency: true });

describe("escalation", () => {
  it("raises alarm.escalated for an activation nobody acknowledged within the time, once", async () => {
    const g = await activation();
    k.clock.advance(AFTER_MS - 1);
    expect(await worker.runOnce()).toEqual([]);
    k.clock.advance(1);
    expect(await worker.runOnce()).toEqual([g.id]);
    expect(await worker.runOnce()).toEqual([]);
    const [event] = await k.events("alarm.escalated");
    expect(event).toMatchObject({ grantId: g.id, actor: "system", data: { unacknowledgedForMs: AFTER_MS } });
  });

  it("leaves an acknowledged activation alone", async () => {
    const g = await activation();
    await k.grants.acknowledge(ctx("bob"), g.id, "on it");
    k.clock.advance(AFTER_MS);
    expect(await worker.runOnce()).toEqual([]);
  });

  it("does not escalate a grant that is no longer active", async () => {
    const g = await activation();
    await k.grants.release(ctx("alice"), g.id);
    k.clock.advance(AFTER_MS);
    expect(await worker.runOnce()).toEqual([]);
  });

  it("escalates each grant once across replicas running together", async () => {
    const grants = [await activation("alice"), await activation("bob")];
    k.clock.advance(AFTER_MS);
    const [a, b] = await Promise.all([worker.runOnce(), escalationWorker().runOnce()]);
    expect([...(a ?? []), ...(b ?? [])].sort()).toEqual(grants.map((g) => g.id).sort());
    expect(await k.events("alarm.escalated")).toHaveLength(2);
  });
});
