/**
 * The tamper-evident audit chain.
 *
 *   payload_n = canonicalJson({ v: 1, seq, at, type, actor, grant, role, domain, target,
 *                               justification, incident, request_id, source, data })
 *   hash_n    = SHA-256( hex(hash_{n-1}) ‖ "\n" ‖ payload_n ),   hash_0 = 64 × "0"
 *
 * Editing, deleting or reordering any event changes every later hash; a signed checkpoint
 * (seq, hash) pins the head so a rewritten chain or a truncated tail is caught as well.
 * Verification needs no parsing on the happy path: one hash per event.
 */
import type { AuditEventDraft, SealedAuditEvent } from "./audit-event.js";
import { canonicalJson } from "./canonical-json.js";
import type { AuditHead, Checkpoint, Sha256 } from "./ports.js";

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
}

export type ChainVerdict = ChainSuccess | ChainFailure;

/** Stored event fields verification reads. */
export type VerifiableEvent = Pick<SealedAuditEvent, "seq" | "payload" | "hash">;

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
    if (hash !== event.hash) {
      const inner = payloadSeq(event.payload);
      if (inner !== null && inner > event.seq) {
        // A later event's payload stands here: deleted and renumbered, or moved up.
        this.#fail(expected, "deleted", `stored event ${event.seq} carries the payload of event ${inner}`);
        this.#missing = expected;
        return true;
      }
      return this.#fail(expected, this.#diagnose(event), this.#describe(event));
    }
    this.#count += 1;
    this.#prev = hash;
    this.#expectSeq += 1;
    if (this.#wanted.has(event.seq)) this.#wanted.set(event.seq, hash);
    return true;
  }

  /** After a suspected deletion: if the missing event turns up later, it was reordered. */
  #lookFor(missing: number, event: VerifiableEvent): boolean {
    // Substring test first: this may run over every remaining event of a large log.
    const carries = event.payload.includes(`"seq":${missing}`) && payloadSeq(event.payload) === missing;
    if (event.seq !== missing && !carries) return true;
    this.#missing = null;
    this.#failure = {
      ok: false,
      seq: missing,
      problem: "reordered",
      message: `event ${missing} is stored out of order (found later, as stored event ${event.seq})`,
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

  #fail(seq: number, problem: ChainProblem, message: string): false {
    this.#failure = { ok: false, seq, problem, message, eventsChecked: this.#count };
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
    return { ok: false, seq, problem, message, eventsChecked: this.#count };
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
