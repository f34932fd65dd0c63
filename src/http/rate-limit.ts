/**
 * Admission control for the API: per key (a caller's credential, or a client address), at most
 * `concurrent` requests in flight and a token bucket of `perSecond` with room for `burst`. A
 * request over either limit is refused at once — on the raw HTTP request, before the framework,
 * authentication or any store work — so a flood costs the broker little more than reading its
 * requests. The probes (`/health`, `/ready`) are outside the limits.
 *
 * In-process and per replica: each broker limits what reaches it over the network (`inject`, the
 * in-process requests of tests, does not pass here).
 */
import { createHash } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Logger } from "../adapters/logger.js";
import type { RequestLimit } from "../config/app-config.js";
import { BreakglassError } from "../core/errors.js";
import { SESSION_COOKIE } from "./cookies.js";
import { PROBLEM_CONTENT_TYPE, toProblem } from "./problem.js";

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

/**
 * Admitted requests start one per turn of the event loop, in arrival order. A request's handler
 * may block the loop (the SQLite driver is synchronous): started together, a handful of them
 * would hold up everything else — `/health`, other callers, the refusals of a flood — for their
 * sum; started one per turn, what waits behind them waits for one at most. Starting later also
 * makes the concurrency limit real: requests that arrive together are all counted in flight before
 * the first one runs.
 */
export function createStartQueue(): { turn(): Promise<void>; waiting(): number } {
  const waiting: (() => void)[] = [];
  let scheduled = false;
  const step = () => {
    waiting.shift()?.();
    // The next one on the next turn (an immediate queued from an immediate runs after the poll phase).
    if (waiting.length > 0) setImmediate(step);
    else scheduled = false;
  };
  return {
    turn() {
      return new Promise<void>((resolve) => {
        waiting.push(resolve);
        if (!scheduled) {
          scheduled = true;
          setImmediate(step);
        }
      });
    },
    waiting: () => waiting.length,
  };
}

const BEARER = /^Bearer[ ]+([^\s]+)\s*$/i;
/** The session cookie, read here without parsing every cookie. */
const SESSION = new RegExp(`(?:^|;\\s*)${SESSION_COOKIE}=([^;]+)`);

/**
 * What identifies the caller before it is checked: the bearer token, else the session cookie —
 * hashed, so the limiter's table holds no credential.
 */
function credentialOf(req: IncomingMessage): string | null {
  const header = req.headers.authorization;
  const bearer = typeof header === "string" ? BEARER.exec(header)?.[1] : undefined;
  const cookie = req.headers.cookie;
  const credential = bearer ?? (typeof cookie === "string" ? SESSION.exec(cookie)?.[1] : undefined);
  if (!credential) return null;
  return createHash("sha256").update(credential).digest("base64url");
}

export interface RequestAdmission {
  /** Admit the request (its slots are freed when its response closes), or answer it 429 here and say so. */
  admit(req: IncomingMessage, res: ServerResponse): boolean;
}

export function createAdmission(deps: {
  readonly limits: { readonly perCaller: RequestLimit; readonly perAddress: RequestLimit };
  /** Paths outside the limits. */
  readonly unlimited: () => ReadonlySet<string>;
  readonly requestId: () => string;
  readonly log: Logger;
}): RequestAdmission {
  const callers = createRateLimiter(deps.limits.perCaller);
  const addresses = createRateLimiter(deps.limits.perAddress);
  /** Refusals are counted and logged once a minute, not one line each (a flood would be a log flood). */
  const refusals = { count: 0, since: performance.now() };
  // One error per kind of refusal, built once: a flood is answered a 429 per request, and building
  // each (an Error captures a stack trace) was a third of the cost of refusing one.
  const refusalErrors = new Map<string, BreakglassError>();
  const refusalError = (who: "caller" | "address", retryAfterS: number): BreakglassError => {
    const key = `${who}:${retryAfterS}`;
    let error = refusalErrors.get(key);
    if (error === undefined) {
      error = rateLimited(who, retryAfterS);
      refusalErrors.set(key, error);
    }
    return error;
  };

  const refuse = (res: ServerResponse, who: "caller" | "address", retryAfterS: number): false => {
    refusals.count += 1;
    const now = performance.now();
    if (now - refusals.since >= 60_000) {
      deps.log.warn("requests refused by the request limits", {
        refused: refusals.count,
        seconds: Math.round((now - refusals.since) / 1000),
        callers: callers.size(),
        addresses: addresses.size(),
      });
      refusals.count = 0;
      refusals.since = now;
    }
    const id = deps.requestId();
    const { status, body } = toProblem(refusalError(who, retryAfterS), id);
    const text = JSON.stringify(body);
    res.writeHead(status, {
      "content-type": PROBLEM_CONTENT_TYPE,
      "content-length": Buffer.byteLength(text),
      // RFC 9110 §10.2.3: when to come back, in whole seconds.
      "retry-after": String(retryAfterS),
      "x-request-id": id,
      "cache-control": "no-store",
    });
    res.end(text);
    return false;
  };

  return {
    admit(req, res) {
      const path = (req.url ?? "").split("?")[0] ?? "";
      if (deps.unlimited().has(path)) return true;
      const now = performance.now();
      const byAddress = addresses.admit(req.socket.remoteAddress ?? "unknown", now);
      if (!byAddress.ok) return refuse(res, "address", byAddress.retryAfterS);
      const credential = credentialOf(req);
      const byCaller = credential === null ? null : callers.admit(credential, now);
      if (byCaller !== null && !byCaller.ok) {
        byAddress.release();
        return refuse(res, "caller", byCaller.retryAfterS);
      }
      // Whatever ends the exchange (answered, or the client went away) frees the slots.
      res.once("close", () => {
        byAddress.release();
        byCaller?.release();
      });
      return true;
    },
  };
}
