/**
 * Verify the audit chain: straight from the store (streamed page by page), or offline from a
 * JSONL export with only the public key(s) — no broker, no database.
 *
 * Both stream through {@link ChainVerifier}: one SHA-256 per event, memory independent of the
 * log's length.
 */

import { sha256 } from "../adapters/node-crypto.js";
import {
  type ChainFailure,
  type ChainVerdict,
  ChainVerifier,
  chainHash,
  GENESIS_HASH,
  type VerifiableEvent,
} from "../core/audit-chain.js";
import type { StoredAuditEvent } from "../core/audit-event.js";
import { canonicalJson } from "../core/canonical-json.js";
import type { AuditReads } from "../core/ports/audit.js";
import type { Checkpoint } from "../core/records.js";
import { AlarmLedger, type AlarmStore } from "./alarm-verify.js";
import { DrillLedger, type DrillRunStore } from "./drill-verify.js";
import { GrantLedger, type GrantStore } from "./grant-verify.js";
import { RecordingLedger, type RecordingStore } from "./recording-verify.js";
import { failureOf } from "./row-check.js";
import { BrokerStateLedger, type BrokerStateStore, TokenLedger, type TokenStore } from "./state-verify.js";
import { TerminalLedger, type TerminalSessionStore } from "./terminal-verify.js";
import { VaultOpeningLedger, type VaultOpeningStore } from "./vault-verify.js";

/** Given a checkpoint and the bytes it signs: valid, invalid, or null for an unknown key. */
export type SignatureCheck = (message: string, cp: Checkpoint) => boolean | null;

export interface VerifyOptions {
  /**
   * Signed checkpoints kept outside the log (a receiver's copy of the `audit.checkpoint`
   * alarms): checked like the log's own, so a log cut back together with its local checkpoints
   * still fails as `truncated`.
   */
  readonly anchors?: readonly Checkpoint[];
}

/** What online verification reads: the chain, and every table it holds to the chain. */
export type EvidenceStore = Pick<AuditReads, "readAudit" | "readCheckpoints"> &
  RecordingStore &
  GrantStore &
  TerminalSessionStore &
  VaultOpeningStore &
  DrillRunStore &
  AlarmStore &
  TokenStore &
  BrokerStateStore;

/** Rows written while verification reads are re-read with the events appended since, at most this often. */
const SETTLE_ROUNDS = 3;

/**
 * Verify every stored event and checkpoint, every row's index columns against its payload, every
 * row a person reads as evidence against the events that recorded it (grants: grant-verify.ts;
 * terminal sessions, tier-2 openings, drill runs, alarms, tokens, broker state: row-check.ts), and
 * every recording against its seal (recording-verify.ts).
 * @throws ERR_STORAGE from the store (a storage failure is not a verdict).
 */
