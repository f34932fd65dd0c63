/**
 * Tier 2, the last resort: a secret sealed in an envelope file that k of n custodians open
 * together, offline — no broker, no IdP, no network.
 *
 * Format (`breakglass-envelope/1`, one JSON file):
 * - `meta`: name, id, threshold, custodians (age X25519 recipients and their fingerprints),
 *   created, rotation due, alarm endpoints, and the public key opening records are signed with;
 * - `cipher`: the secret encrypted with AES-256-GCM under a random 256-bit data key; the
 *   additional authenticated data is the canonical JSON of `meta` plus the SHA-256 of every
 *   share's ciphertext — so an edited threshold, custodian list, alarm endpoint or share makes
 *   the envelope refuse to open;
 * - `shares`: the data key split with Shamir's secret sharing (`shamir-secret-sharing`,
 *   independently audited), each share encrypted to one custodian with age (`age-encryption`).
 *
 * Opening records: after an opening, a record (custodian fingerprints, time, reason, incident) is
 * signed with an Ed25519 key derived from the data key (HKDF) — its public half is in `meta`, so
 * anyone holding the envelope can verify records, and only a threshold of custodians can make one.
 */
import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createPrivateKey,
  createPublicKey,
  hkdfSync,
  randomBytes,
  sign,
  verify,
} from "node:crypto";
import * as age from "age-encryption";
import { combine, split } from "shamir-secret-sharing";
import { canonicalJson } from "../core/canonical-json.js";
import { BreakglassError } from "../core/errors.js";
import { requirePlainText } from "../core/text.js";

export const ENVELOPE_FORMAT = "breakglass-envelope/1";

export interface Custodian {
  readonly name: string;
  /** age X25519 recipient, `age1…`. */
  readonly recipient: string;
  /** First 16 hex of SHA-256 of the recipient: how records and prompts name a custodian. */
  readonly fingerprint: string;
}

export interface AlarmEndpoint {
  readonly type: "webhook" | "smtp";
  /** Webhook URL, or smtp://host:port. */
  readonly url: string;
  /** SMTP: the recipient address. */
  readonly to?: string;
}

export interface EnvelopeMeta {
  readonly name: string;
  readonly id: string;
  readonly threshold: number;
  readonly custodians: readonly Custodian[];
  readonly createdAt: string;
  readonly rotationDueAt: string;
  readonly alarms: readonly AlarmEndpoint[];
  /** Ed25519 public key (SPKI, base64) that opening records are verified with. */
  readonly recordKey: string;
  /**
   * The envelope this one replaces, if any: a rotation (a new secret), or a rekey (the same secret
   * for a changed custodian set, done by `custodians` — a threshold of the old envelope's).
   */
  readonly replaces?: {
    readonly id: string;
    readonly name: string;
    readonly rotatedAt: string;
    readonly kind?: "rekey";
    readonly custodians?: readonly string[];
  };
}

export interface Envelope {
  readonly format: typeof ENVELOPE_FORMAT;
  readonly meta: EnvelopeMeta;
  readonly cipher: { readonly alg: "AES-256-GCM"; readonly iv: string; readonly tag: string; readonly data: string };
  readonly shares: readonly { readonly custodian: string; readonly age: string }[];
}

export const fingerprintOf = (recipient: string): string =>
  createHash("sha256").update(recipient.trim()).digest("hex").slice(0, 16);

const b64 = (b: Uint8Array) => Buffer.from(b).toString("base64");
const unb64 = (s: string) => new Uint8Array(Buffer.from(s, "base64"));

function aad(meta: EnvelopeMeta, shares: Envelope["shares"]): Buffer {
  const shareHashes = shares.map((s) => `${s.custodian}:${createHash("sha256").update(s.age).digest("hex")}`);
  return Buffer.from(canonicalJson({ meta, shares: shareHashes }), "utf8");
}

