import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ctx } from "../../test/support/ctx.js";
import { openUnitStore, type UnitStore } from "../../test/support/unit-store.js";
import { createThrottle, type Throttle, throttleKeys, USER_BACKOFF_MAX_MS, userBackoffMs } from "./throttle.js";

const MINUTE = 60_000;
const LOCKOUT = { maxFailures: 3, windowMs: 15 * MINUTE, durationMs: 10 * MINUTE };

let u: UnitStore;
let throttle: Throttle;

beforeEach(async () => {
  u = await openUnitStore();
  throttle = createThrottle({ lockout: LOCKOUT, store: u.store, audit: u.audit, clock: u.clock });
});
afterEach(() => u.close());

const from = (address: string) => ctx("bob", { sourceAddress: address });
/** One failed attempt by `user` from `address`: the refusal it answers with. */
const failOnce = (user: string, address: string) =>
  throttle.fail(from(address), throttleKeys(from(address), user), "fallback login").catch((e: unknown) => e);
const locked = (user: string, address: string) =>
  throttle.assertNotLocked(throttleKeys(from(address), user)).then(
    () => false,
    (e: { code?: string }) => e.code === "ERR_LOCKED_OUT",
  );

describe("brute-force counters", () => {
  it("counts per person and address, per address, and per person", () => {
    expect(throttleKeys(from("10.0.0.1"), "bob")).toEqual(["user-ip:bob 10.0.0.1", "ip:10.0.0.1", "user:bob"]);
    expect(throttleKeys(ctx("bob"), "bob")).toEqual(["user:bob"]);
    expect(throttleKeys(from("10.0.0.1"), null)).toEqual(["ip:10.0.0.1"]);
  });

  it("refuses every failure as unauthenticated, naming what failed", async () => {
    expect(await failOnce("bob", "10.0.0.1")).toMatchObject({
      code: "ERR_UNAUTHENTICATED",
      message: "fallback login failed",
    });
  });

  it("locks an address at max_failures within the window, for the lock's duration, and pages security once", async () => {
    await failOnce("bob", "10.0.0.1");
    await failOnce("bob", "10.0.0.1");
    expect(await locked("bob", "10.0.0.1")).toBe(false);
    await failOnce("bob", "10.0.0.1");
    expect(await locked("bob", "10.0.0.1")).toBe(true);
    // Another person from that address is locked too (the per-address counter).
    expect(await locked("carol", "10.0.0.1")).toBe(true);
    const [event, ...more] = await u.events("auth.locked_out");
    expect(more).toEqual([]);
    expect(event?.data).toMatchObject({
      keys: ["user-ip:bob 10.0.0.1", "ip:10.0.0.1", "user:bob"],
      failures: 3,
      until: u.clock.now() + LOCKOUT.durationMs,
      what: "fallback login",
    });
    expect(event?.sourceAddress).toBe("10.0.0.1");
    expect((await u.alarms()).map((a) => a.channel)).toEqual(["security"]);
    expect(u.wakes()).toBe(1);
    u.clock.advance(LOCKOUT.durationMs - 1);
    expect(await locked("carol", "10.0.0.1")).toBe(true);
    u.clock.advance(1);
    expect(await locked("carol", "10.0.0.1")).toBe(false);
  });

  it("says when the lock ends, and nothing about which counter it was", async () => {
    for (let i = 0; i < 3; i++) await failOnce("bob", "10.0.0.1");
    const e = await throttle.assertNotLocked(throttleKeys(from("10.0.0.1"), "carol")).catch((x: unknown) => x);
    const until = new Date(u.clock.now() + LOCKOUT.durationMs).toISOString();
    expect(e).toMatchObject({ code: "ERR_LOCKED_OUT", detail: { lockedUntil: until } });
    expect(String((e as Error).message)).not.toMatch(/ip:|user:|carol|bob/);
  });

  it("starts counting again once the window has passed", async () => {
    await failOnce("bob", "10.0.0.1");
    await failOnce("bob", "10.0.0.1");
    u.clock.advance(LOCKOUT.windowMs + 1);
    await failOnce("bob", "10.0.0.1");
    await failOnce("bob", "10.0.0.1");
    expect(await locked("bob", "10.0.0.1")).toBe(false);
    await failOnce("bob", "10.0.0.1");
    expect(await locked("bob", "10.0.0.1")).toBe(true);
  });

  it("clears the counters a success was checked against", async () => {
    await failOnce("bob", "10.0.0.1");
    await failOnce("bob", "10.0.0.1");
    await throttle.succeed(throttleKeys(from("10.0.0.1"), "bob"));
    await failOnce("bob", "10.0.0.1");
    await failOnce("bob", "10.0.0.1");
    expect(await locked("bob", "10.0.0.1")).toBe(false);
  });

  it("counts failures arriving together, none lost", async () => {
    await Promise.all([failOnce("bob", "10.0.0.1"), failOnce("bob", "10.0.0.1"), failOnce("bob", "10.0.0.1")]);
    expect(await locked("bob", "10.0.0.1")).toBe(true);
    expect(await u.events("auth.locked_out")).toHaveLength(1);
  });
});

describe("the per-person counter", () => {
  it("never locks a person out from everywhere: failures from many addresses only make the next try wait", async () => {
    // Each failure from a new address: no address reaches its limit, the person's counter does.
    for (let i = 1; i <= 3; i++) await failOnce("bob", `10.0.0.${i}`);
    const lockedAt = u.clock.now();
    expect(await locked("bob", "10.9.9.9")).toBe(true);
    u.clock.advance(1000);
    expect(await locked("bob", "10.9.9.9")).toBe(false);
    // The fourth failure doubles the wait; the lock is audited once, when the limit is reached.
    await failOnce("bob", "10.0.0.4");
    u.clock.advance(1999);
    expect(await locked("bob", "10.9.9.9")).toBe(true);
    u.clock.advance(1);
    expect(await locked("bob", "10.9.9.9")).toBe(false);
    const events = await u.events("auth.locked_out");
    expect(events.map((e) => e.data.keys)).toEqual([["user:bob"]]);
    expect(events[0]?.data.until).toBe(lockedAt + 1000);
  });

  it("waits 1 s at the limit, doubling with each further failure, at most a minute", () => {
    expect([1, 2, 3, 4, 5, 6, 9, 10, 40].map((n) => userBackoffMs(n, 3))).toEqual([
      0,
      0,
      1000,
      2000,
      4000,
      8000,
      USER_BACKOFF_MAX_MS,
      USER_BACKOFF_MAX_MS,
      USER_BACKOFF_MAX_MS,
    ]);
    expect(USER_BACKOFF_MAX_MS).toBe(60_000);
  });
});
