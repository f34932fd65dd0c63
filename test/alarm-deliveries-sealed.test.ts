/**
 * `audit verify` holds activation alarms' delivery state to the chain from the
 * `alarm.deliveries_sealed` mark on (earlier activations were delivered by an older broker). The
 * mark must therefore be in the chain before the broker can record any activation: it is written
 * when the broker starts, before it serves a request — not at the alarm worker's first delivery,
 * which an activation made at once after start could precede (a forged "delivered" on it then
 * went unnoticed). Once per database, however many brokers start on it. SQLite and PostgreSQL.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DELIVERIES_SEALED_STATE } from "../src/workers/alarm-worker.js";
import { type PostgresCluster, startPostgres } from "./support/postgres-cluster.js";
import { startTestBroker, type TestStorage } from "./support/test-broker.js";

let cluster: PostgresCluster | undefined;
beforeAll(async () => {
  cluster = await startPostgres();
});
afterAll(async () => {
  await cluster?.stop();
});

for (const driver of ["sqlite", "postgres"] as const) {
  describe(`on ${driver}`, () => {
    it("the mark is in the chain when start() returns, once however many brokers start", async () => {
      const storage: TestStorage = driver === "sqlite" ? { driver } : { driver, url: (cluster as PostgresCluster).url };
      const dir = mkdtempSync(join(tmpdir(), "bg-sealed-"));
      const first = await startTestBroker({ storage, dir });
      try {
        // Nothing awaited after start(): no tick of the alarm worker is waited for.
        const marks = await first.broker.store.readNonGrantAudit(["alarm.deliveries_sealed"]);
        expect(marks).toHaveLength(1);
        expect(await first.broker.store.readState(DELIVERIES_SEALED_STATE)).toBe("1");
        // Before any event a request could cause: only the broker's own start precedes it.
        const head = await first.broker.store.readAudit(1, 10);
        const before = head.filter((e) => e.seq < (marks[0]?.seq ?? 0)).map((e) => e.type);
        expect(before.every((t) => t === "config.changed")).toBe(true);
      } finally {
        await first.stop();
      }
      const second = await startTestBroker({ storage, dir });
      try {
        expect(await second.broker.store.readNonGrantAudit(["alarm.deliveries_sealed"])).toHaveLength(1);
      } finally {
        await second.stop();
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });
}
