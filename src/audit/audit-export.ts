/**
 * Export the audit log for auditors (JSONL, verifiable offline) and for people and SIEMs (CSV).
 *
 * JSONL: first one line per signed checkpoint, then one line per event:
 *
 *   {"kind":"checkpoint","seq":N,"hash":"…","at":…,"keyId":"…","signature":"…"}
 *   {"kind":"event","seq":N,"hash":"…","event":{…the canonical payload…}}
 *
 * The event object is the stored payload byte for byte, so re-canonicalising the parsed event
 * reproduces exactly what the chain hashed. Checkpoints come first so a verifier knows which
 * hashes to keep while it streams (constant memory), and a file cut short is caught as truncated.
 *
 * CSV is for humans and SIEMs, not for verification: one row per event, RFC 4180 quoting,
 * cells that a spreadsheet would run as a formula defused with a leading `'`.
 *
 * @see https://www.rfc-editor.org/rfc/rfc4180
 * @see https://owasp.org/www-community/attacks/CSV_Injection
 */
import { once } from "node:events";
import { canonicalJson } from "../core/canonical-json.js";
import type { AuditReads } from "../core/ports/audit.js";
import type { Checkpoint } from "../core/records.js";
import { terminalText } from "../core/text.js";
import { toOcsf } from "./ocsf.js";

export type AuditExportFormat = "jsonl" | "csv" | "ocsf";

export interface AuditExportOptions {
  readonly format: AuditExportFormat;
  /** First seq to export (default 1). Only a full export (from 1) verifies offline. */
  readonly fromSeq?: number | undefined;
  /** Last seq to export (default: the head when the export reaches it). */
  readonly toSeq?: number | undefined;
  /** Events read per `readAudit` call (default 10,000). */
  readonly pageSize?: number | undefined;
}

export interface AuditExportSummary {
  readonly events: number;
  readonly checkpoints: number;
  /** Seq of the last exported event, 0 when none. */
  readonly lastSeq: number;
}

/** A stream (lines end in `\n`, or `\r\n` for CSV) or a function given each line without its end. */
export type AuditExportSink = NodeJS.WritableStream | ((line: string) => void);

export const CSV_COLUMNS = [
  "seq",
  "at",
  "type",
  "actor",
  "grant",
  "role",
  "domain",
  "target",
  "incident",
  "justification",
  "request_id",
  "source",
  "data",
  "hash",
] as const;

/**
 * Write the events in [fromSeq, toSeq] (and, for JSONL, the checkpoints in that range).
 * @throws ERR_STORAGE from the store; the stream's own write errors.
 */
export async function exportAudit(
  store: Pick<AuditReads, "readAudit" | "readCheckpoints">,
  out: AuditExportSink,
  options: AuditExportOptions,
): Promise<AuditExportSummary> {
  const fromSeq = Math.max(1, options.fromSeq ?? 1);
  const toSeq = options.toSeq ?? Number.POSITIVE_INFINITY;
  const pageSize = options.pageSize ?? 10_000;
  const csv = options.format === "csv";
  const write = sinkWriter(out, csv ? "\r\n" : "\n");

  const ocsf = options.format === "ocsf";
  let checkpoints = 0;
  if (csv) {
    await write([CSV_COLUMNS.join(",")]);
  } else if (!ocsf) {
    // Read before the events: every checkpoint then covers an event this export contains.
    const cps = (await store.readCheckpoints())
      .filter((cp) => cp.seq >= fromSeq && cp.seq <= toSeq)
      .sort((a, b) => a.seq - b.seq);
    await write(cps.map(checkpointLine));
    checkpoints = cps.length;
  }

  let events = 0;
  let lastSeq = 0;
  let next = fromSeq;
  while (next <= toSeq) {
    const page = await store.readAudit(next, pageSize);
    const lines: string[] = [];
    for (const event of page) {
      if (event.seq > toSeq) break;
      lines.push(
        csv
          ? csvRow(event.payload, event.hash)
          : ocsf
            ? JSON.stringify(toOcsf({ ...(JSON.parse(event.payload) as Record<string, unknown>), hash: event.hash }))
            : eventLine(event.seq, event.hash, event.payload),
      );
      lastSeq = event.seq;
    }
    await write(lines);
    events += lines.length;
    const tail = page.at(-1);
    if (!tail || page.length < pageSize) break;
    next = tail.seq + 1;
  }
  return { events, checkpoints, lastSeq };
}

/** The JSONL line of an event; the stored payload is embedded as is (it is canonical JSON). */
export function eventLine(seq: number, hash: string, payload: string): string {
  return `{"kind":"event","seq":${seq},"hash":${JSON.stringify(hash)},"event":${payload}}`;
}

export function checkpointLine(cp: Checkpoint): string {
  return JSON.stringify({
    kind: "checkpoint",
    seq: cp.seq,
    hash: cp.hash,
    at: cp.at,
    keyId: cp.keyId,
    signature: cp.signature,
  });
}

/** One CSV row (without line end) for a stored event. */
export function csvRow(payload: string, hash: string): string {
  const e = JSON.parse(payload) as Record<string, unknown>;
  const cells = [
    e.seq,
    e.at,
    e.type,
    e.actor,
    e.grant,
    e.role,
    e.domain,
    e.target,
    e.incident,
    e.justification,
    e.request_id,
    e.source,
    e.data === undefined ? null : canonicalJson(e.data),
    hash,
  ];
  return cells.map(csvCell).join(",");
}

/**
 * One RFC 4180 cell. A cell a spreadsheet would read as a formula (`=`, `+`, `-`, `@`, tab or
 * CR first) gets a leading `'`, so a justification like `=HYPERLINK(…)` stays text.
 */
export function csvCell(value: unknown): string {
  if (value === null || value === undefined) return "";
  // Control and bidi characters shown as escapes: a CSV is read by people too (`less`, a sheet).
  // Line breaks (CR, LF) stay: inside quotes they are the cell's own.
  let text = (typeof value === "string" ? value : String(value)).split("\r").map(terminalText).join("\r");
  if (/^[=+\-@\t\r]/.test(text)) text = `'${text}`;
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

/** Writes a batch of lines at once, honouring the stream's back-pressure. */
function sinkWriter(out: AuditExportSink, eol: string): (lines: readonly string[]) => Promise<void> {
  if (typeof out === "function") {
    return async (lines) => {
      for (const line of lines) out(line);
    };
  }
  return async (lines) => {
    if (lines.length === 0) return;
    if (!out.write(lines.join(eol) + eol)) await once(out, "drain");
  };
}
