/**
 * The guard's shortcuts decide exactly as the full parse does. A session with only the gateway's
 * own rules (`login_credential`, `session_bounds`) skips the parse for texts the pre-check says
 * cannot concern them; every session memoises verdicts by text. Generated SQL — statements those
 * rules refuse and statements they let through, in any letter case, with comments, quoted and
 * Unicode-escaped names, nested in other statements — checks both against {@link decide}.
 *
 * One difference is by design: a text the parser cannot read is refused by a guarded role (fail
 * closed), while a session with only the gateway's rules forwards it when the pre-check skips it —
 * the target refuses it with its own syntax error, and a text without those words cannot change a
 * role or a session bound in any syntax (keywords cannot be quoted or escaped).
 */
import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import type { GuardRules } from "../core/model.js";
import {
  decide,
  GATEWAY_RULES,
  type GuardVerdict,
  loadParser,
  mayNeedGatewayRules,
  sessionGuard,
} from "./statement-guard.js";

beforeAll(() => loadParser());

const unreadable = (v: GuardVerdict): boolean => !v.allowed && /could not be parsed/.test(v.reason);

const gatewayOnly: GuardRules = { named: [...GATEWAY_RULES], deny: [], denySchemas: [], setRoles: ["bg_g_1"] };
const guarded: GuardRules = {
  named: [...GATEWAY_RULES, "drop_table", "truncate", "set_role", "delete_without_where"],
  deny: [],
  denySchemas: ["audit"],
  setRoles: ["bg_g_1"],
};

/** A name as PostgreSQL can spell it: plain, any case, double-quoted, or Unicode-escaped (U&"…"). */
const spelled = (name: string): fc.Arbitrary<string> =>
  fc.oneof(
    fc.constant(name),
    fc.constant(name.toUpperCase()),
    fc.constant(`"${name}"`),
    fc
      .integer({ min: 0, max: Math.max(0, name.length - 1) })
      .map(
        (i) =>
          `U&"${name.slice(0, i)}\\${(name.codePointAt(i) ?? 97).toString(16).padStart(4, "0")}${name.slice(i + 1)}"`,
      ),
  );
const setting = fc.constantFrom(
  "client_connection_check_interval",
  "tcp_keepalives_idle",
  "tcp_keepalives_interval",
  "tcp_keepalives_count",
  "tcp_user_timeout",
  "role",
  "work_mem",
  "search_path",
  "application_name",
);
const role = fc.constantFrom("bg_g_1", "app_owner", "current_user", "postgres");
const value = fc.constantFrom("0", "'0'", "'1s'", "DEFAULT", "10");
const table = fc.constantFrom("public.accounts", "accounts", "audit.log", "pg_settings", "pg_catalog.pg_settings");

