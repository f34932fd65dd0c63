import { afterEach, beforeEach, describe, expect, test } from "vitest";
import {
  HOUR,
  MINUTE,
  makeGrant,
  makePolicy,
  makeRole,
  ROLE_DB_ADMIN,
  rule,
  T0,
} from "../../test/support/core-fixtures.js";
import { type MemoryStore, openMemoryStore } from "../../test/support/memory-store.js";
import { sha256 } from "../adapters/node-crypto.js";
import type { Grant } from "../core/model.js";
import { createReviewQueries, type ReviewQueries } from "./review-queries.js";

// db-admin's emergency uses are reviewed by security (carol, erin), not by any reviewer.
const policy = makePolicy({
  roles: [
    makeRole({
      id: ROLE_DB_ADMIN,
      approval: rule("2 of sre-leads"),
      emergencyAllowed: true,
      emergencyReviewers: ["security"],
    }),
  ],
});
const now = T0 + 10 * HOUR;
let db: MemoryStore;
let queries: ReviewQueries;

/** An ended grant (expired), due for review at `reviewDueAt`. */
const ended = (id: string, reviewDueAt: number, over: Partial<Grant> = {}): Grant =>
  makeGrant({
    id,
    state: "ended",
    endReason: "expired",
    activatedAt: T0 + MINUTE,
    endedAt: T0 + HOUR,
    lapseAt: null,
    reviewDueAt,
    ...over,
  });

const approvedBy = (...approvers: string[]) => approvers.map((approver) => ({ approver, at: T0, comment: null }));

beforeEach(async () => {
  db = await openMemoryStore();
  queries = createReviewQueries({ policy, clock: { now: () => now }, sha256, store: db.store });
  await db.insert([
    ended("g_due", now + HOUR, { approvals: approvedBy("bob", "carol") }),
    ended("g_over", now - 1, { approvals: approvedBy("bob", "dave") }),
    ended("g_bob", now + 2 * HOUR, { requester: "bob", approvals: approvedBy("carol", "dave") }),
    ended("g_emergency", now + 3 * HOUR, { requester: "erin", emergency: true }),
    // Never queued: a drill's grant (its run is the record), one not ended, one reviewed.
    ended("g_drill", now - HOUR, { requester: "dave", drill: true, reviewDueAt: null }),
    makeGrant({ id: "g_active", state: "active", requester: "dave", roleId: "observability/grafana-admin" }),
    ended("g_reviewed", now - HOUR, { requester: "carol", state: "reviewed" }),
  ]);
});
afterEach(() => db.close());

const ids = (q: Awaited<ReturnType<ReviewQueries["queue"]>>) => q.reviews.map((r) => r.grant.id);

describe("the review queue", () => {
  test("holds ended grants only, oldest deadline first, each saying whether it is overdue", async () => {
    const q = await queries.queue("carol", { overdue: false, mine: false });
    expect(ids(q)).toEqual(["g_over", "g_due", "g_bob", "g_emergency"]);
    expect(q.reviews.map((r) => r.overdue)).toEqual([true, false, false, false]);
    expect(q.reviews.map((r) => r.emergency)).toEqual([false, false, false, true]);
    expect(q.openings).toEqual([]);
  });

  test("`overdue` keeps only what is past its deadline", async () => {
    expect(ids(await queries.queue("carol", { overdue: true, mine: false }))).toEqual(["g_over"]);
  });

  test("says why the caller may not review a grant: held it, approved it, or an emergency use for other reviewers", async () => {
    const q = await queries.queue("dave", { overdue: false, mine: false });
    const why = new Map(q.reviews.map((r) => [r.grant.id, r.why]));
    expect(why.get("g_due")).toBeNull();
    expect(why.get("g_over")).toMatch(/dave approved grant g_over/);
    expect(why.get("g_bob")).toMatch(/dave approved grant g_bob/);
    expect(why.get("g_emergency")).toMatch(/emergency activation: it is reviewed by a member of security/);
    const bobs = await queries.queue("bob", { overdue: false, mine: false });
    expect(bobs.reviews.find((r) => r.grant.id === "g_bob")?.why).toMatch(/bob held grant g_bob/);
  });

  test("`mine` keeps only what the caller may review", async () => {
    // carol approved g_due and g_bob; she is one of the emergency reviewers.
    expect(ids(await queries.queue("carol", { overdue: false, mine: true }))).toEqual(["g_over", "g_emergency"]);
    expect(ids(await queries.queue("dave", { overdue: false, mine: true }))).toEqual(["g_due"]);
    expect(ids(await queries.queue("alice", { overdue: false, mine: true }))).toEqual(["g_bob"]);
  });

  test("`overdue` and `mine` together: both must hold", async () => {
    expect(ids(await queries.queue("carol", { overdue: true, mine: true }))).toEqual(["g_over"]);
    expect(ids(await queries.queue("dave", { overdue: true, mine: true }))).toEqual([]);
  });
});

describe("a grant's story", () => {
  test("says why the caller cannot record the verdict, or null when they can", async () => {
    expect((await queries.story("erin", "g_due")).why).toBeNull();
    expect((await queries.story("alice", "g_due")).why).toMatch(/alice held grant g_due/);
    expect((await queries.story("erin", "g_active")).why).toMatch(
      /it is active; grants are reviewed once they have ended/,
    );
    expect((await queries.story("erin", "g_drill")).why).toMatch(/it belongs to a drill/);
    expect((await queries.story("erin", "g_reviewed")).why).toMatch(/reviewed already/);
  });

  test("an unknown grant is not found", async () => {
    await expect(queries.story("erin", "g_nope")).rejects.toMatchObject({ code: "ERR_NOT_FOUND" });
  });
});
