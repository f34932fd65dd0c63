/**
 * The recording rules of a gateway session: which client messages are statements, which answer
 * of the target ends each, and what its record says (rows, command tags, the error, bytes sent).
 * Fed the client's statements as they are forwarded and the target's messages as they are scanned
 * ({@link ScanSink}); hands each finished statement's record on in the order the statements were
 * sent, numbered 1, 2, 3… without gaps. No I/O: the clock and the record's destination are given.
 *
 * The rules (docs/gateway.md, "What was attempted, not only what ran"):
 * - a simple Query ends at its ReadyForQuery (its CommandCompletes and errors are gathered);
 * - an Execute ends at its CommandComplete, PortalSuspended, EmptyQueryResponse or ErrorResponse;
 *   after an error the target skips to Sync, and every Execute it skipped is recorded as not run;
 * - a Parse is the record of its Execute when the Execute was sent before the target answered the
 *   Parse (one row, with the Parse's error if it failed); otherwise it is a row of its own
 *   (`prepare`: prepared or described only, or refused by the target);
 * - a session that ends with statements unanswered records them with the reason.
 */
import type { StatementRecord } from "../core/records.js";
import { errorFields, readCString } from "./pg-wire.js";
import type { ScanSink } from "./server-scanner.js";

interface Pending {
  readonly kind: StatementRecord["kind"];
  readonly text: string;
  readonly params: (string | null)[] | null;
  readonly startedAt: number;
  rows: number;
  /** Command tags so far, joined by "; " (null: none yet). */
  tag: string | null;
  error: string | null;
  bytes: number;
  /**
   * A Parse: the statement's name (null for every other message). It is recorded on its own only
   * when no Execute of it came before the server answered it (`executedBy` stays null).
   */
  readonly parse: string | null;
  executedBy: Pending | null;
}

export interface TrackerDeps {
  readonly grantId: string;
  readonly sessionId: string;
  readonly now: () => number;
  /** A finished statement, in the order statements were sent. */
  readonly record: (statement: StatementRecord) => void;
}

export class StatementTracker implements ScanSink {
  private readonly pending: Pending[] = [];
  /** Parses the server has not answered yet, by statement name (an Execute of one covers it). */
  private readonly parsing = new Map<string, Pending>();
  /** After an error in the extended protocol the target skips every message up to Sync. */
  private skipping = false;
  private seq = 0;
  /** Statements recorded, and how many of them with an error. */
  statements = 0;
  errors = 0;

  constructor(private readonly deps: TrackerDeps) {}

  /** A simple Query (`blocked`: replaced by the guard's refusal). */
  query(text: string, blocked: boolean): void {
    this.start(blocked ? "blocked" : "simple", text, null);
  }

  /** A Parse of statement `name`; `refusal` is the guard's error when it replaced it. */
  parse(name: string, text: string, refusal: string | null): void {
    this.parsing.set(name, this.start(refusal === null ? "prepare" : "blocked", text, null, name, refusal));
  }

  /** An Execute of a portal bound to prepared statement `stmt` (null: a portal the gateway does not know). */
  execute(text: string, params: (string | null)[] | null, stmt: string | null, blocked: boolean): void {
    const p = this.start(blocked ? "blocked" : "extended", text, params);
    const parse = stmt === null ? undefined : this.parsing.get(stmt);
    if (parse && parse.executedBy === null) parse.executedBy = p;
  }

  /** A FunctionCall (`blocked`: replaced by the guard's refusal). */
  functionCall(text: string, blocked: boolean): void {
    this.start(blocked ? "blocked" : "function", text, null);
  }

  /** Bytes relayed to the client: counted to the statement being answered. */
  sent(bytes: number): void {
    const head = this.pending[0];
    if (head) head.bytes += bytes;
  }

  dataRow(): void {
    const head = this.pending[0];
    if (head) head.rows += 1;
  }

