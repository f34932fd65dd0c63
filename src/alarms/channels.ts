/**
 * Alarm channels: where an outbox row goes. Each `deliver` throws on failure; a `permanent`
 * failure (the receiver rejected the message itself) is not retried.
 *
 * Webhook: POST of the alarm message as JSON with
 *   breakglass-idempotency-key: a_<seq>_<channel>   (the same on every retry: dedupe on it)
 *   breakglass-signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>
 * Receivers recompute the HMAC over the exact body and refuse a `t` older than a few minutes
 * (replay). See docs/alarms.md for the verification recipe.
 */
import { createHmac } from "node:crypto";
import { appendFile, mkdir } from "node:fs/promises";
import { dirname } from "node:path";
import type { AlarmChannelConfig } from "../config/app-config.js";
import type { AlarmRecord } from "../core/ports.js";
import type { Redacted } from "../core/redacted.js";
import type { SecretResolver } from "../secrets/secret-ref.js";

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

/** `t=<unix>,v1=<hex>` over `<t>.<body>`. */
export function signatureHeader(secret: string, body: string, unixSeconds: number): string {
  const v1 = createHmac("sha256", secret).update(`${unixSeconds}.${body}`).digest("hex");
  return `t=${unixSeconds},v1=${v1}`;
}

export function createAlarmChannel(
  config: AlarmChannelConfig,
  resolveSecret: SecretResolver,
  now: () => number,
): AlarmChannel {
  if (config.type === "file") {
    return {
      name: config.name,
      async deliver(alarm) {
        try {
          await mkdir(dirname(config.path), { recursive: true });
          await appendFile(config.path, `${JSON.stringify({ channel: config.name, ...JSON.parse(alarm.payload) })}\n`, {
            mode: 0o600,
          });
        } catch (e) {
          throw new DeliveryError(`cannot append to ${config.path}: ${(e as Error).message}`, false);
        }
      },
    };
  }
  const where = `alarms.channels.${config.name}`;
  const url: Redacted<string> | string =
    typeof config.url === "string" ? config.url : resolveSecret(config.url, `${where}.url`);
  const secret = resolveSecret(config.secret, `${where}.secret`);
  const target = () => (typeof url === "string" ? url : url.reveal());
  return {
    name: config.name,
    async deliver(alarm) {
      const body = alarm.payload;
      let res: Response;
      try {
        res = await fetch(target(), {
          method: "POST",
          headers: {
            "content-type": "application/json",
            "user-agent": "breakglass-alarms",
            "breakglass-idempotency-key": alarm.id,
            "breakglass-signature": signatureHeader(secret.reveal(), body, Math.floor(now() / 1000)),
          },
          body,
          signal: AbortSignal.timeout(config.timeoutMs),
          redirect: "error",
        });
      } catch (e) {
        const err = e as Error & { cause?: { code?: string } };
        const why =
          err.name === "TimeoutError" ? `no answer within ${config.timeoutMs} ms` : (err.cause?.code ?? err.message);
        throw new DeliveryError(`webhook unreachable: ${why}`, false);
      }
      await res.arrayBuffer().catch(() => undefined);
      if (res.ok) return;
      // 4xx other than timeout/rate limit: the receiver refuses this message; retrying will not help.
      const permanent = res.status >= 400 && res.status < 500 && res.status !== 408 && res.status !== 429;
      throw new DeliveryError(`webhook answered HTTP ${res.status}`, permanent);
    },
  };
}
