/**
 * The statement guard's named rules, in words, apart from the parser so the configuration loader
 * can use them without loading it. Which statement types each rule refuses is the table in
 * guard-classes.ts (and docs/gateway.md).
 */
import type { GUARD_RULE_NAMES } from "./config-schema.js";

/** What each named rule is for, as docs/gateway.md says it. */
export const NAMED_RULES: Readonly<Record<(typeof GUARD_RULE_NAMES)[number], string>> = {
  drop_database: "DROP DATABASE",
  drop_table:
    "every statement that can remove a table: DROP TABLE, DROP OWNED, REASSIGN OWNED, DROP DATABASE, DROP EXTENSION, any DROP … CASCADE",
  drop_schema:
    "every statement that can remove a schema: DROP SCHEMA, DROP OWNED, REASSIGN OWNED, DROP DATABASE, DROP EXTENSION",
  drop_any: "every DROP statement, DROP OWNED and REASSIGN OWNED",
  truncate: "TRUNCATE",
  alter_system: "ALTER SYSTEM",
  copy_program: "COPY … TO/FROM PROGRAM",
  delete_without_where: "DELETE without WHERE",
  update_without_where: "UPDATE without WHERE",
  grant: "GRANT/REVOKE privileges, ALTER DEFAULT PRIVILEGES, DROP OWNED (revokes)",
  grant_role: "GRANT/REVOKE role membership, also as CREATE ROLE … IN ROLE/ROLE/ADMIN and ALTER GROUP",
  create_role: "CREATE ROLE/USER/GROUP",
  alter_role: "ALTER ROLE/USER/GROUP (also … SET, … RENAME), DROP ROLE",
  do_block: "DO blocks",
  create_function: "CREATE [OR REPLACE] FUNCTION/PROCEDURE, ALTER FUNCTION/PROCEDURE/ROUTINE",
  security_definer: "CREATE/ALTER FUNCTION … SECURITY DEFINER, and handing a function to another owner",
  change_owner: "ALTER … OWNER TO, REASSIGN OWNED, CREATE SCHEMA/DATABASE/TABLESPACE for another owner",
  set_role:
    "SET ROLE, SET SESSION AUTHORIZATION, set_config('role', …), a `role` startup option: to any role but the grant's own and its recovery roles",
  login_credential:
    "a password, LOGIN or VALID UNTIL for a role (a way in that bypasses the gateway); always on for gateway sessions",
  session_bounds:
    "changing the settings that end a gateway session at the target when the gateway is gone (client_connection_check_interval, TCP keepalives); always on for gateway sessions",
};

/** PostgreSQL parse node type names (`DropStmt`, `A_Expr`), for checking custom rules in the configuration. */
export const NODE_NAME = /^[A-Z][A-Za-z_]*$/;
