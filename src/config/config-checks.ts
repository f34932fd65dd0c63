/**
 * Cross-reference checks a schema cannot express: names that must point at something defined,
 * approval rules that must be satisfiable, connector settings, and the storage secret.
 *
 * They read the raw document leniently (a part that has the wrong shape is skipped: the schema
 * reports it), so one run reports every problem in the file, not just the first kind.
 */
import { dirname, resolve } from "node:path";
import type { z } from "zod";
import { DEFAULT_INCIDENT_PATTERN, NAME_PATTERN } from "../contract/config-schema.js";
import { NODE_CLASSES } from "../contract/guard-classes.js";
import { NODE_NAME } from "../contract/guard-rules.js";
import { parseRule, ruleGroups, ruleSatisfiable } from "../core/approval-policy.js";
import { isDuration, parseDuration } from "../core/duration.js";
import type { ApprovalRule, ApprovalTerm, Policy, UserDef } from "../core/model.js";
import { Redacted } from "../core/redacted.js";
import { unknownRoleHint } from "../core/suggest.js";
import { RESERVED_USER_NAMES, USER_NAME_PATTERN } from "../core/user-name.js";
import { listNames, type PathSegment, type Problem, problem, problemsFromZod, suggest } from "./config-issues.js";

export interface CheckOptions {
  readonly source: string;
  readonly env: Readonly<Record<string, string | undefined>>;
  readSecretFile(path: string): string;
  readonly connectorSchemas: Readonly<Record<string, z.ZodType>>;
  /** Connector name → zod schema of a role's `grants` on its targets (none: free-form). */
  readonly roleGrantsSchemas?: Readonly<Record<string, z.ZodType>> | undefined;
  /** Connectors that hand holders credentials: their targets need `secrets.key_file`. */
  readonly credentialConnectors?: ReadonlySet<string> | undefined;
  readonly resolveSecrets: boolean;
}

export interface CheckResult {
  readonly problems: Problem[];
  /** The postgres connection URL (empty when secrets are not resolved), or null for sqlite. */
  readonly storageUrl: Redacted<string> | null;
  /** Each target's settings as parsed by its connector's schema (defaults applied). */
  readonly targetSettings: ReadonlyMap<string, Readonly<Record<string, unknown>>>;
}

type Raw = Record<string, unknown>;

const isRecord = (v: unknown): v is Raw => typeof v === "object" && v !== null && !Array.isArray(v);
const entries = (v: unknown): [string, unknown][] => (isRecord(v) ? Object.entries(v) : []);
const isName = (v: unknown): v is string => typeof v === "string" && NAME_PATTERN.test(v);
/** The well-formed names in a list, with their index. */
const names = (v: unknown, valid: (x: unknown) => x is string = isName): [string, number][] =>
  Array.isArray(v) ? v.flatMap((x, i): [string, number][] => (valid(x) ? [[x, i]] : [])) : [];
