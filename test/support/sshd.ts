/**
 * A real OpenSSH server on loopback for tests (see TESTING.md): its own host key, a free port,
 * trusting a test CA (`TrustedUserCAKeys`) and reading a KRL (`RevokedKeys`), certificate logins
 * only. The login account `bgrecovery` is created if missing (tests run as root in CI).
 * Missing binaries fail loudly: `apt-get install openssh-server` (.ci/install-packages.sh).
 */
import { execFileSync, spawn } from "node:child_process";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "./free-port.js";

export const SSH_USER = "bgrecovery";
const SSHD = "/usr/sbin/sshd";

export interface Sshd {
  readonly port: number;
  readonly dir: string;
  /** Kill sshd and remove its folder. Idempotent. */
  stop(): Promise<void>;
  log(): Promise<string>;
}

/** The login account the certificates name, unlocked for key/certificate logins only. */
export function ensureSshUser(): void {
  try {
    execFileSync("id", ["-u", SSH_USER], { stdio: "ignore" });
  } catch {
    execFileSync("useradd", ["-m", "-s", "/bin/sh", SSH_USER], { stdio: "ignore" });
  }
  // A locked account ("!") is refused by sshd even with a valid certificate; "*" allows keys only.
  execFileSync("usermod", ["-p", "*", SSH_USER], { stdio: "ignore" });
}

/** Start sshd trusting `caPublicKey` and reading the KRL at `krlFile` (which must exist). */
export async function startSshd(caPublicKey: string, krlFile: string): Promise<Sshd> {
  if (!existsSync(SSHD)) {
    throw new Error(`${SSHD} not found: install openssh-server (bash .ci/install-packages.sh)`);
  }
  ensureSshUser();
  mkdirSync("/run/sshd", { recursive: true, mode: 0o755 });
  const dir = await mkdtemp(join(tmpdir(), "bg-sshd-"));
  execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", join(dir, "host_key")]);
  await writeFile(join(dir, "ca.pub"), caPublicKey);
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const config = join(dir, "sshd_config");
    writeFileSync(
      config,
      [
        `Port ${port}`,
        "ListenAddress 127.0.0.1",
        `HostKey ${join(dir, "host_key")}`,
        `PidFile ${join(dir, "sshd.pid")}`,
        `TrustedUserCAKeys ${join(dir, "ca.pub")}`,
        `RevokedKeys ${krlFile}`,
        "AuthorizedKeysFile none",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "PubkeyAuthentication yes",
        "UsePAM no",
        "StrictModes no",
        "PermitRootLogin no",
        "LogLevel VERBOSE",
        "",
      ].join("\n"),
    );
    const child = spawn(SSHD, ["-D", "-f", config, "-E", join(dir, "sshd.log")], { stdio: "ignore" });
    const ready = await waitForPort(port, child, 5000);
    if (ready) {
      let stopped = false;
      return {
        port,
        dir,
        log: () => readFile(join(dir, "sshd.log"), "utf8").catch(() => ""),
        async stop() {
          if (stopped) return;
          stopped = true;
          child.kill("SIGTERM");
          await new Promise((r) => setTimeout(r, 50));
          await rm(dir, { recursive: true, force: true });
        },
      };
    }
    child.kill("SIGKILL");
    if (attempt >= 3) {
      const log = await readFile(join(dir, "sshd.log"), "utf8").catch(() => "");
      await rm(dir, { recursive: true, force: true });
      throw new Error(`sshd did not start:\n${log}`);
    }
  }
}

async function waitForPort(port: number, child: ReturnType<typeof spawn>, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) return false;
    const open = await new Promise<boolean>((resolve) => {
      const s = createServer();
      s.once("error", () => resolve(true)); // in use: sshd has it
      s.listen(port, "127.0.0.1", () => s.close(() => resolve(false)));
    });
    if (open) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return false;
}

export interface SshResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Log in with the real `ssh` client using a private key and its certificate, run `command`.
 * BatchMode (never prompts), no host key checks (the host key is throwaway).
 */
export async function sshRun(
  port: number,
  user: string,
  privateKey: string,
  certificate: string,
  command = "id -un",
): Promise<SshResult> {
  const dir = await mkdtemp(join(tmpdir(), "bg-ssh-client-"));
  try {
    const key = join(dir, "id");
    await writeFile(key, privateKey, { mode: 0o600 });
    await writeFile(`${key}-cert.pub`, certificate, { mode: 0o644 });
    return await new Promise<SshResult>((resolve) => {
      const child = spawn(
        "ssh",
        [
          "-F",
          "/dev/null",
          "-o",
          "BatchMode=yes",
          "-o",
          "StrictHostKeyChecking=no",
          "-o",
          "UserKnownHostsFile=/dev/null",
          "-o",
          "IdentitiesOnly=yes",
          "-o",
          "ConnectTimeout=5",
          "-o",
          "LogLevel=ERROR",
          "-i",
          key,
          "-o",
          `CertificateFile=${key}-cert.pub`,
          "-p",
          String(port),
          `${user}@127.0.0.1`,
          command,
        ],
        { stdio: ["ignore", "pipe", "pipe"] },
      );
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (c: Buffer) => {
        stdout += c.toString();
      });
      child.stderr.on("data", (c: Buffer) => {
        stderr += c.toString();
      });
      child.on("close", (code) => resolve({ code, stdout, stderr }));
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
