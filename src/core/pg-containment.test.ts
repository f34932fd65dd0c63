// biome-ignore-all lint/style/noRestrictedImports: tests import vitest; the purity rule guards shipped core code
import { describe, expect, it } from "vitest";
import {
  aclNewOwner,
  assessReach,
  type CatalogSnapshot,
  type ClusterFacts,
  type CompareContext,
  compareCatalogs,
  type DatabaseFacts,
  DRIFT_OUTCOMES,
  type Finding,
  type ObjectFact,
  parseAcl,
  type RoleFact,
  settingClause,
} from "./pg-containment.js";

// An estate as the connector reads it: the bootstrap superuser (10, also the broker's admin), the
// table owner, the recovery role (a member of the owner: an ordinary DBA recovery role), a
// bystander, and the grant's own login role. Database 5 is `postgres`, 16400 is `app`.
const POSTGRES = 10;
const APP_OWNER = 16384;
const RECOVERY = 16385;
const REPORTING = 16386;
const OWN = 16390;
const APP = "16400";

const role = (name: string, attrs: RoleFact["attrs"] = ["inherit"], password: string | null = null): RoleFact => ({
  name,
  attrs,
  validUntil: null,
  password,
});

const ROLES: Record<string, RoleFact> = {
  [POSTGRES]: role(
    "postgres",
    ["super", "inherit", "createrole", "createdb", "login", "replication", "bypassrls"],
    "d0",
  ),
  [APP_OWNER]: role("app_owner"),
  [RECOVERY]: role("recovery_rw"),
  [REPORTING]: role("reporting", ["inherit", "login"], "d1"),
  [OWN]: { ...role("bg_g1", ["inherit", "login"], "d2"), validUntil: "2026-12-01 01:00:00+00" },
};

const TABLE = "pg_class:20000";
const FUNC = "pg_proc:20001";
const APP_TABLE: ObjectFact = [
  APP_OWNER,
  `${APP_OWNER}:${APP_OWNER}:DELETE,${APP_OWNER}:${APP_OWNER}:SELECT,${RECOVERY}:${APP_OWNER}:SELECT*`,
  "::",
  "TABLE",
  "public.accounts",
];
const APP_FUNC: ObjectFact = [
  APP_OWNER,
  `0:${APP_OWNER}:EXECUTE,${APP_OWNER}:${APP_OWNER}:EXECUTE`,
  ":aaaa:",
  "FUNCTION",
  "public.total()",
];

function cluster(over: Partial<ClusterFacts> = {}): ClusterFacts {
  return {
    version: 150000,
    at: Date.parse("2026-12-01T00:00:00Z"),
    passwordsCompared: true,
    roles: ROLES,
    members: {
      [`${APP_OWNER}>${RECOVERY}`]: { admin: false, grantor: POSTGRES },
      [`${RECOVERY}>${OWN}`]: { admin: false, grantor: POSTGRES },
    },
    settings: {},
    databases: {
      "5": { name: "postgres", owner: POSTGRES, allowConn: true, acl: `0:${POSTGRES}:CONNECT` },
      [APP]: { name: "app", owner: APP_OWNER, allowConn: true, acl: `0:${APP_OWNER}:CONNECT` },
    },
    subscriptions: {},
    ...over,
  };
}

const BEFORE: CatalogSnapshot = {
  cluster: cluster(),
  databases: { "5": {}, [APP]: { [TABLE]: APP_TABLE, [FUNC]: APP_FUNC } },
};

/** The end of the window: `BEFORE` with the given changes. */
function atEnd(changes: { cluster?: Partial<ClusterFacts>; app?: DatabaseFacts; postgres?: DatabaseFacts }) {
  return {
    cluster: cluster(changes.cluster),
    databases: {
      "5": changes.postgres ?? {},
      [APP]: changes.app ?? (BEFORE.databases[APP] as DatabaseFacts),
    },
  } satisfies CatalogSnapshot;
}

const CTX: CompareContext = {
  ownRole: "bg_g1",
  rolePrefix: "bg_",
  owner: "app_owner",
  ignored: new Set(["postgres"]),
  adminOid: POSTGRES,
};

const compare = (now: CatalogSnapshot, before: CatalogSnapshot = BEFORE, ctx: CompareContext = CTX): Finding[] =>
  compareCatalogs(before, now, ctx);
