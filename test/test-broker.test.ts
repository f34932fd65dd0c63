/**
 * The test fixture itself: the configuration a test writes is typed from the schema (a wrong key
 * does not compile), merged over the base, and loaded through the real loader.
 */
import { readFileSync, rmSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { ctx } from "./support/ctx.js";
import {
  loadTestConfig,
  mergeConfig,
  STANDARD_CONFIG,
  startTestBroker,
  writeTestConfig,
} from "./support/test-broker.js";

describe("startTestBroker", () => {
  it("does not compile with a key the configuration does not have", () => {
    const wrong = () =>
      startTestBroker({
        // @ts-expect-error: `sever` is not a section of the configuration
        config: { sever: { port: 0 } },
      });
    const wrongRole = () =>
      startTestBroker({
        config: {
          // @ts-expect-error: a role has `max_duration`, not `max_time`
          domains: { production: { roles: { "db-admin": { max_time: "1h" } } } },
        },
      });
    expect([typeof wrong, typeof wrongRole]).toEqual(["function", "function"]);
  });

  it("merges objects key by key, replaces arrays and scalars, and removes what is set undefined", () => {
    const merged = mergeConfig(STANDARD_CONFIG, {
      groups: { leads: ["bob"] },
      domains: { production: { roles: { "db-reader": undefined, "db-admin": { max_duration: "4h" } } } },
    });
    expect(merged.groups).toEqual({ oncall: ["alice", "dave"], leads: ["bob"], security: ["erin"] });
    expect(Object.keys(merged.domains?.production?.roles ?? {})).toEqual(["db-admin"]);
    expect(merged.domains?.production?.roles?.["db-admin"]).toMatchObject({
      max_duration: "4h",
      approval: "2 of leads",
    });
  });

  it("starts a broker from the merged configuration through the real loader", async () => {
    const t = await startTestBroker({
      config: { domains: { production: { roles: { "db-admin": { approval: "1 of leads" } } } } },
    });
    try {
      const g = await t.broker.service.request(ctx("alice"), {
        roleId: "production/db-admin",
        justification: "replica lag, resync needed",
        incident: "INC-1",
        durationS: 600,
      });
      // One approval is enough now (the standard world says two).
      expect((await t.broker.service.approve(ctx("bob"), g.id, null)).state).not.toBe("requested");
    } finally {
      await t.stop();
    }
  });

  it("writes the same typed configuration for a broker process or the CLI, with the environment it names", () => {
    const wrong = () =>
      writeTestConfig({
        // @ts-expect-error: `workers.expiry_pol` is not a setting
        config: { workers: { expiry_pol: "1s" } },
      });
    expect(typeof wrong).toBe("function");
    const written = writeTestConfig({
      base: "minimal",
      file: "replica-a.yaml",
      storage: { driver: "postgres", url: "postgres://app@127.0.0.1:1/bg" },
      config: { workers: { expiry_poll: "250ms" } },
    });
    try {
      expect(written.file).toBe(`${written.dir}/replica-a.yaml`);
      expect(written.env).toEqual({ BG_TEST_DATABASE_URL: "postgres://app@127.0.0.1:1/bg" });
      // The URL is never in the file: it comes from the environment, as in production.
      expect(readFileSync(written.file, "utf8")).not.toContain("127.0.0.1:1");
      const config = loadTestConfig(written);
      expect(config.storage).toMatchObject({ driver: "postgres" });
      expect(config.workers.expiryPollMs).toBe(250);
    } finally {
      rmSync(written.dir, { recursive: true, force: true });
    }
  });
});
