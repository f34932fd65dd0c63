/**
 * The statement guard's classification: every node type of PostgreSQL's parse tree, as
 * libpg-query names them (the `Node` union of `@pgsql/types`, generated from libpg_query's
 * pg_query.proto), mapped to the named rules that refuse it. A statement is refused under a rule
 * when any node of its tree — the statement itself, or one nested in it (a DELETE in a WITH, the
 * SET clause of a function) — is classified under that rule.
 *
 * The table is complete by construction: `NODE_CLASSES` is typed as a record over every node type,
 * so a libpg-query upgrade that adds one fails `tsc` until it is classified here, and
 * gateway/statement-guard.test.ts checks the table against the library's own list and an example statement of each
 * type. docs/gateway.md shows the table (checked by the same test).
 *
 * Classification is a pure function of one node's fields: no catalog, no role graph, no session
 * state. What needs the target's catalog is decided conservatively (a DROP … CASCADE may reach a
 * table, so `drop_table` refuses it; a function given away may be SECURITY DEFINER, so
 * `security_definer` refuses the hand-over), and `SET ROLE` reports the role it switches to so
 * the guard can allow the roles the grant itself holds.
 */
import type { Node } from "@pgsql/types";
import type { GUARD_RULE_NAMES } from "./config-schema.js";

export type GuardRuleName = (typeof GUARD_RULE_NAMES)[number];

type KeysOf<T> = T extends unknown ? keyof T : never;
/** Every parse node type libpg-query can produce (`DropStmt`, `RangeVar`, `A_Const`, …). */
export type NodeType = KeysOf<Node>;

export type Fields = Readonly<Record<string, unknown>>;

/** A rule that refuses only some nodes of a type. */
export interface Condition {
  /** When it applies, in words (for docs/gateway.md). */
  readonly when: string;
  readonly test: (node: Fields) => boolean;
}

export interface NodeClass {
  /** `statement`: a node PostgreSQL's grammar produces as a statement; `part`: a piece of one. */
  readonly kind: "statement" | "part";
  /** The SQL it stands for, in the words of PostgreSQL's documentation (empty for plain parts). */
  readonly sql: string;
  /** The named rules that refuse it: always (`true`), or when a condition holds. */
  readonly rules: Readonly<Partial<Record<GuardRuleName, true | Condition>>>;
  /** How a refusal names this node (default: `sql`). */
  readonly label?: (node: Fields) => string;
  /** For `set_role`: the role it switches to; null when the guard cannot read it (not a constant). */
  readonly role?: (node: Fields) => string | null;
}

/** One named rule a node falls under. */
export interface Hit {
  readonly rule: GuardRuleName;
  /** What the statement does, for the refusal (`DROP OWNED`, `SET ROLE app_owner`). */
  readonly label: string;
  /** For `set_role`: the role switched to (null: unknown). */
  readonly role?: string | null;
}

// ——— reading node fields ———

const obj = (v: unknown): Fields | null =>
  typeof v === "object" && v !== null && !Array.isArray(v) ? (v as Fields) : null;
const list = (v: unknown): readonly unknown[] => (Array.isArray(v) ? v : []);
/** `DefElem`s of an options list, by name. */
const defElem = (options: unknown, name: string): Fields | null => {
  for (const x of list(options)) {
    const d = obj(obj(x)?.DefElem);
    if (d?.defname === name) return d;
  }
  return null;
};
const boolArg = (d: Fields | null): boolean | null => {
  const b = obj(obj(d?.arg)?.Boolean);
  return b ? b.boolval === true : null;
};
/** A constant string (an `A_Const` or `String` node holding one); null for anything else. */
const constString = (v: unknown): string | null => {
  const s = obj(obj(obj(v)?.A_Const)?.sval)?.sval ?? obj(obj(v)?.String)?.sval;
  return typeof s === "string" ? s : null;
};
/** `RoleSpec` naming a role other than the current one (`CURRENT_USER`, `SESSION_USER` name no new one). */
const namesOtherRole = (spec: unknown): boolean => {
  const r = obj(spec);
  return r !== null && (r.roletype === "ROLESPEC_CSTRING" || r.roletype === "ROLESPEC_PUBLIC");
};
/** `OBJECT_FOREIGN_TABLE` → `FOREIGN TABLE`. */
const objectWords = (t: unknown): string =>
  typeof t === "string"
    ? ({ OBJECT_MATVIEW: "MATERIALIZED VIEW", OBJECT_FDW: "FOREIGN DATA WRAPPER", OBJECT_FOREIGN_SERVER: "SERVER" }[
        t
      ] ?? t.replace(/^OBJECT_/, "").replace(/_/g, " "))
    : "object";
