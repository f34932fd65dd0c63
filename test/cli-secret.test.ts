/** `breakglass secret keygen` and `secret seal`, run as the built CLI. */
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { loadSecretBox } from "../src/secrets/secret-box.js";
import { createSecretResolver } from "../src/secrets/secret-ref.js";
import { runCli } from "./support/broker-process.js";

const dir = mkdtempSync(join(tmpdir(), "bg-cli-secret-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("breakglass secret", () => {
  it("creates a key once, seals a secret from the environment, and the broker's resolver opens it", async () => {
    const key = join(dir, "secrets.key");
    const made = await runCli(["secret", "keygen", "--out", key]);
    expect(made.code, made.stderr).toBe(0);
    expect(statSync(key).mode & 0o777).toBe(0o600);
    const again = await runCli(["secret", "keygen", "--out", key]);
    expect(again.code).toBe(2);
    expect(again.stderr).toContain("already exists; it is never overwritten");

    const sealed = await runCli(
      ["secret", "seal", "--key", key, "--out", join(dir, "pg-admin.sealed"), "--from-env", "ADMIN_URL"],
      { ADMIN_URL: "postgres://admin:s3cret@db:5432/app" },
    );
    expect(sealed.code, sealed.stderr).toBe(0);
    expect(sealed.stdout + sealed.stderr).not.toContain("s3cret");
    expect(readFileSync(join(dir, "pg-admin.sealed"), "utf8")).not.toContain("s3cret");
    const resolve = createSecretResolver({
      baseDir: dir,
      env: {},
      box: loadSecretBox(key, { generateIfMissing: false }),
    });
    expect(resolve({ sealed: "pg-admin.sealed" }, "t").reveal()).toBe("postgres://admin:s3cret@db:5432/app");
  });

  it("refuses an empty secret and a missing key", async () => {
    const empty = await runCli([
      "secret",
      "seal",
      "--key",
      join(dir, "secrets.key"),
      "--out",
      join(dir, "e.sealed"),
      "--from-env",
      "NOPE",
    ]);
    expect(empty.code).toBe(2);
    expect(empty.stderr).toContain("the secret is empty");
    const noKey = await runCli([
      "secret",
      "seal",
      "--key",
      join(dir, "missing.key"),
      "--out",
      join(dir, "x.sealed"),
      "--from-env",
      "HOME",
    ]);
    expect(noKey.code).toBe(3);
    expect(noKey.stderr).toContain("breakglass secret keygen");
  });
});
