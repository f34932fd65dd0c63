/**
 * The tamper-evident audit chain.
 *
 *   payload_n = canonicalJson({ v: 1, seq, at, type, actor, grant, role, domain, target,
 *                               justification, incident, request_id, source, data })
 *   hash_n    = SHA-256( hex(hash_{n-1}) ‖ "\n" ‖ payload_n ),   hash_0 = 64 × "0"
 *
 * Editing, deleting or reordering any event changes every later hash; a signed checkpoint
 * (seq, hash) pins the head so a rewritten chain or a truncated tail is caught as well.
 * Verification needs no parsing on the happy path: one hash per event, and for rows read from the
 * database a few string comparisons proving the index columns repeat the payload.
 */

import { columnDifferences, columnsMatch, describeDifferences } from "./audit-columns.js";
import type { AuditColumns, AuditEventDraft, SealedAuditEvent } from "./audit-event.js";
import { canonicalJson } from "./canonical-json.js";
import type { Sha256 } from "./ports/runtime.js";
import type { AuditHead, Checkpoint } from "./records.js";

export const GENESIS_HASH = "0".repeat(64);

export function chainHash(sha256: Sha256, prevHash: string, payload: string): string {
  return sha256(prevHash, "\n", payload);
}

/** The canonical payload of an event at position `seq`. */
export function eventPayload(seq: number, draft: AuditEventDraft): string {
  return canonicalJson({
    v: 1,
    seq,
    at: new Date(draft.at).toISOString(),
    type: draft.type,
    actor: draft.actor,
    grant: draft.grantId,
    role: draft.roleId,
    domain: draft.domain,
    target: draft.target,
    justification: draft.justification,
    incident: draft.incident,
    request_id: draft.requestId,
    source: draft.sourceAddress,
    data: draft.data,
  });
}

/** Give drafts their sequence numbers and hashes, continuing from `head`. */
export function sealEvents(sha256: Sha256, head: AuditHead, drafts: readonly AuditEventDraft[]): SealedAuditEvent[] {
  let { seq, hash } = head;
  return drafts.map((draft) => {
    seq += 1;
    const payload = eventPayload(seq, draft);
    hash = chainHash(sha256, hash, payload);
    return { seq, at: draft.at, type: draft.type, actor: draft.actor, grantId: draft.grantId, payload, hash };
  });
}

/** The bytes a checkpoint signature covers. */
export function checkpointMessage(cp: Pick<Checkpoint, "seq" | "hash" | "at" | "keyId">): string {
  return canonicalJson({ at: cp.at, hash: cp.hash, keyId: cp.keyId, seq: cp.seq });
}

export type ChainProblem =
  | "modified"
  | "column_mismatch"
  | "recording_mismatch"
  | "recording_unaccounted"
  | "grant_mismatch"
  | "grant_unaccounted"
  | "terminal_session_mismatch"
  | "terminal_session_unaccounted"
  | "vault_opening_mismatch"
  | "vault_opening_unaccounted"
  | "drill_run_mismatch"
  | "drill_run_unaccounted"
  | "alarm_mismatch"
  | "alarm_unaccounted"
  | "token_mismatch"
  | "token_unaccounted"
  | "broker_state_mismatch"
  | "deleted"
  | "reordered"
  | "truncated"
  | "checkpoint_mismatch"
  | "bad_signature"
  | "unknown_key";

export interface ChainFailure {
  readonly ok: false;
  /** The first sequence number at which the log stops being what was written. */
  readonly seq: number;
  readonly problem: ChainProblem;
  /**
   * The stored column found changed, when verification can tell: `payload` or `hash` (modified),
   * `seq` (a row renumbered), `at`, `type`, `actor` or `grant_id` (an index column that disagrees
   * with the hashed payload). Null when no single column explains it (a deleted row, a checkpoint).
   */
  readonly column: string | null;
  readonly message: string;
  readonly eventsChecked: number;
}

export interface ChainSuccess {
  readonly ok: true;
  readonly eventsChecked: number;
  readonly headSeq: number;
  readonly headHash: string;
  readonly checkpointsChecked: number;
  /** Events after the last checkpoint: their tail could be cut undetected until the next one. */
  readonly unanchoredEvents: number;
  /**
   * Recordings checked against the digests sealed in the chain (verification from the database);
   * null when they could not be (an export holds no recordings); absent for the chain alone.
   */
  readonly recordings?: RecordingsChecked | null;
}

export interface RecordingsChecked {
  /** Recordings whose stored entries match the digest their end event sealed. */
  readonly matched: number;
  /** Recordings not sealed yet: still open, or closed without a seal (made before seals existed, or a crash). */
  readonly unsealed: number;
}

export type ChainVerdict = ChainSuccess | ChainFailure;

