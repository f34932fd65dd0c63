/**
 * Fault injection, each with the behaviour the broker promises:
 * - the PostgreSQL store goes away under a running broker: every API call answers 503
 *   ERR_STORAGE as problem+json (no hang, no 500), readiness and liveness fail, nothing half-done
 *   is left; when the database is back the same broker carries on without a restart, and the
 *   audit chain verifies;
 * - the clock jumps: forward past a grant's end — the grant ends and its access is revoked at
 *   once, exactly once; back by hours — nothing that ended comes back, new work proceeds, and the
 *   audit chain still verifies.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Broker } from "../src/app.js";
import { verifyStoreChain } from "../src/audit/audit-verify.js";
import { loadPublicKeys } from "../src/audit/signing-key.js";
import { ctx } from "./support/ctx.js";
import { shiftedClock } from "./support/manual-clock.js";
import { type PostgresCluster, startPostgres } from "./support/postgres-cluster.js";
import { type ConfigOverride, RECORDED_ALARMS, startTestBroker, type TestBroker } from "./support/test-broker.js";
import { sleep, until } from "./support/wait.js";

/** The exec target logs each grant and revocation to `granted` and `revoked` in the broker's folder. */
const CONFIG: ConfigOverride = {
  ...RECORDED_ALARMS,
  workers: { expiry_poll: "100ms" },
  admin_groups: ["security"],
  users: { alice: {}, bob: {}, erin: {} },
  groups: { oncall: ["alice"], leads: ["bob"], security: ["erin"] },
  domains: {
    production: {
      roles: {
        db: {
          target: "box",
          default_duration: "30m",
          max_duration: "2h",
          approval: "1 of leads",
          requesters: ["oncall"],
        },
      },
    },
  },
  targets: {
    box: {
      connector: "exec",
      settings: {
        grant: ["sh", "-c", 'echo "$BREAKGLASS_GRANT_ID" >> granted'],
        revoke: ["sh", "-c", 'echo "$BREAKGLASS_GRANT_ID" >> revoked'],
      },
    },
  },
};

async function chainOk(broker: Broker): Promise<void> {
  const keys = loadPublicKeys([broker.signingKey.publicKeyPem]);
  const verdict = await verifyStoreChain(broker.store, keys.verifySignature);
  expect(verdict.ok, JSON.stringify(verdict)).toBe(true);
}

describe("the PostgreSQL store goes away and comes back", () => {
  let cluster: PostgresCluster;
  let t: TestBroker;
  let broker: Broker;
  let alice = "";
  let bob = "";

  beforeAll(async () => {
    cluster = await startPostgres();
    t = await startTestBroker({ base: "minimal", storage: { driver: "postgres", url: cluster.url }, config: CONFIG });
    broker = t.broker;
    alice = await t.token("alice");
    bob = await t.token("bob");
  });

  afterAll(async () => {
    await t?.stop().catch(() => {});
    await cluster?.stop();
  });

  const call = (token: string | null, method: "GET" | "POST", path: string, payload?: Record<string, unknown>) =>
    broker.http.inject({
      method,
      url: `/api/v1${path}`,
      headers: token ? { authorization: `Bearer ${token}` } : {},
      ...(payload ? { payload } : {}),
    });
  const request = { role: "production/db", justification: "store outage test", incident: "INC-9" };

  it("answers 503 ERR_STORAGE while it is down, and carries on without a restart when it is back", async () => {
    const before = await call(alice, "POST", "/grants", request);
    expect(before.statusCode).toBe(201);
    const first = (before.json() as { id: string }).id;
    expect((await call(null, "GET", "/ready")).statusCode).toBe(200);

    // A transaction in flight when the server goes away (its connection checked out of the
    // pool): it fails as ERR_STORAGE; the dropped connection must not crash the process.
    let inFlight: Promise<unknown> = Promise.resolve();
    let halted: () => void = () => {};
    const serverGone = new Promise<void>((r) => {
      halted = r;
    });
    const holding = new Promise<void>((held) => {
      inFlight = broker.store.transaction(async (tx) => {
        await tx.lockGrant(first);
        held();
        await serverGone; // its next statement comes after the server went away, however long that took
        return tx.lockGrant(first);
      });
    });
    await holding;
    await cluster.halt();
    halted();
    await expect(inFlight).rejects.toMatchObject({ code: "ERR_STORAGE" });
    // Each refused, not hung (a hung one would run into the test's timeout).
    for (const [token, method, path, body] of [
      [alice, "GET", "/grants", undefined],
      [bob, "POST", `/grants/${first}/approve`, {}],
      [alice, "POST", "/grants", request],
      [null, "GET", "/ready", undefined],
      [null, "GET", "/health", undefined],
    ] as const) {
      const res = await call(token, method, path, body);
      expect(res.statusCode, `${method} ${path}: ${res.body}`).toBe(503);
      expect(res.headers["content-type"]).toContain("application/problem+json");
      expect((res.json() as { code: string }).code).toBe("ERR_STORAGE");
    }

    await cluster.resume();
    // The pool's old connections are dead: within seconds the same broker answers again. (A call
    // that throws while the store is still away counts as "not yet".)
    await until(
      "the API answering again",
      async () => (await call(null, "GET", "/ready").catch(() => null))?.statusCode === 200,
    );
    const approved = await until("the approval going through", async () => {
      const res = await call(bob, "POST", `/grants/${first}/approve`, {}).catch(() => null);
      return res?.statusCode === 200 ? (res.json() as { state: string }) : null;
    });
    expect(approved.state).toBe("active");
    // Nothing done during the outage: the approval happened once, now.
    const events = (await broker.store.readGrantAudit([first])).map((e) => e.type);
    expect(events.filter((t) => t === "grant.approved")).toHaveLength(1);
    await chainOk(broker);
  });
});

describe("the clock jumps", () => {
  let t: TestBroker;
  let broker: Broker;
  const clock = shiftedClock();

  beforeAll(async () => {
    t = await startTestBroker({ base: "minimal", clock, config: CONFIG });
    broker = t.broker;
  });

  afterAll(async () => {
    await t?.stop();
  });

  it("forward past a grant's end: it ends and is revoked at once, exactly once; back by hours: nothing comes back", async () => {
    const g = await broker.service.request(ctx("alice"), {
      roleId: "production/db",
      justification: "clock jump test",
      incident: "INC-10",
    });
    expect((await broker.service.approve(ctx("bob"), g.id, null)).state).toBe("active");

    clock.offsetMs += 2 * 3_600_000; // NTP step, a VM resumed from suspend…
    const ended = await until("the grant ending after the jump", async () => {
      const now = await broker.service.get(g.id);
      return now.state === "ended" && now.access === "revoked" ? now : null;
    });
    expect(ended.endReason).toBe("expired");

    clock.offsetMs -= 3 * 3_600_000; // …and back, an hour before the grant even started
    await sleep(1000); // several expiry polls
    expect((await broker.service.get(g.id)).state).toBe("ended");
    const events = (await broker.store.readGrantAudit([g.id])).map((e) => e.type);
    expect(events.filter((t) => t === "grant.expired")).toHaveLength(1);
    expect(events.filter((t) => t === "target.revoked")).toHaveLength(1);

    // New work proceeds on the earlier clock, and the chain (ordered by sequence, not by time) verifies.
    const next = await broker.service.request(ctx("alice"), {
      roleId: "production/db",
      justification: "after the clock went back",
      incident: "INC-11",
    });
    expect((await broker.service.approve(ctx("bob"), next.id, null)).state).toBe("active");
    await chainOk(broker);
  });
});
