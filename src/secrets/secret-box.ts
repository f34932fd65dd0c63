/**
 * Encryption at rest for the broker's secrets: target admin credentials (sealed files) and the
 * credentials handed to grant holders (stored in the database until the grant ends).
 *
 * AES-256-GCM under one 32-byte data key read from a key file (mode 0600, provisioned by the
 * operator with `breakglass secret keygen`, kept apart from the database and its backups). Every
 * box is bound to its purpose by additional authenticated data (`aad`), so a ciphertext moved to
 * another row or file does not open. Format: `bgbox1.<keyId>.<base64url(iv ‖ tag ‖ ciphertext)>`.
 *
 * @see https://nvlpubs.nist.gov/nistpubs/Legacy/SP/nistspecialpublication800-38d.pdf (GCM)
 */
import { createCipheriv, createDecipheriv, createHash, createHmac, randomBytes } from "node:crypto";
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { BreakglassError } from "../core/errors.js";
import { Redacted } from "../core/redacted.js";

const PREFIX = "bgbox1";
const KEY_BYTES = 32;
const IV_BYTES = 12;
const TAG_BYTES = 16;

export interface SecretBox {
  /** First 12 hex characters of SHA-256 over the key: names the key without revealing it. */
  readonly keyId: string;
  seal(plaintext: string, aad: string): string;
  /** @throws ERR_INTERNAL when the box is malformed, sealed under another key, or tampered with. */
  open(box: string, aad: string): Redacted<string>;
  /** HMAC-SHA256 of `text` for `purpose` under the key (base64url): stable, unguessable without the key. */
  mac(purpose: string, text: string): string;
}

export function createSecretBox(key: Buffer): SecretBox {
  if (key.length !== KEY_BYTES) {
    throw new BreakglassError("ERR_CONFIG_INVALID", `a secret key is ${KEY_BYTES} bytes, this one is ${key.length}`);
  }
  const keyId = createHash("sha256").update(key).digest("hex").slice(0, 12);
  return {
    keyId,
    mac(purpose, text) {
      return createHmac("sha256", key).update(`${purpose}\0${text}`).digest("base64url");
    },
    seal(plaintext, aad) {
      const iv = randomBytes(IV_BYTES);
      const cipher = createCipheriv("aes-256-gcm", key, iv);
      cipher.setAAD(Buffer.from(aad, "utf8"));
      const body = Buffer.concat([cipher.update(plaintext, "utf8"), cipher.final()]);
      const sealed = Buffer.concat([iv, cipher.getAuthTag(), body]).toString("base64url");
      return `${PREFIX}.${keyId}.${sealed}`;
    },
    open(box, aad) {
      const [prefix, boxKeyId, data, extra] = box.trim().split(".");
      if (prefix !== PREFIX || !boxKeyId || !data || extra !== undefined) {
        throw new BreakglassError("ERR_INTERNAL", "not a Breakglass secret box");
      }
      if (boxKeyId !== keyId) {
        throw new BreakglassError(
          "ERR_INTERNAL",
          `sealed under key ${boxKeyId}, but the broker's secret key is ${keyId}`,
        );
      }
      const raw = Buffer.from(data, "base64url");
      if (raw.length < IV_BYTES + TAG_BYTES) throw new BreakglassError("ERR_INTERNAL", "secret box is truncated");
      try {
        const decipher = createDecipheriv("aes-256-gcm", key, raw.subarray(0, IV_BYTES));
        decipher.setAAD(Buffer.from(aad, "utf8"));
        decipher.setAuthTag(raw.subarray(IV_BYTES, IV_BYTES + TAG_BYTES));
        const plain = Buffer.concat([decipher.update(raw.subarray(IV_BYTES + TAG_BYTES)), decipher.final()]);
        return new Redacted(plain.toString("utf8"));
      } catch {
        throw new BreakglassError("ERR_INTERNAL", "secret box does not open: tampered with, or sealed for another use");
      }
    },
  };
}

/** A new random key, as the key file holds it (base64, one line). */
export function generateSecretKeyText(): string {
  return `${randomBytes(KEY_BYTES).toString("base64")}\n`;
}

/**
 * Read the key file (base64 of 32 bytes). With `generateIfMissing` (demo setups) a missing file is
 * created with mode 0600.
 * @throws ERR_CONFIG_INVALID when the file is missing, unreadable or not a 32-byte key.
 */
export function loadSecretBox(file: string, opts: { generateIfMissing: boolean }): SecretBox {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== "ENOENT") {
      throw new BreakglassError("ERR_CONFIG_INVALID", `cannot read secret key file ${file}: ${String(code)}`);
    }
    if (!opts.generateIfMissing) {
      throw new BreakglassError(
        "ERR_CONFIG_INVALID",
        `secret key file ${file} does not exist; create it with \`breakglass secret keygen --out ${file}\``,
      );
    }
    text = generateSecretKeyText();
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, text, { mode: 0o600, flag: "wx" });
    chmodSync(file, 0o600);
  }
  const key = Buffer.from(text.trim(), "base64");
  if (key.length !== KEY_BYTES) {
    throw new BreakglassError(
      "ERR_CONFIG_INVALID",
      `secret key file ${file} does not hold a ${KEY_BYTES}-byte base64 key; create one with \`breakglass secret keygen\``,
    );
  }
  return createSecretBox(key);
}
