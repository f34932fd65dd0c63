/** The ssh connector in the contract suite, against one real sshd. */

import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sshpk from "sshpk";
import { systemClock } from "../../src/adapters/system-clock.js";
import { createSshConnector, parseSshCredential, sshSettingsSchema } from "../../src/connectors/ssh-connector.js";
import type { ConnectorResult } from "../../src/core/ports/connector.js";
import { createSecretResolver } from "../../src/secrets/secret-ref.js";
import { type ConnectorCase, contractRole, trackIssued } from "./connector-case.js";
import { SSH_USER, type Sshd, sshRun, startSshd } from "./sshd.js";

export interface SshFixture {
  readonly sshd: Sshd;
  readonly krlFile: string;
  readonly dir: string;
  /** Write a new CA that sshd trusts from now on; returns its private key (OpenSSH). */
  newCa(): string;
  stop(): Promise<void>;
}

export async function startSshFixture(): Promise<SshFixture> {
  const dir = mkdtempSync(join(tmpdir(), "bg-ssh-fixture-"));
  const krlFile = join(dir, "revoked.krl");
  const first = sshpk.generatePrivateKey("ed25519");
  const sshd = await startSshd(first.toPublic().toString("ssh"), krlFile);
  return {
    sshd,
    krlFile,
    dir,
    newCa() {
      const ca = sshpk.generatePrivateKey("ed25519");
      writeFileSync(join(sshd.dir, "ca.pub"), `${ca.toPublic().toString("ssh")}\n`);
      rmSync(krlFile, { force: true });
      return ca.toString("openssh");
    },
    async stop() {
      await sshd.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Log in with what `grant` handed out; true when sshd let us in as the principal. */
export async function sshCanUse(port: number, granted: ConnectorResult): Promise<boolean> {
  const { privateKey, certificate } = parseSshCredential(granted.credential?.reveal() ?? "");
  const r = await sshRun(port, SSH_USER, privateKey, certificate);
  return r.code === 0 && r.stdout.trim() === SSH_USER;
}

let fixture: SshFixture | null = null;

export const sshConnectorCase: ConnectorCase = {
  name: "ssh (certificates against a real sshd)",
  async start() {
    fixture = await startSshFixture();
  },
  async stop() {
    await fixture?.stop();
    fixture = null;
  },
  async setUp() {
    if (!fixture) throw new Error("sshd not started");
    const f = fixture;
    const caKey = f.newCa();
    const connector = createSshConnector(
      sshSettingsSchema.parse({ ca_private_key: { env: "CA" }, krl_file: f.krlFile }),
      {
        baseDir: f.dir,
        clock: systemClock,
        resolveSecret: createSecretResolver({ baseDir: f.dir, env: { CA: caKey }, box: null }),
        log: () => {},
        targetName: "ssh-hosts",
      },
    );
    const tracked = trackIssued(connector, (g) => sshCanUse(f.sshd.port, g));
    return {
      connector: tracked.connector,
      role: contractRole("ssh-hosts", { principals: [SSH_USER] }),
      target: { name: "ssh-hosts", connector: "ssh", settings: {} },
      principals: tracked.principals,
      canUse: (_facts, granted) => sshCanUse(f.sshd.port, granted),
      tearDown: async () => {},
    };
  },
};
