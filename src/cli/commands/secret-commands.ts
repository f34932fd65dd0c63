/**
 * `breakglass secret keygen` and `breakglass secret seal`: the broker's data key, and secrets
 * (target admin credentials, CA keys) sealed with it so they sit encrypted on the broker's disk.
 * Offline: they read and write files only.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { CliError, UsageError } from "../cli-io.js";
import type { Command } from "../command.js";
import { EXIT } from "../exit-codes.js";

function writeNew(path: string, text: string): void {
  try {
    writeFileSync(path, text, { mode: 0o600, flag: "wx" });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new CliError(
      EXIT.USAGE,
      code === "EEXIST"
        ? `${path} already exists; it is never overwritten (remove it first if you mean to)`
        : `cannot write ${path} (${String(code)})`,
    );
  }
}

export const secretKeygenCommand: Command = {
  name: "secret keygen",
  summary: "Create the broker's data key (FILE, mode 0600) that encrypts secrets at rest",
  args: [],
  options: { out: { type: "string", value: "FILE", required: true, description: "Key file to create" } },
  notes: [
    "Point secrets.key_file at FILE. Keep it apart from the database and its backups: whoever has both",
    "can read the credentials held for active grants. An existing file is never overwritten.",
  ],
  async run(input, io) {
    const path = resolve(io.cwd, input.requireString("out"));
    const { generateSecretKeyText, loadSecretBox } = await import("../../secrets/secret-box.js");
    writeNew(path, generateSecretKeyText());
    io.out(`Wrote ${path} (mode 0600)\nkey id: ${loadSecretBox(path, { generateIfMissing: false }).keyId}`);
    return EXIT.OK;
  },
};

export const secretSealCommand: Command = {
  name: "secret seal",
  summary: "Encrypt a secret (from stdin or an environment variable) into a sealed file for `{sealed: FILE}`",
  args: [],
  options: {
    key: { type: "string", value: "FILE", required: true, description: "The broker's data key (secrets.key_file)" },
    out: {
      type: "string",
      value: "NAME.sealed",
      required: true,
      description: "Sealed file to create; its name (without .sealed) is bound into it",
    },
    "from-env": { type: "string", value: "VAR", description: "Read the secret from this environment variable" },
  },
  notes: [
    "Example:",
    "  printf %s 'postgres://breakglass_admin:…@db:5432/app' | breakglass secret seal --key secrets.key --out pg-main-admin.sealed",
    "then in breakglass.yaml:  admin_url: { sealed: ./pg-main-admin.sealed }",
    "The secret is never printed. A sealed file opens only with the same key and under the same file name.",
  ],
  async run(input, io) {
    const keyFile = resolve(io.cwd, input.requireString("key"));
    const out = resolve(io.cwd, input.requireString("out"));
    const { loadSecretBox } = await import("../../secrets/secret-box.js");
    const { sealedFileAad, sealedName } = await import("../../secrets/secret-ref.js");
    const fromEnv = input.string("from-env");
    let secret: string;
    if (fromEnv !== undefined) {
      secret = io.env[fromEnv] ?? "";
    } else {
      if (process.stdin.isTTY) {
        throw new UsageError(
          "pipe the secret on stdin, or use --from-env VAR (it is never taken as an argument)",
          "secret seal",
        );
      }
      secret = readFileSync(0, "utf8");
    }
    secret = secret.replace(/\r?\n$/, "");
    if (secret.trim() === "") throw new UsageError("the secret is empty", "secret seal");
    const box = loadSecretBox(keyFile, { generateIfMissing: false });
    writeNew(out, `${box.seal(secret, sealedFileAad(sealedName(out)))}\n`);
    io.out(`Wrote ${out} (sealed with key ${box.keyId}, mode 0600)`);
    return EXIT.OK;
  },
};

export const secretCommands: readonly Command[] = [secretKeygenCommand, secretSealCommand];
