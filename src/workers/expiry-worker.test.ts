/**
 * The expiry worker over the real grant services (in-memory store, `exec` targets whose access is
 * a file): grants end on time and lose access at the target, requests lapse, holders are warned,
 * failed revocations and activations are tried again when due, and the loop looks again when the
 * next grant is due rather than after its poll interval.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ROLE_DB_ADMIN, ROLE_GRAFANA_ADMIN } from "../../test/support/core-fixtures.js";
import { ctx } from "../../test/support/ctx.js";
import { type GrantKit, openGrantKit } from "../../test/support/unit-grants.js";
import { until } from "../../test/support/wait.js";
import { dueAt } from "../core/grant-machine.js";
import { createExpiryWorker, type ExpiryWorker } from "./expiry-worker.js";

const valid = { justification: "primary database is down, need to fail over", incident: "INC-4711" };

let k: GrantKit;
let worker: ExpiryWorker;

const workerWith = (over: { batchSize?: number; pollMs?: number } = {}) =>
  createExpiryWorker({
    policy: k.policy,
    store: k.store,
    audit: k.audit,
    access: k.access,
    clock: k.clock,
    pollMs: over.pollMs ?? 3_600_000,
    batchSize: over.batchSize ?? 100,
    revokeConcurrency: 2,
    log: (msg, fields) => k.logged.push({ msg, ...(fields ? { fields } : {}) }),
  });

beforeEach(async () => {
  k = await openGrantKit();
  worker = workerWith();
});
afterEach(async () => {
  await worker.stop();
  await k.close();
});

const emergency = (who = "alice") =>
  k.grants.request(ctx(who), { ...valid, roleId: ROLE_DB_ADMIN, emergency: true, durationS: 30 * 60 });

describe("the expiry worker", () => {
  it("ends a grant at its end and takes its access away at the target", async () => {
    const g = await emergency();
    k.clock.set((g.endsAt ?? 0) - 1);
    expect(await worker.tick()).toMatchObject({ expired: 0, revocationsStarted: 0 });
    k.clock.set(g.endsAt ?? 0);
    await worker.drain();
    expect(await k.grants.get(g.id)).toMatchObject({ state: "ended", endReason: "expired", access: "revoked" });
    expect(k.hasAccess(g.id)).toBe(false);
    expect((await k.events("grant.expired")).map((e) => e.grantId)).toEqual([g.id]);
  });

  it("lapses a request nobody approved in time", async () => {
    const g = await k.grants.request(ctx("alice"), { ...valid, roleId: ROLE_DB_ADMIN });
    k.clock.set(g.lapseAt ?? 0);
    expect(await worker.tick()).toMatchObject({ lapsed: 1 });
    expect((await k.grants.get(g.id)).state).toBe("approval_expired");
  });

  it("warns the holder once before the end", async () => {
    const g = await emergency();
    k.clock.set((g.warnAt ?? 0) + 1);
    expect(await worker.tick()).toMatchObject({ notices: 1 });
    expect(await worker.tick()).toMatchObject({ notices: 0 });
    expect(await k.events("grant.ending_soon")).toHaveLength(1);
  });

  it("claims at most a batch per tick", async () => {
    worker = workerWith({ batchSize: 2 });
    const grants = [await emergency("alice"), await emergency("bob"), await emergency("erin")];
    k.clock.set(Math.max(...grants.map((g) => g.endsAt ?? 0)));
    expect((await worker.tick()).expired).toBe(2);
    expect((await worker.tick()).expired).toBe(1);
    await worker.drain();
    for (const g of grants) expect(k.hasAccess(g.id)).toBe(false);
  });

  it("tries a failed revocation again when it is due, until the target takes it", async () => {
    const g = await emergency();
    k.targetsDown(true);
    k.clock.set(g.endsAt ?? 0);
    await worker.drain();
    const failing = await k.grants.get(g.id);
    expect(failing).toMatchObject({ state: "ended", access: "revoking", accessLastError: expect.any(String) });
    expect(failing.accessNextAt).toBeGreaterThan(k.clock.now());
    expect(k.hasAccess(g.id)).toBe(true);
    k.targetsDown(false);
    k.clock.set(failing.accessNextAt ?? 0);
    await worker.drain();
    expect((await k.grants.get(g.id)).access).toBe("revoked");
    expect(k.hasAccess(g.id)).toBe(false);
  });

  it("tries a failed activation again when its next attempt is due", async () => {
    k.targetsDown(true);
    const g = await k.grants.request(ctx("bob"), { ...valid, roleId: ROLE_GRAFANA_ADMIN, emergency: true });
    const failed = await k.grants.get(g.id);
    expect(failed).toMatchObject({ state: "requested", activationFailure: { attempts: 1 } });
    k.targetsDown(false);
    let retried = 0;
    for (let i = 0; i < 5; i++) {
      const current = await k.grants.get(g.id);
      const due = dueAt(current);
      if (current.state === "active" || due === null) break;
      k.clock.set(Math.max(due, k.clock.now()));
      retried += (await worker.tick()).activationsRetried ?? 0;
      await worker.drain();
    }
    expect(retried).toBe(1);
    expect(await k.grants.get(g.id)).toMatchObject({ state: "active", access: "granted" });
    expect(k.hasAccess(g.id)).toBe(true);
  });

  it("looks again when the next grant is due, not after its poll interval (an hour here)", async () => {
    const g = await emergency();
    // The first pass finds the warning due; the end is 300 ms later, by a clock that moves.
    k.clock.set((g.endsAt ?? 0) - 300);
    k.clock.flow();
    worker.start();
    await until("the expiry", async () => (await k.grants.get(g.id)).state === "ended");
    expect(await k.events("grant.ending_soon")).toHaveLength(1);
  });
});
