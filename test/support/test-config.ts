/**
 * A small real configuration for integration tests: written as YAML to a temp folder and loaded
 * through the real loader, with `exec` targets whose access is a file under `targets/`.
 * The `box` target's revoke fails while `<dir>/target-down` exists, to simulate an outage.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { parse, stringify } from "yaml";
import type { AppConfig } from "../../src/config/app-config.js";
import { loadConfigFile } from "../../src/config/load-config.js";
import { connectorConfigChecks } from "../../src/connectors/registry.js";
import type { Clock } from "../../src/core/ports/runtime.js";
import { type ConfigOverride, mergeConfig, STANDARD_CONFIG, storageSection, type TestStorage } from "./test-broker.js";

export type { TestStorage };

export interface TestConfigOptions {
  /** The `audit:` section's extra settings, e.g. `checkpoint_every_events: 5`. */
  readonly audit?: string;
}

/** The standard test world (test-broker.ts's STANDARD_CONFIG) as a YAML file's text. */
export function testConfigYaml(storage: TestStorage, opts: TestConfigOptions = {}): string {
  // The given audit settings replace the standard `checkpoint_every_events: 50`.
  const audit: ConfigOverride =
    opts.audit === undefined
      ? {}
      : { audit: { checkpoint_every_events: undefined, ...(parse(`{ ${opts.audit} }`) as ConfigOverride["audit"]) } };
  return stringify(mergeConfig(mergeConfig(STANDARD_CONFIG, storageSection(storage)), audit));
}

export function writeTestConfig(dir: string, storage: TestStorage): AppConfig {
  const file = join(dir, "breakglass.yaml");
  writeFileSync(file, testConfigYaml(storage));
  return loadConfigFile(file, {
    ...connectorConfigChecks,
    env: storage.driver === "postgres" ? { BG_TEST_DATABASE_URL: storage.url } : {},
  });
}

/** A clock the test moves by hand. */
export interface ManualClock extends Clock {
  set(ms: number): void;
  advance(ms: number): void;
}

export function manualClock(start = Date.UTC(2026, 10, 22, 3, 0, 0)): ManualClock {
  let t = start;
  return {
    now: () => t,
    set: (ms) => {
      t = ms;
    },
    advance: (ms) => {
      t += ms;
    },
  };
}

/**
 * The lines every throwaway broker configuration starts with: any free port, SQLite in the test's folder, a
 * generated audit signing key and data key, and alarms recorded to a file (security channel).
 * A test writes the rest (people, roles, targets) after it.
 */
export const SQLITE_BROKER_HEADER = `version: 1
server: { host: 127.0.0.1, port: 0 }
storage: { driver: sqlite, path: ./breakglass.db }
audit: { signing_key_file: ./audit-signing.pem, generate_key_if_missing: true }
secrets: { key_file: ./secrets.key, generate_key_if_missing: true }
alarms: { channels: { record: { type: file, path: ./alarms.jsonl } }, security_channels: [record], routes: [] }
`;
