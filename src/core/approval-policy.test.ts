// biome-ignore-all lint/style/noRestrictedImports: tests import vitest; the purity rule guards shipped core code
import { describe, expect, it } from "vitest";
import { makePolicy, rule } from "../../test/support/core-fixtures.js";
import { describeRule, groupsOf, parseRule, ruleGroups, ruleSatisfiable, ruleSatisfied } from "./approval-policy.js";
import type { ApprovalRule, ApprovalTerm } from "./model.js";

/** Membership from a literal table; unknown people are in no group. */
function members(table: Record<string, readonly string[]>): (user: string) => ReadonlySet<string> {
  return (user) => new Set(table[user] ?? []);
}

describe("groupsOf and ruleGroups", () => {
  it("lists every group a user is in, and none for a stranger", () => {
    const policy = makePolicy();
    expect([...groupsOf(policy, "carol")].sort()).toEqual(["dba", "security", "sre-leads"]);
    expect([...groupsOf(policy, "alice")]).toEqual(["oncall"]);
    expect(groupsOf(policy, "mallory").size).toBe(0);
  });

  it("collects the groups of every clause once", () => {
    expect([...ruleGroups(rule("1 of security and 1 of dba or 2 of sre-leads or 1 of dba"))].sort()).toEqual([
      "dba",
      "security",
      "sre-leads",
    ]);
  });
});

describe("ruleSatisfied", () => {
  const secDba = rule("1 of security and 1 of dba");

  it("succeeds where a greedy assignment would fail: A in {x,y}, B in {x} satisfy 1 of x and 1 of y", () => {
    const m = members({ A: ["x", "y"], B: ["x"] });
    // Greedy in approval order seats A on x, then finds no seat for B.
    expect(ruleSatisfied(rule("1 of x and 1 of y"), ["A", "B"], m)).toBe(true);
    expect(ruleSatisfied(rule("1 of x and 1 of y"), ["B", "A"], m)).toBe(true);
  });

  it("follows a longer augmenting path", () => {
    // A:{x,y} B:{y,z} C:{x}. In order, A→x, B→y, then C needs x: A moves to y, B moves to z.
    const m = members({ A: ["x", "y"], B: ["y", "z"], C: ["x"] });
    expect(ruleSatisfied(rule("1 of x and 1 of y and 1 of z"), ["A", "B", "C"], m)).toBe(true);
  });

  it("needs distinct people for 2 of a group", () => {
    const m = members({ bob: ["sre-leads"], carol: ["sre-leads"] });
    expect(ruleSatisfied(rule("2 of sre-leads"), ["bob"], m)).toBe(false);
    expect(ruleSatisfied(rule("2 of sre-leads"), ["bob", "bob"], m)).toBe(false);
    expect(ruleSatisfied(rule("2 of sre-leads"), ["bob", "carol"], m)).toBe(true);
  });

  it("does not let one person in both groups fill both terms", () => {
    const m = members({ carol: ["security", "dba"], dave: ["dba"], erin: ["security"] });
    expect(ruleSatisfied(secDba, ["carol"], m)).toBe(false);
    expect(ruleSatisfied(secDba, ["carol", "dave"], m)).toBe(true);
    expect(ruleSatisfied(secDba, ["carol", "erin"], m)).toBe(true);
    expect(ruleSatisfied(secDba, ["dave", "dave"], m)).toBe(false);
  });

  it("is satisfied by any one clause of an OR", () => {
    const r = rule("1 of security and 1 of dba or 2 of sre-leads");
    const m = members({ bob: ["sre-leads"], dave: ["sre-leads", "dba"], erin: ["security"] });
    expect(ruleSatisfied(r, ["bob", "dave"], m)).toBe(true);
    expect(ruleSatisfied(r, ["erin", "dave"], m)).toBe(true);
    expect(ruleSatisfied(r, ["bob", "erin"], m)).toBe(false);
  });

  it("ignores approvers outside the rule's groups and tolerates extra ones", () => {
    const m = members({ bob: ["sre-leads"], carol: ["sre-leads"], eve: ["marketing"] });
    expect(ruleSatisfied(rule("2 of sre-leads"), ["eve", "bob"], m)).toBe(false);
    expect(ruleSatisfied(rule("2 of sre-leads"), ["eve", "bob", "carol", "mallory"], m)).toBe(true);
  });

  it("is not satisfied by nobody", () => {
    expect(ruleSatisfied(rule("1 of x"), [], members({}))).toBe(false);
    expect(ruleSatisfied({ anyOf: [] }, ["A"], members({ A: ["x"] }))).toBe(false);
  });

  it("fails closed on malformed rules that would otherwise need nobody", () => {
    const m = members({ A: ["x"] });
    const malformed: ApprovalTerm[][] = [
      [],
      [{ group: "x", count: 0 }],
      [{ group: "x", count: -1 }],
      [{ group: "x", count: 0.5 }],
      [{ group: "x", count: Number.NaN }],
    ];
    for (const clause of malformed) {
      expect(ruleSatisfied({ anyOf: [clause] }, ["A"], m), JSON.stringify(clause)).toBe(false);
      expect(ruleSatisfied({ anyOf: [clause] }, [], m), JSON.stringify(clause)).toBe(false);
    }
    // …but a well-formed clause beside a malformed one still counts.
    expect(ruleSatisfied({ anyOf: [[], [{ group: "x", count: 1 }]] }, ["A"], m)).toBe(true);
  });

  it("answers at once for a count larger than anyone could meet", () => {
    const r: ApprovalRule = { anyOf: [[{ group: "x", count: 1e12 }]] };
    expect(ruleSatisfied(r, ["A"], members({ A: ["x"] }))).toBe(false);
  });

  it("agrees with a brute-force search on random small cases", () => {
    // Seeded LCG: reproducible, and core tests take no randomness from the platform.
    let seed = 42;
    const rand = (n: number): number => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      return seed % n;
    };
    const groups = ["g0", "g1", "g2", "g3"];
    for (let round = 0; round < 400; round++) {
      const people = ["p0", "p1", "p2", "p3", "p4"].slice(0, 1 + rand(5));
      const table: Record<string, string[]> = {};
      for (const p of people) table[p] = groups.filter(() => rand(2) === 0);
      const clause: ApprovalTerm[] = groups.filter(() => rand(3) === 0).map((group) => ({ group, count: 1 + rand(2) }));
      if (clause.length === 0) continue;
      const expected = bruteForce(clause, people, table);
      expect(ruleSatisfied({ anyOf: [clause] }, people, members(table)), JSON.stringify({ clause, table })).toBe(
        expected,
      );
    }
  });
});

