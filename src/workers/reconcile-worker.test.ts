import { afterEach, beforeEach, expect, test } from "vitest";
import { makePolicy, T0 } from "../../test/support/core-fixtures.js";
import { ctx } from "../../test/support/ctx.js";
import { type MemoryStore, openMemoryStore } from "../../test/support/memory-store.js";
import { unused } from "../../test/support/unused.js";
import type { TargetAccess } from "../service/target-access.js";
import { createReconcileWorker, type ReconcileWorker } from "./reconcile-worker.js";

// erin is the fixture's only admin (platform-admins).
let db: MemoryStore;
let worker: ReconcileWorker;

beforeEach(async () => {
  db = await openMemoryStore();
  worker = createReconcileWorker({
    policy: makePolicy(),
    store: db.store,
    audit: db.journal,
    // No targets and no ended grants: nothing to recheck.
    access: unused<TargetAccess>("target access"),
    connectors: new Map(),
    clock: { now: () => T0 },
    intervalMs: 60_000,
    lookbackMs: 60_000,
    log: () => {},
  });
});
afterEach(async () => {
  await worker.stop();
  await db.close();
});

test("a pass asked for by someone (POST /reconcile) is an admin's; the loop's own passes ask nobody", async () => {
  await expect(worker.runNow(ctx("carol"))).rejects.toMatchObject({
    code: "ERR_FORBIDDEN",
    message: "reconciliation needs membership of platform-admins",
  });
  const empty = { fixed: [], reported: [], errors: [], checkedGrants: 0 };
  expect(await worker.runNow(ctx("erin"))).toEqual(empty);
  expect(await worker.runOnce()).toEqual(empty);
});
