/**
 * The ssh connector against a real sshd: certificate logins work in the window, fail after the
 * certificate's end (no broker involved) and after revocation through the KRL; overlapping grants
 * are independent; extension reissues; critical options are enforced by sshd; a corrupt KRL is
 * never overwritten. `RevokedKeys` files are read as sshd reads them (issue 19, item 10): the real
 * sshd is asked about each kind of file first, and Breakglass must agree.
 */

import { spawnSync } from "node:child_process";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import sshpk from "sshpk";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { systemClock } from "../src/adapters/system-clock.js";
import { createSshConnector, parseSshCredential, sshSettingsSchema } from "../src/connectors/ssh-connector.js";
import type { Connector, ConnectorGrantFacts } from "../src/core/ports/connector.js";
import { createSecretResolver } from "../src/secrets/secret-ref.js";
import { contractRole } from "./support/connector-case.js";
import { type SshFixture, sshCanUse, startSshFixture } from "./support/ssh-case.js";
import { SSH_USER, sshRun } from "./support/sshd.js";
import { sleep, until } from "./support/wait.js";

let fx: SshFixture;
let connector: Connector;
beforeAll(async () => {
  fx = await startSshFixture();
});
afterAll(async () => fx?.stop());
beforeEach(() => {
  connector = make({});
});

function make(extra: Record<string, unknown>): Connector {
  const ca = fx.newCa();
  return createSshConnector(
    sshSettingsSchema.parse({ ca_private_key: { env: "CA" }, krl_file: fx.krlFile, ...extra }),
    {
      baseDir: fx.dir,
      clock: systemClock,
      resolveSecret: createSecretResolver({ baseDir: fx.dir, env: { CA: ca }, box: null }),
      log: () => {},
      targetName: "ssh-hosts",
    },
  );
}

const facts = (
  grantId: string,
  endsAt = Date.now() + 30 * 60_000,
  grants: Record<string, unknown> = {},
): ConnectorGrantFacts => ({
  grantId,
  requester: "alice",
  role: contractRole("ssh-hosts", { principals: [SSH_USER], ...grants }),
  target: { name: "ssh-hosts", connector: "ssh", settings: {} },
  incident: "INC-9",
  justification: "fix the broken host",
  endsAt,
});

/** Is a process of `user` running with `command` in its command line? */
const running = (user: string, command: string) =>
  spawnSync("pgrep", ["-u", user, "-f", command], { stdio: "ignore" }).status === 0;