const only = (findings: Finding[]): Finding => {
  expect(findings).toHaveLength(1);
  return findings[0] as Finding;
};
const sqlOf = (f: Finding) => f.sql.join("; ");

describe("compareCatalogs: nothing changed", () => {
  it("finds nothing when the cluster is as it was at activation", () => {
    expect(compare(atEnd({}))).toEqual([]);
  });

  it("ignores the grant's own role and other grants' roles, made or dropped by the broker", () => {
    const other = 16391;
    const withOther = cluster({
      roles: { ...ROLES, [other]: role("bg_g2", ["inherit", "login"], "d3") },
      members: { ...cluster().members, [`${RECOVERY}>${other}`]: { admin: false, grantor: POSTGRES } },
    });
    // Another grant activated during the window: its role is not the holder's doing.
    expect(compare(atEnd({ cluster: withOther }))).toEqual([]);
    // Another grant that was live at activation ended during the window: its role is gone, silently.
    expect(compare(atEnd({}), { ...BEFORE, cluster: withOther })).toEqual([]);
  });
});

describe("compareCatalogs: privileges and owners", () => {
  it("revokes a privilege given to another role during the window, as its grantor", () => {
    const app = { ...BEFORE.databases[APP], [TABLE]: [...APP_TABLE] as ObjectFact };
    (app[TABLE] as unknown as string[])[1] = `${APP_TABLE[1]},${REPORTING}:${RECOVERY}:SELECT`;
    const f = only(compare(atEnd({ app })));
    expect(f).toMatchObject({ kind: "privilege", outcome: "reverted", db: "app", step: 2 });
    expect(f.sql).toEqual([
      "SET LOCAL ROLE recovery_rw",
      "REVOKE SELECT ON TABLE public.accounts FROM reporting CASCADE",
    ]);
  });

  it("revokes a grant option gained on a privilege that was already there", () => {
    const table = (acl: string): DatabaseFacts => ({
      ...BEFORE.databases[APP],
      [TABLE]: [APP_OWNER, acl, "::", "TABLE", "public.accounts"],
    });
    const before = { ...BEFORE, databases: { ...BEFORE.databases, [APP]: table(`${REPORTING}:${APP_OWNER}:SELECT`) } };
    const f = only(compare(atEnd({ app: table(`${REPORTING}:${APP_OWNER}:SELECT*`) }), before));
    expect(sqlOf(f)).toBe(
      "SET LOCAL ROLE app_owner; REVOKE GRANT OPTION FOR SELECT ON TABLE public.accounts FROM reporting CASCADE",
    );
  });

  it("leaves an owner's own privileges on its object alone", () => {
    const app = { ...BEFORE.databases[APP], [TABLE]: [...APP_TABLE] as ObjectFact };
    (app[TABLE] as unknown as string[])[1] = `${APP_TABLE[1]},${APP_OWNER}:${APP_OWNER}:UPDATE`;
    expect(compare(atEnd({ app }))).toEqual([]);
  });

  it("gives a table handed to another role back to its owner without touching another recovery role's privileges", () => {
    // ALTER TABLE … OWNER TO reporting: PostgreSQL rewrites the owner as grantee and grantor.
    const moved = aclNewOwner(parseAcl(APP_TABLE[1]), APP_OWNER, REPORTING)
      .map((i) => `${i.grantee}:${i.grantor}:${i.privilege}${i.grantable ? "*" : ""}`)
      .join(",");
    const app = {
      ...BEFORE.databases[APP],
      [TABLE]: [REPORTING, moved, "::", "TABLE", "public.accounts"] as ObjectFact,
    };
    const f = only(compare(atEnd({ app })));
    expect(f).toMatchObject({ kind: "owner", outcome: "reverted", step: 2 });
    // Moving the owner back restores the ACL exactly: no REVOKE, so recovery_rw keeps SELECT.
    expect(f.sql).toEqual(["ALTER TABLE public.accounts OWNER TO app_owner"]);
  });

  it("gives a database handed to another role back, and revokes a CONNECT granted on one", () => {
    const app = (owner: number, acl: string) => ({
      databases: { ...cluster().databases, [APP]: { name: "app", owner, allowConn: true, acl } },
    });
    const handed = compare(atEnd({ cluster: app(REPORTING, `0:${REPORTING}:CONNECT`) }));
    expect(only(handed).sql[0]).toBe("ALTER DATABASE app OWNER TO app_owner");
    const granted = compare(
      atEnd({ cluster: app(APP_OWNER, `0:${APP_OWNER}:CONNECT,${REPORTING}:${APP_OWNER}:CREATE`) }),
    );
    expect(only(granted).sql).toEqual([
      "SET LOCAL ROLE app_owner",
      "REVOKE CREATE ON DATABASE app FROM reporting CASCADE",
    ]);
  });

  it("leaves what the broker's admin (an ignored role) granted alone", () => {
    const dbs = {
      ...cluster().databases,
      "5": {
        name: "postgres",
        owner: POSTGRES,
        allowConn: true,
        acl: `0:${POSTGRES}:CONNECT,${REPORTING}:${POSTGRES}:CREATE`,
      },
    };
    expect(compare(atEnd({ cluster: { databases: dbs } }))).toEqual([]);
  });

  it("revokes default privileges set for a role in reach", () => {
    const app = {
      ...BEFORE.databases[APP],
      "pg_default_acl:16384:0:r": [
        APP_OWNER,
        `${REPORTING}:${APP_OWNER}:INSERT`,
        "",
        "DEFAULT ACL",
        "app_owner||r",
      ] as ObjectFact,
    };
    const f = only(compare(atEnd({ app })));
    expect(f).toMatchObject({ kind: "default_privilege", outcome: "reverted" });
    expect(f.sql).toEqual(["ALTER DEFAULT PRIVILEGES FOR ROLE app_owner REVOKE INSERT ON TABLES FROM reporting"]);
  });

  it("reports a privilege taken away during the window, and gives nothing back", () => {
    const app = { ...BEFORE.databases[APP], [TABLE]: [...APP_TABLE] as ObjectFact };
    (app[TABLE] as unknown as string[])[1] = `${APP_OWNER}:${APP_OWNER}:DELETE,${APP_OWNER}:${APP_OWNER}:SELECT`;
    const f = only(compare(atEnd({ app })));
    expect(f).toMatchObject({ outcome: "reported", sql: [] });
    expect(f.description).toContain("SELECT from recovery_rw");
  });
});

