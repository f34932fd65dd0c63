import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, test } from "vitest";
import { z } from "zod";
import { ConfigError, type ConfigIssue } from "../core/errors.js";
import { checkConfigText, formatIssues, type LoadOptions, loadConfigFile } from "./load-config.js";

/** A stand-in connector for these tests; the real ones live in src/connectors. */
const fakeSettings = z.strictObject({
  command: z.string().min(1),
  timeout: z.string().default("30s"),
});

const SOURCE = "/etc/breakglass/breakglass.yaml";

function options(overrides: Partial<LoadOptions> = {}): LoadOptions {
  return {
    source: SOURCE,
    env: {},
    readSecretFile: () => {
      throw Object.assign(new Error("no such file"), { code: "ENOENT" });
    },
    connectorSchemas: { fake: fakeSettings },
    resolveSecrets: true,
    ...overrides,
  };
}

// yaml-under-test: the loader's own tests edit this text and check the line and column of each problem
const BASE = `version: 1
users:
  alice: { name: "Alice Adams", email: alice@example.com }
  bob: { name: Bob }
  carol: {}
groups:
  oncall: [alice]
  sre-leads: [bob, carol]
  security: [carol]
  dba: [bob]
admin_groups: [security]
domains:
  production:
    description: Customer-facing
    roles:
      db-admin:
        target: pg-main
        default_duration: 30m
        max_duration: 2h
        approval: "2 of sre-leads"
        requesters: [oncall]
targets:
  pg-main:
    connector: fake
    settings:
      command: grant.sh
`;

/** `BASE` with one piece of text replaced (the replacement must happen). */
function edit(from: string, to: string, text = BASE): string {
  if (!text.includes(from)) throw new Error(`test setup: ${JSON.stringify(from)} is not in the config`);
  return text.replace(from, to);
}

function check(text: string, overrides: Partial<LoadOptions> = {}) {
  return checkConfigText(text, options(overrides));
}

/** The one issue at `path`. */
function issueAt(issues: readonly ConfigIssue[], path: string): ConfigIssue {
  const found = issues.filter((i) => i.path === path);
  expect(found, `issues at ${path} among ${JSON.stringify(issues, null, 2)}`).toHaveLength(1);
  return found[0] as ConfigIssue;
}

/** 1-based line and column where `needle` first appears in `text`. */
function positionOf(text: string, needle: string): { line: number; column: number } {
  const index = text.indexOf(needle);
  if (index < 0) throw new Error(`test setup: ${JSON.stringify(needle)} is not in the config`);
  const before = text.slice(0, index).split("\n");
  return { line: before.length, column: (before.at(-1)?.length ?? 0) + 1 };
}

const ROLE = "domains.production.roles.db-admin";

