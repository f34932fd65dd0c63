// biome-ignore-all lint/style/noRestrictedImports: tests import vitest; the purity rule guards shipped core code
import { describe, expect, it } from "vitest";
import { closest, unknownRoleHint } from "./suggest.js";

const ROLES = ["production/db-admin", "production/db-superuser", "network/firewall-admin", "backup/db-admin"];

describe("closest", () => {
  it("finds a near miss, ignoring case and separators, and nothing for a far one", () => {
    expect(closest("rol", ["role", "reason", "json"])).toBe("role");
    expect(closest("Dry_Run", ["dry-run", "json"])).toBe("dry-run");
    expect(closest("frobnicate", ["role", "json"])).toBeUndefined();
  });
});

describe("unknownRoleHint", () => {
  it("a role name without its domain: every role of that name, as DOMAIN/ROLE", () => {
    expect(unknownRoleHint("db-admin", ROLES)).toBe(
      "roles are named DOMAIN/ROLE: did you mean `backup/db-admin` or `production/db-admin`?",
    );
    expect(unknownRoleHint("firewal-admin", ROLES)).toBe(
      "roles are named DOMAIN/ROLE: did you mean `network/firewall-admin`?",
    );
  });

  it("a name without a domain that matches nothing still says how roles are named, and lists them", () => {
    expect(unknownRoleHint("payroll", ROLES)).toBe(
      "roles are named DOMAIN/ROLE; configured roles: backup/db-admin, network/firewall-admin, production/db-admin, production/db-superuser",
    );
  });

  it("a typo in DOMAIN/ROLE: the closest id, else the list", () => {
    expect(unknownRoleHint("production/db-admn", ROLES)).toBe("did you mean `production/db-admin`?");
    expect(unknownRoleHint("payroll/everything", ["production/db-admin"])).toBe(
      "configured roles: production/db-admin",
    );
    expect(unknownRoleHint("x/y", [])).toBe("no roles are configured");
  });
});
