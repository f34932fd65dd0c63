/**
 * What every alarm channel is: a name and `deliver`, which throws DeliveryError on failure; a
 * `permanent` failure (the receiver rejected the message itself) is not retried. The channels are
 * one file each (file, webhook, slack, pagerduty, syslog, email); channel-registry.ts builds them.
 */
import type { AlarmRecord } from "../core/records.js";

export class DeliveryError extends Error {
  constructor(
    message: string,
    readonly permanent: boolean,
  ) {
    super(message);
  }
}

export interface AlarmChannel {
  readonly name: string;
  /** @throws DeliveryError */
  deliver(alarm: AlarmRecord): Promise<void>;
}

/** Whether a channel is delivering, as the alarm worker sees it (GET /alarms/channels). */
export interface ChannelHealth {
  readonly channel: string;
  readonly failing: boolean;
  readonly consecutiveFailures: number;
  readonly lastError: string | null;
}

/** An outbox row's payload, as the channels read it. */
export interface AlarmMessage {
  idempotencyKey: string;
  severity: "critical" | "warning" | "info";
  summary: string;
  event: Record<string, unknown> & { type?: string; grant?: string; role?: string; domain?: string; incident?: string };
}

/** Grant events that end a grant, and those that activate one (PagerDuty resolves and triggers on them). */
export const ENDED = new Set(["grant.expired", "grant.revoked", "grant.released"]);
export const ACTIVATED = new Set(["grant.activated", "grant.emergency_activated"]);

/** POST `body`; throws DeliveryError (permanent for 4xx other than 408/429). */
export async function post(
  url: string,
  body: string,
  headers: Record<string, string>,
  timeoutMs: number,
  what: string,
): Promise<void> {
  let res: Response;
  try {
    res = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json", "user-agent": "breakglass-alarms", ...headers },
      body,
      signal: AbortSignal.timeout(timeoutMs),
      redirect: "error",
    });
  } catch (e) {
    const err = e as Error & { cause?: { code?: string } };
    const why = err.name === "TimeoutError" ? `no answer within ${timeoutMs} ms` : (err.cause?.code ?? err.message);
    throw new DeliveryError(`${what} unreachable: ${why}`, false);
  }
  await res.arrayBuffer().catch(() => undefined);
  if (res.ok) return;
  // 4xx other than timeout/rate limit: the receiver refuses this message; retrying will not help.
  const permanent = res.status >= 400 && res.status < 500 && res.status !== 408 && res.status !== 429;
  throw new DeliveryError(`${what} answered HTTP ${res.status}`, permanent);
}
