/**
 * A real store for unit tests of what reads and writes it: unit-store.ts's SQLite in memory with
 * the real audit journal, seen as the store and its journal, plus inserting grants as they are.
 */

import type { AuditJournal } from "../../src/audit/audit-journal.js";
import type { AlarmRouting } from "../../src/core/alarm-routing.js";
import type { AuditEventDraft } from "../../src/core/audit-event.js";
import { dueAt } from "../../src/core/grant-machine.js";
import type { Grant } from "../../src/core/model.js";
import type { Store } from "../../src/core/ports/store.js";
import { openUnitStore, UNIT_ROUTING } from "./unit-store.js";

/** Activation alarms go to `security` (a channel name only: nothing delivers in these tests). */
export const MEMORY_STORE_ROUTING: AlarmRouting = UNIT_ROUTING;

export interface MemoryStore {
  readonly store: Store;
  readonly journal: AuditJournal;
  /**
   * Insert grants as new rows (whatever their version; with their due times) and append events
   * through the journal, in one transaction.
   */
  insert(grants: readonly Grant[], events?: readonly AuditEventDraft[]): Promise<void>;
  close(): Promise<void>;
}

export async function openMemoryStore(routing: AlarmRouting = MEMORY_STORE_ROUTING): Promise<MemoryStore> {
  const { store, audit: journal, close } = await openUnitStore({ routing });
  return {
    store,
    journal,
    insert: (grants, events = []) =>
      store.transaction(async (tx) => {
        for (const g of grants) await tx.saveGrant({ ...g, version: 1 }, dueAt(g));
        if (events.length > 0) await journal.append(tx, events);
      }),
    close,
  };
}
