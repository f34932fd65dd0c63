/** Our KRLs, checked by OpenSSH's own reader: `ssh-keygen -Q -f KRL CERT`. */
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sshpk from "sshpk";
import { afterAll, describe, expect, it } from "vitest";
import { isRevoked, KrlFormatError, parseKrl, serializeKrl, withRevoked } from "./ssh-krl.js";

const dir = mkdtempSync(join(tmpdir(), "bg-krl-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const ca = sshpk.generatePrivateKey("ed25519");
const caBlob = ca.toPublic().toBuffer("rfc4253");

function certificate(serial: bigint, keyId: string, signer = ca): string {
  const key = sshpk.generatePrivateKey("ed25519");
  const s = Buffer.alloc(8);
  s.writeBigUInt64BE(serial);
  const cert = sshpk.createCertificate(
    [sshpk.identityForUser("root")],
    key.toPublic(),
    sshpk.identityForUser("ca"),
    signer,
    {
      validFrom: new Date(Date.now() - 60_000),
      validUntil: new Date(Date.now() + 3_600_000),
      serial: s,
    },
  );
  (cert as unknown as { signatures: { openssh: Record<string, unknown> } }).signatures.openssh = { keyId, exts: [] };
  cert.signWith(signer);
  const file = join(dir, `${keyId}-${serial}-cert.pub`);
  writeFileSync(file, `${cert.toString("openssh")}\n`);
  return file;
}

/** What OpenSSH says about `cert` under `krl`. */
function openssh(krl: Buffer, cert: string): "revoked" | "ok" {
  const file = join(dir, "test.krl");
  writeFileSync(file, krl);
  const r = spawnSync("ssh-keygen", ["-Q", "-f", file, cert], { encoding: "utf8" });
  if (r.status !== 0 && !/REVOKED/.test(r.stdout)) throw new Error(`ssh-keygen -Q failed: ${r.stdout}${r.stderr}`);
  return /REVOKED/.test(r.stdout) ? "revoked" : "ok";
}

describe("KRL", () => {
  it("revokes exactly the certificates whose serial or key id it lists, as OpenSSH reads it", () => {
    let krl = withRevoked(null, caBlob, 1_000_000_000_123n, "breakglass:g_a:alice", new Date());
    krl = withRevoked(krl, caBlob, 42n, "breakglass:g_b:bob", new Date());
    const bytes = serializeKrl(krl);
    expect(openssh(bytes, certificate(42n, "other"))).toBe("revoked"); // by serial
    expect(openssh(bytes, certificate(7n, "breakglass:g_a:alice"))).toBe("revoked"); // by key id
    expect(openssh(bytes, certificate(43n, "breakglass:g_c:carol"))).toBe("ok");
    // Another CA's certificate with a listed serial is not revoked: entries are per CA.
    expect(openssh(bytes, certificate(42n, "x", sshpk.generatePrivateKey("ed25519")))).toBe("ok");
  });

  it("round-trips through its own parser and through ssh-keygen's KRL writer", () => {
    const krl = withRevoked(withRevoked(null, caBlob, 5n, "k5", new Date(0)), caBlob, 3n, "k3", new Date(0));
    const parsed = parseKrl(serializeKrl(krl));
    expect(parsed.version).toBe(2n);
    expect(isRevoked(parsed, caBlob, 3n, "nope")).toBe(true);
    expect(isRevoked(parsed, caBlob, 4n, "k5")).toBe(true);
    expect(isRevoked(parsed, caBlob, 4n, "k4")).toBe(false);
    // A KRL made by ssh-keygen itself (empty) parses, and we can add to it.
    const empty = join(dir, "empty.krl");
    execFileSync("ssh-keygen", ["-q", "-k", "-f", empty]);
    const theirs = parseKrl(readFileSync(empty));
    const ours = serializeKrl(withRevoked(theirs, caBlob, 9n, "k9", new Date()));
    expect(openssh(ours, certificate(9n, "z"))).toBe("revoked");
  });

  it("rejects what is not a KRL, naming why", () => {
    expect(() => parseKrl(Buffer.from("hello"))).toThrow(KrlFormatError);
    const truncated = serializeKrl(withRevoked(null, caBlob, 1n, "k", new Date())).subarray(0, 40);
    expect(() => parseKrl(truncated)).toThrow(/truncated/);
  });
});
