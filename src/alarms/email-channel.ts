/**
 * The e-mail channel: one message per alarm over SMTP (nodemailer), plain text and HTML, to fixed
 * addresses, members of configured groups, and — for a grant's events — the approvers of its role.
 * The `Message-ID` is derived from the idempotency key, so a redelivery is recognisably the same
 * mail. STARTTLS is required unless the operator turns it off.
 */
import nodemailer, { type Transporter } from "nodemailer";
import type { AlarmChannelConfig } from "../config/app-config.js";
import { approverGroups, inAnyGroup } from "../core/authorization.js";
import type { Policy } from "../core/model.js";
import { lineText, terminalText } from "../core/text.js";
import type { SecretResolver } from "../secrets/secret-ref.js";
import { type AlarmChannel, DeliveryError } from "./alarm-channel.js";

type EmailConfig = Extract<AlarmChannelConfig, { type: "email" }>;

interface Message {
  idempotencyKey: string;
  severity: string;
  summary: string;
  event: Record<string, unknown>;
}

/** Someone's text in the HTML part: control and bidi characters shown as escapes, then HTML-escaped. */
const html = (s: string) =>
  terminalText(s)
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;")
    .replace(/'/g, "&#39;");

/**
 * Who gets this alarm: fixed addresses, group members, and — for a grant's events, if asked — the
 * role's approvers, the grant's holder and the holder's manager group.
 */
export function recipients(
  config: EmailConfig,
  policy: Policy,
  event: Record<string, unknown>,
  holder: string | null = null,
): string[] {
  const out = new Set(config.to);
  const groups = new Set(config.toGroups);
  if (config.toApprovers && typeof event.role === "string") {
    for (const g of approverGroups(policy, event.role)) groups.add(g);
  }
  const holderDef = holder === null ? undefined : policy.users.get(holder);
  if (config.toHolder && holderDef?.email) out.add(holderDef.email);
  if (config.toHolderManagers && holderDef?.managerGroup) groups.add(holderDef.managerGroup);
  for (const [name, user] of policy.users) {
    if (user.email && inAnyGroup(policy, name, groups)) out.add(user.email);
  }
  return [...out].sort();
}

export function renderEmail(m: Message, publicUrl: string): { subject: string; text: string; html: string } {
  const e = m.event;
  const rows: [string, unknown][] = [
    ["Event", e.type],
    ["Grant", e.grant],
    ["Role", e.role],
    ["Actor", e.actor],
    ["Incident", e.incident],
    ["Target", e.target],
    ["Justification", e.justification],
    ["At", e.at],
  ];
  const facts = rows.filter(([, v]) => typeof v === "string" && v !== "") as [string, string][];
  const link = typeof e.grant === "string" ? `${publicUrl}/grants/${e.grant}` : null;
  const prefix = m.severity === "critical" ? "[Breakglass] EMERGENCY: " : "[Breakglass] ";
  return {
    subject: lineText(`${prefix}${m.summary}`).slice(0, 250),
    text: [
      // One line, as the summary is written: a newline in it can only come from someone's text
      // (an incident id, a note, a blocked statement) and would start a line of its own.
      lineText(m.summary),
      "",
      ...facts.map(([k, v]) => `${k}: ${lineText(v)}`),
      ...(link ? ["", `Open: ${link}`] : []),
      "",
      `Idempotency key: ${m.idempotencyKey}`,
    ].join("\n"),
    html: [
      `<p><strong>${html(m.summary)}</strong></p>`,
      "<table>",
      ...facts.map(([k, v]) => `<tr><th align="left">${html(k)}</th><td>${html(v)}</td></tr>`),
      "</table>",
      ...(link ? [`<p><a href="${html(link)}">Open the grant in Breakglass</a></p>`] : []),
      `<p style="color:#666">Idempotency key: ${html(m.idempotencyKey)}</p>`,
    ].join("\n"),
  };
}

/**
 * A nodemailer transport for `smtp://` / `smtps://` URLs (user and password in the URL).
 * `requireTls`: true insists on STARTTLS, false never tries it, null takes it when offered.
 */
export function smtpTransport(
  url: string,
  opts: { requireTls: boolean | null; timeoutMs: number; port: number },
): Transporter {
  const u = new URL(url);
  const secure = u.protocol === "smtps:";
  return nodemailer.createTransport({
    host: u.hostname,
    port: Number(u.port || (secure ? 465 : opts.port)),
    secure,
    ...(u.username ? { auth: { user: decodeURIComponent(u.username), pass: decodeURIComponent(u.password) } } : {}),
    ...(opts.requireTls === null ? {} : { requireTLS: opts.requireTls, ignoreTLS: !opts.requireTls }),
    connectionTimeout: opts.timeoutMs,
    greetingTimeout: opts.timeoutMs,
    socketTimeout: opts.timeoutMs,
  });
}

export function createEmailChannel(
  config: EmailConfig,
  resolveSecret: SecretResolver,
  policy: Policy,
  publicUrl: string,
  /** The holder (requester) of a grant, read when the channel mails holders or their managers. */
  holderOf: (grantId: string) => Promise<string | null> = async () => null,
): AlarmChannel {
  const url =
    typeof config.smtpUrl === "string"
      ? config.smtpUrl
      : resolveSecret(config.smtpUrl, `alarms.channels.${config.name}.smtp_url`).reveal();
  const transport = smtpTransport(url, { requireTls: config.requireTls, timeoutMs: config.timeoutMs, port: 587 });
  return {
    name: config.name,
    async deliver(alarm) {
      const m = JSON.parse(alarm.payload) as Message;
      const needsHolder = (config.toHolder || config.toHolderManagers) && alarm.grantId !== null;
      const holder = needsHolder && alarm.grantId !== null ? await holderOf(alarm.grantId) : null;
      const to = recipients(config, policy, m.event, holder);
      if (to.length === 0) throw new DeliveryError(`no recipients with an e-mail address for ${m.event.type}`, true);
      const mail = renderEmail(m, publicUrl);
      try {
        await transport.sendMail({
          from: config.from,
          to,
          subject: mail.subject,
          text: mail.text,
          html: mail.html,
          messageId: `<${alarm.id}@breakglass>`,
          headers: { "X-Breakglass-Idempotency-Key": alarm.id, "X-Breakglass-Severity": m.severity },
        });
      } catch (e) {
        const err = e as Error & { responseCode?: number; code?: string };
        // 5xx: the server refuses this message for good; anything else (connection, 4xx) is retried.
        const permanent = typeof err.responseCode === "number" && err.responseCode >= 500;
        throw new DeliveryError(
          `smtp: ${err.code ?? ""} ${err.responseCode ?? ""} ${err.message}`.replace(/\s+/g, " "),
          permanent,
        );
      }
    },
  };
}
