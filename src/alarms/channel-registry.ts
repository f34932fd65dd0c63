/**
 * Every alarm channel type, built from its configuration: the one place that knows them all. To add
 * a channel type: its config schema (contract/config-schema.ts), a `<type>-channel.ts` here that
 * returns an AlarmChannel, and one case below.
 */
import type { AlarmChannelConfig, AppConfig } from "../config/app-config.js";
import type { Policy } from "../core/model.js";
import type { GrantReads } from "../core/ports/grants.js";
import type { Clock } from "../core/ports/runtime.js";
import type { SecretResolver } from "../secrets/secret-ref.js";
import type { AlarmChannel } from "./alarm-channel.js";
import { createEmailChannel } from "./email-channel.js";
import { createFileChannel } from "./file-channel.js";
import { createPagerDutyChannel } from "./pagerduty-channel.js";
import { createSlackChannel } from "./slack-channel.js";
import { createSyslogChannel } from "./syslog-channel.js";
import { createWebhookChannel } from "./webhook-channel.js";

/** A channel that needs neither the policy nor the store: every type but e-mail. */
export function createAlarmChannel(
  config: Exclude<AlarmChannelConfig, { type: "email" }>,
  resolveSecret: SecretResolver,
  now: () => number,
  publicUrl = "",
): AlarmChannel {
  switch (config.type) {
    case "file":
      return createFileChannel(config);
    case "slack":
      return createSlackChannel(config, resolveSecret, publicUrl);
    case "pagerduty":
      return createPagerDutyChannel(config, resolveSecret, publicUrl);
    case "syslog":
      return createSyslogChannel(config);
    case "webhook":
      return createWebhookChannel(config, resolveSecret, now);
  }
}

/** The configured alarm channels, by name. E-mail reads the policy (approvers) and a grant's holder. */
export function createAlarmChannels(
  config: AppConfig,
  policy: Policy,
  store: Pick<GrantReads, "getGrant">,
  resolveSecret: SecretResolver,
  clock: Clock,
): Map<string, AlarmChannel> {
  return new Map(
    config.alarms.channels.map(
      (c) =>
        [
          c.name,
          c.type === "email"
            ? createEmailChannel(
                c,
                resolveSecret,
                policy,
                config.server.publicUrl,
                async (id) => (await store.getGrant(id))?.requester ?? null,
              )
            : createAlarmChannel(c, resolveSecret, () => clock.now(), config.server.publicUrl),
        ] as const,
    ),
  );
}
