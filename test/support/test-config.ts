/**
 * A small real configuration for integration tests: written as YAML to a temp folder and loaded
 * through the real loader, with `exec` targets whose access is a file under `targets/`.
 * The `box` target's revoke fails while `<dir>/target-down` exists, to simulate an outage.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { AppConfig } from "../../src/config/app-config.js";
import { loadConfigFile } from "../../src/config/load-config.js";
import { connectorConfigChecks } from "../../src/connectors/registry.js";
import type { Clock } from "../../src/core/ports.js";

export type TestStorage = { driver: "sqlite" } | { driver: "postgres"; url: string };

export interface TestConfigOptions {
  /** The `audit:` section's extra settings, e.g. `checkpoint_every_events: 5`. */
  readonly audit?: string;
}

export function testConfigYaml(storage: TestStorage, opts: TestConfigOptions = {}): string {
  const storageYaml =
    storage.driver === "sqlite"
      ? "storage: { driver: sqlite, path: ./breakglass.db }"
      : "storage: { driver: postgres, url_env: BG_TEST_DATABASE_URL, pool_size: 4 }";
  return `version: 1
server: { host: 127.0.0.1, port: 0 }
${storageYaml}
audit: { signing_key_file: ./audit-signing.pem, generate_key_if_missing: true, ${opts.audit ?? "checkpoint_every_events: 50"} }
workers: { expiry_poll: 100ms }
admin_groups: [security]
users:
  alice: { name: Alice Adams, email: alice@example.com }
  dave: { name: Dave }
  bob: { name: Bob }
  carol: { name: Carol }
  erin: { name: Erin }
groups:
  oncall: [alice, dave]
  leads: [bob, carol]
  security: [erin]
domains:
  production:
    description: Production databases
    roles:
      db-admin:
        description: Recovery DBA
        target: box
        grants: { roles: [recovery_rw] }
        default_duration: 30m
        max_duration: 2h
        approval: "2 of leads"
        requesters: [oncall]
        emergency: true
        incident_pattern: "INC-[0-9]+"
        approval_timeout: 1h
        activation_timeout: 15m
      db-reader:
        description: Read-only
        target: box
        max_duration: 1h
        approval: "1 of leads"
        requesters: [oncall]
targets:
  box:
    connector: exec
    settings:
      grant: ["sh", "-c", 'mkdir -p targets && echo "$BREAKGLASS_USER until $BREAKGLASS_ENDS_AT" > "targets/$BREAKGLASS_PRINCIPAL"']
      revoke: ["sh", "-c", 'if [ -e target-down ]; then echo "target unreachable" >&2; exit 7; fi; rm -f "targets/$BREAKGLASS_PRINCIPAL"']
      verify: ["sh", "-c", 'test ! -e "targets/$BREAKGLASS_PRINCIPAL"']
      timeout: 10s
`;
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
