import type { ApprovalRule, ApprovalTerm, Policy } from "./model.js";

/** Every group a rule draws approvers from. */
export function ruleGroups(rule: ApprovalRule): Set<string> {
  return new Set(rule.anyOf.flatMap((clause) => clause.map((t) => t.group)));
}

/** The groups `user` belongs to. */
export function groupsOf(policy: Pick<Policy, "groups">, user: string): Set<string> {
  const out = new Set<string>();
  for (const [group, members] of policy.groups) if (members.has(user)) out.add(group);
  return out;
}

/**
 * Can the clause be met by these distinct people, each counting for one term at most?
 * A bipartite matching (Kuhn's augmenting paths) of people onto the clause's seats.
 */
function clauseSatisfied(
  clause: readonly ApprovalTerm[],
  people: readonly string[],
  membership: (user: string) => ReadonlySet<string>,
): boolean {
  // Fail closed on a malformed clause: an empty clause or a term asking for no approver would
  // satisfy the rule with nobody, bypassing the two-person rule.
  if (clause.length === 0 || clause.some((t) => !Number.isSafeInteger(t.count) || t.count < 1)) return false;
  // Count before building seats, so a huge count costs nothing.
  if (clause.reduce((n, t) => n + t.count, 0) > people.length) return false;
  const seats = clause.flatMap((t) => Array.from({ length: t.count }, () => t.group));
  const seatHolder: (number | undefined)[] = seats.map(() => undefined);
  const groupsByPerson = people.map(membership);

  const place = (person: number, seen: boolean[]): boolean => {
    for (let s = 0; s < seats.length; s++) {
      const seat = seats[s];
      if (seen[s] || seat === undefined || !groupsByPerson[person]?.has(seat)) continue;
      seen[s] = true;
      const holder = seatHolder[s];
      if (holder === undefined || place(holder, seen)) {
        seatHolder[s] = person;
        return true;
      }
    }
    return false;
  };
  people.forEach((_, p) => {
    place(
      p,
      seats.map(() => false),
    );
  });
  return seatHolder.every((h) => h !== undefined);
}

/** Is the rule satisfied by approvals from these distinct people? */
export function ruleSatisfied(
  rule: ApprovalRule,
  approvers: readonly string[],
  membership: (user: string) => ReadonlySet<string>,
): boolean {
  const distinct = [...new Set(approvers)];
  return rule.anyOf.some((clause) => clauseSatisfied(clause, distinct, membership));
}

/** Render a rule the way the configuration writes it: `1 of security and 1 of dba or 2 of sre-leads`. */
export function describeRule(rule: ApprovalRule): string {
  return rule.anyOf.map((clause) => clause.map((t) => `${t.count} of ${t.group}`).join(" and ")).join(" or ");
}

/**
 * Parse the compact rule syntax: clauses joined by ` or `, terms by ` and `, each `N of GROUP`.
 * `and` binds tighter than `or`, so every rule is expressible without parentheses.
 * Returns an error message instead of throwing, so the config checker can attach a path.
 */
export function parseRule(text: string): ApprovalRule | { error: string } {
  const clauses = text
    .trim()
    .split(/\s+or\s+/i)
    .map((clause) => clause.split(/\s+and\s+/i));
  const anyOf: ApprovalTerm[][] = [];
  for (const clause of clauses) {
    const terms: ApprovalTerm[] = [];
    for (const raw of clause) {
      const m = /^(\d+)\s+of\s+([A-Za-z0-9][A-Za-z0-9_.-]*)$/i.exec(raw.trim());
      if (!m?.[1] || !m[2]) {
        return { error: `"${raw.trim()}" is not a term; write it as "N of GROUP", e.g. "2 of sre-leads"` };
      }
      const count = Number(m[1]);
      if (!Number.isSafeInteger(count)) return { error: `"${raw.trim()}" asks for an impossible number of approvers` };
      if (count < 1) return { error: `"${raw.trim()}" asks for no approver; the two-person rule needs at least 1` };
      terms.push({ group: m[2], count });
    }
    anyOf.push(terms);
  }
  return { anyOf };
}

/**
 * Could the rule ever be satisfied for a request by `requester`, using only configured people
 * other than the requester? `requester` null asks about the whole population.
 */
export function ruleSatisfiable(
  policy: Pick<Policy, "groups" | "users">,
  rule: ApprovalRule,
  requester: string | null,
): boolean {
  const people = [...policy.users.keys()].filter((u) => u !== requester);
  const cache = new Map<string, Set<string>>();
  const membership = (u: string): Set<string> => {
    let g = cache.get(u);
    if (!g) {
      g = groupsOf(policy, u);
      cache.set(u, g);
    }
    return g;
  };
  return ruleSatisfied(rule, people, membership);
}
