// biome-ignore-all lint/style/noRestrictedImports: tests import vitest; the purity rule guards shipped core code
import { describe, expect, it } from "vitest";
import {
  ADMIN_GROUP,
  makeGrant,
  makePolicy,
  makeRole,
  ROLE_DB_ADMIN,
  ROLE_EDGE_ADMIN,
  rule,
  T0,
} from "../../test/support/core-fixtures.js";
import {
  approverGroups,
  inAnyGroup,
  isAdmin,
  isApprover,
  isApproverOrAdmin,
  isHolder,
  isRequesterOf,
  mayExtend,
  mayManageTokensOf,
  mayReadRecording,
  neededScope,
  requireAdmin,
  reviewBlocker,
  reviewRefusal,
  type SignInGate,
  signInRefusal,
  vaultReviewRefusal,
} from "./authorization.js";
import { BreakglassError } from "./errors.js";
import type { Grant, GrantState } from "./model.js";
import type { AuthInfo } from "./request-context.js";

// alice: oncall · bob: oncall, sre-leads · carol: sre-leads, security, dba · dave: sre-leads, dba ·
// erin: oncall, security, platform-admins · mallory: nobody the policy knows.
const policy = makePolicy();
const role = policy.roles.get(ROLE_DB_ADMIN);
if (!role) throw new Error("fixture role missing");
/** alice's db-admin grant (approvers: 2 of sre-leads), approved by bob. */
const grant = makeGrant({
  requester: "alice",
  roleId: ROLE_DB_ADMIN,
  state: "ended",
  approvals: [{ approver: "bob", at: T0, comment: null }],
});

describe("who may do what with alice's db-admin grant (approved by bob)", () => {
  const RULES = {
    admin: (u: string) => isAdmin(policy, u),
    approver: (u: string) => isApprover(policy, ROLE_DB_ADMIN, u),
    approverOrAdmin: (u: string) => isApproverOrAdmin(policy, ROLE_DB_ADMIN, u),
    requester: (u: string) => isRequesterOf(policy, role, u),
    holder: (u: string) => isHolder(grant, u),
    extend: (u: string) => mayExtend(policy, grant, u),
    recording: (u: string) => mayReadRecording(policy, grant, u),
    alicesTokens: (u: string) => mayManageTokensOf(policy, u, "alice"),
    review: (u: string) => reviewRefusal(policy, grant, u) === null,
  } as const;
  type Rule = keyof typeof RULES;
  const COLUMNS = Object.keys(RULES) as Rule[];
  // biome-ignore format: a table reads best in columns
  const TABLE: readonly [string, ...boolean[]][] = [
    //          admin  approver aprOrAdm request holder extend record tokens review
    ["alice",   false, false,   false,   true,   true,  true,  true,  true,  false],
    ["bob",     false, true,    true,    true,   false, false, true,  false, false],
    ["carol",   false, true,    true,    false,  false, false, true,  false, true ],
    ["dave",    false, true,    true,    false,  false, false, true,  false, true ],
    ["erin",    true,  false,   true,    true,   false, true,  true,  true,  true ],
    ["mallory", false, false,   false,   false,  false, false, false, false, true ],
  ];
  for (const [user, ...expected] of TABLE) {
    it(`answers for ${user}`, () => {
      const got = Object.fromEntries(COLUMNS.map((c) => [c, RULES[c](user)]));
      expect(got).toEqual(Object.fromEntries(COLUMNS.map((c, i) => [c, expected[i]])));
    });
  }
});

describe("approver groups", () => {
  it("are every group the role's rule draws from, in every clause", () => {
    expect([...approverGroups(policy, ROLE_EDGE_ADMIN)].sort()).toEqual(["dba", "security", "sre-leads"]);
  });

  it("are none for a role that is not configured: only admins look after its grants", () => {
    expect(approverGroups(policy, "gone/role").size).toBe(0);
    expect(isApprover(policy, "gone/role", "bob")).toBe(false);
    expect(isApproverOrAdmin(policy, "gone/role", "bob")).toBe(false);
    expect(isApproverOrAdmin(policy, "gone/role", "erin")).toBe(true);
    expect(mayReadRecording(policy, makeGrant({ roleId: "gone/role" }), "erin")).toBe(true);
    expect(mayReadRecording(policy, makeGrant({ roleId: "gone/role" }), "bob")).toBe(false);
  });

  it("membership is by group, not by name", () => {
    expect(inAnyGroup(policy, "carol", ["dba", "nobody"])).toBe(true);
    expect(inAnyGroup(policy, "carol", [])).toBe(false);
    expect(inAnyGroup(policy, "sre-leads", ["sre-leads"])).toBe(false);
  });
});

describe("admins", () => {
  it("refuses a non-admin naming the admin groups, and lets an admin through", () => {
    expect(() => requireAdmin(policy, "erin", "reading the audit log")).not.toThrow();
    const e = catchError(() => requireAdmin(policy, "carol", "reading the audit log"));
    expect(e.code).toBe("ERR_FORBIDDEN");
    expect(e.message).toBe(`reading the audit log needs membership of ${ADMIN_GROUP}`);
    expect(e.detail).toEqual({ groups: [ADMIN_GROUP] });
  });

  it("says how to configure one when there is no admin group: nobody is an admin", () => {
    const none = makePolicy({ adminGroups: [] });
    expect(isAdmin(none, "erin")).toBe(false);
    expect(catchError(() => requireAdmin(none, "erin", "reconciliation")).message).toBe(
      "reconciliation needs membership of an admin group (none is configured: set admin_groups)",
    );
  });
});

