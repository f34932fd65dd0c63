/**
 * PostgreSQL containment, the pure part (ADR 0009): what a recovery role lets a holder reach,
 * and what changed in a cluster between the snapshot taken at activation and the end of the
 * window — each difference with what to do about it (revert, keep, contain, leave, report) and
 * the SQL that does it. No I/O: the connector reads the catalogs (postgres-catalog.ts), runs the
 * SQL and records the outcome. In `core` so the linter keeps it pure; it knows PostgreSQL's
 * catalogs, not the broker.
 */

/** An object as compared: owner OID (null: none), ACL items, what makes it act, SQL keyword, SQL identity, extension member. */
export type ObjectFact = readonly [
  owner: number | null,
  acl: string,
  def: string,
  kw: string,
  id: string,
  extensionMember?: 1,
];
/** A database's objects, by `catalog:oid`. */
export type DatabaseFacts = Readonly<Record<string, ObjectFact>>;

export type RoleAttr = "super" | "inherit" | "createrole" | "createdb" | "login" | "replication" | "bypassrls";

export interface RoleFact {
  readonly name: string;
  readonly attrs: readonly RoleAttr[];
  /** `VALID UNTIL` as PostgreSQL prints it (`infinity` included); null when unset. */
  readonly validUntil: string | null;
  /** SHA-256 of the password verifier (computed by the server); null: no password; undefined: not compared. */
  readonly password?: string | null | undefined;
}

export interface ClusterFacts {
  readonly version: number;
  /** Server time of the read (epoch ms): the window's start, for the snapshot. */
  readonly at: number;
  readonly passwordsCompared: boolean;
  /** By role OID. */
  readonly roles: Readonly<Record<string, RoleFact>>;
  /** By `role>member` OIDs. */
  readonly members: Readonly<Record<string, { readonly admin: boolean; readonly grantor: number }>>;
  /** By `database:role` OIDs (0 = all): `name=value` items. */
  readonly settings: Readonly<Record<string, readonly string[]>>;
  /** By database OID. */
  readonly databases: Readonly<
    Record<
      string,
      {
        readonly name: string;
        readonly owner: number;
        readonly allowConn: boolean;
        readonly acl: string;
        /** A template database (`datistemplate`): nobody may keep a session in it idle. */
        readonly template?: true;
      }
    >
  >;
  readonly subscriptions: Readonly<
    Record<string, { readonly name: string; readonly db: number; readonly owner: number; readonly enabled: boolean }>
  >;
}

/** What the broker keeps from activation to the end of the window: the cluster and each database's objects (by database OID). */
export interface CatalogSnapshot {
  readonly cluster: ClusterFacts;
  readonly databases: Readonly<Record<string, DatabaseFacts>>;
}

/**
 * What happens to a difference: `reverted` (put back as it was), `kept` (data made during the
 * window: kept, owned by the configured owner, private), `contained` (could not be put back;
 * made inert), `left` (could not be put back nor made inert without breaking what existed
 * before), `reported` (access taken away during the window: not given back).
 */
export type Outcome = "reverted" | "kept" | "contained" | "left" | "reported";

/** Contained and left items page security and block a `justified` review until resolved. */
export const DRIFT_OUTCOMES: ReadonlySet<Outcome> = new Set(["contained", "left"]);

export interface Finding {
  /** Stable across attempts (the same difference found again has the same id). */
  readonly id: string;
  readonly kind: string;
  readonly outcome: Outcome;
  readonly description: string;
  /** Database (name) the SQL runs in; null: any. */
  readonly db: string | null;
  /** Order: 0 roles contained, 1 hooks dropped, 2 owners/privileges/definitions, 3 code dropped, 4 data kept, 5 databases, 6 roles dropped. */
  readonly step: number;
  /** What to run now; empty when nothing is left to do. Each statement list runs in one transaction. */
  readonly sql: readonly string[];
  /** The state is already acceptable (e.g. code already made inert): `sql` is still tried, its failure is no failure. */
  readonly settled?: true;
  /** When `sql` fails: what to run instead, and the outcome then. */
  readonly fallback?: { readonly outcome: "contained" | "left"; readonly sql: readonly string[]; readonly fix: string };
  /** Sessions of this role to end (opened at or after `since`, or all when null). */
  readonly terminate?: { readonly role: string; readonly since: number | null };
  /** A role to drop after its objects are gone, in every database where it still has any. */
  readonly dropRole?: string;
  /** What was (or will be) done, for people. */
  readonly fix: string;
}

export interface CompareContext {
  /** The grant's own login role. */
  readonly ownRole: string;
  /** Reserved prefix of grant roles: a role with it counts as another grant's only if the broker granted its membership. */
  readonly rolePrefix: string;
  /** Who gets objects made during the window. */
  readonly owner: string;
  /** Role names whose changes are legitimate (the admin, `sweep_ignore_roles`). */
  readonly ignored: ReadonlySet<string>;
  /** The admin's role OID (grantor of grant roles' memberships). */
  readonly adminOid: number;
}

const ident = (name: string): string => (/^[a-z_][a-z0-9_$]*$/.test(name) ? name : `"${name.replaceAll('"', '""')}"`);
const literal = (value: string): string => `'${value.replaceAll("'", "''")}'`;

const ATTR_SQL: Record<RoleAttr, string> = {
  super: "SUPERUSER",
  inherit: "INHERIT",
  createrole: "CREATEROLE",
  createdb: "CREATEDB",
  login: "LOGIN",
  replication: "REPLICATION",
  bypassrls: "BYPASSRLS",
};

/** Settings whose values PostgreSQL stores as a list of (quoted) identifiers: put back as written. */
const LIST_SETTINGS = new Set([
  "search_path",
  "temp_tablespaces",
  "session_preload_libraries",
  "local_preload_libraries",
  "shared_preload_libraries",
]);

/** `name=value` as a `SET` clause. */
export function settingClause(item: string): string {
  const eq = item.indexOf("=");
  const name = item.slice(0, eq);
  const value = item.slice(eq + 1);
  return `${ident(name)} = ${LIST_SETTINGS.has(name.toLowerCase()) ? value : literal(value)}`;
}