describe("checkConfigText", () => {
  test("accepts the base configuration without issues", () => {
    const { config, issues } = check(BASE);
    expect(issues).toEqual([]);
    expect(config?.policy.roles.get("production/db-admin")?.maxDurationS).toBe(7200);
  });

  test("reports an unknown key with a did-you-mean hint and the missing key at its parent", () => {
    const text = edit("max_duration: 2h", "max_duraton: 2h");
    const { config, issues } = check(text);
    expect(config).toBeNull();

    const unknown = issueAt(issues, `${ROLE}.max_duraton`);
    expect(unknown.message).toContain("unknown key `max_duraton`");
    expect(unknown.hint).toBe("did you mean `max_duration`?");
    expect(unknown).toMatchObject(positionOf(text, "max_duraton"));

    const missing = issueAt(issues, `${ROLE}.max_duration`);
    expect(missing.message).toContain("`max_duration` is required");
    expect(missing.hint).toBe("add `max_duration: 2h`");
    expect(missing).toMatchObject(positionOf(text, "db-admin:"));
  });

  test("lists the allowed keys when an unknown key resembles none", () => {
    const text = edit("admin_groups:", "colour: blue\nadmin_groups:");
    const issue = issueAt(check(text).issues, "colour");
    expect(issue.message).toContain("unknown key `colour`");
    expect(issue.hint).toContain(
      "allowed keys here: version, server, storage, audit, secrets, alarms, workers, gateway, auth, defaults",
    );
    expect(issue.line).toBe(positionOf(text, "colour").line);
  });

  test("rejects a user named like the broker's own actors", () => {
    const text = edit("  bob: { name: Bob }", "  bob: { name: Bob }\n  system: { name: Sneaky }");
    const issue = issueAt(check(text).issues, "users.system");
    expect(issue.message).toContain("reserved");
    expect(issue.hint).toBe("give this person another name");
    expect(issue).toMatchObject(positionOf(text, "system:"));
  });

  test("rejects a malformed duration and says how to write one", () => {
    const text = edit("max_duration: 2h", "max_duration: 90x");
    const issue = issueAt(check(text).issues, `${ROLE}.max_duration`);
    expect(issue.message).toBe('"90x" is not a duration');
    expect(issue.hint).toContain("write it like 30m, 1h30m, 2d");
    expect(issue).toMatchObject(positionOf(text, "90x"));
  });

  test("rejects a zero duration", () => {
    const text = edit("default_duration: 30m", "default_duration: 0s");
    const issue = issueAt(check(text).issues, `${ROLE}.default_duration`);
    expect(issue.message).toContain("longer than 0s");
    expect(issue.hint).toContain("positive duration");
    expect(issue.line).toBe(positionOf(text, "0s").line);
  });

  test("rejects a duration written as a number", () => {
    const text = edit("max_duration: 2h", "max_duration: 120");
    const issue = issueAt(check(text).issues, `${ROLE}.max_duration`);
    expect(issue.message).toBe(`"120" has no unit: write 120s, 120m, 120h or 120d`);
    expect(issue.hint).toContain("write it like 30m");
    expect(issue.line).toBe(positionOf(text, "120").line);
  });

  test("rejects a worker timing longer than a timer can wait", () => {
    const text = `${BASE}workers: { expiry_poll: 30d }\n`;
    const issue = issueAt(check(text).issues, "workers.expiry_poll");
    expect(issue.message).toBe('"30d" is longer than a timer can wait (24d)');
    expect(issue).toMatchObject(positionOf(text, "30d"));
  });

  test("rejects a max_duration shorter than the default_duration", () => {
    const text = edit("max_duration: 2h", "max_duration: 20m");
    const issue = issueAt(check(text).issues, `${ROLE}.max_duration`);
    expect(issue.message).toBe("max_duration (20m) is shorter than default_duration (30m)");
    expect(issue.hint).toContain("raise max_duration to at least 30m");
    expect(issue.line).toBe(positionOf(text, "max_duration: 20m").line);
  });

  test("rejects a role naming a target that does not exist and lists the defined ones", () => {
    const text = edit("target: pg-main", "target: pg-replica");
    const issue = issueAt(check(text).issues, `${ROLE}.target`);
    expect(issue.message).toContain("target `pg-replica` is not defined under `targets`");
    expect(issue.hint).toContain("defined targets: pg-main");
    expect(issue).toMatchObject(positionOf(text, "pg-replica"));
  });

  test("suggests the nearest target for a misspelt one", () => {
    const issue = issueAt(check(edit("target: pg-main", "target: pg-mian")).issues, `${ROLE}.target`);
    expect(issue.hint).toBe("did you mean `pg-main`?");
  });

  test("rejects an approval rule that does not parse", () => {
    const text = edit('"2 of sre-leads"', '"two of sre-leads"');
    const issue = issueAt(check(text).issues, `${ROLE}.approval`);
    expect(issue.message).toContain('invalid approval rule: "two of sre-leads" is not a term');
    expect(issue.hint).toContain('"1 of security and 1 of dba or 2 of sre-leads"');
    expect(issue.line).toBe(positionOf(text, "two of").line);
  });

  test("rejects an approval rule naming an unknown group", () => {
    const text = edit('"2 of sre-leads"', '"2 of sre-lead"');
    const issue = issueAt(check(text).issues, `${ROLE}.approval`);
    expect(issue.message).toContain("approval rule names group `sre-lead`, which is not defined under `groups`");
    expect(issue.hint).toBe("did you mean `sre-leads`?");
    expect(issue.line).toBe(positionOf(text, "approval:").line);
  });

  test("rejects an approval rule no configured users could satisfy", () => {
    const text = edit('"2 of sre-leads"', '"3 of sre-leads"');
    const issue = issueAt(check(text).issues, `${ROLE}.approval`);
    expect(issue.message).toContain('approval rule "3 of sre-leads" can never be satisfied');
    expect(issue.message).toContain("sre-leads, which has 2 members (bob, carol)");
    expect(issue.hint).toContain("add members to the groups it names");
    expect(issue.line).toBe(positionOf(text, "approval:").line);
  });

  test("rejects an and-rule that needs one person twice", () => {
    const text = edit("dba: [bob]", "dba: [carol]", edit('"2 of sre-leads"', '"1 of security and 1 of dba"'));
    const issue = issueAt(check(text).issues, `${ROLE}.approval`);
    expect(issue.message).toContain("needs 2 distinct approvers and its groups have 1 member in all (carol)");
  });

  test("does not choke on an approval rule asking for a huge number of approvers", () => {
    const issue = issueAt(check(edit('"2 of sre-leads"', '"1000000000 of sre-leads"')).issues, `${ROLE}.approval`);
    expect(issue.message).toContain("can never be satisfied");
  });

  test("rejects a rule that needs the requester to approve their own request, naming the requester", () => {
    const text = edit("requesters: [oncall]", "requesters: [oncall, sre-leads]");
    const issue = issueAt(check(text).issues, `${ROLE}.approval`);
    expect(issue.message).toContain("requests by bob and carol can never be approved");
    expect(issue.message).toContain("nobody approves their own request");
    expect(issue.hint).toContain("add another member to `sre-leads`");
    expect(issue.hint).toContain("take bob and carol out of the requester groups (sre-leads)");
    expect(issue.line).toBe(positionOf(text, "approval:").line);
  });

  test("accepts a rule a requester can meet through another clause", () => {
    const text = edit(
      '"2 of sre-leads"',
      '"2 of sre-leads or 1 of security"',
      edit("oncall: [alice]", "oncall: [alice, bob]"),
    );
    expect(check(text).issues).toEqual([]);
  });

  test("rejects a group member who is not a user", () => {
    const text = edit("dba: [bob]", "dba: [bob, dave]");
    const issue = issueAt(check(text).issues, "groups.dba.1");
    expect(issue.message).toBe("group `dba` lists `dave`, who is not defined under `users`");
    expect(issue.hint).toContain("define `dave` under `users`");
    expect(issue).toMatchObject(positionOf(text, "dave"));
  });

  test("rejects requesters naming an unknown group", () => {
    const text = edit("requesters: [oncall]", "requesters: [on-call]");
    const issue = issueAt(check(text).issues, `${ROLE}.requesters.0`);
    expect(issue.message).toBe("requester group `on-call` is not defined under `groups`");
    expect(issue.hint).toBe("did you mean `oncall`?");
    expect(issue).toMatchObject(positionOf(text, "on-call"));
  });

  test("IdP login: needs the secret key, and group_map must name defined groups (which may then be empty)", () => {
    const auth = `auth:
  oidc:
    issuer: https://idp.example.com
    client_id: breakglass
    group_map: { idp-sre: [oncall, on-call], idp-leads: sre-leads }
`;
    const text = `${BASE}${auth}`;
    const issues = check(text).issues;
    expect(issueAt(issues, "auth.oidc").hint).toContain("breakglass secret keygen");
    const unknown = issueAt(issues, "auth.oidc.group_map.idp-sre.1");
    expect(unknown.message).toBe("mapped group `on-call` is not defined under `groups`");
    expect(unknown.hint).toContain("did you mean `oncall`?");
    // Members of a mapped group arrive with logins: an empty group in an approval rule is fine.
    const ok = edit(
      "sre-leads: [bob, carol]",
      "sre-leads: []",
      `${BASE}secrets: { key_file: ./k }\n${auth.replace(", on-call", "")}`,
    );
    expect(check(ok).issues).toEqual([]);
  });

  test("emergency and fallback roles need a reviewer group, and named reviewer groups must exist", () => {
    const noAdmins = edit(
      "admin_groups: [security]\n",
      "",
      edit("requesters: [oncall]", "requesters: [oncall]\n        emergency: true"),
    );
    const issue = issueAt(check(noAdmins).issues, `${ROLE}.emergency`);
    expect(issue.message).toContain("reviewed by a reviewer group, but none is configured");
    expect(issue.hint).toContain("reviewers: [security]");
    const withReviewers = edit("emergency: true", "emergency: true\n        reviewers: [securty]", noAdmins);
    expect(issueAt(check(withReviewers).issues, `${ROLE}.reviewers.0`).hint).toContain("did you mean `security`?");
    expect(check(edit("securty", "security", withReviewers)).issues).toEqual([]);
  });

  test("drills: the role and people must exist, and the drill's incident id must suit the role", () => {
    const drill = (extra: string) =>
      `${BASE}drills:\n  d1: { scenario: approval-path, role: production/db-admin, requester: alice, approvers: [bob, carol]${extra} }\n`;
    expect(check(drill("")).issues).toEqual([]);
    const strict = edit(
      "requesters: [oncall]",
      'requesters: [oncall]\n        incident_pattern: "INC-[0-9]+"',
      drill(""),
    );
    expect(issueAt(check(strict).issues, "drills.d1.role").message).toContain(
      'incident id "DRILL-<time>" does not match',
    );
    expect(check(strict.replace("approvers: [bob, carol]", "approvers: [bob, carol], incident: INC-0")).issues).toEqual(
      [],
    );
    const unknownUser = issueAt(
      check(drill("").replace("approvers: [bob, carol]", "approvers: [bob, mallory]")).issues,
      "drills.d1.approvers.1",
    );
    expect(unknownUser.message).toBe("drill `d1` acts as `mallory`, who is not defined under `users`");
    expect(unknownUser.hint).toContain("defined users: alice, bob, carol");
    const unknownRole = check(drill("").replace("production/db-admin", "production/db-admn")).issues;
    expect(issueAt(unknownRole, "drills.d1.role").message).toContain("is not configured");
  });

  test("rejects admin_groups naming an unknown group", () => {
    const text = edit("admin_groups: [security]", "admin_groups: [secops]");
    const issue = issueAt(check(text).issues, "admin_groups.0");
    expect(issue.message).toBe("admin group `secops` is not defined under `groups`");
    expect(issue.hint).toContain("defined groups: oncall, sre-leads, security, dba");
    expect(issue).toMatchObject(positionOf(text, "secops"));
  });

  test("rejects a manager_group or an e-mail recipient group that is not defined", () => {
    const text = edit(
      'alice: { name: "Alice Adams", email: alice@example.com }',
      'alice: { name: "Alice Adams", email: alice@example.com, manager_group: sre-lead }',
    );
    const issue = issueAt(check(text).issues, "users.alice.manager_group");
    expect(issue.message).toBe("manager group `sre-lead` is not defined under `groups`");
    expect(issue.hint).toBe("did you mean `sre-leads`?");
    const mail = `${BASE}alarms:
  channels:
    mail: { type: email, smtp_url: "smtp://mail.example.com:587", from: bg@example.com, to_groups: [secops] }
  security_channels: [mail]
`;
    const recipient = issueAt(check(mail).issues, "alarms.channels.mail.to_groups.0");
    expect(recipient.message).toBe("recipient group `secops` is not defined under `groups`");
  });

  test("refuses a channel whose delivery may outlive alarms.delivery_lease, naming both and the fix", () => {
    const alarms = (lease: string, timeout: string) => `${BASE}alarms:
  delivery_lease: ${lease}
  channels:
    hook: { type: webhook, url: "https://hooks.example.com/bg", secret: { env: HOOK_KEY }, timeout: ${timeout} }
  security_channels: [hook]
  routes: []
`;
    const env = { env: { HOOK_KEY: "k" } };
    expect(check(alarms("60s", "5s"), env).issues).toEqual([]);
    const issue = issueAt(check(alarms("10s", "10s"), env).issues, "alarms.channels.hook.timeout");
    expect(issue.message).toContain("alarms.delivery_lease (10s)");
    expect(issue.message).toContain("make the timeout shorter than delivery_lease");
    issueAt(check(alarms("2s", "1m"), env).issues, "alarms.channels.hook.timeout");
  });

  /** BASE on a postgres target (a stand-in schema) behind nothing yet. */
  const onPostgres = (text: string) => edit("connector: fake", "connector: postgres", text);
  const pg = { connectorSchemas: { postgres: fakeSettings } };

  test("reads a role's statement guard (named and custom rules) and names an unknown rule or node type", () => {
    const text = onPostgres(
      edit(
        "requesters: [oncall]",
        `requesters: [oncall]
        grants: { roles: [recovery_rw] }
        gateway_only: true
        guard:
          deny: [drop_table, set_role, { node: DropStmt, where: { removeType: OBJECT_INDEX }, label: "DROP INDEX" }]
          deny_schemas: [audit]
        recording: { redact_parameters: true }
gateway: { port: 0 }`,
      ),
    );
    const { config, issues } = check(text, pg);
    expect(issues).toEqual([]);
    expect(config?.policy.roles.get("production/db-admin")).toMatchObject({
      guard: {
        named: ["drop_table", "set_role"],
        deny: [{ node: "DropStmt", where: { removeType: "OBJECT_INDEX" }, label: "DROP INDEX" }],
        denySchemas: ["audit"],
        setRoles: ["recovery_rw"],
      },
      gatewayOnly: true,
      redactParameters: true,
    });
    const bad = edit("requesters: [oncall]", "requesters: [oncall]\n        guard: { deny: [drop_tables] }");
    expect(issueAt(check(bad).issues, `${ROLE}.guard.deny.0`).message).toBeTruthy();
    const typo = text.replace("node: DropStmt", "node: DropStmnt");
    const node = issueAt(check(typo, pg).issues, `${ROLE}.guard.deny.2.node`);
    expect(node.message).toBe("`DropStmnt` is not a node type of PostgreSQL's parse tree (libpg-query)");
    expect(node.hint).toBe("did you mean `DropStmt`?");
  });

  test("a gateway-only role needs the gateway and a postgres target; a guard needs gateway sessions", () => {
    const gatewayOnly = edit("requesters: [oncall]", "requesters: [oncall]\n        gateway_only: true");
    const noGateway = issueAt(check(onPostgres(gatewayOnly), pg).issues, `${ROLE}.gateway_only`);
    expect(noGateway.message).toBe(
      "the role is gateway-only, but no `gateway` is configured: its holders could not connect at all",
    );
    const notPostgres = issueAt(check(`${gatewayOnly}gateway: { port: 0 }\n`).issues, `${ROLE}.gateway_only`);
    expect(notPostgres.message).toBe(
      "gateway-only access is for postgres targets (the gateway relays PostgreSQL sessions), but target `pg-main` uses the fake connector",
    );
    expect(check(onPostgres(`${gatewayOnly}gateway: { port: 0 }\n`), pg).issues).toEqual([]);

    // A guard on a role whose holders connect directly would guard nothing.
    const guarded = onPostgres(
      edit("requesters: [oncall]", "requesters: [oncall]\n        guard: { deny: [drop_table] }"),
    );
    const direct = issueAt(check(`${guarded}gateway: { port: 0 }\n`, pg).issues, `${ROLE}.guard`);
    expect(direct.message).toBe(
      "the guard acts on gateway sessions only, but holders of this role get the target's own credential and connect to `pg-main` directly",
    );
    expect(direct.hint).toBe("set `gateway_only: true` on the role, or list `pg-main` under gateway.targets");
    // Behind the gateway, every role of the target is gateway-only.
    const behind = check(`${guarded}gateway: { port: 0, targets: [pg-main] }\n`, pg);
    expect(behind.issues).toEqual([]);
    expect(behind.config?.policy.roles.get("production/db-admin")?.gatewayOnly).toBe(true);
    expect(check(onPostgres(BASE), pg).config?.policy.roles.get("production/db-admin")?.gatewayOnly).toBe(false);
  });

  test("rejects an incident_pattern that is not a regular expression", () => {
    const text = edit("requesters: [oncall]", 'requesters: [oncall]\n        incident_pattern: "INC-[0-9+"');
    const issue = issueAt(check(text).issues, `${ROLE}.incident_pattern`);
    expect(issue.message).toContain('"INC-[0-9+" is not a valid regular expression');
    expect(issue.hint).toContain('"INC-[0-9]+"');
    expect(issue.line).toBe(positionOf(text, "incident_pattern").line);
  });

  test("rejects names that break the naming rule and says the rule", () => {
    const text = edit("carol: {}", "Carol: {}");
    const issue = issueAt(check(text).issues, "users.Carol");
    expect(issue.message).toBe('"Carol" is not a valid user name');
    expect(issue.hint).toContain("^[a-z0-9][a-z0-9_.@+-]*$");
    expect(issue).toMatchObject(positionOf(text, "Carol"));
  });

  test("rejects an unknown connector and lists the known ones", () => {
    const text = edit("connector: fake", "connector: ldap");
    const issue = issueAt(check(text).issues, "targets.pg-main.connector");
    expect(issue.message).toBe('unknown connector "ldap"');
    expect(issue.hint).toBe("known connectors: fake");
    expect(issue).toMatchObject(positionOf(text, "ldap"));
  });

  test("reports connector settings failing the connector's schema under targets.X.settings", () => {
    const text = edit("command: grant.sh", "command: 5\n      comand: grant.sh");
    const { issues } = check(text);
    const wrong = issueAt(issues, "targets.pg-main.settings.command");
    expect(wrong.message).toBe("expected text, got the number 5");
    expect(wrong).toMatchObject(positionOf(text, "5\n"));
    const unknown = issueAt(issues, "targets.pg-main.settings.comand");
    expect(unknown.hint).toBe("did you mean `command`?");
    expect(unknown.line).toBe(positionOf(text, "comand").line);
  });

  test("reports missing connector settings at the settings key", () => {
    const text = edit("    settings:\n      command: grant.sh\n", "    settings: {}\n");
    const issue = issueAt(check(text).issues, "targets.pg-main.settings.command");
    expect(issue.message).toBe("`command` is required");
    expect(issue.line).toBe(positionOf(text, "settings").line);
  });

  test("rejects a wrongly typed value with what was found", () => {
    const text = `${BASE}server:\n  port: eighty\n`;
    const issue = issueAt(check(text).issues, "server.port");
    expect(issue.message).toBe('expected a whole number, got the text "eighty"');
    expect(issue.hint).toContain("TCP port");
    expect(issue.line).toBe(positionOf(text, "eighty").line);
  });

  test("rejects an unsupported version", () => {
    const text = edit("version: 1", "version: 2");
    const issue = issueAt(check(text).issues, "version");
    expect(issue.message).toBe("must be 1, got the number 2");
    expect(issue.hint).toBe("set `version: 1`");
    expect(issue.line).toBe(1);
  });

  test("rejects a missing version", () => {
    const issue = issueAt(check(edit("version: 1\n", "")).issues, "version");
    expect(issue.hint).toBe("add `version: 1`");
    expect(issue.line).toBe(1);
  });

  test("rejects an unknown storage driver", () => {
    const text = `${BASE}storage:\n  driver: mysql\n`;
    const issue = issueAt(check(text).issues, "storage.driver");
    expect(issue.message).toBe('unknown driver "mysql"');
    expect(issue.hint).toBe("use one of: sqlite, postgres");
    expect(issue).toMatchObject(positionOf(text, "mysql"));
  });

  describe("postgres storage", () => {
    test("needs url_env or url_file", () => {
      const text = `${BASE}storage:\n  driver: postgres\n`;
      const issue = issueAt(check(text).issues, "storage");
      expect(issue.message).toContain("set exactly one of `url_env` or `url_file`");
      expect(issue.hint).toContain("url_env: BREAKGLASS_DATABASE_URL");
      expect(issue.line).toBe(positionOf(text, "storage:").line);
    });

    test("refuses both url_env and url_file", () => {
      const text = `${BASE}storage:\n  driver: postgres\n  url_env: DB_URL\n  url_file: ./db-url\n`;
      const issue = issueAt(check(text).issues, "storage.url_file");
      expect(issue.message).toBe("set `url_env` or `url_file`, not both");
      expect(issue.hint).toContain("remove `url_file`");
      expect(issue.line).toBe(positionOf(text, "url_file").line);
    });

    test("needs url_env to be set when secrets are resolved", () => {
      const text = `${BASE}storage:\n  driver: postgres\n  url_env: DB_URL\n`;
      const issue = issueAt(check(text).issues, "storage.url_env");
      expect(issue.message).toBe("environment variable DB_URL is not set");
      expect(issue.hint).toContain("set DB_URL to the connection URL");
      expect(issue).toMatchObject(positionOf(text, "DB_URL"));
    });

    test("does not need the secret for a check", () => {
      const text = `${BASE}storage:\n  driver: postgres\n  url_env: DB_URL\n  pool_size: 4\n`;
      const { config, issues } = check(text, { resolveSecrets: false });
      expect(issues).toEqual([]);
      expect(config?.storage.driver === "postgres" && config.storage.url.reveal()).toBe("");
    });

    test("reads the URL from url_env, redacted", () => {
      const url = "postgres://bg:s3cret@db:5432/bg";
      const text = `${BASE}storage:\n  driver: postgres\n  url_env: DB_URL\n`;
      const { config } = check(text, { env: { DB_URL: url } });
      const storage = config?.storage;
      expect(storage?.driver).toBe("postgres");
      if (storage?.driver !== "postgres") return;
      expect(storage.url.reveal()).toBe(url);
      expect(storage.poolSize).toBe(10);
      expect(JSON.stringify(config)).not.toContain("s3cret");
    });

    test("reads the URL from url_file relative to the configuration file", () => {
      const read: string[] = [];
      const text = `${BASE}storage:\n  driver: postgres\n  url_file: secrets/db-url\n`;
      const { config } = check(text, {
        readSecretFile: (file) => {
          read.push(file);
          return "postgres://bg@db/bg\n";
        },
      });
      expect(read).toEqual(["/etc/breakglass/secrets/db-url"]);
      expect(config?.storage.driver === "postgres" && config.storage.url.reveal()).toBe("postgres://bg@db/bg");
    });

    test("reports an unreadable url_file", () => {
      const text = `${BASE}storage:\n  driver: postgres\n  url_file: secrets/db-url\n`;
      const issue = issueAt(check(text).issues, "storage.url_file");
      expect(issue.message).toBe("cannot read /etc/breakglass/secrets/db-url (ENOENT)");
      expect(issue.line).toBe(positionOf(text, "secrets/db-url").line);
    });
  });

  test("reports YAML syntax errors as issues with a position", () => {
    const text = edit("  bob: { name: Bob }\n", "  bob: { name: Bob }\n  bob: {}\n");
    const { config, issues } = check(text);
    expect(config).toBeNull();
    expect(issues).toHaveLength(1);
    expect(issues[0]?.message).toContain("YAML: Map keys must be unique");
    expect(issues[0]?.hint).toBe("remove or rename one of the two keys");
    expect(issues[0]?.line).toBe(5);
  });

  test("reports an empty file", () => {
    const { issues } = check("");
    expect(issues).toEqual([expect.objectContaining({ path: "", message: "the file is empty" })]);
  });

  test("collects every issue in one run, in source order", () => {
    let text = edit("max_duration: 2h", "max_duration: 90x");
    text = edit("dba: [bob]", "dba: [bob, dave]", text);
    text = edit("target: pg-main", "target: nowhere", text);
    text = edit("connector: fake", "connector: ldap", text);
    text = edit("admin_groups: [security]", "admin_groups: [secops]", text);
    const { issues } = check(text);
    expect(issues.map((i) => i.path)).toEqual([
      "groups.dba.1",
      "admin_groups.0",
      `${ROLE}.target`,
      `${ROLE}.max_duration`,
      "targets.pg-main.connector",
    ]);
  });
});