const cascade = (n: Fields) => n.behavior === "DROP_CASCADE";
const ROLE_SETTINGS = new Set(["role", "session_authorization"]);
/**
 * The settings the gateway gives every upstream session so that the target ends it when the
 * gateway is gone (pg-gateway.ts, SESSION_BOUNDS): a holder who changed them could outlive a dead
 * broker.
 */
export const BOUND_SETTINGS: ReadonlySet<string> = new Set([
  "client_connection_check_interval",
  "tcp_keepalives_idle",
  "tcp_keepalives_interval",
  "tcp_keepalives_count",
  "tcp_user_timeout",
]);

const when = (text: string, test: (n: Fields) => boolean): Condition => ({ when: text, test });
const stmt = (sql: string, rules: NodeClass["rules"] = {}, more: Partial<NodeClass> = {}): NodeClass => ({
  kind: "statement",
  sql,
  rules,
  ...more,
});

// ——— conditions shared by several statements ———

/**
 * A role gets a password (not `PASSWORD NULL`), LOGIN, or a new VALID UNTIL (which keeps a
 * password working longer). `CREATE USER` means LOGIN unless it says NOLOGIN.
 */
const givesLogin = (n: Fields): boolean => {
  const password = defElem(n.options, "password");
  const login = boolArg(defElem(n.options, "canlogin"));
  return (
    (password !== null && password.arg !== undefined) ||
    login === true ||
    defElem(n.options, "validUntil") !== null ||
    (login === null && n.stmt_type === "ROLESTMT_USER")
  );
};
const SECURITY_DEFINER = when("SECURITY DEFINER", (n) => boolArg(defElem(n.options ?? n.actions, "security")) === true);
const ROUTINES = new Set(["OBJECT_FUNCTION", "OBJECT_PROCEDURE", "OBJECT_ROUTINE", "OBJECT_AGGREGATE"]);

/**
 * `SET role`/`SET SESSION AUTHORIZATION` (also as `ALTER ROLE|DATABASE … SET`, `ALTER SYSTEM
 * SET`, a function's `SET` clause, or a startup parameter): true when it switches to a named role.
 * `SET ROLE NONE`, `RESET ROLE` and `… DEFAULT` return to the session's own role and are not hits.
 */
const switchesRole = (n: Fields): boolean =>
  typeof n.name === "string" &&
  ROLE_SETTINGS.has(n.name.toLowerCase()) &&
  (n.kind === "VAR_SET_VALUE" || n.kind === "VAR_SET_CURRENT") &&
  constString(list(n.args)[0])?.toLowerCase() !== "none";
const roleSetTo = (n: Fields): string | null => (n.kind === "VAR_SET_VALUE" ? constString(list(n.args)[0]) : null);
/** `SET` of a session bound to a value (`RESET` and `DEFAULT` go back to the gateway's). */
const setsBound = (n: Fields): boolean =>
  typeof n.name === "string" &&
  BOUND_SETTINGS.has(n.name.toLowerCase()) &&
  (n.kind === "VAR_SET_VALUE" || n.kind === "VAR_SET_CURRENT");
/** `pg_settings` (or `pg_catalog.pg_settings`): updating it runs set_config. */
const isPgSettings = (rel: unknown): boolean =>
  obj(rel)?.relname === "pg_settings" && [undefined, "pg_catalog"].includes(obj(rel)?.schemaname as string | undefined);
