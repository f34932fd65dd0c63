/**
 * An unacknowledged activation escalates once per grant (docs/alarms.md), also when two replicas'
 * escalation workers look at the same moment, and never after an acknowledgement that was
 * recorded first. Both workers decided from audit events read before they locked the grant, so
 * two replicas each raised `alarm.escalated` for the same grant, and an acknowledgement committed
 * while a worker waited for the lock did not stop it.
 * Two workers over one SQLite file, and over PostgreSQL as two replicas (two stores, two pools).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sha256 } from "../src/adapters/node-crypto.js";
import { createAuditLog } from "../src/audit/audit-log.js";
import { grantEvent } from "../src/core/grant-machine.js";
import type { Store } from "../src/core/ports/store.js";
import { createPostgresStore } from "../src/store/postgres-store.js";
import { createSqliteStore } from "../src/store/sqlite-store.js";
import { createEscalationWorker } from "../src/workers/escalation-worker.js";
import { makeGrant } from "./support/core-fixtures.js";
import { type PostgresCluster, startPostgres } from "./support/postgres-cluster.js";
import { PATIENCE_MS, until } from "./support/wait.js";

const MODES = [
  { name: "two workers on one SQLite file", postgres: false },
  { name: "two replicas on PostgreSQL", postgres: true },
] as const;
const NOW = Date.UTC(2026, 10, 22, 3, 0, 0);
const AFTER_MS = 10 * 60_000;
const GRANTS = 5;

for (const mode of MODES) {
  describe(`escalation races: ${mode.name}`, () => {
    let cluster: PostgresCluster | null = null;
    let dir = "";
    const stores: Store[] = [];
    const audit = createAuditLog({ sha256 });
    const worker = (store: Store) =>
      createEscalationWorker({
        store,
        audit,
        clock: { now: () => NOW },
        afterMs: AFTER_MS,
        intervalMs: 60_000,
        log: () => {},
      });

    beforeAll(async () => {
      dir = mkdtempSync(join(tmpdir(), "bg-escalation-"));
      if (mode.postgres) {
        cluster = await startPostgres();
        for (let i = 0; i < 2; i++) stores.push(await createPostgresStore({ url: cluster.url, poolSize: 4 }));
      } else {
        for (let i = 0; i < 2; i++) stores.push(await createSqliteStore({ path: join(dir, "breakglass.db") }));
      }
    }, 120_000);

    afterAll(async () => {
      for (const s of stores) await s.close();
      await cluster?.stop();
      if (dir !== "") rmSync(dir, { recursive: true, force: true });
    });

    const activeGrants = async (prefix: string) => {
      const [store] = stores as [Store];
      const ids: string[] = [];
      for (let i = 0; i < GRANTS; i++) {
        const g = makeGrant({
          id: `g_${prefix}${i}`,
          requester: `${prefix}${i}`,
          state: "active",
          requestedAt: NOW - 2 * AFTER_MS,
          approvedAt: NOW - 2 * AFTER_MS,
          activatedAt: NOW - 2 * AFTER_MS,
          endsAt: NOW + AFTER_MS,
          access: "granted",
        });
        await store.transaction((tx) => tx.saveGrant(g, null));
        ids.push(g.id);
      }
      return ids;
    };

    const escalationsOf = async (ids: readonly string[]) => {
      const events = await (stores[0] as Store).readGrantAudit(ids);
      return ids.map((id) => events.filter((e) => e.grantId === id && e.type === "alarm.escalated").length);
    };

    it("two workers at once escalate each grant once", async () => {
      const ids = await activeGrants("a");
      const [a, b] = [worker(stores[0] as Store), worker(stores[1] as Store)];
      const [byA, byB] = await Promise.all([a.runOnce(), b.runOnce()]);
      const counts = await escalationsOf(ids);
      console.log(
        `escalation race (${mode.name}): ${byA.length} + ${byB.length} escalations raised for ${ids.length} grants; per grant ${counts.join(",")}`,
      );
      expect(counts).toEqual(ids.map(() => 1));
      // And not again later.
      expect(await a.runOnce()).toEqual([]);
    });

    // SQLite runs one transaction at a time and the worker's reads wait for it: only PostgreSQL
    // lets a worker read the audit log while an acknowledgement holds the grant.
    if (mode.postgres)
      it("an acknowledgement recorded while a worker waits for the grant stops its escalation", async () => {
        const ids = await activeGrants("k");
        const [store] = stores as [Store];
        const acknowledged = new Set<string>();
        // The acknowledgements take the grants' locks first (as POST /grants/{id}/ack does), and
        // hold them until the worker has read the audit log and is waiting for them.
        let release = () => {};
        const held = new Promise<void>((r) => {
          release = r;
        });
        let locked = () => {};
        const allLocked = new Promise<void>((r) => {
          locked = r;
        });
        const acks = (async () => {
          // All in one transaction, so that every grant is held while the worker reads.
          await (stores[1] as Store).transaction(async (tx) => {
            for (const id of ids) {
              const g = await tx.lockGrant(id);
              if (!g) throw new Error(`no grant ${id}`);
              await audit.append(tx, [grantEvent(g, "alarm.acknowledged", "bob", NOW, { comment: null })]);
              acknowledged.add(id);
            }
            locked();
            await held;
          });
        })();
        await allLocked;
        const escalating = worker(store).runOnce();
        // The worker has read the audit log (the acknowledgements not yet committed) and waits for
        // the first grant's lock.
        const admin = new pg.Client({ connectionString: cluster?.adminUrl });
        await admin.connect();
        try {
          await until(
            "the worker to wait for a grant's lock",
            async () =>
              (await admin.query("SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock'")).rows.length > 0,
            PATIENCE_MS,
            25,
          );
        } finally {
          await admin.end();
        }
        release();
        await acks;
        const escalated = await escalating;
        expect(acknowledged.size).toBe(ids.length);
        expect(escalated).toEqual([]);
        expect(await escalationsOf(ids)).toEqual(ids.map(() => 0));
      });
  });
}