export async function verifyStoreChain(
  store: EvidenceStore,
  verifySignature: SignatureCheck,
  options: VerifyOptions & { readonly pageSize?: number } = {},
): Promise<ChainVerdict> {
  const recordings = new RecordingLedger();
  const grants = new GrantLedger();
  const terminals = new TerminalLedger();
  const openings = new VaultOpeningLedger();
  const drills = new DrillLedger();
  const alarms = new AlarmLedger();
  const tokens = new TokenLedger();
  const state = new BrokerStateLedger();
  const checkpoints = [...(await store.readCheckpoints()), ...(options.anchors ?? [])];
  const stream = new ChainStream(store, checkpoints, options.pageSize ?? 10_000, (event) => {
    recordings.note(event);
    grants.note(event);
    terminals.note(event);
    openings.note(event);
    drills.note(event);
    alarms.note(event);
    tokens.note(event);
    state.note(event);
  });
  if (!(await stream.read())) return stream.finish(verifySignature);
  // The chain holds: now the rows it recorded. A row read after the events were is ahead of them
  // when the broker changed it meanwhile (its event came after the last page): read the events
  // appended since, and the rows again, before calling any of them edited.
  let failure: ChainFailure | null = null;
  for (let round = 1; ; round++) {
    const n = stream.count;
    const rows = [
      ...(await terminals.check(store)),
      ...(await openings.check(store)),
      ...(await drills.check(store)),
      ...(await alarms.check(store, checkpoints)),
      ...(await tokens.check(store)),
      ...(await state.check(store)),
    ];
    const candidates = [await grants.check(store, n), ...rows.map((d) => failureOf(d, n))];
    failure = candidates.reduce<ChainFailure | null>(
      (a, b) => (b !== null && (a === null || b.seq < a.seq) ? b : a),
      null,
    );
    if (failure === null || round === SETTLE_ROUNDS) break;
    if (!(await stream.read())) return stream.finish(verifySignature);
    if (stream.count === n) break;
  }
  const chain = stream.finish(verifySignature);
  if (!chain.ok) return chain;
  if (failure !== null) return { ...failure, eventsChecked: chain.eventsChecked };
  const checked = await recordings.check(store, chain.eventsChecked);
  return "ok" in checked ? checked : { ...chain, recordings: checked };
}

/** The chain from the store, streamed page by page; {@link ChainStream.read} again picks up what was appended since. */
class ChainStream {
  readonly #verifier: ChainVerifier;
  #next = 1;
  #count = 0;

  constructor(
    private readonly store: Pick<AuditReads, "readAudit">,
    private readonly checkpoints: readonly Checkpoint[],
    private readonly pageSize: number,
    private readonly note: (event: StoredAuditEvent) => void,
  ) {
    // Checkpoints first: the verifier must know which hashes to keep as it streams.
    this.#verifier = new ChainVerifier(
      sha256,
      checkpoints.map((cp) => cp.seq),
    );
  }

  /** Events verified and noted so far. */
  get count(): number {
    return this.#count;
  }

  /** Read to the current end; false once the chain has failed (its verdict is then settled). */
  async read(): Promise<boolean> {
    const verifier = this.#verifier;
    if (verifier.failed !== null) return false;
    // Read the next page while hashing this one (overlaps I/O with hashing on PostgreSQL).
    let pending = this.store.readAudit(this.#next, this.pageSize);
    for (;;) {
      const page = await pending;
      const tail = page.at(-1);
      const more = tail !== undefined && page.length === this.pageSize;
      if (more) pending = this.store.readAudit(tail.seq + 1, this.pageSize);
      for (const event of page) {
        if (!verifier.push(event)) {
          if (more) await pending.catch(() => undefined);
          return false;
        }
        if (verifier.failed !== null) continue;
        this.note(event);
        this.#count += 1;
        this.#next = event.seq + 1;
      }
      if (!more) return verifier.failed === null;
    }
  }

  finish(verifySignature: SignatureCheck): ChainVerdict {
    return this.#verifier.finish(this.checkpoints, verifySignature);
  }
}

/**
 * Verify a JSONL export (see audit-export.ts): checkpoint lines, then event lines, each event's
 * payload being `canonicalJson(event)`. Blank lines are ignored; a line that is not a valid
 * audit line fails verification, naming its line number.
 */