// ---------------------------------------------------------------------------------------------
// ACLs

interface AclItem {
  readonly grantee: number;
  readonly grantor: number;
  readonly privilege: string;
  readonly grantable: boolean;
}

export function parseAcl(acl: string): AclItem[] {
  if (acl === "") return [];
  return acl.split(",").map((s) => {
    const [grantee, grantor, priv = ""] = s.split(":");
    return {
      grantee: Number(grantee),
      grantor: Number(grantor),
      privilege: priv.replace(/\*$/, ""),
      grantable: priv.endsWith("*"),
    };
  });
}

const aclKey = (i: AclItem) => `${i.grantee}:${i.grantor}:${i.privilege}`;

/** PostgreSQL's owner change (aclnewowner): every `from` as grantee or grantor becomes `to`, duplicates merged. */
export function aclNewOwner(items: readonly AclItem[], from: number, to: number): AclItem[] {
  const merged = new Map<string, AclItem>();
  for (const i of items) {
    const moved = {
      grantee: i.grantee === from ? to : i.grantee,
      grantor: i.grantor === from ? to : i.grantor,
      privilege: i.privilege,
      grantable: i.grantable,
    };
    const k = aclKey(moved);
    const had = merged.get(k);
    merged.set(k, had ? { ...moved, grantable: had.grantable || moved.grantable } : moved);
  }
  return [...merged.values()];
}

