/**
 * Commands that work on files and the database directly, with no broker running: configuration
 * checks, API tokens, and the audit log (verify, export, signing keys). Offline on purpose: the
 * audit must be verifiable when the broker is down or not trusted.
 *
 * Heavy modules (the broker, the store, the config loader) are imported inside `run`, so the
 * CLI starts fast for the commands that do not need them.
 */

import { once } from "node:events";
import { createReadStream, createWriteStream, existsSync, readFileSync, writeFileSync } from "node:fs";
import { userInfo } from "node:os";
import { dirname, resolve } from "node:path";
import { createInterface } from "node:readline";
import { systemClock } from "../../adapters/system-clock.js";
import type { PublicKeySet } from "../../audit/signing-key.js";
import type { AppConfig } from "../../config/app-config.js";
import type { ChainVerdict } from "../../core/audit-chain.js";
import { parseDuration } from "../../core/duration.js";
import type { RequestContext } from "../../core/request-context.js";
import { verdictView } from "../../http/views.js";
import { CliError, type CliIo, UsageError } from "../cli-io.js";
import type { Command } from "../command.js";
import { loadConfig, resolveConfigPath } from "../config-file.js";
import { EXIT } from "../exit-codes.js";
import { CONFIG_OPTION, loggerFrom } from "./server-commands.js";