const isUserName = (v: unknown): v is string => typeof v === "string" && USER_NAME_PATTERN.test(v);
const seconds = (v: unknown): number | null => (typeof v === "string" && isDuration(v) ? parseDuration(v) : null);
const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? "" : "s"}`;

export function checkReferences(raw: unknown, opts: CheckOptions): CheckResult {
  const problems: Problem[] = [];
  const doc: Raw = isRecord(raw) ? raw : {};

  const users = new Set(entries(doc.users).map(([name]) => name));
  for (const name of users) {
    // Actor names the broker writes itself: a person with one would read as the broker.
    if (RESERVED_USER_NAMES.has(name)) {
      problems.push(
        problem(
          ["users", name],
          `\`${name}\` is reserved: the audit log uses it for the broker's own actions`,
          "give this person another name",
          "key",
        ),
      );
    }
  }
  const groups = new Map<string, Set<string>>();
  for (const [group, members] of entries(doc.groups)) {
    const known = new Set<string>();
    for (const [member, i] of names(members, isUserName)) {
      if (users.has(member)) known.add(member);
      else {
        problems.push(
          problem(
            ["groups", group, i],
            `group \`${group}\` lists \`${member}\`, who is not defined under \`users\``,
            suggest(
              member,
              users,
              "defined users",
              `define \`${member}\` under \`users\` or remove them from the group`,
            ),
          ),
        );
      }
    }
    groups.set(group, known);
  }

  for (const [group, i] of names(doc.admin_groups)) {
    if (!groups.has(group)) {
      problems.push(
        problem(
          ["admin_groups", i],
          `admin group \`${group}\` is not defined under \`groups\``,
          suggest(group, groups.keys(), "defined groups"),
        ),
      );
    }
  }

  const groupRef = (path: PathSegment[], group: string, what: string) => {
    if (!groups.has(group)) {
      problems.push(
        problem(
          path,
          `${what} \`${group}\` is not defined under \`groups\``,
          suggest(group, groups.keys(), "defined groups"),
        ),
      );
    }
  };
  for (const [name, user] of entries(doc.users)) {
    if (isRecord(user) && isName(user.manager_group)) {
      groupRef(["users", name, "manager_group"], user.manager_group, "manager group");
    }
  }
  // Groups the IdP fills (auth.oidc.group_map): their members are known only at login.
  const dynamicGroups = new Set<string>();
  const auth = isRecord(doc.auth) ? doc.auth : {};
  const oidc = isRecord(auth.oidc) ? auth.oidc : {};
  for (const [idpGroup, mapped] of entries(oidc.group_map)) {
    const list: [string, number | null][] = typeof mapped === "string" ? [[mapped, null]] : names(mapped);
    for (const [group, i] of list) {
      groupRef(
        i === null ? ["auth", "oidc", "group_map", idpGroup] : ["auth", "oidc", "group_map", idpGroup, i],
        group,
        "mapped group",
      );
      dynamicGroups.add(group);
    }
  }
  const alarms = isRecord(doc.alarms) ? doc.alarms : {};
  for (const [name, channel] of entries(alarms.channels)) {
    if (!isRecord(channel)) continue;
    for (const [group, i] of names(channel.to_groups)) {
      groupRef(["alarms", "channels", name, "to_groups", i], group, "recipient group");
    }
  }

  const targetSettings = new Map<string, Readonly<Record<string, unknown>>>();
  const targets = new Set<string>();
  const connectorOf = new Map<string, string>();
  const hasSecretKey = isRecord(doc.secrets) && typeof doc.secrets.key_file === "string";
  for (const [name, target] of entries(doc.targets)) {
    targets.add(name);
    if (!isRecord(target)) continue;
    checkTarget(name, target, opts, problems, targetSettings);
    if (typeof target.connector !== "string") continue;
    connectorOf.set(name, target.connector);
    if (opts.credentialConnectors?.has(target.connector) && !hasSecretKey) {
      problems.push(
        problem(
          ["targets", name, "connector"],
          `the ${target.connector} connector hands holders a credential, which the broker keeps encrypted, but no secret key is configured`,
          "add `secrets: { key_file: ./secrets.key }` and create the key with `breakglass secret keygen --out secrets.key`",
        ),
      );
    }
  }

  if (isRecord(doc.auth) && isRecord(doc.auth.oidc) && !hasSecretKey) {
    problems.push(
      problem(
        ["auth", "oidc"],
        "IdP login keeps its pending state and the users' local factors encrypted, but no secret key is configured",
        "add `secrets: { key_file: ./secrets.key }` and create the key with `breakglass secret keygen --out secrets.key`",
      ),
    );
  }

  const gateway = isRecord(doc.gateway) ? doc.gateway : {};
  for (const [name, i] of names(gateway.targets)) {
    const connector = connectorOf.get(name);
    if (!targets.has(name)) {
      problems.push(
        problem(
          ["gateway", "targets", i],
          `gateway target \`${name}\` is not defined under \`targets\``,
          suggest(name, targets, "defined targets"),
        ),
      );
    } else if (connector !== undefined && connector !== "postgres") {
      problems.push(
        problem(
          ["gateway", "targets", i],
          `the gateway relays PostgreSQL sessions, but target \`${name}\` uses the ${connector} connector`,
          "list only postgres targets under gateway.targets",
        ),
      );
    }
  }

  const roleIds = new Set<string>();
  for (const [domain, domainDef] of entries(doc.domains)) {
    if (isRecord(domainDef)) for (const [role] of entries(domainDef.roles)) roleIds.add(`${domain}/${role}`);
  }
  const rotation = isRecord(doc.rotation) ? doc.rotation : {};
  const targetDefs = isRecord(doc.targets) ? doc.targets : {};
  for (const [target, i] of names(rotation.auto)) {
    const def = targetDefs[target];
    const path: PathSegment[] = ["rotation", "auto", i];
    if (!isRecord(def)) {
      problems.push(
        problem(
          path,
          `rotation.auto names target \`${target}\`, which is not configured`,
          suggest(target, new Set(Object.keys(targetDefs)), "configured targets"),
        ),
      );
    } else if (def.connector !== "postgres") {
      problems.push(
        problem(
          path,
          `the broker rotates only postgres admin passwords itself; \`${target}\` uses the ${String(def.connector)} connector`,
          `remove \`${target}\` from rotation.auto and rotate its credential by hand (breakglass rotation status lists how)`,
        ),
      );
    } else if (isRecord(def.settings) && isRecord(def.settings.admin_url) && "env" in def.settings.admin_url) {
      problems.push(
        problem(
          path,
          `target \`${target}\`'s admin_url comes from the environment, which the broker cannot update`,
          "keep it in a file (admin_url: { file: … }) or sealed (admin_url: { sealed: … })",
        ),
      );
    }
  }

  for (const [name, drill] of entries(doc.drills)) {
    if (!isRecord(drill)) continue;
    if (typeof drill.role === "string" && roleIds.has(drill.role)) {
      // The drill's grant needs an incident id the role accepts.
      const [domainName, roleName] = drill.role.split("/") as [string, string];
      const domainDef = isRecord(doc.domains) ? doc.domains[domainName] : undefined;
      const roleDef = isRecord(domainDef) && isRecord(domainDef.roles) ? domainDef.roles[roleName] : undefined;
      const defaultsDef = isRecord(doc.defaults) ? doc.defaults : {};
      const pattern =
        (isRecord(roleDef) && typeof roleDef.incident_pattern === "string" ? roleDef.incident_pattern : undefined) ??
        (typeof defaultsDef.incident_pattern === "string" ? defaultsDef.incident_pattern : DEFAULT_INCIDENT_PATTERN);
      const incident = typeof drill.incident === "string" ? drill.incident : "DRILL-1";
      let matches = true;
      try {
        matches = new RegExp(`^(?:${pattern})$`).test(incident);
      } catch {
        matches = true; // the role's own check reports a bad pattern
      }
      if (!matches) {
        problems.push(
          problem(
            ["drills", name, typeof drill.incident === "string" ? "incident" : "role"],
            `drill \`${name}\`'s incident id "${typeof drill.incident === "string" ? incident : "DRILL-<time>"}" does not match ${pattern}, which ${drill.role} requires`,
            "set `incident:` on the drill to an id the role accepts (e.g. one reserved for drills)",
          ),
        );
      }
    }
    if (typeof drill.role === "string" && !roleIds.has(drill.role)) {
      problems.push(
        problem(
          ["drills", name, "role"],
          `drill \`${name}\` rehearses role \`${drill.role}\`, which is not configured`,
          unknownRoleHint(drill.role, roleIds),
        ),
      );
    }
    if (drill.scenario === "policy-rollback" && !isRecord(drill.guard_probe)) {
      problems.push(
        problem(
          ["drills", name, "guard_probe"],
          `drill \`${name}\` rehearses a policy rollback, which proves the role's guard refuses a statement, but names none`,
          'add `guard_probe: { sql: "DROP TABLE public.accounts" }` (a statement the role\'s guard denies)',
        ),
      );
    }
    if (drill.scenario === "idp-outage" && drill.factor_secret === undefined) {
      problems.push(
        problem(
          ["drills", name, "factor_secret"],
          `drill \`${name}\` signs in by local fallback, which needs the requester's TOTP secret`,
          "run `breakglass factors provision-totp --user REQUESTER --out FILE` and set `factor_secret: { file: FILE }`",
        ),
      );
    }
    const people: [PathSegment[], unknown][] = [
      [["drills", name, "requester"], drill.requester],
      ...names(drill.approvers, isUserName).map(([u, i]): [PathSegment[], unknown] => [
        ["drills", name, "approvers", i],
        u,
      ]),
    ];
    for (const [path, user] of people) {
      if (typeof user === "string" && !users.has(user)) {
        problems.push(
          problem(
            path,
            `drill \`${name}\` acts as \`${user}\`, who is not defined under \`users\``,
            suggest(user, users, "defined users"),
          ),
        );
      }
    }
  }

  const policy = satisfiabilityPolicy(users, groups);
  const defaults = isRecord(doc.defaults) ? doc.defaults : {};
  for (const [group, i] of names(defaults.emergency_reviewers)) {
    groupRef(["defaults", "emergency_reviewers", i], group, "reviewer group");
  }
  const defaultReviewers = Array.isArray(defaults.emergency_reviewers)
    ? names(defaults.emergency_reviewers).map(([g]) => g)
    : names(doc.admin_groups).map(([g]) => g);
  const vault = isRecord(doc.vault) ? doc.vault : {};
  for (const [group, i] of names(vault.reviewers)) groupRef(["vault", "reviewers", i], group, "reviewer group");
  const vaultReviewers = Array.isArray(vault.reviewers) ? names(vault.reviewers) : defaultReviewers;
  if (names(vault.envelopes).length > 0 && vaultReviewers.length === 0) {
    problems.push(
      problem(
        ["vault", "reviewers"],
        "tier-2 envelopes are listed, but nobody reviews their openings",
        "set `vault.reviewers: [security]` (or defaults.emergency_reviewers, or admin_groups)",
      ),
    );
  }
  for (const [domain, domainDef] of entries(doc.domains)) {
    if (!isRecord(domainDef)) continue;
    for (const [role, roleDef] of entries(domainDef.roles)) {
      if (!isRecord(roleDef)) continue;
      const path = ["domains", domain, "roles", role];
      checkRole(path, roleDef, { targets, groups, policy, dynamicGroups, defaultReviewers }, problems);
      checkGatewayAccess(path, roleDef, doc.gateway, connectorOf, problems);
      const grantsSchema = opts.roleGrantsSchemas?.[connectorOf.get(String(roleDef.target)) ?? ""];
      if (grantsSchema) {
        const grants = roleDef.grants ?? {};
        const parsed = grantsSchema.safeParse(grants, { reportInput: true });
        if (!parsed.success)
          problems.push(...problemsFromZod(parsed.error.issues, grantsSchema, grants, [...path, "grants"]));
      }
    }
  }

  const storageUrl = checkStorage(doc.storage, opts, problems);
  return { problems, storageUrl, targetSettings };
}