/** Anywhere in a tree, a relation named pg_settings. */
const readsPgSettings = (v: unknown): boolean => {
  if (Array.isArray(v)) return v.some(readsPgSettings);
  const o = obj(v);
  if (o === null) return false;
  if (isPgSettings(o.RangeVar)) return true;
  return Object.values(o).some(readsPgSettings);
};

/** `set_config(name, value, is_local)`: the setting's name, or null when it is not a constant. */
const setConfigArgs = (n: Fields): { name: string | null; value: string | null } | null => {
  const fn = list(n.funcname);
  if (constString(fn[fn.length - 1]) !== "set_config") return null;
  const args = list(n.args);
  const named = (name: string, i: number) => {
    for (const a of args) {
      const na = obj(obj(a)?.NamedArgExpr);
      if (na?.name === name) return na.arg;
    }
    const positional = args[i];
    return obj(positional)?.NamedArgExpr ? undefined : positional;
  };
  return { name: constString(named("setting_name", 0)), value: constString(named("new_value", 1)) };
};

/**
 * The classification. Statement rows first (PostgreSQL's grammar, src/backend/parser/gram.y,
 * names its statement nodes `…Stmt`), then the parts of statements.
 */
const STATEMENTS = {
  // — queries and data —
  SelectStmt: stmt("SELECT, VALUES, TABLE, SELECT INTO"),
  InsertStmt: stmt("INSERT"),
  UpdateStmt: stmt(
    "UPDATE",
    {
      update_without_where: when("without WHERE", (n) => n.whereClause === undefined),
      set_role: when("of pg_settings, which runs set_config and so can set the role", (n) => isPgSettings(n.relation)),
      session_bounds: when("of pg_settings", (n) => isPgSettings(n.relation)),
    },
    {
      label: (n) => (obj(n.relation)?.relname === "pg_settings" ? "UPDATE pg_settings" : "UPDATE without WHERE"),
      role: () => null,
    },
  ),
  DeleteStmt: stmt(
    "DELETE",
    { delete_without_where: when("without WHERE", (n) => n.whereClause === undefined) },
    {
      label: () => "DELETE without WHERE",
    },
  ),
  MergeStmt: stmt("MERGE"),
  CopyStmt: stmt(
    "COPY",
    { copy_program: when("TO/FROM PROGRAM", (n) => n.is_program === true) },
    {
      label: () => "COPY … PROGRAM",
    },
  ),
  TruncateStmt: stmt("TRUNCATE", { truncate: true }),
  DeclareCursorStmt: stmt("DECLARE cursor"),
  FetchStmt: stmt("FETCH, MOVE"),
  ClosePortalStmt: stmt("CLOSE cursor"),
  ExplainStmt: stmt("EXPLAIN (the statement explained is classified too)"),
  PrepareStmt: stmt("PREPARE (the statement prepared is classified too)"),
  ExecuteStmt: stmt("EXECUTE a prepared statement"),
  DeallocateStmt: stmt("DEALLOCATE"),
  CallStmt: stmt("CALL a procedure"),
  DoStmt: stmt("DO block", { do_block: true }),
  ReturnStmt: stmt("RETURN in an SQL-standard function body"),
  PLAssignStmt: stmt("PL/pgSQL assignment (only from PL/pgSQL's parser)"),
  SetOperationStmt: stmt("UNION/INTERSECT/EXCEPT after analysis (the parser gives SelectStmt)"),
  RawStmt: stmt("(the wrapper of every parsed statement)"),
  // — sessions and transactions —
  VariableSetStmt: stmt(
    "SET, RESET, SET ROLE, SET SESSION AUTHORIZATION",
    {
      set_role: when("to a named role, not NONE, RESET or DEFAULT", switchesRole),
      session_bounds: when(
        "of client_connection_check_interval, tcp_keepalives_idle/_interval/_count or tcp_user_timeout, not RESET or DEFAULT",
        setsBound,
      ),
    },
    {
      label: (n) => {
        if (setsBound(n)) return `SET ${String(n.name).toLowerCase()}`;
        const what = String(n.name).toLowerCase() === "role" ? "SET ROLE" : "SET SESSION AUTHORIZATION";
        const to = roleSetTo(n);
        return to === null ? `${what} to a role the guard cannot read` : `${what} ${to}`;
      },
      role: roleSetTo,
    },
  ),
  VariableShowStmt: stmt("SHOW"),
  TransactionStmt: stmt("BEGIN, COMMIT, ROLLBACK, SAVEPOINT, PREPARE TRANSACTION"),
  ConstraintsSetStmt: stmt("SET CONSTRAINTS"),
  LockStmt: stmt("LOCK"),
  DiscardStmt: stmt("DISCARD"),
  ListenStmt: stmt("LISTEN"),
  UnlistenStmt: stmt("UNLISTEN"),
  NotifyStmt: stmt("NOTIFY"),
  LoadStmt: stmt("LOAD a shared library"),
  CheckPointStmt: stmt("CHECKPOINT"),
  // — roles and privileges —
  GrantStmt: stmt("GRANT/REVOKE privileges", { grant: true }),
  AlterDefaultPrivilegesStmt: stmt("ALTER DEFAULT PRIVILEGES", { grant: true }),
  GrantRoleStmt: stmt("GRANT/REVOKE role membership", { grant_role: true }),
  CreateRoleStmt: stmt(
    "CREATE ROLE, CREATE USER, CREATE GROUP",
    {
      create_role: true,
      grant_role: when("with IN ROLE, ROLE or ADMIN", (n) =>
        ["addroleto", "rolemembers", "adminmembers"].some((k) => defElem(n.options, k) !== null),
      ),
      login_credential: when("with PASSWORD, LOGIN or VALID UNTIL; CREATE USER unless NOLOGIN", givesLogin),
    },
    { label: (n) => `CREATE ${String(n.stmt_type ?? "ROLESTMT_ROLE").replace("ROLESTMT_", "")}` },
  ),
  AlterRoleStmt: stmt("ALTER ROLE, ALTER USER, ALTER GROUP", {
    alter_role: true,
    grant_role: when("ALTER GROUP … ADD/DROP USER", (n) => defElem(n.options, "rolemembers") !== null),
    login_credential: when("with PASSWORD, LOGIN or VALID UNTIL", givesLogin),
  }),
  AlterRoleSetStmt: stmt("ALTER ROLE … SET/RESET (its SET is classified as a SET)", { alter_role: true }),
  DropRoleStmt: stmt("DROP ROLE, DROP USER, DROP GROUP", { drop_any: true, alter_role: true }),
  DropOwnedStmt: stmt("DROP OWNED (drops every object of the roles, revokes their privileges)", {
    drop_table: true,
    drop_schema: true,
    drop_any: true,
    grant: true,
  }),
  ReassignOwnedStmt: stmt("REASSIGN OWNED (gives every object of the roles to another)", {
    drop_table: true,
    drop_schema: true,
    drop_any: true,
    change_owner: true,
  }),
  AlterOwnerStmt: stmt(
    "ALTER … OWNER TO (anything but tables and their kin)",
    {
      change_owner: true,
      security_definer: when("of a function, procedure or aggregate, which may be SECURITY DEFINER", (n) =>
        ROUTINES.has(String(n.objectType)),
      ),
    },
    { label: (n) => `ALTER ${objectWords(n.objectType)} … OWNER TO` },
  ),
  // — drops —
  DropStmt: stmt(
    "DROP of a named object (TABLE, VIEW, INDEX, SCHEMA, FUNCTION, TYPE, EXTENSION, …)",
    {
      drop_any: true,
      drop_table: when(
        "of a TABLE, FOREIGN TABLE, or EXTENSION with its member tables; any … CASCADE",
        (n) =>
          ["OBJECT_TABLE", "OBJECT_FOREIGN_TABLE", "OBJECT_EXTENSION"].includes(String(n.removeType)) || cascade(n),
      ),
      drop_schema: when("of a SCHEMA, or an EXTENSION with a schema it created", (n) =>
        ["OBJECT_SCHEMA", "OBJECT_EXTENSION"].includes(String(n.removeType)),
      ),
    },
    { label: (n) => `DROP ${objectWords(n.removeType)}${cascade(n) ? " … CASCADE" : ""}` },
  ),
  DropdbStmt: stmt("DROP DATABASE", { drop_database: true, drop_table: true, drop_schema: true, drop_any: true }),
  DropTableSpaceStmt: stmt("DROP TABLESPACE", { drop_any: true }),
  DropUserMappingStmt: stmt("DROP USER MAPPING", { drop_any: true }),
  DropSubscriptionStmt: stmt("DROP SUBSCRIPTION", { drop_any: true }),
  // — functions and code —
  CreateFunctionStmt: stmt(
    "CREATE [OR REPLACE] FUNCTION/PROCEDURE",
    { create_function: true, security_definer: SECURITY_DEFINER },
    { label: (n) => (SECURITY_DEFINER.test(n) ? "CREATE FUNCTION … SECURITY DEFINER" : "CREATE FUNCTION") },
  ),
  AlterFunctionStmt: stmt(
    "ALTER FUNCTION/PROCEDURE/ROUTINE (SECURITY, SET, volatility…)",
    { create_function: true, security_definer: SECURITY_DEFINER },
    { label: (n) => (SECURITY_DEFINER.test(n) ? "ALTER FUNCTION … SECURITY DEFINER" : "ALTER FUNCTION") },
  ),
  // — server and databases —
  AlterSystemStmt: stmt("ALTER SYSTEM", { alter_system: true }),
  CreatedbStmt: stmt("CREATE DATABASE", {
    change_owner: when("with OWNER another role", (n) => constString(defElem(n.options, "owner")?.arg) !== null),
  }),
  AlterDatabaseStmt: stmt("ALTER DATABASE … WITH options"),
  AlterDatabaseSetStmt: stmt("ALTER DATABASE … SET/RESET (its SET is classified as a SET)"),
  AlterDatabaseRefreshCollStmt: stmt("ALTER DATABASE … REFRESH COLLATION VERSION"),
  CreateTableSpaceStmt: stmt("CREATE TABLESPACE", {
    change_owner: when("with OWNER another role", (n) => namesOtherRole(n.owner)),
  }),
  AlterTableSpaceOptionsStmt: stmt("ALTER TABLESPACE … SET/RESET"),
  AlterTableMoveAllStmt: stmt("ALTER … ALL IN TABLESPACE … SET TABLESPACE"),
  // — schema objects —
  CreateSchemaStmt: stmt("CREATE SCHEMA (its elements are classified too)", {
    change_owner: when("with AUTHORIZATION another role", (n) => namesOtherRole(n.authrole)),
  }),
  CreateStmt: stmt("CREATE TABLE"),
  CreateTableAsStmt: stmt("CREATE TABLE AS, CREATE MATERIALIZED VIEW"),
  AlterTableStmt: stmt(
    "ALTER TABLE/INDEX/SEQUENCE/VIEW/MATERIALIZED VIEW/FOREIGN TABLE/TYPE",
    {
      change_owner: when("OWNER TO", (n) =>
        list(n.cmds).some((c) => obj(obj(c)?.AlterTableCmd)?.subtype === "AT_ChangeOwner"),
      ),
    },
    { label: (n) => `ALTER ${objectWords(n.objtype)} … OWNER TO` },
  ),
  ReplicaIdentityStmt: stmt("ALTER TABLE … REPLICA IDENTITY (inside ALTER TABLE)"),
  RenameStmt: stmt(
    "ALTER … RENAME",
    { alter_role: when("of a role", (n) => n.renameType === "OBJECT_ROLE") },
    { label: () => "ALTER ROLE … RENAME" },
  ),
  AlterObjectSchemaStmt: stmt("ALTER … SET SCHEMA"),
  AlterObjectDependsStmt: stmt("ALTER … DEPENDS ON EXTENSION"),
  ViewStmt: stmt(
    "CREATE [OR REPLACE] VIEW",
    {
      // pg_settings updates through its rule, and so does a view over it: UPDATE v SET setting = …
      set_role: when("over pg_settings, which an UPDATE of the view runs set_config through", (n) =>
        readsPgSettings(n.query),
      ),
      session_bounds: when("over pg_settings", (n) => readsPgSettings(n.query)),
    },
    { label: () => "CREATE VIEW over pg_settings" },
  ),
  RefreshMatViewStmt: stmt("REFRESH MATERIALIZED VIEW"),
  IndexStmt: stmt("CREATE INDEX"),
  ReindexStmt: stmt("REINDEX"),
  ClusterStmt: stmt("CLUSTER"),
  VacuumStmt: stmt("VACUUM, ANALYZE"),
  CreateSeqStmt: stmt("CREATE SEQUENCE"),
  AlterSeqStmt: stmt("ALTER SEQUENCE"),
  CreateStatsStmt: stmt("CREATE STATISTICS"),
  AlterStatsStmt: stmt("ALTER STATISTICS"),
  CreateTrigStmt: stmt("CREATE [CONSTRAINT] TRIGGER"),
  CreateEventTrigStmt: stmt("CREATE EVENT TRIGGER"),
  AlterEventTrigStmt: stmt("ALTER EVENT TRIGGER"),
  RuleStmt: stmt("CREATE RULE (its actions are classified too)"),
  CreatePolicyStmt: stmt("CREATE POLICY"),
  AlterPolicyStmt: stmt("ALTER POLICY"),
  CommentStmt: stmt("COMMENT ON"),
  SecLabelStmt: stmt("SECURITY LABEL"),
  // — types, operators, and the like —
  DefineStmt: stmt("CREATE AGGREGATE/OPERATOR/TYPE/COLLATION/TEXT SEARCH …"),
  CompositeTypeStmt: stmt("CREATE TYPE … AS (composite)"),
  CreateEnumStmt: stmt("CREATE TYPE … AS ENUM"),
  CreateRangeStmt: stmt("CREATE TYPE … AS RANGE"),
  AlterEnumStmt: stmt("ALTER TYPE … ADD/RENAME VALUE"),
  AlterTypeStmt: stmt("ALTER TYPE … SET"),
  CreateDomainStmt: stmt("CREATE DOMAIN"),
  AlterDomainStmt: stmt("ALTER DOMAIN (constraints, defaults)"),
  AlterOperatorStmt: stmt("ALTER OPERATOR … SET"),
  CreateOpClassStmt: stmt("CREATE OPERATOR CLASS"),
  CreateOpFamilyStmt: stmt("CREATE OPERATOR FAMILY"),
  AlterOpFamilyStmt: stmt("ALTER OPERATOR FAMILY"),
  CreateCastStmt: stmt("CREATE CAST"),
  CreateConversionStmt: stmt("CREATE CONVERSION"),
  CreateTransformStmt: stmt("CREATE TRANSFORM"),
  AlterCollationStmt: stmt("ALTER COLLATION … REFRESH VERSION"),
  AlterTSDictionaryStmt: stmt("ALTER TEXT SEARCH DICTIONARY"),
  AlterTSConfigurationStmt: stmt("ALTER TEXT SEARCH CONFIGURATION"),
  CreateAmStmt: stmt("CREATE ACCESS METHOD"),
  CreatePLangStmt: stmt("CREATE LANGUAGE"),
  // — extensions, foreign data, replication —
  CreateExtensionStmt: stmt("CREATE EXTENSION"),
  AlterExtensionStmt: stmt("ALTER EXTENSION … UPDATE"),
  AlterExtensionContentsStmt: stmt("ALTER EXTENSION … ADD/DROP member"),
  CreateFdwStmt: stmt("CREATE FOREIGN DATA WRAPPER"),
  AlterFdwStmt: stmt("ALTER FOREIGN DATA WRAPPER"),
  CreateForeignServerStmt: stmt("CREATE SERVER"),
  AlterForeignServerStmt: stmt("ALTER SERVER"),
  CreateForeignTableStmt: stmt("CREATE FOREIGN TABLE"),
  ImportForeignSchemaStmt: stmt("IMPORT FOREIGN SCHEMA"),
  CreateUserMappingStmt: stmt("CREATE USER MAPPING"),
  AlterUserMappingStmt: stmt("ALTER USER MAPPING"),
  CreatePublicationStmt: stmt("CREATE PUBLICATION"),
  AlterPublicationStmt: stmt("ALTER PUBLICATION"),
  CreateSubscriptionStmt: stmt("CREATE SUBSCRIPTION"),
  AlterSubscriptionStmt: stmt("ALTER SUBSCRIPTION"),
} as const satisfies Readonly<Record<string, NodeClass>>;

