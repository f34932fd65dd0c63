/**
 * The statement guard: per-role deny rules decided on PostgreSQL's own parse tree (libpg-query,
 * the server's parser compiled to WebAssembly), never on substrings — `SELECT 'DROP TABLE x'` is
 * a SELECT, and `WITH d AS (DELETE FROM t RETURNING *) SELECT …` contains a DELETE.
 *
 * Named rules are categories of the classification in guard-classes.ts, which covers every node
 * type of the parser. The whole tree is searched, so a denied statement is found inside EXPLAIN
 * ANALYZE, PREPARE, CREATE RULE, a data-modifying WITH, a function's SET clause or
 * `ALTER ROLE … SET`. What the parser cannot see is code that builds statements at run time (DO
 * blocks, functions, EXECUTE in PL/pgSQL): deny `do_block` and `create_function` where that
 * matters. A statement that does not parse is refused when the role has a guard (fail closed).
 *
 * A verdict is a pure function of the statement text and the rules (memoisable by text).
 */
import { loadModule, parseSync } from "libpg-query";
import { classifyNode, type Fields, type GuardRuleName, type Hit } from "../contract/guard-classes.js";
import { NODE_NAME } from "../contract/guard-rules.js";
import type { GuardRules } from "../core/model.js";
import { NODE_FIELDS } from "./parse-node-fields.js";

let ready: Promise<void> | null = null;
/** Load the parser (WebAssembly) once; the gateway awaits it before it listens. */
export function loadParser(): Promise<void> {
  ready ??= loadModule();
  return ready;
}

export type GuardVerdict = { readonly allowed: true } | { readonly allowed: false; readonly reason: string };

const ALLOWED: GuardVerdict = { allowed: true };

const isFields = (v: unknown): v is Fields => typeof v === "object" && v !== null && !Array.isArray(v);

function matches(node: Fields, where: Readonly<Record<string, unknown>> | undefined): boolean {
  if (!where) return true;
  for (const [k, v] of Object.entries(where)) {
    const actual = node[k];
    if (v === null ? actual !== undefined && actual !== null : actual !== v) return false;
  }
  return true;
}

type Visit = (type: string, node: Fields) => string | null;

/** A node of a known type: visit it, then its fields (bare nodes in typed fields, wrapped ones elsewhere). */
function walkTyped(type: string, node: Fields, visit: Visit): string | null {
  const found = visit(type, node);
  if (found) return found;
  const fields = Object.hasOwn(NODE_FIELDS, type) ? NODE_FIELDS[type] : undefined;
  for (const [k, v] of Object.entries(node)) {
    const bare = fields && Object.hasOwn(fields, k) ? fields[k] : undefined;
    if (bare === undefined) {
      const r = walkAny(v, visit);
      if (r) return r;
      continue;
    }
    for (const x of Array.isArray(v) ? v : [v]) {
      if (!isFields(x)) continue;
      const r = walkTyped(bare, x, visit);
      if (r) return r;
    }
  }
  return null;
}

/** Anything else: wrapped nodes (`{"DropStmt": {…}}`) are found by their type-named key. */
function walkAny(value: unknown, visit: Visit): string | null {
  if (Array.isArray(value)) {
    for (const v of value) {
      const r = walkAny(v, visit);
      if (r) return r;
    }
    return null;
  }
  if (!isFields(value)) return null;
  for (const [k, v] of Object.entries(value)) {
    const r = NODE_NAME.test(k) && isFields(v) ? walkTyped(k, v, visit) : walkAny(v, visit);
    if (r) return r;
  }
  return null;
}

/** Why a hit refuses, or null when the rules let it through (`set_role` to a role the grant holds). */
function refusal(hit: Hit, setRoles: ReadonlySet<string>): string | null {
  if (hit.rule === "set_role" && typeof hit.role === "string" && setRoles.has(hit.role)) return null;
  return `${hit.label} is not allowed (${hit.rule})`;
}

/** The verdict on one parsed node tree (a statement list, or one synthetic node). */
function decideTree(type: string | null, tree: Fields, rules: GuardRules): GuardVerdict {
  const named = rules.named as readonly GuardRuleName[];
  const schemas = new Set(rules.denySchemas);
  const setRoles = new Set(rules.setRoles);
  const visit: Visit = (t, node) => {
    for (const hit of classifyNode(t, node, named)) {
      const why = refusal(hit, setRoles);
      if (why) return why;
    }
    for (const r of rules.deny) if (r.node === t && matches(node, r.where)) return `${r.label} is not allowed`;
    if (schemas.size > 0) {
      const schema = schemaNamed(t, node, schemas);
      if (schema) return `statements on schema ${schema} are not allowed`;
    }
    return null;
  };
  const reason = type === null ? walkAny(tree, visit) : walkTyped(type, tree, visit);
  return reason ? { allowed: false, reason } : ALLOWED;
}

/** A denied schema this node names: a relation in it, an object a DROP names in it, or the schema a DROP SCHEMA drops. */
function schemaNamed(type: string, node: Fields, schemas: ReadonlySet<string>): string | null {
  if (type === "RangeVar")
    return typeof node.schemaname === "string" && schemas.has(node.schemaname) ? node.schemaname : null;
  if (type !== "DropStmt" || !Array.isArray(node.objects)) return null;
  for (const o of node.objects) {
    const names = qualifiedName(o);
    const schema = node.removeType === "OBJECT_SCHEMA" ? names[names.length - 1] : names[names.length - 2];
    if (schema !== undefined && schemas.has(schema)) return schema;
  }
  return null;
}

