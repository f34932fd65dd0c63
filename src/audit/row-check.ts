/**
 * Rows against the chain, for every table whose values a person reads as evidence (beyond the
 * audit table itself and the grants, see grant-verify.ts): terminal sessions, tier-2 openings,
 * drill runs, alarms, tokens, the broker's own state. Each of those facts was written in the same
 * transaction as an audit event that states it, so each table's ledger replays those events and
 * names every row that says something else — one {@link RowDifference} per fact, the column named
 * as `table.column` — or that has no event at all (`unaccounted`), or whose event has no row left
 * (`gone`).
 *
 * `audit verify` turns the first difference (by seq) into its verdict
 * (`<noun>_mismatch` / `<noun>_unaccounted`); the readers (story, review queue, drill pages,
 * evidence report) check the rows they show against the events they read and flag each one with
 * {@link rowIntegrity}.
 */
import type { ChainFailure, ChainProblem } from "../core/audit-chain.js";
import type { AuditRecord } from "../core/audit-columns.js";
import { canonicalJson } from "../core/canonical-json.js";

export type EvidenceTable =
  | "terminal_sessions"
  | "vault_openings"
  | "drill_runs"
  | "alarms"
  | "tokens"
  | "broker_state";

const NOUN: Readonly<Record<EvidenceTable, { readonly name: string; readonly problem: string }>> = {
  terminal_sessions: { name: "terminal session", problem: "terminal_session" },
  vault_openings: { name: "tier-2 opening", problem: "vault_opening" },
  drill_runs: { name: "drill run", problem: "drill_run" },
  alarms: { name: "alarm", problem: "alarm" },
  tokens: { name: "token", problem: "token" },
  broker_state: { name: "broker state", problem: "broker_state" },
};

/** One fact of a stored row that is not what the chain says. */
export interface RowDifference {
  readonly table: EvidenceTable;
  /** The row's key (`broker_state`: its key). */
  readonly id: string;
  /**
   * `mismatch`: the row states `column` differently from `event`. `unaccounted`: a row whose
   * creation is not in the chain (added behind the broker's back). `gone`: the chain recorded a
   * row that is no longer stored.
   */
  readonly kind: "mismatch" | "unaccounted" | "gone";
  /** `table.column` (a JSON field as `table.column.field`); null for `unaccounted` and `gone`. */
  readonly column: string | null;
  readonly stored: unknown;
  readonly chain: unknown;
  /** The event that states the fact; null for `unaccounted`. */
  readonly event: AuditRecord | null;
}

/** Collects one row's differences: each fact the row states, against the event that states it. */
export class RowFacts {
  readonly list: RowDifference[] = [];
  constructor(
    private readonly table: EvidenceTable,
    private readonly id: string,
  ) {}

  /** Compares by value; arrays and objects by their canonical JSON. */
  same(column: string, stored: unknown, chain: unknown, event: AuditRecord): void {
    if (equal(stored, chain)) return;
    this.list.push({
      table: this.table,
      id: this.id,
      kind: "mismatch",
      column: `${this.table}.${column}`,
      stored,
      chain,
      event,
    });
  }
}

function equal(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  return canonicalJson(a) === canonicalJson(b);
}

export function unaccounted(table: EvidenceTable, id: string): RowDifference {
  return { table, id, kind: "unaccounted", column: null, stored: null, chain: null, event: null };
}

export function gone(table: EvidenceTable, id: string, event: AuditRecord): RowDifference {
  return { table, id, kind: "gone", column: null, stored: null, chain: null, event };
}

/** A value for a message: strings quoted, the rest as JSON. */
export function show(value: unknown): string {
  if (value === undefined || value === null) return "null";
  return typeof value === "string" ? JSON.stringify(value) : (JSON.stringify(value) ?? String(value));
}

/** One sentence naming the row, the column and what each side says. */
export function describeDifference(d: RowDifference): string {
  const noun = `${NOUN[d.table].name} ${d.id}`;
  if (d.kind === "unaccounted") {
    return `${noun} has a row but the audit chain never recorded it: it was added behind the broker's back`;
  }
  const e = d.event as AuditRecord;
  if (d.kind === "gone") return `${noun} was recorded by event ${e.seq} (${e.type}) but its row is gone`;
  const column = (d.column ?? "").slice(d.table.length + 1);
  return `${noun}'s ${column} column says ${show(d.stored)} but event ${e.seq} (${e.type}) says ${show(d.chain)}`;
}

/** The verdict for a difference: at the seq of the event stating the fact (0 when there is none). */
export function failureOf(d: RowDifference, eventsChecked: number): ChainFailure {
  const problem = `${NOUN[d.table].problem}_${d.kind === "unaccounted" ? "unaccounted" : "mismatch"}` as ChainProblem;
  return {
    ok: false,
    seq: d.event?.seq ?? 0,
    problem,
    column: d.column,
    message: describeDifference(d),
    eventsChecked,
  };
}

/** What a reader shows beside a row the chain contradicts: every column named, the first event's seq. */
export interface RowIntegrity {
  readonly columns: readonly string[];
  /** The event that says otherwise (the first); null for a row the chain never recorded. */
  readonly seq: number | null;
  readonly message: string;
}

export function rowIntegrity(diffs: readonly RowDifference[]): RowIntegrity | null {
  const first = diffs[0];
  if (first === undefined) return null;
  return {
    columns: diffs.map((d) => d.column).filter((c): c is string => c !== null),
    seq: first.event?.seq ?? null,
    message: `${diffs.map(describeDifference).join("; ")}: the row was edited; the audit log is the evidence`,
  };
}

/** The first difference by seq (unaccounted rows, which have none, first). */
export function firstDifference(diffs: readonly RowDifference[]): RowDifference | null {
  let best: RowDifference | null = null;
  for (const d of diffs) {
    if (best === null || (d.event?.seq ?? 0) < (best.event?.seq ?? 0)) best = d;
  }
  return best;
}

/** An ISO time in an event's data as epoch ms; null when absent or not a time. */
export function timeOf(value: unknown): number | null {
  if (typeof value !== "string") return null;
  const t = Date.parse(value);
  return Number.isFinite(t) ? t : null;
}

/**
 * A row whose key was changed shows twice: as a row the chain never recorded, and as a recorded
 * row that is gone. When the unrecorded row states exactly the gone one's facts under its key, it
 * is that row with its key edited: one difference on the key column instead.
 */
export function renamedRows<R extends { readonly id: string }>(
  table: EvidenceTable,
  rows: readonly R[],
  diffs: readonly RowDifference[],
  differencesAs: (row: R) => RowDifference[],
): RowDifference[] {
  const goneRows = diffs.filter((d) => d.kind === "gone");
  if (goneRows.length === 0) return [...diffs];
  const byId = new Map(rows.map((r) => [r.id, r]));
  const out = diffs.filter((d) => d.kind === "mismatch");
  const claimed = new Set<string>();
  for (const g of goneRows) {
    const match = diffs.find((d) => {
      const row = d.kind === "unaccounted" && !claimed.has(d.id) ? byId.get(d.id) : undefined;
      return row !== undefined && differencesAs({ ...row, id: g.id }).length === 0;
    });
    if (match === undefined) {
      out.push(g);
      continue;
    }
    claimed.add(match.id);
    out.push({ ...g, kind: "mismatch", column: `${table}.id`, stored: match.id, chain: g.id });
  }
  out.push(...diffs.filter((d) => d.kind === "unaccounted" && !claimed.has(d.id)));
  return out;
}