/** Try every assignment of people to seats. */
function bruteForce(clause: readonly ApprovalTerm[], people: readonly string[], table: Record<string, string[]>) {
  const seats = clause.flatMap((t) => Array.from({ length: t.count }, () => t.group));
  const fill = (s: number, used: Set<string>): boolean => {
    if (s === seats.length) return true;
    const seat = seats[s] ?? "";
    return people.some((p) => !used.has(p) && (table[p] ?? []).includes(seat) && fill(s + 1, new Set([...used, p])));
  };
  return fill(0, new Set());
}

describe("ruleSatisfiable", () => {
  it("is satisfiable from the whole population and without a requester who is one of the approvers", () => {
    const policy = makePolicy();
    expect(ruleSatisfiable(policy, rule("2 of sre-leads"), null)).toBe(true);
    // bob is an sre-lead; carol and dave remain.
    expect(ruleSatisfiable(policy, rule("2 of sre-leads"), "bob")).toBe(true);
    expect(ruleSatisfiable(policy, rule("3 of sre-leads"), null)).toBe(true);
    expect(ruleSatisfiable(policy, rule("3 of sre-leads"), "bob")).toBe(false);
    expect(ruleSatisfiable(policy, rule("3 of sre-leads"), "alice")).toBe(true);
  });

  it("cannot count one person for two terms", () => {
    const policy = makePolicy({ groups: { security: ["carol"], dba: ["carol"] } });
    expect(ruleSatisfiable(policy, rule("1 of security and 1 of dba"), null)).toBe(false);
    expect(ruleSatisfiable(policy, rule("1 of security or 1 of dba"), null)).toBe(true);
    expect(ruleSatisfiable(policy, rule("1 of security or 1 of dba"), "carol")).toBe(false);
  });

  it("is unsatisfiable for a group nobody is in, unless another clause helps", () => {
    const policy = makePolicy();
    expect(ruleSatisfiable(policy, rule("1 of ghosts"), null)).toBe(false);
    expect(ruleSatisfiable(policy, rule("1 of ghosts or 1 of dba"), null)).toBe(true);
  });

  it("only counts configured users", () => {
    const policy = makePolicy({ groups: { "sre-leads": ["bob", "ghost"] } });
    expect(ruleSatisfiable(policy, rule("2 of sre-leads"), null)).toBe(false);
  });
});