/** The name parts of a DROP's object: `List` of `String`, `ObjectWithArgs`, `TypeName`, or one `String`. */
function qualifiedName(o: unknown): string[] {
  if (!isFields(o)) return [];
  const items = (o.List as Fields | undefined)?.items ??
    (o.ObjectWithArgs as Fields | undefined)?.objname ??
    (o.TypeName as Fields | undefined)?.names ?? [o];
  return (Array.isArray(items) ? items : []).flatMap((i) => {
    const s = isFields(i) && isFields(i.String) ? i.String.sval : undefined;
    return typeof s === "string" ? [s] : [];
  });
}

const guarded = (rules: GuardRules): boolean =>
  rules.named.length > 0 || rules.deny.length > 0 || rules.denySchemas.length > 0;
/** The rules every gateway session has, whatever its role's guard says (see gatewayRules). */
export const GATEWAY_RULES: readonly GuardRuleName[] = ["login_credential", "session_bounds"];
const onlyGatewayRules = (rules: GuardRules): boolean =>
  rules.named.every((r) => (GATEWAY_RULES as readonly string[]).includes(r)) &&
  rules.deny.length === 0 &&
  rules.denySchemas.length === 0;

/** Decide one query text (which may hold several statements). Call {@link loadParser} first. */
export function decide(sql: string, rules: GuardRules): GuardVerdict {
  if (!guarded(rules)) return ALLOWED;
  let tree: unknown;
  try {
    tree = parseSync(sql);
  } catch (e) {
    return {
      allowed: false,
      reason: `the statement could not be parsed (${(e as Error).message}); the guard refuses what it cannot read`,
    };
  }
  return isFields(tree) ? decideTree("ParseResult", tree, rules) : ALLOWED;
}

/**
 * Startup parameters set settings before any statement runs (`options=-c role=app_owner`, or a
 * `role` parameter): each is decided as the `SET` it amounts to. An `options` switch other than
 * `-c name=value` / `--name=value` is refused when the role has a guard (the guard cannot read it).
 */
export function decideStartup(params: Readonly<Record<string, string>>, rules: GuardRules): GuardVerdict {
  // No setting gives a role a password, and the gateway's own session bounds are sent after the
  // client's parameters (the server applies the last): a session with only the gateway's own
  // rules takes any.
  if (!guarded(rules) || onlyGatewayRules(rules)) return ALLOWED;
  const settings: [string, string][] = [];
  for (const [k, v] of Object.entries(params)) {
    if (k === "options") {
      const parsed = parseOptions(v);
      if (parsed === null) {
        return {
          allowed: false,
          reason: `startup options "${v}" are not allowed (the guard reads only -c name=value)`,
        };
      }
      settings.push(...parsed);
    } else settings.push([k, v]);
  }
  for (const [name, value] of settings) {
    const set: Fields = {
      kind: "VAR_SET_VALUE",
      name: name.toLowerCase().replace(/-/g, "_"),
      args: [{ A_Const: { sval: { sval: value } } }],
    };
    const v = decideTree("VariableSetStmt", set, rules);
    if (!v.allowed) return { allowed: false, reason: `startup parameter ${name}: ${v.reason}` };
  }
  return ALLOWED;
}

/**
 * PostgreSQL's reading of the `options` startup parameter (pg_split_opts: whitespace separates,
 * backslash escapes), keeping `-c name=value`, `-cname=value` and `--name=value`; null for any
 * other switch, or a setting name that is not a plain one.
 */
function parseOptions(options: string): [string, string][] | null {
  const words: string[] = [];
  let word = "";
  let inWord = false;
  for (let i = 0; i < options.length; i++) {
    const ch = options.charAt(i);
    if (ch === "\\" && i + 1 < options.length) {
      word += options.charAt(++i);
      inWord = true;
    } else if (/\s/.test(ch)) {
      if (inWord) words.push(word);
      word = "";
      inWord = false;
    } else {
      word += ch;
      inWord = true;
    }
  }
  if (inWord) words.push(word);
  const out: [string, string][] = [];
  for (let i = 0; i < words.length; i++) {
    const w = words[i] as string;
    const setting = w === "-c" ? words[++i] : w.startsWith("--") ? w.slice(2) : w.startsWith("-c") ? w.slice(2) : null;
    const eq = setting?.indexOf("=") ?? -1;
    if (!setting || eq <= 0 || !/^[A-Za-z_][A-Za-z0-9_.-]*$/.test(setting.slice(0, eq))) return null;
    out.push([setting.slice(0, eq), setting.slice(eq + 1)]);
  }
  return out;
}

/**
 * The texts a session with only the gateway's own rules must parse. A statement can only be a
 * `CREATE/ALTER ROLE|USER|GROUP` if its text holds one of those words (keywords cannot be escaped
 * or quoted); it can only name a session bound, set_config or pg_settings if its text holds the
 * name — or a Unicode escape (`U&"…"`), the one way to spell an identifier without its letters.
 */
const GATEWAY_WORDS = /role|user|group|client_connection|tcp_|set_config|pg_settings|u&/i;

/**
 * The pre-check of a session with only the gateway's own rules: false only for a text that no
 * parse can refuse under them (see GATEWAY_WORDS). It may say true for texts that pass — they go
 * to the full parse — never false for one the parse refuses (property-tested against the parse
 * on generated SQL in guard-precheck.test.ts).
 */
export const mayNeedGatewayRules = (sql: string): boolean => GATEWAY_WORDS.test(sql);

/**
 * A guard for one session: verdicts cached by statement text (prepared statements and repeated
 * queries are parsed once).
 */
export function sessionGuard(rules: GuardRules | null): ((sql: string) => GuardVerdict) | null {
  if (!rules || !guarded(rules)) return null;
  const cache = new Map<string, GuardVerdict>();
  const quick = onlyGatewayRules(rules);
  return (sql) => {
    if (quick && !mayNeedGatewayRules(sql)) return ALLOWED;
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
