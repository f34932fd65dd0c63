import { createHash, generateKeyPairSync } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { Checkpoint } from "../core/records.js";
import {
  generateSigningKey,
  loadPublicKeys,
  loadSigningKey,
  publicKeyFromPem,
  signingKeyFromPem,
} from "./signing-key.js";

/** RFC 8032 §7.1, TEST 1: secret key, public key, and the signature of the empty message. */
const RFC8032 = {
  secret: "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
  public: "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
  signature:
    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
};

function pem(label: string, derHex: string): string {
  const body = Buffer.from(derHex, "hex").toString("base64");
  return `-----BEGIN ${label}-----\n${body}\n-----END ${label}-----\n`;
}
// RFC 8410 wrappings of a raw Ed25519 key.
const RFC_PRIVATE_PEM = pem("PRIVATE KEY", `302e020100300506032b657004220420${RFC8032.secret}`);
const RFC_PUBLIC_PEM = pem("PUBLIC KEY", `302a300506032b6570032100${RFC8032.public}`);
const RFC_KEY_ID = createHash("sha256").update(Buffer.from(RFC8032.public, "hex")).digest("hex").slice(0, 16);

function cp(keyId: string, signature: string): Checkpoint {
  return { seq: 1, hash: "0".repeat(64), at: 0, keyId, signature };
}

let dir = "";
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "bg-key-"));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe("signing keys", () => {
  it("signs exactly as RFC 8032 test 1 and names the key by the SHA-256 of its raw public key", () => {
    const key = signingKeyFromPem(RFC_PRIVATE_PEM);
    expect(key.keyId).toBe(RFC_KEY_ID);
    expect(key.keyId).toMatch(/^[0-9a-f]{16}$/);
    expect(Buffer.from(key.sign(""), "base64").toString("hex")).toBe(RFC8032.signature);
    expect(key.publicKeyPem.replace(/\s/g, "")).toBe(RFC_PUBLIC_PEM.replace(/\s/g, ""));
  });

  it("verifies the RFC 8032 signature with the public key alone, and nothing else", () => {
    const pub = publicKeyFromPem(RFC_PUBLIC_PEM);
    const signature = Buffer.from(RFC8032.signature, "hex").toString("base64");
    expect(pub.keyId).toBe(RFC_KEY_ID);
    expect(pub.verify("", signature)).toBe(true);
    expect(pub.verify("x", signature)).toBe(false);
    expect(pub.verify("", "not base64 at all")).toBe(false);
  });

  it("generates a key only the owner can read, in a new folder, with its public half beside it", () => {
    const file = join(dir, "keys", "nested", "audit-signing.pem");
    const key = generateSigningKey(file);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(readFileSync(`${file}.pub`, "utf8")).toBe(key.publicKeyPem);
    expect(loadSigningKey(file, { generateIfMissing: false }).keyId).toBe(key.keyId);
    expect(publicKeyFromPem(readFileSync(`${file}.pub`, "utf8")).keyId).toBe(key.keyId);
  });

  it("never overwrites an existing key", () => {
    const file = join(dir, "audit-signing.pem");
    const key = generateSigningKey(file);
    expect(() => generateSigningKey(file)).toThrow(
      expect.objectContaining({ code: "ERR_CONFIG_INVALID", message: expect.stringContaining("already exists") }),
    );
    expect(loadSigningKey(file, { generateIfMissing: true }).keyId).toBe(key.keyId);
  });

  it("refuses a missing key unless generation is allowed, saying how to create it", () => {
    const file = join(dir, "missing.pem");
    expect(() => loadSigningKey(file, { generateIfMissing: false })).toThrow(
      expect.objectContaining({
        code: "ERR_CONFIG_INVALID",
        message: expect.stringContaining(`breakglass audit keygen --out ${file}`),
        detail: { file },
      }),
    );
    const made = loadSigningKey(file, { generateIfMissing: true });
    expect(loadSigningKey(file, { generateIfMissing: false }).keyId).toBe(made.keyId);
  });

  it("refuses a key that is not Ed25519, or not a key", () => {
    const rsa = join(dir, "rsa.pem");
    const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
    writeFileSync(rsa, privateKey.export({ format: "pem", type: "pkcs8" }));
    expect(() => loadSigningKey(rsa, { generateIfMissing: false })).toThrow(
      expect.objectContaining({ code: "ERR_CONFIG_INVALID", message: expect.stringContaining("Ed25519") }),
    );
    const junk = join(dir, "junk.pem");
    writeFileSync(junk, "hello");
    expect(() => loadSigningKey(junk, { generateIfMissing: false })).toThrow(
      expect.objectContaining({ code: "ERR_CONFIG_INVALID" }),
    );
    expect(() => loadPublicKeys(["hello"])).toThrow(expect.objectContaining({ code: "ERR_CONFIG_INVALID" }));
  });

  it("verifies checkpoints against a keyring, answering null for a key it does not hold", () => {
    const current = generateSigningKey(join(dir, "current.pem"));
    const retired = generateSigningKey(join(dir, "retired.pem"));
    const stranger = generateSigningKey(join(dir, "stranger.pem"));
    const keys = loadPublicKeys([`${current.publicKeyPem}\n${retired.publicKeyPem}`]);
    expect(keys.keys.map((k) => k.keyId)).toEqual([current.keyId, retired.keyId]);
    expect(keys.verifySignature("m", cp(current.keyId, current.sign("m")))).toBe(true);
    expect(keys.verifySignature("m", cp(retired.keyId, retired.sign("m")))).toBe(true);
    expect(keys.verifySignature("m", cp(current.keyId, retired.sign("m")))).toBe(false);
    expect(keys.verifySignature("changed", cp(current.keyId, current.sign("m")))).toBe(false);
    expect(keys.verifySignature("m", cp(stranger.keyId, stranger.sign("m")))).toBeNull();
  });

  it("keeps the private key out of JSON and inspection", () => {
    const key = generateSigningKey(join(dir, "k.pem"));
    expect(JSON.stringify(key)).not.toContain("PRIVATE");
    expect(Object.keys(key).sort()).toEqual(["keyId", "publicKeyPem", "sign"]);
  });
});
