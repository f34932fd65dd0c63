/**
 * The `syslog` alarm channel: each alarm's audit event to a SIEM's syslog collector, as one RFC
 * 5424 message over TCP (TLS per RFC 5425 by default), framed by octet counting (RFC 6587), its
 * body the event as OCSF JSON (src/audit/ocsf.ts). Syslog has no acknowledgement: a delivery
 * counts when the message is written and the connection closes cleanly; the outbox retries
 * otherwise, so a collector sees each event at least once (dedupe on `metadata.uid`, the seq).
 *
 * @see https://www.rfc-editor.org/rfc/rfc5424
 * @see https://www.rfc-editor.org/rfc/rfc6587#section-3.4.1
 */
import { readFileSync } from "node:fs";
import net from "node:net";
import { hostname } from "node:os";
import tls from "node:tls";
import { toOcsf } from "../audit/ocsf.js";
import type { AlarmChannelConfig } from "../config/app-config.js";
import { terminalText } from "../core/text.js";
import { type AlarmChannel, DeliveryError } from "./alarm-channel.js";

type SyslogConfig = Extract<AlarmChannelConfig, { type: "syslog" }>;

/** Alarm severity → syslog severity (RFC 5424 §6.2.1). */
const SYSLOG_SEVERITY: Record<string, number> = { critical: 2, warning: 4, info: 6 };

/** PRINTUSASCII without spaces, at most `max` characters; `-` when empty. */
const field = (text: string, max: number): string => text.replace(/[^\x21-\x7e]/g, "_").slice(0, max) || "-";

/** One RFC 5424 message for an alarm's payload, without framing. */
export function syslogMessage(
  payload: string,
  opts: { facility: number; appName: string; host?: string; pid?: number },
): string {
  const m = JSON.parse(payload) as { severity?: string; summary?: string; event?: Record<string, unknown> };
  const event = m.event ?? {};
  const severity = SYSLOG_SEVERITY[m.severity ?? "info"] ?? 6;
  const at = typeof event.at === "string" ? event.at : new Date().toISOString();
  const ocsf = toOcsf(event, {
    ...(m.severity ? { severity: m.severity } : {}),
    ...(m.summary ? { summary: m.summary } : {}),
  });
  return [
    `<${opts.facility * 8 + severity}>1`,
    at,
    field(opts.host ?? hostname(), 255),
    field(opts.appName, 48),
    field(String(opts.pid ?? process.pid), 128),
    field(String(event.type ?? "event"), 32),
    "-",
    // MSG: UTF-8 with a BOM, as RFC 5424 §6.4 asks for Unicode text.
    // Bidi and C1 characters escaped too (JSON.stringify escapes only C0): still the same JSON.
    `\ufeff${terminalText(JSON.stringify(ocsf))}`,
  ].join(" ");
}

/** RFC 6587 octet counting: the message's length in bytes, a space, the message. */
export const octetCounted = (message: string): Buffer => {
  const body = Buffer.from(message, "utf8");
  return Buffer.concat([Buffer.from(`${body.length} `, "ascii"), body]);
};

export function createSyslogChannel(config: SyslogConfig): AlarmChannel {
  const ca = config.caFile ? readFileSync(config.caFile) : undefined;
  return {
    name: config.name,
    deliver(alarm) {
      const frame = octetCounted(syslogMessage(alarm.payload, { facility: config.facility, appName: config.appName }));
      return new Promise<void>((resolve, reject) => {
        const socket = config.tls
          ? tls.connect({ host: config.host, port: config.port, servername: config.host, ...(ca ? { ca } : {}) })
          : net.connect({ host: config.host, port: config.port });
        const fail = (why: string) => {
          socket.destroy();
          reject(new DeliveryError(`syslog ${config.host}:${config.port} ${why}`, false));
        };
        const timer = setTimeout(() => fail(`no clean delivery within ${config.timeoutMs} ms`), config.timeoutMs);
        socket.once("error", (e: NodeJS.ErrnoException) => {
          clearTimeout(timer);
          fail(`unreachable: ${e.code ?? e.message}`);
        });
        socket.once(config.tls ? "secureConnect" : "connect", () => socket.end(frame));
        socket.once("close", (hadError) => {
          clearTimeout(timer);
          if (!hadError) resolve();
        });
      });
    },
  };
}
