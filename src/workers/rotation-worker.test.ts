/**
 * The rotation worker with the real rotation against a real PostgreSQL target, over a real
 * in-memory store: a due admin password rotated once however many replicas look, a failed
 * rotation alarmed, and overdue credentials alarmed once a day.
 */
import { mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { freePort } from "../../test/support/free-port.js";
import { type PostgresCluster, startPostgres } from "../../test/support/postgres-cluster.js";
import { loadTestConfig, writeTestConfig } from "../../test/support/test-broker.js";
import { openUnitStore, type UnitStore } from "../../test/support/unit-store.js";
import type { AppConfig } from "../config/app-config.js";
import { SYSTEM_CONTEXT } from "../core/request-context.js";
import { createSecretResolver } from "../secrets/secret-ref.js";
import { rotatePostgresAdmin, rotationStatus } from "../service/rotation.js";
import { createRotationWorker, type RotationWorker } from "./rotation-worker.js";

const DAY = 86_400_000;
let cluster: PostgresCluster;
let dir: string;
let config: AppConfig;
let u: UnitStore;

beforeAll(async () => {
  cluster = await startPostgres();
  dir = mkdtempSync(join(tmpdir(), "bg-rotation-worker-"));
  const root = new pg.Client({ connectionString: cluster.adminUrl });
  await root.connect();
  await root.query("CREATE ROLE bg_admin LOGIN CREATEROLE PASSWORD 'initial-password'");
  await root.end();
  writeFileSync(join(dir, "pg.url"), `postgres://bg_admin:initial-password@127.0.0.1:${cluster.port}/postgres\n`);
  writeFileSync(join(dir, "down.url"), `postgres://bg_admin:x@127.0.0.1:${await freePort()}/postgres\n`);
  writeFileSync(join(dir, "manual.url"), `postgres://bg_admin:x@127.0.0.1:${cluster.port}/postgres\n`);
  writeFileSync(join(dir, "secrets.key"), "");
  writeFileSync(join(dir, "audit-signing.pem"), "");
  const written = writeTestConfig({
    base: "minimal",
    dir,
    config: {
      audit: { generate_key_if_missing: undefined },
      secrets: { key_file: "./secrets.key" },
      users: { alice: { name: "Alice" } },
      groups: { leads: ["alice"] },
      targets: {
        pg: { connector: "postgres", settings: { admin_url: { file: "./pg.url" } } },
        "pg-down": { connector: "postgres", settings: { admin_url: { file: "./down.url" } } },
        "pg-manual": { connector: "postgres", settings: { admin_url: { file: "./manual.url" } } },
      },
      rotation: { max_age: "30d", auto: ["pg", "pg-down"] },
    },
  });
  config = loadTestConfig(written, { resolveSecrets: false });
});
afterAll(async () => {
  await cluster?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});
beforeEach(async () => {
  u = await openUnitStore({ now: Date.now() });
  // The key files are fresh: only the target passwords are due.
  for (const f of ["secrets.key", "audit-signing.pem"]) utimesSync(join(dir, f), new Date(), new Date());
});
afterEach(() => u.close());

const replica = (replicaId: string): RotationWorker =>
  createRotationWorker({
    store: u.store,
    audit: u.audit,
    clock: u.clock,
    intervalMs: 3_600_000,
    auto: config.rotation.auto,
    status: (now) => rotationStatus(config, u.store, now),
    rotate: (targetName) =>
      rotatePostgresAdmin({
        config,
        targetName,
        resolveSecret: createSecretResolver({ baseDir: dir, env: {}, box: null }),
        box: null,
        store: u.store,
        audit: u.audit,
        clock: u.clock,
        ctx: SYSTEM_CONTEXT,
      }),
    replicaId,
    log: () => {},
  });
const logsIn = async (url: string) => {
  const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000 });
  try {
    await c.connect();
    return true;
  } catch {
    return false;
  } finally {
    await c.end().catch(() => {});
  }
};

describe("the rotation worker", () => {
  it("rotates a due password once however many replicas look", async () => {
    const before = readFileSync(join(dir, "pg.url"), "utf8").trim();
    const [a, b] = await Promise.all([replica("r1").runOnce(), replica("r2").runOnce()]);
    expect([...(a?.rotated ?? []), ...(b?.rotated ?? [])]).toEqual(["pg"]);
    expect((await u.events("credential.rotated")).map((e) => e.data.user)).toEqual(["bg_admin"]);
    const after = readFileSync(join(dir, "pg.url"), "utf8").trim();
    expect(after).not.toBe(before);
    expect(await logsIn(after)).toBe(true);
    expect(await logsIn(before)).toBe(false);
    // The unreachable target was tried by one replica, under the same lease.
    expect(await u.events("credential.rotation_failed")).toHaveLength(1);
  });

  it("alarms a failed rotation with its fix, and the other overdue credentials as overdue", async () => {
    const report = await replica("r1").runOnce();
    expect(report.rotated).toEqual(["pg"]);
    expect(report.failed.map((f) => f.target)).toEqual(["pg-down"]);
    const [failed, ...more] = await u.events("credential.rotation_failed");
    expect(more).toEqual([]);
    expect(failed?.data).toMatchObject({
      credential: "target pg-down: admin password",
      fix: expect.stringContaining("rotate-target pg-down"),
    });
    // Not also alarmed as merely overdue by the replica that just failed it.
    expect((await u.events("credential.rotation_overdue")).map((e) => e.data.key)).toEqual(["target:pg-manual"]);
    expect(report.overdue).toEqual(["target:pg-down", "target:pg-manual"]);
  });

  it("does not alarm as overdue a credential another replica is rotating (it holds the lease), and rotates it once the lease has run out", async () => {
    const now = u.clock.now();
    await u.store.transaction((tx) =>
      tx.swapState("rotation-lease:target:pg", JSON.stringify({ holder: "r2", until: now + 60_000 }), now),
    );
    const report = await replica("r1").runOnce();
    expect(report.rotated).toEqual([]);
    expect(report.overdue).toContain("target:pg");
    expect((await u.events("credential.rotation_overdue")).map((e) => e.data.key)).not.toContain("target:pg");
    // r2 died with the lease: once it has run out, r1 rotates the password.
    u.clock.advance(60_001);
    expect((await replica("r1").runOnce()).rotated).toEqual(["pg"]);
  });

  it("alarms an overdue credential once a day, across replicas", async () => {
    // An hour into a (UTC) day: half a day later is the same day.
    u.clock.set(Math.floor(Date.now() / DAY) * DAY + DAY / 24);
    const manual = async () =>
      (await u.events("credential.rotation_overdue")).filter((e) => e.data.key === "target:pg-manual");
    const r1 = replica("r1");
    await r1.runOnce();
    await replica("r2").runOnce();
    u.clock.advance(DAY / 2);
    await r1.runOnce();
    expect(await manual()).toHaveLength(1);
    u.clock.advance(DAY);
    expect((await r1.runOnce()).alarmed).toContain("target:pg-manual");
    expect(await manual()).toHaveLength(2);
  });
});