/** A modified row: the hash its payload gives, to tell a changed hash from a changed payload. */
interface Suspect {
  readonly seq: number;
  /** What its payload hashes to. */
  readonly hash: string;
  /** What its hash column says. */
  readonly storedHash: string;
  readonly fromStore: boolean;
}

/**
 * Stored event fields verification reads. `columns` are the row's index columns when it comes
 * from the database: each must say what the hashed payload says.
 */
export type VerifiableEvent = Pick<SealedAuditEvent, "seq" | "payload" | "hash"> & {
  readonly columns?: AuditColumns;
};

/**
 * Streaming verifier: feed events in stored order with {@link ChainVerifier.push}, then
 * {@link ChainVerifier.finish} with the checkpoints. Stops at the first problem.
 */
export class ChainVerifier {
  #expectSeq = 1;
  #prev = GENESIS_HASH;
  #count = 0;
  #failure: ChainFailure | null = null;
  /** Set while a suspected deletion might still turn out to be a reordering. */
  #missing: number | null = null;
  /** Set while a modified row's hash or payload is to blame: the hash its payload gives. */
  #suspect: Suspect | null = null;
  /** Hashes at checkpointed positions, filled while streaming. */
  readonly #wanted: Map<number, string | null>;

  constructor(
    private readonly sha256: Sha256,
    checkpointSeqs: readonly number[] = [],
  ) {
    this.#wanted = new Map(checkpointSeqs.map((s) => [s, null]));
  }

  /** The first problem found so far (a suspected deletion may still become a reordering). */
  get failed(): ChainFailure | null {
    return this.#failure;
  }

