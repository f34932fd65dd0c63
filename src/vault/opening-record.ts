/**
 * Opening records: one line per opening of an envelope, in `<envelope>.openings.jsonl` beside
 * it, chained like the audit log (each line's hash covers the previous hash and its canonical
 * payload) and signed with the envelope's record key (see envelope.ts), so anyone holding the
 * envelope can check that no opening was edited, removed or invented.
 */
import { createHash } from "node:crypto";
import { canonicalJson } from "../core/canonical-json.js";
import { type Envelope, verifyRecordSignature } from "./envelope.js";

export const GENESIS = "0".repeat(64);

export interface OpeningRecord {
  readonly seq: number;
  readonly payload: string;
  readonly hash: string;
  readonly signature: string;
}

export interface OpeningFacts {
  readonly envelope: string;
  readonly name: string;
  readonly at: string;
  readonly custodians: readonly { readonly name: string; readonly fingerprint: string }[];
  readonly reason: string;
  readonly incident: string;
  /** `delivered to N`, or `pending` when no alarm endpoint could be reached. */
  readonly alarm: string;
  /** A drill: the custodians proved the envelope opens; the secret was not shown. */
  readonly drill?: true;
}

/** Whether a record is a drill (the envelope opened, the secret not shown: not a use). */
export const isDrillRecord = (r: OpeningRecord): boolean =>
  (JSON.parse(r.payload) as { drill?: unknown }).drill === true;

/** The records that are real openings (the secret was seen), not drills. */
export const realOpenings = (records: readonly OpeningRecord[]): OpeningRecord[] =>
  records.filter((r) => !isDrillRecord(r));

const chain = (prev: string, payload: string) => createHash("sha256").update(`${prev}\n${payload}`).digest("hex");

export function nextRecord(
  previous: readonly OpeningRecord[],
  facts: OpeningFacts,
  signRecord: (payload: string) => string,
): OpeningRecord {
  const last = previous.at(-1);
  const seq = (last?.seq ?? 0) + 1;
  const payload = canonicalJson({ v: 1, seq, ...facts });
  return { seq, payload, hash: chain(last?.hash ?? GENESIS, payload), signature: signRecord(payload) };
}

export function parseRecords(text: string): OpeningRecord[] {
  return text
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map((l) => JSON.parse(l) as OpeningRecord);
}

/** Null when every record chains and verifies; else what is wrong and where. */
export function verifyRecords(envelope: Envelope, records: readonly OpeningRecord[]): string | null {
  let prev = GENESIS;
  for (const [i, r] of records.entries()) {
    if (r.seq !== i + 1) return `record ${i + 1}: sequence ${r.seq} (a record was removed or reordered)`;
    if (chain(prev, r.payload) !== r.hash) return `record ${r.seq}: its hash does not match (edited)`;
    if (!verifyRecordSignature(envelope, r.payload, r.signature)) return `record ${r.seq}: bad signature`;
    const facts = JSON.parse(r.payload) as { envelope?: unknown };
    if (facts.envelope !== envelope.meta.id) return `record ${r.seq}: it belongs to another envelope`;
    prev = r.hash;
  }
  return null;
}

/**
 * A pending alarm delivered after the opening (`vault flush-alarms`): a line of
 * `<envelope>.alarm-receipts.jsonl`. The record it names is signed and cannot change; the receipt
 * is what turns its `alarm: pending` into delivered.
 */
export interface AlarmReceipt {
  readonly seq: number;
  /** The record's hash: a receipt for another file's record with the same seq does not count. */
  readonly hash: string;
  readonly deliveredAt: string;
  /** `delivered to N endpoint(s)` */
  readonly summary: string;
}

export function parseReceipts(text: string): AlarmReceipt[] {
  const out: AlarmReceipt[] = [];
  for (const line of text.split("\n")) {
    if (line.trim() === "") continue;
    try {
      const r = JSON.parse(line) as Partial<AlarmReceipt>;
      if (typeof r.seq === "number" && typeof r.hash === "string" && typeof r.deliveredAt === "string")
        out.push({ seq: r.seq, hash: r.hash, deliveredAt: r.deliveredAt, summary: String(r.summary ?? "delivered") });
    } catch {
      // a damaged line proves no delivery: its record stays pending
    }
  }
  return out;
}

/** Whether the record's opening told no alarm endpoint (`pending…`); a drill never leaves one. */
export const alarmPendingAtOpening = (r: OpeningRecord): boolean => {
  const facts = JSON.parse(r.payload) as { alarm?: unknown; drill?: unknown };
  return facts.drill !== true && typeof facts.alarm === "string" && facts.alarm.startsWith("pending");
};

/** The receipt that delivered this record's alarm later, if any. */
export const receiptOf = (r: OpeningRecord, receipts: readonly AlarmReceipt[]): AlarmReceipt | undefined =>
  receipts.find((x) => x.seq === r.seq && x.hash === r.hash);

/** Openings whose alarm no endpoint has taken yet: pending at the opening, and no receipt since. */
export const alarmStillPending = (
  records: readonly OpeningRecord[],
  receipts: readonly AlarmReceipt[],
): OpeningRecord[] => records.filter((r) => alarmPendingAtOpening(r) && receiptOf(r, receipts) === undefined);