export async function verifyJsonl(
  lines: AsyncIterable<string> | Iterable<string>,
  verifySignature: SignatureCheck,
  options: VerifyOptions = {},
): Promise<ChainVerdict> {
  const checkpoints: Checkpoint[] = [...(options.anchors ?? [])];
  let verifier: ChainVerifier | null = null;
  let verified = 0;
  let prevHash = GENESIS_HASH;
  let lineNo = 0;
  const start = (): ChainVerifier =>
    new ChainVerifier(
      sha256,
      checkpoints.map((cp) => cp.seq),
    );
  const malformed = (why: string): ChainFailure => ({
    ok: false,
    seq: verified + 1,
    problem: "modified",
    column: null,
    message: `line ${lineNo} ${why}`,
    eventsChecked: verified,
  });

  for await (const raw of lines) {
    lineNo += 1;
    const text = raw.endsWith("\r") ? raw.slice(0, -1) : raw;
    if (text.trim() === "") continue;
    // After a failure the verifier only looks ahead (deleted or reordered?); bad lines do not matter then.
    const lookingAhead = verifier?.failed != null;
    if (verifier && !lookingAhead) {
      const fast = exportedEvent(text, verified + 1, prevHash);
      if (fast) {
        verifier.push(fast);
        verified += 1;
        prevHash = fast.hash;
        continue;
      }
    }
    const line = parseLine(text);
    if (typeof line === "string") {
      if (lookingAhead) continue;
      return malformed(line);
    }
    if (line.kind === "checkpoint") {
      if (verifier) {
        if (lookingAhead) continue;
        return malformed("is a checkpoint after the first event; checkpoint lines must come before the events");
      }
      checkpoints.push(line.checkpoint);
      continue;
    }
    verifier ??= start();
    if (!lookingAhead && line.event.seq !== line.seq) {
      return malformed(`says seq ${line.seq} but the event in it is seq ${String(line.event.seq)}`);
    }
    let payload: string;
    try {
      payload = canonicalJson(line.event);
    } catch {
      if (lookingAhead) continue;
      return malformed("holds an event that is not canonicalisable JSON");
    }
    if (!verifier.push({ seq: line.seq, payload, hash: line.hash })) break;
    if (verifier.failed === null) {
      verified += 1;
      prevHash = line.hash;
    }
  }
  const verdict = (verifier ?? start()).finish(checkpoints, verifySignature);
  // An export carries the chain (and the digests sealed in it), not the recordings themselves.
  return verdict.ok ? { ...verdict, recordings: null } : verdict;
}