describe("connector-specific checks", () => {
  const grantsSchema = z.strictObject({ roles: z.array(z.string()).min(1) });
  const withGrants = (grants: string) =>
    edit("default_duration: 30m", `grants: ${grants}\n        default_duration: 30m`);
  const strict = { roleGrantsSchemas: { fake: grantsSchema }, credentialConnectors: new Set(["fake"]) };

  test("checks a role's grants against its target's connector, at the role's path", () => {
    const text = withGrants("{ role: [recovery_rw] }");
    const { issues } = check(`${text}secrets: { key_file: ./secrets.key }\n`, strict);
    expect(issues.map((i) => i.path).sort()).toEqual([`${ROLE}.grants.role`, `${ROLE}.grants.roles`]);
    expect(issueAt(issues, `${ROLE}.grants.role`)).toMatchObject({ hint: "did you mean `roles`?" });
  });

  test("requires the secret key when a target's connector hands out credentials", () => {
    const { config, issues } = check(withGrants("{ roles: [recovery_rw] }"), strict);
    expect(config).toBeNull();
    const issue = issueAt(issues, "targets.pg-main.connector");
    expect(issue.message).toContain("hands holders a credential");
    expect(issue.hint).toContain("breakglass secret keygen");
    expect(
      check(`${withGrants("{ roles: [recovery_rw] }")}secrets: { key_file: ./secrets.key }\n`, strict).issues,
    ).toEqual([]);
  });
});

