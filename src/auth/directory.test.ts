import { describe, expect, it } from "vitest";
import type { Policy } from "../core/model.js";
import { createDirectory } from "./directory.js";

const base: Policy = {
  users: new Map([["alice", { name: "alice", displayName: "Alice", email: null, managerGroup: null }]]),
  groups: new Map([
    ["oncall", new Set(["alice"])],
    ["leads", new Set<string>()],
  ]),
  domains: new Map(),
  roles: new Map(),
  targets: new Map(),
  adminGroups: [],
};
const DAY = 86_400_000;
const identity = (user: string, groups: string[], refreshedAt: number) => ({
  user,
  issuer: "https://idp",
  subject: `sub-${user}`,
  groups,
  email: null,
  name: null,
  refreshedAt,
});

describe("the directory (configured + IdP-derived membership)", () => {
  it("adds IdP users and their mapped groups on top of the configuration, in place", () => {
    const d = createDirectory(base, 7 * DAY);
    const { policy } = d;
    d.apply(identity("gina", ["leads"], 0), 0);
    expect(policy.users.has("gina")).toBe(true);
    expect([...(policy.groups.get("leads") ?? [])]).toEqual(["gina"]);
    // Configured memberships are never taken away by the IdP.
    d.apply(identity("alice", [], 0), 0);
    expect(policy.groups.get("oncall")?.has("alice")).toBe(true);
    // An unknown group name from a stored row is ignored, not created.
    d.apply(identity("hank", ["nonexistent"], 0), 0);
    expect(policy.groups.has("nonexistent")).toBe(false);
  });

  it("drops IdP memberships older than the bound, keeps the person", () => {
    const d = createDirectory(base, 7 * DAY);
    d.load([identity("gina", ["leads"], 0)], 7 * DAY);
    expect(d.policy.groups.get("leads")?.has("gina")).toBe(true);
    d.load([identity("gina", ["leads"], 0)], 7 * DAY + 1);
    expect(d.policy.groups.get("leads")?.has("gina")).toBe(false);
    expect(d.policy.users.has("gina")).toBe(true);
    // The base configuration itself is untouched.
    expect(base.groups.get("leads")?.size).toBe(0);
    expect(base.users.has("gina")).toBe(false);
  });
});
