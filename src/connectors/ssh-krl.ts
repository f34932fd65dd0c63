/**
 * OpenSSH key revocation lists (KRLs), written and read by Breakglass itself: the file sshd's
 * `RevokedKeys` points at. Only what the ssh connector needs: certificates revoked by serial and
 * by key id, under one CA.
 *
 * Format (OpenSSH PROTOCOL.krl): magic "SSHKRL\n\0", uint32 format version 1, uint64 krl_version,
 * uint64 generated_date, uint64 flags, string reserved, string comment, then sections
 * (byte type, string data). Section 1 (certificates): string ca_key, string reserved, then
 * sub-sections (byte type, string data): 0x20 a list of uint64 serials, 0x23 a list of key-id
 * strings. Other sections are kept byte for byte when a KRL is rewritten.
 *
 * sshd's `RevokedKeys` also takes a plain text list of public keys (OpenSSH authfile.c,
 * `sshkey_check_revoked`: a file without the KRL magic is read like an authorized_keys file, blank
 * lines, lines of spaces and tabs and `#` comments skipped) — so an empty file is a valid, empty
 * revocation list, and the natural way to provision one. `parseRevokedKeys` reads both; a key
 * list becomes a KRL whose explicit-key section (type 2) keeps every listed key revoked when
 * Breakglass writes the file back as a KRL.
 *
 * @see https://cvsweb.openbsd.org/src/usr.bin/ssh/PROTOCOL.krl
 */
import sshpk from "sshpk";

const MAGIC = Buffer.from("SSHKRL\n\0", "latin1");
const FORMAT_VERSION = 1;
const SECTION_CERTIFICATES = 1;
const SECTION_EXPLICIT_KEY = 2;
const CERT_SERIAL_LIST = 0x20;
const CERT_KEY_ID = 0x23;

export interface CertificateRevocations {
  /** The CA public key blob (SSH wire format) these revocations are for. */
  readonly caKey: Buffer;
  readonly serials: readonly bigint[];
  readonly keyIds: readonly string[];
}

export interface Krl {
  readonly version: bigint;
  readonly generatedAt: bigint;
  readonly comment: string;
  readonly certificates: readonly CertificateRevocations[];
  /** Sections this module does not interpret, kept as they were. */
  readonly otherSections: readonly { readonly type: number; readonly data: Buffer }[];
}

export class KrlFormatError extends Error {}

/** The file is not a KRL (no magic) and not a key list sshd could read either: sshd refuses every login. */
export class RevokedKeysFormatError extends Error {}

/** Whether the bytes start like a KRL (anything else, sshd reads as a list of public keys). */
export const hasKrlMagic = (buf: Buffer): boolean =>
  buf.length >= MAGIC.length && buf.subarray(0, MAGIC.length).equals(MAGIC);

/**
 * A `RevokedKeys` file as sshd reads it: a KRL, or else a text list of public keys (empty, blank
 * or comments only: nothing revoked). Listed keys come back as an explicit-key section.
 * @throws KrlFormatError for a damaged KRL; RevokedKeysFormatError for a file that is neither
 */
export function parseRevokedKeys(buf: Buffer): Krl {
  if (hasKrlMagic(buf)) return parseKrl(buf);
  const blobs: Buffer[] = [];
  for (const [i, raw] of buf.toString("latin1").split("\n").entries()) {
    // As sshd: leading spaces and tabs skipped, then an empty line or a comment is skipped.
    const line = raw.replace(/^[ \t]+/, "");
    if (line === "" || line.startsWith("#")) continue;
    const where = `line ${i + 1}`;
    if (/^\S+-cert-v01@openssh\.com\s/.test(line)) {
      throw new RevokedKeysFormatError(
        `${where} is a certificate; convert the list to a KRL first (ssh-keygen -k -f KRL LIST)`,
      );
    }
    let key: sshpk.Key;
    try {
      key = sshpk.parseKey(line, "ssh");
    } catch {
      throw new RevokedKeysFormatError(`${where} is not a public key`);
    }
    blobs.push(key.toBuffer("rfc4253"));
  }
  return {
    version: 0n,
    generatedAt: 0n,
    comment: "Breakglass: revoked break-glass certificates",
    certificates: [],
    otherSections: blobs.length === 0 ? [] : [{ type: SECTION_EXPLICIT_KEY, data: Buffer.concat(blobs.map(str)) }],
  };
}