/** One statement, from templates the gateway's rules refuse and templates they let through. */
const statement: fc.Arbitrary<string> = fc.oneof(
  fc.tuple(spelled("role"), role).map(([, r]) => `SELECT 1 FROM ${r === "current_user" ? "pg_roles" : "accounts"}`),
  fc
    .tuple(role, fc.constantFrom("PASSWORD 'x'", "LOGIN", "VALID UNTIL 'infinity'", "NOLOGIN", "CONNECTION LIMIT 3"))
    .map(([r, opt]) => `ALTER ${["ROLE", "USER"][r.length % 2]} ${r} ${opt}`),
  fc
    .tuple(role, fc.constantFrom("PASSWORD 'x'", "LOGIN", "NOLOGIN", ""))
    .map(([r, opt]) => `CREATE ROLE x_${r.length} ${opt}`),
  fc.tuple(spelled("client_connection_check_interval"), value).map(([s, v]) => `SET ${s} = ${v}`),
  fc.tuple(setting, value).chain(([s, v]) => spelled(s).map((n) => `SET LOCAL ${n} TO ${v}`)),
  fc.tuple(setting, value).map(([s, v]) => `SELECT set_config('${s}', ${v === "DEFAULT" ? "'0'" : v}::text, false)`),
  fc.tuple(setting, value).map(([s]) => `SELECT pg_catalog.set_config(E'${s.replace(/_/g, "\\x5f")}', '0', true)`),
  fc.tuple(setting, table).map(([s, t]) => `UPDATE ${t} SET setting = '0' WHERE name = '${s}'`),
  table.map((t) => `CREATE VIEW v AS SELECT * FROM ${t}`),
  fc.tuple(setting, value).map(([s, v]) => `ALTER FUNCTION f() SET ${s} = ${v}`),
  fc
    .tuple(setting, value)
    .map(([s, v]) => `CREATE FUNCTION f() RETURNS int LANGUAGE sql SET ${s} = ${v} AS 'SELECT 1'`),
  table.map((t) => `SELECT count(*) FROM ${t} WHERE owner = 'acme'`),
  table.map((t) => `DELETE FROM ${t}`),
  table.map((t) => `TRUNCATE ${t}`),
  table.map((t) => `DROP TABLE ${t}`),
  role.map((r) => `SET ROLE ${r}`),
  role.map((r) => `GRANT SELECT ON accounts TO ${r}`),
  fc.constantFrom(
    "BEGIN",
    "COMMIT",
    "SELECT 1",
    "SELECT 'ALTER ROLE x PASSWORD ''p'''",
    "SHOW tcp_keepalives_idle",
    "RESET ALL",
  ),
);

/** Statements joined, nested (EXPLAIN, a data-modifying WITH, PREPARE), with comments between. */
const sql: fc.Arbitrary<string> = fc
  .tuple(
    fc.array(statement, { minLength: 1, maxLength: 3 }),
    fc.constantFrom("", "EXPLAIN ", "PREPARE p AS ", "/* role */ ", "-- x\n"),
    fc.constantFrom(" ", "\n", " /* c */ ", "\t"),
  )
  .map(([stmts, prefix, gap]) => prefix + stmts.join(`;${gap}`).replace(/ /g, gap));

describe("the guard's pre-check and memo", () => {
  it("the pre-check never skips a statement the full parse refuses under the gateway's own rules", () => {
    let refused = 0;
    fc.assert(
      fc.property(sql, (text) => {
        const verdict = decide(text, gatewayOnly);
        if (!verdict.allowed) refused += 1;
        // Skipped (the pre-check says it cannot matter) ⇒ the parse lets it through (or cannot read it).
        return mayNeedGatewayRules(text) || verdict.allowed || unreadable(verdict);
      }),
      { numRuns: 3000 },
    );
    // The generator makes statements the rules refuse: the property is not vacuous.
    expect(refused).toBeGreaterThan(300);
  });

  it("a narrower pre-check (one that forgets Unicode escapes or tcp_) is caught by the same property", () => {
    for (const narrower of [
      /role|user|group|client_connection|tcp_|set_config|pg_settings/i,
      /role|user|group|client_connection|set_config|pg_settings|u&/i,
    ]) {
      const found = fc.check(
        fc.property(sql, (text) => {
          const verdict = decide(text, gatewayOnly);
          return narrower.test(text) || verdict.allowed || unreadable(verdict);
        }),
        { numRuns: 3000 },
      );
      expect(found.failed).toBe(true);
    }
  });

  it("a session's guard decides as the full parse on every statement, first time and memoised", () => {
    for (const rules of [gatewayOnly, guarded]) {
      const session = sessionGuard(rules);
      if (!session) throw new Error("no guard");
      fc.assert(
        fc.property(sql, (text) => {
          const full = decide(text, rules);
          const skipped = rules === gatewayOnly && !mayNeedGatewayRules(text) && unreadable(full);
          const expected = skipped ? { allowed: true } : full;
          expect(session(text)).toEqual(expected);
          expect(session(text)).toEqual(expected);
        }),
        { numRuns: 1500 },
      );
    }
  });
});
