/**
 * Admission control for the API: per key (a caller's credential, or a client address), at most
 * `concurrent` requests in flight and a token bucket of `perSecond` with room for `burst`. A
 * request over either limit is refused at once, before authentication or any store work, so a
 * flood costs the broker little more than reading its requests.
 *
 * In-process and per replica: each broker limits what reaches it.
 */
import { BreakglassError } from "../core/errors.js";

export interface LimitSettings {
  /** Requests in flight at once. */
  readonly concurrent: number;
  /** Sustained requests per second. */
  readonly perSecond: number;
  /** Requests accepted at once above the sustained rate (the bucket's size). */
  readonly burst: number;
}

export type Admission = { readonly ok: true; release(): void } | { readonly ok: false; readonly retryAfterS: number };

export interface RateLimiter {
  /** Take a slot for `key` now, or say when to try again (whole seconds, at least 1). */
  admit(key: string, now: number): Admission;
  /** Keys tracked now (idle, full buckets are dropped). */
  size(): number;
}

interface Bucket {
  tokens: number;
  at: number;
  inFlight: number;
}

/** How often idle keys are dropped (ms). */
const SWEEP_EVERY_MS = 10_000;

export function createRateLimiter(settings: LimitSettings): RateLimiter {
  const buckets = new Map<string, Bucket>();
  let lastSweep = 0;

  const refill = (b: Bucket, now: number) => {
    const elapsed = Math.max(0, now - b.at);
    b.tokens = Math.min(settings.burst, b.tokens + (elapsed * settings.perSecond) / 1000);
    b.at = now;
  };

  const sweep = (now: number) => {
    lastSweep = now;
    for (const [key, b] of buckets) {
      if (b.inFlight > 0) continue;
      refill(b, now);
      if (b.tokens >= settings.burst) buckets.delete(key);
    }
  };

  return {
    admit(key, now) {
      if (now - lastSweep >= SWEEP_EVERY_MS || now < lastSweep) sweep(now);
      let b = buckets.get(key);
      if (b === undefined) {
        b = { tokens: settings.burst, at: now, inFlight: 0 };
        buckets.set(key, b);
      } else refill(b, now);
      if (b.inFlight >= settings.concurrent) return { ok: false, retryAfterS: 1 };
      if (b.tokens < 1) {
        return { ok: false, retryAfterS: Math.max(1, Math.ceil((1 - b.tokens) / settings.perSecond)) };
      }
      b.tokens -= 1;
      b.inFlight += 1;
      const bucket = b;
      let released = false;
      return {
        ok: true,
        release() {
          if (released) return;
          released = true;
          bucket.inFlight -= 1;
        },
      };
    },
    size: () => buckets.size,
  };
}

/** The refusal the client sees: 429 ERR_RATE_LIMITED, with `Retry-After` set from `retryAfterS`. */
export function rateLimited(who: "caller" | "address", retryAfterS: number): BreakglassError {
  return new BreakglassError(
    "ERR_RATE_LIMITED",
    who === "caller"
      ? `too many requests from this caller at once or in a short time: retry after ${retryAfterS} s`
      : `too many requests from this address at once or in a short time: retry after ${retryAfterS} s`,
    { limit: who, retryAfterS },
  );
}
