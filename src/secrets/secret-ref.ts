/**
 * Where a secret in the configuration comes from. A secret never sits in the YAML itself: it is
 * read from an environment variable, from a plain file (e.g. a mounted Kubernetes secret), or from
 * a file sealed with the broker's secret key (`breakglass secret seal`) — the last one keeps it
 * encrypted at rest on the broker's disk.
 */
import { readFileSync } from "node:fs";
import { isAbsolute, join } from "node:path";
import type { SecretRef } from "../contract/secret-ref.js";
import { BreakglassError } from "../core/errors.js";
import type { Redacted } from "../core/redacted.js";
import { Redacted as RedactedValue } from "../core/redacted.js";
import type { SecretBox } from "./secret-box.js";

export { type SecretRef, secretRefSchema } from "../contract/secret-ref.js";

/** Additional authenticated data binding a sealed file to its use: the secret's name. */
export const sealedFileAad = (name: string): string => `breakglass:sealed-file:${name}`;

export interface SecretResolverOptions {
  readonly baseDir: string;
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Needed only for `{sealed: …}` references. */
  readonly box: SecretBox | null;
}

/** Turns a reference into the secret. `where` names the config path for error messages. */
export type SecretResolver = (ref: SecretRef, where: string) => Redacted<string>;

export function createSecretResolver(opts: SecretResolverOptions): SecretResolver {
  const path = (p: string) => (isAbsolute(p) ? p : join(opts.baseDir, p));
  const read = (file: string, where: string): string => {
    try {
      return readFileSync(path(file), "utf8").trim();
    } catch (e) {
      throw new BreakglassError(
        "ERR_CONFIG_INVALID",
        `${where}: cannot read ${path(file)} (${String((e as NodeJS.ErrnoException).code)})`,
      );
    }
  };
  return (ref, where) => {
    if ("env" in ref) {
      const value = opts.env[ref.env]?.trim();
      if (!value) {
        throw new BreakglassError(
          "ERR_CONFIG_INVALID",
          `${where}: environment variable ${ref.env} is not set or empty`,
        );
      }
      return new RedactedValue(value);
    }
    if ("file" in ref) {
      const value = read(ref.file, where);
      if (!value) throw new BreakglassError("ERR_CONFIG_INVALID", `${where}: ${path(ref.file)} is empty`);
      return new RedactedValue(value);
    }
    if (!opts.box) {
      throw new BreakglassError(
        "ERR_CONFIG_INVALID",
        `${where}: a sealed secret needs the broker's secret key; set \`secrets.key_file\``,
      );
    }
    const box = read(ref.sealed, where);
    try {
      return opts.box.open(box, sealedFileAad(sealedName(ref.sealed)));
    } catch (e) {
      throw new BreakglassError(
        "ERR_CONFIG_INVALID",
        `${where}: ${path(ref.sealed)} does not open with the broker's secret key (${(e as Error).message}); seal it again with \`breakglass secret seal\``,
      );
    }
  };
}

/** A sealed file's name is its base name without `.sealed`: renaming a file breaks it on purpose. */
export function sealedName(file: string): string {
  const base = file.split(/[\\/]/).pop() ?? file;
  return base.replace(/\.sealed$/, "");
}
