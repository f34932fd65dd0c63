/**
 * How a gateway session's statements are stored: a batch of one session's consecutive statements
 * is one row, its statements one JSON array of their digest entries (`statementEntry`, the text
 * the session's seal hashes). Packing is what the recorder does as it goes; unpacking gives back
 * the statements field for field, so readers — the recording API, the review, `audit verify` —
 * see statements, never batches. Pure.
 */
import type { Sha256 } from "./ports/runtime.js";
import { digestStep, EMPTY_RECORDING_DIGEST, statementEntry } from "./recording-digest.js";
import type { StatementBatch, StatementRecord } from "./records.js";

/**
 * One session's statements as the recorder gathered them: their entries a line each. An entry
 * (canonical JSON) never holds a raw line break — JSON escapes it inside strings — so the lines
 * are the entries, and one string crosses to the writer's thread as one copy.
 */
export interface GatheredBatch {
  readonly grantId: string;
  readonly sessionId: string;
  readonly firstSeq: number;
  readonly lastSeq: number;
  readonly startedAt: number;
  /** How many statements; `lines` holds as many entries. */
  readonly count: number;
  readonly lines: string;
}

/**
 * Gathered batches (each session's in seq order) as they are stored, and each session's seal
 * digest folded over them from where it stood (`before`; a session not named starts empty) — so
 * the digest a session's end seals is computed from the very entries written, by whoever writes
 * them.
 */
export function sealBatches(
  sha256: Sha256,
  gathered: readonly GatheredBatch[],
  before: Readonly<Record<string, string>>,
): { batches: StatementBatch[]; digests: Record<string, string> } {
  const digests: Record<string, string> = {};
  const batches = gathered.map((g) => {
    let d = digests[g.sessionId] ?? before[g.sessionId] ?? EMPTY_RECORDING_DIGEST;
    const entries = g.lines.split("\n");
    for (const entry of entries) d = digestStep(sha256, d, entry);
    digests[g.sessionId] = d;
    return {
      grantId: g.grantId,
      sessionId: g.sessionId,
      firstSeq: g.firstSeq,
      lastSeq: g.lastSeq,
      startedAt: g.startedAt,
      entries: `[${entries.join(",")}]`,
    };
  });
  return { batches, digests };
}

/** A stored batch as read back (the row's columns). */
export interface StoredBatch {
  readonly grantId: string;
  readonly sessionId: string;
  readonly firstSeq: number;
  readonly entries: string;
}

const KINDS: ReadonlySet<string> = new Set<StatementRecord["kind"]>([
  "simple",
  "extended",
  "blocked",
  "function",
  "prepare",
]);

/** Statements (of any sessions, each session's in seq order) as batches, one per session. */
export function packStatements(statements: readonly StatementRecord[]): StatementBatch[] {
  const bySession = new Map<string, { first: StatementRecord; last: StatementRecord; entries: string[] }>();
  for (const s of statements) {
    const b = bySession.get(s.sessionId);
    if (b === undefined) bySession.set(s.sessionId, { first: s, last: s, entries: [statementEntry(s)] });
    else {
      b.last = s;
      b.entries.push(statementEntry(s));
    }
  }
  return [...bySession.values()].map((b) => ({
    grantId: b.first.grantId,
    sessionId: b.first.sessionId,
    firstSeq: b.first.seq,
    lastSeq: b.last.seq,
    startedAt: b.first.startedAt,
    entries: `[${b.entries.join(",")}]`,
  }));
}

const str = (v: unknown): string | null => (typeof v === "string" ? v : null);
const num = (v: unknown): number => (typeof v === "number" && Number.isFinite(v) ? v : Number.NaN);

/**
 * A stored batch's statements. A batch that is not what the recorder writes (edited behind the
 * broker's back) is not thrown away or thrown at the reader: it reads as one statement holding
 * the stored text, which no seal covers — `audit verify` reports the recording as changed.
 */
export function unpackStatements(batch: StoredBatch): StatementRecord[] {
  let entries: unknown;
  try {
    entries = JSON.parse(batch.entries);
  } catch {
    entries = null;
  }
  const out: StatementRecord[] = [];
  if (Array.isArray(entries)) {
    for (const e of entries) {
      const s = Array.isArray(e) && e.length === 10 ? toStatement(batch, e) : null;
      if (s === null) return [unreadable(batch)];
      out.push(s);
    }
    return out;
  }
  return [unreadable(batch)];
}

function toStatement(batch: StoredBatch, e: readonly unknown[]): StatementRecord | null {
  const [seq, startedAt, endedAt, kind, text, params, rows, tag, error, bytes] = e;
  if (typeof kind !== "string" || !KINDS.has(kind) || typeof text !== "string") return null;
  if (params !== null && !(Array.isArray(params) && params.every((p) => p === null || typeof p === "string"))) {
    return null;
  }
  const s: StatementRecord = {
    grantId: batch.grantId,
    sessionId: batch.sessionId,
    seq: num(seq),
    startedAt: num(startedAt),
    endedAt: endedAt === null ? null : num(endedAt),
    kind: kind as StatementRecord["kind"],
    text,
    params: params as (string | null)[] | null,
    rows: num(rows),
    tag: str(tag),
    error: str(error),
    bytes: num(bytes),
  };
  const numbers = [s.seq, s.startedAt, s.endedAt ?? 0, s.rows, s.bytes];
  if (
    numbers.some((n) => Number.isNaN(n)) ||
    (tag !== null && s.tag === null) ||
    (error !== null && s.error === null)
  ) {
    return null;
  }
  return s;
}

function unreadable(batch: StoredBatch): StatementRecord {
  return {
    grantId: batch.grantId,
    sessionId: batch.sessionId,
    seq: batch.firstSeq,
    startedAt: 0,
    endedAt: null,
    kind: "simple",
    text: batch.entries,
    params: null,
    rows: 0,
    tag: null,
    error: "this stored batch of statements is not one the recorder wrote: it was changed after it was stored",
    bytes: 0,
  };
}

/** A grant's statements in the order the recording is read: by start, session, seq. */
export function byStart(a: StatementRecord, b: StatementRecord): number {
  return a.startedAt - b.startedAt || (a.sessionId < b.sessionId ? -1 : a.sessionId > b.sessionId ? 1 : a.seq - b.seq);
}
