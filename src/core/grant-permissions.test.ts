// biome-ignore-all lint/style/noRestrictedImports: tests import vitest; the purity rule guards shipped core code
import { describe, expect, it } from "vitest";
import { deepFreeze, grantAt, MINUTE, makePolicy } from "../../test/support/core-fixtures.js";
import { releaseGrant } from "./grant-machine.js";
import { grantPermissions } from "./grant-permissions.js";

const policy = makePolicy();
const allowed = (p: Record<string, boolean>) =>
  Object.entries(p)
    .filter(([, v]) => v)
    .map(([k]) => k)
    .sort();

describe("grantPermissions", () => {
  it("lets the holder of an active grant release, extend and read its credential, but not revoke it", () => {
    const { grant, now } = grantAt("active");
    expect(allowed(grantPermissions(policy, grant, "alice", now))).toEqual([
      "credential",
      "extend",
      "recording",
      "release",
    ]);
  });

  it("lets an approver of the role revoke and acknowledge, but not release or extend", () => {
    const { grant, now } = grantAt("active");
    expect(allowed(grantPermissions(policy, grant, "carol", now))).toEqual(["ack", "recording", "revoke"]);
  });

  it("offers approve to an eligible approver, cancel to the requester, nothing to someone unrelated", () => {
    const { grant, now } = grantAt("requested");
    expect(allowed(grantPermissions(policy, grant, "bob", now))).toEqual(["approve", "deny", "recording"]);
    expect(allowed(grantPermissions(policy, grant, "alice", now))).toEqual(["cancel", "recording"]);
    // A lapsed request can no longer be approved.
    expect(grantPermissions(policy, grant, "bob", now + 60 * MINUTE).approve).toBe(false);
  });

  it("offers the review of an ended grant only to someone independent of it", () => {
    const { grant: active, now } = grantAt("active");
    const ended = releaseGrant(policy, active, "alice", now + MINUTE).grant;
    expect(grantPermissions(policy, ended, "alice", now).review).toBe(false); // held it
    expect(grantPermissions(policy, ended, "bob", now).review).toBe(false); // approved it
    expect(grantPermissions(policy, ended, "carol", now).review).toBe(true);
  });

  it("changes nothing: the grant is only dry-run", () => {
    const { grant, now } = grantAt("active");
    deepFreeze(grant);
    expect(() => grantPermissions(policy, grant, "erin", now)).not.toThrow();
  });
});