describe("reviews", () => {
  const emergencyPolicy = makePolicy({
    roles: [makeRole({ id: ROLE_DB_ADMIN, approval: rule("2 of sre-leads"), emergencyReviewers: ["security"] })],
  });
  // [grant, reviewer, refused?]
  const CASES: readonly [string, Partial<Grant>, string, boolean][] = [
    ["an emergency use, by an emergency reviewer", { emergency: true }, "carol", false],
    ["an emergency use, by someone else", { emergency: true }, "dave", true],
    ["a grant from a fallback login, by someone else", { viaFallback: true }, "dave", true],
    ["an ordinary use, by someone else", {}, "dave", false],
    ["an emergency use, by its holder even if a reviewer", { emergency: true, requester: "erin" }, "erin", true],
  ];
  for (const [what, patch, reviewer, refused] of CASES) {
    it(`${refused ? "refuses" : "allows"} ${what}`, () => {
      const g = makeGrant({ state: "ended", ...patch });
      expect(reviewRefusal(emergencyPolicy, g, reviewer) !== null).toBe(refused);
    });
  }

  it("blocks the verdict by state and drill before asking who", () => {
    const STATES: readonly [GrantState, boolean | undefined, string | null][] = [
      ["ended", undefined, null],
      ["ended", true, "it belongs to a drill: drills are not reviewed, their run is the record"],
      ["reviewed", undefined, "it has been reviewed already"],
      ["active", undefined, "it is active; grants are reviewed once they have ended"],
    ];
    for (const [state, drill, why] of STATES) {
      const g = makeGrant({ state, ...(drill ? { drill } : {}) });
      expect(reviewBlocker(policy, g, "dave"), `${state}${drill ? " (drill)" : ""}`).toBe(why);
    }
    expect(reviewBlocker(policy, makeGrant({ state: "ended" }), "alice")).toBe(
      "alice held grant g_1 and cannot review it",
    );
  });

  it("keeps a tier-2 opening from its custodians and to the reviewer groups", () => {
    const opening = { envelopeName: "root", custodians: [{ name: "carol" }, { name: "dave" }] };
    const ask = (who: string, groups: readonly string[] = ["security"]) =>
      vaultReviewRefusal(policy, opening as never, who, groups);
    expect(ask("erin")).toBeNull();
    expect(ask("carol")).toBe("carol opened envelope root as a custodian and cannot review that opening");
    expect(ask("bob")).toBe("tier-2 openings are reviewed by a member of security");
    expect(ask("erin", [])).toMatch(/^no reviewer groups for tier-2 openings/);
  });
});

describe("the sign-in gate", () => {
  const token = (scopes: readonly string[]): AuthInfo => ({ method: "token", sessionId: null, factorAt: null, scopes });
  const oidc: AuthInfo = { method: "oidc", sessionId: "s", factorAt: null };
  const fallback: AuthInfo = { method: "fallback", sessionId: "s", factorAt: null };
  const GET: SignInGate = { method: "GET" };
  const POST: SignInGate = { method: "POST" };
  // [gate, sign-in, refused?]
  const CASES: readonly [string, SignInGate, AuthInfo, boolean][] = [
    ["a GET, to a read token", GET, token(["read"]), false],
    ["a GET, to a request token", GET, token(["request"]), true],
    ["a POST, to a request token", POST, token(["request"]), false],
    ["an approve route, to a request token", { method: "POST", scope: "approve" }, token(["request"]), true],
    ["an approve route, to a * token", { method: "POST", scope: "approve" }, token(["*"]), false],
    ["a session route, to a * token", { method: "POST", scope: "session" }, token(["*"]), true],
    ["a session route, to a person", { method: "POST", scope: "session" }, oidc, false],
    ["an admin route, to a person (groups decide)", { method: "GET", scope: "admin" }, oidc, false],
    ["a route not for fallback, to a fallback login", GET, fallback, true],
    ["a fallback route, to a fallback login", { method: "POST", fallback: true }, fallback, false],
    ["a token without scopes", GET, { method: "token", sessionId: null, factorAt: null }, true],
  ];
  for (const [what, gate, auth, refused] of CASES) {
    it(`${refused ? "closes" : "opens"} ${what}`, () => {
      const r = signInRefusal(gate, auth);
      expect(r !== null).toBe(refused);
      if (r) expect(r.code).toBe("ERR_FORBIDDEN");
    });
  }

  it("names the missing scope", () => {
    const r = signInRefusal({ method: "POST", scope: "review" }, token(["read"]));
    expect(r?.message).toBe("this token lacks the `review` scope (it has: read); create one with it");
    expect(r?.detail).toEqual({ scope: "review" });
    expect(neededScope(GET)).toBe("read");
    expect(neededScope(POST)).toBe("request");
  });
});

function catchError(fn: () => void): BreakglassError {
  try {
    fn();
  } catch (e) {
    if (e instanceof BreakglassError) return e;
    throw e;
  }
  throw new Error("expected a refusal");
}