describe("compareCatalogs: objects made during the window", () => {
  const made = (fact: ObjectFact, key = "pg_proc:30000") =>
    only(compare(atEnd({ app: { ...BEFORE.databases[APP], [key]: fact } })));

  it("drops a SECURITY DEFINER function left with PostgreSQL's default EXECUTE for PUBLIC; if something depends on it, contains it", () => {
    const f = made([
      APP_OWNER,
      `0:${APP_OWNER}:EXECUTE,${APP_OWNER}:${APP_OWNER}:EXECUTE`,
      "definer:bbbb:",
      "FUNCTION",
      "public.backdoor()",
    ]);
    expect(f).toMatchObject({
      kind: "object_created",
      outcome: "reverted",
      step: 3,
      sql: ["DROP FUNCTION public.backdoor()"],
    });
    expect(f.fallback?.outcome).toBe("contained");
    expect(f.fallback?.sql).toEqual(["REVOKE ALL ON FUNCTION public.backdoor() FROM PUBLIC CASCADE"]);
    expect(DRIFT_OUTCOMES.has(f.fallback?.outcome ?? "reverted")).toBe(true);
  });

  it("gives code made as the holder's own role to the configured owner when it must be kept", () => {
    const f = made([OWN, `0:${OWN}:EXECUTE,${OWN}:${OWN}:EXECUTE`, ":cccc:", "FUNCTION", "public.helper()"]);
    expect(f.fallback?.sql).toEqual([
      "ALTER FUNCTION public.helper() OWNER TO app_owner",
      "REVOKE ALL ON FUNCTION public.helper() FROM PUBLIC CASCADE",
    ]);
  });

  it("counts code already owned by the owner and private as settled when it cannot be dropped", () => {
    const f = made([APP_OWNER, `${APP_OWNER}:${APP_OWNER}:EXECUTE`, ":dddd:", "FUNCTION", "public.inert()"]);
    expect(f.settled).toBe(true);
  });

  it("keeps a table (data is never dropped), owned by the configured owner and private", () => {
    const f = made(
      [REPORTING, `${REPORTING}:${REPORTING}:SELECT,0:${REPORTING}:SELECT`, "::", "TABLE", "public.stash"],
      "pg_class:30001",
    );
    expect(f).toMatchObject({ outcome: "kept", step: 4 });
    // The maker's own privileges move to the new owner with it (PostgreSQL's owner change); PUBLIC's are revoked.
    expect(f.sql).toEqual([
      "ALTER TABLE public.stash OWNER TO app_owner",
      "REVOKE ALL ON TABLE public.stash FROM PUBLIC CASCADE",
    ]);
  });

  it("drops hooks: a trigger, a policy, a publication", () => {
    expect(made([null, "", "O:1:2:x", "TRIGGER", "t1|public.accounts"], "pg_trigger:1").sql).toEqual([
      "DROP TRIGGER t1 ON public.accounts",
    ]);
    expect(made([null, "", "", "POLICY", "p1|public.accounts"], "pg_policy:1")).toMatchObject({
      outcome: "reverted",
      step: 1,
      sql: ["DROP POLICY p1 ON public.accounts"],
    });
    expect(made([APP_OWNER, "", "", "PUBLICATION", "leak"], "pg_publication:1").sql).toEqual(["DROP PUBLICATION leak"]);
  });

  it("keeps a database made during the window, owned by the configured owner and closed to PUBLIC", () => {
    const dbs = {
      ...cluster().databases,
      "16500": { name: "side", owner: RECOVERY, allowConn: true, acl: `0:${RECOVERY}:CONNECT` },
    };
    const findings = compare({
      ...atEnd({ cluster: { databases: dbs } }),
      databases: { ...atEnd({}).databases, "16500": {} },
    });
    const f = only(findings);
    expect(f).toMatchObject({ outcome: "kept", step: 5 });
    expect(f.sql).toEqual([
      "ALTER DATABASE side OWNER TO app_owner",
      "REVOKE ALL ON DATABASE side FROM PUBLIC CASCADE",
    ]);
  });

  it("leaves (and pages) a database that could not be read at activation: nothing in it can be judged", () => {
    const before = { ...BEFORE, databases: { [APP]: BEFORE.databases[APP] as DatabaseFacts } };
    const f = only(compare(atEnd({}), before));
    expect(f).toMatchObject({ outcome: "left", id: "database:5:no_baseline" });
  });
});

