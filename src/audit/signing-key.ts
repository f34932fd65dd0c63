/**
 * The Ed25519 key that signs audit checkpoints, and the public keys that verify them.
 *
 * The private key is a PEM PKCS#8 file provisioned by the operator (`breakglass audit keygen
 * --out FILE`); the public key sits beside it as `FILE.pub` and is what auditors keep. A key is
 * named by its key id: the first 16 hex characters of SHA-256 over the raw 32-byte public key,
 * so the id is the same whichever PEM/SPKI wrapping carries the key.
 *
 * @see https://www.rfc-editor.org/rfc/rfc8032 (Ed25519)
 * @see https://www.rfc-editor.org/rfc/rfc8410 (Ed25519 keys in PKCS#8 / SPKI)
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject, sign, verify } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { sha256 } from "../adapters/node-crypto.js";
import { BreakglassError } from "../core/errors.js";
import type { Checkpoint } from "../core/records.js";

/** Signs checkpoints. The private key never leaves this object (it is not a property). */
export interface SigningKey {
  readonly keyId: string;
  /** SPKI PEM of the public half, for `<file>.pub` and for verifiers. */
  readonly publicKeyPem: string;
  /** Base64 Ed25519 signature over the UTF-8 bytes of `message`. */
  sign(message: string): string;
}

export interface PublicKey {
  readonly keyId: string;
  readonly publicKeyPem: string;
  /** @returns false for a wrong or malformed signature (never throws). */
  verify(message: string, signatureBase64: string): boolean;
}

/** The public keys an auditor trusts. */
export interface PublicKeySet {
  readonly keys: readonly PublicKey[];
  /**
   * The checkpoint verifier {@link import("../core/audit-chain.js").ChainVerifier.finish} takes:
   * true/false for a known key, null when `cp.keyId` is none of these keys.
   */
  verifySignature(message: string, cp: Checkpoint): boolean | null;
}

export interface LoadSigningKeyOptions {
  /** Create the key (and `<file>.pub`) when the file does not exist. Demo setups only. */
  readonly generateIfMissing: boolean;
}

/**
 * Load the checkpoint signing key from a PEM PKCS#8 file. Synchronous: it runs once at startup.
 * @throws ERR_CONFIG_INVALID when the file is missing (and generation is not allowed), unreadable,
 *   or not an Ed25519 private key.
 */
export function loadSigningKey(file: string, options: LoadSigningKeyOptions): SigningKey {
  let pem: string;
  try {
    pem = readFileSync(file, "utf8");
  } catch (e) {
    if (errorCode(e) !== "ENOENT") {
      throw configError(`cannot read the audit signing key ${file}: ${errorMessage(e)}`, file, e);
    }
    if (!options.generateIfMissing) {
      throw configError(
        `the audit signing key ${file} does not exist; create it with \`breakglass audit keygen --out ${file}\` ` +
          "(or set audit.generate_key_if_missing for a demo)",
        file,
        e,
      );
    }
    try {
      return generateSigningKey(file);
    } catch (g) {
      // Another replica created it between our read and our exclusive create: use theirs.
      if (g instanceof BreakglassError && g.detail.exists === true) return loadSigningKey(file, options);
      throw g;
    }
  }
  return signingKeyFromPem(pem, file);
}

/**
 * Create a new Ed25519 key at `file` (mode 0600, parent folders created with mode 0700) and its
 * public half at `file.pub`. Never overwrites an existing key.
 * @throws ERR_CONFIG_INVALID when `file` already exists or cannot be written.
 */
export function generateSigningKey(file: string): SigningKey {
  const { privateKey } = generateKeyPairSync("ed25519");
  const pem = privateKey.export({ format: "pem", type: "pkcs8" }).toString();
  const key = signingKeyFromPem(pem, file);
  try {
    mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
    // "wx": fail rather than replace a key whose checkpoints are already in the log.
    writeFileSync(file, pem, { mode: 0o600, flag: "wx" });
  } catch (e) {
    if (errorCode(e) === "EEXIST") {
      throw new BreakglassError(
        "ERR_CONFIG_INVALID",
        `${file} already exists; refusing to overwrite an audit signing key`,
        { file, exists: true },
      );
    }
    throw configError(`cannot write the audit signing key ${file}: ${errorMessage(e)}`, file, e);
  }
  try {
    writeFileSync(`${file}.pub`, key.publicKeyPem, { mode: 0o644 });
  } catch (e) {
    throw configError(`wrote ${file} but not its public key ${file}.pub: ${errorMessage(e)}`, file, e);
  }
  return key;
}