/** Items in `now` that `before` does not have (a grant option counts as more). */
function aclAdded(before: readonly AclItem[], now: readonly AclItem[]): { item: AclItem; optionOnly: boolean }[] {
  const old = new Map(before.map((i) => [aclKey(i), i]));
  const out: { item: AclItem; optionOnly: boolean }[] = [];
  for (const i of now) {
    const was = old.get(aclKey(i));
    if (!was) out.push({ item: i, optionOnly: false });
    else if (i.grantable && !was.grantable) out.push({ item: i, optionOnly: true });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Object kinds

/** Objects made during the window that hold data: kept, given to the owner, made private. */
const DATA_KINDS = new Set(["TABLE", "SEQUENCE", "MATERIALIZED VIEW", "LARGE OBJECT", "SCHEMA", "TYPE", "DOMAIN"]);
/** Hooks into existing objects: dropped when made during the window (nothing depends on them). */
const HOOK_KINDS = new Set([
  "TRIGGER",
  "RULE",
  "POLICY",
  "EVENT TRIGGER",
  "USER MAPPING",
  "PUBLICATION",
  "PUBLICATION RELATION",
  "PUBLICATION SCHEMA",
]);
/** Kinds whose removal during the window may have switched off a control: left, paged. */
const CONTROL_KINDS = new Set(["TRIGGER", "RULE", "POLICY", "EVENT TRIGGER"]);
/** Sub-objects compared by their ACL only. */
const ACL_ONLY_KINDS = new Set(["COLUMN", "DEFAULT ACL"]);

/** The keyword after `GRANT … ON`. */
function grantOn(kw: string): string | null {
  switch (kw) {
    case "TABLE":
    case "VIEW":
    case "MATERIALIZED VIEW":
    case "FOREIGN TABLE":
      return "TABLE";
    case "SEQUENCE":
    case "FUNCTION":
    case "PROCEDURE":
    case "SCHEMA":
    case "TYPE":
    case "DOMAIN":
    case "LANGUAGE":
    case "LARGE OBJECT":
    case "FOREIGN DATA WRAPPER":
    case "DATABASE":
      return kw;
    case "AGGREGATE":
      return "FUNCTION";
    case "SERVER":
      return "FOREIGN SERVER";
    default:
      return null;
  }
}

/** The keyword after `ALTER`/`DROP` (null: cannot be re-owned that way). */
function alterKw(kw: string): string | null {
  if (kw === "STATISTICS OBJECT") return "STATISTICS";
  const unowned = ["EXTENSION", "DEFAULT ACL", "COLUMN", "USER MAPPING", "TRIGGER", "RULE", "POLICY"];
  if (unowned.includes(kw) || kw.startsWith("PUBLICATION ")) return null;
  return kw;
}

/** `name|table` identities of triggers, rules, policies, columns; `role|server` of user mappings. */
const split2 = (id: string): [string, string] => {
  const at = id.indexOf("|");
  return [id.slice(0, at), id.slice(at + 1)];
};

function dropSql(kw: string, id: string): string | null {
  switch (kw) {
    case "TRIGGER":
    case "RULE":
    case "POLICY": {
      const [name, table] = split2(id);
      return `DROP ${kw} ${name} ON ${table}`;
    }
    case "USER MAPPING": {
      const [role, server] = split2(id);
      return `DROP USER MAPPING FOR ${role} SERVER ${server}`;
    }
    case "PUBLICATION RELATION": {
      const [pub, table] = split2(id);
      return `ALTER PUBLICATION ${pub} DROP TABLE ${table}`;
    }
    case "PUBLICATION SCHEMA": {
      const [pub, schema] = split2(id);
      return `ALTER PUBLICATION ${pub} DROP TABLES IN SCHEMA ${schema}`;
    }
    case "STATISTICS OBJECT":
      return `DROP STATISTICS ${id}`;
    case "DEFAULT ACL":
    case "COLUMN":
      return null;
    default:
      return `DROP ${kw} ${id}`;
  }
}

/** How an object reads in a finding (built-in types unqualified; the SQL keeps them qualified, whatever the search path). */
function label(kw: string, qualified: string): string {
  const id = qualified.replaceAll("pg_catalog.", "");
  switch (kw) {
    case "TRIGGER":
    case "RULE":
    case "POLICY": {
      const [name, table] = split2(id);
      return `${kw.toLowerCase()} ${name} on ${table}`;
    }
    case "COLUMN": {
      const [col, table] = split2(id);
      return `column ${table}.${col}`;
    }
    case "USER MAPPING": {
      const [role, server] = split2(id);
      return `user mapping for ${role} on server ${server}`;
    }
    case "PUBLICATION RELATION": {
      const [pub, table] = split2(id);
      return `table ${table} in publication ${pub}`;
    }
    case "PUBLICATION SCHEMA": {
      const [pub, schema] = split2(id);
      return `schema ${schema} in publication ${pub}`;
    }
    case "DEFAULT ACL": {
      const [role, schema, type] = id.split("|");
      return `default privileges of ${role}${schema ? ` in schema ${schema}` : ""} on ${DEFACL_TYPES[type ?? ""] ?? type}`.toLowerCase();
    }
    default:
      return `${kw.toLowerCase()} ${id}`;
  }
}

const DEFACL_TYPES: Record<string, string> = {
  r: "TABLES",
  S: "SEQUENCES",
  f: "FUNCTIONS",
  T: "TYPES",
  n: "SCHEMAS",
};

/** The grant a default-privileges entry makes when there is no row: PostgreSQL's hard-wired default. */
function defaultAclBaseline(id: string, role: number): string {
  const type = id.split("|")[2];
  const [, schema] = id.split("|");
  if (schema !== "") return "";
  if (type === "f") return `0:${role}:EXECUTE`;
  if (type === "T") return `0:${role}:USAGE`;
  return "";
}

// ---------------------------------------------------------------------------------------------
// The reach of a recovery role

export interface ReachAssessment {
  /** The recovery roles and every role they can `SET ROLE` to. */
  readonly reach: readonly string[];
  /** Recovery roles that do not exist on the target (activation fails with PostgreSQL's own error). */
  readonly missing: readonly string[];
  /** Why containment is impossible (empty: it is possible). */
  readonly impossible: readonly string[];
  /** What the holder can do that the comparison covers, in words. */
  readonly limits: readonly string[];
}

const SERVER_ROLES = ["pg_execute_server_program", "pg_write_server_files", "pg_read_server_files"];

/** What a holder of `recovery` can reach on this cluster, and whether containment can work. */
export function assessReach(cluster: ClusterFacts, recovery: readonly string[]): ReachAssessment {
  const byName = new Map(Object.entries(cluster.roles).map(([oid, r]) => [r.name, Number(oid)]));
  const memberOf = new Map<number, { role: number; admin: boolean }[]>();
  for (const [key, m] of Object.entries(cluster.members)) {
    const [role, member] = key.split(">").map(Number) as [number, number];
    memberOf.set(member, [...(memberOf.get(member) ?? []), { role, admin: m.admin }]);
  }
  const reach = new Set<number>();
  const admin = new Set<number>();
  const queue = recovery.flatMap((n) => (byName.has(n) ? [byName.get(n) as number] : []));
  while (queue.length > 0) {
    const r = queue.pop() as number;
    if (reach.has(r)) continue;
    reach.add(r);
    for (const m of memberOf.get(r) ?? []) {
      if (m.admin) admin.add(m.role);
      queue.push(m.role);
    }
  }
  const name = (oid: number) => cluster.roles[String(oid)]?.name ?? String(oid);
  const names = [...reach].map(name).sort();
  const withAttr = (a: RoleAttr) => [...reach].filter((r) => cluster.roles[String(r)]?.attrs.includes(a)).map(name);
  const impossible: string[] = [];
  const limits: string[] = [];
  const missing = recovery.filter((n) => !byName.has(n));
  const supers = withAttr("super");
  if (supers.length > 0) {
    impossible.push(
      `SUPERUSER (${supers.join(", ")}): a superuser can change the server itself (files, settings, untrusted languages, event triggers) beyond any catalog comparison`,
    );
  }
  const server = names.filter((n) => SERVER_ROLES.includes(n));
  if (server.length > 0) {
    impossible.push(
      `membership in ${server.join(", ")}: reading or writing server files or running programs as the server is a way around the catalog`,
    );
  }
  const createrole = withAttr("createrole");
  if (createrole.length > 0 && cluster.version < 160000) {
    impossible.push(
      `CREATEROLE (${createrole.join(", ")}) on PostgreSQL ${Math.floor(cluster.version / 10000)}: it can grant itself pg_execute_server_program and become the server`,
    );
  } else if (createrole.length > 0) {
    limits.push(
      `CREATEROLE (${createrole.join(", ")}): roles it creates are contained and dropped at the end; attributes, passwords, settings and memberships it changes on roles it administers are reverted or contained`,
    );
  }
  const createdb = withAttr("createdb");
  if (createdb.length > 0) {
    limits.push(
      `CREATEDB (${createdb.join(", ")}): databases created in the window are kept, owned by the configured owner and closed to PUBLIC`,
    );
  }
  const bypass = withAttr("bypassrls");
  if (bypass.length > 0) {
    limits.push(
      `BYPASSRLS (${bypass.join(", ")}): reads past row-level security during the window (nothing of it persists)`,
    );
  }
  const repl = withAttr("replication");
  if (repl.length > 0) {
    limits.push(`REPLICATION (${repl.join(", ")}): can copy the whole cluster during the window`);
  }
  const logins = withAttr("login");
  if (logins.length > 0) {
    limits.push(
      `login role(s) in reach (${logins.join(", ")}): the holder can act as them and change their password — a changed password is removed at the end (contained, paged: set a new one)`,
    );
  }
  if (admin.size > 0) {
    limits.push(
      `ADMIN OPTION on ${[...admin].map(name).sort().join(", ")}: memberships granted in the window are revoked at the end`,
    );
  }
  const data = names.filter((n) => n === "pg_write_all_data" || n === "pg_read_all_data");
  if (data.length > 0) limits.push(`${data.join(", ")}: reads or writes every table during the window`);
  limits.push(
    `owns or can act as ${names.join(", ")}: objects of these roles in every database are compared at the end; changes are reverted, or contained and paged`,
  );
  return { reach: names, missing, impossible, limits };
}

// ---------------------------------------------------------------------------------------------
// The comparison

interface Names {
  role(oid: number): string;
}

/**
 * Every difference between `before` (activation) and `now` (end of the window), with what to do.
 * Idempotent: run again after its SQL, it returns the same ids with nothing left to do (empty
 * `sql`) — or nothing at all for what was put back exactly.
 */
export function compareCatalogs(before: CatalogSnapshot, now: CatalogSnapshot, ctx: CompareContext): Finding[] {
  const out: Finding[] = [];
  const roleOf = (oid: number): RoleFact | undefined =>
    now.cluster.roles[String(oid)] ?? before.cluster.roles[String(oid)];
  const names: Names = {
    role: (oid) => (oid === 0 ? "PUBLIC" : ident(roleOf(oid)?.name ?? String(oid))),
  };
  const ownerOid = Object.entries(now.cluster.roles).find(([, r]) => r.name === ctx.owner)?.[0];
  const owner = ownerOid === undefined ? -1 : Number(ownerOid);
  const ownOid = Number(Object.entries(now.cluster.roles).find(([, r]) => r.name === ctx.ownRole)?.[0] ?? -1);

  // Another grant's role: the prefix, and a membership the broker's admin (or the bootstrap superuser) granted.
  const grantRolesOf = (cluster: ClusterFacts): Set<number> => {
    const found = new Set<number>();
    for (const [key, m] of Object.entries(cluster.members)) {
      const member = Number(key.split(">")[1]);
      const r = cluster.roles[String(member)];
      if (r?.name.startsWith(ctx.rolePrefix) && (m.grantor === ctx.adminOid || m.grantor === 10)) found.add(member);
    }
    found.delete(ownOid);
    return found;
  };
  const grantRoles = grantRolesOf(now.cluster);
  // Grants that ended during the window: their roles were dropped by their own revocation.
  const endedGrantRoles = grantRolesOf(before.cluster);
  const isIgnored = (oid: number) => oid !== 0 && ctx.ignored.has(roleOf(oid)?.name ?? "");
  /** Changes involving these roles are someone else's to judge: another live grant, an ignored role. */
  const notOurs = (oid: number) => grantRoles.has(oid) || isIgnored(oid);
  const createdRoles = new Set(
    Object.keys(now.cluster.roles)
      .map(Number)
      .filter((oid) => before.cluster.roles[String(oid)] === undefined && oid !== ownOid && !notOurs(oid)),
  );

  compareRoles(before.cluster, now.cluster, ctx, { out, names, ownOid, createdRoles, notOurs, endedGrantRoles });
  compareDatabases(before.cluster, now.cluster, { out, names, owner, ownerName: ctx.owner, notOurs, createdRoles });
  for (const [dbOid, db] of Object.entries(now.cluster.databases)) {
    if (!db.allowConn) continue;
    const objects = now.databases[dbOid];
    if (objects === undefined) continue;
    if (before.cluster.databases[dbOid] !== undefined && before.databases[dbOid] === undefined) {
      // Not read at activation (unreachable then): without a baseline, nothing in it can be judged.
      out.push(
        left(
          `database:${dbOid}:no_baseline`,
          "database",
          null,
          `database ${ident(db.name)} could not be read at activation: its objects were not compared`,
        ),
      );
      continue;
    }
    compareObjects(db.name, before.databases[dbOid] ?? {}, objects, {
      out,
      names,
      owner,
      ownerName: ctx.owner,
      ownOid,
      notOurs,
      createdRoles,
      existedBefore: before.cluster.databases[dbOid] !== undefined,
    });
  }
  return out;
}

interface RoleScope {
  out: Finding[];
  names: Names;
  ownOid: number;
  createdRoles: ReadonlySet<number>;
  /** Other grants' roles at activation (gone now: their grant ended, not the holder's doing). */
  endedGrantRoles: ReadonlySet<number>;
  notOurs(oid: number): boolean;
}

function compareRoles(before: ClusterFacts, now: ClusterFacts, ctx: CompareContext, s: RoleScope): void {
  const { out, names } = s;
  const n = names.role;
  for (const [oidText, role] of Object.entries(now.roles)) {
    const oid = Number(oidText);
    if (oid === s.ownOid || s.notOurs(oid) || (role.name.startsWith("pg_") && before.roles[oidText])) continue;
    const old = before.roles[oidText];
    const r = n(oid);
    if (old === undefined) {
      // Created in the window, whatever its name: contained at once, its objects handled below, then dropped.
      const memberships = Object.keys(now.members).filter((k) => {
        const [role2, member] = k.split(">").map(Number);
        return member === oid || role2 === oid;
      });
      const contained =
        !role.attrs.some((a) => a !== "inherit") &&
        role.password !== undefined &&
        role.password === null &&
        role.validUntil === "-infinity" &&
        memberships.length === 0;
      out.push({
        id: `role:${oid}:created`,
        kind: "role_created",
        outcome: "reverted",
        description: `role ${r} was created during the window`,
        db: null,
        step: 0,
        sql: contained
          ? []
          : [
              `ALTER ROLE ${r} NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS NOLOGIN PASSWORD NULL VALID UNTIL '-infinity'`,
              ...memberships.map((k) => {
                const [role2, member] = k.split(">").map(Number) as [number, number];
                return `REVOKE ${n(role2)} FROM ${n(member)} CASCADE`;
              }),
            ],
        terminate: { role: role.name, since: null },
        dropRole: role.name,
        fix: `no login, no password, no memberships, sessions ended; its objects given to ${ident(ctx.owner)} in every database; dropped`,
      });
      continue;
    }
    for (const a of role.attrs) {
      if (old.attrs.includes(a)) continue;
      out.push({
        id: `role:${oid}:attr:${a}`,
        kind: "role_attribute",
        outcome: "reverted",
        description: `role ${r} gained ${ATTR_SQL[a]}`,
        db: null,
        step: 0,
        sql: [`ALTER ROLE ${r} NO${ATTR_SQL[a]}`],
        ...(a === "login" ? { terminate: { role: role.name, since: before.at } } : {}),
        fix: `ALTER ROLE ${r} NO${ATTR_SQL[a]}`,
      });
    }
    for (const a of old.attrs) {
      if (role.attrs.includes(a)) continue;
      out.push(reported(`role:${oid}:attr:${a}:lost`, "role_attribute", `role ${r} lost ${ATTR_SQL[a]}`));
    }
    if (until(role.validUntil) > until(old.validUntil)) {
      const back = old.validUntil === null ? "infinity" : old.validUntil;
      out.push({
        id: `role:${oid}:valid_until`,
        kind: "role_attribute",
        outcome: "reverted",
        description: `role ${r} is valid until ${role.validUntil ?? "forever"} (was ${old.validUntil ?? "forever"})`,
        db: null,
        step: 0,
        sql: [`ALTER ROLE ${r} VALID UNTIL ${literal(back)}`],
        fix: `VALID UNTIL ${back} again`,
      });
    }
    if (role.password !== undefined && old.password !== undefined && role.password !== old.password) {
      if (old.password === null) {
        out.push({
          id: `role:${oid}:password`,
          kind: "password",
          outcome: "reverted",
          description: `role ${r}, which had no password, was given one during the window`,
          db: null,
          step: 0,
          sql: [`ALTER ROLE ${r} PASSWORD NULL`],
          terminate: { role: role.name, since: before.at },
          fix: "password removed again; sessions opened since the window began ended",
        });
      } else {
        // The old verifier was never read (only its digest), so it cannot be put back: remove the new one.
        out.push({
          id: `role:${oid}:password`,
          kind: "password",
          outcome: "contained",
          description: `the password of role ${r} was changed or removed during the window`,
          db: null,
          step: 0,
          sql: role.password === null ? [] : [`ALTER ROLE ${r} PASSWORD NULL`],
          terminate: { role: role.name, since: before.at },
          fix: `password removed (PASSWORD NULL) and sessions of ${r} opened since the window began ended: whoever uses ${r} needs a new password set by its owner`,
        });
      }
    }
  }
  for (const [oidText, old] of Object.entries(before.roles)) {
    if (now.roles[oidText] === undefined && !s.endedGrantRoles.has(Number(oidText))) {
      out.push(
        reported(`role:${oidText}:dropped`, "role_dropped", `role ${ident(old.name)} was dropped during the window`),
      );
    }
  }
  // Memberships.
  for (const [key, m] of Object.entries(now.members)) {
    const [role, member] = key.split(">").map(Number) as [number, number];
    if (member === s.ownOid || s.notOurs(member) || s.createdRoles.has(member) || s.createdRoles.has(role)) continue;
    const old = before.members[key];
    if (old === undefined) {
      out.push({
        id: `member:${key}`,
        kind: "membership",
        outcome: "reverted",
        description: `${n(member)} was made a member of ${n(role)}`,
        db: null,
        step: 0,
        sql: [`REVOKE ${n(role)} FROM ${n(member)} CASCADE`],
        fix: `REVOKE ${n(role)} FROM ${n(member)}`,
      });
    } else if (m.admin && !old.admin) {
      out.push({
        id: `member:${key}:admin`,
        kind: "membership",
        outcome: "reverted",
        description: `${n(member)} was given ADMIN OPTION on ${n(role)}`,
        db: null,
        step: 0,
        sql: [`REVOKE ADMIN OPTION FOR ${n(role)} FROM ${n(member)} CASCADE`],
        fix: `REVOKE ADMIN OPTION FOR ${n(role)} FROM ${n(member)}`,
      });
    }
  }
  for (const key of Object.keys(before.members)) {
    if (now.members[key] !== undefined) continue;
    const [role, member] = key.split(">").map(Number) as [number, number];
    if (now.roles[String(member)] === undefined || now.roles[String(role)] === undefined) continue;
    out.push(reported(`member:${key}:removed`, "membership", `${n(member)} is no longer a member of ${n(role)}`));
  }
  // Per-role and per-database settings: put back exactly.
  for (const key of new Set([...Object.keys(now.settings), ...Object.keys(before.settings)])) {
    const a = before.settings[key] ?? [];
    const b = now.settings[key] ?? [];
    if (a.join("\n") === b.join("\n")) continue;
    const [db, role] = key.split(":").map(Number) as [number, number];
    if (role !== 0 && (s.notOurs(role) || s.createdRoles.has(role) || role === s.ownOid)) continue;
    const dbName = db === 0 ? null : (now.databases[String(db)]?.name ?? null);
    if (db !== 0 && dbName === null) continue;
    const target =
      role === 0
        ? `DATABASE ${ident(dbName ?? "")}`
        : `ROLE ${n(role)}${dbName === null ? "" : ` IN DATABASE ${ident(dbName)}`}`;
    const what =
      role === 0
        ? `database ${ident(dbName ?? "")}`
        : `role ${n(role)}${dbName ? ` in database ${ident(dbName)}` : ""}`;
    out.push({
      id: `setting:${key}`,
      kind: "setting",
      outcome: "reverted",
      description: `the settings of ${what} changed during the window: [${b.join(", ")}] (were [${a.join(", ")}])`,
      db: null,
      step: 0,
      sql: [`ALTER ${target} RESET ALL`, ...a.map((item) => `ALTER ${target} SET ${settingClause(item)}`)],
      fix: `settings put back: [${a.join(", ")}]`,
    });
  }
  // Subscriptions (cluster-wide catalog, one database each).
  for (const [oid, sub] of Object.entries(now.subscriptions)) {
    if (before.subscriptions[oid] !== undefined || s.notOurs(sub.owner)) continue;
    const dbName = now.databases[String(sub.db)]?.name ?? null;
    out.push({
      id: `subscription:${oid}:created`,
      kind: "object_created",
      outcome: "reverted",
      description: `subscription ${ident(sub.name)} was created during the window`,
      db: dbName,
      step: 1,
      sql: [
        `ALTER SUBSCRIPTION ${ident(sub.name)} DISABLE`,
        `ALTER SUBSCRIPTION ${ident(sub.name)} SET (slot_name = NONE)`,
        `DROP SUBSCRIPTION ${ident(sub.name)}`,
      ],
      fix: "disabled and dropped",
    });
  }
}

interface DbScope {
  out: Finding[];
  names: Names;
  owner: number;
  ownerName: string;
  createdRoles: ReadonlySet<number>;
  notOurs(oid: number): boolean;
}

function compareDatabases(before: ClusterFacts, now: ClusterFacts, s: DbScope): void {
  const n = s.names.role;
  for (const [oid, db] of Object.entries(now.databases)) {
    const old = before.databases[oid];
    const d = ident(db.name);
    if (old === undefined) {
      if (s.notOurs(db.owner)) continue;
      const grantees = [...new Set(parseAcl(db.acl).map((i) => i.grantee))].filter(
        (g) => g !== db.owner && g !== s.owner,
      );
      const sql = [
        ...(db.owner === s.owner ? [] : [`ALTER DATABASE ${d} OWNER TO ${ident(s.ownerName)}`]),
        ...(grantees.length === 0 ? [] : [`REVOKE ALL ON DATABASE ${d} FROM ${grantees.map(n).join(", ")} CASCADE`]),
      ];
      if (!db.allowConn) {
        s.out.push(
          left(
            `database:${oid}:closed`,
            "object_created",
            null,
            `database ${d} was created without connections: its objects could not be compared`,
          ),
        );
      }
      s.out.push({
        id: `database:${oid}:created`,
        kind: "object_created",
        outcome: "kept",
        description: `database ${d} was created during the window`,
        db: null,
        step: 5,
        sql,
        fix: `kept (data is never dropped), owned by ${ident(s.ownerName)}, closed to everyone else (PUBLIC too)`,
      });
      continue;
    }
    if (old.owner !== db.owner && !s.notOurs(db.owner)) {
      s.out.push(ownerBack(`database:${oid}`, null, "DATABASE", d, old, db, s.names, 5));
    } else if (old.owner === db.owner) {
      s.out.push(
        ...aclRevokes(`database:${oid}`, null, "DATABASE", d, old.acl, db.acl, s.names, s.notOurs, s.createdRoles),
      );
    }
    if (old.allowConn && !db.allowConn) {
      s.out.push({
        id: `database:${oid}:allowconn`,
        kind: "database",
        outcome: "reverted",
        description: `database ${d} was closed to connections during the window`,
        db: null,
        step: 0,
        sql: [`ALTER DATABASE ${d} ALLOW_CONNECTIONS true`],
        fix: "connections allowed again",
      });
    }
  }
  for (const [oid, old] of Object.entries(before.databases)) {
    if (now.databases[oid] === undefined) {
      s.out.push(
        reported(
          `database:${oid}:dropped`,
          "object_dropped",
          `database ${ident(old.name)} was dropped during the window`,
        ),
      );
    }
  }
}

interface ObjectScope extends DbScope {
  ownOid: number;
  existedBefore: boolean;
}

function compareObjects(db: string, before: DatabaseFacts, now: DatabaseFacts, s: ObjectScope): void {
  const n = s.names.role;
  // Publications made in the window: dropping one drops its members, which are not handled apart.
  const newPublications = new Set(
    Object.entries(now)
      .filter(([key, f]) => f[3] === "PUBLICATION" && before[key] === undefined)
      .map(([, f]) => f[4]),
  );
  for (const [key, fact] of Object.entries(now)) {
    const [ownerOid, acl, def, kw, id, member] = fact;
    if (member === 1) continue; // through its extension
    if (kw.startsWith("PUBLICATION ") && newPublications.has(split2(id)[0]) && before[key] === undefined) continue;
    const old = before[key];
    const what = label(kw, id);
    const fid = `${db}/${key}`;
    if (ACL_ONLY_KINDS.has(kw)) {
      // Default privileges of a role that is dropped at the end go with it (DROP OWNED).
      if (kw === "DEFAULT ACL" && ownerOid !== null && (s.createdRoles.has(ownerOid) || ownerOid === s.ownOid))
        continue;
      if (ownerOid !== null && s.notOurs(ownerOid)) continue;
      const base = old?.[1] ?? (kw === "DEFAULT ACL" ? defaultAclBaseline(id, ownerOid ?? 0) : "");
      s.out.push(...aclRevokes(fid, db, kw, id, base, acl, s.names, s.notOurs, s.createdRoles, ownerOid));
      continue;
    }
    if (old === undefined) {
      if (ownerOid !== null && s.notOurs(ownerOid)) continue;
      s.out.push(created(db, fid, fact, s));
      continue;
    }
    const [oldOwner, oldAcl, oldDef] = old;
    if (ownerOid !== null && oldOwner !== null && ownerOid !== oldOwner) {
      if (s.notOurs(ownerOid)) continue;
      const keyword = alterKw(kw);
      if (keyword === null) {
        s.out.push(
          left(fid, "owner", db, `${what} was given to ${n(ownerOid)} (was ${n(oldOwner)}); it cannot be re-owned`),
        );
      } else {
        s.out.push(ownerBack(fid, db, kw, id, { owner: oldOwner, acl: oldAcl }, { owner: ownerOid, acl }, s.names, 2));
      }
    } else {
      s.out.push(...aclRevokes(fid, db, kw, id, oldAcl, acl, s.names, s.notOurs, s.createdRoles, ownerOid));
      const still = new Set(parseAcl(acl).map(aclKey));
      const removed = parseAcl(oldAcl).filter((i) => !still.has(aclKey(i)));
      if (removed.length > 0) {
        s.out.push(
          reported(
            `${fid}:acl:removed`,
            "privilege",
            `privileges on ${what} were revoked during the window: ${removed.map((i) => `${i.privilege} from ${n(i.grantee)}`).join(", ")}`,
          ),
        );
      }
    }
    if (def !== oldDef) s.out.push(...definitionChanged(db, fid, kw, id, oldDef, def));
  }
  for (const [key, old] of Object.entries(before)) {
    if (now[key] !== undefined || old[5] === 1 || ACL_ONLY_KINDS.has(old[3])) continue;
    const what = label(old[3], old[4]);
    const fid = `${db}/${key}`;
    if (CONTROL_KINDS.has(old[3])) {
      s.out.push(
        left(
          `${fid}:dropped`,
          "object_dropped",
          db,
          `${what} was dropped during the window: a control it enforced may be gone`,
        ),
      );
    } else {
      s.out.push(reported(`${fid}:dropped`, "object_dropped", `${what} was dropped during the window`));
    }
  }
}

/** An object made during the window: hooks dropped, code dropped (or contained), data kept private. */
function created(db: string, fid: string, fact: ObjectFact, s: ObjectScope): Finding {
  const [ownerOid, acl, , kw, id] = fact;
  const n = s.names.role;
  const what = label(kw, id);
  const description = `${what} was created during the window`;
  const keyword = alterKw(kw);
  const gk = grantOn(kw);
  const others = [...new Set(parseAcl(acl).map((i) => i.grantee))].filter(
    (g) => g !== ownerOid && g !== s.owner && !s.createdRoles.has(g),
  );
  const reOwn = ownerOid !== null && ownerOid !== s.owner && keyword !== null;
  const privateSql = [
    ...(reOwn ? [`ALTER ${keyword} ${id} OWNER TO ${ident(s.ownerName)}`] : []),
    ...(gk !== null && others.length > 0 ? [`REVOKE ALL ON ${gk} ${id} FROM ${others.map(n).join(", ")} CASCADE`] : []),
  ];
  if (DATA_KINDS.has(kw)) {
    return {
      id: `${fid}:created`,
      kind: "object_created",
      outcome: "kept",
      description,
      db,
      step: 4,
      sql: privateSql,
      fix: `kept (data is never dropped), owned by ${ident(s.ownerName)}, no privileges for anyone else (PUBLIC included)`,
    };
  }
  const drop = dropSql(kw, id) ?? "";
  if (HOOK_KINDS.has(kw)) {
    return {
      id: `${fid}:created`,
      kind: "object_created",
      outcome: "reverted",
      description,
      db,
      step: 1,
      sql: [drop],
      fix: drop,
    };
  }
  // Code: dropped unless something depends on it, then made inert (and already inert counts as done).
  return {
    id: `${fid}:created`,
    kind: "object_created",
    outcome: "reverted",
    description,
    db,
    step: 3,
    sql: [drop],
    ...(privateSql.length === 0 ? { settled: true as const } : {}),
    fallback:
      keyword === null
        ? { outcome: "left", sql: [], fix: "cannot be dropped (something depends on it) nor re-owned: check it" }
        : {
            outcome: "contained",
            sql: privateSql,
            fix: `kept because something depends on it; owned by ${ident(s.ownerName)}, no privileges for anyone else (EXECUTE for PUBLIC revoked)`,
          },
    fix: drop,
  };
}

/** An existing object given to another owner: owner back, then its ACL exactly as it was. */
function ownerBack(
  fid: string,
  db: string | null,
  kw: string,
  id: string,
  before: { owner: number; acl: string },
  now: { owner: number; acl: string },
  names: Names,
  step: number,
): Finding {
  const n = names.role;
  const keyword = kw === "DATABASE" ? "DATABASE" : (alterKw(kw) ?? kw);
  const gk = grantOn(kw);
  // What PostgreSQL will make of the ACL when the owner goes back, compared with what it was.
  const after = aclNewOwner(parseAcl(now.acl), now.owner, before.owner);
  const was = parseAcl(before.acl);
  const sql = [`ALTER ${keyword} ${id} OWNER TO ${n(before.owner)}`];
  if (gk !== null) {
    for (const { item, optionOnly } of aclAdded(was, after))
      sql.push(...revokeSql(gk, id, item, optionOnly, names, kw));
    for (const { item } of aclAdded(after, was)) {
      sql.push(
        ...asRole(
          item.grantor,
          `GRANT ${item.privilege} ON ${gk} ${id} TO ${n(item.grantee)}${item.grantable ? " WITH GRANT OPTION" : ""}`,
          names,
        ),
      );
    }
  }
  return {
    id: `${fid}:owner`,
    kind: "owner",
    outcome: "reverted",
    description: `${label(kw, id)} was given to ${n(now.owner)} (was ${n(before.owner)})`,
    db,
    step,
    sql,
    fix: `owner ${n(before.owner)} again, privileges as before the window`,
  };
}

function asRole(grantor: number, statement: string, names: Names): string[] {
  return [`SET LOCAL ROLE ${names.role(grantor)}`, statement];
}

function revokeSql(gk: string, id: string, item: AclItem, optionOnly: boolean, names: Names, kw: string): string[] {
  const n = names.role;
  const what = optionOnly ? `GRANT OPTION FOR ${item.privilege}` : item.privilege;
  if (kw === "COLUMN") {
    const [col, table] = split2(id);
    return asRole(item.grantor, `REVOKE ${what} (${col}) ON TABLE ${table} FROM ${n(item.grantee)} CASCADE`, names);
  }
  return asRole(item.grantor, `REVOKE ${what} ON ${gk} ${id} FROM ${n(item.grantee)} CASCADE`, names);
}

/** Privileges added to an existing object (or column, or default privileges): one finding each, revoked as their grantor. */
function aclRevokes(
  fid: string,
  db: string | null,
  kw: string,
  id: string,
  before: string,
  now: string,
  names: Names,
  notOurs: (oid: number) => boolean,
  createdRoles: ReadonlySet<number>,
  owner: number | null = null,
): Finding[] {
  const n = names.role;
  const out: Finding[] = [];
  const what = label(kw, id);
  for (const { item, optionOnly } of aclAdded(parseAcl(before), parseAcl(now))) {
    if (notOurs(item.grantee) || notOurs(item.grantor) || createdRoles.has(item.grantee)) continue;
    if (item.grantee === item.grantor && item.grantee === owner) continue; // an owner's own privileges
    let sql: string[];
    if (kw === "DEFAULT ACL") {
      const [role, schema, type] = id.split("|");
      sql = [
        `ALTER DEFAULT PRIVILEGES FOR ROLE ${role}${schema ? ` IN SCHEMA ${schema}` : ""} REVOKE ${optionOnly ? "GRANT OPTION FOR " : ""}${item.privilege} ON ${DEFACL_TYPES[type ?? ""] ?? ""} FROM ${n(item.grantee)}`,
      ];
    } else {
      const gk = kw === "COLUMN" ? "TABLE" : grantOn(kw);
      if (gk === null) continue;
      sql = revokeSql(gk, id, item, optionOnly, names, kw);
    }
    const privilege = `${optionOnly ? "grant option for " : ""}${item.privilege}`;
    out.push({
      id: `${fid}:acl:${item.grantee}:${item.grantor}:${item.privilege}${optionOnly ? ":option" : ""}`,
      kind: kw === "DEFAULT ACL" ? "default_privilege" : "privilege",
      outcome: "reverted",
      description: `${privilege} on ${what} was granted to ${n(item.grantee)} (grantor ${n(item.grantor)})`,
      db,
      step: 2,
      sql,
      fix: sql.filter((q) => !q.startsWith("SET LOCAL ROLE")).join("; "),
    });
  }
  return out;
}

const ENABLE: Record<string, string> = { O: "ENABLE", D: "DISABLE", R: "ENABLE REPLICA", A: "ENABLE ALWAYS" };

/** What makes an existing object act changed: the flags that can be put back are; bodies and queries cannot. */
function definitionChanged(db: string, fid: string, kw: string, id: string, before: string, now: string): Finding[] {
  const out: Finding[] = [];
  const what = label(kw, id);
  const revert = (suffix: string, description: string, sql: string): Finding => ({
    id: `${fid}:${suffix}`,
    kind: "definition",
    outcome: "reverted",
    description,
    db,
    step: 2,
    sql: [sql],
    fix: sql,
  });
  const [b0 = "", b1 = "", ...bRest] = before.split(":");
  const [n0 = "", n1 = "", ...nRest] = now.split(":");
  if (kw === "FUNCTION" || kw === "PROCEDURE" || kw === "AGGREGATE") {
    if (n0 === "definer" && b0 !== "definer") {
      out.push(
        revert(
          "secdef",
          `${what} was made SECURITY DEFINER`,
          `ALTER ${kw === "AGGREGATE" ? "FUNCTION" : kw} ${id} SECURITY INVOKER`,
        ),
      );
    } else if (n0 !== "definer" && b0 === "definer") {
      out.push(reported(`${fid}:secdef:lost`, "definition", `${what} is no longer SECURITY DEFINER`));
    }
    const bConfig = bRest.join(":");
    const nConfig = nRest.join(":");
    if (bConfig !== nConfig) {
      const items: string[] = bConfig === "" ? [] : (JSON.parse(bConfig) as string[]);
      const k = kw === "AGGREGATE" ? "FUNCTION" : kw;
      out.push({
        id: `${fid}:config`,
        kind: "definition",
        outcome: "reverted",
        description: `the settings of ${what} changed during the window (${nConfig || "none"}; were ${bConfig || "none"})`,
        db,
        step: 2,
        sql: [`ALTER ${k} ${id} RESET ALL`, ...items.map((i) => `ALTER ${k} ${id} SET ${settingClause(i)}`)],
        fix: `settings put back: [${items.join(", ")}]`,
      });
    }
    if (b1 !== n1)
      out.push(
        left(
          `${fid}:body`,
          "definition",
          db,
          `the body of ${what} was replaced during the window; the previous one is not kept`,
        ),
      );
    return out;
  }
  if (["TABLE", "VIEW", "MATERIALIZED VIEW", "FOREIGN TABLE", "SEQUENCE"].includes(kw)) {
    if (b0 === "rls" && n0 !== "rls") {
      out.push(
        revert("rls", `row-level security on ${what} was switched off`, `ALTER TABLE ${id} ENABLE ROW LEVEL SECURITY`),
      );
    }
    if (b1 === "force" && n1 !== "force") {
      out.push(
        revert(
          "force",
          `row-level security is no longer forced on ${what}`,
          `ALTER TABLE ${id} FORCE ROW LEVEL SECURITY`,
        ),
      );
    }
    if (bRest.join(":") !== nRest.join(":")) {
      out.push(
        left(
          `${fid}:query`,
          "definition",
          db,
          `the query of ${what} was replaced during the window; the previous one is not kept`,
        ),
      );
    }
    return out;
  }
  if (kw === "TRIGGER" || kw === "RULE" || kw === "EVENT TRIGGER") {
    if (b0 !== n0) {
      const [name, table] = split2(id);
      const sql =
        kw === "EVENT TRIGGER"
          ? `ALTER EVENT TRIGGER ${id} ${ENABLE[b0] ?? "ENABLE"}`
          : `ALTER TABLE ${table} ${ENABLE[b0] ?? "ENABLE"} ${kw} ${name}`;
      out.push(
        revert(
          "enabled",
          `${what} was ${n0 === "D" ? "disabled" : `switched to ${ENABLE[n0] ?? n0}`} during the window`,
          sql,
        ),
      );
    }
    if ([b1, ...bRest].join(":") !== [n1, ...nRest].join(":")) {
      out.push(
        left(
          `${fid}:definition`,
          "definition",
          db,
          `${what} was redefined during the window; the previous definition is not kept`,
        ),
      );
    }
    return out;
  }
  out.push(
    left(
      `${fid}:definition`,
      "definition",
      db,
      `${what} was changed during the window; the previous definition is not kept`,
    ),
  );
  return out;
}

function until(v: string | null): number {
  if (v === null || v === "infinity") return Number.POSITIVE_INFINITY;
  if (v === "-infinity") return Number.NEGATIVE_INFINITY;
  return Date.parse(v);
}

function reported(id: string, kind: string, description: string): Finding {
  return {
    id,
    kind,
    outcome: "reported",
    description,
    db: null,
    step: 9,
    sql: [],
    fix: "left as is: access taken away in the window is not given back",
  };
}

function left(id: string, kind: string, db: string | null, description: string): Finding {
  return {
    id,
    kind,
    outcome: "left",
    description,
    db,
    step: 9,
    sql: [],
    fix: "cannot be put back: check it and record what was done",
  };
}