const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? "" : "s"}`;

/** Who acts in an offline command: the local account, so the audit trail says who ran it. */
function localContext(): RequestContext {
  let name = "unknown";
  try {
    name = userInfo().username;
  } catch {
    // No passwd entry (some containers): the audit still records that it was local.
  }
  return { actor: `local:${name}`, requestId: null, sourceAddress: "local" };
}

function readText(path: string, what: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch (e) {
    throw new CliError(EXIT.CONFIG, `cannot read ${what} ${path} (${(e as NodeJS.ErrnoException).code ?? e})`);
  }
}

export const configCheckCommand: Command = {
  name: "config check",
  summary: "Check a configuration file and list every problem with its YAML path",
  description:
    "Check FILE (default: --config, $BREAKGLASS_CONFIG, ./breakglass.yaml) against the schema and the cross-references between users, groups, roles and targets. Secrets (storage.url_env / url_file) are not read. Exits 3 when there is any problem.",
  args: [{ name: "FILE", required: false, description: "Configuration file" }],
  options: {
    config: CONFIG_OPTION,
    json: { type: "boolean", description: "Print {ok, file, issues} as JSON" },
    targets: {
      type: "boolean",
      description:
        "Also connect to each target that can tell and explain, per role, what containment at the end of a window can do; refuse roles it cannot contain unless accepted with a reason (reads secrets)",
    },
  },
  async run(input, io) {
    const file =
      input.args[0] === undefined ? resolveConfigPath(input.string("config"), io) : resolve(io.cwd, input.arg(0));
    const text = readText(file, "configuration file");
    const { checkConfigText, formatIssues } = await import("../../config/load-config.js");
    const { connectorConfigChecks } = await import("../../connectors/registry.js");
    const { config, issues } = checkConfigText(text, {
      source: file,
      env: io.env,
      readSecretFile: (path) => readFileSync(path, "utf8"),
      ...connectorConfigChecks,
      resolveSecrets: false,
    });
    if (input.flag("json")) {
      io.out(JSON.stringify({ ok: issues.length === 0, file, issues }, null, 2));
      return issues.length === 0 ? EXIT.OK : EXIT.CONFIG;
    }
    if (!config || issues.length > 0) {
      throw new CliError(
        EXIT.CONFIG,
        `${file} has ${issues.length} problem${issues.length === 1 ? "" : "s"} (ERR_CONFIG_INVALID)`,
        formatIssues(issues, file),
      );
    }
    const { policy } = config;
    io.out(
      `${file}: OK — ${policy.users.size} users, ${policy.groups.size} groups, ${policy.domains.size} domains, ${policy.roles.size} roles, ${policy.targets.size} targets`,
    );
    return input.flag("targets") ? checkTargets(config, io) : EXIT.OK;
  },
};

/**
 * `config check --targets`: ask each target that can tell (ADR 0009) what containment at the end
 * of a window can do for each role, and refuse roles whose power makes it impossible unless the
 * target's settings accept them with a reason.
 */
async function checkTargets(config: AppConfig, io: CliIo): Promise<number> {
  const { createConnector } = await import("../../connectors/registry.js");
  const { createSecretResolver } = await import("../../secrets/secret-ref.js");
  const { loadSecretBox } = await import("../../secrets/secret-box.js");
  const baseDir = dirname(config.source);
  const box =
    config.secrets.keyFile !== null && existsSync(config.secrets.keyFile)
      ? loadSecretBox(config.secrets.keyFile, { generateIfMissing: false })
      : null;
  const resolveSecret = createSecretResolver({ baseDir, env: io.env, box });
  const roles = [...config.policy.roles.values()];
  const refused: string[] = [];
  for (const t of config.policy.targets.values()) {
    const connector = createConnector(
      t,
      { baseDir, resolveSecret, log: () => {}, clock: systemClock },
      roles.filter((r) => r.target === t.name),
    );
    try {
      if (!connector.assess) continue;
      for (const a of await connector.assess()) {
        const head = `${a.roleId} on ${t.name} (${a.principal})`;
        if (a.missing) {
          io.out(`${head}: MISSING — ${a.principal} does not exist on the target; activation would fail`);
          continue;
        }
        const verdict =
          a.impossible.length === 0
            ? "containable"
            : a.acceptedBecause === null
              ? "REFUSED"
              : `ACCEPTED (${a.acceptedBecause})`;
        io.out(`${head}: ${verdict}`);
        for (const why of a.impossible) io.out(`  cannot contain: ${why}`);
        for (const limit of a.limits) io.out(`  ${limit}`);
        if (a.impossible.length > 0 && a.acceptedBecause === null) {
          refused.push(head);
          io.out(
            `  fix: remove that power from ${a.principal}, or accept it: targets.${t.name}.settings.containment.accept.${a.principal}: "<reason>"`,
          );
        }
      }
    } finally {
      await connector.close?.();
    }
  }
  if (refused.length > 0) {
    throw new CliError(
      EXIT.CONFIG,
      `${refused.length} role(s) cannot be contained at the end of a window and are not accepted: ${refused.join(", ")} (ERR_CONFIG_INVALID)`,
    );
  }
  return EXIT.OK;
}

export const configSchemaCommand: Command = {
  name: "config schema",
  summary: "Print the JSON Schema of the configuration file",
  args: [],
  options: {},
  notes: ["Editors use it to complete and check breakglass.yaml (see schema/breakglass.schema.json)."],
  async run(_input, io) {
    const { configJsonSchemaText } = await import("../../config/load-config.js");
    io.out(configJsonSchemaText());
    return EXIT.OK;
  },
};

export const tokenCreateCommand: Command = {
  name: "token create",
  summary: "Create an API token for a configured user (printed once)",
  description:
    "Create an API token for USER directly in the broker's database (no running broker needed). The token is printed once on stdout; only its hash is stored. The creation is recorded in the audit log.",
  args: [],
  options: {
    user: { type: "string", value: "NAME", required: true, description: "A user from the configuration" },
    description: { type: "string", value: "TEXT", description: "What the token is for" },
    ttl: { type: "string", value: "30d", description: "Expire after this long (default: never)" },
    scope: {
      type: "string",
      value: "LIST",
      description: "Comma-separated scopes: read, request, approve, review, admin (default: * — all)",
    },
    config: CONFIG_OPTION,
  },
  async run(input, io) {
    const ttlText = input.string("ttl");
    let ttlS: number | undefined;
    if (ttlText !== undefined) {
      try {
        ttlS = parseDuration(ttlText);
      } catch {
        throw new UsageError(`--ttl "${ttlText}" is not a duration; write it like 12h, 30d`, "token create");
      }
    }
    const config = await loadConfig(resolveConfigPath(input.string("config"), io), io);
    const { createBroker } = await import("../../app.js");
    const broker = await createBroker(config, { log: loggerFrom(io, "warn") });
    let created: Awaited<ReturnType<typeof broker.tokens.create>>;
    try {
      created = await broker.tokens.create(localContext(), {
        user: input.requireString("user"),
        description: input.string("description") ?? "",
        ttlS,
        scopes: (input.string("scope") ?? "*")
          .split(",")
          .map((x) => x.trim())
          .filter((x) => x !== ""),
      });
    } finally {
      await broker.stop();
    }
    const { record } = created;
    io.out(created.token.reveal());
    io.err(
      `Created token ${record.id} for ${record.user} (scopes: ${record.scopes.join(", ")})${record.expiresAt === null ? "" : `, expires ${new Date(record.expiresAt).toISOString()}`}. It is shown only once: store it now.`,
    );
    return EXIT.OK;
  },
};

export const provisionTotpCommand: Command = {
  name: "factors provision-totp",
  summary: "Give a configured non-person identity (a drill's requester) a TOTP factor; the secret goes to a file",
  description:
    "For the idp-outage drill, whose requester signs in by local fallback: creates a confirmed TOTP factor for USER directly in the broker's database and writes its base32 secret to FILE (mode 0600, never overwritten). Point the drill's `factor_secret: { file: FILE }` at it. Audited and alarmed like any enrolment. People enrol their own factors (`breakglass factors add-totp`).",
  args: [],
  options: {
    user: { type: "string", value: "NAME", required: true, description: "A configured user (e.g. drill-bot)" },
    out: { type: "string", value: "FILE", required: true, description: "Where the secret is written (0600)" },
    label: { type: "string", value: "TEXT", description: "A name for the factor (default: drill)" },
    config: CONFIG_OPTION,
  },
  async run(input, io) {
    const out = resolve(io.cwd, input.requireString("out"));
    if (existsSync(out))
      throw new UsageError(
        `${out} exists; choose another file (secrets are never overwritten)`,
        "factors provision-totp",
      );
    const config = await loadConfig(resolveConfigPath(input.string("config"), io), io);
    const { createBroker } = await import("../../app.js");
    const broker = await createBroker(config, { log: loggerFrom(io, "warn") });
    try {
      if (!broker.auth) {
        throw new CliError(EXIT.CONFIG, "local factors need the broker's secret key: set `secrets.key_file`");
      }
      const r = await broker.auth.provisionTotp(
        localContext(),
        input.requireString("user"),
        input.string("label") ?? "drill",
      );
      writeFileSync(out, `${r.secret}\n`, { mode: 0o600, flag: "wx" });
      io.err(`Provisioned TOTP factor ${r.factorId} for ${input.requireString("user")}; secret written to ${out}.`);
    } finally {
      await broker.stop();
    }
    return EXIT.OK;
  },
};

export const rotationStatusCommand: Command = {
  name: "rotation status",
  summary:
    "Every break-glass credential's age against the maximum (rotation.max_age, default 30d); exit 6 when any is overdue",
  args: [],
  options: {
    "max-age": { type: "string", value: "30d", description: "Maximum age (default: rotation.max_age, 30d)" },
    json: { type: "boolean", description: "Print JSON" },
    config: CONFIG_OPTION,
  },
  async run(input, io) {
    const maxAgeText = input.string("max-age");
    let maxAgeMs: number | undefined;
    try {
      maxAgeMs = maxAgeText === undefined ? undefined : parseDuration(maxAgeText) * 1000;
    } catch {
      throw new UsageError(`--max-age "${maxAgeText}" is not a duration; write it like 30d`, "rotation status");
    }
    const config = await loadConfig(resolveConfigPath(input.string("config"), io), io);
    const { createBroker } = await import("../../app.js");
    const broker = await createBroker(config, { log: loggerFrom(io, "warn") });
    let rows: Awaited<ReturnType<typeof broker.rotationStatus>>;
    try {
      rows = await broker.rotationStatus(maxAgeMs);
    } finally {
      await broker.stop();
    }
    if (input.flag("json")) io.out(JSON.stringify(rows, null, 2));
    else {
      for (const r of rows) {
        io.out(
          `${r.overdue ? "OVERDUE" : "ok     "}  ${r.credential}: ${r.rotatedAt === null ? "never rotated by Breakglass" : `${r.ageDays} day(s) old, due ${new Date(r.dueAt ?? 0).toISOString().slice(0, 10)}`}${r.overdue ? ` — ${r.how}` : ""}`,
        );
      }
    }
    return rows.some((r) => r.overdue) ? EXIT.CHECK_FAILED : EXIT.OK;
  },
};

export const rotateTargetCommand: Command = {
  name: "rotation rotate-target",
  summary: "Rotate a postgres target's admin password: set as a SCRAM verifier, proven by a new login, then saved",
  description:
    "The target's admin_url must come from a file ({file: …}) or a sealed file ({sealed: …}) the broker can rewrite. The new password is written beside it first, set at the server, proven by a new login (the old one is set back if that fails), and only then replaces the file. Running brokers pick the new password up at their next new admin connection (the old one is refused, they read the file again). Targets listed under rotation.auto are rotated by the broker itself when due.",
  args: [{ name: "TARGET", required: true, description: "A postgres target" }],
  options: { config: CONFIG_OPTION },
  async run(input, io) {
    const config = await loadConfig(resolveConfigPath(input.string("config"), io), io);
    const { createBroker } = await import("../../app.js");
    const broker = await createBroker(config, { log: loggerFrom(io, "warn") });
    try {
      const r = await broker.rotateTarget(localContext(), input.arg(0));
      io.err(
        `Rotated the password of ${r.user} on ${input.arg(0)}; ${r.file} updated; running brokers read it again at their next admin connection.`,
      );
    } finally {
      await broker.stop();
    }
    return EXIT.OK;
  },
};

export const reportCommand: Command = {
  name: "report",
  summary:
    "Compliance evidence for a period: every break-glass access, its approvals, alarms, session and review; drills; audit-chain verification",
  description:
    "Reads the broker's database directly (no running broker needed). Sections map to SOC 2 CC6.1–CC6.3 and CC7.2, ISO/IEC 27001:2022 A.5.15, A.5.18, A.8.2, A.8.15, and HIPAA §164.312(a)(2)(ii) and (b). The audit chain is verified as part of the report.",
  args: [],
  options: {
    from: { type: "string", value: "YYYY-MM-DD", required: true, description: "Start of the period (UTC, inclusive)" },
    to: { type: "string", value: "YYYY-MM-DD", required: true, description: "End of the period (UTC, exclusive)" },
    format: { type: "string", value: "html|pdf|json|csv", required: true, description: "Output format" },
    out: { type: "string", value: "FILE", description: "Write here (required for pdf; default stdout)" },
    config: CONFIG_OPTION,
  },
  notes: ["Example:", "  breakglass report --from 2026-10-01 --to 2027-01-01 --format pdf --out q4-breakglass.pdf"],
  async run(input, io) {
    const day = (name: string) => {
      const text = input.requireString(name);
      const ms = Date.parse(`${text}T00:00:00Z`);
      if (!/^\d{4}-\d{2}-\d{2}$/.test(text) || Number.isNaN(ms)) {
        throw new UsageError(`--${name} "${text}" is not a date; write it like 2026-11-01`, "report");
      }
      return ms;
    };
    const from = day("from");
    const to = day("to");
    if (to <= from) throw new UsageError("--to must be after --from", "report");
    const format = input.requireString("format");
    if (!["html", "pdf", "json", "csv"].includes(format))
      throw new UsageError("--format must be html, pdf, json or csv", "report");
    const out = input.string("out");
    if (format === "pdf" && out === undefined) throw new UsageError("--format pdf needs --out FILE", "report");
    const config = await loadConfig(resolveConfigPath(input.string("config"), io), io);
    const keys = await publicKeysFor([], io, config.audit.signingKeyFile);
    const { openStore } = await import("../../app.js");
    const { verifyStoreChain } = await import("../../audit/audit-verify.js");
    const report = await import("../../audit/evidence-report.js");
    const store = await openStore(config.storage);
    let r: Awaited<ReturnType<typeof report.buildEvidenceReport>>;
    try {
      const chain = await verifyStoreChain(store, keys.verifySignature);
      const { rotationStatus } = await import("../../service/rotation.js");
      const credentials = await rotationStatus(config, store, Date.now());
      r = await report.buildEvidenceReport(store, { from, to, now: Date.now(), chain, credentials });
    } finally {
      await store.close();
    }
    const target = out === undefined ? null : resolve(io.cwd, out);
    if (format === "pdf") {
      const { htmlToPdf } = await import("../../audit/pdf.js");
      await htmlToPdf(report.reportHtml(r), target as string, io.env);
    } else {
      const text =
        format === "json"
          ? `${JSON.stringify(report.reportJson(r), null, 2)}\n`
          : format === "csv"
            ? report.reportCsv(r)
            : report.reportHtml(r);
      if (target === null) io.stdout.write(text);
      else writeFileSync(target, text, { mode: 0o600 });
    }
    io.err(
      `${r.accesses.filter((a) => a.grant.drill !== true).length} access(es), ${r.drills.length} drill(s), audit chain ${r.chain.ok ? "verified" : "FAILED"}${target ? `; written to ${target}` : ""}`,
    );
    return r.chain.ok ? EXIT.OK : EXIT.AUDIT_FAILED;
  },
};

/** The keys to verify with: `--public-key` files, else the public half of the configured signing key. */
async function publicKeysFor(files: readonly string[], io: CliIo, signingKeyFile?: string): Promise<PublicKeySet> {
  const { loadPublicKeys, loadSigningKey } = await import("../../audit/signing-key.js");
  if (files.length > 0) return loadPublicKeys(files.map((f) => readText(resolve(io.cwd, f), "public key")));
  if (signingKeyFile === undefined) throw new UsageError("--public-key is required with --file", "audit verify");
  const pub = `${signingKeyFile}.pub`;
  if (existsSync(pub)) return loadPublicKeys([readText(pub, "public key")]);
  return loadPublicKeys([loadSigningKey(signingKeyFile, { generateIfMissing: false }).publicKeyPem]);
}

function printVerdict(io: CliIo, verdict: ChainVerdict, summary: string, json: boolean): number {
  if (json) io.out(JSON.stringify(verdictView(verdict, summary), null, 2));
  else if (verdict.ok) io.out(summary);
  else io.err(`error: audit verification ${summary} (ERR_AUDIT_CHAIN_BROKEN)`);
  return verdict.ok ? EXIT.OK : EXIT.AUDIT_FAILED;
}

export const auditVerifyCommand: Command = {
  name: "audit verify",
  summary: "Verify the audit chain and its signed checkpoints, offline",
  description:
    "Verify every audit event's hash chain and every checkpoint signature. With --config (the default) it reads the broker's database directly and uses the public half of the configured signing key (or --public-key); with --file it checks a JSONL export against --public-key, needing nothing else. Exits 4 when the log is not what was written.",
  args: [],
  options: {
    config: CONFIG_OPTION,
    file: { type: "string", value: "audit.jsonl", description: "A JSONL export (from `audit export --format jsonl`)" },
    "public-key": {
      type: "string",
      value: "K.pub",
      multiple: true,
      description: "Trusted public key file (PEM); repeat for rotated keys",
    },
    checkpoint: {
      type: "string",
      value: "FILE",
      multiple: true,
      description:
        "Signed checkpoints kept outside the broker (the audit.checkpoint alarms a receiver stored, as JSON lines); checked like the log's own",
    },
    json: { type: "boolean", description: "Print the verdict as JSON" },
  },
  async run(input, io) {
    const keyFiles = input.strings("public-key");
    const { parseAnchors } = await import("../../audit/audit-verify.js");
    const anchors = input.strings("checkpoint").flatMap((f) => {
      const parsed = parseAnchors(readText(resolve(io.cwd, f), "checkpoint file"));
      if (typeof parsed === "string") throw new UsageError(`--checkpoint ${f}: ${parsed}`, "audit verify");
      return parsed;
    });
    const file = input.string("file");
    const { formatVerdict, verifyJsonl, verifyStoreChain } = await import("../../audit/audit-verify.js");
    const print = (verdict: ChainVerdict) => printVerdict(io, verdict, formatVerdict(verdict), input.flag("json"));
    if (file !== undefined) {
      if (input.string("config") !== undefined) {
        throw new UsageError("use either --config or --file, not both", "audit verify");
      }
      const keys = await publicKeysFor(keyFiles, io);
      const path = resolve(io.cwd, file);
      readText(path, "audit export"); // a clear error for a missing file before streaming
      const lines = createInterface({ input: createReadStream(path, "utf8"), crlfDelay: Number.POSITIVE_INFINITY });
      return print(await verifyJsonl(lines, keys.verifySignature, { anchors }));
    }
    const config = await loadConfig(resolveConfigPath(input.string("config"), io), io);
    const keys = await publicKeysFor(keyFiles, io, config.audit.signingKeyFile);
    const { openStore } = await import("../../app.js");
    const store = await openStore(config.storage);
    try {
      return print(await verifyStoreChain(store, keys.verifySignature, { anchors }));
    } finally {
      await store.close();
    }
  },
};

export const auditExportCommand: Command = {
  name: "audit export",
  summary: "Export the audit log as JSONL (verifiable offline) or CSV (for people and SIEMs)",
  args: [],
  options: {
    format: {
      type: "string",
      value: "jsonl|csv|ocsf",
      required: true,
      description:
        "Output format (ocsf: one OCSF 1.3 event per line, for SIEMs; jsonl keeps what `audit verify --file` checks)",
    },
    out: { type: "string", value: "FILE", description: "Write to FILE (mode 0600) instead of stdout" },
    config: CONFIG_OPTION,
  },
  notes: ["Verify a JSONL export with: breakglass audit verify --file FILE --public-key audit-signing.pem.pub"],
  async run(input, io) {
    const format = input.requireString("format");
    if (format !== "jsonl" && format !== "csv" && format !== "ocsf") {
      throw new UsageError("--format must be jsonl, csv or ocsf", "audit export");
    }
    const config = await loadConfig(resolveConfigPath(input.string("config"), io), io);
    const outPath = input.string("out");
    const { openStore } = await import("../../app.js");
    const { exportAudit } = await import("../../audit/audit-export.js");
    const store = await openStore(config.storage);
    try {
      if (outPath === undefined) {
        await exportAudit(store, io.stdout, { format });
        return EXIT.OK;
      }
      const path = resolve(io.cwd, outPath);
      const stream = createWriteStream(path, { mode: 0o600 });
      await once(stream, "open");
      const summary = await exportAudit(store, stream, { format });
      stream.end();
      await once(stream, "finish");
      io.err(
        `Exported ${plural(summary.events, "event")}${format === "jsonl" ? ` and ${plural(summary.checkpoints, "checkpoint")}` : ""} to ${path}`,
      );
      return EXIT.OK;
    } finally {
      await store.close();
    }
  },
};

export const auditKeygenCommand: Command = {
  name: "audit keygen",
  summary: "Create an Ed25519 checkpoint signing key (FILE, mode 0600) and its public key (FILE.pub)",
  args: [],
  options: { out: { type: "string", value: "FILE", required: true, description: "Private key file to create" } },
  notes: ["Point audit.signing_key_file at FILE; give FILE.pub to auditors. An existing key is never overwritten."],
  async run(input, io) {
    const path = resolve(io.cwd, input.requireString("out"));
    const { generateSigningKey } = await import("../../audit/signing-key.js");
    const key = generateSigningKey(path);
    io.out(`Wrote ${path} (private, mode 0600) and ${path}.pub (public)\nkey id: ${key.keyId}`);
    return EXIT.OK;
  },
};

export const adminCommands: readonly Command[] = [
  configCheckCommand,
  configSchemaCommand,
  tokenCreateCommand,
  reportCommand,
  provisionTotpCommand,
  rotationStatusCommand,
  rotateTargetCommand,
  auditVerifyCommand,
  auditExportCommand,
  auditKeygenCommand,
];
