/**
 * Rotation of break-glass credentials (seed 002: "at least monthly").
 *
 * - `rotatePostgresAdmin`: a postgres target's admin password, changed by the broker itself: the
 *   new password is written beside the configured file first, set at the server as a SCRAM
 *   verifier (the plaintext never reaches the server or its logs), proven by a new login, and only
 *   then moved over the old file; if the new login fails, the old password is set back. Recorded
 *   as `credential.rotated` and in the broker's state (its age).
 * - `rotationStatus`: every break-glass credential the configuration has — target admin
 *   credentials, the audit signing key, the data key (when `secrets.key_file` is set) — with its
 *   age against the maximum. Nothing the configuration does not have is listed (or alarmed).
 */
import { randomBytes } from "node:crypto";
import { existsSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { isAbsolute, join } from "node:path";
import pg from "pg";
import type { AuditAppender, AuditTx } from "../audit/audit-journal.js";
import { stamp } from "../audit/audit-journal.js";
import type { AppConfig } from "../config/app-config.js";
import { nonGrantEvent } from "../core/audit-event.js";
import { BreakglassError } from "../core/errors.js";
import type { StateReads, StateWrites } from "../core/ports/broker-state.js";
import type { Clock } from "../core/ports/runtime.js";
import type { Transactions } from "../core/ports/transactions.js";
import type { RequestContext } from "../core/request-context.js";
import type { RotationRow } from "../core/rotation-row.js";
import { formatVerifier, scramVerifier } from "../secrets/scram.js";
import type { SecretBox } from "../secrets/secret-box.js";
import { type SecretRef, sealedFileAad, sealedName } from "../secrets/secret-ref.js";
import { parseEnvelope } from "../vault/envelope.js";
import { parseRecords, realOpenings } from "../vault/opening-record.js";

export const rotationStateKey = (what: string) => `rotation:${what}`;

const quoteIdent = (name: string) => `"${name.replace(/"/g, '""')}"`;

async function tryLogin(url: string): Promise<string | null> {
  const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000 });
  try {
    await c.connect();
    await c.query("SELECT 1");
    return null;
  } catch (e) {
    return (e as Error).message;
  } finally {
    await c.end().catch(() => {});
  }
}

export async function rotatePostgresAdmin(deps: {
  config: AppConfig;
  targetName: string;
  resolveSecret: (ref: SecretRef, where: string) => { reveal(): string };
  box: SecretBox | null;
  /** Records the rotation (named state and its audit event in one transaction). */
  store: Transactions<StateWrites & AuditTx>;
  audit: AuditAppender;
  clock: Clock;
  ctx: RequestContext;
}): Promise<{ user: string; file: string }> {
  const { config, targetName } = deps;
  const target = config.policy.targets.get(targetName);
  if (target?.connector !== "postgres") {
    throw new BreakglassError("ERR_VALIDATION", `target ${targetName} is not a postgres target`);
  }
  const ref = (target.settings as { admin_url?: SecretRef }).admin_url;
  if (!ref || "env" in ref) {
    throw new BreakglassError(
      "ERR_VALIDATION",
      `targets.${targetName}.settings.admin_url comes from the environment, which the broker cannot update: keep it in a file ({file: …}) or sealed ({sealed: …}) to let the broker rotate it`,
    );
  }
  const baseDir = join(config.source, "..");
  const file = "file" in ref ? ref.file : ref.sealed;
  const path = isAbsolute(file) ? file : join(baseDir, file);
  const oldUrl = new URL(deps.resolveSecret(ref, `targets.${targetName}.settings.admin_url`).reveal());
  const user = decodeURIComponent(oldUrl.username);
  const newPassword = randomBytes(24).toString("base64url");
  const newUrl = new URL(oldUrl.href);
  newUrl.password = newPassword;
  if ("sealed" in ref && !deps.box)
    throw new BreakglassError("ERR_VALIDATION", "a sealed admin URL needs the broker's secret key");
  const text =
    "file" in ref
      ? `${newUrl.href}\n`
      : `${(deps.box as SecretBox).seal(newUrl.href, sealedFileAad(sealedName(file)))}\n`;
  // 1. The new credential on disk first, beside the old one: never a password only in memory.
  const pending = `${path}.rotating`;
  writeFileSync(pending, text, { mode: 0o600 });
  const admin = new pg.Client({ connectionString: oldUrl.href, connectionTimeoutMillis: 5000 });
  try {
    await admin.connect();
    // 2. At the server, as a SCRAM verifier: the plaintext never reaches it.
    const verifier = formatVerifier(scramVerifier(newPassword));
    await admin.query(`ALTER ROLE ${quoteIdent(user)} PASSWORD '${verifier}'`);
    // 3. Proven by a new login before the old password is gone for good.
    const failure = await tryLogin(newUrl.href);
    if (failure !== null) {
      const oldVerifier = formatVerifier(scramVerifier(decodeURIComponent(oldUrl.password)));
      await admin.query(`ALTER ROLE ${quoteIdent(user)} PASSWORD '${oldVerifier}'`);
      throw new BreakglassError(
        "ERR_CONNECTOR_FAILED",
        `the new password of ${user} on ${targetName} did not log in (${failure}); the old one was set back`,
      );
    }
  } catch (e) {
    rmSync(pending, { force: true });
    throw e;
  } finally {
    await admin.end().catch(() => {});
  }
  // 4. Only now replace the configured file.
  renameSync(pending, path);
  const now = deps.clock.now();
  await deps.store.transaction(async (tx) => {
    await tx.swapState(rotationStateKey(`target:${targetName}`), new Date(now).toISOString(), now);
    await deps.audit.append(tx, [
      stamp(
        nonGrantEvent(
          "credential.rotated",
          deps.ctx.actor,
          now,
          { credential: "postgres admin password", user, verifiedBy: "new login" },
          targetName,
        ),
        deps.ctx,
      ),
    ]);
  });
  return { user, file: path };
}