  /**
   * @returns false once the verdict is settled (later events are ignored). After a suspected
   *   deletion it keeps returning true: only later events can tell a deletion from a reordering.
   */
  push(event: VerifiableEvent): boolean {
    if (this.#suspect !== null) return this.#settleSuspect(this.#suspect, event);
    if (this.#missing !== null) return this.#lookFor(this.#missing, event);
    if (this.#failure) return false;
    const expected = this.#expectSeq;
    if (event.seq !== expected) {
      if (event.seq < expected) {
        return this.#fail(expected, "reordered", `event ${event.seq} appears where ${expected} was expected`);
      }
      this.#fail(
        expected,
        "deleted",
        `events ${expected}..${event.seq - 1} are missing (next stored event is ${event.seq})`,
      );
      this.#missing = expected;
      return true;
    }
    const hash = chainHash(this.sha256, this.#prev, event.payload);
    // Columns are named for rows read from the database; a file's lines have none.
    const fromStore = event.columns !== undefined;
    const col = (name: string) => (fromStore ? name : null);
    if (hash !== event.hash) {
      const inner = payloadSeq(event.payload);
      if (inner !== null && inner > event.seq) {
        // A later event's payload stands here: deleted and renumbered, or moved up.
        this.#fail(expected, "deleted", `stored event ${event.seq} carries the payload of event ${inner}`, col("seq"));
        this.#missing = expected;
        return true;
      }
      const problem = this.#diagnose(event);
      if (problem !== "modified") return this.#fail(expected, problem, this.#describe(event), col("seq"));
      // Payload or hash? If the next row chains from the hash this payload gives, the payload is
      // what was written and the hash column was changed; decided on the next push (or at the end).
      this.#fail(expected, "modified", this.#describe(event));
      this.#suspect = { seq: event.seq, hash, storedHash: event.hash, fromStore };
      return true;
    }
    if (event.columns !== undefined && !columnsMatch(event.seq, event.payload, event.columns)) {
      const diffs = columnDifferences(event.seq, event.payload, event.columns);
      const first = diffs[0];
      if (first !== undefined) {
        return this.#fail(expected, "column_mismatch", describeDifferences(event.seq, diffs), first.column);
      }
    }
    this.#count += 1;
    this.#prev = hash;
    this.#expectSeq += 1;
    if (this.#wanted.has(event.seq)) this.#wanted.set(event.seq, hash);
    return true;
  }

  /** The row after a modified one: does it chain from the stored hash, or from the payload's? */
  #settleSuspect(suspect: Suspect, event: VerifiableEvent): false {
    this.#suspect = null;
    const next = event.seq === suspect.seq + 1 ? event : null;
    if (next !== null && chainHash(this.sha256, suspect.hash, next.payload) === next.hash) {
      this.#blame(suspect, "hash");
    } else if (next !== null && chainHash(this.sha256, suspect.storedHash, next.payload) === next.hash) {
      this.#blame(suspect, "payload");
    } else {
      this.#blame(suspect, null);
    }
    return false;
  }

  /** Settle a modified row's failure on the column to blame (null: cannot tell which). */
  #blame({ seq, fromStore }: Suspect, column: "hash" | "payload" | null): void {
    const what =
      column === "hash"
        ? "its hash was changed: the payload is intact (what follows chains from it) but the stored hash is not what it hashes to"
        : column === "payload"
          ? "its payload was changed: it no longer hashes to its recorded value (which what follows still chains from)"
          : "its payload or its hash was changed (it does not hash to its recorded value)";
    this.#failure = {
      ok: false,
      seq,
      problem: "modified",
      column: fromStore ? column : null,
      message: `event ${seq} was modified: ${what}`,
      eventsChecked: this.#count,
    };
  }

  /** After a suspected deletion: if the missing event turns up later, it was reordered. */
  #lookFor(missing: number, event: VerifiableEvent): boolean {
    // Substring test first: this may run over every remaining event of a large log.
    const carries = event.payload.includes(`"seq":${missing}`) && payloadSeq(event.payload) === missing;
    if (event.seq !== missing && !carries) return true;
    this.#missing = null;
    const renumbered = event.columns !== undefined && event.seq !== missing;
    this.#failure = {
      ok: false,
      seq: missing,
      problem: "reordered",
      column: renumbered ? "seq" : null,
      message: `event ${missing} is stored out of order (found later, as stored event ${event.seq})${renumbered ? ": its seq column was changed" : ""}`,
      eventsChecked: this.#count,
    };
    return false;
  }

  #diagnose(event: VerifiableEvent): ChainProblem {
    const inner = payloadSeq(event.payload);
    if (inner !== null && inner !== event.seq) return inner > event.seq ? "deleted" : "reordered";
    return "modified";
  }

  #describe(event: VerifiableEvent): string {
    const inner = payloadSeq(event.payload);
    if (inner !== null && inner !== event.seq) {
      return `stored event ${event.seq} carries the payload of event ${inner}`;
    }
    return `event ${event.seq} does not hash to its recorded value (or does not follow event ${event.seq - 1}): it was modified`;
  }

  #fail(seq: number, problem: ChainProblem, message: string, column: string | null = null): false {
    this.#failure = { ok: false, seq, problem, column, message, eventsChecked: this.#count };
    return false;
  }

  /**
   * Check the checkpoints against the chain that was streamed.
   * `verifySignature` returns null when it does not know the key.
   */
  finish(
    checkpoints: readonly Checkpoint[],
    verifySignature: (message: string, cp: Checkpoint) => boolean | null,
  ): ChainVerdict {
    this.#missing = null;
    const suspect = this.#suspect;
    this.#suspect = null;
    // The newest row was modified: a checkpoint over it can still tell which column.
    if (suspect !== null) {
      const signed = checkpoints.find((cp) => cp.seq === suspect.seq)?.hash;
      this.#blame(suspect, signed === suspect.hash ? "hash" : signed === suspect.storedHash ? "payload" : null);
    }
    if (this.#failure) return this.#failure;
    const headSeq = this.#expectSeq - 1;
    let lastAnchored = 0;
    for (const cp of [...checkpoints].sort((a, b) => a.seq - b.seq)) {
      const sig = verifySignature(checkpointMessage(cp), cp);
      if (sig === null) {
        return this.#failFinal(cp.seq, "unknown_key", `checkpoint at ${cp.seq} is signed by unknown key ${cp.keyId}`);
      }
      if (!sig) {
        return this.#failFinal(cp.seq, "bad_signature", `checkpoint at ${cp.seq} has an invalid signature`);
      }
      if (cp.seq > headSeq) {
        return this.#failFinal(
          headSeq + 1,
          "truncated",
          `the log ends at ${headSeq} but a signed checkpoint covers up to ${cp.seq}: events ${headSeq + 1}..${cp.seq} were removed`,
        );
      }
      const seen = this.#wanted.get(cp.seq);
      if (seen !== cp.hash) {
        return this.#failFinal(
          cp.seq,
          "checkpoint_mismatch",
          `the chain at ${cp.seq} differs from the signed checkpoint: events ${lastAnchored + 1}..${cp.seq} were rewritten`,
        );
      }
      lastAnchored = Math.max(lastAnchored, cp.seq);
    }
    return {
      ok: true,
      eventsChecked: this.#count,
      headSeq,
      headHash: this.#prev,
      checkpointsChecked: checkpoints.length,
      unanchoredEvents: headSeq - lastAnchored,
    };
  }

  #failFinal(seq: number, problem: ChainProblem, message: string): ChainFailure {
    return { ok: false, seq, problem, column: null, message, eventsChecked: this.#count };
  }
}

function payloadSeq(payload: string): number | null {
  try {
    const parsed = JSON.parse(payload) as { seq?: unknown };
    return typeof parsed.seq === "number" ? parsed.seq : null;
  } catch {
    return null;
  }
}