/** The Ed25519 key pair opening records are signed with, derived from the data key. */
function recordKeyPair(dataKey: Uint8Array) {
  const seed = Buffer.from(hkdfSync("sha256", dataKey, Buffer.alloc(0), "breakglass-envelope/record-signing", 32));
  // PKCS#8 DER of an Ed25519 private key: a fixed prefix, then the 32-byte seed.
  const der = Buffer.concat([Buffer.from("302e020100300506032b657004220420", "hex"), seed]);
  const privateKey = createPrivateKey({ key: der, format: "der", type: "pkcs8" });
  const publicKey = createPublicKey(privateKey);
  seed.fill(0);
  return { privateKey, publicKeySpki: publicKey.export({ format: "der", type: "spki" }).toString("base64") };
}

/** An age X25519 identity for a custodian, and its recipient. */
export async function newCustodianIdentity(): Promise<{ identity: string; recipient: string }> {
  const identity = await age.generateX25519Identity();
  return { identity, recipient: await age.identityToRecipient(identity) };
}

export async function sealEnvelope(input: {
  name: string;
  secret: Uint8Array;
  custodians: readonly { name: string; recipient: string }[];
  threshold: number;
  alarms: readonly AlarmEndpoint[];
  now: number;
  rotationDays: number;
  /** A rotation or rekey: the envelope this one replaces. */
  replaces?: { id: string; name: string; kind?: "rekey"; custodians?: readonly string[] };
  /** Overrides `rotationDays`: a rekey keeps the secret's due date (its age does not change). */
  rotationDueAt?: number;
}): Promise<Envelope> {
  // Names are printed to every custodian and reviewer: no control characters in them.
  requirePlainText("envelope name", input.name, "line");
  for (const c of input.custodians) requirePlainText("custodian name", c.name, "line");
  const n = input.custodians.length;
  if (!Number.isInteger(input.threshold) || input.threshold < 2 || input.threshold > n) {
    throw new BreakglassError(
      "ERR_VALIDATION",
      `threshold ${input.threshold} with ${n} custodian(s): it must be at least 2 (a two-person rule) and at most the number of custodians`,
    );
  }
  const custodians: Custodian[] = input.custodians.map((c) => ({
    name: c.name,
    recipient: c.recipient.trim(),
    fingerprint: fingerprintOf(c.recipient),
  }));
  const seen = new Set<string>();
  for (const c of custodians) {
    if (!c.recipient.startsWith("age1")) {
      throw new BreakglassError(
        "ERR_VALIDATION",
        `custodian ${c.name}: "${c.recipient.slice(0, 12)}…" is not an age recipient (age1…)`,
      );
    }
    if (seen.has(c.fingerprint)) throw new BreakglassError("ERR_VALIDATION", `custodian ${c.name} is listed twice`);
    seen.add(c.fingerprint);
  }
  const dataKey = new Uint8Array(randomBytes(32));
  try {
    const parts = await split(dataKey, n, input.threshold);
    const shares: { custodian: string; age: string }[] = [];
    for (const [i, c] of custodians.entries()) {
      const e = new age.Encrypter();
      e.addRecipient(c.recipient);
      shares.push({ custodian: c.fingerprint, age: b64(await e.encrypt(parts[i] as Uint8Array)) });
      (parts[i] as Uint8Array).fill(0);
    }
    const meta: EnvelopeMeta = {
      name: input.name,
      id: randomBytes(12).toString("hex"),
      threshold: input.threshold,
      custodians,
      createdAt: new Date(input.now).toISOString(),
      rotationDueAt: new Date(input.rotationDueAt ?? input.now + input.rotationDays * 86_400_000).toISOString(),
      alarms: [...input.alarms],
      recordKey: recordKeyPair(dataKey).publicKeySpki,
      ...(input.replaces ? { replaces: { ...input.replaces, rotatedAt: new Date(input.now).toISOString() } } : {}),
    };
    const iv = randomBytes(12);
    const cipher = createCipheriv("aes-256-gcm", dataKey, iv);
    cipher.setAAD(aad(meta, shares));
    const data = Buffer.concat([cipher.update(input.secret), cipher.final()]);
    return {
      format: ENVELOPE_FORMAT,
      meta,
      cipher: { alg: "AES-256-GCM", iv: b64(iv), tag: b64(cipher.getAuthTag()), data: b64(data) },
      shares,
    };
  } finally {
    dataKey.fill(0);
  }
}

