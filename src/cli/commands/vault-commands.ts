/**
 * Tier 2 from the terminal, offline: `vault custodian keygen`, `vault seal`, `vault open`,
 * `vault verify-records`. Nothing here talks to the broker; `vault open` only reaches out to the
 * alarm endpoints stored in the envelope — and opens anyway if none answers (the emergency wins),
 * leaving the alarm pending beside the record and saying so loudly.
 */
import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { hostname } from "node:os";
import { basename, resolve } from "node:path";
import { parseDuration } from "../../core/duration.js";
import { isBreakglassError } from "../../core/errors.js";
import { requirePlainText } from "../../core/text.js";
import { CliError, type CliIo, UsageError } from "../cli-io.js";
import type { Command, CommandInput } from "../command.js";
import { EXIT } from "../exit-codes.js";

type Envelope = import("../../vault/envelope.js").Envelope;
type OpeningFacts = import("../../vault/opening-record.js").OpeningFacts;
type Share = Awaited<ReturnType<typeof import("../../vault/envelope.js").decryptShare>>;

const read = (io: CliIo, file: string, what: string): string => {
  try {
    return readFileSync(resolve(io.cwd, file), "utf8");
  } catch (e) {
    throw new CliError(EXIT.USAGE, `cannot read ${what} ${file} (${(e as NodeJS.ErrnoException).code ?? e})`);
  }
};

/** Library refusals (too few shares, altered envelope…) end the command with exit 1 and their message. */
async function refusing<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (isBreakglassError(e)) throw new CliError(EXIT.REFUSED, `${e.message} (${e.code})`);
    throw e;
  }
}

