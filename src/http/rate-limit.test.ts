import { describe, expect, it } from "vitest";
import { createRateLimiter } from "./rate-limit.js";

describe("the request limiter", () => {
  it("refuses a key's request beyond its concurrent limit until one finishes, whatever the rate allows", () => {
    const limiter = createRateLimiter({ concurrent: 2, perSecond: 1000, burst: 1000 });
    const a = limiter.admit("k", 0);
    const b = limiter.admit("k", 0);
    expect(a.ok && b.ok).toBe(true);
    expect(limiter.admit("k", 0)).toEqual({ ok: false, retryAfterS: 1 });
    // Another key is not affected.
    expect(limiter.admit("other", 0).ok).toBe(true);
    if (a.ok) a.release();
    expect(limiter.admit("k", 0).ok).toBe(true);
  });

  it("lets a burst through, then the sustained rate, and says when to come back", () => {
    const limiter = createRateLimiter({ concurrent: 100, perSecond: 2, burst: 3 });
    const take = (now: number) => {
      const r = limiter.admit("k", now);
      if (r.ok) r.release();
      return r;
    };
    expect([take(0), take(0), take(0)].every((r) => r.ok)).toBe(true);
    expect(take(0)).toEqual({ ok: false, retryAfterS: 1 });
    // Half a second later one token has come back (2 per second).
    expect(take(500).ok).toBe(true);
    expect(take(500).ok).toBe(false);
    // A slow rate asks for a longer wait, in whole seconds.
    const slow = createRateLimiter({ concurrent: 100, perSecond: 1, burst: 1 });
    expect(slow.admit("k", 0).ok).toBe(true);
    expect(slow.admit("k", 100)).toEqual({ ok: false, retryAfterS: 1 });
  });

  it("releasing twice frees one slot", () => {
    const limiter = createRateLimiter({ concurrent: 1, perSecond: 1000, burst: 1000 });
    const a = limiter.admit("k", 0);
    if (a.ok) {
      a.release();
      a.release();
    }
    const b = limiter.admit("k", 0);
    expect(b.ok).toBe(true);
    expect(limiter.admit("k", 0).ok).toBe(false);
  });

  it("forgets keys that are idle with a full bucket", () => {
    const limiter = createRateLimiter({ concurrent: 5, perSecond: 10, burst: 10 });
    for (let i = 0; i < 100; i++) {
      const r = limiter.admit(`k${i}`, 0);
      if (r.ok) r.release();
    }
    const held = limiter.admit("busy", 0);
    expect(limiter.size()).toBe(101);
    limiter.admit("late", 60_000);
    // Only the key with a request in flight and the one just seen are left.
    expect(limiter.size()).toBe(2);
    if (held.ok) held.release();
  });
});
