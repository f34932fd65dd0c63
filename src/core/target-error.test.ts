// biome-ignore-all lint/style/noRestrictedImports: tests import vitest; the purity rule guards shipped core code
import { describe, expect, it } from "vitest";
import { sanitizeTargetError } from "./target-error.js";

describe("sanitizeTargetError", () => {
  it("keeps what explains the failure and redacts the secrets error texts carry", () => {
    expect(
      sanitizeTargetError(
        'postgres target pg: grant failed: role "recovery_rw" does not exist (SQLSTATE 42704) via postgres://admin:s3cr3t@db:5432/app',
      ),
    ).toBe(
      'postgres target pg: grant failed: role "recovery_rw" does not exist (SQLSTATE 42704) via postgres://admin:[redacted]@db:5432/app',
    );
    expect(sanitizeTargetError("grant command exited with 3: login failed password=hunter2 user=bob")).toBe(
      "grant command exited with 3: login failed password=[redacted] user=bob",
    );
    expect(sanitizeTargetError("CREATE ROLE x PASSWORD 'p4ss' failed; DB_PASSWORD: abc; token=t0k")).toBe(
      "CREATE ROLE x PASSWORD [redacted] failed; DB_PASSWORD: [redacted]; token=[redacted]",
    );
    expect(sanitizeTargetError("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30.abc")).toBe(
      "Authorization: Bearer [redacted]",
    );
    expect(sanitizeTargetError("aws: wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY rejected")).toBe(
      "aws: [redacted] rejected",
    );
    expect(
      sanitizeTargetError("key -----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn\n-----END OPENSSH PRIVATE KEY----- bad"),
    ).toBe("key [redacted private key] bad");
    // Not secrets: a failed password login's message, a hex digest.
    expect(sanitizeTargetError('password authentication failed for user "bg_x"')).toBe(
      'password authentication failed for user "bg_x"',
    );
    expect(sanitizeTargetError("commit 0123456789abcdef0123456789abcdef01234567")).toContain("0123456789abcdef");
  });

  it("removes control characters and cuts long texts", () => {
    expect(sanitizeTargetError("line one\nline\u001b[31m two\r\n")).toBe("line one line [31m two");
    expect(sanitizeTargetError("x".repeat(2000))).toHaveLength(600);
  });
});
