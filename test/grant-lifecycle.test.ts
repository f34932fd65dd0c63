/**
 * The grant lifecycle through the real service, store and exec connector, on SQLite and on a
 * real PostgreSQL: expiry across a broker restart, fail-closed audit, revocation retries,
 * overlapping grants, emergency activation and lapses.
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import pg from "pg";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { Broker } from "../src/app.js";
import type { AppConfig } from "../src/config/app-config.js";
import { BreakglassError } from "../src/core/errors.js";
import { dueAt } from "../src/core/grant-machine.js";
import type { Grant } from "../src/core/model.js";
import type { Connector } from "../src/core/ports/connector.js";
import { type RequestContext, SYSTEM_CONTEXT } from "../src/core/request-context.js";
import { ctx } from "./support/ctx.js";
import { type ManualClock, manualClock } from "./support/manual-clock.js";
import {
  APP_ROLE,
  createDatabase,
  type PostgresCluster,
  startPostgres,
  withDatabase,
} from "./support/postgres-cluster.js";
import {
  loadTestConfig,
  startTestBroker,
  type TestBroker,
  type TestBrokerOptions,
  type TestStorage,
  writeTestConfig,
} from "./support/test-broker.js";
import { PATIENCE_MS, until } from "./support/wait.js";

const as = (actor: string): RequestContext => ctx(actor, { requestId: `req-${actor}`, sourceAddress: "127.0.0.1" });
const REQUEST = { roleId: "production/db-admin", justification: "primary database is down", incident: "INC-4711" };

interface Backend {
  readonly name: string;
  storage(): Promise<TestStorage>;
  /** Make every insert into audit_events fail, or undo it. */
  breakAudit(config: AppConfig, broken: boolean): Promise<void>;
}

let cluster: PostgresCluster | null = null;
let dbCounter = 0;

const BACKENDS: Backend[] = [
  {
    name: "sqlite",
    storage: async () => ({ driver: "sqlite" }),
    async breakAudit(config, broken) {
      if (config.storage.driver !== "sqlite") throw new Error("unreachable");
      const db = new Database(config.storage.path);
      db.exec(
        broken
          ? "CREATE TRIGGER audit_block BEFORE INSERT ON audit_events BEGIN SELECT RAISE(ABORT, 'disk full'); END;"
          : "DROP TRIGGER audit_block;",
      );
      db.close();
    },
  },
  {
    name: "postgres",
    async storage() {
      if (!cluster) throw new Error("cluster not started");
      const name = `lifecycle_${++dbCounter}`;
      await createDatabase(cluster.adminUrl, name, { owner: APP_ROLE });
      return { driver: "postgres", url: withDatabase(cluster.url, name) };
    },
    async breakAudit(config, broken) {
      if (config.storage.driver !== "postgres") throw new Error("unreachable");
      const client = new pg.Client({ connectionString: config.storage.url.reveal() });
      await client.connect();
      await client.query(
        broken
          ? `CREATE FUNCTION audit_block() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'disk full'; END $$;
             CREATE TRIGGER audit_block BEFORE INSERT ON audit_events FOR EACH ROW EXECUTE FUNCTION audit_block();`
          : "DROP TRIGGER audit_block ON audit_events; DROP FUNCTION audit_block();",
      );
      await client.end();
    },
  },
];

beforeAll(async () => {
  cluster = await startPostgres();
});
afterAll(async () => {
  await cluster?.stop();
});

