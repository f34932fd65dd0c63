/**
 * What the containment comparison reads from a PostgreSQL cluster (ADR 0009): one query for the
 * cluster-wide catalogs (roles, memberships, settings, databases, subscriptions) and one per
 * database for its objects. Objects are keyed by catalog and OID; ACLs are exploded with
 * `acldefault` so PostgreSQL's implicit grants (`EXECUTE` to `PUBLIC` on a new function) are
 * compared like explicit ones. Password verifiers are digested in SQL: only a SHA-256 of each
 * `pg_authid.rolpassword` leaves the server, never the verifier.
 * @see https://www.postgresql.org/docs/current/catalogs.html
 */
import type pg from "pg";
import type { ClusterFacts, DatabaseFacts, ObjectFact } from "../core/pg-containment.js";

/** An ACL as compared: `grantee:grantor:PRIVILEGE[*]` items (OIDs; 0 = PUBLIC), sorted, comma-joined. */
const ACL = (acl: string) => `(SELECT coalesce(string_agg(x.grantee || ':' || x.grantor || ':' || x.privilege_type
  || CASE WHEN x.is_grantable THEN '*' ELSE '' END, ',' ORDER BY x.grantee, x.grantor, x.privilege_type), '')
  FROM aclexplode(${acl}) x)`;

/** A relation's SQL identity, schema-qualified whatever the search path. */
const REL = (oid: string) => `(pg_identify_object('pg_class'::regclass, ${oid}, 0)).identity`;

const USER_NSP = `(SELECT oid FROM pg_namespace WHERE nspname NOT IN ('pg_catalog', 'information_schema')
  AND nspname NOT LIKE 'pg\\_toast%' AND nspname NOT LIKE 'pg\\_temp\\_%')`;

/** Is the object a member of an extension (handled through its extension). */
const EXT_MEMBER = (cls: string, oid: string) =>
  `EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = '${cls}'::regclass AND e.objid = ${oid} AND e.deptype = 'e')`;

const HANDLED = [
  "pg_class",
  "pg_proc",
  "pg_namespace",
  "pg_type",
  "pg_language",
  "pg_largeobject",
  "pg_foreign_data_wrapper",
  "pg_foreign_server",
  "pg_event_trigger",
  "pg_publication",
  "pg_extension",
  "pg_default_acl",
  "pg_user_mapping",
  "pg_database",
  "pg_authid",
  "pg_tablespace",
  "pg_subscription",
];

/**
 * One row per object of the current database: key, owner, ACL, what makes it act (`d`), the SQL
 * keyword of its kind (`kw`), its SQL identity, and whether it belongs to an extension.
 */