describe("compareCatalogs: definitions", () => {
  const changed = (key: string, fact: ObjectFact) => compare(atEnd({ app: { ...BEFORE.databases[APP], [key]: fact } }));

  it("puts SECURITY INVOKER back on a function made SECURITY DEFINER", () => {
    const f = only(changed(FUNC, [APP_OWNER, APP_FUNC[1], "definer:aaaa:", "FUNCTION", "public.total()"]));
    expect(f.sql).toEqual(["ALTER FUNCTION public.total() SECURITY INVOKER"]);
  });

  it("leaves a replaced function body (the old one is not kept) and pages", () => {
    const f = only(changed(FUNC, [APP_OWNER, APP_FUNC[1], ":ffff:", "FUNCTION", "public.total()"]));
    expect(f).toMatchObject({ outcome: "left", kind: "definition", sql: [] });
    expect(DRIFT_OUTCOMES.has(f.outcome)).toBe(true);
  });

  it("switches row-level security back on", () => {
    const before: CatalogSnapshot = {
      ...BEFORE,
      databases: {
        ...BEFORE.databases,
        [APP]: {
          [TABLE]: [APP_OWNER, APP_TABLE[1], "rls::", "TABLE", "public.accounts"],
          [FUNC]: APP_FUNC,
        },
      },
    };
    const f = only(compare(atEnd({}), before));
    expect(f.sql).toEqual(["ALTER TABLE public.accounts ENABLE ROW LEVEL SECURITY"]);
  });

  it("leaves a dropped policy (a control may be gone) but only reports a dropped table", () => {
    const policy: ObjectFact = [null, "", "", "POLICY", "p|public.accounts"];
    const before = {
      ...BEFORE,
      databases: { ...BEFORE.databases, [APP]: { ...BEFORE.databases[APP], "pg_policy:1": policy } },
    };
    expect(only(compare(atEnd({}), before))).toMatchObject({ outcome: "left", kind: "object_dropped" });
    const { [TABLE]: _, ...withoutTable } = BEFORE.databases[APP] as DatabaseFacts;
    expect(only(compare(atEnd({ app: withoutTable })))).toMatchObject({ outcome: "reported", kind: "object_dropped" });
  });
});