for (const backend of BACKENDS) {
  describe(`grant lifecycle on ${backend.name}`, () => {
    let dir: string;
    let storage: TestStorage;
    let config: AppConfig;
    let clock: ManualClock;
    const brokers: TestBroker[] = [];

    /** A broker on this test's folder and database, not started (the test drives its workers). */
    const open = async (opts: Pick<TestBrokerOptions, "connectors"> = {}): Promise<Broker> => {
      const t = await startTestBroker({ dir, storage, clock, start: false, ...opts });
      brokers.push(t);
      return t.broker;
    };
    const close = (b: Broker) => brokers.find((t) => t.broker === b)?.stop();
    const accessFile = (g: Grant) => join(dir, "targets", `bg_${g.id}`);
    // The grant's own story; the alarm worker's delivery receipts (`alarm.delivered`) come when
    // they come and are not part of the order asserted here.
    const events = async (b: Broker, grantId: string) =>
      (await b.store.readAudit(1, 10_000))
        .filter((e) => e.grantId === grantId && e.type !== "alarm.delivered")
        .map((e) => e.type);
    const activeGrant = async (b: Broker, user = "alice"): Promise<Grant> => {
      const g = await b.service.request(as(user), REQUEST);
      await b.service.approve(as("bob"), g.id, null);
      return b.service.approve(as("carol"), g.id, "ok");
    };

    beforeEach(async () => {
      dir = mkdtempSync(join(tmpdir(), `bg-life-${backend.name}-`));
      clock = manualClock();
      storage = await backend.storage();
      config = loadTestConfig(writeTestConfig({ dir, storage }));
    });
    afterEach(async () => {
      for (const t of brokers.splice(0)) await t.stop().catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    });

    it("keeps the connector's output in the audit trail, also when the target fails", async () => {
      const b = await open();
      const g = await activeGrant(b);
      const audit = await b.store.readAudit(1, 10_000);
      const activated = audit.find((e) => e.grantId === g.id && e.type === "grant.activated");
      expect(JSON.parse(activated?.payload ?? "{}").data.target).toMatchObject({ exitCode: 0 });
      writeFileSync(join(dir, "target-down"), "");
      await b.service.release(as("alice"), g.id);
      const failed = (await b.store.readAudit(1, 10_000)).find(
        (e) => e.grantId === g.id && e.type === "target.revoke_failed",
      );
      expect(JSON.parse(failed?.payload ?? "{}").data.error).toContain("exited with 7: target unreachable");
    });

    it("refuses to end a grant while its activation runs, and revokes an activation that finished after it was abandoned", async () => {
      // A target whose grant call hangs until the test lets it finish.
      const present = new Set<string>();
      let finishGrant = (): void => undefined;
      const slow: Connector = {
        timeoutMs: 1_000,
        plan: (facts) => ({ principal: `bg_${facts.grantId}` }),
        grant: (_facts, handle) =>
          new Promise((resolve) => {
            finishGrant = () => {
              present.add(String(handle.principal));
              resolve({ credential: null, detail: {} });
            };
          }),
        revoke: async (_facts, handle) => {
          present.delete(String(handle.principal));
          return { credential: null, detail: {} };
        },
        verify: async (_facts, handle) => ({ revoked: !present.has(String(handle.principal)), detail: {} }),
      };
      const b = await open({ connectors: new Map([["box", slow]]) });
      const g = await b.service.request(as("alice"), REQUEST);
      await b.service.approve(as("bob"), g.id, null);
      const activating = b.service.approve(as("carol"), g.id, null);
      await until(
        "the activation to start",
        async () => (await b.service.get(g.id)).access === "granting",
        PATIENCE_MS,
        10,
      );
      const refused = await b.service.revoke(as("erin"), g.id, "stop").catch((e: unknown) => e);
      expect((refused as BreakglassError).code).toBe("ERR_CONFLICT");

      // The lease runs out: the worker treats the activation as abandoned and cleans up.
      clock.advance(5 * 60_000);
      await b.expiry.drain();
      expect((await b.service.get(g.id)).access).toBe("revoked");
      // Then the target call finally returns: what it created must go again, not stay forever.
      finishGrant();
      const settled = await activating;
      expect(settled.state).not.toBe("active");
      expect(present.size).toBe(0);
      expect((await b.service.get(g.id)).access).toBe("revoked");
      const types = await events(b, g.id);
      expect(types.filter((t) => t === "target.grant_failed").length).toBeGreaterThanOrEqual(1);
      expect(types.at(-1)).toBe("target.revoked");
    });

    it("activates at the target once two distinct leads approve", async () => {
      const b = await open();
      const g = await activeGrant(b);
      expect(g.state).toBe("active");
      expect(g.access).toBe("granted");
      expect(g.endsAt).toBe(clock.now() + 30 * 60_000);
      expect(existsSync(accessFile(g))).toBe(true);
      expect(await events(b, g.id)).toEqual([
        "grant.requested",
        "grant.approval_added",
        "grant.approved",
        "target.grant_started",
        "grant.activated",
      ]);
    });

    it("ends at start a grant whose end passed while the broker was down, and revokes it at the target", async () => {
      const first = await open();
      const g = await activeGrant(first);
      await close(first);

      clock.advance(30 * 60_000 + 60_000); // down through the end, plus a minute
      const second = await open();
      await second.start();
      await second.expiry.drain();

      const after = await second.service.get(g.id);
      expect(after.state).toBe("ended");
      expect(after.endReason).toBe("expired");
      expect(after.endedAt).toBe(clock.now());
      expect(after.access).toBe("revoked");
      expect(existsSync(accessFile(g))).toBe(false);
      const audit = await second.store.readAudit(1, 10_000);
      const expired = audit.find((e) => e.type === "grant.expired" && e.grantId === g.id);
      expect(JSON.parse(expired?.payload ?? "{}").data.lagMs).toBe(60_000);
      expect(await events(second, g.id)).toEqual([
        "grant.requested",
        "grant.approval_added",
        "grant.approved",
        "target.grant_started",
        "grant.activated",
        "grant.expired",
        "target.revoked",
      ]);
    });

    it("refuses the action and changes nothing when the audit event cannot be written", async () => {
      const b = await open();
      const g = await b.service.request(as("alice"), REQUEST);
      const before = await b.store.readAudit(1, 10_000);
      await backend.breakAudit(config, true);

      const err = await b.service.approve(as("bob"), g.id, null).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(BreakglassError);
      expect((err as BreakglassError).code).toBe("ERR_AUDIT_WRITE_FAILED");
      const unchanged = await b.service.get(g.id);
      expect(unchanged).toEqual(g);
      expect(await b.store.readAudit(1, 10_000)).toEqual(before);
      const refused = await b.service.request(as("dave"), REQUEST).catch((e: unknown) => e);
      expect((refused as BreakglassError).code).toBe("ERR_AUDIT_WRITE_FAILED");
      expect(await b.service.list({ requester: "dave" })).toEqual([]);

      await backend.breakAudit(config, false);
      const approved = await b.service.approve(as("bob"), g.id, null);
      expect(approved.approvals.map((a) => a.approver)).toEqual(["bob"]);
    });

    it("takes access away at the target on time even while the audit log refuses writes, and records it afterwards", async () => {
      const b = await open();
      const g = await activeGrant(b);
      await backend.breakAudit(config, true);
      clock.advance(30 * 60_000);
      const err = await b.expiry.tick().catch((e: unknown) => e);
      expect((err as BreakglassError).code).toBe("ERR_AUDIT_WRITE_FAILED");
      expect(existsSync(accessFile(g))).toBe(false); // enforced at the target
      expect((await b.service.get(g.id)).state).toBe("active"); // but not recorded: nothing changed

      await backend.breakAudit(config, false);
      await b.expiry.drain();
      const ended = await b.service.get(g.id);
      expect(ended).toMatchObject({ state: "ended", endReason: "expired", access: "revoked" });
      expect((await events(b, g.id)).slice(-2)).toEqual(["grant.expired", "target.revoked"]);
    });

    it("retries a failing revocation with backoff, recording every failure, until the target answers", async () => {
      const b = await open();
      const g = await activeGrant(b);
      writeFileSync(join(dir, "target-down"), "");
      const released = await b.service.release(as("alice"), g.id);
      expect(released.state).toBe("ended");
      expect(released.access).toBe("revoking");
      expect(released.accessAttempts).toBe(1);
      expect(released.accessLastError).toContain("target unreachable");
      expect(released.accessNextAt).toBe(clock.now() + 1_000);

      for (const wait of [1_000, 2_000, 4_000]) {
        await b.expiry.drain();
        expect((await b.service.get(g.id)).access).toBe("revoking"); // not due yet: nothing happens
        clock.advance(wait);
        await b.expiry.drain();
      }
      const failing = await b.service.get(g.id);
      expect(failing.accessAttempts).toBe(4);
      expect(failing.accessNextAt).toBe(clock.now() + 8_000);
      expect(existsSync(accessFile(g))).toBe(true);

      rmSync(join(dir, "target-down"));
      clock.advance(8_000);
      await b.expiry.drain();
      const done = await b.service.get(g.id);
      expect(done.access).toBe("revoked");
      expect(existsSync(accessFile(g))).toBe(false);
      const types = await events(b, g.id);
      expect(types.filter((t) => t === "target.revoke_failed")).toHaveLength(4);
      expect(types.at(-1)).toBe("target.revoked");
    });

    it("keeps overlapping grants of the same role apart: one ending does not revoke the other", async () => {
      const b = await open();
      const alices = await activeGrant(b, "alice");
      const daves = await activeGrant(b, "dave");
      await b.service.release(as("alice"), alices.id);
      expect(existsSync(accessFile(alices))).toBe(false);
      expect(existsSync(accessFile(daves))).toBe(true);
      expect((await b.service.get(daves.id)).state).toBe("active");
    });

    it("refuses a second open grant for the same role, naming the open one", async () => {
      const b = await open();
      const g = await activeGrant(b);
      const err = await b.service.request(as("alice"), REQUEST).catch((e: unknown) => e);
      expect((err as BreakglassError).code).toBe("ERR_OPEN_GRANT_EXISTS");
      expect((err as BreakglassError).message).toContain(g.id);
    });

    it("activates an emergency request at once, as a recorded policy bypass", async () => {
      const b = await open();
      const g = await b.service.request(as("alice"), { ...REQUEST, emergency: true });
      expect(g.state).toBe("active");
      expect(g.emergency).toBe(true);
      expect(existsSync(accessFile(g))).toBe(true);
      const audit = await b.store.readAudit(1, 10_000);
      const activation = audit.find((e) => e.grantId === g.id && e.type === "grant.emergency_activated");
      expect(JSON.parse(activation?.payload ?? "{}").data.policyBypass).toBe(true);
    });

    it("lapses a request nobody approved", async () => {
      const b = await open();
      const unapproved = await b.service.request(as("alice"), REQUEST);
      clock.advance(60 * 60_000);
      await b.expiry.drain();
      expect((await b.service.get(unapproved.id)).state).toBe("approval_expired");
      expect(await events(b, unapproved.id)).toContain("grant.approval_expired");
    });

    it("expires an active grant within the worker's poll interval of its end", async () => {
      const b = await open();
      const g = await activeGrant(b);
      clock.advance(30 * 60_000 - 1);
      await b.expiry.drain();
      expect((await b.service.get(g.id)).state).toBe("active");
      clock.advance(1);
      await b.expiry.drain();
      const ended = await b.service.get(g.id);
      expect(ended.state).toBe("ended");
      expect(ended.endedAt).toBe(g.endsAt);
      expect(existsSync(accessFile(g))).toBe(false);
    });

    it("writes the request id and source address of the action into its audit event", async () => {
      const b = await open();
      const g = await b.service.request(as("alice"), REQUEST);
      const [event] = await b.store.readAudit(1, 1);
      const payload = JSON.parse(event?.payload ?? "{}");
      expect(payload).toMatchObject({
        type: "grant.requested",
        actor: "alice",
        grant: g.id,
        role: "production/db-admin",
        target: "box",
        incident: "INC-4711",
        justification: "primary database is down",
        request_id: "req-alice",
        source: "127.0.0.1",
      });
      expect(SYSTEM_CONTEXT.actor).toBe("system");
    });
  });
}

