/**
 * The `ssh` connector: Breakglass is an SSH user CA. A grant signs a fresh key pair into an
 * OpenSSH user certificate valid from (now − clock skew) to exactly the grant's end, with the
 * role's principals, extensions and critical options; sshd on the target trusts the CA
 * (`TrustedUserCAKeys`) and refuses the certificate after `valid_before` by itself. Revoke adds the
 * certificate's serial and key id to a KRL that sshd reads (`RevokedKeys`), so it dies at once.
 *
 * The key pair is made per grant by the broker, so the holder needs nothing enrolled; the private
 * key is part of the credential (sealed at rest, shown only to the holder) and worthless after the
 * window. The KRL stops new logins only; live sessions end through the operator's
 * `kill_sessions` command (sshd has no per-certificate session list), see docs/connectors/ssh.md.
 *
 * Credential text (one block, for `breakglass credential`):
 *   # comment lines (grant, user, validity, how to use it)
 *   -----BEGIN OPENSSH PRIVATE KEY----- … -----END OPENSSH PRIVATE KEY-----
 *   ssh-ed25519-cert-v01@openssh.com AAAA… <key id>
 */
import { createHash, randomBytes } from "node:crypto";
import { open, readFile, rename, rm } from "node:fs/promises";
import { isAbsolute, join } from "node:path";
import sshpk from "sshpk";
import { z } from "zod";
import { Duration, DurationOrZero } from "../contract/config-schema.js";
import { parseDuration } from "../core/duration.js";
import { BreakglassError } from "../core/errors.js";
import type { RoleDef } from "../core/model.js";
import type {
  Connector,
  ConnectorGrantFacts,
  ConnectorResult,
  VerifyResult,
  WatchedSession,
} from "../core/ports/connector.js";
import { Redacted } from "../core/redacted.js";
import { secretRefSchema } from "../secrets/secret-ref.js";
import { type ConnectorContext, parseRoleGrants } from "./connector-context.js";
import { runCommand } from "./exec-connector.js";
import {
  isRevoked,
  type Krl,
  KrlFormatError,
  parseRevokedKeys,
  RevokedKeysFormatError,
  serializeKrl,
  withRevoked,
} from "./ssh-krl.js";

const duration = (fallback: string, what: string) => Duration.default(fallback).describe(what);

export const sshSettingsSchema = z
  .object({
    ca_private_key: secretRefSchema.describe(
      "The user CA's private key (OpenSSH or PEM; ed25519, ECDSA or RSA). Its public half goes into sshd's TrustedUserCAKeys",
    ),
    krl_file: z
      .string()
      .min(1)
      .describe(
        "KRL the broker writes (relative to the config file); sshd's RevokedKeys must read it (directly, or a copy distributed to the hosts)",
      ),
    clock_skew: DurationOrZero.default("30s").describe(
      "How far a certificate's valid_after is backdated for hosts whose clocks run behind; valid_before is never later than the grant's end (0s: not at all)",
    ),
    timeout: duration("10s", "Longest one grant, revoke or verify may take"),
    auth_log: z
      .string()
      .min(1)
      .optional()
      .describe(
        "sshd's log (relative to the config file) to watch for logins: every accepted login as a principal in watch_principals that is not a certificate of an active grant raises target.unauthorized_login",
      ),
    watch_principals: z
      .array(z.string().min(1))
      .default([])
      .describe("Accounts whose every login must come from a grant's certificate (e.g. root, recovery)"),
    kill_sessions: z
      .array(z.string().min(1))
      .min(1)
      .optional()
      .describe(
        "Command (argv, no shell) run at every revoke after the KRL is written, to end the grant's live sessions on the hosts (e.g. through your fleet tool). Gets BREAKGLASS_GRANT_ID, BREAKGLASS_USER, BREAKGLASS_KEY_ID, BREAKGLASS_SERIAL and BREAKGLASS_PRINCIPALS (comma-separated); a non-zero exit fails the revoke, which is retried",
      ),
  })
  .strict();

export type SshSettings = z.infer<typeof sshSettingsSchema>;

const EXTENSIONS = [
  "permit-pty",
  "permit-port-forwarding",
  "permit-agent-forwarding",
  "permit-X11-forwarding",
  "permit-user-rc",
] as const;