export const vaultCommands: readonly Command[] = [
  {
    name: "vault flush-alarms",
    summary: "Deliver every opening's pending alarm now that the network is back",
    description:
      "Each opening whose alarm no endpoint took (its record says pending, and no delivery receipt says otherwise) is announced to the envelope's alarm endpoints, one by one: one that fails again stays pending and the others are still delivered. Each delivered alarm gets a receipt in ENVELOPE.alarm-receipts.jsonl (the record itself is signed and never changes) and its pending file is removed. Exit 5 while any is still pending.",
    args: [
      {
        name: "ENVELOPE",
        required: true,
        description: "The envelope file (its pending alarms are ENVELOPE.pending-alarm.*.json)",
      },
    ],
    options: {},
    async run(input, io) {
      const { parseEnvelope } = await import("../../vault/envelope.js");
      const { appendReceipt, gatherPendingAlarms, removeFile } = await import("../../vault/vault-files.js");
      const file = resolve(io.cwd, input.arg(0));
      const envelope = await refusing(async () => parseEnvelope(read(io, file, "envelope")));
      const { waiting, delivered } = gatherPendingAlarms(file);
      for (const f of delivered) removeFile(f); // delivered before; the flush stopped before removing it
      if (waiting.length === 0) {
        io.err(`No pending alarm for ${file}.`);
        return EXIT.OK;
      }
      let still = 0;
      for (const w of waiting) {
        const label = `${w.record ? `opening ${w.record.seq}` : "an opening with no record"} (${w.at}, ${w.incident})`;
        const deliveredAt = new Date().toISOString();
        const r = await announce(envelope.meta.alarms, {
          ...w.event,
          ...(w.record ? { record: w.record.seq } : {}),
          delayed: true,
          deliveredAt,
        });
        if (r.pending) {
          still++;
          io.err(`${label}: STILL NOT DELIVERED: ${r.pending.errors.join("; ") || "no endpoint"}`);
          continue;
        }
        if (w.record)
          await refusing(() =>
            appendReceipt(file, {
              seq: w.record?.seq ?? 0,
              hash: w.record?.hash ?? "",
              deliveredAt,
              summary: r.summary,
            }),
          );
        for (const f of w.files) removeFile(f);
        io.err(`${label}: alarm ${r.summary}.`);
      }
      if (still > 0) {
        io.err(
          `${still} of ${waiting.length} alarm(s) still pending: tell security by hand, and run this again when the endpoints answer.`,
        );
        return EXIT.UNAVAILABLE;
      }
      io.err(
        `${waiting.length} pending alarm(s) delivered; breakglass vault import-record ${input.arg(0)} brings the deliveries into the broker.`,
      );
      return EXIT.OK;
    },
  },
  {
    name: "vault import-record",
    summary: "Bring an envelope's opening records into the broker's audit log (pages security; checks them first)",
    description:
      "Reads the broker's database directly (the broker may be running). Records already imported are skipped, so it can run again after every opening.",
    args: [
      { name: "ENVELOPE", required: true, description: "The envelope file (its records are ENVELOPE.openings.jsonl)" },
    ],
    options: {
      config: { type: "string", value: "FILE", description: "The broker's configuration (default breakglass.yaml)" },
    },
    async run(input, io) {
      const { parseEnvelope } = await import("../../vault/envelope.js");
      const { parseRecords, verifyRecords } = await import("../../vault/opening-record.js");
      const { readReceipts } = await import("../../vault/vault-files.js");
      const file = resolve(io.cwd, input.arg(0));
      const envelope = await refusing(async () => parseEnvelope(read(io, file, "envelope")));
      const records = parseRecords(read(io, `${file}.openings.jsonl`, "opening records"));
      const problem = verifyRecords(envelope, records);
      if (problem)
        throw new CliError(EXIT.AUDIT_FAILED, `the opening records do not verify: ${problem}; nothing imported`);
      const receipts = readReceipts(file);
      const { loadConfig, resolveConfigPath } = await import("../config-file.js");
      const config = await loadConfig(resolveConfigPath(input.string("config"), io), io);
      const { createBroker } = await import("../../app.js");
      const { silentLogger } = await import("../../adapters/logger.js");
      const broker = await createBroker(config, { log: silentLogger });
      try {
        const { imported, lateDeliveries } = await broker.vault.importOpenings(
          { id: envelope.meta.id, name: envelope.meta.name },
          records,
          receipts,
        );
        io.err(
          `${imported} opening record(s) of ${envelope.meta.name} imported into the audit log (${records.length - imported} already there)${lateDeliveries > 0 ? `; ${lateDeliveries} late alarm delivery(ies) recorded` : ""}.`,
        );
      } finally {
        await broker.stop();
      }
      return EXIT.OK;
    },
  },
  {
    name: "vault custodian-keygen",
    summary: "Make a custodian's age identity (kept by the custodian, offline) and print its recipient",
    args: [],
    options: {
      out: { type: "string", value: "FILE", required: true, description: "Identity file (0600, never overwritten)" },
      passphrase: {
        type: "boolean",
        description: "Protect the identity with a passphrase (asked twice, not echoed; age scrypt)",
      },
    },
    async run(input, io) {
      const { newCustodianIdentity, protectIdentity } = await import("../../vault/envelope.js");
      const out = resolve(io.cwd, input.requireString("out"));
      if (existsSync(out))
        throw new UsageError(`${out} exists; identities are never overwritten`, "vault custodian-keygen");
      let passphrase: string | null = null;
      if (input.flag("passphrase")) {
        passphrase = await io.ask("Passphrase for the new identity (at least 12 characters): ", true);
        if ((await io.ask("The same passphrase again: ", true)) !== passphrase)
          throw new CliError(EXIT.USAGE, "the two passphrases differ; nothing was written");
      }
      const { identity, recipient } = await newCustodianIdentity();
      const body = passphrase === null ? `${identity}\n` : await refusing(() => protectIdentity(identity, passphrase));
      await createNew(
        out,
        `# breakglass custodian identity${passphrase === null ? "" : " (passphrase-protected)"} — keep offline; never share\n# recipient: ${recipient}\n${body}`,
        0o600,
        "identities are never overwritten",
      );
      io.out(recipient);
      io.err(`Identity written to ${out}. Give the line above (your recipient, public) to whoever seals envelopes.`);
      return EXIT.OK;
    },
  },
  {
    name: "vault seal",
    summary: "Seal a secret for k of n custodians into one envelope file (offline)",
    args: [],
    options: {
      name: { type: "string", value: "NAME", required: true, description: "What the secret is (e.g. aws-root)" },
      "secret-file": {
        type: "string",
        value: "F",
        required: true,
        description: "File holding the secret (read, never written)",
      },
      custodians: {
        type: "string",
        value: "a.pub,b.pub,…",
        required: true,
        description: "Files with each custodian's recipient (age1…); the file name names the custodian",
      },
      threshold: { type: "string", value: "K", required: true, description: "Custodians needed to open (at least 2)" },
      out: { type: "string", value: "NAME.envelope", required: true, description: "Envelope file to write" },
      rotation: { type: "string", value: "30d", description: "Rotate the secret within this long (default 30d)" },
      "alarm-webhook": {
        type: "string",
        value: "URL",
        multiple: true,
        description: "Where an opening is announced, independent of the broker",
      },
      "alarm-smtp": {
        type: "string",
        value: "smtp://HOST:PORT",
        multiple: true,
        description: "An SMTP server that mails the announcement (with --alarm-to)",
      },
      "alarm-to": { type: "string", value: "ADDRESS", description: "Who the SMTP announcement goes to" },
    },
    async run(input, io) {
      const threshold = Number(input.requireString("threshold"));
      const custodians = recipientsFrom(io, input.requireString("custodians"));
      const envelope = await sealInto(io, input, {
        name: input.requireString("name"),
        custodians,
        threshold,
        alarms: [
          ...input.strings("alarm-webhook").map((url) => ({ type: "webhook" as const, url })),
          ...input.strings("alarm-smtp").map((url) => {
            const to = input.string("alarm-to");
            if (!to) throw new UsageError("--alarm-smtp needs --alarm-to ADDRESS", "vault seal");
            return { type: "smtp" as const, url, to };
          }),
        ],
      });
      io.err(
        `Sealed ${envelope.meta.name} for ${threshold} of ${custodians.length} custodians (${custodians.map((c) => c.name).join(", ")}); rotate by ${envelope.meta.rotationDueAt.slice(0, 10)}.`,
      );
      return EXIT.OK;
    },
  },
  {
    name: "vault open",
    summary: "Open an envelope with k custodians' identities (offline); records and announces the opening",
    description:
      "Each custodian gives their identity: with --identity FILE (repeat), or pasted at the prompt (not echoed). The reason and the incident are mandatory. The secret is printed on stdout, or handed to --exec's command in BREAKGLASS_SECRET without being printed. A signed opening record is appended to ENVELOPE.openings.jsonl; the envelope's alarm endpoints are told — if none answers, the opening still proceeds and its alarm is left pending in its own file, ENVELOPE.pending-alarm.<record>-<hash>.json, until vault flush-alarms delivers it.",
    args: [
      { name: "ENVELOPE", required: true, description: "The envelope file" },
      { name: "COMMAND", required: false, variadic: true, description: "With --exec: the command to run" },
    ],
    options: {
      reason: { type: "string", value: "TEXT", description: "Why the glass is broken (mandatory unless --drill)" },
      incident: { type: "string", value: "ID", description: "Incident id (mandatory unless --drill)" },
      drill: {
        type: "boolean",
        description:
          "A rehearsal: prove the custodians' identities open the envelope and the alarm endpoints answer; the secret is never shown, the envelope is not marked used",
      },
      identity: { type: "string", value: "FILE", multiple: true, description: "A custodian's identity file (repeat)" },
      exec: { type: "boolean", description: "Run COMMAND with the secret in BREAKGLASS_SECRET instead of printing it" },
    },
    async run(input, io) {
      const { openEnvelope, parseEnvelope } = await import("../../vault/envelope.js");
      const { nextRecord } = await import("../../vault/opening-record.js");
      const { appendOpening } = await import("../../vault/vault-files.js");
      const file = resolve(io.cwd, input.arg(0));
      const envelope = await refusing(async () => parseEnvelope(read(io, file, "envelope")));
      const drill = input.flag("drill");
      const reason = drill ? (input.string("reason") ?? "drill") : input.requireString("reason");
      const incident = drill ? (input.string("incident") ?? "DRILL") : input.requireString("incident");
      // Both end up in the opening record every reviewer reads: no control characters in them.
      await refusing(async () => {
        requirePlainText("--reason", reason, "prose");
        requirePlainText("--incident", incident, "line");
      });
      const command = input.args.slice(1);
      if (drill && (input.flag("exec") || command.length > 0))
        throw new UsageError("--drill never hands the secret to anything: drop --exec", "vault open");
      if (input.flag("exec") && command.length === 0)
        throw new UsageError("--exec needs a command after --", "vault open");
      const shares = await collectShares(io, input, envelope);
      const opened = await refusing(() => openEnvelope(envelope, shares));
      if (drill) opened.secret.fill(0); // proven to decrypt and authenticate; never shown
      const at = new Date().toISOString();
      const custodians = shares.map((s) => ({ name: s.custodian.name, fingerprint: s.custodian.fingerprint }));
      const alarm = await announce(
        envelope.meta.alarms,
        {
          type: "vault.opened",
          envelope: envelope.meta.name,
          envelopeId: envelope.meta.id,
          at,
          custodians,
          reason,
          incident,
          ...(drill ? { drill: true } : {}),
        },
        drill
          ? `[DRILL] tier-2 envelope ${envelope.meta.name} opened by ${custodians.map((c) => c.name).join(" and ")} as a rehearsal (the secret was not shown)`
          : undefined,
      );
      const recordsFile = `${file}.openings.jsonl`;
      // Under the envelope's lock, atomically: an opening racing in another process lands before
      // or after this one in the chain, and each keeps its own pending alarm. Nothing is shown
      // unless the record is written.
      const { record, pendingFile } = await refusing(() =>
        appendOpening(
          file,
          (previous) =>
            nextRecord(
              previous,
              {
                envelope: envelope.meta.id,
                name: envelope.meta.name,
                at,
                custodians,
                reason,
                incident,
                alarm: alarm.summary,
                ...(drill ? { drill: true as const } : {}),
              },
              opened.signRecord,
            ),
          alarm.pending && !drill ? alarm.pending : null,
        ),
      ).catch((e: unknown) => {
        opened.secret.fill(0);
        throw e;
      });
      if (drill) {
        io.err(
          `DRILL PASSED: ${envelope.meta.name} opens with ${custodians.map((c) => c.name).join(" and ")}; the secret was not shown and the envelope is not marked used.`,
        );
        io.err(
          alarm.pending
            ? `The alarm path did NOT answer (${alarm.pending.errors.join("; ") || "no endpoint"}): in a real opening the alarm would wait in a pending file. Check the endpoints.`
            : `Alarm path verified: ${alarm.summary}.`,
        );
        io.err(`Drill record ${record.seq} appended to ${recordsFile}.`);
        return EXIT.OK;
      }
      if (pendingFile) {
        io.err(
          "\n!!! NO ALARM WAS DELIVERED: none of the envelope's alarm endpoints answered. The opening proceeds;\n" +
            `!!! the alarm is pending in ${pendingFile} —\n` +
            `!!! tell security by hand, and deliver it as soon as the network is back: breakglass vault flush-alarms ${input.arg(0)}\n`,
        );
      } else {
        io.err(`Opening announced: ${alarm.summary}.`);
      }
      io.err(`Opening record ${record.seq} appended to ${recordsFile}.`);
      try {
        if (input.flag("exec")) {
          const [cmd, ...args] = command as [string, ...string[]];
          return await new Promise<number>((done) => {
            const child = spawn(cmd, args, {
              stdio: "inherit",
              env: { ...process.env, BREAKGLASS_SECRET: opened.secret.toString("utf8") },
            });
            child.on("error", (e) => {
              io.err(`cannot run ${cmd}: ${e.message}`);
              done(EXIT.UNAVAILABLE);
            });
            child.on("close", (code) => done(code ?? EXIT.UNAVAILABLE));
          });
        }
        io.stdout.write(opened.secret);
        return EXIT.OK;
      } finally {
        opened.secret.fill(0);
      }
    },
  },
  {
    name: "vault rotate",
    summary: "Seal a new secret to replace a used or due envelope (same custodians and threshold unless changed)",
    description:
      "Rotate the secret at its system first, then seal the new one. The new envelope names the one it replaces (authenticated, so it cannot be edited away); the old file should then be destroyed everywhere it was kept.",
    args: [{ name: "ENVELOPE", required: true, description: "The envelope being replaced" }],
    options: {
      "secret-file": { type: "string", value: "F", required: true, description: "File holding the new secret" },
      out: { type: "string", value: "FILE", required: true, description: "The new envelope" },
      custodians: { type: "string", value: "a.pub,…", description: "A changed custodian set (default: the old one)" },
      threshold: { type: "string", value: "K", description: "A changed threshold (default: the old one)" },
      rotation: { type: "string", value: "30d", description: "Rotate again within this long (default 30d)" },
    },
    async run(input, io) {
      const { parseEnvelope } = await import("../../vault/envelope.js");
      const old = await refusing(async () => parseEnvelope(read(io, resolve(io.cwd, input.arg(0)), "envelope")));
      const custodians = input.string("custodians")
        ? recipientsFrom(io, input.string("custodians") as string)
        : old.meta.custodians.map((c) => ({ name: c.name, recipient: c.recipient }));
      const threshold = input.string("threshold") ? Number(input.string("threshold")) : old.meta.threshold;
      const envelope = await sealInto(io, input, {
        name: old.meta.name,
        custodians,
        threshold,
        alarms: old.meta.alarms,
        replaces: { id: old.meta.id, name: old.meta.name },
      });
      io.err(
        `Rotated ${old.meta.name}: the new envelope replaces ${old.meta.id} (${threshold} of ${custodians.length}); destroy every copy of the old file. Rotate by ${envelope.meta.rotationDueAt.slice(0, 10)}.`,
      );
      return EXIT.OK;
    },
  },
  {
    name: "vault rekey",
    summary: "The same secret for a changed custodian set: a threshold of the current custodians re-splits it",
    description:
      "Add or remove custodians, or change the threshold, without a new secret: the current custodians present (at least the threshold; --identity files or no-echo prompts) open the envelope in this process's memory only — the secret is never shown or written — and it is sealed again for --custodians. The new envelope keeps the secret's rotation date and names the old one and who rekeyed it (authenticated). An envelope that was opened is refused: its secret has been seen, rotate it instead. A removed custodian can still open any copy of the old file they kept: destroy every copy, and rotate the secret if they left on bad terms.",
    args: [{ name: "ENVELOPE", required: true, description: "The envelope being rekeyed" }],
    options: {
      custodians: {
        type: "string",
        value: "a.pub,b.pub,…",
        required: true,
        description: "The new custodian set (recipient files; the file name names the custodian)",
      },
      threshold: { type: "string", value: "K", description: "The new threshold (default: the old one)" },
      out: { type: "string", value: "FILE", required: true, description: "The new envelope (never overwritten)" },
      identity: {
        type: "string",
        value: "FILE",
        multiple: true,
        description: "A current custodian's identity file (repeat)",
      },
    },
    async run(input, io) {
      const { parseEnvelope, rekeyEnvelope } = await import("../../vault/envelope.js");
      const { parseRecords, realOpenings } = await import("../../vault/opening-record.js");
      const file = resolve(io.cwd, input.arg(0));
      const old = await refusing(async () => parseEnvelope(read(io, file, "envelope")));
      const recordsFile = `${file}.openings.jsonl`;
      const openings = existsSync(recordsFile)
        ? realOpenings(parseRecords(readFileSync(recordsFile, "utf8"))).length
        : 0;
      if (openings > 0) {
        throw new CliError(
          EXIT.REFUSED,
          `${old.meta.name} was opened ${openings} time(s): its secret has been seen. Rotate it at its system and seal the new one (breakglass vault rotate ${input.arg(0)} --secret-file NEW --custodians … --out …) instead of rekeying`,
          undefined,
          "ERR_INVALID_TRANSITION",
        );
      }
      const out = resolve(io.cwd, input.requireString("out"));
      if (existsSync(out)) throw new UsageError(`${out} exists; rekey to a new file`, "vault rekey");
      const custodians = recipientsFrom(io, input.requireString("custodians"));
      const threshold = input.string("threshold") ? Number(input.string("threshold")) : old.meta.threshold;
      const shares = await collectShares(io, input, old);
      const fresh = await refusing(() => rekeyEnvelope(old, shares, { custodians, threshold, now: Date.now() }));
      await createNew(out, `${JSON.stringify(fresh, null, 2)}\n`, 0o644, "rekey to a new file");
      const before = old.meta.custodians.map((c) => c.name).join(", ");
      const after = fresh.meta.custodians.map((c) => c.name).join(", ");
      const by = shares.map((s) => s.custodian.name).join(" and ");
      const alarm = await announce(
        old.meta.alarms,
        {
          type: "vault.rekeyed",
          envelope: old.meta.name,
          envelopeId: old.meta.id,
          newEnvelopeId: fresh.meta.id,
          at: fresh.meta.createdAt,
          by: shares.map((s) => ({ name: s.custodian.name, fingerprint: s.custodian.fingerprint })),
          custodians: {
            before: old.meta.custodians.map((c) => c.name),
            after: fresh.meta.custodians.map((c) => c.name),
          },
          threshold: { before: old.meta.threshold, after: threshold },
        },
        `TIER-2 ENVELOPE REKEYED: ${old.meta.name} (${old.meta.threshold} of [${before}] → ${threshold} of [${after}]) by ${by}`,
      );
      io.err(
        `Rekeyed ${old.meta.name} by ${by}: ${threshold} of ${fresh.meta.custodians.length} (${after}), written to ${out}; same secret, rotate by ${fresh.meta.rotationDueAt.slice(0, 10)}. Destroy every copy of the old file.`,
      );
      io.err(
        alarm.pending
          ? "No alarm endpoint answered: tell security about this rekey yourself."
          : `Rekey announced: ${alarm.summary}.`,
      );
      return EXIT.OK;
    },
  },
  {
    name: "vault status",
    summary: "An envelope's custodians, threshold, openings (used or not) and rotation due date",
    args: [{ name: "ENVELOPE", required: true, description: "The envelope file" }],
    options: { json: { type: "boolean", description: "Print JSON" } },
    async run(input, io) {
      const { parseEnvelope } = await import("../../vault/envelope.js");
      const { isDrillRecord, realOpenings, verifyRecords } = await import("../../vault/opening-record.js");
      const { gatherPendingAlarms, readRecords } = await import("../../vault/vault-files.js");
      const file = resolve(io.cwd, input.arg(0));
      const envelope = await refusing(async () => parseEnvelope(read(io, file, "envelope")));
      const records = readRecords(file);
      const pendingAlarms = gatherPendingAlarms(file).waiting.map((w) => ({
        record: w.record?.seq ?? null,
        at: w.at,
        incident: w.incident,
      }));
      const problem = records.length > 0 ? verifyRecords(envelope, records) : null;
      const opened = realOpenings(records);
      const lastDrill = records.filter(isDrillRecord).at(-1);
      const drillFacts = lastDrill ? (JSON.parse(lastDrill.payload) as OpeningFacts) : null;
      const due = Date.parse(envelope.meta.rotationDueAt);
      const status = {
        name: envelope.meta.name,
        id: envelope.meta.id,
        threshold: envelope.meta.threshold,
        custodians: envelope.meta.custodians.map((c) => ({ name: c.name, fingerprint: c.fingerprint })),
        createdAt: envelope.meta.createdAt,
        rotationDueAt: envelope.meta.rotationDueAt,
        rotationOverdue: due < Date.now(),
        openings: opened.length,
        used: opened.length > 0,
        lastDrill: drillFacts ? { at: drillFacts.at, custodians: drillFacts.custodians.map((c) => c.name) } : null,
        recordsVerify: problem === null,
        pendingAlarm: pendingAlarms.length > 0,
        pendingAlarms,
        replaces: envelope.meta.replaces ?? null,
      };
      if (input.flag("json")) io.out(JSON.stringify(status, null, 2));
      else {
        io.out(
          [
            `${status.name} (${status.id}): ${status.threshold} of ${status.custodians.length} — ${status.custodians.map((c) => c.name).join(", ")}`,
            `created ${status.createdAt.slice(0, 10)}, rotate by ${status.rotationDueAt.slice(0, 10)}${status.rotationOverdue ? " — OVERDUE" : ""}`,
            status.used
              ? `USED: opened ${status.openings} time(s)${status.recordsVerify ? "" : " — THE RECORDS DO NOT VERIFY"}; rotate the secret and seal a new envelope (vault rotate)`
              : "never opened",
            status.lastDrill
              ? `last drill ${status.lastDrill.at.slice(0, 10)} by ${status.lastDrill.custodians.join(" and ")}`
              : "never drilled: breakglass vault open --drill proves the custodians can open it",
            ...status.pendingAlarms.map(
              (p) =>
                `ALARM NOT DELIVERED for ${p.record === null ? "an opening with no record" : `opening ${p.record}`} (${p.at}, ${p.incident}): tell security; breakglass vault flush-alarms ${input.arg(0)}`,
            ),
          ].join("\n"),
        );
      }
      return status.used || status.rotationOverdue || status.pendingAlarm || !status.recordsVerify
        ? EXIT.CHECK_FAILED
        : EXIT.OK;
    },
  },
  {
    name: "vault verify-records",
    summary: "Check an envelope's opening records: chained, signed by the envelope, none edited or removed",
    args: [
      { name: "ENVELOPE", required: true, description: "The envelope file (its records are ENVELOPE.openings.jsonl)" },
    ],
    options: {},
    async run(input, io) {
      const { parseEnvelope } = await import("../../vault/envelope.js");
      const { parseRecords, verifyRecords } = await import("../../vault/opening-record.js");
      const { gatherPendingAlarms } = await import("../../vault/vault-files.js");
      const file = resolve(io.cwd, input.arg(0));
      const envelope = await refusing(async () => parseEnvelope(read(io, file, "envelope")));
      const records = parseRecords(read(io, `${file}.openings.jsonl`, "opening records"));
      const problem = verifyRecords(envelope, records);
      if (problem) {
        io.err(`FAILED: ${problem}`);
        return EXIT.AUDIT_FAILED;
      }
      io.out(`OK: ${records.length} opening record(s) of ${envelope.meta.name}, chained and signed by the envelope`);
      for (const w of gatherPendingAlarms(file).waiting) {
        io.out(
          `${w.record === null ? "an opening with no record" : `record ${w.record.seq}`} (${w.at}, ${w.incident}): its alarm still pending — breakglass vault flush-alarms ${input.arg(0)}`,
        );
      }
      return EXIT.OK;
    },
  },
];