const EXPORTED_EVENT = /^\{"kind":"event","seq":(\d{1,15}),"hash":"([0-9a-f]{64})","event":\{/;

/**
 * The fast path for a line exactly as `exportAudit` writes it, when it is the next link of a so
 * far intact chain: the embedded event bytes are then the stored payload itself, proven by its
 * hash, so parsing and re-canonicalising them (the slow path, ~5× the cost) would add nothing.
 * Anything else — reformatted, out of place, not hashing — returns null and takes the slow path.
 */
function exportedEvent(text: string, seq: number, prevHash: string): VerifiableEvent | null {
  const m = EXPORTED_EVENT.exec(text);
  if (!m || Number(m[1]) !== seq || !text.endsWith("}")) return null;
  const hash = m[2] as string;
  const payload = text.slice(m[0].length - 1, -1);
  return chainHash(sha256, prevHash, payload) === hash ? { seq, payload, hash } : null;
}

type ParsedLine =
  | { readonly kind: "checkpoint"; readonly checkpoint: Checkpoint }
  | { readonly kind: "event"; readonly seq: number; readonly hash: string; readonly event: Record<string, unknown> };

/** The line's content, or why it is not an audit line. */
function parseLine(text: string): ParsedLine | string {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return "is not valid JSON";
  }
  if (!isRecord(value)) return "is not a JSON object";
  if (value.kind === "event") {
    const { seq, hash, event } = value;
    if (!isSeq(seq)) return "has no valid seq";
    if (typeof hash !== "string") return "has no hash";
    if (!isRecord(event)) return "has no event object";
    return { kind: "event", seq, hash, event };
  }
  if (value.kind === "checkpoint") {
    const checkpoint = parseCheckpoint(value);
    return typeof checkpoint === "string" ? checkpoint : { kind: "checkpoint", checkpoint };
  }
  return `has unknown kind ${JSON.stringify(value.kind ?? null)}`;
}

function parseCheckpoint(value: Record<string, unknown>): Checkpoint | string {
  const { seq, hash, at, keyId, signature } = value;
  if (!isSeq(seq)) return "is a checkpoint without a valid seq";
  if (typeof hash !== "string" || typeof keyId !== "string" || typeof signature !== "string") {
    return "is a checkpoint without hash, keyId or signature";
  }
  if (typeof at !== "number" || !Number.isFinite(at)) return "is a checkpoint without a valid at";
  return { seq, hash, at, keyId, signature };
}

/**
 * The signed checkpoints in a file kept outside the broker: a JSONL file of alarm messages (the
 * file channel's output, or a webhook receiver's log; lines without a `checkpoint` are skipped),
 * export checkpoint lines, or one JSON checkpoint.
 * @returns the checkpoints, or why the file holds none usable (naming the line).
 */
export function parseAnchors(text: string): Checkpoint[] | string {
  const found: Checkpoint[] = [];
  const lines = isWholeJson(text) ? [text] : text.split("\n");
  for (const [i, raw] of lines.entries()) {
    if (raw.trim() === "") continue;
    let value: unknown;
    try {
      value = JSON.parse(raw);
    } catch {
      return `line ${i + 1} is not valid JSON`;
    }
    if (!isRecord(value)) return `line ${i + 1} is not a JSON object`;
    const candidate = isRecord(value.checkpoint) ? value.checkpoint : value.kind === "checkpoint" ? value : null;
    if (candidate === null) continue;
    const cp = parseCheckpoint(candidate);
    if (typeof cp === "string") return `line ${i + 1} ${cp}`;
    found.push(cp);
  }
  return found.length > 0 ? found : "holds no checkpoint (expected audit.checkpoint alarm messages)";
}

/** One (possibly pretty-printed) JSON document rather than JSON lines. */
function isWholeJson(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function isSeq(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value > 0;
}

/**
 * One human line per verdict, e.g.
 * `FAILED at seq 42, column actor: column_mismatch — event 42's actor column says …` or
 * `OK: 10,000 events, head 10000 3f2a…, 3 checkpoints, 12 events after the last checkpoint`.
 */
export function formatVerdict(verdict: ChainVerdict): string {
  if (!verdict.ok) {
    const where = verdict.column === null ? "" : `, column ${verdict.column}`;
    if (verdict.seq === 0) return `FAILED: ${verdict.problem} — ${verdict.message}`;
    return `FAILED at seq ${verdict.seq}${where}: ${verdict.problem} — ${verdict.message} (${count(verdict.eventsChecked, "event")} verified before it)`;
  }
  if (verdict.eventsChecked === 0) return `OK: empty log, ${count(verdict.checkpointsChecked, "checkpoint")}`;
  const tail =
    verdict.checkpointsChecked === 0
      ? "no checkpoint yet: nothing is pinned by a signature"
      : verdict.unanchoredEvents === 0
        ? "the head is checkpointed"
        : `${count(verdict.unanchoredEvents, "event")} after the last checkpoint`;
  const r = verdict.recordings;
  const recordings =
    r === undefined
      ? ""
      : r === null
        ? "; recordings not checked (an export holds none), nor the rows people read (grants, terminal sessions, tier-2 openings, drill runs, alarms, tokens, broker state): verify against the database for them"
        : `; ${count(r.matched, "recording")} ${r.matched === 1 ? "matches its sealed digest" : "match their sealed digests"}${r.unsealed > 0 ? `, ${r.unsealed} not sealed (open, or closed before seals existed)` : ""}`;
  return `OK: ${count(verdict.eventsChecked, "event")}, head ${verdict.headSeq} ${verdict.headHash.slice(0, 16)}…, ${count(verdict.checkpointsChecked, "checkpoint")}, ${tail}${recordings}`;
}

function count(n: number, noun: string): string {
  return `${n.toLocaleString("en-US")} ${noun}${n === 1 ? "" : "s"}`;
}
