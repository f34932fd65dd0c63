import { afterEach, beforeEach, expect, test } from "vitest";
import { makePolicy, T0 } from "../../test/support/core-fixtures.js";
import { ctx } from "../../test/support/ctx.js";
import { type MemoryStore, openMemoryStore } from "../../test/support/memory-store.js";
import { unused } from "../../test/support/unused.js";
import { createIdGenerator } from "../adapters/system-clock.js";
import { createDrillService, type DrillService } from "./drill-service.js";
import type { GrantService } from "./grant-service.js";

// erin is the fixture's only admin (platform-admins).
const clock = { now: () => T0 };
let db: MemoryStore;
let drills: DrillService;

beforeEach(async () => {
  db = await openMemoryStore();
  drills = createDrillService({
    drills: [],
    policy: makePolicy(),
    // Neither a refusal nor an unknown drill reaches the grant service.
    service: unused<GrantService>("grant service"),
    store: db.store,
    audit: db.journal,
    clock,
    ids: createIdGenerator(clock),
    log: () => {},
  });
});
afterEach(() => db.close());

test("only an admin starts a drill; the refusal comes before anything is looked up or written", async () => {
  await expect(drills.start(ctx("carol"), "nightly")).rejects.toMatchObject({
    code: "ERR_FORBIDDEN",
    message: "running a drill needs membership of platform-admins",
  });
  expect(await db.store.readAudit(1, 10)).toEqual([]);
  // An admin gets as far as the drill's name.
  await expect(drills.start(ctx("erin"), "nightly")).rejects.toMatchObject({ code: "ERR_NOT_FOUND" });
});