export const databaseQuery = (version: number) => `
WITH rel AS (
  SELECT c.oid, c.relowner, c.relacl, c.relkind, c.relrowsecurity, c.relforcerowsecurity, c.relnamespace
    FROM pg_class c WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND c.relnamespace IN ${USER_NSP}
)
SELECT 'pg_class:' || c.oid AS k, c.relowner::int AS o,
       ${ACL(`coalesce(c.relacl, acldefault(CASE WHEN c.relkind = 'S' THEN 's' ELSE 'r' END::"char", c.relowner))`)} AS a,
       CASE WHEN c.relrowsecurity THEN 'rls' ELSE '' END || ':' || CASE WHEN c.relforcerowsecurity THEN 'force' ELSE '' END
         || ':' || coalesce(md5(r.ev_action::text), '') AS d,
       CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'S' THEN 'SEQUENCE'
         WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END AS kw,
       ${REL("c.oid")} AS id, ${EXT_MEMBER("pg_class", "c.oid")} AS m
  FROM rel c LEFT JOIN pg_rewrite r ON r.ev_class = c.oid AND r.rulename = '_RETURN'
UNION ALL
SELECT 'pg_attribute:' || a.attrelid || '.' || a.attnum, c.relowner::int, ${ACL("a.attacl")}, '', 'COLUMN',
       quote_ident(a.attname) || '|' || ${REL("c.oid")}, false
  FROM pg_attribute a JOIN rel c ON c.oid = a.attrelid WHERE a.attacl IS NOT NULL AND a.attnum > 0 AND NOT a.attisdropped
UNION ALL
SELECT 'pg_proc:' || p.oid, p.proowner::int, ${ACL(`coalesce(p.proacl, acldefault('f', p.proowner))`)},
       CASE WHEN p.prosecdef THEN 'definer' ELSE '' END || ':' || md5(coalesce(p.prosrc, '') || ':' || coalesce(p.probin, ''))
         || ':' || coalesce(array_to_json(p.proconfig)::text, ''),
       CASE p.prokind WHEN 'p' THEN 'PROCEDURE' WHEN 'a' THEN 'AGGREGATE' ELSE 'FUNCTION' END,
       (pg_identify_object('pg_proc'::regclass, p.oid, 0)).identity, ${EXT_MEMBER("pg_proc", "p.oid")}
  FROM pg_proc p WHERE p.pronamespace IN ${USER_NSP}
UNION ALL
SELECT 'pg_namespace:' || n.oid, n.nspowner::int, ${ACL(`coalesce(n.nspacl, acldefault('n', n.nspowner))`)}, '', 'SCHEMA',
       quote_ident(n.nspname), ${EXT_MEMBER("pg_namespace", "n.oid")}
  FROM pg_namespace n WHERE n.oid IN ${USER_NSP}
UNION ALL
SELECT 'pg_type:' || t.oid, t.typowner::int, ${ACL(`coalesce(t.typacl, acldefault('T', t.typowner))`)}, '',
       CASE WHEN t.typtype = 'd' THEN 'DOMAIN' ELSE 'TYPE' END, (pg_identify_object('pg_type'::regclass, t.oid, 0)).identity, ${EXT_MEMBER("pg_type", "t.oid")}
  FROM pg_type t WHERE t.typnamespace IN ${USER_NSP} AND t.typtype IN ('b', 'c', 'd', 'e', 'r', 'm')
   AND NOT (t.typcategory = 'A' AND t.typelem <> 0)
   AND (t.typrelid = 0 OR (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c')
UNION ALL
SELECT 'pg_language:' || l.oid, l.lanowner::int, ${ACL(`coalesce(l.lanacl, acldefault('l', l.lanowner))`)}, '', 'LANGUAGE',
       quote_ident(l.lanname), ${EXT_MEMBER("pg_language", "l.oid")}
  FROM pg_language l WHERE l.lanispl
UNION ALL
SELECT 'pg_largeobject:' || lo.oid, lo.lomowner::int, ${ACL(`coalesce(lo.lomacl, acldefault('L', lo.lomowner))`)}, '',
       'LARGE OBJECT', lo.oid::text, false
  FROM pg_largeobject_metadata lo
UNION ALL
SELECT 'pg_foreign_data_wrapper:' || w.oid, w.fdwowner::int, ${ACL(`coalesce(w.fdwacl, acldefault('F', w.fdwowner))`)},
       w.fdwhandler::text || ':' || w.fdwvalidator::text, 'FOREIGN DATA WRAPPER', quote_ident(w.fdwname),
       ${EXT_MEMBER("pg_foreign_data_wrapper", "w.oid")}
  FROM pg_foreign_data_wrapper w
UNION ALL
SELECT 'pg_foreign_server:' || s.oid, s.srvowner::int, ${ACL(`coalesce(s.srvacl, acldefault('S', s.srvowner))`)},
       md5(coalesce(s.srvoptions::text, '')), 'SERVER', quote_ident(s.srvname), ${EXT_MEMBER("pg_foreign_server", "s.oid")}
  FROM pg_foreign_server s
UNION ALL
SELECT 'pg_user_mapping:' || u.oid, NULL, '', md5(coalesce(u.umoptions::text, '')), 'USER MAPPING',
       CASE WHEN u.umuser = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(u.umuser)) END || '|' || quote_ident(s.srvname), false
  FROM pg_user_mapping u JOIN pg_foreign_server s ON s.oid = u.umserver
UNION ALL
SELECT 'pg_event_trigger:' || e.oid, e.evtowner::int, '', e.evtenabled::text || ':' || e.evtfoid::text,
       'EVENT TRIGGER', quote_ident(e.evtname), false
  FROM pg_event_trigger e
UNION ALL
SELECT 'pg_publication:' || p.oid, p.pubowner::int, '', concat_ws(':', p.puballtables, p.pubinsert, p.pubupdate, p.pubdelete, p.pubtruncate),
       'PUBLICATION', quote_ident(p.pubname), false
  FROM pg_publication p
UNION ALL
SELECT 'pg_publication_rel:' || r.oid, NULL, '', '', 'PUBLICATION RELATION',
       quote_ident(p.pubname) || '|' || ${REL("r.prrelid")}, false
  FROM pg_publication_rel r JOIN pg_publication p ON p.oid = r.prpubid
${
  version >= 150000
    ? `UNION ALL