describe("alarms", () => {
  test("refuses a configuration that silences activation alarms, and unknown channels", () => {
    const silenced = check(`${BASE}alarms: { security_channels: [] }\n`);
    expect(silenced.config).toBeNull();
    expect(issueAt(silenced.issues, "alarms.security_channels").message).toContain(
      "activation alarms cannot be silenced",
    );
    const unknown = check(
      `${BASE}alarms: { security_channels: [pager], routes: [{ events: ["grant.*"], channels: [slack] }] }\n`,
    );
    expect(issueAt(unknown.issues, "alarms.security_channels.0").message).toContain("channel `pager` is not defined");
    expect(issueAt(unknown.issues, "alarms.routes.0.channels.0").message).toContain("channel `slack` is not defined");
  });

  test("says which default names `local` when channels of one's own leave it out", () => {
    const own = check(
      `${BASE}alarms: { channels: { pager: { type: file, path: ./pager.jsonl } }, security_channels: [pager] }\n`,
    );
    expect(own.config).toBeNull();
    expect(issueAt(own.issues, "alarms.routes.0.channels.0").message).toMatch(
      /channel `local` is not defined under alarms.channels — it is the default of alarms.routes \(every event to `local`\), which applies when routes is left out: set alarms.routes to your own channels \(`routes: \[\]` for none beyond the security channels\)/,
    );
    const noSecurity = check(
      `${BASE}alarms: { channels: { pager: { type: file, path: ./pager.jsonl } }, routes: [] }\n`,
    );
    expect(issueAt(noSecurity.issues, "alarms.security_channels.0").message).toContain(
      "it is the default of alarms.security_channels (`[local]`)",
    );
  });

  test("defaults to every event in ./alarms.jsonl", () => {
    const { config } = check(BASE);
    expect(config?.alarms).toEqual({
      channels: [{ type: "file", name: "local", path: "/etc/breakglass/alarms.jsonl" }],
      routing: {
        securityChannels: ["local"],
        escalationChannels: [],
        routes: [{ events: ["*"], channels: ["local"], domains: null }],
        roleSeverity: expect.any(Map),
      },
      leaseMs: 60_000,
      unalarmedAfterMs: 60_000,
      escalation: null,
    });
    expect([...(config?.alarms.routing.roleSeverity ?? [])]).toEqual([["production/db-admin", "warning"]]);
  });
});

