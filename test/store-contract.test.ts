/**
 * The storage contract: every Store adapter passes the same suite (SQLite on a temp file, and
 * PostgreSQL on a throwaway cluster started here). Each test gets a fresh, migrated database.
 */

import { createHash } from "node:crypto";
import { mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import BetterSqlite3 from "better-sqlite3";
import { type Dialect, Kysely, Migrator, PostgresDialect, SqliteDialect } from "kysely";
import pg from "pg";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { GENESIS_HASH } from "../src/core/audit-chain.js";
import type { SealedAuditEvent } from "../src/core/audit-event.js";
import { BreakglassError, type ErrorCode } from "../src/core/errors.js";
import type { Grant, VaultOpening } from "../src/core/model.js";
import type { Store } from "../src/core/ports/store.js";
import type { AlarmRecord, AuditHead, Checkpoint, StatementRecord, TokenRecord } from "../src/core/records.js";
import { packStatements } from "../src/core/statement-batch.js";
import { MIGRATIONS } from "../src/store/migrations.js";
import { createPostgresStore } from "../src/store/postgres-store.js";
import { createSqliteStore } from "../src/store/sqlite-store.js";
import { makeGrant as coreMakeGrant } from "./support/core-fixtures.js";
import {
  APP_ROLE,
  createDatabase,
  type PostgresCluster,
  startPostgres,
  withDatabase,
} from "./support/postgres-cluster.js";
import { PATIENCE_MS, settle, sleep, until } from "./support/wait.js";

interface TestDatabase {
  open(options?: { migrate?: boolean }): Promise<Store>;
  /** Raw SQL behind the store's back (tampering, breaking things). */
  exec(statement: string): Promise<void>;
  /** Raw SQL whose rows the test reads (e.g. who waits for a lock). */
  query(statement: string): Promise<Record<string, unknown>[]>;
  /** Apply the migrations up to `name` only (a database of an earlier release). */
  migrateTo(name: string): Promise<void>;
}

/** Run the store's migrations up to `name` on a database of a dialect. */
async function migrateTo(dialect: Dialect, name: string): Promise<void> {
  const db = new Kysely<unknown>({ dialect });
  try {
    const { error } = await new Migrator({
      db,
      provider: { getMigrations: async () => ({ ...MIGRATIONS }) },
    }).migrateTo(name);
    if (error) throw error;
  } finally {
    await db.destroy();
  }
}

interface Backend {
  readonly name: string;
  /** Real row locks: concurrent transactions run side by side (PostgreSQL). */
  readonly rowLocks: boolean;
  setup(): Promise<void>;
  teardown(): Promise<void>;
  freshDatabase(): Promise<TestDatabase>;
}

let databases = 0;

function sqliteBackend(): Backend {
  let dir = "";
  return {
    name: "sqlite",
    rowLocks: false,
    async setup() {
      dir = await mkdtemp(join(tmpdir(), "bg-sqlite-"));
    },
    async teardown() {
      await rm(dir, { recursive: true, force: true });
    },
    async freshDatabase() {
      const path = join(dir, `t${++databases}.db`);
      return {
        open: (options = {}) => createSqliteStore({ path, ...options }),
        migrateTo: (name) => migrateTo(new SqliteDialect({ database: new BetterSqlite3(path) }), name),
        async exec(statement) {
          const raw = new BetterSqlite3(path);
          try {
            raw.exec(statement);
          } finally {
            raw.close();
          }
        },
        async query(statement) {
          const raw = new BetterSqlite3(path, { readonly: true });
          try {
            return raw.prepare(statement).all() as Record<string, unknown>[];
          } finally {
            raw.close();
          }
        },
      };
    },
  };
}

function postgresBackend(): Backend {
  let cluster: PostgresCluster | undefined;
  const need = (): PostgresCluster => {
    if (cluster === undefined) throw new Error("cluster not started");
    return cluster;
  };
  return {
    name: "postgres",
    rowLocks: true,
    async setup() {
      cluster = await startPostgres();
    },
    async teardown() {
      await cluster?.stop();
    },
    async freshDatabase() {
      const name = `t${++databases}`;
      const adminUrl = await createDatabase(need().adminUrl, name, { owner: APP_ROLE });
      const url = withDatabase(need().url, name);
      return {
        open: (options = {}) => createPostgresStore({ url, poolSize: 4, ...options }),
        migrateTo: (name) =>
          migrateTo(new PostgresDialect({ pool: new pg.Pool({ connectionString: url, max: 1 }) }), name),
        async exec(statement) {
          const client = new pg.Client({ connectionString: adminUrl });
          await client.connect();
          try {
            await client.query(statement);
          } finally {
            await client.end();
          }
        },
        async query(statement) {
          const client = new pg.Client({ connectionString: adminUrl });
          await client.connect();
          try {
            return (await client.query(statement)).rows as Record<string, unknown>[];
          } finally {
            await client.end();
          }
        },
      };
    },
  };
}

const BACKENDS: readonly Backend[] = [sqliteBackend(), postgresBackend()];

// ---------------------------------------------------------------------------------------------
// Fixtures

const T0 = 1_767_225_600_000; // 2026-01-01T00:00:00Z: well past 2^31, so bigint handling shows
let grants = 0;

/** The core fixture's grant, with a fresh id per call and this suite's large epoch (bigint handling). */
function makeGrant(overrides: Partial<Grant> = {}): Grant {
  return coreMakeGrant({ id: `g_${++grants}`, requestedAt: T0, lapseAt: T0 + 900_000, ...overrides });
}

/** Every field set to a non-default value. */
function fullGrant(): Grant {
  return makeGrant({
    state: "reviewed",
    endReason: "released",
    emergency: true,
    approvedAt: T0 + 1,
    activatedAt: T0 + 2,
    endsAt: T0 + 3_600_000,
    endedAt: T0 + 1_800_000,
    lapseAt: T0 + 4,
    reviewDueAt: T0 + 86_400_000,
    approvals: [
      { approver: "carol", at: T0 + 1, comment: "seen the page" },
      { approver: "bob", at: T0 + 1, comment: null },
    ],
    closedBy: "alice",
    closeReason: "fixed: connection limit raised",
    access: "revoked",
    accessHandle: { role: "bg_alice_g1", grants: ["pg_read_all_data"], nested: { n: 1, ok: true, none: null } },
    accessAttempts: 2,
    accessLastError: "timeout talking to target",
    accessNextAt: T0 + 5,
    review: { reviewer: "sam", at: T0 + 7_200_000, outcome: "justified_with_findings", notes: "add an index" },
    version: 7,
  });
}

/** A grant after one more write (as the grant machine does it). */
function next(grant: Grant, patch: Partial<Grant> = {}): Grant {
  return { ...grant, ...patch, version: grant.version + 1 };
}

function sealed(head: AuditHead, count: number, grantId: string | null = null): SealedAuditEvent[] {
  let { seq, hash } = head;
  return Array.from({ length: count }, () => {
    seq += 1;
    const payload = JSON.stringify({ v: 1, seq, type: "grant.requested", grant: grantId });
    hash = createHash("sha256").update(`${hash}\n${payload}`).digest("hex");
    return { seq, at: T0 + seq, type: "grant.requested" as const, actor: "alice", grantId, payload, hash };
  });
}

/** How a sealed event reads back: as written, with its index columns beside it. */
function stored(events: readonly SealedAuditEvent[]) {
  return events.map((e) => ({ ...e, columns: { at: e.at, type: e.type, actor: e.actor, grantId: e.grantId } }));
}

function token(overrides: Partial<TokenRecord> = {}): TokenRecord {
  return {
    id: "t_1",
    user: "alice",
    secretHash: "a".repeat(64),
    createdAt: T0,
    expiresAt: null,
    revokedAt: null,
    description: "laptop CLI",
    scopes: ["*"],
    ...overrides,
  };
}

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve = () => {};
  const promise = new Promise<void>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

async function rejection(p: Promise<unknown>): Promise<BreakglassError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(BreakglassError);
    return e as BreakglassError;
  }
  throw new Error("expected a rejection");
}

