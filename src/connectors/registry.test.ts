import { describe, expect, it } from "vitest";
import { connectorSettingsSchemas } from "./registry.js";

/** One sample of each connector's settings that is valid but for the duration under test. */
const VALID: Record<string, Record<string, unknown>> = {
  exec: { grant: ["true"], revoke: ["true"] },
  postgres: { admin_url: { env: "PG_ADMIN" } },
  ssh: { ca_private_key: { env: "SSH_CA" }, krl_file: "revoked.krl" },
  aws: {},
};

describe("connector settings' durations", () => {
  for (const [connector, schema] of Object.entries(connectorSettingsSchemas)) {
    it(`${connector}: a bare number for \`timeout\` is refused naming the missing unit, never taken as seconds`, () => {
      for (const bare of [30, "30"]) {
        const parsed = schema.safeParse({ ...VALID[connector], timeout: bare });
        expect(parsed.success, `${connector} took timeout ${JSON.stringify(bare)}`).toBe(false);
        const messages = parsed.success ? [] : parsed.error.issues.map((i) => i.message);
        expect(messages).toContain(`"30" has no unit: write 30s, 30m, 30h or 30d`);
      }
      expect(schema.safeParse({ ...VALID[connector], timeout: "30s" }).error?.issues ?? []).toEqual([]);
    });
  }
});

describe("durations that may be none", () => {
  it("ssh: clock_skew may be 0s (no backdating) but a timeout may not", () => {
    const ssh = connectorSettingsSchemas.ssh;
    if (!ssh) throw new Error("no ssh connector");
    expect(ssh.safeParse({ ...VALID.ssh, clock_skew: "0s" }).error?.issues ?? []).toEqual([]);
    expect(ssh.safeParse({ ...VALID.ssh, clock_skew: 0 }).success).toBe(false);
    const zeroTimeout = ssh.safeParse({ ...VALID.ssh, timeout: "0s" });
    expect(zeroTimeout.success).toBe(false);
  });
});