/** Parse an envelope file's text; a clear error for anything that is not one. */
export function parseEnvelope(text: string): Envelope {
  let v: Envelope;
  try {
    v = JSON.parse(text) as Envelope;
  } catch {
    throw new BreakglassError("ERR_VALIDATION", "not an envelope: the file is not JSON");
  }
  if (v?.format !== ENVELOPE_FORMAT || !v.meta || !v.cipher || !Array.isArray(v.shares)) {
    throw new BreakglassError("ERR_VALIDATION", `not an envelope: expected format ${ENVELOPE_FORMAT}`);
  }
  return v;
}

/** A custodian's share, decrypted with their age identity. @throws ERR_FORBIDDEN when it is not theirs */
export async function decryptShare(
  envelope: Envelope,
  identity: string,
): Promise<{ custodian: Custodian; share: Uint8Array }> {
  const recipient = await age.identityToRecipient(identity.trim()).catch(() => {
    throw new BreakglassError("ERR_VALIDATION", "that is not an age identity (AGE-SECRET-KEY-1…)");
  });
  const fp = fingerprintOf(recipient);
  const custodian = envelope.meta.custodians.find((c) => c.fingerprint === fp);
  const sealed = envelope.shares.find((s) => s.custodian === fp);
  if (!custodian || !sealed) {
    throw new BreakglassError("ERR_FORBIDDEN", `identity ${fp} is not a custodian of envelope ${envelope.meta.name}`);
  }
  const d = new age.Decrypter();
  d.addIdentity(identity.trim());
  try {
    return { custodian, share: await d.decrypt(unb64(sealed.age)) };
  } catch {
    throw new BreakglassError(
      "ERR_VALIDATION",
      `the share of ${custodian.name} does not decrypt: the envelope was altered`,
    );
  }
}

/**
 * Open with at least `threshold` shares from distinct custodians.
 * @throws ERR_FORBIDDEN (too few, or duplicates), ERR_VALIDATION (altered envelope)
 */
export async function openEnvelope(
  envelope: Envelope,
  shares: readonly { custodian: Custodian; share: Uint8Array }[],
): Promise<{ secret: Buffer; signRecord: (payload: string) => string }> {
  const distinct = new Map<string, Uint8Array>();
  for (const s of shares) {
    if (distinct.has(s.custodian.fingerprint)) {
      throw new BreakglassError("ERR_FORBIDDEN", `two shares from ${s.custodian.name}: each custodian counts once`);
    }
    distinct.set(s.custodian.fingerprint, s.share);
  }
  if (distinct.size < envelope.meta.threshold) {
    throw new BreakglassError(
      "ERR_FORBIDDEN",
      `${distinct.size} share(s) of ${envelope.meta.threshold} needed: envelope ${envelope.meta.name} opens only with ${envelope.meta.threshold} custodians`,
    );
  }
  const dataKey = await combine([...distinct.values()]);
  try {
    const decipher = createDecipheriv("aes-256-gcm", dataKey, unb64(envelope.cipher.iv));
    decipher.setAAD(aad(envelope.meta, envelope.shares));
    decipher.setAuthTag(Buffer.from(envelope.cipher.tag, "base64"));
    let secret: Buffer;
    try {
      secret = Buffer.concat([decipher.update(unb64(envelope.cipher.data)), decipher.final()]);
    } catch {
      throw new BreakglassError(
        "ERR_VALIDATION",
        `envelope ${envelope.meta.name} does not open: its metadata, shares or ciphertext were altered (or the shares belong to another envelope)`,
      );
    }
    const keys = recordKeyPair(dataKey);
    if (keys.publicKeySpki !== envelope.meta.recordKey) {
      throw new BreakglassError("ERR_VALIDATION", `envelope ${envelope.meta.name}: the record key does not match`);
    }
    return {
      secret,
      signRecord: (payload) => sign(null, Buffer.from(payload, "utf8"), keys.privateKey).toString("base64"),
    };
  } finally {
    dataKey.fill(0);
  }
}