function checkTarget(
  name: string,
  target: Raw,
  opts: CheckOptions,
  problems: Problem[],
  out: Map<string, Readonly<Record<string, unknown>>>,
): void {
  const connector = target.connector;
  if (typeof connector !== "string" || connector === "") return;
  const schema = opts.connectorSchemas[connector];
  if (!schema) {
    const known = Object.keys(opts.connectorSchemas);
    problems.push(
      problem(
        ["targets", name, "connector"],
        `unknown connector "${connector}"`,
        suggest(connector, known, "known connectors", known.length === 0 ? "no connectors are registered" : undefined),
      ),
    );
    return;
  }
  const settings = target.settings ?? {};
  if (!isRecord(settings)) return; // the file schema reports it
  let parsed: ReturnType<z.ZodType["safeParse"]>;
  try {
    parsed = schema.safeParse(settings, { reportInput: true });
  } catch (e) {
    // A connector schema that cannot run synchronously (async refinements) is a programming error.
    problems.push(
      problem(
        ["targets", name, "settings"],
        `the ${connector} connector could not check its settings: ${(e as Error).message}`,
      ),
    );
    return;
  }
  if (!parsed.success) {
    problems.push(...problemsFromZod(parsed.error.issues, schema, settings, ["targets", name, "settings"]));
  } else {
    out.set(name, isRecord(parsed.data) ? parsed.data : settings);
  }
}