/** Parts of statements that fall under a rule wherever they appear. */
const RULED_PARTS = {
  FuncCall: {
    kind: "part",
    sql: "set_config(…) in any expression",
    rules: {
      set_role: when(
        "set_config('role' or 'session_authorization', …), or with a setting name that is not a constant",
        (n) => {
          const a = setConfigArgs(n);
          return (
            a !== null &&
            (a.name === null || ROLE_SETTINGS.has(a.name.toLowerCase())) &&
            a.value?.toLowerCase() !== "none"
          );
        },
      ),
      session_bounds: when("set_config of a session bound, or with a setting name that is not a constant", (n) => {
        const a = setConfigArgs(n);
        return a !== null && (a.name === null || BOUND_SETTINGS.has(a.name.toLowerCase()));
      }),
    },
    label: (n) => {
      const a = setConfigArgs(n);
      return a?.name === null ? "set_config with a setting name the guard cannot read" : `set_config('${a?.name}', …)`;
    },
    role: (n) => (setConfigArgs(n)?.name === null ? null : (setConfigArgs(n)?.value ?? null)),
  },
} as const satisfies Readonly<Record<string, NodeClass>>;

/** Parts of statements no named rule refuses by themselves (custom rules and `deny_schemas` see them). */
const PARTS = [
  "ParseResult",
  "ScanResult",
  "Integer",
  "Float",
  "Boolean",
  "String",
  "BitString",
  "List",
  "OidList",
  "IntList",
  "A_Const",
  "Alias",
  "RangeVar",
  "TableFunc",
  "IntoClause",
  "Var",
  "Param",
  "Aggref",
  "GroupingFunc",
  "WindowFunc",
  "WindowFuncRunCondition",
  "MergeSupportFunc",
  "SubscriptingRef",
  "FuncExpr",
  "NamedArgExpr",
  "OpExpr",
  "DistinctExpr",
  "NullIfExpr",
  "ScalarArrayOpExpr",
  "BoolExpr",
  "SubLink",
  "SubPlan",
  "AlternativeSubPlan",
  "FieldSelect",
  "FieldStore",
  "RelabelType",
  "CoerceViaIO",
  "ArrayCoerceExpr",
  "ConvertRowtypeExpr",
  "CollateExpr",
  "CaseExpr",
  "CaseWhen",
  "CaseTestExpr",
  "ArrayExpr",
  "RowExpr",
  "RowCompareExpr",
  "CoalesceExpr",
  "MinMaxExpr",
  "SQLValueFunction",
  "XmlExpr",
  "JsonFormat",
  "JsonReturning",
  "JsonValueExpr",
  "JsonConstructorExpr",
  "JsonIsPredicate",
  "JsonBehavior",
  "JsonExpr",
  "JsonTablePath",
  "JsonTablePathScan",
  "JsonTableSiblingJoin",
  "NullTest",
  "BooleanTest",
  "MergeAction",
  "CoerceToDomain",
  "CoerceToDomainValue",
  "SetToDefault",
  "CurrentOfExpr",
  "NextValueExpr",
  "InferenceElem",
  "TargetEntry",
  "RangeTblRef",
  "JoinExpr",
  "FromExpr",
  "OnConflictExpr",
  "Query",
  "TypeName",
  "ColumnRef",
  "ParamRef",
  "A_Expr",
  "TypeCast",
  "CollateClause",
  "RoleSpec",
  "A_Star",
  "A_Indices",
  "A_Indirection",
  "A_ArrayExpr",
  "ResTarget",
  "MultiAssignRef",
  "SortBy",
  "WindowDef",
  "RangeSubselect",
  "RangeFunction",
  "RangeTableFunc",
  "RangeTableFuncCol",
  "RangeTableSample",
  "ColumnDef",
  "TableLikeClause",
  "IndexElem",
  "DefElem",
  "LockingClause",
  "XmlSerialize",
  "PartitionElem",
  "PartitionSpec",
  "PartitionBoundSpec",
  "PartitionRangeDatum",
  "SinglePartitionSpec",
  "PartitionCmd",
  "RangeTblEntry",
  "RTEPermissionInfo",
  "RangeTblFunction",
  "TableSampleClause",
  "WithCheckOption",
  "SortGroupClause",
  "GroupingSet",
  "WindowClause",
  "RowMarkClause",
  "WithClause",
  "InferClause",
  "OnConflictClause",
  "CTESearchClause",
  "CTECycleClause",
  "CommonTableExpr",
  "MergeWhenClause",
  "TriggerTransition",
  "JsonOutput",
  "JsonArgument",
  "JsonFuncExpr",
  "JsonTablePathSpec",
  "JsonTable",
  "JsonTableColumn",
  "JsonKeyValue",
  "JsonParseExpr",
  "JsonScalarExpr",
  "JsonSerializeExpr",
  "JsonObjectConstructor",
  "JsonArrayConstructor",
  "JsonArrayQueryConstructor",
  "JsonAggConstructor",
  "JsonObjectAgg",
  "JsonArrayAgg",
  "AlterTableCmd",
  "ObjectWithArgs",
  "AccessPriv",
  "Constraint",
  "CreateOpClassItem",
  "StatsElem",
  "FunctionParameter",
  "InlineCodeBlock",
  "CallContext",
  "VacuumRelation",
  "PublicationTable",
  "PublicationObjSpec",
  "ScanToken",
] as const;