SELECT 'pg_publication_namespace:' || pn.oid, NULL, '', '', 'PUBLICATION SCHEMA',
       quote_ident(p.pubname) || '|' || quote_ident(n.nspname), false
  FROM pg_publication_namespace pn JOIN pg_publication p ON p.oid = pn.pnpubid JOIN pg_namespace n ON n.oid = pn.pnnspid`
    : ""
}
UNION ALL
SELECT 'pg_extension:' || x.oid, x.extowner::int, '', x.extversion, 'EXTENSION', quote_ident(x.extname), false
  FROM pg_extension x WHERE x.extname <> 'plpgsql'
UNION ALL
SELECT 'pg_trigger:' || t.oid, NULL, '', t.tgenabled::text || ':' || t.tgfoid::text || ':' || t.tgtype || ':' || md5(coalesce(t.tgqual::text, '')),
       'TRIGGER', quote_ident(t.tgname) || '|' || ${REL("t.tgrelid")}, false
  FROM pg_trigger t WHERE NOT t.tgisinternal
UNION ALL
SELECT 'pg_rewrite:' || r.oid, NULL, '', r.ev_enabled::text || ':' || md5(r.ev_action::text || coalesce(r.ev_qual::text, '')),
       'RULE', quote_ident(r.rulename) || '|' || ${REL("r.ev_class")}, false
  FROM pg_rewrite r JOIN pg_class c ON c.oid = r.ev_class WHERE r.rulename <> '_RETURN' AND c.relnamespace IN ${USER_NSP}
UNION ALL
SELECT 'pg_policy:' || p.oid, NULL, '', concat_ws(':', p.polcmd, p.polpermissive, p.polroles::text,
         md5(coalesce(p.polqual::text, '') || ':' || coalesce(p.polwithcheck::text, ''))),
       'POLICY', quote_ident(p.polname) || '|' || ${REL("p.polrelid")}, false
  FROM pg_policy p
UNION ALL
SELECT 'pg_default_acl:' || d.defaclrole || ':' || d.defaclnamespace || ':' || d.defaclobjtype::text, d.defaclrole::int,
       (SELECT coalesce(string_agg(x.grantee || ':' || x.grantor || ':' || x.privilege_type
          || CASE WHEN x.is_grantable THEN '*' ELSE '' END, ',' ORDER BY x.grantee, x.grantor, x.privilege_type), '')
          FROM aclexplode(d.defaclacl) x WHERE x.grantee <> d.defaclrole), '', 'DEFAULT ACL',
       quote_ident(pg_get_userbyid(d.defaclrole)) || '|' || coalesce(quote_ident(n.nspname), '') || '|' || d.defaclobjtype::text, false
  FROM pg_default_acl d LEFT JOIN pg_namespace n ON n.oid = d.defaclnamespace
UNION ALL
SELECT 'other:' || s.classid || ':' || s.objid, s.refobjid::int, '', '', upper(i.type), i.identity, false
  FROM pg_shdepend s CROSS JOIN LATERAL pg_identify_object(s.classid, s.objid, 0) i
 WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) AND s.deptype = 'o'
   AND s.classid NOT IN (${HANDLED.map((c) => `'${c}'::regclass`).join(", ")})
   AND NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = s.classid AND e.objid = s.objid AND e.deptype = 'e')`;