class Reader {
  #pos = 0;
  constructor(readonly buf: Buffer) {}
  get done(): boolean {
    return this.#pos >= this.buf.length;
  }
  #need(n: number): void {
    if (this.#pos + n > this.buf.length) throw new KrlFormatError(`truncated at byte ${this.#pos}`);
  }
  u8(): number {
    this.#need(1);
    return this.buf.readUInt8(this.#pos++);
  }
  u32(): number {
    this.#need(4);
    const v = this.buf.readUInt32BE(this.#pos);
    this.#pos += 4;
    return v;
  }
  u64(): bigint {
    this.#need(8);
    const v = this.buf.readBigUInt64BE(this.#pos);
    this.#pos += 8;
    return v;
  }
  bytes(): Buffer {
    const n = this.u32();
    this.#need(n);
    const v = this.buf.subarray(this.#pos, this.#pos + n);
    this.#pos += n;
    return v;
  }
}

const u8 = (v: number) => Buffer.from([v]);
const u32 = (v: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(v);
  return b;
};
const u64 = (v: bigint) => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(v);
  return b;
};
const str = (v: Buffer | string) => {
  const b = typeof v === "string" ? Buffer.from(v, "utf8") : v;
  return Buffer.concat([u32(b.length), b]);
};

/** @throws KrlFormatError naming where the input stops making sense. */
export function parseKrl(buf: Buffer): Krl {
  if (!hasKrlMagic(buf)) {
    throw new KrlFormatError("not an OpenSSH KRL (bad magic)");
  }
  const r = new Reader(buf.subarray(MAGIC.length));
  const format = r.u32();
  if (format !== FORMAT_VERSION) throw new KrlFormatError(`unsupported KRL format version ${format}`);
  const version = r.u64();
  const generatedAt = r.u64();
  r.u64(); // flags
  r.bytes(); // reserved
  const comment = r.bytes().toString("utf8");
  const certificates: CertificateRevocations[] = [];
  const otherSections: { type: number; data: Buffer }[] = [];
  while (!r.done) {
    const type = r.u8();
    const data = r.bytes();
    if (type !== SECTION_CERTIFICATES) {
      otherSections.push({ type, data: Buffer.from(data) });
      continue;
    }
    const s = new Reader(data);
    const caKey = Buffer.from(s.bytes());
    s.bytes(); // reserved
    const serials: bigint[] = [];
    const keyIds: string[] = [];
    while (!s.done) {
      const sub = s.u8();
      const body = new Reader(s.bytes());
      if (sub === CERT_SERIAL_LIST) {
        while (!body.done) serials.push(body.u64());
      } else if (sub === CERT_KEY_ID) {
        while (!body.done) keyIds.push(body.bytes().toString("utf8"));
      } else {
        throw new KrlFormatError(`certificate sub-section 0x${sub.toString(16)} is not supported by Breakglass`);
      }
    }
    certificates.push({ caKey, serials, keyIds });
  }
  return { version, generatedAt, comment, certificates, otherSections };
}

export function serializeKrl(krl: Krl): Buffer {
  const parts: Buffer[] = [
    MAGIC,
    u32(FORMAT_VERSION),
    u64(krl.version),
    u64(krl.generatedAt),
    u64(0n),
    str(Buffer.alloc(0)),
    str(krl.comment),
  ];
  for (const c of krl.certificates) {
    const subs: Buffer[] = [];
    // OpenSSH expects serials in ascending order without duplicates.
    const serials = [...new Set(c.serials)].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    if (serials.length > 0) subs.push(u8(CERT_SERIAL_LIST), str(Buffer.concat(serials.map(u64))));
    const keyIds = [...new Set(c.keyIds)].sort();
    if (keyIds.length > 0) subs.push(u8(CERT_KEY_ID), str(Buffer.concat(keyIds.map((k) => str(k)))));
    const body = Buffer.concat([str(c.caKey), str(Buffer.alloc(0)), ...subs]);
    parts.push(u8(SECTION_CERTIFICATES), str(body));
  }
  for (const o of krl.otherSections) parts.push(u8(o.type), str(o.data));
  return Buffer.concat(parts);
}

/** A KRL with `serial` and `keyId` revoked under `caKey`, added to `krl` (or to an empty one). */
export function withRevoked(krl: Krl | null, caKey: Buffer, serial: bigint, keyId: string, now: Date): Krl {
  const base: Krl = krl ?? {
    version: 0n,
    generatedAt: 0n,
    comment: "Breakglass: revoked break-glass certificates",
    certificates: [],
    otherSections: [],
  };
  const existing = base.certificates.find((c) => c.caKey.equals(caKey));
  const updated: CertificateRevocations = {
    caKey,
    serials: [...(existing?.serials ?? []), serial],
    keyIds: [...(existing?.keyIds ?? []), keyId],
  };
  return {
    ...base,
    version: base.version + 1n,
    generatedAt: BigInt(Math.floor(now.getTime() / 1000)),
    certificates: [...base.certificates.filter((c) => c !== existing), updated],
  };
}

/** Is the certificate with this serial (or key id) revoked under `caKey`? */
export function isRevoked(krl: Krl, caKey: Buffer, serial: bigint, keyId: string): boolean {
  return krl.certificates.some(
    (c) => c.caKey.equals(caKey) && (c.serials.includes(serial) || c.keyIds.includes(keyId)),
  );
}
