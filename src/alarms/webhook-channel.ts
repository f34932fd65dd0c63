/**
 * The webhook channel: POST of the alarm message as JSON with
 *   breakglass-idempotency-key: a_<seq>_<channel>   (the same on every retry: dedupe on it)
 *   breakglass-signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>
 * Receivers recompute the HMAC over the exact body and refuse a `t` older than a few minutes
 * (replay). See docs/alarms.md for the verification recipe.
 */
import { createHmac } from "node:crypto";
import type { AlarmChannelConfig } from "../config/app-config.js";
import type { Redacted } from "../core/redacted.js";
import type { SecretResolver } from "../secrets/secret-ref.js";
import { type AlarmChannel, post } from "./alarm-channel.js";

type WebhookConfig = Extract<AlarmChannelConfig, { type: "webhook" }>;

/** `t=<unix>,v1=<hex>` over `<t>.<body>`. */
export function signatureHeader(secret: string, body: string, unixSeconds: number): string {
  const v1 = createHmac("sha256", secret).update(`${unixSeconds}.${body}`).digest("hex");
  return `t=${unixSeconds},v1=${v1}`;
}

export function createWebhookChannel(
  config: WebhookConfig,
  resolveSecret: SecretResolver,
  now: () => number,
): AlarmChannel {
  const where = `alarms.channels.${config.name}`;
  const url: Redacted<string> | string =
    typeof config.url === "string" ? config.url : resolveSecret(config.url, `${where}.url`);
  const secret = resolveSecret(config.secret, `${where}.secret`);
  return {
    name: config.name,
    deliver: (alarm) =>
      post(
        typeof url === "string" ? url : url.reveal(),
        alarm.payload,
        {
          "breakglass-idempotency-key": alarm.id,
          "breakglass-signature": signatureHeader(secret.reveal(), alarm.payload, Math.floor(now() / 1000)),
        },
        config.timeoutMs,
        "webhook",
      ),
  };
}