describe("compareCatalogs: roles", () => {
  it("contains a login role made during the window, whatever its name, and drops it", () => {
    const backdoor = 16392;
    const now = atEnd({
      cluster: {
        roles: { ...ROLES, [backdoor]: role("bg_backdoor", ["inherit", "login"], "d9") },
        // Granted by the holder's role, not by the broker's admin: not another grant's role.
        members: { ...cluster().members, [`${APP_OWNER}>${backdoor}`]: { admin: false, grantor: RECOVERY } },
      },
    });
    const f = only(compare(now));
    expect(f).toMatchObject({ kind: "role_created", outcome: "reverted", step: 0, dropRole: "bg_backdoor" });
    expect(f.sql).toEqual([
      "ALTER ROLE bg_backdoor NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS NOLOGIN PASSWORD NULL VALID UNTIL '-infinity'",
      "REVOKE app_owner FROM bg_backdoor CASCADE",
    ]);
    expect(f.terminate).toEqual({ role: "bg_backdoor", since: null });
  });

  it("finds a contained role again with nothing left to do but drop it (idempotent)", () => {
    const r = 16392;
    const now = atEnd({
      cluster: { roles: { ...ROLES, [r]: { ...role("x", ["inherit"], null), validUntil: "-infinity" } } },
    });
    const f = only(compare(now));
    expect(f.id).toBe(`role:${r}:created`);
    expect(f.sql).toEqual([]);
    expect(f.dropRole).toBe("x");
  });

  it("removes a password changed during the window (the old verifier was never read) and ends sessions since the start", () => {
    const now = atEnd({
      cluster: { roles: { ...ROLES, [REPORTING]: role("reporting", ["inherit", "login"], "new") } },
    });
    const f = only(compare(now));
    expect(f).toMatchObject({ kind: "password", outcome: "contained", sql: ["ALTER ROLE reporting PASSWORD NULL"] });
    expect(f.terminate).toEqual({ role: "reporting", since: BEFORE.cluster.at });
  });

  it("removes a password given to a role that had none (reverted, not contained)", () => {
    const now = atEnd({ cluster: { roles: { ...ROLES, [APP_OWNER]: role("app_owner", ["inherit"], "set") } } });
    expect(only(compare(now))).toMatchObject({ outcome: "reverted", sql: ["ALTER ROLE app_owner PASSWORD NULL"] });
  });

  it("does not compare passwords when they could not be read", () => {
    const blind = (c: ClusterFacts): ClusterFacts => ({
      ...c,
      passwordsCompared: false,
      roles: Object.fromEntries(Object.entries(c.roles).map(([k, r]) => [k, { ...r, password: undefined }])),
    });
    const now = atEnd({
      cluster: { roles: { ...ROLES, [REPORTING]: role("reporting", ["inherit", "login"], "new") } },
    });
    expect(compare({ ...now, cluster: blind(now.cluster) }, { ...BEFORE, cluster: blind(BEFORE.cluster) })).toEqual([]);
  });

  it("takes back attributes gained and ends the sessions a gained LOGIN allowed", () => {
    const now = atEnd({
      cluster: { roles: { ...ROLES, [APP_OWNER]: role("app_owner", ["inherit", "login", "createdb"]) } },
    });
    const findings = compare(now);
    expect(findings.map((f) => f.sql[0]).sort()).toEqual([
      "ALTER ROLE app_owner NOCREATEDB",
      "ALTER ROLE app_owner NOLOGIN",
    ]);
    expect(findings.find((f) => f.id.endsWith(":login"))?.terminate).toEqual({
      role: "app_owner",
      since: BEFORE.cluster.at,
    });
  });

  it("puts VALID UNTIL back when it was moved later, not when it was moved earlier", () => {
    const later = atEnd({
      cluster: { roles: { ...ROLES, [REPORTING]: { ...(ROLES[REPORTING] as RoleFact), validUntil: "infinity" } } },
    });
    const before = {
      ...BEFORE,
      cluster: cluster({
        roles: { ...ROLES, [REPORTING]: { ...(ROLES[REPORTING] as RoleFact), validUntil: "2027-01-01 00:00:00+00" } },
      }),
    };
    expect(only(compare(later, before)).sql).toEqual(["ALTER ROLE reporting VALID UNTIL '2027-01-01 00:00:00+00'"]);
    expect(compare(before, later)).toEqual([]);
  });

  it("revokes a membership granted during the window and an admin option gained; reports one taken away", () => {
    const members = {
      ...cluster().members,
      [`${APP_OWNER}>${REPORTING}`]: { admin: false, grantor: RECOVERY },
      [`${APP_OWNER}>${RECOVERY}`]: { admin: true, grantor: POSTGRES },
    };
    const findings = compare(atEnd({ cluster: { members } }));
    expect(findings.map((f) => f.sql[0]).sort()).toEqual([
      "REVOKE ADMIN OPTION FOR app_owner FROM recovery_rw CASCADE",
      "REVOKE app_owner FROM reporting CASCADE",
    ]);
    const { [`${APP_OWNER}>${RECOVERY}`]: _, ...fewer } = cluster().members;
    expect(only(compare(atEnd({ cluster: { members: fewer } })))).toMatchObject({
      outcome: "reported",
      kind: "membership",
    });
  });

  it("puts per-role settings back exactly", () => {
    const before = { ...BEFORE, cluster: cluster({ settings: { [`0:${REPORTING}`]: ["search_path=app, public"] } }) };
    const now = atEnd({
      cluster: { settings: { [`0:${REPORTING}`]: ["search_path=evil, public", "role=app_owner"] } },
    });
    expect(only(compare(now, before)).sql).toEqual([
      "ALTER ROLE reporting RESET ALL",
      "ALTER ROLE reporting SET search_path = app, public",
    ]);
  });

  it("leaves changes to roles it is told to ignore alone", () => {
    const now = atEnd({
      cluster: { roles: { ...ROLES, [REPORTING]: role("reporting", ["inherit", "login"], "new") } },
    });
    expect(compare(now, BEFORE, { ...CTX, ignored: new Set(["postgres", "reporting"]) })).toEqual([]);
  });
});

