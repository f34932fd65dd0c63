import { afterEach, beforeEach, describe, expect, test } from "vitest";
import {
  FIXTURE_HANDLE,
  HOUR,
  MINUTE,
  makeGrant,
  makePolicy,
  makeRequestInput,
  ROLE_DB_ADMIN,
  ROLE_GRAFANA_ADMIN,
  T0,
} from "../../test/support/core-fixtures.js";
import { MEMORY_STORE_ROUTING, type MemoryStore, openMemoryStore } from "../../test/support/memory-store.js";
import type { AuditEventDraft } from "../core/audit-event.js";
import { approveGrant, completeActivation, markGranting, requestGrant } from "../core/grant-machine.js";
import type { Grant } from "../core/model.js";
import { createGrantQueries, type GrantQueries } from "./grant-queries.js";

const policy = makePolicy();
const UNALARMED_AFTER = 5 * MINUTE;
let db: MemoryStore;
let now: number;
let queries: GrantQueries;

beforeEach(async () => {
  db = await openMemoryStore();
  now = T0 + HOUR;
  queries = createGrantQueries({
    policy,
    alarms: { routing: MEMORY_STORE_ROUTING, unalarmedAfterMs: UNALARMED_AFTER },
    clock: { now: () => now },
    store: db.store,
  });
});
afterEach(() => db.close());

/** A closed grant (denied: no open-grant constraint), requested at `at`. */
const closed = (id: string, at: number, over: Partial<Grant> = {}): Grant =>
  makeGrant({ id, requestedAt: at, state: "denied", lapseAt: null, ...over });

/** A grafana-admin grant on `incident`, requested (alice by default), approved by carol and activated: its grant and events. */
function activated(
  id: string,
  incident: string,
  at: number,
  requester = "alice",
): { grant: Grant; events: AuditEventDraft[] } {
  const requested = requestGrant(
    policy,
    makeRequestInput({ id, roleId: ROLE_GRAFANA_ADMIN, incident, requester }),
    at,
    null,
  );
  const approved = approveGrant(policy, requested.grant, "carol", null, at + MINUTE);
  const active = completeActivation(
    markGranting(approved.grant, requester, FIXTURE_HANDLE, at + 2 * MINUTE),
    requester,
    at + 2 * MINUTE,
    policy,
  );
  return { grant: active.grant, events: [requested.event, approved.event, active.event] };
}

