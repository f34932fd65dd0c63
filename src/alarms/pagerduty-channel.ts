/** The PagerDuty channel: Events API v2. */
import type { AlarmChannelConfig } from "../config/app-config.js";
import { lineText } from "../core/text.js";
import type { SecretResolver } from "../secrets/secret-ref.js";
import { ACTIVATED, type AlarmChannel, type AlarmMessage, ENDED, post } from "./alarm-channel.js";

type PagerDutyConfig = Extract<AlarmChannelConfig, { type: "pagerduty" }>;

/** PagerDuty Events API v2: one incident per grant, triggered at activation, resolved at its end. */
export function pagerDutyEvent(m: AlarmMessage, routingKey: string, publicUrl: string): Record<string, unknown> {
  const type = String(m.event.type ?? "");
  const grant = m.event.grant ? String(m.event.grant) : null;
  const action = grant && ENDED.has(type) ? "resolve" : "trigger";
  // Activation and end share the grant's dedup_key; anything else is its own incident.
  const dedupKey =
    grant && (ACTIVATED.has(type) || ENDED.has(type)) ? `breakglass-${grant}` : `breakglass-${m.idempotencyKey}`;
  return {
    routing_key: routingKey,
    event_action: action,
    dedup_key: dedupKey,
    ...(action === "trigger"
      ? {
          payload: {
            summary: lineText(m.summary).slice(0, 1024),
            source: "breakglass",
            severity: m.severity,
            timestamp: String(m.event.at ?? new Date().toISOString()),
            component: m.event.role ?? undefined,
            group: m.event.domain ?? undefined,
            class: type,
            custom_details: m.event,
          },
          links: grant ? [{ href: `${publicUrl}/grants/${grant}`, text: `Grant ${grant} in Breakglass` }] : [],
        }
      : {}),
  };
}

export function createPagerDutyChannel(
  config: PagerDutyConfig,
  resolveSecret: SecretResolver,
  publicUrl: string,
): AlarmChannel {
  const where = `alarms.channels.${config.name}`;
  const key = resolveSecret(config.routingKey, `${where}.routing_key`);
  return {
    name: config.name,
    deliver: (alarm) =>
      post(
        config.url,
        JSON.stringify(pagerDutyEvent(JSON.parse(alarm.payload) as AlarmMessage, key.reveal(), publicUrl)),
        {},
        config.timeoutMs,
        "pagerduty",
      ),
  };
}
