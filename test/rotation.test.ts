/**
 * Rotation of a break-glass credential against a real PostgreSQL server: the target's admin
 * password changed by the broker (SCRAM verifier at the server), proven by a new login, saved over
 * the configured file only then; the old password stops working; the rotation is audited and
 * `rotation status` shows its age. A target whose admin URL comes from the environment is refused
 * with the fix. The broker's own rotation worker: a due password rotated automatically (one
 * replica at a time), the connector carrying on with the new password without a restart, a failed
 * rotation and overdue credentials alarmed — overdue ones once a day.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Broker } from "../src/app.js";
import { verifyStoreChain } from "../src/audit/audit-verify.js";
import { buildEvidenceReport, reportJson } from "../src/audit/evidence-report.js";
import { loadPublicKeys } from "../src/audit/signing-key.js";
import { newCustodianIdentity, parseEnvelope, sealEnvelope } from "../src/vault/envelope.js";
import { nextRecord } from "../src/vault/opening-record.js";
import { requireBuild, runCli } from "./support/broker-process.js";
import { ctx } from "./support/ctx.js";
import { type PostgresTarget, startPostgresTarget, TARGET_ENV, tryLogin } from "./support/postgres-target.js";
import {
  type RoleOverride,
  SECRET_KEY,
  startTestBroker,
  type TestBroker,
  writeTestConfig,
} from "./support/test-broker.js";

let target: PostgresTarget;
let dir: string;
let oldUrl: string;

const DB_ROLE: RoleOverride = {
  target: "pg",
  grants: { roles: ["recovery_rw"] },
  max_duration: "1h",
  approval: "1 of leads",
  requesters: ["oncall"],
};

/** A 2-of-2 envelope sealed at `now`, due 30 days later. */
async function envelopeSealed(name: string, now: number) {
  const [a, b] = await Promise.all([newCustodianIdentity(), newCustodianIdentity()]);
  return sealEnvelope({
    name,
    secret: Buffer.from("s"),
    custodians: [
      { name: "a", recipient: a.recipient },
      { name: "b", recipient: b.recipient },
    ],
    threshold: 2,
    alarms: [],
    now,
    rotationDays: 30,
  });
}

beforeAll(async () => {
  target = await startPostgresTarget();
  await target.sql("CREATE ROLE bg_admin LOGIN CREATEROLE PASSWORD 'first-admin-password'");
  const u = new URL(target.adminUrl);
  u.username = "bg_admin";
  u.password = "first-admin-password";
  oldUrl = u.href;
  dir = mkdtempSync(join(tmpdir(), "bg-rotation-"));
  writeFileSync(join(dir, "pg-admin.url"), `${oldUrl}\n`, { mode: 0o600 });
  writeFileSync(join(dir, "db-root.envelope"), JSON.stringify(await envelopeSealed("db-root", Date.now())));
  execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", join(dir, "ssh-ca")]);
  // An SSH CA key made 40 days ago: overdue.
  const old = new Date(Date.now() - 40 * 86_400_000);
  utimesSync(join(dir, "ssh-ca"), old, old);
  writeTestConfig({
    base: "minimal",
    dir,
    config: {
      ...SECRET_KEY,
      users: { alice: {}, bob: {} },
      groups: { oncall: ["alice"], leads: ["bob"] },
      domains: { production: { roles: { db: DB_ROLE } } },
      vault: { envelopes: ["./db-root.envelope"] },
      targets: {
        pg: { connector: "postgres", settings: { admin_url: { file: "./pg-admin.url" } } },
        "pg-env": { connector: "postgres", settings: { admin_url: { env: TARGET_ENV } } },
        hosts: { connector: "ssh", settings: { ca_private_key: { file: "./ssh-ca" }, krl_file: "./revoked.krl" } },
      },
    },
  });
});

