/**
 * `rotationStatus`: every break-glass credential the configuration has, with its age against the
 * maximum — from a real configuration file, the broker's state in a real store, and files' times.
 */
import { mkdtempSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ConfigOverride, loadTestConfig, mergeConfig, writeTestConfig } from "../../test/support/test-broker.js";
import { openUnitStore, type UnitStore } from "../../test/support/unit-store.js";
import type { AppConfig } from "../config/app-config.js";
import { rotationStateKey, rotationStatus } from "./rotation.js";

const DAY = 86_400_000;
const NOW = Date.UTC(2026, 5, 1, 12, 0, 0);
let dir: string;
let u: UnitStore;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "bg-rotation-status-"));
  u = await openUnitStore({ now: NOW });
  writeFileSync(join(dir, "pg.url"), "postgres://admin:pw@127.0.0.1:5432/postgres\n");
  writeFileSync(join(dir, "secrets.key"), "");
  writeFileSync(join(dir, "audit-signing.pem"), "");
});
afterAll(async () => {
  await u.close();
  rmSync(dir, { recursive: true, force: true });
});

/** The configuration: postgres targets (which need the data key) unless `execOnly`. */
const load = (opts: { execOnly?: boolean } = {}): AppConfig => {
  const postgres: ConfigOverride = {
    secrets: { key_file: "./secrets.key" },
    targets: {
      pg: { connector: "postgres", settings: { admin_url: { file: "./pg.url" } } },
      "pg-auto": { connector: "postgres", settings: { admin_url: { file: "./pg.url" } } },
    },
  };
  const written = writeTestConfig({
    base: "minimal",
    dir,
    config: mergeConfig(
      {
        audit: { generate_key_if_missing: undefined },
        users: { alice: { name: "Alice" } },
        groups: { leads: ["alice"] },
        targets: { box: { connector: "exec", settings: { grant: ["/bin/true"], revoke: ["/bin/true"] } } },
        rotation: { max_age: "30d", auto: opts.execOnly ? [] : ["pg-auto"] },
      },
      opts.execOnly ? {} : postgres,
    ),
  });
  return loadTestConfig(written, { resolveSecrets: false });
};
const age = (file: string, days: number) => {
  const at = new Date(NOW - days * DAY);
  utimesSync(join(dir, file), at, at);
};

describe("rotation status", () => {
  it("lists each postgres admin password: never rotated by Breakglass is overdue, with how to fix it", async () => {
    const rows = await rotationStatus(load(), u.store, NOW);
    expect(rows.find((r) => r.key === "target:pg")).toEqual({
      key: "target:pg",
      credential: "target pg: admin password",
      rotatedAt: null,
      ageDays: null,
      dueAt: null,
      overdue: true,
      how: "breakglass rotation rotate-target pg (or list it under rotation.auto)",
    });
    expect(rows.find((r) => r.key === "target:pg-auto")?.how).toMatch(
      /^rotated by the broker when due \(rotation\.auto\)/,
    );
    // Only credentials the configuration has: the exec target has none.
    expect(rows.map((r) => r.key).filter((k) => k.includes("box"))).toEqual([]);
  });

  it("is due max_age after the last rotation, overdue only once past it", async () => {
    const config = load();
    const rotatedAt = NOW - 30 * DAY;
    await u.store.transaction((tx) =>
      tx.swapState(rotationStateKey("target:pg"), new Date(rotatedAt).toISOString(), rotatedAt),
    );
    const at = async (now: number) => (await rotationStatus(config, u.store, now)).find((r) => r.key === "target:pg");
    expect(await at(NOW)).toMatchObject({ rotatedAt, ageDays: 30, dueAt: NOW, overdue: false });
    expect(await at(NOW + 1)).toMatchObject({ ageDays: 30, overdue: true });
    expect(await at(NOW - 1)).toMatchObject({ ageDays: 29, overdue: false });
    const stricter = (await rotationStatus(config, u.store, NOW, 7 * DAY)).find((r) => r.key === "target:pg");
    expect(stricter).toMatchObject({ dueAt: rotatedAt + 7 * DAY, overdue: true });
  });

  it("ages the audit signing key and the data key by their files, and lists the data key only when there is one", async () => {
    age("audit-signing.pem", 31);
    age("secrets.key", 2);
    const without = await rotationStatus(load({ execOnly: true }), u.store, NOW);
    expect(without.map((r) => r.key)).toEqual(["signing-key"]);
    expect(without.find((r) => r.key === "signing-key")).toMatchObject({ ageDays: 31, overdue: true });
    const withKey = await rotationStatus(load(), u.store, NOW);
    expect(withKey.find((r) => r.key === "data-key")).toMatchObject({ ageDays: 2, overdue: false });
  });
});