describe("parseRule", () => {
  it.each([
    ["2 of sre-leads", [[{ group: "sre-leads", count: 2 }]]],
    [
      "1 of security and 1 of dba",
      [
        [
          { group: "security", count: 1 },
          { group: "dba", count: 1 },
        ],
      ],
    ],
    [
      "1 of security and 1 of dba or 2 of sre-leads",
      [
        [
          { group: "security", count: 1 },
          { group: "dba", count: 1 },
        ],
        [{ group: "sre-leads", count: 2 }],
      ],
    ],
    ["  2   of\tsre-leads  ", [[{ group: "sre-leads", count: 2 }]]],
    [
      "1 OF Team_A.b-c AND 1 Of x Or 3 of y",
      [
        [
          { group: "Team_A.b-c", count: 1 },
          { group: "x", count: 1 },
        ],
        [{ group: "y", count: 3 }],
      ],
    ],
    ["01 of x", [[{ group: "x", count: 1 }]]],
    ["1 of or", [[{ group: "or", count: 1 }]]],
    ["1 of sre-or-dba", [[{ group: "sre-or-dba", count: 1 }]]],
  ])("parses %j", (text, anyOf) => {
    expect(parseRule(text)).toEqual({ anyOf });
  });

  it.each([
    ["", /is not a term/],
    ["   ", /is not a term/],
    ["sre-leads", /is not a term/],
    ["of sre-leads", /is not a term/],
    ["two of sre-leads", /is not a term/],
    ["2 sre-leads", /is not a term/],
    ["2 of", /is not a term/],
    ["-1 of x", /is not a term/],
    ["1.5 of x", /is not a term/],
    ["1 of x y", /is not a term/],
    ["1 of -x", /is not a term/],
    ["1 of x and", /is not a term/],
    ["1 of x or", /is not a term/],
    ["or 1 of x", /is not a term/],
    ["1 of x and and 1 of y", /is not a term/],
    ["1 of x or or 1 of y", /is not a term/],
    ["(1 of x or 1 of y) and 1 of z", /is not a term/],
    ["0 of x", /at least 1/],
    ["1 of x and 0 of y", /at least 1/],
    ["99999999999999999999 of x", /impossible/],
  ])("rejects %j", (text, message) => {
    const parsed = parseRule(text);
    expect(parsed).toHaveProperty("error");
    expect("error" in parsed ? parsed.error : "").toMatch(message);
  });
});

describe("describeRule", () => {
  it.each([
    "2 of sre-leads",
    "1 of security and 1 of dba",
    "1 of security and 1 of dba or 2 of sre-leads",
    "1 of a or 1 of b or 1 of c and 2 of d",
  ])("round-trips %j", (text) => {
    const parsed = rule(text);
    expect(describeRule(parsed)).toBe(text);
    expect(parseRule(describeRule(parsed))).toEqual(parsed);
  });

  it("normalises spacing and keyword case", () => {
    expect(describeRule(rule("  1 OF x   AND 2 of y OR 3 of z "))).toBe("1 of x and 2 of y or 3 of z");
  });
});
