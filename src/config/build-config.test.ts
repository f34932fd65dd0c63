import { describe, expect, test } from "vitest";
import { z } from "zod";
import { describeRule, ruleSatisfied } from "../core/approval-policy.js";
import type { AppConfig } from "./app-config.js";
import { deepFreeze } from "./build-config.js";
import { checkConfigText } from "./load-config.js";

const scriptSettings = z.strictObject({
  grant: z.array(z.string()).min(1),
  revoke: z.array(z.string()).min(1),
  timeout: z.string().default("30s"),
});

/** Every key the format has, set to something other than its default. */
// yaml-under-test: the whole format as a file writes it, read by the real loader into AppConfig
const FULL = `version: 1
server: { host: 0.0.0.0, port: 9090, public_url: "https://breakglass.example.com/", limits: { per_caller: { concurrent: 4, per_second: 10, burst: 20 } } }
storage: { driver: sqlite, path: ../var/bg.db }
audit:
  signing_key_file: keys/audit.pem
  generate_key_if_missing: true
  checkpoint_interval: 90s
  checkpoint_every_events: 50
workers: { expiry_poll: 1500ms, expiry_batch_size: 20, revoke_concurrency: 2 }
defaults:
  justification_min_length: 15
  incident_pattern: "SEV[0-9]-[0-9]+"
  approval_timeout: 2h
  activation_timeout: 10m
  review_deadline: 3d
  ending_warning: 15m
  alarm_severity: info
admin_groups: [security]
users:
  alice: { name: "Alice Adams", email: alice@example.com, manager_group: sre-leads }
  bob: { name: "Bob Brown" }
  carol: {}
groups:
  oncall: [alice]
  sre-leads: [bob, carol]
  security: [carol]
  dba: [bob]
domains:
  production:
    description: "Customer-facing databases and services"
    roles:
      db-admin:
        description: "Recovery DBA on the main database"
        target: pg-main
        grants: { roles: [recovery_rw] }
        default_duration: 30m
        max_duration: 1h30m
        approval: "1 of security and 1 of dba or 2 of sre-leads"
        requesters: [oncall]
        emergency: true
        review_deadline: 12h
        justification_min_length: 20
        incident_pattern: "INC-[0-9]+"
        approval_timeout: 45m
        activation_timeout: 5m
        ending_warning: "off"
        alarm_severity: critical
        auto_activate: false
      read-replica:
        target: pg-main
        max_duration: 2d
        approval: "1 of sre-leads"
        requesters: [oncall]
  network:
    roles:
      firewall:
        target: edge
        max_duration: 1h
        approval: "1 of security"
        requesters: [oncall]
        emergency: true
targets:
  pg-main:
    connector: script
    settings: { grant: [./grant.sh], revoke: [./revoke.sh] }
  edge:
    connector: script
    settings: { grant: [./fw, open], revoke: [./fw, close], timeout: 5s }
`;

function load(text = FULL): AppConfig {
  const { config, issues } = checkConfigText(text, {
    source: "/srv/breakglass/conf/breakglass.yaml",
    env: {},
    readSecretFile: () => "",
    connectorSchemas: { script: scriptSettings },
    resolveSecrets: true,
  });
  expect(issues).toEqual([]);
  if (!config) throw new Error("no config");
  return config;
}