export type { RotationRow };

/**
 * Every break-glass credential's age against `maxAgeMs` (default: the configuration's
 * `rotation.max_age`).
 */
export async function rotationStatus(
  config: AppConfig,
  store: Pick<StateReads, "readState">,
  now: number,
  maxAgeMs = config.rotation.maxAgeMs,
): Promise<RotationRow[]> {
  const maxMs = maxAgeMs;
  const baseDir = join(config.source, "..");
  const row = (key: string, credential: string, rotatedAt: number | null, how: string): RotationRow => ({
    key,
    credential,
    rotatedAt,
    ageDays: rotatedAt === null ? null : Math.floor((now - rotatedAt) / 86_400_000),
    dueAt: rotatedAt === null ? null : rotatedAt + maxMs,
    overdue: rotatedAt === null || now - rotatedAt > maxMs,
    how,
  });
  const mtime = (file: string | null) => {
    if (file === null) return null;
    try {
      return statSync(file).mtimeMs;
    } catch {
      return null;
    }
  };
  const rows: RotationRow[] = [];
  for (const t of config.policy.targets.values()) {
    if (t.connector === "ssh") {
      // The CA that signs holders' certificates: its age is its file's.
      const ref = (t.settings as { ca_private_key?: SecretRef }).ca_private_key;
      const file = ref && !("env" in ref) ? ("file" in ref ? ref.file : ref.sealed) : null;
      rows.push(
        row(
          `ssh-ca:${t.name}`,
          `target ${t.name}: SSH CA key`,
          file === null ? null : mtime(isAbsolute(file) ? file : join(baseDir, file)),
          file === null
            ? "keep ca_private_key in a file ({file: …} or {sealed: …}) so its age is known, then rotate it"
            : "ssh-keygen a new CA key; add its public key to TrustedUserCAKeys on every host beside the old one; point ca_private_key at it; remove the old public key once no certificate it signed is valid",
        ),
      );
    }
    if (t.connector !== "postgres") continue;
    const stored = await store.readState(rotationStateKey(`target:${t.name}`));
    rows.push(
      row(
        `target:${t.name}`,
        `target ${t.name}: admin password`,
        stored === null ? null : Date.parse(stored),
        config.rotation.auto.includes(t.name)
          ? `rotated by the broker when due (rotation.auto); now: breakglass rotation rotate-target ${t.name}`
          : `breakglass rotation rotate-target ${t.name} (or list it under rotation.auto)`,
      ),
    );
  }
  for (const file of config.envelopes) {
    let envelope: ReturnType<typeof parseEnvelope>;
    try {
      envelope = parseEnvelope(readFileSync(file, "utf8"));
    } catch (e) {
      const why = e instanceof BreakglassError ? e.message : "the file cannot be read";
      rows.push({
        ...row(`envelope:${file}`, `envelope ${file}`, null, `${why}: restore it, or remove it from vault.envelopes`),
        overdue: true,
      });
      continue;
    }
    const recordsFile = `${file}.openings.jsonl`;
    const openings = existsSync(recordsFile) ? realOpenings(parseRecords(readFileSync(recordsFile, "utf8"))).length : 0;
    const due = Date.parse(envelope.meta.rotationDueAt);
    rows.push({
      ...row(
        `envelope:${envelope.meta.id}`,
        `envelope ${envelope.meta.name}${openings > 0 ? ` (USED: opened ${openings} time(s))` : ""}`,
        Date.parse(envelope.meta.createdAt),
        `rotate the secret at its system, then breakglass vault rotate ${file} --secret-file NEW --out NEW.envelope`,
      ),
      dueAt: due,
      // An opened envelope's secret has been seen: red until it is rotated.
      overdue: openings > 0 || now > due,
    });
  }
  rows.push(
    row(
      "signing-key",
      "audit signing key",
      mtime(config.audit.signingKeyFile),
      "breakglass audit keygen (new key), keep the old public key for verification",
    ),
  );
  // Only credentials the configuration has: a broker without a data key has none to rotate.
  if (config.secrets.keyFile !== null) {
    rows.push(
      row(
        "data-key",
        "data key (secrets.key_file)",
        mtime(config.secrets.keyFile),
        "breakglass secret keygen, then seal the secrets again",
      ),
    );
  }
  return rows;
}