/** The cluster-wide catalogs; `pg_authid` needs a superuser (else passwords are not compared). */
const clusterQuery = (superuser: boolean) => `
SELECT current_setting('server_version_num')::int AS version,
  extract(epoch FROM clock_timestamp()) * 1000 AS at,
  (SELECT json_agg(json_build_array(r.oid::int, r.rolname,
      concat_ws(',', r.rolsuper, r.rolinherit, r.rolcreaterole, r.rolcreatedb, r.rolcanlogin, r.rolreplication, r.rolbypassrls),
      r.rolvaliduntil,
      ${superuser ? "CASE WHEN r.rolpassword IS NULL THEN NULL ELSE encode(sha256(convert_to(r.rolpassword, 'UTF8')), 'hex') END" : "'?'"}))
     FROM ${superuser ? "pg_authid" : "pg_roles"} r) AS roles,
  (SELECT coalesce(json_agg(json_build_array(m.roleid::int, m.member::int, m.admin_option, m.grantor::int)), '[]')
     FROM pg_auth_members m) AS members,
  (SELECT coalesce(json_agg(json_build_array(s.setdatabase::int, s.setrole::int, s.setconfig)), '[]')
     FROM pg_db_role_setting s) AS settings,
  (SELECT json_agg(json_build_array(d.oid::int, d.datname, d.datdba::int, d.datallowconn,
      ${ACL(`coalesce(d.datacl, acldefault('d', d.datdba))`)}, d.datistemplate))
     FROM pg_database d WHERE d.datname <> 'template0') AS databases,
  ${
    superuser
      ? `(SELECT coalesce(json_agg(json_build_array(s.oid::int, s.subname, s.subdbid::int, s.subowner::int, s.subenabled)), '[]')
     FROM pg_subscription s)`
      : "'[]'::json"
  } AS subscriptions,
  (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) AS superuser`;

interface ClusterRow {
  version: number;
  at: number;
  roles: [number, string, string, string | null, string | null][];
  members: [number, number, boolean, number][];
  settings: [number, number, string[] | null][];
  databases: [number, string, number, boolean, string, boolean][];
  subscriptions: [number, string, number, number, boolean][];
  superuser: boolean;
}

/** The cluster-wide facts, read on any database. */
export async function readCluster(c: pg.ClientBase): Promise<ClusterFacts> {
  const su = (await c.query<{ s: boolean }>("SELECT rolsuper AS s FROM pg_roles WHERE rolname = current_user")).rows[0]
    ?.s;
  // Named: parsed and planned once per connection (the plan is most of a read's cost on a small catalog).
  const row = (await c.query<ClusterRow>({ name: `bg_cluster_${su === true}`, text: clusterQuery(su === true) }))
    .rows[0];
  if (!row) throw new Error("the cluster catalog query returned nothing");
  const ATTRS = ["super", "inherit", "createrole", "createdb", "login", "replication", "bypassrls"] as const;
  return {
    version: row.version,
    at: Math.round(Number(row.at)),
    passwordsCompared: row.superuser,
    roles: Object.fromEntries(
      row.roles.map(([oid, name, attrs, until, pw]) => {
        const flags = attrs.split(",");
        return [
          String(oid),
          {
            name,
            attrs: ATTRS.filter((_, i) => flags[i] === "t" || flags[i] === "true"),
            validUntil: until,
            password: pw === "?" ? undefined : pw,
          },
        ];
      }),
    ),
    members: Object.fromEntries(
      row.members.map(([role, member, admin, grantor]) => [`${role}>${member}`, { admin, grantor }]),
    ),
    settings: Object.fromEntries(row.settings.map(([db, role, config]) => [`${db}:${role}`, config ?? []])),
    databases: Object.fromEntries(
      row.databases.map(([oid, name, owner, allowConn, acl, template]) => [
        String(oid),
        { name, owner, allowConn, acl, ...(template ? { template: true as const } : {}) },
      ]),
    ),
    subscriptions: Object.fromEntries(
      row.subscriptions.map(([oid, name, db, owner, enabled]) => [String(oid), { name, db, owner, enabled }]),
    ),
  };
}

/** The objects of the database `c` is connected to. */
export async function readDatabase(c: pg.ClientBase, version: number): Promise<DatabaseFacts> {
  const { rows } = await c.query<{
    k: string;
    o: number | null;
    a: string;
    d: string;
    kw: string;
    id: string;
    m: boolean;
  }>({ name: `bg_database_${version}`, text: databaseQuery(version) });
  const out: Record<string, ObjectFact> = {};
  for (const r of rows) out[r.k] = r.m ? [r.o, r.a, r.d, r.kw, r.id, 1] : [r.o, r.a, r.d, r.kw, r.id];
  return out;
}