describe("formatIssues", () => {
  test("prints one block per issue with position, path, message and fix", () => {
    const text = edit("max_duration: 2h", "max_duration: 90x");
    const out = formatIssues(check(text).issues, "breakglass.yaml");
    expect(out).toBe(
      `breakglass.yaml:19:23  ${ROLE}.max_duration: "90x" is not a duration\n    fix: write it like 30m, 1h30m, 2d or 45s`,
    );
  });

  test("prints issues without a position or hint", () => {
    expect(
      formatIssues(
        [
          { path: "", message: "cannot read x" },
          { path: "a.b", message: "bad" },
        ],
        "x.yaml",
      ),
    ).toBe("x.yaml  cannot read x\nx.yaml  a.b: bad");
  });
});

describe("loadConfigFile", () => {
  let dir: string | undefined;
  afterEach(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
    dir = undefined;
  });

  test("loads a file and resolves relative paths against its folder", () => {
    dir = mkdtempSync(join(tmpdir(), "bg-config-"));
    const file = join(dir, "breakglass.yaml");
    writeFileSync(file, `${BASE}storage: { driver: sqlite, path: data/bg.db }\n`);
    const config = loadConfigFile(file, { connectorSchemas: { fake: fakeSettings } });
    expect(config.source).toBe(file);
    expect(config.storage).toEqual({ driver: "sqlite", path: join(dir, "data/bg.db") });
    expect(config.audit.signingKeyFile).toBe(join(dir, "audit-signing.pem"));
  });

  test("throws ConfigError carrying every issue", () => {
    dir = mkdtempSync(join(tmpdir(), "bg-config-"));
    const file = join(dir, "breakglass.yaml");
    writeFileSync(file, edit("max_duration: 2h", "max_duration: 90x"));
    const error = (() => {
      try {
        loadConfigFile(file, { connectorSchemas: { fake: fakeSettings } });
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).code).toBe("ERR_CONFIG_INVALID");
    expect((error as ConfigError).issues.map((i) => i.path)).toEqual([`${ROLE}.max_duration`]);
  });

  test("throws ConfigError for a file that cannot be read", () => {
    expect(() => loadConfigFile("/nonexistent/breakglass.yaml")).toThrow(ConfigError);
  });
});