  /** A message of the target the recording reads (see server-scanner's WANTED). */
  message(type: number, body: Buffer): void {
    const head = this.pending[0];
    if (head?.parse != null && (type === 0x31 || type === 0x45)) {
      // 1: ParseComplete, or the ErrorResponse refusing the Parse (the server then skips to Sync).
      this.pending.shift();
      if (type === 0x31) {
        this.settle(head, this.deps.now(), head.error);
        return;
      }
      this.settle(head, this.deps.now(), head.error ?? errorText(body));
      this.skipping = true;
      return;
    }
    switch (type) {
      case 0x43: {
        // C: CommandComplete
        if (!head) return;
        const tag = readCString(body, 0)[0];
        head.tag = head.tag === null ? tag : `${head.tag}; ${tag}`;
        // Rows affected, from the tag's last number (SELECT and FETCH rows were counted as DataRows).
        if (!tag.startsWith("SELECT") && !tag.startsWith("FETCH")) {
          const n = Number(tag.slice(tag.lastIndexOf(" ") + 1));
          if (Number.isFinite(n)) head.rows += n;
        }
        if (head.kind !== "simple") this.done();
        return;
      }
      case 0x73: // s: PortalSuspended
      case 0x49: // I: EmptyQueryResponse
        if (head && head.kind !== "simple") this.done();
        return;
      case 0x45: {
        // E: ErrorResponse
        if (!head) return;
        head.error ??= errorText(body);
        if (head.kind !== "simple") {
          this.done();
          // The target skips the rest of the pipeline up to Sync.
          this.skipping = true;
        }
        return;
      }
      case 0x5a: {
        // Z: ReadyForQuery — the end of a simple query, or of a pipeline up to Sync.
        const now = this.deps.now();
        while (this.pending.length > 0) {
          const p = this.pending[0] as Pending;
          if (p.kind !== "simple" && !this.skipping) break; // an Execute after this Sync
          this.pending.shift();
          this.settle(
            p,
            now,
            p.kind === "simple" ? p.error : (p.error ?? "not run: an earlier message of its pipeline failed"),
          );
          if (p.kind === "simple") break;
        }
        this.skipping = false;
        return;
      }
      default:
        return;
    }
  }

  /** The session ended: every statement still waiting for its answer is recorded with why. */
  abort(reason: string): void {
    const now = this.deps.now();
    for (const p of this.pending.splice(0)) {
      this.settle(p, now, p.error ?? `session ended (${reason}) before the statement finished`);
    }
  }

  private start(
    kind: Pending["kind"],
    text: string,
    params: (string | null)[] | null,
    parse: string | null = null,
    error: string | null = null,
  ): Pending {
    const p: Pending = {
      kind,
      text,
      params,
      startedAt: this.deps.now(),
      rows: 0,
      tag: null,
      error,
      bytes: 0,
      parse,
      executedBy: null,
    };
    this.pending.push(p);
    return p;
  }

  private done(): void {
    const p = this.pending.shift();
    if (p) this.settle(p, this.deps.now(), p.error);
  }

  /**
   * A pending entry leaves the queue: recorded — but a Parse whose Execute was sent before the
   * server answered it is that Execute's to record (a Parse error goes to the Execute).
   */
  private settle(p: Pending, at: number, error: string | null): void {
    if (p.parse !== null) {
      if (this.parsing.get(p.parse) === p) this.parsing.delete(p.parse);
      if (p.executedBy) {
        if (error !== null && p.error === null) p.executedBy.error ??= error;
        return;
      }
    }
    if (error) this.errors += 1;
    this.statements += 1;
    this.seq += 1;
    this.deps.record({
      grantId: this.deps.grantId,
      sessionId: this.deps.sessionId,
      seq: this.seq,
      startedAt: p.startedAt,
      endedAt: at,
      kind: p.kind,
      text: p.text,
      params: p.params,
      rows: p.rows,
      tag: p.tag,
      error,
      bytes: p.bytes,
    });
  }
}

/** An ErrorResponse as the recording keeps it: SQLSTATE and message. */
function errorText(body: Buffer): string {
  const f = errorFields(body);
  return `${f.C ?? ""} ${f.M ?? "error"}`.trim();
}
