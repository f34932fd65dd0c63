/**
 * An audit row's index columns against its hashed payload. The columns (`at`, `type`, `actor`,
 * `grant_id`, and the `seq` key) repeat payload fields for lookups; they are not evidence, and
 * these functions say whether, and where, they disagree with it. Pure.
 */
import type { AuditColumns, AuditEventType, StoredAuditEvent } from "./audit-event.js";

/** Every column of the audit table, by its SQL name. */
export const AUDIT_COLUMNS = ["seq", "at", "type", "actor", "grant_id", "payload", "hash"] as const;
export type AuditColumn = (typeof AUDIT_COLUMNS)[number];

/** The facts of one event, as its payload states them. */
export interface AuditRecord {
  readonly seq: number;
  readonly hash: string;
  readonly at: number;
  readonly type: AuditEventType;
  readonly actor: string;
  readonly grantId: string | null;
  readonly roleId: string | null;
  readonly domain: string | null;
  readonly target: string | null;
  readonly justification: string | null;
  readonly incident: string | null;
  readonly requestId: string | null;
  readonly source: string | null;
  readonly data: Readonly<Record<string, unknown>>;
}

/** One index column that disagrees with the payload, with both values for the message. */
export interface ColumnDifference {
  readonly column: "seq" | "at" | "type" | "actor" | "grant_id";
  readonly stored: unknown;
  readonly payload: unknown;
}

/** The payload's facts, or null when it is not a v1 audit event. */
export function parseAuditPayload(payload: string, hash: string): AuditRecord | null {
  let p: unknown;
  try {
    p = JSON.parse(payload);
  } catch {
    return null;
  }
  if (typeof p !== "object" || p === null || Array.isArray(p)) return null;
  const e = p as Record<string, unknown>;
  const at = typeof e.at === "string" ? Date.parse(e.at) : Number.NaN;
  if (e.v !== 1 || typeof e.seq !== "number" || !Number.isFinite(at)) return null;
  if (typeof e.type !== "string" || typeof e.actor !== "string") return null;
  const str = (v: unknown): string | null => (typeof v === "string" ? v : null);
  const data = typeof e.data === "object" && e.data !== null && !Array.isArray(e.data) ? e.data : {};
  return {
    seq: e.seq,
    hash,
    at,
    type: e.type as AuditEventType,
    actor: e.actor,
    grantId: str(e.grant),
    roleId: str(e.role),
    domain: str(e.domain),
    target: str(e.target),
    justification: str(e.justification),
    incident: str(e.incident),
    requestId: str(e.request_id),
    source: str(e.source),
    data: data as Record<string, unknown>,
  };
}

/**
 * Whether the index columns say what the payload says, without parsing it: the payload is
 * canonical JSON with sorted keys, so `actor` and `at` open it, `type` and `v` close it, and the
 * top-level `grant` and `seq` are the last occurrences of their keys (every key after them holds a
 * scalar). Anything else — a payload not of this shape — takes the parsing path.
 */
export function columnsMatch(seq: number, payload: string, columns: AuditColumns): boolean {
  const iso = isoOrNull(columns.at);
  if (iso === null) return false;
  if (!payload.startsWith(`{"actor":${JSON.stringify(columns.actor)},"at":"${iso}","data":`)) return false;
  if (!payload.endsWith(`,"type":${JSON.stringify(columns.type)},"v":1}`)) return false;
  const g = payload.lastIndexOf(',"grant":');
  if (g < 0 || !payload.startsWith(`,"grant":${JSON.stringify(columns.grantId)},"incident":`, g)) {
    return columnDifferences(seq, payload, columns).length === 0;
  }
  const s = payload.lastIndexOf(',"seq":');
  if (s < 0 || !payload.startsWith(`,"seq":${seq},"source":`, s)) {
    return columnDifferences(seq, payload, columns).length === 0;
  }
  return true;
}

/** The index columns (and the seq) that disagree with the payload; empty when all agree. */
export function columnDifferences(seq: number, payload: string, columns: AuditColumns): ColumnDifference[] {
  const record = parseAuditPayload(payload, "");
  if (record === null) return [];
  const diffs: ColumnDifference[] = [];
  if (record.seq !== seq) diffs.push({ column: "seq", stored: seq, payload: record.seq });
  if (record.at !== columns.at) {
    diffs.push({ column: "at", stored: isoOrNull(columns.at) ?? columns.at, payload: isoOrNull(record.at) });
  }
  if (record.type !== columns.type) diffs.push({ column: "type", stored: columns.type, payload: record.type });
  if (record.actor !== columns.actor) diffs.push({ column: "actor", stored: columns.actor, payload: record.actor });
  if (record.grantId !== columns.grantId) {
    diffs.push({ column: "grant_id", stored: columns.grantId, payload: record.grantId });
  }
  return diffs;
}

/** `event 42's actor column says "mallory" but its payload says "alice"` (and so on for each). */
export function describeDifferences(seq: number, diffs: readonly ColumnDifference[]): string {
  const parts = diffs.map((d) => `${d.column} column says ${show(d.stored)} but its payload says ${show(d.payload)}`);
  return `event ${seq}'s ${parts.join("; its ")}`;
}

function isoOrNull(ms: number): string | null {
  const d = new Date(ms);
  return Number.isNaN(d.getTime()) ? null : d.toISOString();
}

function show(value: unknown): string {
  return value === null ? "null" : typeof value === "string" ? JSON.stringify(value) : String(value);
}

/**
 * A row as read from storage, its facts taken from the payload. When the columns provably repeat
 * the payload (the usual case: string comparisons, no parsing) they are used as they are.
 */
export function storedAuditEvent(seq: number, payload: string, hash: string, columns: AuditColumns): StoredAuditEvent {
  if (columnsMatch(seq, payload, columns)) {
    return {
      seq,
      at: columns.at,
      type: columns.type as AuditEventType,
      actor: columns.actor,
      grantId: columns.grantId,
      payload,
      hash,
      columns,
    };
  }
  const record = parseAuditPayload(payload, hash);
  const facts = record ?? { ...columns, type: columns.type as AuditEventType };
  return { seq, at: facts.at, type: facts.type, actor: facts.actor, grantId: facts.grantId, payload, hash, columns };
}
