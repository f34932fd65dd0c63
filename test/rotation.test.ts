/**
 * Rotation of a break-glass credential against a real PostgreSQL server: the target's admin
 * password changed by the broker (SCRAM verifier at the server), proven by a new login, saved over
 * the configured file only then; the old password stops working; the rotation is audited and
 * `rotation status` shows its age. A target whose admin URL comes from the environment is refused
 * with the fix.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { newCustodianIdentity, parseEnvelope, sealEnvelope } from "../src/vault/envelope.js";
import { nextRecord } from "../src/vault/opening-record.js";
import { requireBuild, runCli } from "./support/broker-process.js";
import { type PostgresTarget, startPostgresTarget, TARGET_ENV, tryLogin } from "./support/postgres-target.js";

let target: PostgresTarget;
let dir: string;
let oldUrl: string;

beforeAll(async () => {
  target = await startPostgresTarget();
  await target.sql("CREATE ROLE bg_admin LOGIN CREATEROLE PASSWORD 'first-admin-password'");
  const u = new URL(target.adminUrl);
  u.username = "bg_admin";
  u.password = "first-admin-password";
  oldUrl = u.href;
  dir = mkdtempSync(join(tmpdir(), "bg-rotation-"));
  writeFileSync(join(dir, "pg-admin.url"), `${oldUrl}\n`, { mode: 0o600 });
  const [a, b] = await Promise.all([newCustodianIdentity(), newCustodianIdentity()]);
  const sealed = await sealEnvelope({
    name: "db-root",
    secret: Buffer.from("s"),
    custodians: [
      { name: "a", recipient: a.recipient },
      { name: "b", recipient: b.recipient },
    ],
    threshold: 2,
    alarms: [],
    now: Date.now(),
    rotationDays: 30,
  });
  writeFileSync(join(dir, "db-root.envelope"), JSON.stringify(sealed));
  writeFileSync(
    join(dir, "breakglass.yaml"),
    `version: 1
storage: { driver: sqlite, path: ./breakglass.db }
audit: { signing_key_file: ./audit-signing.pem, generate_key_if_missing: true }
secrets: { key_file: ./secrets.key, generate_key_if_missing: true }
users: { alice: {}, bob: {} }
groups: { oncall: [alice], leads: [bob] }
domains:
  production:
    roles:
      db: { target: pg, grants: { roles: [recovery_rw] }, max_duration: 1h, approval: "1 of leads", requesters: [oncall] }
vault: { envelopes: [./db-root.envelope] }
targets:
  pg: { connector: postgres, settings: { admin_url: { file: ./pg-admin.url } } }
  pg-env: { connector: postgres, settings: { admin_url: { env: ${TARGET_ENV} } } }
`,
  );
}, 120_000);

afterAll(async () => {
  await target?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("rotation", () => {
  it("rotates a postgres admin password, proven by a new login before the file is replaced", async () => {
    requireBuild();
    const env = { [TARGET_ENV]: target.adminUrl };
    const before = await runCli(["rotation", "status", "--config", join(dir, "breakglass.yaml")], env);
    expect(before.code).toBe(1);
    expect(before.stdout).toContain("OVERDUE  target pg: admin password: never rotated by Breakglass");

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
