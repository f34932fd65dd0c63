/**
 * What a unit test of a service, worker or auth part meets instead of a broker: a real SQLite store
 * in memory (migrated), the real audit journal over it (alarms routed to a `security` channel), a
 * clock the test moves, real ids and a secret box with a fresh key. Reading helpers return the
 * audit events and alarms the part wrote, with their data parsed.
 */
import { randomBytes } from "node:crypto";
import { sha256 } from "../../src/adapters/node-crypto.js";
import { createIdGenerator } from "../../src/adapters/system-clock.js";
import { type AuditJournal, createAuditJournal } from "../../src/audit/audit-journal.js";
import type { AlarmRouting } from "../../src/core/alarm-routing.js";
import type { AuditEventDraft } from "../../src/core/audit-event.js";
import type { IdGenerator } from "../../src/core/ports/runtime.js";
import type { Store } from "../../src/core/ports/store.js";
import type { AlarmRecord } from "../../src/core/records.js";
import { createSecretBox, type SecretBox } from "../../src/secrets/secret-box.js";
import { createSqliteStore } from "../../src/store/sqlite-store.js";
import { type ManualClock, manualClock } from "./manual-clock.js";

/** An audit event as a test reads it back: its type, actor and parsed payload data. */
export interface ReadEvent {
  readonly seq: number;
  readonly type: string;
  readonly actor: string;
  readonly grantId: string | null;
  readonly data: Record<string, unknown>;
  readonly requestId: string | null;
  readonly sourceAddress: string | null;
}

export interface UnitStore {
  readonly store: Store;
  readonly audit: AuditJournal;
  readonly clock: ManualClock;
  readonly ids: IdGenerator;
  readonly box: SecretBox;
  /** How many times the journal asked to wake the alarm worker (after commits that queued alarms). */
  readonly wakes: () => number;
  /** Every audit event so far, in seq order (optionally only these types). */
  events(...types: string[]): Promise<ReadEvent[]>;
  /** Every alarm queued so far. */
  alarms(): Promise<AlarmRecord[]>;
  /** Append events through the journal in one transaction; the alarms they queued. */
  record(...drafts: AuditEventDraft[]): Promise<AlarmRecord[]>;
  /** Append one event; the alarm it queued for `channel` (throws when it queued none). */
  alarmFor(channel: string, draft: AuditEventDraft): Promise<AlarmRecord>;
  close(): Promise<void>;
}

/** Security gets what always pages it; nothing else is routed. */
export const UNIT_ROUTING: AlarmRouting = { securityChannels: ["security"], routes: [] };

/** Every event to `channel` (and security what always pages it): for testing a channel with real alarms. */
export const routeAllTo = (channel: string): AlarmRouting => ({
  securityChannels: ["security"],
  routes: [{ events: ["*"], channels: [channel], domains: null }],
});

export async function openUnitStore(opts: { now?: number; routing?: AlarmRouting } = {}): Promise<UnitStore> {
  const store = await createSqliteStore({ path: ":memory:" });
  const clock = manualClock(opts.now);
  let wakes = 0;
  const audit = createAuditJournal({
    sha256,
    routing: opts.routing ?? UNIT_ROUTING,
    wakeAlarms: () => {
      wakes += 1;
    },
  });
  const record = async (...drafts: AuditEventDraft[]): Promise<AlarmRecord[]> => {
    const sealed = await store.transaction((tx) => audit.append(tx, drafts));
    const seqs = new Set(sealed.map((e) => e.seq));
    return (await store.readAlarms(null, 100_000)).filter((a) => seqs.has(a.eventSeq));
  };
  return {
    store,
    audit,
    clock,
    ids: createIdGenerator(clock),
    box: createSecretBox(randomBytes(32)),
    wakes: () => wakes,
    async events(...types) {
      const rows = await store.readAudit(1, 100_000);
      return rows
        .map((r) => {
          const p = JSON.parse(r.payload) as Record<string, unknown>;
          return {
            seq: r.seq,
            type: r.type,
            actor: r.actor,
            grantId: r.grantId,
            data: (p.data ?? {}) as Record<string, unknown>,
            requestId: (p.request_id ?? null) as string | null,
            sourceAddress: (p.source ?? null) as string | null,
          };
        })
        .filter((e) => types.length === 0 || types.includes(e.type));
    },
    async alarms() {
      return store.readAlarms(null, 100_000);
    },
    record,
    async alarmFor(channel, draft) {
      const alarm = (await record(draft)).find((a) => a.channel === channel);
      if (!alarm) throw new Error(`no ${channel} alarm for ${draft.type}`);
      return alarm;
    },
    close: () => store.close(),
  };
}
