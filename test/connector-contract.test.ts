/**
 * The connector contract: every connector must pass this suite, looped over CONNECTORS (STYLE:
 * one suite, every adapter), each against its real target. The promises the broker relies on:
 * `plan` is pure and names one principal per grant; `grant` gives access that works and twice
 * makes one principal; `revoke` ends that access, and of something gone succeeds; `verify` tells
 * the truth before and after; two grants of the same role are independent.
 */
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createExecConnector, execSettingsSchema } from "../src/connectors/exec-connector.js";
import type { ConnectorGrantFacts } from "../src/core/ports/connector.js";
import { awsConnectorCase } from "./support/aws-case.js";
import { type ConnectorCase, type ConnectorEnv, contractRole } from "./support/connector-case.js";
import { postgresConnectorCase } from "./support/postgres-case.js";
import { sshConnectorCase } from "./support/ssh-case.js";

const execCase: ConnectorCase = {
  name: "exec (files as principals)",
  async setUp() {
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
      role: contractRole("t", {}),
      target: { name: "t", connector: "exec", settings: {} },
      principals: async () => (existsSync(join(dir, "p")) ? readdirSync(join(dir, "p")).length : 0),
      canUse: async (facts) => existsSync(join(dir, "p", `bg_${facts.grantId}`)),
      tearDown: async () => rmSync(dir, { recursive: true, force: true }),
    };
  },
};

const CONNECTORS: ConnectorCase[] = [execCase, postgresConnectorCase, sshConnectorCase, awsConnectorCase];

for (const c of CONNECTORS) {
  describe(`connector contract: ${c.name}`, () => {
    let env: ConnectorEnv;
    beforeAll(async () => c.start?.());
    afterAll(async () => c.stop?.());
    beforeEach(async () => {
      env = await c.setUp();
    });
    afterEach(async () => env.tearDown());

    const facts = (grantId: string, requester = "alice"): ConnectorGrantFacts => ({
      grantId,
      requester,
      role: env.role,
      target: env.target,
      incident: "INC-1",
      justification: "contract suite",
      endsAt: Date.now() + 30 * 60_000,
    });

    it("plans the same handle for the same grant and different handles for different grants", async () => {
      const f = facts("g_a");
      const a = env.connector.plan(f);
      expect(env.connector.plan(f)).toEqual(a);
      expect(env.connector.plan(facts("g_b"))).not.toEqual(a);
      expect(await env.principals()).toBe(0); // planning touches nothing
    });

    it("grants access that works, idempotently: twice makes one principal, and verify sees it", async () => {
      const f = facts("g_a");
      const h = env.connector.plan(f);
      await env.connector.grant(f, h);
      const again = await env.connector.grant(f, h);
      expect(await env.principals()).toBe(1);
      expect(await env.canUse(f, again)).toBe(true);
      expect((await env.connector.verify(f, { ...h, ...again.handle })).revoked).toBe(false);
    });

    it("revokes idempotently: access is gone, twice succeeds, and revoking an unknown grant is a no-op", async () => {
      const unknown = facts("g_never");
      await env.connector.revoke(unknown, env.connector.plan(unknown)); // never granted: succeeds, touches nothing
      const f = facts("g_a");
      const h = env.connector.plan(f);
      const granted = await env.connector.grant(f, h);
      const handle = { ...h, ...granted.handle };
      expect(await env.canUse(f, granted)).toBe(true);
      await env.connector.revoke(f, handle);
      await env.connector.revoke(f, handle);
      expect(await env.canUse(f, granted)).toBe(false);
      expect(await env.principals()).toBe(0);
      expect((await env.connector.verify(f, handle)).revoked).toBe(true);
    });

    it("keeps overlapping grants of the same role independent", async () => {
      const [a, b] = [facts("g_a", "alice"), facts("g_b", "dave")];
      const [ha, hb] = [env.connector.plan(a), env.connector.plan(b)];
      const ga = await env.connector.grant(a, ha);
      const gb = await env.connector.grant(b, hb);
      await env.connector.revoke(a, { ...ha, ...ga.handle });
      expect((await env.connector.verify(a, { ...ha, ...ga.handle })).revoked).toBe(true);
      expect((await env.connector.verify(b, { ...hb, ...gb.handle })).revoked).toBe(false);
      expect(await env.canUse(b, gb)).toBe(true);
      expect(await env.principals()).toBe(1);
    });
  });
}