type Classified = keyof typeof STATEMENTS | keyof typeof RULED_PARTS | (typeof PARTS)[number];
/** Compile-time completeness: names a node type libpg-query has and this table does not (or the reverse). */
type Unclassified = Exclude<NodeType, Classified>;
type Unknown = Exclude<Classified, NodeType>;
const complete: [Unclassified | Unknown] extends [never] ? true : { unclassified: Unclassified; unknown: Unknown } =
  true;
void complete;

const PLAIN_PART: NodeClass = { kind: "part", sql: "", rules: {} };

/** Every node type libpg-query produces, and the named rules that refuse it. */
export const NODE_CLASSES: Readonly<Record<NodeType, NodeClass>> = Object.freeze({
  ...(Object.fromEntries(PARTS.map((p) => [p, PLAIN_PART])) as Record<(typeof PARTS)[number], NodeClass>),
  ...RULED_PARTS,
  ...STATEMENTS,
});

const isNodeType = (type: string): type is NodeType => Object.hasOwn(NODE_CLASSES, type);

/**
 * The named rules one node falls under. A node type the table does not know (a parser newer than
 * this table) falls under every rule: the guard refuses what it cannot classify.
 */
export function classifyNode(type: string, node: Fields, rules: readonly GuardRuleName[]): readonly Hit[] {
  if (!isNodeType(type))
    return rules.map((rule) => ({ rule, label: `${type} (a statement type the guard does not know)` }));
  const c = NODE_CLASSES[type];
  const hits: Hit[] = [];
  for (const rule of rules) {
    const r = c.rules[rule];
    if (r === undefined || (r !== true && !r.test(node))) continue;
    const label = c.label?.(node) ?? c.sql;
    hits.push(rule === "set_role" && c.role ? { rule, label, role: c.role(node) } : { rule, label });
  }
  return hits;
}

/** Every statement node type, in table order. */
export const STATEMENT_TYPES = Object.keys(STATEMENTS) as readonly (keyof typeof STATEMENTS)[];