describe("a page of grants", () => {
  test("pages newest first with the keyset cursor: each grant once, at most the limit a page", async () => {
    // Eleven grants, three pairs requested in the same millisecond (the id breaks the tie).
    const times = [0, 1, 1, 2, 3, 3, 4, 5, 5, 6, 7];
    const grants = times.map((t, i) => closed(`g_${String(i).padStart(2, "0")}`, T0 + t * MINUTE));
    await db.insert(grants);

    const seen: string[] = [];
    const sizes: number[] = [];
    let cursor: string | undefined;
    for (let pages = 0; pages < 20; pages++) {
      const page = await queries.page("alice", { limit: 3, cursor });
      sizes.push(page.grants.length);
      seen.push(...page.grants.map((g) => g.grant.id));
      if (page.next === null) break;
      cursor = page.next;
    }

    expect(sizes).toEqual([3, 3, 3, 2]);
    expect(new Set(seen).size).toBe(grants.length);
    const newestFirst = [...grants]
      .sort((a, b) => b.requestedAt - a.requestedAt || b.id.localeCompare(a.id))
      .map((g) => g.id);
    expect(seen).toEqual(newestFirst);
  });

  test("a full last page says there is no next one (no empty page after it)", async () => {
    await db.insert([closed("g_a", T0), closed("g_b", T0 + MINUTE)]);
    const page = await queries.page("alice", { limit: 2 });
    expect(page.grants).toHaveLength(2);
    expect(page.next).toBeNull();
  });

  test("a grant requested after the first page was read does not repeat or shift the pages after it", async () => {
    await db.insert([closed("g_1", T0), closed("g_2", T0 + MINUTE), closed("g_3", T0 + 2 * MINUTE)]);
    const first = await queries.page("alice", { limit: 2 });
    await db.insert([closed("g_4", T0 + 3 * MINUTE)]);
    const second = await queries.page("alice", { limit: 2, cursor: first.next ?? undefined });
    expect(first.grants.map((g) => g.grant.id)).toEqual(["g_3", "g_2"]);
    expect(second.grants.map((g) => g.grant.id)).toEqual(["g_1"]);
    expect(second.next).toBeNull();
  });

  test("the limit is capped at the API's page maximum", async () => {
    await db.insert(Array.from({ length: 105 }, (_, i) => closed(`g_${i}`, T0 + i)));
    const page = await queries.page("alice", { limit: 1000 });
    expect(page.grants).toHaveLength(100);
    expect(page.next).not.toBeNull();
  });

  test("refuses a cursor it did not give out", async () => {
    await expect(queries.page("alice", { cursor: "not-a-cursor" })).rejects.toMatchObject({
      code: "ERR_VALIDATION",
      detail: { field: "cursor" },
    });
  });

  test("`mine` is the caller's grants, and cannot be combined with another requester", async () => {
    await db.insert([closed("g_a", T0, { requester: "alice" }), closed("g_b", T0 + 1, { requester: "bob" })]);
    const mine = await queries.page("bob", { mine: true });
    expect(mine.grants.map((g) => g.grant.id)).toEqual(["g_b"]);
    await expect(queries.page("bob", { mine: true, requester: "alice" })).rejects.toMatchObject({
      code: "ERR_VALIDATION",
      detail: { field: "mine" },
    });
  });

  test("filters by state, and refuses a state that is not one", async () => {
    await db.insert([closed("g_a", T0), closed("g_b", T0 + 1, { state: "cancelled" })]);
    const page = await queries.page("alice", { state: "cancelled" });
    expect(page.grants.map((g) => g.grant.id)).toEqual(["g_b"]);
    await expect(queries.page("alice", { state: "cancelled,gone" })).rejects.toMatchObject({
      code: "ERR_VALIDATION",
      detail: { field: "state" },
    });
  });

  test("a role that is not configured and has no grants is a typo (404); a configured one is an empty page", async () => {
    await expect(queries.page("alice", { role: "production/db-admn" })).rejects.toMatchObject({
      code: "ERR_NOT_FOUND",
    });
    expect((await queries.page("alice", { role: ROLE_DB_ADMIN })).grants).toEqual([]);
    // A role removed from the configuration still lists its old grants.
    await db.insert([closed("g_old", T0, { roleId: "production/retired" })]);
    expect((await queries.page("alice", { role: "production/retired" })).grants).toHaveLength(1);
  });

  test("an active grant whose activation alarm no security channel delivered is flagged once the grace has passed", async () => {
    const { grant, events } = activated("g_act", "INC-1", T0);
    await db.insert([grant], events);
    const activatedAt = grant.activatedAt ?? 0;

    now = activatedAt + UNALARMED_AFTER - 1;
    expect((await queries.page("alice", {})).grants[0]).toMatchObject({ unalarmed: false });
    now = activatedAt + UNALARMED_AFTER;
    expect((await queries.page("alice", {})).grants[0]).toMatchObject({ unalarmed: true });
  });
});

describe("an incident's record", () => {
  test("holds the incident's grants, their events in chain order and their alarms, and nothing of other incidents", async () => {
    const a = activated("g_a", "INC-1", T0);
    const b = requestGrant(
      policy,
      makeRequestInput({ id: "g_b", requester: "bob", incident: "INC-1" }),
      T0 + MINUTE,
      null,
    );
    const other = activated("g_c", "INC-2", T0 + 2 * MINUTE, "erin");
    await db.insert([a.grant], a.events);
    await db.insert([b.grant], [b.event]);
    await db.insert([other.grant], other.events);

    const record = await queries.incident("INC-1");

    expect(record.incident).toBe("INC-1");
    expect(record.grants.map((g) => g.id).sort()).toEqual(["g_a", "g_b"]);
    const timeline = record.timeline.map((e) => e.record);
    expect(timeline.map((e) => e.grantId)).toEqual(["g_a", "g_a", "g_a", "g_b"]);
    expect(timeline.map((e) => e.type)).toEqual([
      "grant.requested",
      "grant.approved",
      "grant.activated",
      "grant.requested",
    ]);
    expect(timeline.map((e) => e.seq)).toEqual([...timeline.map((e) => e.seq)].sort((x, y) => x - y));
    expect(record.timeline.every((e) => e.integrity === null)).toBe(true);
    // The activation alarm of g_a (to the security channel), not g_c's.
    expect(record.alarms.map((x) => [x.grantId, x.eventType, x.channel])).toEqual([
      ["g_a", "grant.activated", "security"],
    ]);
  });

  test("an incident no grant names is not found", async () => {
    await db.insert([closed("g_a", T0)]);
    await expect(queries.incident("INC-404")).rejects.toMatchObject({ code: "ERR_NOT_FOUND" });
  });
});

describe("one grant", () => {
  test("comes with its events and alarms; an unknown id is not found", async () => {
    const { grant, events } = activated("g_a", "INC-1", T0);
    await db.insert([grant], events);
    const detail = await queries.detail("g_a");
    expect(detail.events.map((e) => e.type)).toEqual(["grant.requested", "grant.approved", "grant.activated"]);
    expect(detail.alarms).toHaveLength(1);
    await expect(queries.detail("g_nope")).rejects.toMatchObject({ code: "ERR_NOT_FOUND" });
  });
});
