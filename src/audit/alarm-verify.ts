/**
 * Alarm rows against the chain. An alarm row (`alarms`) is the outbox: one message to one channel
 * about one audit event (or one signed checkpoint), and its delivery's state.
 *
 * - What it is about — `id` (`a_<seq>_<channel>`), `event_seq`, `event_type`, `grant_id`,
 *   `created_at` and the `payload` sent (the event itself, its seq and hash, the one-line summary)
 *   — is checked against the event at `event_seq` (the checkpoint, for checkpoint alarms).
 * - Whether and when it was delivered is in the chain for activation alarms only
 *   (`SEALED_DELIVERY_EVENTS`): each such delivery writes `alarm.delivered` (alarm, channel, event,
 *   attempts) in the transaction that records it. From the `alarm.deliveries_sealed` mark on, an
 *   activation alarm row that says delivered without that event, or at another time, fails.
 *   Activations before the mark (delivered by an older broker) are not held to it.
 * - Not covered: the delivery state of every other alarm, and the outbox's bookkeeping (`attempts`
 *   while queued, `last_error`, `next_at`, `lease_owner`). Readers say so beside what they show.
 */

import { alarmSummary, SEALED_DELIVERY_EVENTS } from "../core/alarm-routing.js";
import { type AuditRecord, parseAuditPayload } from "../core/audit-columns.js";
import type { AuditEventType, StoredAuditEvent } from "../core/audit-event.js";
import { canonicalJson } from "../core/canonical-json.js";
import type { AlarmReads } from "../core/ports/alarms.js";
import type { AuditReads } from "../core/ports/audit.js";
import type { AlarmRecord, Checkpoint } from "../core/records.js";
import type { RowDifference as Diff } from "./row-check.js";
import { gone, RowFacts, unaccounted } from "./row-check.js";

export type AlarmStore = Pick<AlarmReads, "readAlarms"> & Pick<AuditReads, "readAuditAt">;

const NOT_DELIVERED = "not delivered (no alarm.delivered in the chain)";

/** An alarm's event as the chain holds it: its facts and its exact stored payload. */
export interface ChainEvent {
  readonly record: AuditRecord;
  readonly payload: string;
}

export class AlarmLedger {
  #sealedFrom: number | null = null;
  readonly #delivered = new Map<string, AuditRecord>();