/**
 * A signing key from PEM text (PKCS#8 Ed25519).
 * @throws ERR_CONFIG_INVALID when the text is not an Ed25519 private key.
 */
export function signingKeyFromPem(pem: string, source = "signing key"): SigningKey {
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey({ key: pem, format: "pem" });
  } catch (e) {
    throw configError(`${source} is not a PEM private key: ${errorMessage(e)}`, source, e);
  }
  if (privateKey.asymmetricKeyType !== "ed25519") {
    throw configError(
      `${source} is a ${privateKey.asymmetricKeyType ?? "unknown"} key; audit checkpoints need an Ed25519 key`,
      source,
    );
  }
  const publicKey = createPublicKey(privateKey);
  const publicKeyPem = publicKey.export({ format: "pem", type: "spki" }).toString();
  return Object.freeze({
    keyId: keyIdOf(publicKey),
    publicKeyPem,
    sign: (message: string) => sign(null, Buffer.from(message, "utf8"), privateKey).toString("base64"),
  });
}

/**
 * A verifying key from PEM text: an SPKI public key (what `<file>.pub` holds); a private key is
 * accepted too and reduced to its public half.
 * @throws ERR_CONFIG_INVALID when the text is not an Ed25519 key.
 */
export function publicKeyFromPem(pem: string, source = "public key"): PublicKey {
  let publicKey: KeyObject;
  try {
    publicKey = createPublicKey({ key: pem, format: "pem" });
  } catch (e) {
    throw configError(`${source} is not a PEM public key: ${errorMessage(e)}`, source, e);
  }
  if (publicKey.asymmetricKeyType !== "ed25519") {
    throw configError(
      `${source} is a ${publicKey.asymmetricKeyType ?? "unknown"} key; audit checkpoints use Ed25519`,
      source,
    );
  }
  return Object.freeze({
    keyId: keyIdOf(publicKey),
    publicKeyPem: publicKey.export({ format: "pem", type: "spki" }).toString(),
    verify: (message: string, signatureBase64: string) => {
      try {
        return verify(null, Buffer.from(message, "utf8"), publicKey, Buffer.from(signatureBase64, "base64"));
      } catch {
        return false;
      }
    },
  });
}

/**
 * The keys in some PEM texts (each text may hold several PEM blocks, e.g. a keyring of the
 * current and retired signing keys).
 * @throws ERR_CONFIG_INVALID when a block is not an Ed25519 key or no key is found.
 */
export function loadPublicKeys(pemTexts: readonly string[]): PublicKeySet {
  const keys: PublicKey[] = [];
  for (const [i, text] of pemTexts.entries()) {
    const blocks = text.match(/-----BEGIN ([A-Z ]+)-----[\s\S]*?-----END \1-----/g) ?? [];
    if (blocks.length === 0) throw configError(`public key text #${i + 1} holds no PEM block`, `#${i + 1}`);
    for (const block of blocks) keys.push(publicKeyFromPem(block, `public key text #${i + 1}`));
  }
  const byId = new Map(keys.map((k) => [k.keyId, k]));
  return Object.freeze({
    keys,
    verifySignature: (message: string, cp: Checkpoint) => {
      const key = byId.get(cp.keyId);
      return key ? key.verify(message, cp.signature) : null;
    },
  });
}

/** First 16 hex characters of SHA-256 over the raw 32-byte Ed25519 public key. */
export function keyIdOf(publicKey: KeyObject): string {
  const { x } = publicKey.export({ format: "jwk" });
  if (typeof x !== "string") throw new BreakglassError("ERR_INTERNAL", "Ed25519 public key without x");
  return sha256(Buffer.from(x, "base64url")).slice(0, 16);
}

function configError(message: string, file: string, cause?: unknown): BreakglassError {
  const error = new BreakglassError("ERR_CONFIG_INVALID", message, { file });
  if (cause !== undefined) error.cause = cause;
  return error;
}

function errorCode(e: unknown): string | undefined {
  return typeof e === "object" && e !== null && "code" in e ? String((e as { code: unknown }).code) : undefined;
}

function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