/** Only what `ruleSatisfiable` reads; group members that are not users are left out (reported above). */
function satisfiabilityPolicy(users: Set<string>, groups: Map<string, Set<string>>): Pick<Policy, "users" | "groups"> {
  const userDefs = new Map<string, UserDef>(
    [...users].map((u) => [u, { name: u, displayName: u, email: null, managerGroup: null }]),
  );
  return { users: userDefs, groups };
}

interface RoleContext {
  readonly targets: ReadonlySet<string>;
  readonly groups: ReadonlyMap<string, ReadonlySet<string>>;
  readonly policy: Pick<Policy, "users" | "groups">;
  readonly dynamicGroups: ReadonlySet<string>;
  /** defaults.emergency_reviewers, else admin_groups. */
  readonly defaultReviewers: readonly string[];
}

function checkRole(path: PathSegment[], role: Raw, ctx: RoleContext, problems: Problem[]): void {
  for (const [group, i] of names(role.reviewers)) {
    if (!ctx.groups.has(group)) {
      problems.push(
        problem(
          [...path, "reviewers", i],
          `reviewer group \`${group}\` is not defined under \`groups\``,
          suggest(group, ctx.groups.keys(), "defined groups"),
        ),
      );
    }
  }
  const reviewers = Array.isArray(role.reviewers) ? names(role.reviewers).map(([g]) => g) : ctx.defaultReviewers;
  if ((role.emergency === true || role.fallback === true) && reviewers.length === 0) {
    problems.push(
      problem(
        [...path, role.emergency === true ? "emergency" : "fallback"],
        "emergency activations and fallback grants are reviewed by a reviewer group, but none is configured",
        "set `reviewers: [security]` on the role, or `defaults.emergency_reviewers`, or `admin_groups`",
      ),
    );
  }
  if (isName(role.target) && !ctx.targets.has(role.target)) {
    problems.push(
      problem(
        [...path, "target"],
        `target \`${role.target}\` is not defined under \`targets\``,
        suggest(role.target, ctx.targets, "defined targets", `define \`${role.target}\` under \`targets\``),
      ),
    );
  }

  const defaultS = seconds(role.default_duration);
  const maxS = seconds(role.max_duration);
  if (defaultS !== null && maxS !== null && maxS < defaultS) {
    problems.push(
      problem(
        [...path, "max_duration"],
        `max_duration (${String(role.max_duration)}) is shorter than default_duration (${String(role.default_duration)})`,
        `raise max_duration to at least ${String(role.default_duration)}, or lower default_duration to ${String(role.max_duration)} or less`,
      ),
    );
  }

  const requesterGroups: string[] = [];
  for (const [group, i] of names(role.requesters)) {
    if (ctx.groups.has(group)) requesterGroups.push(group);
    else {
      problems.push(
        problem(
          [...path, "requesters", i],
          `requester group \`${group}\` is not defined under \`groups\``,
          suggest(group, ctx.groups.keys(), "defined groups"),
        ),
      );
    }
  }

  if (typeof role.approval !== "string") return;
  const rule = parseRule(role.approval);
  if ("error" in rule) return; // the file schema reports the syntax
  const approvalPath = [...path, "approval"];
  const unknown = [...ruleGroups(rule)].filter((g) => !ctx.groups.has(g));
  for (const group of unknown) {
    problems.push(
      problem(
        approvalPath,
        `approval rule names group \`${group}\`, which is not defined under \`groups\``,
        suggest(group, ctx.groups.keys(), "defined groups"),
      ),
    );
  }
  if (unknown.length > 0) return;
  // Members of IdP-mapped groups arrive with logins: nothing to check against yet.
  if ([...ruleGroups(rule)].some((g) => ctx.dynamicGroups.has(g))) return;

  const text = role.approval.trim();
  // Drop clauses that ask a group for more people than it has: they can never be met, and
  // asking the matcher about them would allocate one seat per requested approver.
  const feasible: ApprovalRule = {
    anyOf: rule.anyOf.filter((clause) => clause.every((t) => t.count <= (ctx.groups.get(t.group)?.size ?? 0))),
  };
  if (feasible.anyOf.length === 0 || !ruleSatisfiable(ctx.policy, feasible, null)) {
    problems.push(
      problem(
        approvalPath,
        `approval rule "${text}" can never be satisfied by the configured users: ${rule.anyOf.map((c) => explainClause(c, ctx.groups)).join("; ")}`,
        "add members to the groups it names, lower the counts, or add an `or` clause that can be met",
      ),
    );
    return;
  }

  const eligible = new Set<string>();
  for (const group of requesterGroups) for (const member of ctx.groups.get(group) ?? []) eligible.add(member);
  const blocked = [...eligible].filter((user) => !ruleSatisfiable(ctx.policy, feasible, user));
  if (blocked.length > 0) {
    const who = listNames(blocked);
    const approverGroups = [...ruleGroups(rule)].filter((g) => blocked.some((u) => ctx.groups.get(g)?.has(u)));
    const theirGroups = requesterGroups.filter((g) => blocked.some((u) => ctx.groups.get(g)?.has(u)));
    problems.push(
      problem(
        approvalPath,
        `requests by ${who} can never be approved: approval rule "${text}" would need ${blocked.length === 1 ? who : "each of them"} as one of the approvers, and nobody approves their own request`,
        `add another member to ${listNames(approverGroups.map((g) => `\`${g}\``))}, add an \`or\` clause ${who} can be approved by, or take ${who} out of the requester groups (${theirGroups.join(", ")})`,
      ),
    );
  }
}

