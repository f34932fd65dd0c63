/**
 * The connector contract: every connector must pass this suite, looped over CONNECTORS (STYLE:
 * one suite, every adapter). The promises the broker relies on: `plan` is pure and names one
 * principal per grant; `grant` twice makes one principal; `revoke` of something gone succeeds;
 * `verify` tells the truth before and after; two grants of the same role are independent.
 * Real targets (PostgreSQL, SSH, AWS) join this list as their connectors land.
 */
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createExecConnector, execSettingsSchema } from "../src/connectors/exec-connector.js";
import type { RoleDef, TargetDef } from "../src/core/model.js";
import type { Connector, ConnectorGrantFacts } from "../src/core/ports.js";

interface ConnectorCase {
  readonly name: string;
  /** A connector against a fresh target, and a way to count the principals that exist there. */
  setUp(): { connector: Connector; principals(): number; tearDown(): void };
}

const CONNECTORS: ConnectorCase[] = [
  {
    name: "exec (files as principals)",
    setUp() {
      const dir = mkdtempSync(join(tmpdir(), "bg-contract-exec-"));
      const connector = createExecConnector(
        execSettingsSchema.parse({
          grant: ["sh", "-c", 'mkdir -p p && echo "$BREAKGLASS_USER" > "p/$BREAKGLASS_PRINCIPAL"'],
          revoke: ["sh", "-c", 'rm -f "p/$BREAKGLASS_PRINCIPAL"'],
          verify: ["sh", "-c", 'test ! -e "p/$BREAKGLASS_PRINCIPAL"'],
          timeout: "10s",
        }),
        { cwd: dir },
      );
      return {
        connector,
        principals: () => (existsSync(join(dir, "p")) ? readdirSync(join(dir, "p")).length : 0),
        tearDown: () => rmSync(dir, { recursive: true, force: true }),
      };
    },
  },
];

const role: RoleDef = {
  id: "production/db-admin",
  domain: "production",
  name: "db-admin",
  description: "",
  target: "t",
  grants: {},
  defaultDurationS: 1800,
  maxDurationS: 3600,
  approval: { anyOf: [[{ group: "leads", count: 2 }]] },
  requesters: ["oncall"],
  emergencyAllowed: false,
  reviewDeadlineS: 86_400,
  justificationMinLength: 10,
  incidentPattern: "INC-[0-9]+",
  approvalTimeoutS: 3600,
  activationTimeoutS: 900,
  autoActivate: true,
};
const target: TargetDef = { name: "t", connector: "exec", settings: {} };
const facts = (grantId: string, requester = "alice"): ConnectorGrantFacts => ({
  grantId,
  requester,
  role,
  target,
  incident: "INC-1",
  justification: "contract suite",
  endsAt: Date.UTC(2030, 0, 1),
});

for (const c of CONNECTORS) {
  describe(`connector contract: ${c.name}`, () => {
    let env: ReturnType<ConnectorCase["setUp"]>;
    beforeEach(() => {
      env = c.setUp();
    });
    afterEach(() => env.tearDown());

    it("plans the same handle for the same grant and different handles for different grants", () => {
      const a = env.connector.plan(facts("g_a"));
      expect(env.connector.plan(facts("g_a"))).toEqual(a);
      expect(env.connector.plan(facts("g_b"))).not.toEqual(a);
      expect(env.principals()).toBe(0); // planning touches nothing
    });

    it("grants idempotently: twice makes one principal, and verify sees it", async () => {
      const f = facts("g_a");
      const h = env.connector.plan(f);
      await env.connector.grant(f, h);
      await env.connector.grant(f, h);
      expect(env.principals()).toBe(1);
      expect((await env.connector.verify(f, h)).revoked).toBe(false);
    });

    it("revokes idempotently: twice succeeds, also for something never granted, and verify agrees", async () => {
      const f = facts("g_a");
      const h = env.connector.plan(f);
      await env.connector.revoke(f, h); // never granted
      await env.connector.grant(f, h);
      await env.connector.revoke(f, h);
      await env.connector.revoke(f, h);
      expect(env.principals()).toBe(0);
      expect((await env.connector.verify(f, h)).revoked).toBe(true);
    });

    it("keeps overlapping grants of the same role independent", async () => {
      const [a, b] = [facts("g_a", "alice"), facts("g_b", "dave")];
      const [ha, hb] = [env.connector.plan(a), env.connector.plan(b)];
      await env.connector.grant(a, ha);
      await env.connector.grant(b, hb);
      await env.connector.revoke(a, ha);
      expect((await env.connector.verify(a, ha)).revoked).toBe(true);
      expect((await env.connector.verify(b, hb)).revoked).toBe(false);
      expect(env.principals()).toBe(1);
    });
  });
}
