import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, describe, expect, test } from "vitest";
import { z } from "zod";
import { isDuration } from "../core/duration.js";
import type { AppConfig } from "./app-config.js";
import { checkConfigText, formatIssues } from "./load-config.js";

/** The exec connector's settings, as documented (the real schema lives in src/connectors/exec-connector.ts). */
const Argv = z.array(z.string().min(1)).min(1);
const execSettings = z.strictObject({
  grant: Argv,
  revoke: Argv,
  verify: Argv.optional(),
  timeout: z.string().refine(isDuration, "not a duration").default("30s"),
  env: z.record(z.string(), z.string()).default({}),
});

const DEMO = resolve(import.meta.dirname, "../../examples/demo/breakglass.yaml");

function loadDemo(): AppConfig {
  const { config, issues } = checkConfigText(readFileSync(DEMO, "utf8"), {
    source: DEMO,
    env: {},
    readSecretFile: () => "",
    connectorSchemas: { exec: execSettings },
    resolveSecrets: true,
  });
  expect(formatIssues(issues, "breakglass.yaml")).toBe("");
  if (!config) throw new Error("the demo configuration did not load");
  return config;
}

describe("the demo configuration", () => {
  test("loads without issues", () => {
    const config = loadDemo();
    expect(config.storage).toEqual({ driver: "sqlite", path: resolve(DEMO, "../breakglass.db") });
    expect(config.audit.generateKeyIfMissing).toBe(true);
    expect(config.audit.signingKeyFile).toBe(resolve(DEMO, "../audit-signing.pem"));
  });

  test("covers five domains, emergency roles and a two-team rule", () => {
    const { policy } = loadDemo();
    expect([...policy.domains.keys()]).toEqual(["production", "security", "network", "observability", "backup"]);
    expect(policy.roles.size).toBeGreaterThanOrEqual(5);
    expect(policy.roles.size).toBeLessThanOrEqual(7);
    expect([...policy.users.keys()]).toEqual(["alice", "bob", "carol"]);
    expect(policy.adminGroups).toEqual(["security"]);
    const roles = [...policy.roles.values()];
    expect(roles.some((r) => r.emergencyAllowed)).toBe(true);
    expect(roles.some((r) => r.approval.anyOf.some((clause) => clause.length > 1))).toBe(true);
    for (const domain of policy.domains.keys()) expect(roles.some((r) => r.domain === domain)).toBe(true);
    for (const role of roles) expect(policy.targets.get(role.target)?.connector).toBe("exec");
  });

  describe("exec target commands", () => {
    const work = mkdtempSync(join(tmpdir(), "bg-demo-"));
    afterAll(() => rmSync(work, { recursive: true, force: true }));

    const env = {
      PATH: process.env.PATH ?? "/usr/bin:/bin",
      BREAKGLASS_GRANT_ID: "g_01",
      BREAKGLASS_USER: "alice",
      BREAKGLASS_ROLE: "production/db-admin",
      BREAKGLASS_DOMAIN: "production",
      BREAKGLASS_TARGET: "pg-main",
      BREAKGLASS_INCIDENT: "INC-42",
      BREAKGLASS_ENDS_AT: "2030-01-01T00:30:00.000Z",
      BREAKGLASS_ENDS_AT_EPOCH: "1893457800",
      BREAKGLASS_PRINCIPAL: "bg_g_abc123",
      BREAKGLASS_GRANTS_JSON: '{"roles":["recovery_rw"]}',
    };
    const run = (argv: readonly string[] | undefined) => {
      if (!argv?.[0]) throw new Error("no command");
      return spawnSync(argv[0], argv.slice(1), { cwd: work, env, encoding: "utf8" });
    };
    const accessFile = join(work, "targets/pg-main/bg_g_abc123.access");

    test("grant writes an access file carrying user, role and expiry; revoke removes it; verify sees it gone", () => {
      const settings = loadDemo().policy.targets.get("pg-main")?.settings as z.output<typeof execSettings>;

      expect(run(settings.grant).status).toBe(0);
      expect(run(settings.grant).status).toBe(0); // idempotent
      const content = readFileSync(accessFile, "utf8");
      expect(content).toContain("user=alice\n");
      expect(content).toContain("role=production/db-admin\n");
      expect(content).toContain("ends_at=2030-01-01T00:30:00.000Z\n");
      expect(content).toContain('grants={"roles":["recovery_rw"]}\n');
      expect(run(settings.verify).status).not.toBe(0);

      expect(run(settings.revoke).status).toBe(0);
      expect(existsSync(accessFile)).toBe(false);
      expect(run(settings.revoke).status).toBe(0); // idempotent
      expect(run(settings.verify).status).toBe(0);
    });
  });
});
