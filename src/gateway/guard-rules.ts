/**
 * The statement guard's named rules (see guard.ts), apart from the parser so the configuration
 * loader can use them without loading it.
 */
import type { GUARD_RULE_NAMES } from "../contract/config-schema.js";
import type { DenyRule } from "../core/model.js";

/** The named rules a configuration can use. */
export const NAMED_RULES: Readonly<Record<(typeof GUARD_RULE_NAMES)[number], DenyRule>> = {
  drop_database: { node: "DropdbStmt", label: "DROP DATABASE" },
  drop_table: { node: "DropStmt", where: { removeType: "OBJECT_TABLE" }, label: "DROP TABLE" },
  drop_schema: { node: "DropStmt", where: { removeType: "OBJECT_SCHEMA" }, label: "DROP SCHEMA" },
  drop_any: { node: "DropStmt", label: "DROP" },
  truncate: { node: "TruncateStmt", label: "TRUNCATE" },
  alter_system: { node: "AlterSystemStmt", label: "ALTER SYSTEM" },
  copy_program: { node: "CopyStmt", where: { is_program: true }, label: "COPY … PROGRAM" },
  delete_without_where: { node: "DeleteStmt", where: { whereClause: null }, label: "DELETE without WHERE" },
  update_without_where: { node: "UpdateStmt", where: { whereClause: null }, label: "UPDATE without WHERE" },
  grant: { node: "GrantStmt", label: "GRANT/REVOKE" },
  grant_role: { node: "GrantRoleStmt", label: "GRANT/REVOKE role" },
  create_role: { node: "CreateRoleStmt", label: "CREATE ROLE" },
  alter_role: { node: "AlterRoleStmt", label: "ALTER ROLE" },
  do_block: { node: "DoStmt", label: "DO block" },
  create_function: { node: "CreateFunctionStmt", label: "CREATE FUNCTION" },
};

/** PostgreSQL parse node type names (`DropStmt`), for checking custom rules in the configuration. */
export const NODE_NAME = /^[A-Z][A-Za-z]+$/;