describe("ssh connector", () => {
  it("issues a certificate that logs in, naming grant and user, valid exactly to the grant's end", async () => {
    const f = facts("g_one");
    const granted = await connector.grant(f, connector.plan(f));
    expect(await sshCanUse(fx.sshd.port, granted)).toBe(true);
    expect(granted.detail).toMatchObject({
      keyId: "breakglass:g_one:alice",
      principals: [SSH_USER],
      validBefore: new Date(Math.floor(f.endsAt / 1000) * 1000).toISOString(),
      extensions: ["permit-pty"],
    });
    const { privateKey } = parseSshCredential(granted.credential?.reveal() ?? "");
    expect(JSON.stringify(granted.detail)).not.toContain(privateKey.split("\n")[1]);
    expect(await fx.sshd.log()).toContain("ID breakglass:g_one:alice");
  });

  it("stops working after the certificate's end on its own — sshd needs no broker", async () => {
    const c = make({ clock_skew: "0s" });
    // Time to log in once on a busy machine before the end (whole seconds: validity is in seconds).
    const f = facts("g_short", Date.now() + 8000);
    const granted = await c.grant(f, c.plan(f));
    expect(await sshCanUse(fx.sshd.port, granted)).toBe(true);
    await sleep(Math.max(0, f.endsAt - Date.now()) + 1200);
    expect(await sshCanUse(fx.sshd.port, granted)).toBe(false);
    expect((await c.verify(f, c.plan(f))).detail).toMatchObject({ expired: true, inKrl: false });
  });

  it("revokes through the KRL at once, and another grant of the same role keeps working", async () => {
    const [a, b] = [facts("g_a"), facts("g_b")];
    const ga = await connector.grant(a, connector.plan(a));
    const gb = await connector.grant(b, connector.plan(b));
    const revoked = await connector.revoke(a, connector.plan(a));
    expect(revoked.detail).toMatchObject({ keyId: "breakglass:g_a:alice" });
    expect(await sshCanUse(fx.sshd.port, ga)).toBe(false);
    expect(await fx.sshd.log()).toMatch(/revoked/i);
    expect(await sshCanUse(fx.sshd.port, gb)).toBe(true);
    expect((await connector.verify(a, connector.plan(a))).detail).toMatchObject({ inKrl: true });
    // Revoked grants are not reissued: the certificate could not log in.
    await expect(connector.grant(a, connector.plan(a))).rejects.toThrow(/already revoked here/);
  });

  it("extends by issuing a new certificate with a later end for the same serial", async () => {
    const f = facts("g_ext", Date.now() + 60_000);
    const first = await connector.grant(f, connector.plan(f));
    const later = await connector.grant({ ...f, endsAt: f.endsAt + 3_600_000 }, connector.plan(f));
    expect(Date.parse(String(later.detail.validBefore))).toBe(Date.parse(String(first.detail.validBefore)) + 3_600_000);
    expect(later.detail.serial).toBe(first.detail.serial);
    expect(await sshCanUse(fx.sshd.port, later)).toBe(true);
  });

  it("puts force-command and source-address in the certificate, and sshd enforces them", async () => {
    const f = facts("g_forced", undefined, { force_command: "echo forced-by-breakglass" });
    const granted = await connector.grant(f, connector.plan(f));
    const { privateKey, certificate } = parseSshCredential(granted.credential?.reveal() ?? "");
    const r = await sshRun(fx.sshd.port, SSH_USER, privateKey, certificate, "id -un");
    expect(r.stdout.trim()).toBe("forced-by-breakglass");

    const elsewhere = facts("g_src", undefined, { source_address: ["10.9.9.0/24"] });
    const g2 = await connector.grant(elsewhere, connector.plan(elsewhere));
    expect(await sshCanUse(fx.sshd.port, g2)).toBe(false);
    const here = facts("g_src2", undefined, { source_address: ["127.0.0.1/32"] });
    expect(await sshCanUse(fx.sshd.port, await connector.grant(here, connector.plan(here)))).toBe(true);
  });

  it("ends live sessions through the configured kill_sessions command, and fails the revoke when it fails", async () => {
    // A shell expansion, not a template: the first principal from the environment.
    // biome-ignore lint/suspicious/noTemplateCurlyInString: shell syntax
    const kill = 'pkill -KILL -u "${BREAKGLASS_PRINCIPALS%%,*}" -f "sleep 31.5"';
    const c = make({ kill_sessions: ["sh", "-c", kill] });
    const f = facts("g_live");
    const granted = await c.grant(f, c.plan(f));
    const { privateKey, certificate } = parseSshCredential(granted.credential?.reveal() ?? "");
    const session = sshRun(fx.sshd.port, SSH_USER, privateKey, certificate, "sleep 31.5");
    await until("the session logged in and running", () => running(SSH_USER, "sleep 31.5"));
    const revoked = await c.revoke(f, c.plan(f));
    expect(revoked.detail).toMatchObject({ killSessions: { exitCode: 0 } });
    // Killed (a session left alone would end with 0 after its 31.5 s).
    const ended = await session;
    expect(ended.code).not.toBe(0);
    expect(running(SSH_USER, "sleep 31.5")).toBe(false);

    const failing = make({ kill_sessions: ["sh", "-c", "echo fleet tool unreachable >&2; exit 3"] });
    const g = facts("g_killfail");
    await failing.grant(g, failing.plan(g));
    await expect(failing.revoke(g, failing.plan(g))).rejects.toThrow(
      /the certificate is revoked, but kill_sessions exited with 3: fleet tool unreachable/,
    );
    expect((await failing.verify(g, failing.plan(g))).detail).toMatchObject({ inKrl: true });
  });

  it("never overwrites a KRL it cannot read", async () => {
    const f = facts("g_k");
    await connector.grant(f, connector.plan(f));
    writeFileSync(fx.krlFile, "not a krl");
    await expect(connector.revoke(f, connector.plan(f))).rejects.toMatchObject({
      code: "ERR_CONNECTOR_FAILED",
      message: expect.stringContaining(
        "is neither an OpenSSH KRL nor a list of public keys (line 1 is not a public key)",
      ),
    });
    expect(readFileSync(fx.krlFile, "utf8")).toBe("not a krl");
  });

  it("rejects role grants that are not for ssh, naming the role", async () => {
    const f = { ...facts("g_bad"), role: contractRole("ssh-hosts", { roles: ["x"] }) };
    await expect(connector.grant(f, connector.plan(f))).rejects.toThrow(/grants for an ssh target must be like/);
  });
});

/**
 * A certificate Breakglass did not issue, signed by the connector's CA: what sshd makes of a
 * `RevokedKeys` file is asked with it, before Breakglass touches the file.
 */
