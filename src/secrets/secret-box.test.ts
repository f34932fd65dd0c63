import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { createSecretBox, loadSecretBox } from "./secret-box.js";
import { createSecretResolver, sealedFileAad } from "./secret-ref.js";

const dirs: string[] = [];
const tmp = () => {
  const d = mkdtempSync(join(tmpdir(), "bg-secret-"));
  dirs.push(d);
  return d;
};
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe("secret box", () => {
  const box = createSecretBox(randomBytes(32));

  it("round-trips, never repeats a ciphertext, and hides the plaintext", () => {
    const a = box.seal("postgres://admin:hunter2@db/app", "aad");
    const b = box.seal("postgres://admin:hunter2@db/app", "aad");
    expect(a).not.toBe(b);
    expect(a).toMatch(new RegExp(`^bgbox1\\.${box.keyId}\\.[A-Za-z0-9_-]+$`));
    expect(a).not.toContain("hunter2");
    expect(box.open(a, "aad").reveal()).toBe("postgres://admin:hunter2@db/app");
    expect(String(box.open(a, "aad"))).toBe("[redacted]");
  });

  it("refuses a box for another purpose, under another key, or tampered with", () => {
    const sealed = box.seal("secret", "grant:g_1");
    expect(() => box.open(sealed, "grant:g_2")).toThrow(/tampered with, or sealed for another use/);
    const other = createSecretBox(randomBytes(32));
    expect(() => other.open(sealed, "grant:g_1")).toThrow(`sealed under key ${box.keyId}`);
    const [p, k, data = ""] = sealed.split(".");
    const flipped = `${data.slice(0, 20)}${data[20] === "A" ? "B" : "A"}${data.slice(21)}`;
    expect(() => box.open(`${p}.${k}.${flipped}`, "grant:g_1")).toThrow(/does not open/);
    expect(() => box.open("garbage", "x")).toThrow("not a Breakglass secret box");
  });

  it("loads a key file, creates one with mode 0600 only when allowed, and rejects a bad one", () => {
    const dir = tmp();
    const file = join(dir, "secrets.key");
    expect(() => loadSecretBox(file, { generateIfMissing: false })).toThrow(/breakglass secret keygen/);
    const made = loadSecretBox(file, { generateIfMissing: true });
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(loadSecretBox(file, { generateIfMissing: false }).keyId).toBe(made.keyId);
    writeFileSync(join(dir, "short.key"), randomBytes(16).toString("base64"));
    expect(() => loadSecretBox(join(dir, "short.key"), { generateIfMissing: false })).toThrow(/32-byte/);
  });
});

describe("secret references", () => {
  it("reads env, file and sealed references, and names the config path when one fails", () => {
    const dir = tmp();
    const box = createSecretBox(randomBytes(32));
    writeFileSync(join(dir, "plain"), "from-file\n");
    writeFileSync(join(dir, "admin.sealed"), box.seal("from-sealed", sealedFileAad("admin")));
    const resolve = createSecretResolver({ baseDir: dir, env: { V: "from-env" }, box });
    expect(resolve({ env: "V" }, "x").reveal()).toBe("from-env");
    expect(resolve({ file: "plain" }, "x").reveal()).toBe("from-file");
    expect(resolve({ sealed: "admin.sealed" }, "x").reveal()).toBe("from-sealed");
    expect(() => resolve({ env: "MISSING" }, "targets.pg.settings.admin_url")).toThrow(
      "targets.pg.settings.admin_url: environment variable MISSING is not set or empty",
    );
    // A sealed file renamed (or moved to another use) does not open.
    writeFileSync(join(dir, "other.sealed"), readFileSync(join(dir, "admin.sealed")));
    expect(() => resolve({ sealed: "other.sealed" }, "t")).toThrow(/does not open with the broker's secret key/);
    const noKey = createSecretResolver({ baseDir: dir, env: {}, box: null });
    expect(() => noKey({ sealed: "admin.sealed" }, "t")).toThrow("set `secrets.key_file`");
  });
});
