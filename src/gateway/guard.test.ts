import { beforeAll, describe, expect, it } from "vitest";
import type { GuardRules } from "../core/model.js";
import { blockedStatement, decide, loadParser, sessionGuard } from "./guard.js";
import { NAMED_RULES } from "./guard-rules.js";

const rules: GuardRules = {
  deny: [
    NAMED_RULES.drop_table,
    NAMED_RULES.truncate,
    NAMED_RULES.delete_without_where,
    NAMED_RULES.copy_program,
    NAMED_RULES.alter_system,
  ],
  denySchemas: ["audit"],
};

beforeAll(() => loadParser());

describe("statement guard", () => {
  it("decides on the parse tree, not on the text", () => {
    expect(decide("DROP TABLE public.accounts", rules)).toEqual({
      allowed: false,
      reason: "DROP TABLE is not allowed",
    });
    expect(decide("SELECT 'DROP TABLE accounts' AS harmless", rules)).toEqual({ allowed: true });
    expect(decide("drop   index accounts_pkey", rules)).toEqual({ allowed: true });
    expect(decide("/* hi */ TrUnCaTe accounts", rules)).toMatchObject({
      allowed: false,
      reason: "TRUNCATE is not allowed",
    });
    expect(decide("DELETE FROM accounts WHERE id = 1", rules)).toEqual({ allowed: true });
    expect(decide("DELETE FROM accounts", rules)).toMatchObject({ reason: "DELETE without WHERE is not allowed" });
    expect(decide("COPY accounts TO PROGRAM 'curl evil'", rules)).toMatchObject({
      reason: "COPY … PROGRAM is not allowed",
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

  it("refuses statements on denied schemas, and what it cannot parse", () => {
    expect(decide("SELECT * FROM audit.events WHERE id = $1", rules)).toEqual({
      allowed: false,
      reason: "statements on schema audit are not allowed",
    });
    expect(decide("SELECT * FROM public.events", rules)).toEqual({ allowed: true });
    const bad = decide("SELEC 1", rules);
    expect(bad.allowed).toBe(false);
    expect(bad.allowed || bad.reason).toMatch(/could not be parsed/);
  });

  it("custom rules match node fields; no rules means no guard", () => {
    const index: GuardRules = {
      deny: [{ node: "DropStmt", where: { removeType: "OBJECT_INDEX" }, label: "DROP INDEX" }],
      denySchemas: [],
    };
    expect(decide("DROP INDEX i", index)).toMatchObject({ reason: "DROP INDEX is not allowed" });
    expect(decide("DROP TABLE t", index)).toEqual({ allowed: true });
    expect(sessionGuard({ deny: [], denySchemas: [] })).toBeNull();
    expect(sessionGuard(null)).toBeNull();
    const cached = sessionGuard(rules);
    expect(cached?.("DROP TABLE t")).toMatchObject({ allowed: false });
    expect(cached?.("DROP TABLE t")).toMatchObject({ allowed: false });
  });

  it("replaces a blocked statement with one that raises the guard's error, whatever the reason says", () => {
    const text = blockedStatement("it's $bg$ broken", "prod/db");
    expect(decide(text, { deny: [], denySchemas: ["x"] })).toEqual({ allowed: true }); // it parses
    expect(text).toContain("ERRCODE = '42501'");
    expect(text).toContain("Breakglass guard: it''s bg broken for role prod/db");
  });
});
