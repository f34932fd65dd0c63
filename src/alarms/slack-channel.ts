/** The Slack channel: a Block Kit message to an incoming-webhook URL. */
import type { AlarmChannelConfig } from "../config/app-config.js";
import { lineText, terminalText } from "../core/text.js";
import type { SecretResolver } from "../secrets/secret-ref.js";
import { type AlarmChannel, type AlarmMessage, ENDED, post } from "./alarm-channel.js";

type SlackConfig = Extract<AlarmChannelConfig, { type: "slack" }>;

/**
 * Someone's text inside Slack mrkdwn: `&`, `<` and `>` escaped as Slack asks, so a justification
 * cannot mention `<!channel>`, plant a `<https://…|link>` or a user mention; control and bidi
 * characters shown as escapes.
 * @see https://api.slack.com/reference/surfaces/formatting#escaping
 */
export const mrkdwnText = (text: string): string =>
  terminalText(text).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

/**
 * As {@link mrkdwnText}, on one line: newline and carriage return shown as escapes, so a value
 * (an incident id, a blocked statement in the summary) cannot start a line that reads as the
 * message's own. Only the justification, which is prose, keeps its lines.
 */
const mrkdwnLine = (text: string): string =>
  lineText(text).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

/** A Slack Block Kit message: what happened, the facts, and links to act on it. */
export function slackMessage(m: AlarmMessage, publicUrl: string): Record<string, unknown> {
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
    { type: "section", text: { type: "mrkdwn", text: `${icon} ${mrkdwnLine(m.summary)}` } },
  ];
  if (facts.length > 0) {
    blocks.push({
      type: "section",
      fields: facts.map(([k, v]) => ({
        type: "mrkdwn",
        text: `*${k}*\n${k === "Justification" ? mrkdwnText(String(v)) : mrkdwnLine(String(v))}`,
      })),
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
    elements: [{ type: "mrkdwn", text: `Breakglass · ${mrkdwnLine(m.idempotencyKey)}` }],
  });
  return { text: `${icon} ${mrkdwnLine(m.summary)}`, blocks };
}

export function createSlackChannel(
  config: SlackConfig,
  resolveSecret: SecretResolver,
  publicUrl: string,
): AlarmChannel {
  const where = `alarms.channels.${config.name}`;
  const url = resolveSecret(config.url, `${where}.url`);
  return {
    name: config.name,
    deliver: (alarm) =>
      post(
        url.reveal(),
        JSON.stringify(slackMessage(JSON.parse(alarm.payload) as AlarmMessage, publicUrl)),
        {},
        config.timeoutMs,
        "slack",
      ),
  };
}