/**
 * Write a file that must not exist yet, atomically (a crash leaves no half file) and without
 * overwriting one that appeared meanwhile.
 */
async function createNew(path: string, data: string, mode: number, hint: string): Promise<void> {
  const { createFileAtomic } = await import("../../vault/vault-files.js");
  try {
    createFileAtomic(path, data, mode);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "EEXIST") throw new UsageError(`${path} exists; ${hint}`);
    throw new CliError(EXIT.UNAVAILABLE, `cannot write ${path} (${(e as NodeJS.ErrnoException).code ?? e})`);
  }
}

/**
 * Seal the secret of `--secret-file` into the new file `--out` (never overwritten), rotating
 * within `--rotation`; the secret's buffer is zeroed afterwards.
 */
async function sealInto(
  io: CliIo,
  input: CommandInput,
  params: Omit<Parameters<typeof import("../../vault/envelope.js").sealEnvelope>[0], "secret" | "now" | "rotationDays">,
) {
  const { sealEnvelope } = await import("../../vault/envelope.js");
  const rotationText = input.string("rotation") ?? "30d";
  let rotationDays: number;
  try {
    rotationDays = parseDuration(rotationText) / 86_400;
  } catch {
    throw new UsageError(`--rotation "${rotationText}" is not a duration; write it like 30d`);
  }
  const out = resolve(io.cwd, input.requireString("out"));
  if (existsSync(out)) throw new UsageError(`${out} exists; seal to a new file`);
  const secret = Buffer.from(read(io, input.requireString("secret-file"), "secret file"), "utf8");
  try {
    const envelope = await refusing(() => sealEnvelope({ ...params, secret, now: Date.now(), rotationDays }));
    await createNew(out, `${JSON.stringify(envelope, null, 2)}\n`, 0o644, "seal to a new file");
    io.err(`Envelope written to ${out}.`);
    return envelope;
  } finally {
    secret.fill(0);
  }
}

