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
import { lineText, terminalText } from "../core/text.js";
import type { SecretResolver } from "../secrets/secret-ref.js";
import { groupWrites } from "./group-writes.js";
import { createSyslogChannel } from "./syslog-channel.js";

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

/** POST `body`; throws DeliveryError (permanent for 4xx other than 408/429). */
async function post(
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

interface Message {
  idempotencyKey: string;
  severity: "critical" | "warning" | "info";
  summary: string;
  event: Record<string, unknown> & { type?: string; grant?: string; role?: string; domain?: string; incident?: string };
}

const ENDED = new Set(["grant.expired", "grant.revoked", "grant.released"]);
const ACTIVATED = new Set(["grant.activated", "grant.emergency_activated"]);

/** PagerDuty Events API v2: one incident per grant, triggered at activation, resolved at its end. */
export function pagerDutyEvent(m: Message, routingKey: string, publicUrl: string): Record<string, unknown> {
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

/**
 * Someone's text inside Slack mrkdwn: `&`, `<` and `>` escaped as Slack asks, so a justification
 * cannot mention `<!channel>`, plant a `<https://…|link>` or a user mention; control and bidi
 * characters shown as escapes.
 * @see https://api.slack.com/reference/surfaces/formatting#escaping
 */
export const mrkdwnText = (text: string): string =>
  terminalText(text).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

/** A Slack Block Kit message: what happened, the facts, and links to act on it. */
export function slackMessage(m: Message, publicUrl: string): Record<string, unknown> {
  const e = m.event;
  const grant = e.grant ? String(e.grant) : null;
  const icon =
    m.severity === "critical" ? ":rotating_light:" : m.severity === "warning" ? ":warning:" : ":information_source:";
  const facts = [
    ["Role", e.role],
    ["Requester / actor", e.actor],
    ["Incident", e.incident],
    ["Target", e.target],
    ["Justification", e.justification],
  ].filter(([, v]) => typeof v === "string" && v !== "");
  const blocks: Record<string, unknown>[] = [
    {
      type: "header",
      text: {
        type: "plain_text",
        text: lineText(`${m.severity === "critical" ? "EMERGENCY: " : ""}${String(e.type)}`).slice(0, 150),
      },
    },
    { type: "section", text: { type: "mrkdwn", text: `${icon} ${mrkdwnText(m.summary)}` } },
  ];
  if (facts.length > 0) {
    blocks.push({
      type: "section",
      fields: facts.map(([k, v]) => ({ type: "mrkdwn", text: `*${k}*\n${mrkdwnText(String(v))}` })),
    });
  }
  if (grant) {
    const link = (text: string, path: string) => ({
      type: "button",
      text: { type: "plain_text", text },
      url: `${publicUrl}${path}`,
    });
    blocks.push({
      type: "actions",
      elements:
        e.type === "grant.requested" || e.type === "grant.approval_added"
          ? [link("Approve or deny", `/grants/${grant}`)]
          : ENDED.has(String(e.type)) || e.type === "grant.review_overdue"
            ? [link("Review", `/grants/${grant}`)]
            : [link("Open grant", `/grants/${grant}`)],
    });
  }
  blocks.push({
    type: "context",
    elements: [{ type: "mrkdwn", text: `Breakglass · ${mrkdwnText(m.idempotencyKey)}` }],
  });
  return { text: `${icon} ${mrkdwnText(m.summary)}`, blocks };
}

export function createAlarmChannel(
  config: Exclude<AlarmChannelConfig, { type: "email" }>,
  resolveSecret: SecretResolver,
  now: () => number,
  publicUrl = "",
): AlarmChannel {
  const where = `alarms.channels.${config.name}`;
  switch (config.type) {
    case "file": {
      // Lines delivered together are appended with one write, in the order they came (a storm of
      // thousands of alarms is a few writes, not thousands of open/append/close).
      let folderMade = false;
      const append = groupWrites<string>(async (lines) => {
        try {
          if (!folderMade) await mkdir(dirname(config.path), { recursive: true });
          folderMade = true;
          await appendFile(config.path, lines.join(""), { mode: 0o600 });
        } catch (e) {
          folderMade = false;
          throw new DeliveryError(`cannot append to ${config.path}: ${(e as Error).message}`, false);
        }
      });
      return {
        name: config.name,
        deliver: (alarm) => append(`${JSON.stringify({ channel: config.name, ...JSON.parse(alarm.payload) })}\n`),
      };
    }
    case "slack": {
      const url = resolveSecret(config.url, `${where}.url`);
      return {
        name: config.name,
        deliver: (alarm) =>
          post(
            url.reveal(),
            JSON.stringify(slackMessage(JSON.parse(alarm.payload) as Message, publicUrl)),
            {},
            config.timeoutMs,
            "slack",
          ),
      };
    }
    case "pagerduty": {
      const key = resolveSecret(config.routingKey, `${where}.routing_key`);
      return {
        name: config.name,
        deliver: (alarm) =>
          post(
            config.url,
            JSON.stringify(pagerDutyEvent(JSON.parse(alarm.payload) as Message, key.reveal(), publicUrl)),
            {},
            config.timeoutMs,
            "pagerduty",
          ),
      };
    }
    case "syslog":
      return createSyslogChannel(config);
    case "webhook": {
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
  }
}