describe("building the configuration", () => {
  test("turns a full file into the runtime configuration", () => {
    const config = load();
    expect(config.source).toBe("/srv/breakglass/conf/breakglass.yaml");
    expect(config.server).toEqual({
      host: "0.0.0.0",
      port: 9090,
      publicUrl: "https://breakglass.example.com",
      // A limit named in part keeps the defaults of the rest.
      limits: {
        perCaller: { concurrent: 4, perSecond: 10, burst: 20 },
        perAddress: { concurrent: 64, perSecond: 200, burst: 400 },
      },
    });
    expect(config.storage).toEqual({ driver: "sqlite", path: "/srv/breakglass/var/bg.db" });
    expect(config.audit).toEqual({
      signingKeyFile: "/srv/breakglass/conf/keys/audit.pem",
      generateKeyIfMissing: true,
      checkpointIntervalMs: 90_000,
      checkpointEveryEvents: 50,
    });
    expect(config.workers).toEqual({
      expiryPollMs: 1500,
      expiryBatchSize: 20,
      revokeConcurrency: 2,
      reconcileIntervalMs: 300_000,
      reconcileLookbackMs: 86_400_000,
    });
  });

  test("builds the policy: users, groups as sets, domains and targets", () => {
    const { policy } = load();
    expect([...policy.users.values()]).toEqual([
      { name: "alice", displayName: "Alice Adams", email: "alice@example.com", managerGroup: "sre-leads" },
      { name: "bob", displayName: "Bob Brown", email: null, managerGroup: null },
      { name: "carol", displayName: "carol", email: null, managerGroup: null },
    ]);
    expect(policy.groups.get("sre-leads")).toBeInstanceOf(Set);
    expect([...(policy.groups.get("sre-leads") ?? [])]).toEqual(["bob", "carol"]);
    expect(policy.adminGroups).toEqual(["security"]);
    expect([...policy.domains.values()]).toEqual([
      { name: "production", description: "Customer-facing databases and services" },
      { name: "network", description: "" },
    ]);
    expect(policy.targets.get("edge")).toEqual({
      name: "edge",
      connector: "script",
      settings: { grant: ["./fw", "open"], revoke: ["./fw", "close"], timeout: "5s" },
    });
    // Settings come back as the connector's schema parsed them, defaults included.
    expect(policy.targets.get("pg-main")?.settings.timeout).toBe("30s");
  });

  test("keys roles by domain/role and converts every duration to seconds", () => {
    const { policy } = load();
    expect([...policy.roles.keys()]).toEqual(["production/db-admin", "production/read-replica", "network/firewall"]);
    expect(policy.roles.get("production/db-admin")).toEqual({
      id: "production/db-admin",
      domain: "production",
      name: "db-admin",
      description: "Recovery DBA on the main database",
      target: "pg-main",
      grants: { roles: ["recovery_rw"] },
      defaultDurationS: 1800,
      maxDurationS: 5400,
      approval: {
        anyOf: [
          [
            { group: "security", count: 1 },
            { group: "dba", count: 1 },
          ],
          [{ group: "sre-leads", count: 2 }],
        ],
      },
      requesters: ["oncall"],
      emergencyAllowed: true,
      reviewDeadlineS: 12 * 3600,
      emergencyReviewDeadlineS: 12 * 3600,
      emergencyReviewers: ["security"],
      endingWarningS: 0,
      alarmSeverity: "critical",
      guard: null,
      gatewayOnly: false,
      redactParameters: false,
      recordTerminalInput: false,
      justificationMinLength: 20,
      incidentPattern: "INC-[0-9]+",
      approvalTimeoutS: 45 * 60,
      activationTimeoutS: 5 * 60,
      autoActivate: false,
      stepUpS: null,
      fallbackAllowed: false,
    });
  });

  test("fills a role's unset keys from the defaults", () => {
    const role = load().policy.roles.get("production/read-replica");
    expect(role).toMatchObject({ endingWarningS: 15 * 60, alarmSeverity: "info" });
    expect(load().alarms.routing.roleSeverity?.get("production/db-admin")).toBe("critical");
    expect(role).toMatchObject({
      description: "",
      grants: {},
      defaultDurationS: 2 * 86400, // default_duration defaults to max_duration
      maxDurationS: 2 * 86400,
      emergencyAllowed: false,
      reviewDeadlineS: 3 * 86400,
      emergencyReviewDeadlineS: 86400,
      emergencyReviewers: ["security"],
      justificationMinLength: 15,
      incidentPattern: "SEV[0-9]-[0-9]+",
      approvalTimeoutS: 2 * 3600,
      activationTimeoutS: 10 * 60,
      autoActivate: true,
      stepUpS: null,
      fallbackAllowed: false,
    });
  });

  test("gives emergency activations a 24h review deadline unless the role asks for less", () => {
    const firewall = load().policy.roles.get("network/firewall");
    expect(firewall?.reviewDeadlineS).toBe(3 * 86400);
    expect(firewall?.emergencyReviewDeadlineS).toBe(24 * 3600);
    const tighter = load(FULL.replace("review_deadline: 3d", "review_deadline: 8h"));
    expect(tighter.policy.roles.get("network/firewall")?.emergencyReviewDeadlineS).toBe(8 * 3600);
  });

  test("applies the documented defaults to a minimal file", () => {
    const config = load("version: 1\n");
    expect(config.server).toEqual({
      host: "127.0.0.1",
      port: 8080,
      publicUrl: "http://127.0.0.1:8080",
      limits: {
        perCaller: { concurrent: 8, perSecond: 50, burst: 100 },
        perAddress: { concurrent: 64, perSecond: 200, burst: 400 },
      },
    });
    expect(config.storage).toEqual({ driver: "sqlite", path: "/srv/breakglass/conf/breakglass.db" });
    expect(config.audit).toEqual({
      signingKeyFile: "/srv/breakglass/conf/audit-signing.pem",
      generateKeyIfMissing: false,
      checkpointIntervalMs: 300_000,
      checkpointEveryEvents: 1000,
    });
    expect(config.workers).toEqual({
      expiryPollMs: 250,
      expiryBatchSize: 500,
      revokeConcurrency: 8,
      reconcileIntervalMs: 300_000,
      reconcileLookbackMs: 86_400_000,
    });
    expect(config.secrets).toEqual({ keyFile: null, generateKeyIfMissing: false });
    expect(config.policy.roles.size).toBe(0);
  });

  test("produces approval rules core evaluates as written", () => {
    const { policy } = load();
    const rule = policy.roles.get("production/db-admin")?.approval;
    if (!rule) throw new Error("no rule");
    expect(describeRule(rule)).toBe("1 of security and 1 of dba or 2 of sre-leads");
    const membership = (u: string) =>
      new Set([...policy.groups].filter(([, members]) => members.has(u)).map(([group]) => group));
    expect(ruleSatisfied(rule, ["carol", "bob"], membership)).toBe(true);
    expect(ruleSatisfied(rule, ["carol"], membership)).toBe(false);
  });

  test("freezes the whole configuration, maps and sets included", () => {
    const config = load();
    const role = config.policy.roles.get("production/db-admin");
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config.policy)).toBe(true);
    expect(Object.isFrozen(config.server)).toBe(true);
    expect(Object.isFrozen(role)).toBe(true);
    expect(Object.isFrozen(role?.grants)).toBe(true);
    expect(Object.isFrozen(role?.grants.roles)).toBe(true);
    expect(Object.isFrozen(role?.approval.anyOf[0])).toBe(true);
    expect(Object.isFrozen(config.policy.targets.get("edge")?.settings.grant)).toBe(true);
    const roles = config.policy.roles as Map<string, unknown>;
    expect(() => roles.set("x/y", {})).toThrow(TypeError);
    expect(() => roles.delete("production/db-admin")).toThrow(TypeError);
    expect(() => roles.clear()).toThrow(TypeError);
    expect(() => (config.policy.groups.get("oncall") as Set<string>).add("mallory")).toThrow(TypeError);
    expect(() => {
      (config.server as { port: number }).port = 1;
    }).toThrow(TypeError);
    expect(config.policy.roles.size).toBe(3);
  });

  test("deepFreeze handles shared and cyclic objects", () => {
    const shared = { a: [1] };
    const cyclic: Record<string, unknown> = { shared, again: shared };
    cyclic.self = cyclic;
    deepFreeze(cyclic);
    expect(Object.isFrozen(cyclic)).toBe(true);
    expect(Object.isFrozen(shared.a)).toBe(true);
  });
});