/**
 * A gateway-only role needs the gateway and a postgres target; a guard works only on gateway
 * sessions, so a role whose holders connect directly must not look guarded; custom guard rules
 * must name a parse node type the parser has.
 */
function checkGatewayAccess(
  path: PathSegment[],
  role: Raw,
  gatewayDoc: unknown,
  connectorOf: ReadonlyMap<string, string>,
  problems: Problem[],
): void {
  const target = typeof role.target === "string" ? role.target : "";
  const connector = connectorOf.get(target);
  const gateway = isRecord(gatewayDoc) ? gatewayDoc : null;
  const behindGateway = gateway !== null && names(gateway.targets).some(([t]) => t === target);
  if (role.gateway_only === true) {
    if (gateway === null) {
      problems.push(
        problem(
          [...path, "gateway_only"],
          "the role is gateway-only, but no `gateway` is configured: its holders could not connect at all",
          "add a `gateway:` section (docs/gateway.md), or drop `gateway_only`",
        ),
      );
    } else if (connector !== undefined && connector !== "postgres") {
      problems.push(
        problem(
          [...path, "gateway_only"],
          `gateway-only access is for postgres targets (the gateway relays PostgreSQL sessions), but target \`${target}\` uses the ${connector} connector`,
          "drop `gateway_only` from this role",
        ),
      );
    }
  }
  if (isRecord(role.guard) && role.gateway_only !== true && !behindGateway) {
    problems.push(
      problem(
        [...path, "guard"],
        `the guard acts on gateway sessions only, but holders of this role get the target's own credential and connect to \`${target}\` directly`,
        `set \`gateway_only: true\` on the role, or list \`${target}\` under gateway.targets`,
      ),
    );
  }
  const deny = isRecord(role.guard) && Array.isArray(role.guard.deny) ? role.guard.deny : [];
  deny.forEach((rule, i) => {
    const node = isRecord(rule) ? rule.node : undefined;
    if (typeof node === "string" && NODE_NAME.test(node) && !Object.hasOwn(NODE_CLASSES, node)) {
      problems.push(
        problem(
          [...path, "guard", "deny", i, "node"],
          `\`${node}\` is not a node type of PostgreSQL's parse tree (libpg-query)`,
          nearNode(node),
        ),
      );
    }
  });
}