function independentLogin(caPrivateKey: string, key = sshpk.generatePrivateKey("ed25519")) {
  const ca = sshpk.parsePrivateKey(caPrivateKey, "openssh");
  const serial = Buffer.alloc(8);
  serial.writeBigUInt64BE(BigInt(Math.floor(Math.random() * 1e9)) + 1n);
  const cert = sshpk.createCertificate(
    [sshpk.identityForUser(SSH_USER)],
    key.toPublic(),
    sshpk.identityForUser("breakglass-ca"),
    ca,
    { validFrom: new Date(Date.now() - 60_000), validUntil: new Date(Date.now() + 3_600_000), serial },
  );
  (cert as unknown as { signatures: { openssh: Record<string, unknown> } }).signatures.openssh = {
    keyId: "independent",
    exts: [],
  };
  cert.signWith(ca);
  return {
    publicKey: key.toPublic().toString("ssh"),
    canLogIn: async () => {
      const r = await sshRun(fx.sshd.port, SSH_USER, key.toString("openssh"), `${cert.toString("openssh")}\n`);
      return r.code === 0 && r.stdout.trim() === SSH_USER;
    },
  };
}

describe("RevokedKeys files as the real sshd reads them (issue 19, item 10)", () => {
  /** A connector with its own CA, and the file sshd's RevokedKeys names set to `content` (null: absent). */
  function withFile(content: string | Buffer | null) {
    const ca = fx.newCa(); // removes the file
    const c = createSshConnector(sshSettingsSchema.parse({ ca_private_key: { env: "CA" }, krl_file: fx.krlFile }), {
      baseDir: fx.dir,
      clock: systemClock,
      resolveSecret: createSecretResolver({ baseDir: fx.dir, env: { CA: ca }, box: null }),
      log: () => {},
      targetName: "ssh-hosts",
    });
    if (content === null) rmSync(fx.krlFile, { force: true });
    else writeFileSync(fx.krlFile, content);
    return { c, ca };
  }

  /** Grant, log in, revoke, refused; the file is a KRL afterwards, and another grant still logs in. */
  async function grantAndRevoke(c: Connector, id: string): Promise<void> {
    const f = facts(id);
    const granted = await c.grant(f, c.plan(f));
    expect(await sshCanUse(fx.sshd.port, granted)).toBe(true);
    await c.revoke(f, c.plan(f));
    expect(await sshCanUse(fx.sshd.port, granted)).toBe(false);
    expect(readFileSync(fx.krlFile).subarray(0, 8).toString("latin1")).toBe("SSHKRL\n\0");
    expect((await c.verify(f, c.plan(f))).detail).toMatchObject({ inKrl: true });
    const other = facts(`${id}_other`);
    expect(await sshCanUse(fx.sshd.port, await c.grant(other, c.plan(other)))).toBe(true);
  }

  for (const [what, content] of [
    ["an empty file", ""],
    ["a file of blank lines and spaces", "\n  \n\t\n\n"],
    ["a file of comments", "# revoked keys: none yet\n\n   # really none\n"],
  ] as const) {
    it(`${what}: sshd reads it as nothing revoked; so does Breakglass, and its first revocation writes a KRL sshd enforces`, async () => {
      const { c, ca } = withFile(content);
      expect(await independentLogin(ca).canLogIn()).toBe(true); // sshd's own reading
      await grantAndRevoke(c, `g_${what.length}`);
    });
  }

  it("a list of public keys: sshd revokes those keys; Breakglass keeps them revoked when it writes its KRL", async () => {
    const revokedKey = sshpk.generatePrivateKey("ed25519");
    const { c, ca } = withFile(`# revoked by hand\n${revokedKey.toPublic().toString("ssh")} old laptop\n`);
    const listed = independentLogin(ca, revokedKey);
    const unlisted = independentLogin(ca);
    expect(await listed.canLogIn()).toBe(false); // sshd's own reading: that key is revoked
    expect(await unlisted.canLogIn()).toBe(true);
    await grantAndRevoke(c, "g_keylist");
    expect(await listed.canLogIn()).toBe(false); // still revoked through Breakglass's KRL
    expect(await unlisted.canLogIn()).toBe(true);
  });

  it("a missing file: sshd refuses every login (fails closed); Breakglass writes an empty KRL before issuing", async () => {
    const { c, ca } = withFile(null);
    const independent = independentLogin(ca);
    expect(await independent.canLogIn()).toBe(false);
    await grantAndRevoke(c, "g_missing");
    expect(await independent.canLogIn()).toBe(true);
  });

  it("a file that is neither a KRL nor a key list: sshd refuses every login; Breakglass refuses it and leaves it as it is", async () => {
    for (const junk of ["not a krl\n", Buffer.from([0x53, 0x53, 0x48, 0x4b, 0x52, 0x4c, 0x0a, 0x01, 0xff])]) {
      const { c, ca } = withFile(junk);
      expect(await independentLogin(ca).canLogIn()).toBe(false);
      const f = facts("g_junk");
      await expect(c.grant(f, c.plan(f))).rejects.toMatchObject({
        code: "ERR_CONNECTOR_FAILED",
        message: expect.stringMatching(/is neither an OpenSSH KRL nor a list of public keys/),
      });
      expect(readFileSync(fx.krlFile)).toEqual(Buffer.from(junk));
    }
  });
});
