/**
 * The statement guard: per-role deny rules decided on PostgreSQL's own parse tree (libpg-query,
 * the server's parser compiled to WebAssembly), never on substrings — `SELECT 'DROP TABLE x'` is
 * a SELECT, and `WITH d AS (DELETE FROM t RETURNING *) SELECT …` contains a DELETE.
 *
 * The whole tree is searched, so a denied statement is found inside EXPLAIN ANALYZE, PREPARE,
 * CREATE RULE and data-modifying WITH. What the parser cannot see is code that builds statements
 * at run time (DO blocks, functions, EXECUTE in PL/pgSQL): deny `do_block` and keep the role
 * from creating functions where that matters. A statement that does not parse is refused when the
 * role has a guard (fail closed).
 */
import { loadModule, parseSync } from "libpg-query";
import type { GuardRules } from "../core/model.js";
import { NODE_NAME } from "./guard-rules.js";

let ready: Promise<void> | null = null;
/** Load the parser (WebAssembly) once; the gateway awaits it before it listens. */
export function loadParser(): Promise<void> {
  ready ??= loadModule();
  return ready;
}

export type GuardVerdict = { readonly allowed: true } | { readonly allowed: false; readonly reason: string };

const ALLOWED: GuardVerdict = { allowed: true };

function matches(node: Record<string, unknown>, where: Readonly<Record<string, unknown>> | undefined): boolean {
  if (!where) return true;
  for (const [k, v] of Object.entries(where)) {
    const actual = node[k];
    if (v === null ? actual !== undefined && actual !== null : actual !== v) return false;
  }
  return true;
}

/** Depth-first over the parse tree: calls `visit(type, node)` for every typed node. */
function walk(value: unknown, visit: (type: string, node: Record<string, unknown>) => string | null): string | null {
  if (Array.isArray(value)) {
    for (const v of value) {
      const r = walk(v, visit);
      if (r) return r;
    }
    return null;
  }
  if (typeof value !== "object" || value === null) return null;
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    if (NODE_NAME.test(k) && typeof v === "object" && v !== null && !Array.isArray(v)) {
      const r = visit(k, v as Record<string, unknown>);
      if (r) return r;
    }
    const r = walk(v, visit);
    if (r) return r;
  }
  return null;
}

/** Decide one query text (which may hold several statements). Call {@link loadParser} first. */
export function decide(sql: string, rules: GuardRules): GuardVerdict {
  if (rules.deny.length === 0 && rules.denySchemas.length === 0) return ALLOWED;
  let tree: unknown;
  try {
    tree = parseSync(sql);
  } catch (e) {
    return {
      allowed: false,
      reason: `the statement could not be parsed (${(e as Error).message}); the guard refuses what it cannot read`,
    };
  }
  const schemas = new Set(rules.denySchemas);
  const reason = walk(tree, (type, node) => {
    for (const r of rules.deny) if (r.node === type && matches(node, r.where)) return `${r.label} is not allowed`;
    if (type === "RangeVar" && typeof node.schemaname === "string" && schemas.has(node.schemaname)) {
      return `statements on schema ${node.schemaname} are not allowed`;
    }
    return null;
  });
  return reason ? { allowed: false, reason } : ALLOWED;
}

/**
 * A guard for one session: verdicts cached by statement text (prepared statements and repeated
 * queries are parsed once).
 */
export function sessionGuard(rules: GuardRules | null): ((sql: string) => GuardVerdict) | null {
  if (!rules || (rules.deny.length === 0 && rules.denySchemas.length === 0)) return null;
  const cache = new Map<string, GuardVerdict>();
  return (sql) => {
    const hit = cache.get(sql);
    if (hit) return hit;
    const v = decide(sql, rules);
    if (cache.size >= 1000) cache.delete(cache.keys().next().value as string);
    cache.set(sql, v);
    return v;
  };
}

/**
 * The statement sent to the target in place of a blocked one: it raises the guard's error there,
 * so the client gets a real PostgreSQL error (SQLSTATE 42501) in protocol order, and a
 * transaction block fails exactly as it would for any other error.
 */
export function blockedStatement(reason: string, role: string): string {
  const text = `Breakglass guard: ${reason} for role ${role}`.replace(/'/g, "''").replace(/\$/g, "");
  return `DO $bg$BEGIN RAISE EXCEPTION USING ERRCODE = '42501', MESSAGE = '${text}', HINT = 'the statement was not run; it is recorded and security was alarmed'; END$bg$`;
}