afterAll(async () => {
  await target?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("rotation", () => {
  it("rotates a postgres admin password, proven by a new login before the file is replaced", async () => {
    requireBuild();
    const env = { [TARGET_ENV]: target.adminUrl };
    const before = await runCli(["rotation", "status", "--config", join(dir, "breakglass.yaml")], env);
    expect(before.code).toBe(6);
    expect(before.stdout).toContain("OVERDUE  target pg: admin password: never rotated by Breakglass");
    expect(before.stdout).toMatch(
      /OVERDUE {2}target hosts: SSH CA key: 40 day\(s\) old, due \d{4}-\d\d-\d\d — ssh-keygen a new CA key/,
    );
    // A shorter policy on the command line.
    const strict = await runCli(
      ["rotation", "status", "--max-age", "1d", "--config", join(dir, "breakglass.yaml")],
      env,
    );
    expect(strict.stdout).toContain("OVERDUE  target hosts: SSH CA key");

    const rotated = await runCli(["rotation", "rotate-target", "pg", "--config", join(dir, "breakglass.yaml")], env);
    expect(rotated.stderr).toContain("Rotated the password of bg_admin on pg");
    expect(rotated.code).toBe(0);
    const newUrl = readFileSync(join(dir, "pg-admin.url"), "utf8").trim();
    expect(newUrl).not.toBe(oldUrl);
    expect(await tryLogin(newUrl, "SELECT 1")).toBeNull();
    expect(await tryLogin(oldUrl, "SELECT 1")).toMatch(/password authentication failed/);
    // Stored as a SCRAM verifier, never the plaintext.
    const [row] = await target.sql<{ rolpassword: string }>(
      "SELECT rolpassword FROM pg_authid WHERE rolname = 'bg_admin'",
    );
    expect(row?.rolpassword).toMatch(/^SCRAM-SHA-256\$4096:/);
    expect(row?.rolpassword).not.toContain(new URL(newUrl).password);

    const after = await runCli(["rotation", "status", "--config", join(dir, "breakglass.yaml"), "--json"], env);
    const rows = JSON.parse(after.stdout) as { credential: string; ageDays: number | null; overdue: boolean }[];
    expect(rows.find((r) => r.credential === "target pg: admin password")).toMatchObject({
      ageDays: 0,
      overdue: false,
    });
    const audit = await runCli(["audit", "export", "--format", "jsonl", "--config", join(dir, "breakglass.yaml")], env);
    expect(audit.stdout).toContain('"type":"credential.rotated"');
    expect(audit.stdout).not.toContain(new URL(newUrl).password);

    // A tier-2 envelope: fine while unused and not due; red once opened (its secret has been seen).
    const envelopeRow = async () => {
      const out = await runCli(["rotation", "status", "--json", "--config", join(dir, "breakglass.yaml")], env);
      return (JSON.parse(out.stdout) as { credential: string; overdue: boolean }[]).find((r) =>
        r.credential.startsWith("envelope db-root"),
      );
    };
    expect(await envelopeRow()).toMatchObject({ credential: "envelope db-root", overdue: false });
    const envelope = parseEnvelope(readFileSync(join(dir, "db-root.envelope"), "utf8"));
    const record = nextRecord(
      [],
      {
        envelope: envelope.meta.id,
        name: "db-root",
        at: "2026-11-30T00:00:00Z",
        custodians: [],
        reason: "r",
        incident: "INC-1",
        alarm: "pending",
      },
      () => "unsigned",
    );
    writeFileSync(join(dir, "db-root.envelope.openings.jsonl"), `${JSON.stringify(record)}\n`);
    expect(await envelopeRow()).toMatchObject({
      credential: "envelope db-root (USED: opened 1 time(s))",
      overdue: true,
    });

    const refused = await runCli(
      ["rotation", "rotate-target", "pg-env", "--config", join(dir, "breakglass.yaml")],
      env,
    );
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain("comes from the environment, which the broker cannot update");
  });
});

describe("rotation by the broker", () => {
  let t: TestBroker;
  let broker: Broker;
  let autoDir: string;

  beforeAll(async () => {
    await target.sql("CREATE ROLE bg_auto LOGIN SUPERUSER PASSWORD 'auto-first-password'");
    const u = new URL(target.adminUrl);
    u.username = "bg_auto";
    u.password = "auto-first-password";
    autoDir = mkdtempSync(join(tmpdir(), "bg-rotation-auto-"));
    writeFileSync(join(autoDir, "pg-admin.url"), `${u.href}\n`, { mode: 0o600 });
    writeFileSync(join(autoDir, "down-admin.url"), "postgres://bg_auto:x@127.0.0.1:1/app\n", { mode: 0o600 });
    const stale = await envelopeSealed("stale-root", Date.now() - 40 * 86_400_000);
    writeFileSync(join(autoDir, "stale.envelope"), JSON.stringify(stale));
    t = await startTestBroker({
      base: "minimal",
      dir: autoDir,
      start: false,
      config: {
        ...SECRET_KEY,
        alarms: {
          channels: { record: { type: "file", path: "./alarms.jsonl" } },
          security_channels: ["record"],
          routes: [{ events: ["*"], channels: ["record"] }],
        },
        users: { alice: {}, bob: {} },
        groups: { oncall: ["alice"], leads: ["bob"] },
        domains: { production: { roles: { db: DB_ROLE } } },
        vault: { envelopes: ["./stale.envelope"] },
        rotation: { auto: ["pg", "pg-down"], check_interval: "1h" },
        targets: {
          pg: { connector: "postgres", settings: { admin_url: { file: "./pg-admin.url" }, timeout: "5s" } },
          "pg-down": { connector: "postgres", settings: { admin_url: { file: "./down-admin.url" }, timeout: "2s" } },
        },
      },
    });
    broker = t.broker;
  });

  afterAll(async () => {
    await t?.stop();
    rmSync(autoDir, { recursive: true, force: true });
  });

  const grantWorks = async () => {
    const g = await broker.service.request(ctx("alice"), {
      roleId: "production/db",
      justification: "rotate and carry on working",
      incident: "INC-7",
      durationS: 600,
    });
    const active = await broker.service.approve(ctx("bob"), g.id, null);
    expect(active).toMatchObject({ state: "active", access: "granted" });
    const { credential } = await broker.service.credential(ctx("alice"), g.id);
    expect(await tryLogin(credential.reveal(), "SELECT 1")).toBeNull();
    await broker.service.revoke(ctx("bob"), g.id, "done");
  };

  const events = async (type: string) => {
    const out = await broker.store.readAudit(1, 10_000);
    return out
      .filter((e) => e.type === type)
      .map((e) => JSON.parse(e.payload) as { actor: string; target?: string; data: Record<string, unknown> });
  };

  it("rotates a due admin password itself, one replica at a time, and the connector carries on without a restart", async () => {
    const oldUrl = readFileSync(join(autoDir, "pg-admin.url"), "utf8").trim();
    await grantWorks(); // the connector's admin pool now holds the old password

    // Another replica holds the lease: this one leaves the password alone and reports it overdue,
    // but does not alarm it (the holder's rotation succeeds, or it alarms the failure itself).
    const now = Date.now();
    await broker.store.transaction((tx) =>
      tx.swapState("rotation-lease:target:pg", JSON.stringify({ holder: "other-replica", until: now + 60_000 }), now),
    );
    const held = await broker.rotation.runOnce();
    expect(held.rotated).toEqual([]);
    expect(held.overdue).toContain("target:pg");
    expect(held.alarmed).not.toContain("target:pg");
    expect(readFileSync(join(autoDir, "pg-admin.url"), "utf8").trim()).toBe(oldUrl);

    await broker.store.transaction((tx) =>
      tx.swapState("rotation-lease:target:pg", JSON.stringify({ holder: "other-replica", until: now - 1 }), now),
    );
    const report = await broker.rotation.runOnce();
    expect(report.rotated).toEqual(["pg"]);
    expect(report.overdue).not.toContain("target:pg");
    const newUrl = readFileSync(join(autoDir, "pg-admin.url"), "utf8").trim();
    expect(newUrl).not.toBe(oldUrl);
    expect(await tryLogin(oldUrl, "SELECT 1")).toMatch(/password authentication failed/);
    expect(await tryLogin(newUrl, "SELECT 1")).toBeNull();

    // The broker's idle admin connections go away (a server restart, a pooler): its next
    // connection is refused with the old password, and it reads the file again.
    await target.sql(
      "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'bg_auto' AND pid <> pg_backend_pid()",
    );
    await grantWorks();

    // The unreachable target's rotation failed loudly; the old file is untouched.
    expect(report.failed).toEqual([expect.objectContaining({ target: "pg-down" })]);
    expect(readFileSync(join(autoDir, "down-admin.url"), "utf8")).toContain(":x@");
    const failures = await events("credential.rotation_failed");
    expect(failures.length).toBeGreaterThanOrEqual(1);
    expect(failures[0]).toMatchObject({ target: "pg-down" });
    const rotations = await events("credential.rotated");
    expect(rotations).toEqual([expect.objectContaining({ actor: "system", target: "pg" })]);
  });

  it("raises an overdue alarm once a day per credential, to the security channels", async () => {
    // The first pass (above) alarmed the stale envelope; passes on the same day do not again.
    const again = await broker.rotation.runOnce();
    expect(again.overdue).toContain(again.overdue.find((k) => k.startsWith("envelope:")));
    expect(again.alarmed).toEqual([]);
    const overdue = await events("credential.rotation_overdue");
    const credentials = overdue.map((e) => (e.data as { credential: string }).credential);
    expect(credentials.filter((c) => c === "envelope stale-root")).toHaveLength(1);
    expect(credentials).not.toContain("target pg: admin password"); // not while the lease was held, rotated since
    expect(credentials).not.toContain("target pg-down: admin password"); // its failure said it louder
    await broker.alarms.drain();
    const alarms = readFileSync(join(autoDir, "alarms.jsonl"), "utf8");
    expect(alarms).toContain("Break-glass credential overdue for rotation: envelope stale-root");
    expect(alarms).toContain("AUTOMATIC ROTATION FAILED: target pg-down: admin password");

    // The evidence report lists the credentials and every rotation event of the period.
    const keys = loadPublicKeys([broker.signingKey.publicKeyPem]);
    const report = reportJson(
      await buildEvidenceReport(broker.store, {
        from: 0,
        to: Date.now() + 1000,
        now: Date.now(),
        chain: await verifyStoreChain(broker.store, keys.verifySignature),
        credentials: await broker.rotationStatus(),
      }),
    ) as {
      rotation: {
        credentials: { credential: string; overdue: boolean }[];
        events: { type: string; credential: string }[];
      };
    };
    expect(report.rotation.credentials).toContainEqual(
      expect.objectContaining({ credential: "target pg: admin password", overdue: false }),
    );
    expect(report.rotation.events.map((e) => `${e.type} ${e.credential}`)).toEqual(
      expect.arrayContaining([
        "credential.rotated postgres admin password on pg",
        "credential.rotation_failed target pg-down: admin password",
        "credential.rotation_overdue envelope stale-root",
      ]),
    );
  });
});
