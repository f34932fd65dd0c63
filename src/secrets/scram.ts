/**
 * SCRAM-SHA-256 (RFC 5802, RFC 7677) as PostgreSQL speaks it: the key derivation shared by the
 * verifiers the broker stores or hands to PostgreSQL (`CREATE ROLE … PASSWORD`), the gateway's
 * client side towards targets, and the server side with which the gateway authenticates clients
 * against a stored verifier (only `StoredKey` and `ServerKey`, like pg_authid — the password is
 * never sent in the clear nor stored). Channel binding (SCRAM-SHA-256-PLUS) is not offered.
 */
import { createHash, createHmac, pbkdf2Sync, randomBytes, timingSafeEqual } from "node:crypto";

const ITERATIONS = 4096;

export interface ScramVerifier {
  readonly iterations: number;
  readonly salt: Buffer;
  readonly storedKey: Buffer;
  readonly serverKey: Buffer;
}

export const hmac = (key: Buffer, text: string) => createHmac("sha256", key).update(text, "utf8").digest();
const sha256 = (b: Buffer) => createHash("sha256").update(b).digest();

/**
 * SaltedPassword and the keys derived from it. NFKC stands in for SASLprep (generated passwords
 * are ASCII, which both leave as they are).
 */
export function scramKeys(
  password: string,
  salt: Buffer,
  iterations: number,
): { clientKey: Buffer; storedKey: Buffer; serverKey: Buffer } {
  const salted = pbkdf2Sync(Buffer.from(password.normalize("NFKC"), "utf8"), salt, iterations, 32, "sha256");
  const clientKey = hmac(salted, "Client Key");
  return { clientKey, storedKey: sha256(clientKey), serverKey: hmac(salted, "Server Key") };
}

/** The verifier of `password`. */
export function scramVerifier(
  password: string,
  salt: Buffer = randomBytes(16),
  iterations = ITERATIONS,
): ScramVerifier {
  const { storedKey, serverKey } = scramKeys(password, salt, iterations);
  return { iterations, salt, storedKey, serverKey };
}

/** PostgreSQL's text form: `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`. */
export function formatVerifier(v: ScramVerifier): string {
  return `SCRAM-SHA-256$${v.iterations}:${v.salt.toString("base64")}$${v.storedKey.toString("base64")}:${v.serverKey.toString("base64")}`;
}

export function parseVerifier(text: string): ScramVerifier | null {
  const m = /^SCRAM-SHA-256\$(\d+):([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+):([A-Za-z0-9+/=]+)$/.exec(text);
  if (!m) return null;
  return {
    iterations: Number(m[1]),
    salt: Buffer.from(m[2] ?? "", "base64"),
    storedKey: Buffer.from(m[3] ?? "", "base64"),
    serverKey: Buffer.from(m[4] ?? "", "base64"),
  };
}

/** Attribute map of a SCRAM message: `r=…,s=…` → {r, s}. */
function attributes(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of text.split(",")) {
    const eq = part.indexOf("=");
    if (eq === 1) out.set(part.charAt(0), part.slice(2));
  }
  return out;
}

/**
 * One server-side exchange. `first` takes the client-first-message and returns the
 * server-first-message; `final` takes the client-final-message and returns the server-final-message
 * when the proof is right, or null when it is not. A verifier of null (unknown user) runs the same
 * steps with a made-up verifier, so the answer takes the same path and never says "no such user".
 */
export class ScramServer {
  #verifier: ScramVerifier;
  #known: boolean;
  #clientFirstBare = "";
  #serverFirst = "";
  #nonce = "";

  constructor(verifier: ScramVerifier | null) {
    this.#known = verifier !== null;
    this.#verifier = verifier ?? scramVerifier(randomBytes(16).toString("hex"), randomBytes(16), ITERATIONS);
  }

  /** @returns the server-first-message, or a string starting with "error:" for a malformed message */
  first(clientFirst: string): string {
    // gs2 header: "n,," (no channel binding) or "y,," (client supports it, we do not offer it).
    const m = /^([ny]),(?:a=[^,]*)?,(.*)$/.exec(clientFirst);
    if (!m) return "error: channel binding is not supported; use SCRAM-SHA-256";
    this.#clientFirstBare = m[2] ?? "";
    const clientNonce = attributes(this.#clientFirstBare).get("r");
    if (!clientNonce || /[^\x21-\x2b\x2d-\x7e]/.test(clientNonce)) return "error: malformed client-first-message";
    this.#nonce = clientNonce + randomBytes(18).toString("base64");
    const v = this.#verifier;
    this.#serverFirst = `r=${this.#nonce},s=${v.salt.toString("base64")},i=${v.iterations}`;
    return this.#serverFirst;
  }

  final(clientFinal: string): string | null {
    const proofAt = clientFinal.lastIndexOf(",p=");
    if (proofAt < 0 || this.#serverFirst === "") return null;
    const withoutProof = clientFinal.slice(0, proofAt);
    const attrs = attributes(withoutProof);
    if (attrs.get("r") !== this.#nonce) return null;
    const proof = Buffer.from(clientFinal.slice(proofAt + 3), "base64");
    const authMessage = `${this.#clientFirstBare},${this.#serverFirst},${withoutProof}`;
    const signature = hmac(this.#verifier.storedKey, authMessage);
    if (proof.length !== signature.length) return null;
    const clientKey = Buffer.alloc(proof.length);
    for (let i = 0; i < proof.length; i++) clientKey[i] = (proof[i] as number) ^ (signature[i] as number);
    const ok = timingSafeEqual(sha256(clientKey), this.#verifier.storedKey) && this.#known;
    if (!ok) return null;
    return `v=${hmac(this.#verifier.serverKey, authMessage).toString("base64")}`;
  }
}