async function expectCode(p: Promise<unknown>, code: ErrorCode): Promise<BreakglassError> {
  const err = await rejection(p);
  expect(err.code).toBe(code);
  return err;
}

// ---------------------------------------------------------------------------------------------

for (const backend of BACKENDS) {
  describe(backend.name, () => {
    let db: TestDatabase;
    let store: Store;
    const save = (grant: Grant, dueAt: number | null = null) => store.transaction((tx) => tx.saveGrant(grant, dueAt));

    beforeAll(() => backend.setup());
    afterAll(() => backend.teardown());
    beforeEach(async () => {
      db = await backend.freshDatabase();
      store = await db.open();
    });
    afterEach(() => store.close());

    describe("grants", () => {
      it("round-trips a grant with every field set", async () => {
        const grant = fullGrant();
        await save(grant);
        expect(await store.getGrant(grant.id)).toEqual(grant);
        expect(await store.transaction((tx) => tx.lockGrant(grant.id))).toEqual(grant);
      });

      it("round-trips a fresh request with its nulls", async () => {
        const grant = makeGrant();
        await save(grant);
        const stored = await store.getGrant(grant.id);
        expect(stored).toEqual(grant);
        expect(stored?.emergency).toBe(false);
        expect(stored?.accessHandle).toBeNull();
        expect(stored?.review).toBeNull();
      });

      it("returns null for a grant that does not exist", async () => {
        expect(await store.getGrant("g_missing")).toBeNull();
        expect(await store.transaction((tx) => tx.lockGrant("g_missing"))).toBeNull();
      });

      it("keeps approvals in the order they were given as they accumulate", async () => {
        const v1 = makeGrant();
        const v2 = next(v1, { approvals: [{ approver: "zoe", at: T0 + 10, comment: "ok" }] });
        const v3 = next(v2, {
          state: "approved",
          approvedAt: T0 + 10,
          approvals: [...v2.approvals, { approver: "adam", at: T0 + 10, comment: null }],
        });
        await save(v1);
        await save(v2);
        await save(v3);
        expect((await store.getGrant(v1.id))?.approvals).toEqual([
          { approver: "zoe", at: T0 + 10, comment: "ok" },
          { approver: "adam", at: T0 + 10, comment: null },
        ]);
        expect(await store.getGrant(v1.id)).toEqual(v3);
      });

      it("refuses an approval list naming the same approver twice", async () => {
        const twice = [
          { approver: "bob", at: T0, comment: null },
          { approver: "bob", at: T0 + 1, comment: null },
        ];
        await expectCode(save(makeGrant({ approvals: twice })), "ERR_DUPLICATE_APPROVAL");
      });

      it("never deletes a stored approval: a grant read before it was given is refused with ERR_CONFLICT", async () => {
        const v1 = makeGrant();
        const bob = { approver: "bob", at: T0 + 10, comment: null };
        const v2 = next(v1, { approvals: [bob] });
        await save(v1);
        await save(v2);
        // The row is current (version 2) but the approvals are from before bob's.
        const stale = next(v2, { approvals: [{ approver: "carol", at: T0 + 11, comment: null }] });
        const err = await expectCode(save(stale), "ERR_CONFLICT");
        expect(err.detail).toMatchObject({ grantId: v1.id, approvers: ["bob"] });
        expect(await store.getGrant(v1.id)).toEqual(v2);
      });

      it("refuses a second approval by someone whose approval is stored, in the database (ERR_DUPLICATE_APPROVAL)", async () => {
        const v1 = makeGrant();
        const v2 = next(v1, { approvals: [{ approver: "bob", at: T0 + 10, comment: null }] });
        await save(v1);
        await save(v2);
        // bob again, from a caller that did not see bob's first approval.
        const again = next(v2, { approvals: [{ approver: "bob", at: T0 + 11, comment: "me too" }] });
        const err = await expectCode(save(again), "ERR_DUPLICATE_APPROVAL");
        expect(err.detail).toMatchObject({ grantId: v1.id, user: "bob" });
        expect(await store.getGrant(v1.id)).toEqual(v2);
      });

      // The lost approvals of issue 19: under READ COMMITTED a locking read that waited returned
      // the row as committed after the wait, with its approvals from before it.
      if (backend.rowLocks)
        it.each([
          ["the server's default isolation", null],
          ["a database whose default is repeatable read", "repeatable read"],
        ])(
          "lockGrant that waited for another writer returns what that writer committed, approvals included (%s)",
          async (_, isolation) => {
            if (isolation !== null) {
              // Set behind the store's back: its transactions say which isolation they need.
              const [{ name }] = (await db.query("SELECT current_database() AS name")) as [{ name: string }];
              await store.close();
              await db.exec(`ALTER DATABASE ${name} SET default_transaction_isolation = '${isolation}'`);
              store = await db.open();
            }
            const v1 = makeGrant();
            await save(v1);
            const aLocked = deferred();
            const aRelease = deferred();
            const a = store.transaction(async (tx) => {
              const g = await tx.lockGrant(v1.id);
              aLocked.resolve();
              await aRelease.promise;
              if (g)
                await tx.saveGrant(next(g, { approvals: [{ approver: "bob", at: T0 + 10, comment: null }] }), null);
            });
            await aLocked.promise;
            const b = store.transaction((tx) => tx.lockGrant(v1.id));
            // b is waiting for a's row lock before a commits.
            await until(
              "the second lockGrant to wait for the lock",
              async () =>
                (
                  await db.query(
                    "SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%for update%'",
                  )
                ).length > 0,
              PATIENCE_MS,
              25,
            );
            aRelease.resolve();
            await a;
            const seen = await b;
            expect(seen?.version).toBe(2);
            expect(seen?.approvals).toEqual([{ approver: "bob", at: T0 + 10, comment: null }]);
          },
        );

      it("refuses a stale update with ERR_CONFLICT and writes nothing", async () => {
        const v1 = makeGrant();
        await save(v1);
        const winner = next(v1, { state: "cancelled", closedBy: "alice" });
        await save(winner);
        const loser = next(v1, { state: "approved", approvals: [{ approver: "bob", at: T0, comment: null }] });
        const err = await expectCode(
          store.transaction(async (tx) => {
            await tx.insertAuditEvents(sealed(await tx.lockAuditHead(), 1, v1.id));
            await tx.saveGrant(loser, T0);
          }),
          "ERR_CONFLICT",
        );
        expect(err.detail).toMatchObject({ grantId: v1.id, expectedVersion: 1, storedVersion: 2 });
        expect(await store.getGrant(v1.id)).toEqual(winner);
        expect(await store.readAudit(0, 10)).toEqual([]);
        expect(await store.nextDueAt()).toBeNull();
      });

      it("refuses a version that skips ahead, and a new grant whose id exists", async () => {
        const v1 = makeGrant();
        await save(v1);
        await expectCode(save({ ...v1, version: 3 }), "ERR_CONFLICT");
        await expectCode(save({ ...v1, requester: "mallory" }), "ERR_CONFLICT");
        expect(await store.getGrant(v1.id)).toEqual(v1);
      });

      it("updateGrants saves many grants' bookkeeping in one call, nulls and JSON included", async () => {
        const grants = Array.from({ length: 3 }, (_, i) => makeGrant({ requester: `bulk${i}` }));
        for (const g of grants) await save(g, T0);
        const ended = grants.map((g, i) =>
          next(g, {
            state: "ended",
            endReason: "expired",
            endedAt: T0 + i,
            access: "revoking",
            accessHandle: { principal: `bg_${g.id}`, nested: { n: i } },
            accessNextAt: T0 + 1000,
            accessLastError: i === 0 ? "target unreachable" : null,
            lapseAt: null,
          }),
        );
        await store.transaction((tx) => tx.updateGrants(ended.map((g) => ({ grant: g, dueAt: T0 + 1000 }))));
        for (const g of ended) expect(await store.getGrant(g.id)).toEqual(g);
        expect(await store.nextDueAt()).toBe(T0 + 1000);
      });

      it("updateGrants refuses the whole batch when one row changed meanwhile", async () => {
        const a = makeGrant({ requester: "bulk-a" });
        const b = makeGrant({ requester: "bulk-b" });
        await save(a, T0);
        await save(b, T0);
        await save(next(b, { closeReason: "changed elsewhere" }), T0);
        await expectCode(
          store.transaction((tx) =>
            tx.updateGrants([
              { grant: next(a, { state: "ended" }), dueAt: null },
              { grant: next(b, { state: "ended" }), dueAt: null },
            ]),
          ),
          "ERR_CONFLICT",
        );
        expect(await store.getGrant(a.id)).toEqual(a);
      });

      it("lockGrant serialises read-modify-write on one grant", async () => {
        const v1 = makeGrant();
        await save(v1);
        const aLocked = deferred();
        const aRelease = deferred();
        const a = store.transaction(async (tx) => {
          const g = await tx.lockGrant(v1.id);
          aLocked.resolve();
          await aRelease.promise;
          if (g) await tx.saveGrant(next(g, { accessAttempts: g.accessAttempts + 1 }), null);
        });
        await aLocked.promise;
        const b = store.transaction(async (tx) => {
          const g = await tx.lockGrant(v1.id);
          if (g) await tx.saveGrant(next(g, { accessAttempts: g.accessAttempts + 1 }), null);
        });
        await sleep(50);
        aRelease.resolve();
        await Promise.all([a, b]);
        expect(await store.getGrant(v1.id)).toMatchObject({ version: 3, accessAttempts: 2 });
      });
    });

    describe("open-grant uniqueness", () => {
      it("refuses a second open grant of the same role for the same requester", async () => {
        const first = makeGrant();
        await save(first);
        await expectCode(save(makeGrant({ state: "active" })), "ERR_OPEN_GRANT_EXISTS");
        // Other roles and other requesters are unaffected.
        await save(makeGrant({ roleId: "production/readonly" }));
        await save(makeGrant({ requester: "bob" }));
        expect(await store.listGrants({ requester: "alice" })).toHaveLength(2);
      });

      it("allows a new grant once the first has ended", async () => {
        const first = makeGrant({ state: "active" });
        await save(first);
        await save(next(first, { state: "ended", endReason: "released", endedAt: T0 + 60_000 }));
        const second = makeGrant();
        await save(second);
        expect(await store.transaction((tx) => tx.findOpenGrant("alice", first.roleId))).toEqual(second);
      });

      it("settles two racing requests in the database", async () => {
        const aSaved = deferred();
        const aRelease = deferred();
        const a = store.transaction(async (tx) => {
          await tx.saveGrant(makeGrant(), null);
          aSaved.resolve();
          await aRelease.promise;
        });
        await aSaved.promise;
        const b = store.transaction((tx) => tx.saveGrant(makeGrant(), null));
        // Handled at once: b may fail before `await a` returns (a loaded machine reorders them).
        const bOutcome = b.then(
          () => null,
          (e: unknown) => e,
        );
        await sleep(50); // let b reach the unique index (PostgreSQL) or the connection queue (SQLite)
        aRelease.resolve();
        await a;
        expect(await bOutcome).toMatchObject({ code: "ERR_OPEN_GRANT_EXISTS" });
        expect(await store.listGrants({})).toHaveLength(1);
      });

      it("findOpenGrant sees requested, approved and active grants only", async () => {
        const g = makeGrant();
        await save(g);
        const find = () => store.transaction((tx) => tx.findOpenGrant("alice", g.roleId));
        expect(await find()).toEqual(g);
        const approved = next(g, { state: "approved" });
        await save(approved);
        expect(await find()).toEqual(approved);
        await save(next(approved, { state: "cancelled" }));
        expect(await find()).toBeNull();
        expect(await store.transaction((tx) => tx.findOpenGrant("bob", g.roleId))).toBeNull();
      });
    });

    describe("listGrants", () => {
      it("filters by state, requester and role, newest first, up to a limit", async () => {
        const a = makeGrant({ requestedAt: T0 + 1 });
        const b = makeGrant({ requestedAt: T0 + 3, requester: "bob", state: "active" });
        const c = makeGrant({ requestedAt: T0 + 2, roleId: "security/idp-admin", state: "denied" });
        const d = makeGrant({ requestedAt: T0 + 4, requester: "bob", roleId: "network/core", state: "ended" });
        for (const g of [a, b, c, d]) await save(g);
        const ids = (gs: readonly Grant[]) => gs.map((g) => g.id);

        expect(ids(await store.listGrants({}))).toEqual([d.id, b.id, c.id, a.id]);
        expect(ids(await store.listGrants({ limit: 2 }))).toEqual([d.id, b.id]);
        expect(ids(await store.listGrants({ states: ["requested", "active"] }))).toEqual([b.id, a.id]);
        expect(ids(await store.listGrants({ states: [] }))).toEqual([]);
        expect(ids(await store.listGrants({ requester: "bob" }))).toEqual([d.id, b.id]);
        expect(ids(await store.listGrants({ roleId: "production/db-admin" }))).toEqual([b.id, a.id]);
        expect(ids(await store.listGrants({ requester: "bob", states: ["ended"], roleId: "network/core" }))).toEqual([
          d.id,
        ]);
        expect(await store.listGrants({ requester: "nobody" })).toEqual([]);
      });

      it("pages by keyset: after a grant's place in the order, also among grants requested at the same time", async () => {
        // Five grants, three of them requested at the same millisecond (ordered by id, descending).
        const same = ["g_page_b", "g_page_c", "g_page_a"].map((id, i) =>
          makeGrant({ id, requestedAt: T0 + 5, requester: `u${i}` }),
        );
        const older = makeGrant({ id: "g_page_z", requestedAt: T0 + 1, requester: "u8" });
        const newer = makeGrant({ id: "g_page_0", requestedAt: T0 + 9, requester: "u9" });
        for (const g of [...same, older, newer]) await save(g);
        const ids = (gs: readonly Grant[]) => gs.map((g) => g.id);
        const all = ids(await store.listGrants({}));
        expect(all).toEqual(["g_page_0", "g_page_c", "g_page_b", "g_page_a", "g_page_z"]);
        // Page through two at a time: every grant once, in order.
        const seen: string[] = [];
        let after: { requestedAt: number; id: string } | undefined;
        for (;;) {
          const page = await store.listGrants({ limit: 2, after });
          seen.push(...ids(page));
          const last = page.at(-1);
          if (page.length < 2 || !last) break;
          after = { requestedAt: last.requestedAt, id: last.id };
        }
        expect(seen).toEqual(all);
        expect(
          ids(await store.listGrants({ after: { requestedAt: T0 + 5, id: "g_page_b" }, states: ["requested"] })),
        ).toEqual(["g_page_a", "g_page_z"]);
      });

      it("returns each grant with its approvals", async () => {
        const approvals = [{ approver: "bob", at: T0, comment: "fine" }];
        const g = makeGrant({ approvals });
        await save(g);
        await save(makeGrant({ requester: "bob" }));
        const listed = await store.listGrants({});
        expect(listed.find((x) => x.id === g.id)?.approvals).toEqual(approvals);
        expect(listed.find((x) => x.id !== g.id)?.approvals).toEqual([]);
      });
    });

    describe("due work", () => {
      it("claimDue returns past-due grants oldest first, up to the limit", async () => {
        const now = T0 + 10_000;
        const late = makeGrant({ requester: "u1" });
        const later = makeGrant({ requester: "u2" });
        const onTheDot = makeGrant({ requester: "u3" });
        const future = makeGrant({ requester: "u4" });
        const idle = makeGrant({ requester: "u5" });
        await save(later, now - 10);
        await save(late, now - 500);
        await save(onTheDot, now);
        await save(future, now + 1);
        await save(idle, null);

        const claim = (limit: number) => store.transaction((tx) => tx.claimDue(now, limit));
        expect((await claim(10)).map((g) => g.id)).toEqual([late.id, later.id, onTheDot.id]);
        expect((await claim(2)).map((g) => g.id)).toEqual([late.id, later.id]);
        expect(await store.transaction((tx) => tx.claimDue(T0, 10))).toEqual([]);
      });

      it("reclaimLeases takes over the leases of a broker process that is gone, never a live one's", async () => {
        const now = T0 + 10_000;
        const leased = (requester: string, access: "revoking" | "granting") =>
          makeGrant({
            requester,
            state: access === "revoking" ? "ended" : "approved",
            access,
            accessNextAt: now + 60_000,
          });
        const mine = leased("u1", "revoking");
        const gone = leased("u2", "revoking");
        const abandoned = leased("u3", "granting");
        const settled = makeGrant({ requester: "u4", state: "ended", access: "revoked", accessNextAt: null });
        for (const g of [mine, gone, abandoned, settled]) await save(g, g.accessNextAt);
        // Two leases written by a broker process that has since died.
        await db.exec(
          `UPDATE grants SET lease_owner = 'bg-dead-process' WHERE id IN ('${gone.id}', '${abandoned.id}')`,
        );
        // Another live broker (PostgreSQL: another replica; SQLite: the same process's connection).
        const other = await db.open();
        try {
          const theirs = leased("u5", "revoking");
          await other.transaction((tx) => tx.saveGrant(theirs, theirs.accessNextAt));
          expect(await store.reclaimLeases(now)).toBe(2);
          for (const id of [gone.id, abandoned.id]) {
            expect(await store.getGrant(id)).toMatchObject({ accessNextAt: now, version: 2 });
          }
          expect(await store.getGrant(mine.id)).toMatchObject({ accessNextAt: now + 60_000, version: 1 });
          expect(await store.getGrant(theirs.id)).toMatchObject({ accessNextAt: now + 60_000, version: 1 });
          expect(await store.nextDueAt()).toBe(now);
          expect((await store.transaction((tx) => tx.claimDue(now, 10))).map((g) => g.id).sort()).toEqual(
            [gone.id, abandoned.id].sort(),
          );
          expect(await store.reclaimLeases(now)).toBe(0); // once
        } finally {
          await other.close();
        }
        if (backend.rowLocks) {
          // The other replica's process ends: its session lock goes with it (once the server has
          // seen the connection close), and so does its lease.
          const taken = await settle(
            () => store.reclaimLeases(now),
            (n) => n !== 0,
          );
          expect(taken).toBe(1);
        }
      });

      it("nextDueAt is the earliest persisted due time", async () => {
        expect(await store.nextDueAt()).toBeNull();
        await save(makeGrant({ requester: "u1" }), null);
        expect(await store.nextDueAt()).toBeNull();
        const g = makeGrant({ requester: "u2" });
        await save(g, T0 + 500);
        await save(makeGrant({ requester: "u3" }), T0 + 100);
        expect(await store.nextDueAt()).toBe(T0 + 100);
        // Saving with a new due time moves it.
        await save(next(g), T0 + 50);
        expect(await store.nextDueAt()).toBe(T0 + 50);
      });

      // Only PostgreSQL has row locks to skip; SQLite serialises writers, so claims are disjoint by construction.
      if (backend.rowLocks)
        it("concurrent claims take disjoint sets (SKIP LOCKED)", async () => {
          const now = T0 + 10_000;
          const all = Array.from({ length: 4 }, (_, i) => makeGrant({ requester: `u${i}` }));
          for (const [i, g] of all.entries()) await save(g, now - 100 + i);

          const aClaimed = deferred();
          const aRelease = deferred();
          let aIds: string[] = [];
          const a = store.transaction(async (tx) => {
            aIds = (await tx.claimDue(now, 2)).map((g) => g.id);
            aClaimed.resolve();
            await aRelease.promise;
          });
          await aClaimed.promise;
          // b runs to completion while a still holds its rows.
          const bIds = (await store.transaction((tx) => tx.claimDue(now, 10))).map((g) => g.id);
          aRelease.resolve();
          await a;

          expect(aIds).toHaveLength(2);
          expect(bIds).toHaveLength(2);
          expect([...aIds, ...bIds].sort()).toEqual(all.map((g) => g.id).sort());
        });
    });

    describe("audit log", () => {
      it("starts at seq 0 with the genesis hash", async () => {
        expect(await store.transaction((tx) => tx.lockAuditHead())).toEqual({ seq: 0, hash: GENESIS_HASH });
        expect(await store.readAudit(0, 100)).toEqual([]);
      });

      it("appends move the head, and readAudit pages in seq order", async () => {
        const first = sealed({ seq: 0, hash: GENESIS_HASH }, 3, "g_1");
        await store.transaction(async (tx) => tx.insertAuditEvents(first));
        const head = await store.transaction((tx) => tx.lockAuditHead());
        expect(head).toEqual({ seq: 3, hash: first[2]?.hash });
        const second = sealed(head, 4, null);
        await store.transaction(async (tx) => tx.insertAuditEvents(second));
        expect(await store.transaction((tx) => tx.lockAuditHead())).toEqual({ seq: 7, hash: second[3]?.hash });

        const all = stored([...first, ...second]);
        expect(await store.readAudit(0, 100)).toEqual(all);
        expect(await store.readAudit(1, 3)).toEqual(all.slice(0, 3));
        expect(await store.readAudit(4, 3)).toEqual(all.slice(3, 6));
        expect(await store.readAudit(7, 3)).toEqual(all.slice(6));
        expect(await store.readAudit(8, 3)).toEqual([]);
        expect(await store.readAudit(1, 0)).toEqual([]);
      });

      it("writes a large batch in one call", async () => {
        const events = sealed({ seq: 0, hash: GENESIS_HASH }, 1200);
        await store.transaction((tx) => tx.insertAuditEvents(events));
        expect(await store.readAudit(1, 2000)).toEqual(stored(events));
        expect(await store.transaction((tx) => tx.lockAuditHead())).toEqual({ seq: 1200, hash: events[1199]?.hash });
      });

      it("refuses events that do not continue the head with ERR_AUDIT_WRITE_FAILED", async () => {
        await store.transaction(async (tx) => tx.insertAuditEvents(sealed(await tx.lockAuditHead(), 2)));
        const stale = sealed({ seq: 0, hash: GENESIS_HASH }, 1);
        const err = await expectCode(
          store.transaction((tx) => tx.insertAuditEvents(stale)),
          "ERR_AUDIT_WRITE_FAILED",
        );
        expect(err.cause).toBeDefined();
        const gap = sealed({ seq: 5, hash: GENESIS_HASH }, 1);
        await expectCode(
          store.transaction((tx) => tx.insertAuditEvents(gap)),
          "ERR_AUDIT_WRITE_FAILED",
        );
        const [e1, , e3] = sealed({ seq: 2, hash: GENESIS_HASH }, 3);
        if (!e1 || !e3) throw new Error("fixture");
        await expectCode(
          store.transaction((tx) => tx.insertAuditEvents([e1, e3])),
          "ERR_AUDIT_WRITE_FAILED",
        );
        expect(await store.readAudit(0, 10)).toHaveLength(2);
        expect((await store.transaction((tx) => tx.lockAuditHead())).seq).toBe(2);
      });

      it("readAudit returns tampered rows exactly as stored", async () => {
        const events = sealed({ seq: 0, hash: GENESIS_HASH }, 3);
        await store.transaction((tx) => tx.insertAuditEvents(events));
        await db.exec(
          `UPDATE audit_events SET payload = '{"forged":true}', type = 'grant.bogus', actor = 'eve' WHERE seq = 2`,
        );
        await db.exec("DELETE FROM audit_events WHERE seq = 3");
        const read = await store.readAudit(0, 10);
        const [first, second] = stored(events);
        // A payload that is not an event cannot give the facts: the columns stand in, and the row never verifies.
        expect(read).toEqual([
          first,
          {
            ...second,
            payload: '{"forged":true}',
            type: "grant.bogus",
            actor: "eve",
            columns: { ...second?.columns, type: "grant.bogus", actor: "eve" },
          },
        ]);
      });

      it("checkpoints round-trip in seq order and are unique per seq", async () => {
        const cp = (seq: number): Checkpoint => ({
          seq,
          hash: `${seq}`.padStart(64, "f"),
          at: T0 + seq,
          keyId: "k1",
          signature: "c2lnbmF0dXJl",
        });
        await store.transaction(async (tx) => {
          await tx.insertCheckpoint(cp(20));
          await tx.insertCheckpoint(cp(10));
        });
        expect(await store.readCheckpoints()).toEqual([cp(10), cp(20)]);
        await expectCode(
          store.transaction((tx) => tx.insertCheckpoint(cp(20))),
          "ERR_CONFLICT",
        );
      });
    });

    describe("transactions", () => {
      it("rolls back grant, audit, token and checkpoint writes together when fn throws", async () => {
        const boom = new Error("connector exploded");
        const g = makeGrant();
        await expect(
          store.transaction(async (tx) => {
            await tx.saveGrant(g, T0);
            await tx.insertAuditEvents(sealed(await tx.lockAuditHead(), 2, g.id));
            await tx.insertToken(token());
            await tx.insertCheckpoint({ seq: 2, hash: "h", at: T0, keyId: "k", signature: "s" });
            throw boom;
          }),
        ).rejects.toBe(boom);
        expect(await store.getGrant(g.id)).toBeNull();
        expect(await store.readAudit(0, 10)).toEqual([]);
        expect(await store.transaction((tx) => tx.lockAuditHead())).toEqual({ seq: 0, hash: GENESIS_HASH });
        expect(await store.findToken("t_1")).toBeNull();
        expect(await store.readCheckpoints()).toEqual([]);
        expect(await store.nextDueAt()).toBeNull();
      });

      it("commits and returns fn's result", async () => {
        const g = makeGrant();
        const result = await store.transaction(async (tx) => {
          await tx.saveGrant(g, null);
          await tx.insertAuditEvents(sealed(await tx.lockAuditHead(), 1, g.id));
          return "done";
        });
        expect(result).toBe("done");
        expect(await store.getGrant(g.id)).toEqual(g);
        expect(await store.readAudit(1, 1)).toHaveLength(1);
      });

      it("rolls back when fn swallows a store error", async () => {
        await save(makeGrant());
        const other = makeGrant({ requester: "bob" });
        await expectCode(
          store.transaction(async (tx) => {
            await tx.saveGrant(other, null);
            await tx.saveGrant(makeGrant(), null).catch(() => undefined);
            return "pretend all is well";
          }),
          "ERR_OPEN_GRANT_EXISTS",
        );
        expect(await store.getGrant(other.id)).toBeNull();
      });

      it("refuses store calls inside its own transaction instead of deadlocking", async () => {
        await expectCode(
          store.transaction(() => store.getGrant("g_x")),
          "ERR_INTERNAL",
        );
        await expectCode(
          store.transaction(() => store.transaction(async () => 1)),
          "ERR_INTERNAL",
        );
        let leaked: Parameters<Parameters<Store["transaction"]>[0]>[0] | undefined;
        await store.transaction(async (tx) => {
          leaked = tx;
        });
        await expectCode(leaked?.lockGrant("g_x") ?? Promise.resolve(), "ERR_INTERNAL");
      });

      it("reports database failures as ERR_STORAGE without SQL or values", async () => {
        await store.transaction((tx) => tx.insertToken(token({ id: "t_secretish" })));
        await db.exec("DROP TABLE tokens");
        const err = await expectCode(store.findToken("t_secretish"), "ERR_STORAGE");
        expect(err.message).not.toMatch(/select|from|tokens|t_secretish/i);
        expect(err.cause).toBeInstanceOf(Error);
        expect(err.detail).toMatchObject({ operation: "findToken" });
        await expectCode(
          store.transaction((tx) => tx.insertToken(token({ id: "t_other" }))),
          "ERR_STORAGE",
        );
      });
    });

    describe("tokens", () => {
      it("round-trip with and without expiry and revocation; ids are unique", async () => {
        const plain = token();
        const full = token({ id: "t_2", user: "bob", expiresAt: T0 + 1000, revokedAt: T0 + 500, description: "" });
        await store.transaction(async (tx) => {
          await tx.insertToken(plain);
          await tx.insertToken(full);
        });
        expect(await store.findToken("t_1")).toEqual(plain);
        expect(await store.findToken("t_2")).toEqual(full);
        expect(await store.findToken("t_3")).toBeNull();
        await expectCode(
          store.transaction((tx) => tx.insertToken(token())),
          "ERR_CONFLICT",
        );
      });

      it("keep their scopes, list by user newest first, and revoke once", async () => {
        await store.transaction(async (tx) => {
          await tx.insertToken(token({ scopes: ["read", "request"] }));
          await tx.insertToken(token({ id: "t_2", createdAt: T0 + 1 }));
          await tx.insertToken(token({ id: "t_3", user: "bob" }));
        });
        expect((await store.findToken("t_1"))?.scopes).toEqual(["read", "request"]);
        expect((await store.listTokens("alice")).map((t) => t.id)).toEqual(["t_2", "t_1"]);
        expect(await store.listTokens(null)).toHaveLength(3);
        expect(await store.transaction((tx) => tx.revokeToken("t_1", T0 + 5))).toBe(true);
        expect(await store.transaction((tx) => tx.revokeToken("t_1", T0 + 6))).toBe(false);
        expect((await store.findToken("t_1"))?.revokedAt).toBe(T0 + 5);
      });
    });

    describe("sessions, identities, local factors, throttles", () => {
      it("round-trip and update in place", async () => {
        const session = {
          id: "ws_1",
          secretHash: "b".repeat(64),
          user: "alice",
          method: "oidc" as const,
          createdAt: T0,
          expiresAt: T0 + 3600_000,
          factorAt: null,
          revokedAt: null,
          idp: "bgbox1.x.y",
        };
        const identity = {
          user: "frank",
          issuer: "https://idp.example",
          subject: "sub-1",
          groups: ["oncall", "leads"],
          email: null,
          name: "Frank",
          refreshedAt: T0,
        };
        await store.transaction(async (tx) => {
          await tx.saveWebSession(session);
          await tx.saveIdentity(identity);
          await tx.saveThrottle({ key: "user:alice", failures: 2, windowStart: T0, lockedUntil: null });
        });
        expect(await store.findWebSession("ws_1")).toEqual(session);
        expect(await store.findIdentity("frank")).toEqual(identity);
        expect(await store.findThrottle("user:alice")).toEqual({
          key: "user:alice",
          failures: 2,
          windowStart: T0,
          lockedUntil: null,
        });
        await store.transaction(async (tx) => {
          await tx.saveWebSession({ ...session, factorAt: T0 + 5, revokedAt: T0 + 9 });
          await tx.saveIdentity({ ...identity, groups: [], refreshedAt: T0 + 7 });
          await tx.saveThrottle({ key: "user:alice", failures: 0, windowStart: T0 + 1, lockedUntil: T0 + 60 });
        });
        expect(await store.findWebSession("ws_1")).toMatchObject({ factorAt: T0 + 5, revokedAt: T0 + 9 });
        expect(await store.listIdentities()).toEqual([{ ...identity, groups: [], refreshedAt: T0 + 7 }]);
        expect((await store.findThrottle("user:alice"))?.lockedUntil).toBe(T0 + 60);
      });

      // A session or factor is read, then saved whole a moment later (a step-up, an IdP refresh,
      // a sign-in with a key): a logout or a removal committed in between must survive it.
      it("a session's end is final and its factor time only moves forward: a save from a copy read before the logout does not bring it back", async () => {
        const session = {
          id: "ws_2",
          secretHash: "c".repeat(64),
          user: "alice",
          method: "oidc" as const,
          createdAt: T0,
          expiresAt: T0 + 3600_000,
          factorAt: T0 + 1,
          revokedAt: null,
          idp: "bgbox1.a.b",
        };
        await store.transaction((tx) => tx.saveWebSession(session));
        const read = await store.findWebSession("ws_2"); // the step-up's copy
        await store.transaction((tx) => tx.saveWebSession({ ...session, factorAt: T0 + 8, revokedAt: T0 + 5 })); // logout
        await store.transaction((tx) =>
          tx.saveWebSession({ ...(read ?? session), factorAt: T0 + 6, idp: "bgbox1.c.d" }),
        );
        expect(await store.findWebSession("ws_2")).toEqual({
          ...session,
          factorAt: T0 + 8,
          revokedAt: T0 + 5,
          idp: "bgbox1.c.d",
        });
      });

      it("a factor's removal and confirmation are final, its step and last use only move forward: a save from a stale copy undoes none", async () => {
        const enrolling = {
          id: "f_9",
          user: "alice",
          kind: "webauthn" as const,
          label: "key",
          secret: "challenge",
          createdAt: T0,
          confirmedAt: null,
          lastStep: null,
          usedAt: null,
          removedAt: null,
        };
        await store.transaction((tx) => tx.saveFactor(enrolling));
        const stale = (await store.listFactors("alice")).find((f) => f.id === "f_9") ?? enrolling;
        const confirmed = { ...enrolling, secret: "credential", confirmedAt: T0 + 1, lastStep: 10, usedAt: T0 + 1 };
        await store.transaction((tx) => tx.saveFactor(confirmed));
        expect(await store.transaction((tx) => tx.advanceFactorStep("f_9", 12, T0 + 2))).toBe(true);
        await store.transaction((tx) => tx.saveFactor({ ...confirmed, removedAt: T0 + 3 })); // removed, from a copy at step 10
        // A sign-in that read the factor before all of that records its use.
        await store.transaction((tx) => tx.saveFactor({ ...stale, usedAt: T0 + 4 }));
        expect(await store.listFactors("alice")).toEqual([]);
        await db.exec("UPDATE local_factors SET removed_at = NULL WHERE id = 'f_9'"); // to read it back
        expect(await store.listFactors("alice")).toEqual([
          { ...confirmed, lastStep: 12, usedAt: T0 + 4, removedAt: null },
        ]);
      });

      it("removeFactors removes a user's current factors of one kind, or one by id, and returns what it removed", async () => {
        const f = (id: string, user: string, kind: "totp" | "recovery", removedAt: number | null = null) => ({
          id,
          user,
          kind,
          label: kind,
          secret: "s",
          createdAt: T0,
          confirmedAt: T0,
          lastStep: null,
          usedAt: null,
          removedAt,
        });
        await store.transaction(async (tx) => {
          for (const x of [
            f("r_1", "alice", "recovery"),
            f("r_2", "alice", "recovery"),
            f("r_0", "alice", "recovery", T0),
            f("t_1", "alice", "totp"),
            f("r_3", "bob", "recovery"),
          ])
            await tx.saveFactor(x);
        });
        const removed = await store.transaction((tx) => tx.removeFactors("alice", { kind: "recovery" }, T0 + 5));
        expect(removed).toEqual([f("r_1", "alice", "recovery", T0 + 5), f("r_2", "alice", "recovery", T0 + 5)]);
        expect((await store.listFactors("alice")).map((x) => x.id)).toEqual(["t_1"]);
        expect((await store.listFactors("bob")).map((x) => x.id)).toEqual(["r_3"]);
        expect(await store.transaction((tx) => tx.removeFactors("alice", { kind: "recovery" }, T0 + 6))).toEqual([]);
        // One by id: removed once; a second call finds nothing to remove.
        expect(await store.transaction((tx) => tx.removeFactors("alice", { id: "t_1" }, T0 + 7))).toEqual([
          f("t_1", "alice", "totp", T0 + 7),
        ]);
        expect(await store.transaction((tx) => tx.removeFactors("alice", { id: "t_1" }, T0 + 8))).toEqual([]);
        expect(await store.transaction((tx) => tx.removeFactors("bob", { id: "t_1" }, T0 + 8))).toEqual([]);
      });

      it("accept a factor's step once and only forwards; recovery codes once; removed factors are not listed", async () => {
        const factor = (id: string, kind: "totp" | "recovery") => ({
          id,
          user: "alice",
          kind,
          label: kind,
          secret: "s",
          createdAt: T0,
          confirmedAt: T0,
          lastStep: null,
          usedAt: null,
          removedAt: null,
        });
        await store.transaction(async (tx) => {
          await tx.saveFactor(factor("f_1", "totp"));
          await tx.saveFactor(factor("f_2", "recovery"));
          await tx.saveFactor({ ...factor("f_3", "totp"), removedAt: T0 });
        });
        expect((await store.listFactors("alice")).map((f) => f.id)).toEqual(["f_1", "f_2"]);
        const step = (n: number) => store.transaction((tx) => tx.advanceFactorStep("f_1", n, T0 + n));
        expect(await step(100)).toBe(true);
        expect(await step(100)).toBe(false);
        expect(await step(99)).toBe(false);
        expect(await step(101)).toBe(true);
        const use = () => store.transaction((tx) => tx.useRecoveryCode("f_2", T0));
        expect(await use()).toBe(true);
        expect(await use()).toBe(false);
        // Two at once: exactly one wins.
        await store.transaction((tx) => tx.saveFactor(factor("f_4", "totp")));
        const both = await Promise.allSettled([
          store.transaction((tx) => tx.advanceFactorStep("f_4", 5, T0)),
          store.transaction((tx) => tx.advanceFactorStep("f_4", 5, T0)),
        ]);
        expect(both.filter((r) => r.status === "fulfilled" && r.value === true)).toHaveLength(1);
      });
    });

    describe("alarm outbox", () => {
      const alarm = (seq: number, channel: string, over: Partial<AlarmRecord> = {}): AlarmRecord => ({
        id: `a_${seq}_${channel}`,
        channel,
        eventSeq: seq,
        eventType: "grant.activated",
        grantId: "g_1",
        payload: JSON.stringify({ seq }),
        state: "queued",
        attempts: 0,
        lastError: null,
        createdAt: T0,
        nextAt: T0 + seq,
        deliveredAt: null,
        ...over,
      });

      it("commits alarms with the transaction, claims due ones oldest first, saves results, lists by grant", async () => {
        await store.transaction((tx) =>
          tx.insertAlarms([
            alarm(2, "hook"),
            alarm(1, "hook"),
            alarm(3, "mail", { grantId: null }),
            alarm(4, "hook", { nextAt: T0 + 10_000 }),
          ]),
        );
        const claimed = await store.transaction((tx) => tx.claimAlarms(T0 + 5, 10));
        expect(claimed.map((a) => a.id)).toEqual(["a_1_hook", "a_2_hook", "a_3_mail"]);
        // A channel at its limit of deliveries in flight is left out of the claim.
        expect((await store.transaction((tx) => tx.claimAlarms(T0 + 5, 10, ["hook"]))).map((a) => a.id)).toEqual([
          "a_3_mail",
        ]);
        await store.transaction((tx) => tx.leaseAlarms(["a_1_hook", "a_2_hook"], T0 + 60_000));
        const done = { ...alarm(1, "hook"), state: "delivered" as const, attempts: 1, deliveredAt: T0 + 7 };
        const retry = { ...alarm(2, "hook"), attempts: 1, lastError: "HTTP 500", nextAt: T0 + 2000 };
        expect(await store.transaction((tx) => tx.saveAlarms([done, retry]))).toBe(2);
        expect((await store.transaction((tx) => tx.claimAlarms(T0 + 5, 10))).map((a) => a.id)).toEqual(["a_3_mail"]);
        expect(await store.listAlarms("g_1")).toEqual([done, retry, alarm(4, "hook", { nextAt: T0 + 10_000 })]);
        const boom = new Error("rolled back");
        await expect(
          store.transaction(async (tx) => {
            await tx.insertAlarms([alarm(9, "hook")]);
            throw boom;
          }),
        ).rejects.toBe(boom);
        expect((await store.listAlarms("g_1")).map((a) => a.id)).not.toContain("a_9_hook");
      });

      it("records a delivery's result only while this process holds its lease", async () => {
        await store.transaction((tx) => tx.insertAlarms([alarm(1, "hook"), alarm(2, "hook")]));
        await store.transaction((tx) => tx.leaseAlarms(["a_1_hook", "a_2_hook"], T0 + 60_000));
        // a_2 was taken over by another broker process meanwhile (this one was presumed dead).
        await db.exec("UPDATE alarms SET lease_owner = 'bg-other-process' WHERE id = 'a_2_hook'");
        const delivered = (seq: number) => ({
          ...alarm(seq, "hook"),
          state: "delivered" as const,
          attempts: 1,
          deliveredAt: T0 + 7,
        });
        expect(await store.transaction((tx) => tx.saveAlarms([delivered(1), delivered(2)]))).toBe(1);
        const [one, two] = await store.listAlarms("g_1");
        expect(one).toEqual(delivered(1));
        expect(two).toMatchObject({ state: "queued", attempts: 0, nextAt: T0 + 60_000 });
        // A late second result for a settled alarm changes nothing.
        const retry = { ...alarm(1, "hook"), attempts: 2, lastError: "HTTP 500", nextAt: T0 + 9 };
        expect(await store.transaction((tx) => tx.saveAlarms([retry]))).toBe(0);
        expect((await store.listAlarms("g_1"))[0]).toEqual(delivered(1));
      });

      it("reclaimLeases takes over the alarm deliveries of a broker process that is gone, never a live one's", async () => {
        const now = T0 + 10_000;
        await store.transaction((tx) => tx.insertAlarms([alarm(1, "hook"), alarm(2, "hook"), alarm(3, "hook")]));
        await store.transaction((tx) => tx.leaseAlarms(["a_1_hook", "a_2_hook"], now + 600_000));
        // a_2's delivery was held by a broker process that has since died.
        await db.exec("UPDATE alarms SET lease_owner = 'bg-dead-process' WHERE id = 'a_2_hook'");
        const other = await db.open();
        try {
          // Another live broker's delivery (PostgreSQL: another replica; SQLite: this process).
          await other.transaction((tx) => tx.leaseAlarms(["a_3_hook"], now + 600_000));
          expect(await store.reclaimLeases(now)).toBe(1);
          expect((await store.listAlarms("g_1")).map((a) => [a.id, a.nextAt])).toEqual([
            ["a_1_hook", now + 600_000],
            ["a_2_hook", now],
            ["a_3_hook", now + 600_000],
          ]);
          expect((await store.transaction((tx) => tx.claimAlarms(now, 10))).map((a) => a.id)).toEqual(["a_2_hook"]);
          expect(await store.reclaimLeases(now)).toBe(0); // once
        } finally {
          await other.close();
        }
        if (backend.rowLocks) {
          // The other replica's process ends, and its liveness lock with it: its delivery is taken over.
          const taken = await settle(
            () => store.reclaimLeases(now),
            (n) => n !== 0,
          );
          expect(taken).toBe(1);
          expect((await store.listAlarms("g_1")).find((a) => a.id === "a_3_hook")?.nextAt).toBe(now);
        }
      });

      it("counts for monitoring: active grants by role, alarms by channel and state, failing revocations", async () => {
        await save(makeGrant({ id: "g_a", state: "active", requester: "u1" }));
        await save(makeGrant({ id: "g_b", state: "active", requester: "u2" }));
        await save(
          makeGrant({
            id: "g_c",
            state: "ended",
            endReason: "expired",
            access: "revoking",
            accessAttempts: 3,
            requester: "u3",
          }),
        );
        await store.transaction((tx) =>
          tx.insertAlarms([alarm(1, "hook"), alarm(2, "hook"), alarm(3, "mail", { state: "delivered" })]),
        );
        expect(await store.stats()).toEqual({
          activeByRole: [{ role: makeGrant().roleId, count: 2 }],
          alarms: [
            { channel: "hook", state: "queued", count: 2 },
            { channel: "mail", state: "delivered", count: 1 },
          ],
          revocationsFailing: 1,
        });
      });

      it("refuses the same alarm twice (one per event and channel)", async () => {
        await store.transaction((tx) => tx.insertAlarms([alarm(1, "hook")]));
        await expectCode(
          store.transaction((tx) => tx.insertAlarms([alarm(1, "hook")])),
          "ERR_STORAGE",
        );
      });
    });

    describe("gateway", () => {
      it("keeps a grant's gateway login until its credentials are deleted, and its recorded statements in order", async () => {
        const login = {
          grantId: "g_1",
          user: "bg_g_1",
          verifier: "SCRAM-SHA-256$4096:c2FsdA==$a2V5:c2Vy",
          upstream: "box",
        };
        await store.transaction((tx) => tx.saveGatewayLogin(login, T0));
        expect(await store.findGatewayLogin("bg_g_1")).toEqual(login);
        await store.transaction((tx) => tx.saveGatewayLogin({ ...login, upstream: "box2" }, T0 + 1));
        expect((await store.findGatewayLogin("bg_g_1"))?.upstream).toBe("box2");
        const statement = (seq: number, over: Partial<StatementRecord> = {}): StatementRecord => ({
          grantId: "g_1",
          sessionId: "s_1",
          seq,
          startedAt: T0 + seq,
          endedAt: T0 + seq + 1,
          kind: "extended",
          text: `SELECT ${seq} /* 'quotes' "and" unicode ü */`,
          params: ["1", null, "\\x00ff"],
          rows: 3_000_000_000 + seq,
          tag: "SELECT 1",
          error: null,
          bytes: 5_000_000_000,
          ...over,
        });
        const batch = [
          statement(1),
          statement(2, { kind: "simple", params: null, error: "22012 division by zero", tag: null, endedAt: null }),
        ];
        await store.transaction((tx) => tx.insertStatementBatches(packStatements(batch)));
        await store.transaction((tx) => tx.insertStatementBatches([]));
        expect(await store.listStatements("g_1")).toEqual(batch);
        expect(await store.listStatements("g_2")).toEqual([]);
        // A write retried after it had in fact committed: the batch stays once.
        await store.transaction((tx) => tx.insertStatementBatches(packStatements(batch)));
        expect(await store.listStatements("g_1")).toEqual(batch);
        // Later batches of the session, and another session's, read back by start, session and seq.
        const other = (seq: number, startedAt: number) => statement(seq, { sessionId: "s_0", startedAt });
        await store.transaction((tx) =>
          tx.insertStatementBatches(packStatements([statement(3), statement(4), other(1, T0 + 2), other(2, T0 + 9)])),
        );
        expect((await store.listStatements("g_1")).map((s) => `${s.sessionId}:${s.seq}`)).toEqual([
          "s_1:1",
          "s_0:1",
          "s_1:2",
          "s_1:3",
          "s_1:4",
          "s_0:2",
        ]);
        expect((await store.listRecordings()).filter((r) => r.kind === "gateway")).toEqual(
          expect.arrayContaining([
            { kind: "gateway", sessionId: "s_1", grantId: "g_1" },
            { kind: "gateway", sessionId: "s_0", grantId: "g_1" },
          ]),
        );
        await store.transaction((tx) => tx.deleteCredentials(["g_1"]));
        expect(await store.findGatewayLogin("bg_g_1")).toBeNull();
      });
    });

    describe("broker state", () => {
      it("swaps a named value, returning the previous one; a rollback keeps the old value", async () => {
        expect(await store.transaction((tx) => tx.swapState("config", "fp1", T0))).toBeNull();
        expect(await store.transaction((tx) => tx.swapState("config", "fp2", T0 + 1))).toBe("fp1");
        await expect(
          store.transaction(async (tx) => {
            await tx.swapState("config", "fp3", T0 + 2);
            throw new Error("boom");
          }),
        ).rejects.toThrow("boom");
        expect(await store.transaction((tx) => tx.swapState("config", "fp4", T0 + 3))).toBe("fp2");
      });

      it("two replicas swapping at once see each other: exactly one sees nothing before it", async () => {
        const other = await db.open();
        try {
          const seen = await Promise.all(
            [store, other].map((s, i) =>
              s.transaction(async (tx) => {
                const prev = await tx.swapState("config", `r${i}`, T0);
                await sleep(50); // hold the row while the other waits
                return prev;
              }),
            ),
          );
          expect(seen.filter((v) => v === null)).toHaveLength(1);
          expect(seen.filter((v) => v === "r0" || v === "r1")).toHaveLength(1);
        } finally {
          await other.close();
        }
      });
    });

    describe("tier-2 openings", () => {
      it("are saved, listed oldest first (unreviewed only when asked) and keep their review", async () => {
        const opening = (seq: number, openedAt: number): VaultOpening => ({
          id: `vo_env1_${seq}`,
          envelopeId: "env1",
          envelopeName: "aws-root",
          recordSeq: seq,
          recordHash: "ab".repeat(32),
          openedAt,
          custodians: [
            { name: "alice", fingerprint: "0123456789abcdef" },
            { name: "bob", fingerprint: "fedcba9876543210" },
          ],
          reason: "SSO down",
          incident: "INC-1",
          importedAt: T0 + 10_000,
          reviewDueAt: T0 + 86_400_000,
          review: null,
          // The second opening's own alarm reached no endpoint (yet).
          alarmPending: seq === 2,
          alarmDeliveredAt: seq === 2 ? null : openedAt,
        });
        const second = opening(2, T0 + 5000);
        const first = opening(1, T0);
        await store.transaction(async (tx) => {
          await tx.saveVaultOpening(second);
          await tx.saveVaultOpening(first);
        });
        expect(await store.listVaultOpenings(false)).toEqual([first, second]);
        const reviewed: VaultOpening = {
          ...first,
          review: { reviewer: "erin", at: T0 + 20_000, outcome: "justified", notes: "SSO outage, INC-1" },
        };
        await store.transaction((tx) => tx.saveVaultOpening(reviewed));
        expect(await store.getVaultOpening(first.id)).toEqual(reviewed);
        expect(await store.listVaultOpenings(true)).toEqual([second]);
        expect(await store.getVaultOpening("vo_missing_1")).toBeNull();
      });
    });

    describe("migrations", () => {
      it("are idempotent: reopening keeps the data", async () => {
        const g = fullGrant();
        await save(g, T0);
        await store.transaction(async (tx) => tx.insertAuditEvents(sealed(await tx.lockAuditHead(), 1)));
        // Closed and opened again: on SQLite a new connection, on PostgreSQL a new pool.
        await store.close();
        store = await db.open();
        const unmigrated = await db.open({ migrate: false });
        try {
          expect(await store.getGrant(g.id)).toEqual(g);
          expect(await unmigrated.getGrant(g.id)).toEqual(g);
          expect((await store.transaction((tx) => tx.lockAuditHead())).seq).toBe(1);
        } finally {
          await unmigrated.close();
        }
      });

      it("moves the statements recorded a row each (before 0014) into batches, read back the same", async () => {
        const fresh = await backend.freshDatabase();
        await fresh.migrateTo("0013_alarm_lease_owner");
        const rows: StatementRecord[] = [];
        for (let seq = 1; seq <= 1203; seq++) {
          rows.push({
            grantId: "g_1",
            sessionId: "s_1",
            seq,
            startedAt: T0 + seq,
            endedAt: seq === 7 ? null : T0 + seq + 1,
            kind: seq === 7 ? "simple" : "extended",
            text: `SELECT ${seq} /* 'quotes' "and" unicode ü */`,
            params: seq === 7 ? null : ["1", null, "\\x00ff"],
            rows: 3_000_000_000 + seq,
            tag: seq === 7 ? null : "SELECT 1",
            error: seq === 7 ? "22012 division by zero" : null,
            bytes: 5_000_000_000,
          });
        }
        rows.push({ ...(rows[0] as StatementRecord), sessionId: "s_2", grantId: "g_2", startedAt: T0 });
        const quote = (v: string | null) => (v === null ? "NULL" : `'${v.replaceAll("'", "''")}'`);
        for (let i = 0; i < rows.length; i += 200) {
          const values = rows
            .slice(i, i + 200)
            .map(
              (r) =>
                `(${quote(r.grantId)}, ${quote(r.sessionId)}, ${r.seq}, ${r.startedAt}, ${r.endedAt ?? "NULL"}, ${quote(r.kind)}, ${quote(r.text)}, ${quote(r.params === null ? null : JSON.stringify(r.params))}, ${r.rows}, ${quote(r.tag)}, ${quote(r.error)}, ${r.bytes})`,
            );
          await fresh.exec(
            `INSERT INTO session_statements (grant_id, session_id, seq, started_at, ended_at, kind, text, params, rows, tag, error, bytes) VALUES ${values.join(", ")}`,
          );
        }
        const migrated = await fresh.open();
        try {
          expect(await migrated.listStatements("g_1")).toEqual(rows.slice(0, -1));
          expect(await migrated.listStatements("g_2")).toEqual(rows.slice(-1));
          // A thousand of a session's statements to a row.
          const batches = await fresh.query("SELECT session_id, first_seq, last_seq FROM statement_batches");
          expect(batches.map((b) => `${b.session_id}:${b.first_seq}-${b.last_seq}`).sort()).toEqual([
            "s_1:1-1000",
            "s_1:1001-1203",
            "s_2:1-1",
          ]);
        } finally {
          await migrated.close();
        }
      });

      it("replicas opening a new database together migrate it once", async () => {
        const fresh = await backend.freshDatabase();
        const replicas = await Promise.all([fresh.open(), fresh.open(), fresh.open()]);
        try {
          const g = makeGrant();
          await replicas[0]?.transaction((tx) => tx.saveGrant(g, null));
          for (const r of replicas) expect(await r.getGrant(g.id)).toEqual(g);
          expect(await replicas[1]?.transaction((tx) => tx.lockAuditHead())).toEqual({ seq: 0, hash: GENESIS_HASH });
        } finally {
          await Promise.all(replicas.map((r) => r.close()));
        }
      });

      if (backend.name === "postgres")
        it("parses int8 as numbers for its own pool only", async () => {
          expect(await store.nextDueAt()).toBeNull();
          await save(makeGrant(), T0);
          expect(await store.nextDueAt()).toBe(T0);
          expect(pg.types.getTypeParser(20, "text")("5")).toBe("5");
        });

      it("close is idempotent", async () => {
        const extra = await db.open();
        await extra.close();
        await extra.close();
      });
    });
  });
}

describe("sqlite specifics", () => {
  let dir = "";
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "bg-sqlite-"));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it("creates a missing directory and an owner-only file in WAL mode", async () => {
    const path = join(dir, "nested", "state", "breakglass.db");
    const store = await createSqliteStore({ path });
    await store.close();
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    const raw = new BetterSqlite3(path, { readonly: true });
    try {
      expect(raw.pragma("journal_mode", { simple: true })).toBe("wal");
    } finally {
      raw.close();
    }
  });

  it("gives every :memory: store a private database", async () => {
    const a = await createSqliteStore({ path: ":memory:" });
    const b = await createSqliteStore({ path: ":memory:" });
    try {
      const g = makeGrant();
      await a.transaction((tx) => tx.saveGrant(g, null));
      expect(await a.getGrant(g.id)).toEqual(g);
      expect(await b.getGrant(g.id)).toBeNull();
    } finally {
      await a.close();
      await b.close();
    }
  });

  it("reports a file it cannot open as ERR_STORAGE", async () => {
    await writeFile(join(dir, "a-file"), "");
    await expectCode(createSqliteStore({ path: join(dir, "a-file", "x.db") }), "ERR_STORAGE");
  });
});