export const sshRoleGrantsSchema = z
  .object({
    principals: z
      .array(z.string().regex(/^[a-z_][a-z0-9_.-]*$/i, { message: "a unix account name" }))
      .min(1)
      .describe("Accounts the certificate may log in as"),
    extensions: z.array(z.enum(EXTENSIONS)).default(["permit-pty"]).describe("Certificate extensions"),
    force_command: z.string().min(1).optional().describe("Critical option: the only command the certificate may run"),
    source_address: z
      .array(z.string().regex(/^[0-9a-f.:]+(\/\d{1,3})?$/i, { message: "an address or CIDR" }))
      .min(1)
      .optional()
      .describe("Critical option: addresses the certificate may be used from"),
  })
  .strict();

export type SshRoleGrants = z.infer<typeof sshRoleGrantsSchema>;

/** The parts of a credential text, for clients and tests. */
export function parseSshCredential(text: string): { privateKey: string; certificate: string } {
  const key = /-----BEGIN OPENSSH PRIVATE KEY-----[\s\S]+?-----END OPENSSH PRIVATE KEY-----\n?/.exec(text)?.[0];
  const cert = text.split("\n").find((l) => /^[a-z0-9-]+-cert-v01@openssh\.com /.test(l));
  if (!key || !cert) throw new Error("not a Breakglass SSH credential");
  return { privateKey: key, certificate: `${cert}\n` };
}

/** A deterministic uint64 serial per grant (never 0). */
export function serialFor(grantId: string): bigint {
  const s = createHash("sha256").update(grantId).digest().readBigUInt64BE(0);
  return s === 0n ? 1n : s;
}

const sshString = (value: string): Buffer => {
  const b = Buffer.from(value, "utf8");
  const len = Buffer.alloc(4);
  len.writeUInt32BE(b.length);
  return Buffer.concat([len, b]);
};

