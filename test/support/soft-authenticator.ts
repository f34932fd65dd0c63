/**
 * A software WebAuthn authenticator for tests: a P-256 key per credential, `none` attestation,
 * authenticator data and signatures built as the WebAuthn spec says (§6.1, §6.5, §7.2), so the
 * broker's real verification (@simplewebauthn/server) checks real signatures. Answers are the
 * JSON a browser's navigator.credentials returns (base64url fields).
 */
import { createHash, generateKeyPairSync, type KeyObject, randomBytes, sign } from "node:crypto";

const b64url = (b: Buffer) => b.toString("base64url");
const sha256 = (b: Buffer | string) => createHash("sha256").update(b).digest();

/** Minimal CBOR (RFC 8949): unsigned/negative ints, byte and text strings, maps. */
function cbor(value: unknown): Buffer {
  const head = (major: number, n: number): Buffer => {
    if (n < 24) return Buffer.from([(major << 5) | n]);
    if (n < 256) return Buffer.from([(major << 5) | 24, n]);
    const b = Buffer.alloc(3);
    b[0] = (major << 5) | 25;
    b.writeUInt16BE(n, 1);
    return b;
  };
  if (typeof value === "number") return value >= 0 ? head(0, value) : head(1, -1 - value);
  if (Buffer.isBuffer(value)) return Buffer.concat([head(2, value.length), value]);
  if (typeof value === "string") {
    const t = Buffer.from(value, "utf8");
    return Buffer.concat([head(3, t.length), t]);
  }
  if (value instanceof Map) {
    const parts: Buffer[] = [head(5, value.size)];
    for (const [k, v] of value) parts.push(cbor(k), cbor(v));
    return Buffer.concat(parts);
  }
  throw new Error(`cbor: cannot encode ${typeof value}`);
}

interface Credential {
  readonly id: Buffer;
  readonly key: KeyObject;
  readonly x: Buffer;
  readonly y: Buffer;
  counter: number;
}

export class SoftAuthenticator {
  readonly #credentials: Credential[] = [];
  constructor(public origin: string) {}

  #authData(rpId: string, flags: number, counter: number, attested?: Buffer): Buffer {
    const c = Buffer.alloc(4);
    c.writeUInt32BE(counter);
    return Buffer.concat([sha256(rpId), Buffer.from([flags]), c, ...(attested ? [attested] : [])]);
  }

  /** navigator.credentials.create() for PublicKeyCredentialCreationOptionsJSON. */
  create(options: Record<string, unknown>): Record<string, unknown> {
    const rpId = (options.rp as { id: string }).id;
    const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
    const jwk = publicKey.export({ format: "jwk" }) as { x: string; y: string };
    const cred: Credential = {
      id: randomBytes(32),
      key: privateKey,
      x: Buffer.from(jwk.x, "base64url"),
      y: Buffer.from(jwk.y, "base64url"),
      counter: 0,
    };
    this.#credentials.push(cred);
    const cose = cbor(
      new Map<number, unknown>([
        [1, 2], // kty: EC2
        [3, -7], // alg: ES256
        [-1, 1], // crv: P-256
        [-2, cred.x],
        [-3, cred.y],
      ]),
    );
    const idLen = Buffer.alloc(2);
    idLen.writeUInt16BE(cred.id.length);
    const attested = Buffer.concat([Buffer.alloc(16), idLen, cred.id, cose]);
    const authData = this.#authData(rpId, 0x45, 0, attested); // UP | UV | AT
    const clientData = Buffer.from(
      JSON.stringify({
        type: "webauthn.create",
        challenge: options.challenge,
        origin: this.origin,
        crossOrigin: false,
      }),
    );
    const attestationObject = cbor(
      new Map<string, unknown>([
        ["fmt", "none"],
        ["attStmt", new Map()],
        ["authData", authData],
      ]),
    );
    return {
      id: b64url(cred.id),
      rawId: b64url(cred.id),
      type: "public-key",
      response: {
        clientDataJSON: b64url(clientData),
        attestationObject: b64url(attestationObject),
        transports: ["usb"],
      },
      clientExtensionResults: {},
      authenticatorAttachment: "cross-platform",
    };
  }

  /** navigator.credentials.get() for PublicKeyCredentialRequestOptionsJSON. */
  get(options: Record<string, unknown>, rpId: string): Record<string, unknown> {
    const allowed = (options.allowCredentials as { id: string }[] | undefined) ?? [];
    const cred = this.#credentials.find((c) => allowed.some((a) => a.id === b64url(c.id)));
    if (!cred) throw new Error("no credential of this authenticator is allowed");
    cred.counter += 1;
    const authData = this.#authData(rpId, 0x05, cred.counter); // UP | UV
    const clientData = Buffer.from(
      JSON.stringify({ type: "webauthn.get", challenge: options.challenge, origin: this.origin, crossOrigin: false }),
    );
    const signature = sign("sha256", Buffer.concat([authData, sha256(clientData)]), cred.key);
    return {
      id: b64url(cred.id),
      rawId: b64url(cred.id),
      type: "public-key",
      response: {
        clientDataJSON: b64url(clientData),
        authenticatorData: b64url(authData),
        signature: b64url(signature),
      },
      clientExtensionResults: {},
      authenticatorAttachment: "cross-platform",
    };
  }
}