describe("assessReach", () => {
  it("follows memberships: a recovery role in the owner's role can act as the owner", () => {
    const a = assessReach(cluster(), ["recovery_rw"]);
    expect(a.reach).toEqual(["app_owner", "recovery_rw"]);
    expect(a.impossible).toEqual([]);
    expect(a.missing).toEqual([]);
  });

  it("refuses SUPERUSER anywhere in the reach, server-file roles, and CREATEROLE on PostgreSQL 15", () => {
    const roles = { ...ROLES, [APP_OWNER]: role("app_owner", ["inherit", "createrole"]) };
    expect(assessReach(cluster({ roles }), ["recovery_rw"]).impossible[0]).toMatch(
      /^CREATEROLE \(app_owner\) on PostgreSQL 15/,
    );
    const on16 = assessReach(cluster({ roles, version: 160000 }), ["recovery_rw"]);
    expect(on16.impossible).toEqual([]);
    expect(on16.limits.some((l) => l.startsWith("CREATEROLE"))).toBe(true);
    const sup = { ...ROLES, [APP_OWNER]: role("app_owner", ["super"]) };
    expect(assessReach(cluster({ roles: sup }), ["recovery_rw"]).impossible[0]).toMatch(/^SUPERUSER \(app_owner\)/);
    const files = 4569;
    const withFiles = cluster({
      roles: { ...ROLES, [files]: role("pg_write_server_files") },
      members: { ...cluster().members, [`${files}>${APP_OWNER}`]: { admin: false, grantor: POSTGRES } },
    });
    expect(assessReach(withFiles, ["recovery_rw"]).impossible[0]).toMatch(/pg_write_server_files/);
  });

  it("names a recovery role that does not exist", () => {
    expect(assessReach(cluster(), ["nope"]).missing).toEqual(["nope"]);
  });
});

describe("ACL helpers", () => {
  it("moves an owner as PostgreSQL does, merging duplicates", () => {
    const moved = aclNewOwner(parseAcl(`1:1:SELECT,2:1:SELECT,2:2:SELECT*`), 1, 2);
    expect(moved).toEqual([{ grantee: 2, grantor: 2, privilege: "SELECT", grantable: true }]);
  });

  it("writes list settings as written and others as literals", () => {
    expect(settingClause("search_path=app, public")).toBe("search_path = app, public");
    expect(settingClause("statement_timeout=5s")).toBe("statement_timeout = '5s'");
    expect(settingClause("work_mem=it's")).toBe("work_mem = 'it''s'");
  });
});