/**
 * A custodian's age identity from their file: plain (`AGE-SECRET-KEY-1…`), or protected by a
 * passphrase (asked for without echo).
 */
async function identityFrom(io: CliIo, file: string): Promise<string> {
  const { isProtectedIdentity, unprotectIdentity } = await import("../../vault/envelope.js");
  const text = read(io, file, "identity");
  if (isProtectedIdentity(text)) {
    const passphrase = await io.ask(`Passphrase for ${file}: `, true);
    return refusing(() => unprotectIdentity(text, passphrase));
  }
  return (
    text
      .split("\n")
      .map((l) => l.trim())
      .find((l) => l.startsWith("AGE-SECRET-KEY-")) ?? ""
  );
}

/**
 * The shares of the custodians present: from `--identity` files, then pasted at no-echo prompts
 * until the threshold is reached (an empty answer: nobody else is here). Each is decrypted and
 * named as it is accepted.
 */
async function collectShares(io: CliIo, input: CommandInput, envelope: Envelope): Promise<Share[]> {
  const { decryptShare } = await import("../../vault/envelope.js");
  const identities: string[] = [];
  for (const f of input.strings("identity")) identities.push(await identityFrom(io, f));
  const need = envelope.meta.threshold;
  io.err(
    `Envelope ${envelope.meta.name}: ${need} of ${envelope.meta.custodians.length} custodians needed (${envelope.meta.custodians.map((c) => c.name).join(", ")}).`,
  );
  for (let i = identities.length; i < need; i++) {
    const pasted = await io.ask(`Custodian ${i + 1} of ${need}: paste your age identity (AGE-SECRET-KEY-1…): `, true);
    if (pasted === "") break; // nobody else is here: the count check says how many are missing
    identities.push(pasted);
  }
  const shares: Share[] = [];
  for (const identity of identities) {
    const s = await refusing(() => decryptShare(envelope, identity));
    io.err(`  share of ${s.custodian.name} (${s.custodian.fingerprint}) accepted`);
    shares.push(s);
  }
  return shares;
}