async function activeViaService(b: Broker): Promise<Grant> {
  const g = await b.service.request(as("alice"), REQUEST);
  await b.service.approve(as("bob"), g.id, null);
  return b.service.approve(as("carol"), g.id, null);
}

describe("several replicas on one PostgreSQL", () => {
  it("two brokers draining the same due grants end and revoke each exactly once", async () => {
    if (!cluster) throw new Error("cluster not started");
    const name = `replicas_${++dbCounter}`;
    await createDatabase(cluster.adminUrl, name, { owner: APP_ROLE });
    const dir = mkdtempSync(join(tmpdir(), "bg-replicas-"));
    const clock = manualClock();
    try {
      const storage: TestStorage = { driver: "postgres", url: withDatabase(cluster.url, name) };
      const replicaA = await startTestBroker({ dir, storage, clock, start: false });
      const replicaB = await startTestBroker({ dir, storage, clock, start: false });
      const [a, b] = [replicaA.broker, replicaB.broker];
      try {
        // 120 active grants of 120 holders, seeded through the store; all of them past their end.
        const template = await activeViaService(a);
        const ids: string[] = [template.id];
        await a.store.transaction(async (tx) => {
          for (let i = 0; i < 119; i++) {
            const g: Grant = { ...template, id: `g_replica${i}`, requester: `holder${i}`, version: 1 };
            await tx.saveGrant(g, dueAt(g));
            ids.push(g.id);
          }
        });
        for (const id of ids) expect((await a.service.get(id)).state).toBe("active");
        clock.advance(2 * 60 * 60_000);
        await Promise.all([a.expiry.drain(), b.expiry.drain()]);
        const audit = await a.store.readAudit(1, 10_000);
        for (const id of ids) {
          const types = audit.filter((e) => e.grantId === id).map((e) => e.type);
          expect(types.filter((t) => t === "grant.expired")).toHaveLength(1);
          expect(types.filter((t) => t === "target.revoked")).toHaveLength(1);
          expect(existsSync(join(dir, "targets", `bg_${id}`))).toBe(false);
        }
      } finally {
        await replicaA.stop();
        await replicaB.stop();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