const nearNode = (node: string): string => {
  const hint = suggest(node, Object.keys(NODE_CLASSES), "node types");
  return hint.startsWith("did you mean") ? hint : "the node types are listed in docs/gateway.md (Every statement type)";
};

function explainClause(clause: readonly ApprovalTerm[], groups: ReadonlyMap<string, ReadonlySet<string>>): string {
  const members = (g: string) => [...(groups.get(g) ?? [])];
  const short = clause.find((t) => t.count > members(t.group).length);
  const head = `"${clause.map((t) => `${t.count} of ${t.group}`).join(" and ")}"`;
  if (short) {
    const m = members(short.group);
    return `${head} needs ${short.count} of ${short.group}, which has ${plural(m.length, "member")}${m.length ? ` (${m.join(", ")})` : ""}`;
  }
  const people = new Set(clause.flatMap((t) => members(t.group)));
  const needed = clause.reduce((n, t) => n + t.count, 0);
  return `${head} needs ${plural(needed, "distinct approver")} and its groups have ${plural(people.size, "member")} in all (${[...people].join(", ")})`;
}

function checkStorage(storage: unknown, opts: CheckOptions, problems: Problem[]): Redacted<string> | null {
  if (!isRecord(storage) || storage.driver !== "postgres") return null;
  const hasEnv = storage.url_env !== undefined;
  const hasFile = storage.url_file !== undefined;
  if (!hasEnv && !hasFile) {
    problems.push(
      problem(
        ["storage"],
        "postgres storage needs a connection URL: set exactly one of `url_env` or `url_file`",
        "add `url_env: BREAKGLASS_DATABASE_URL` (a variable holding postgres://…) or `url_file: ./database-url` (a file holding it)",
      ),
    );
    return null;
  }
  if (hasEnv && hasFile) {
    problems.push(
      problem(
        ["storage", "url_file"],
        "set `url_env` or `url_file`, not both",
        "remove `url_file` to read the URL from the environment variable, or remove `url_env`",
      ),
    );
    return null;
  }
  if (!opts.resolveSecrets) return new Redacted("");

  if (typeof storage.url_env === "string") {
    const name = storage.url_env;
    const value = opts.env[name]?.trim();
    if (!value) {
      problems.push(
        problem(
          ["storage", "url_env"],
          `environment variable ${name} is ${opts.env[name] === undefined ? "not set" : "empty"}`,
          `set ${name} to the connection URL (postgres://USER:PASSWORD@HOST:5432/DATABASE) before starting, or use \`url_file\``,
        ),
      );
      return null;
    }
    return new Redacted(value);
  }
  if (typeof storage.url_file === "string" && storage.url_file !== "") {
    const file = resolve(dirname(opts.source), storage.url_file);
    let value: string;
    try {
      value = opts.readSecretFile(file).trim();
    } catch (e) {
      const reason = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
      problems.push(
        problem(
          ["storage", "url_file"],
          `cannot read ${file} (${reason})`,
          "create the file with the postgres://… URL on one line, or fix the path (relative paths start at the configuration file's folder)",
        ),
      );
      return null;
    }
    if (!value) {
      problems.push(
        problem(["storage", "url_file"], `${file} is empty`, "put the postgres://… connection URL in the file"),
      );
      return null;
    }
    return new Redacted(value);
  }
  return null;
}