  /** Call with each event the chain verified (or a reader read), in order. */
  note(event: StoredAuditEvent): void {
    if (event.type === "alarm.deliveries_sealed") {
      this.#sealedFrom ??= event.seq;
      return;
    }
    if (event.type !== "alarm.delivered") return;
    const e = parseAuditPayload(event.payload, event.hash);
    const id = e?.data.alarm;
    if (e !== null && typeof id === "string" && !this.#delivered.has(id)) this.#delivered.set(id, e);
  }

  /** Readers: the mark read on its own (it belongs to no grant). */
  sealedFrom(seq: number | null): void {
    this.#sealedFrom ??= seq;
  }

  /** Whether the chain covers this alarm's delivery state (a sealed activation alarm). */
  covers(a: AlarmRecord): boolean {
    if (this.#delivered.has(a.id)) return true;
    return (
      SEALED_DELIVERY_EVENTS.includes(a.eventType as AuditEventType) &&
      this.#sealedFrom !== null &&
      a.eventSeq > this.#sealedFrom
    );
  }

  /**
   * When the chain says it was delivered (null: not delivered), for an alarm whose delivery it
   * covers; undefined when it does not cover it (the row is all there is).
   */
  chainDelivery(a: AlarmRecord): number | null | undefined {
    const d = this.#delivered.get(a.id);
    if (d !== undefined) return d.at;
    return this.covers(a) ? null : undefined;
  }

  /** The row against the event it is about (null: no such event) and its sealed delivery. */
  differences(a: AlarmRecord, event: ChainEvent | null, checkpoint?: Checkpoint | null): Diff[] {
    if (a.eventType === "audit.checkpoint" && checkpoint !== undefined) return checkpointDifferences(a, checkpoint);
    const d = this.#delivered.get(a.id);
    if (d !== undefined && a.eventSeq !== d.data.event) {
      // Its sealed delivery names the event: the row points at another one.
      const c = new RowFacts("alarms", a.id);
      c.same("event_seq", a.eventSeq, d.data.event, d);
      return c.list;
    }
    if (event === null) return [unaccounted("alarms", a.id)];
    const c = new RowFacts("alarms", a.id);
    const e = event.record;
    // The id names the event and channel; when a sealed delivery names this id, its channel and event are the chain's.
    if (d === undefined) c.same("id", a.id, `a_${a.eventSeq}_${a.channel}`, e);
    c.same("event_type", a.eventType, e.type, e);
    c.same("grant_id", a.grantId, e.grantId, e);
    c.same("created_at", a.createdAt, e.at, e);
    c.same("payload", payloadFacts(a.payload), { idempotencyKey: a.id, event: eventFacts(event) }, e);
    if (d !== undefined) {
      c.same("channel", a.channel, d.data.channel, d);
      c.same("state", a.state, "delivered", d);
      c.same("delivered_at", a.deliveredAt, d.at, d);
      c.same("attempts", a.attempts, d.data.attempts, d);
    } else if (this.covers({ ...a, eventType: e.type, eventSeq: e.seq })) {
      c.same("state", a.state === "delivered" ? "delivered" : NOT_DELIVERED, NOT_DELIVERED, e);
      c.same("delivered_at", a.deliveredAt === null ? NOT_DELIVERED : a.deliveredAt, NOT_DELIVERED, e);
    }
    return c.list;
  }

  /** Every alarm row, a page at a time, against its event; every sealed delivery whose row is gone. */
  async check(store: AlarmStore, checkpoints: readonly Checkpoint[]): Promise<Diff[]> {
    const out: Diff[] = [];
    const cps = new Map(checkpoints.map((cp) => [cp.seq, cp]));
    const seen = new Set<string>();
    for (let after: string | null = null; ; ) {
      const page: AlarmRecord[] = await store.readAlarms(after, 2000);
      const seqs = page.filter((a) => a.eventType !== "audit.checkpoint").map((a) => a.eventSeq);
      const events = new Map<number, ChainEvent>();
      for (const s of await store.readAuditAt(seqs)) {
        const record = parseAuditPayload(s.payload, s.hash);
        if (record !== null) events.set(s.seq, { record, payload: s.payload });
      }
      for (const a of page) {
        if (this.#delivered.has(a.id)) seen.add(a.id);
        out.push(...this.differences(a, events.get(a.eventSeq) ?? null, cps.get(a.eventSeq) ?? null));
      }
      const last = page.at(-1);
      if (last === undefined || page.length < 2000) break;
      after = last.id;
    }
    for (const [id, d] of this.#delivered) if (!seen.has(id)) out.push(gone("alarms", id, d));
    return out;
  }
}

/** What an alarm's message says about its event (null fields when it is not a message). */
function payloadFacts(payload: string): unknown {
  try {
    const m = JSON.parse(payload) as { idempotencyKey?: unknown; summary?: unknown; event?: unknown };
    const event = typeof m.event === "object" && m.event !== null ? (m.event as Record<string, unknown>) : {};
    const { hash, ...fields } = event;
    return {
      idempotencyKey: m.idempotencyKey ?? null,
      event: {
        seq: fields.seq ?? null,
        hash: hash ?? null,
        payload: canonicalJson(fields),
        summary: m.summary ?? null,
      },
    };
  } catch {
    return payload;
  }
}

/** The same facts, as the chain's event gives them. */
function eventFacts(e: ChainEvent) {
  const fields = JSON.parse(e.payload) as Record<string, unknown>;
  return { seq: e.record.seq, hash: e.record.hash, payload: e.payload, summary: alarmSummary(fields) };
}

function checkpointDifferences(a: AlarmRecord, cp: Checkpoint | null): Diff[] {
  if (cp === null) return [unaccounted("alarms", a.id)];
  // A checkpoint is not an event: its facts are the signed checkpoint row's (verified on its own).
  const record: AuditRecord = {
    seq: cp.seq,
    hash: cp.hash,
    at: cp.at,
    type: "audit.checkpoint" as AuditEventType,
    actor: "system",
    grantId: null,
    roleId: null,
    domain: null,
    target: null,
    justification: null,
    incident: null,
    requestId: null,
    source: null,
    data: {},
  };
  const c = new RowFacts("alarms", a.id);
  c.same("id", a.id, `a_cp${a.eventSeq}_${a.channel}`, record);
  c.same("grant_id", a.grantId, null, record);
  c.same("created_at", a.createdAt, cp.at, record);
  let sent: unknown = a.payload;
  try {
    sent = (JSON.parse(a.payload) as { checkpoint?: unknown }).checkpoint ?? null;
  } catch {}
  c.same("payload", sent, cp, record);
  return c.list;
}

/** What a reader shows of an alarm row beside the row itself. */
export interface AlarmCheck {
  readonly differences: Diff[];
  /** When the chain says it was delivered (null: not); undefined when the chain does not cover its delivery. */
  readonly deliveredAt: number | null | undefined;
}

/**
 * A grant's alarms, each with what the chain says about its row and whether its delivery state is
 * covered (for a reader: `events` are the grant's, `sealedFrom` the seq of `alarm.deliveries_sealed`).
 */
export function alarmChecks(
  alarms: readonly AlarmRecord[],
  events: readonly StoredAuditEvent[],
  sealedFrom: number | null,
): Map<string, AlarmCheck> {
  const ledger = new AlarmLedger();
  ledger.sealedFrom(sealedFrom);
  const bySeq = new Map<number, ChainEvent>();
  for (const e of events) {
    ledger.note(e);
    const record = parseAuditPayload(e.payload, e.hash);
    if (record !== null) bySeq.set(e.seq, { record, payload: e.payload });
  }
  return new Map(
    alarms.map((a) => [
      a.id,
      {
        differences: ledger.differences(a, bySeq.get(a.eventSeq) ?? null),
        deliveredAt: ledger.chainDelivery(a),
      },
    ]),
  );
}