/** Custodians from a comma-separated list of recipient files; the file name names the custodian. */
function recipientsFrom(io: CliIo, list: string): { name: string; recipient: string }[] {
  return list
    .split(",")
    .map((f) => f.trim())
    .filter((f) => f !== "")
    .map((f) => {
      const recipient = read(io, f, "custodian recipient")
        .split("\n")
        .map((l) => l.trim())
        .find((l) => l.startsWith("age1"));
      if (!recipient) throw new UsageError(`${f} holds no age recipient (a line starting with age1)`);
      return { name: basename(f).replace(/\.[^.]*$/, ""), recipient };
    });
}

/** Tell every alarm endpoint of the envelope; what happened, and the pending alarm if none answered. */
async function announce(
  endpoints: readonly { type: string; url: string; to?: string }[],
  event: Record<string, unknown>,
  summary = `TIER-2 ENVELOPE OPENED: ${String(event.envelope)} (${String(event.incident)})`,
): Promise<{
  summary: string;
  pending: { event: Record<string, unknown>; endpoints: typeof endpoints; errors: string[] } | null;
}> {
  let delivered = 0;
  const errors: string[] = [];
  for (const e of endpoints) {
    try {
      if (e.type === "webhook") {
        const res = await fetch(e.url, {
          method: "POST",
          headers: { "content-type": "application/json", "user-agent": "breakglass-vault" },
          body: JSON.stringify({ severity: "critical", summary, event }),
          signal: AbortSignal.timeout(5000),
        });
        if (!res.ok) throw new Error(`HTTP ${res.status}`);
      } else if (e.type === "smtp") {
        const { smtpTransport } = await import("../../alarms/email-channel.js");
        const transport = smtpTransport(e.url, { requireTls: null, timeoutMs: 5000, port: 25 });
        await transport.sendMail({
          from: `breakglass-vault@${hostname()}`,
          to: e.to,
          subject: `[CRITICAL] ${summary}`,
          text: `${summary}\n\n${JSON.stringify(event, null, 2)}\n`,
        });
        transport.close();
      } else continue;
      delivered++;
    } catch (err) {
      errors.push(
        `${e.type} ${e.url}: ${(err as Error & { cause?: { code?: string } }).cause?.code ?? (err as Error).message}`,
      );
    }
  }
  if (delivered > 0) return { summary: `delivered to ${delivered} endpoint(s)`, pending: null };
  return {
    summary: endpoints.length === 0 ? "pending (the envelope names no alarm endpoint)" : "pending",
    pending: { event, endpoints, errors },
  };
}