/** Verify an opening record's signature with the envelope's record key. */
export function verifyRecordSignature(envelope: Envelope, payload: string, signature: string): boolean {
  const key = createPublicKey({ key: Buffer.from(envelope.meta.recordKey, "base64"), format: "der", type: "spki" });
  return verify(null, Buffer.from(payload, "utf8"), key, Buffer.from(signature, "base64"));
}

/**
 * The same secret for a changed custodian set: opened with a threshold of the current
 * custodians' shares, sealed again for the new set — the secret exists only in this process's
 * memory, never on screen or disk. The new envelope keeps the secret's rotation date and names
 * (authenticated) the envelope it replaces and who rekeyed it.
 */
export async function rekeyEnvelope(
  old: Envelope,
  shares: readonly { custodian: Custodian; share: Uint8Array }[],
  next: { custodians: readonly { name: string; recipient: string }[]; threshold: number; now: number },
): Promise<Envelope> {
  const opened = await openEnvelope(old, shares);
  try {
    return await sealEnvelope({
      name: old.meta.name,
      secret: opened.secret,
      custodians: next.custodians,
      threshold: next.threshold,
      alarms: old.meta.alarms,
      now: next.now,
      rotationDays: 0,
      rotationDueAt: Date.parse(old.meta.rotationDueAt),
      replaces: {
        id: old.meta.id,
        name: old.meta.name,
        kind: "rekey",
        custodians: shares.map((s) => s.custodian.fingerprint),
      },
    });
  } finally {
    opened.secret.fill(0);
  }
}

const IDENTITY_ARMOR = "-----BEGIN AGE ENCRYPTED FILE-----";

/** True when an identity file's text holds a passphrase-protected identity. */
export const isProtectedIdentity = (text: string): boolean => text.includes(IDENTITY_ARMOR);

/**
 * A custodian identity encrypted under a passphrase (age scrypt, ASCII armor — printable on
 * paper). `workFactor` is scrypt's log2 N (age's default 18; lower only in tests).
 */
export async function protectIdentity(identity: string, passphrase: string, workFactor = 18): Promise<string> {
  if (passphrase.length < 12) {
    throw new BreakglassError(
      "ERR_VALIDATION",
      "the passphrase is shorter than 12 characters: use at least 5 random words, or 12 random characters",
    );
  }
  const e = new age.Encrypter();
  e.setPassphrase(passphrase);
  e.setScryptWorkFactor(workFactor);
  return age.armor.encode(await e.encrypt(identity.trim()));
}

/** The identity inside a protected identity file. @throws ERR_FORBIDDEN for a wrong passphrase */
export async function unprotectIdentity(text: string, passphrase: string): Promise<string> {
  const start = text.indexOf(IDENTITY_ARMOR);
  let sealed: Uint8Array;
  try {
    sealed = age.armor.decode(text.slice(start));
  } catch {
    throw new BreakglassError("ERR_VALIDATION", "the protected identity is damaged (its armor does not decode)");
  }
  const d = new age.Decrypter();
  d.addPassphrase(passphrase);
  try {
    return new TextDecoder().decode(await d.decrypt(sealed)).trim();
  } catch {
    throw new BreakglassError("ERR_FORBIDDEN", "wrong passphrase: the identity does not decrypt with it");
  }
}