export function createSshConnector(
  settings: SshSettings,
  ctx: ConnectorContext & { readonly targetName: string },
): Connector {
  const timeoutMs = parseDuration(settings.timeout) * 1000;
  const skewMs = parseDuration(settings.clock_skew) * 1000;
  const where = `targets.${ctx.targetName}.settings`;
  let ca: sshpk.PrivateKey;
  try {
    ca = sshpk.parsePrivateKey(ctx.resolveSecret(settings.ca_private_key, `${where}.ca_private_key`).reveal(), "auto");
  } catch (e) {
    if (e instanceof BreakglassError) throw e;
    throw new BreakglassError(
      "ERR_CONFIG_INVALID",
      `${where}.ca_private_key: not a private key sshpk can read (${(e as Error).message})`,
    );
  }
  const caBlob = ca.toPublic().toBuffer("rfc4253");
  const caFingerprint = ca.toPublic().fingerprint("sha256").toString();
  const krlPath = isAbsolute(settings.krl_file) ? settings.krl_file : join(ctx.baseDir, settings.krl_file);

  const fail = (step: string, e: unknown): never => {
    if (e instanceof BreakglassError) throw e;
    throw new BreakglassError(
      "ERR_CONNECTOR_FAILED",
      `ssh target ${ctx.targetName}: ${step} failed: ${(e as Error).message}`,
    );
  };

  const grantsOf = (role: RoleDef): SshRoleGrants =>
    parseRoleGrants(sshRoleGrantsSchema, role, "an ssh", "{principals: [recovery]}");

  const handleOf = (h: Readonly<Record<string, unknown>>): { keyId: string; serial: bigint } => {
    if (typeof h.principal !== "string" || typeof h.serial !== "string" || !/^\d+$/.test(h.serial)) {
      throw new BreakglassError("ERR_CONNECTOR_FAILED", `not an ssh handle: ${JSON.stringify(h)}`);
    }
    return { keyId: h.principal, serial: BigInt(h.serial) };
  };

  /**
   * The revocations as sshd reads them now: the KRL, or a plain key list (an empty file is the
   * natural way to provision `RevokedKeys`: nothing revoked); null when the file does not exist.
   * Never overwrites what it cannot read.
   */
  const readKrl = async (): Promise<Krl | null> => {
    let buf: Buffer;
    try {
      buf = await readFile(krlPath);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return null;
      throw e;
    }
    try {
      return parseRevokedKeys(buf);
    } catch (e) {
      if (e instanceof KrlFormatError) {
        throw new BreakglassError(
          "ERR_CONNECTOR_FAILED",
          `ssh target ${ctx.targetName}: ${krlPath} is not a KRL Breakglass can read (${e.message}); it was left untouched — fix or remove it`,
        );
      }
      if (e instanceof RevokedKeysFormatError) {
        throw new BreakglassError(
          "ERR_CONNECTOR_FAILED",
          `ssh target ${ctx.targetName}: ${krlPath} is neither an OpenSSH KRL nor a list of public keys (${e.message}): sshd refuses every login while RevokedKeys names it; it was left untouched — empty it, or fix or remove it`,
        );
      }
      throw e;
    }
  };

  const writeKrl = async (krl: Krl): Promise<void> => {
    // Atomic and durable: sshd reads the old file or the new one, never half of one.
    const tmp = `${krlPath}.${randomBytes(6).toString("hex")}.tmp`;
    const fh = await open(tmp, "wx", 0o644);
    try {
      await fh.writeFile(serializeKrl(krl));
      await fh.sync();
    } finally {
      await fh.close();
    }
    try {
      await rename(tmp, krlPath);
    } catch (e) {
      await rm(tmp, { force: true });
      throw e;
    }
  };

  // Revocations run concurrently; the KRL is read-modify-written one at a time.
  let krlLock: Promise<unknown> = Promise.resolve();
  const exclusive = <T>(fn: () => Promise<T>): Promise<T> => {
    const run = krlLock.then(fn, fn);
    krlLock = run.catch(() => {});
    return run;
  };

  // Use detection: the auth log is read from where the last pass stopped.
  const authLog = settings.auth_log
    ? isAbsolute(settings.auth_log)
      ? settings.auth_log
      : join(ctx.baseDir, settings.auth_log)
    : null;
  // Starts at the end of the log the first time: history is not replayed as new alarms (logins
  // while the broker was down are not reported — documented).
  let logOffset: number | null = null;
  const watched = new Set(settings.watch_principals);
  const ACCEPTED = /Accepted (\S+) for (\S+) from (\S+) port \d+ ssh2(?:: \S+ \S+ ID (\S+) \(serial (\d+)\))?/;
  const watchSessions = async (): Promise<WatchedSession[]> => {
    if (!authLog) return [];
    let buf: Buffer;
    try {
      buf = await readFile(authLog);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return [];
      throw e;
    }
    if (logOffset === null) {
      logOffset = buf.length;
      return [];
    }
    if (buf.length < logOffset) logOffset = 0; // rotated
    const start = logOffset;
    const text = buf.subarray(start).toString("utf8");
    const complete = text.lastIndexOf("\n") + 1; // only whole lines
    logOffset = start + Buffer.byteLength(text.slice(0, complete));
    const out: WatchedSession[] = [];
    let pos = start;
    for (const line of text.slice(0, complete).split("\n")) {
      const m = ACCEPTED.exec(line);
      if (m && watched.has(m[2] ?? "")) {
        const keyId = m[4] ?? null;
        const ours = keyId?.startsWith("breakglass:") ? (keyId.split(":")[1] ?? null) : null;
        out.push({
          principal: m[2] ?? "",
          sessionId: `${authLog}@${pos}`,
          grantId: ours,
          startedAt: null,
          from: m[3] ?? null,
        });
      }
      pos += Buffer.byteLength(line) + 1;
    }
    return out;
  };

  const plan = (facts: ConnectorGrantFacts) => ({
    principal: `breakglass:${facts.grantId}:${facts.requester}`,
    serial: serialFor(facts.grantId).toString(),
  });

  return {
    timeoutMs,
    plan,
    watchSessions,

    async grant(facts, handle): Promise<ConnectorResult> {
      try {
        const g = grantsOf(facts.role);
        const { keyId, serial } = handleOf(handle);
        // sshd fails closed on a missing RevokedKeys file: make sure there is one before issuing.
        // A grant revoked here once stays revoked (the KRL names its serial and key id): refuse
        // to hand out a certificate that could not log in.
        await exclusive(async () => {
          const krl = await readKrl();
          if (krl && isRevoked(krl, caBlob, serial, keyId)) {
            throw new BreakglassError(
              "ERR_CONNECTOR_FAILED",
              `ssh target ${ctx.targetName}: grant ${facts.grantId} was already revoked here (its certificate serial is in the KRL); request a new grant`,
            );
          }
          if (krl === null) {
            await writeKrl({
              version: 1n,
              generatedAt: BigInt(Math.floor(ctx.clock.now() / 1000)),
              comment: "Breakglass: revoked break-glass certificates",
              certificates: [],
              otherSections: [],
            });
          }
        });
        const key = sshpk.generatePrivateKey("ed25519");
        const validFrom = new Date(Math.floor((ctx.clock.now() - skewMs) / 1000) * 1000);
        const validUntil = new Date(Math.floor(facts.endsAt / 1000) * 1000);
        const serialBuf = Buffer.alloc(8);
        serialBuf.writeBigUInt64BE(serial);
        const cert = sshpk.createCertificate(
          g.principals.map((p) => sshpk.identityForUser(p)),
          key.toPublic(),
          sshpk.identityForUser("breakglass-ca"),
          ca,
          { validFrom, validUntil, serial: serialBuf },
        );
        const exts = [
          ...(g.force_command ? [{ critical: true, name: "force-command", data: sshString(g.force_command) }] : []),
          ...(g.source_address
            ? [{ critical: true, name: "source-address", data: sshString(g.source_address.join(",")) }]
            : []),
          ...[...g.extensions].sort().map((name) => ({ critical: false, name, data: Buffer.alloc(0) })),
        ];
        // Set the OpenSSH fields, then sign again: editing after signing would break the signature.
        const signatures = (cert as unknown as { signatures: { openssh?: Record<string, unknown> } }).signatures;
        signatures.openssh = { keyId, exts };
        cert.signWith(ca);
        const certLine = cert.toString("openssh");
        const until = validUntil.toISOString();
        const credential = [
          `# Breakglass SSH credential: grant ${facts.grantId} for ${facts.requester}, valid until ${until}`,
          `# Save the key (mode 600) as bg-key and the last line as bg-key-cert.pub, then: ssh -i bg-key ${g.principals[0]}@HOST`,
          key.toString("openssh").trimEnd(),
          `${certLine} ${keyId}`,
          "",
        ].join("\n");
        return {
          credential: new Redacted(credential),
          detail: {
            keyId,
            serial: serial.toString(),
            principals: g.principals,
            validAfter: validFrom.toISOString(),
            validBefore: until,
            extensions: g.extensions,
            forceCommand: g.force_command ?? null,
            sourceAddress: g.source_address ?? null,
            caFingerprint,
          },
        };
      } catch (e) {
        return fail("grant", e);
      }
    },

    async revoke(facts, handle): Promise<ConnectorResult> {
      const { keyId, serial } = handleOf(handle);
      try {
        const revoked = await exclusive(async () => {
          const krl = await readKrl();
          if (krl && isRevoked(krl, caBlob, serial, keyId)) {
            return {
              credential: null,
              detail: { keyId, serial: serial.toString(), krl: krlPath, alreadyRevoked: true },
            };
          }
          const next = withRevoked(krl, caBlob, serial, keyId, new Date(ctx.clock.now()));
          await writeKrl(next);
          return {
            credential: null,
            detail: { keyId, serial: serial.toString(), krl: krlPath, krlVersion: next.version.toString() },
          };
        });
        if (!settings.kill_sessions) return revoked;
        // Live sessions: the KRL only stops new logins. Run on every attempt (idempotent by contract).
        const run = await runCommand(settings.kill_sessions, {
          cwd: ctx.baseDir,
          timeoutMs,
          env: {
            PATH: process.env.PATH ?? "/usr/local/bin:/usr/bin:/bin",
            HOME: process.env.HOME ?? "/",
            BREAKGLASS_GRANT_ID: facts.grantId,
            BREAKGLASS_USER: facts.requester,
            BREAKGLASS_KEY_ID: keyId,
            BREAKGLASS_SERIAL: serial.toString(),
            BREAKGLASS_PRINCIPALS: grantsOf(facts.role).principals.join(","),
          },
        });
        if (run.exitCode !== 0) {
          throw new BreakglassError(
            "ERR_CONNECTOR_FAILED",
            `ssh target ${ctx.targetName}: the certificate is revoked, but kill_sessions ${run.timedOut ? "timed out" : `exited with ${run.exitCode ?? run.signal}`}: ${run.stderr.trim().split("\n").slice(-2).join(" | ")}`,
          );
        }
        return {
          ...revoked,
          detail: { ...revoked.detail, killSessions: { exitCode: 0, stdout: run.stdout, durationMs: run.durationMs } },
        };
      } catch (e) {
        return fail("revoke", e);
      }
    },

    async verify(facts, handle): Promise<VerifyResult> {
      const { keyId, serial } = handleOf(handle);
      const expired = ctx.clock.now() >= facts.endsAt;
      try {
        const krl = await readKrl();
        const inKrl = krl !== null && isRevoked(krl, caBlob, serial, keyId);
        return { revoked: inKrl || expired, detail: { keyId, serial: serial.toString(), inKrl, expired } };
      } catch (e) {
        return fail("verify", e);
      }
    },
  };
}
