/**
 * Loading and checking `breakglass.yaml`: YAML → schema (src/contract/config-schema.ts) →
 * cross-reference checks → the frozen runtime `AppConfig`. Every problem in the file is reported
 * at once, each with its YAML path, line and column, and a hint saying what to change.
 */
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { LineCounter, parseDocument, type YAMLError } from "yaml";
import type { z } from "zod";
import { ConfigFileSchema } from "../contract/config-schema.js";
import { ConfigError, type ConfigIssue } from "../core/errors.js";
import type { AppConfig } from "./app-config.js";
import { buildAppConfig } from "./build-config.js";
import { checkReferences } from "./config-checks.js";
import { createLocator, locate, problemsFromZod } from "./config-issues.js";

export interface LoadOptions {
  /** Absolute path of the file: relative paths inside resolve against its folder; named in messages. */
  readonly source: string;
  /** Where `storage.url_env` is looked up. */
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Reads a secret file (`storage.url_file`), given its absolute path. */
  readSecretFile(path: string): string;
  /** Connector name → zod schema of its target `settings` (see src/connectors/registry.ts). */
  readonly connectorSchemas: Readonly<Record<string, z.ZodType>>;
  /** Connector name → zod schema of a role's `grants` on its targets (none: free-form). */
  readonly roleGrantsSchemas?: Readonly<Record<string, z.ZodType>> | undefined;
  /** Connectors that hand holders credentials: their targets need `secrets.key_file`. */
  readonly credentialConnectors?: ReadonlySet<string> | undefined;
  /** False for `breakglass config check`: do not require the storage secret to be present. */
  readonly resolveSecrets: boolean;
}

export interface CheckOutcome {
  /** The configuration, or null when there is any issue. */
  readonly config: AppConfig | null;
  /** Every problem found, in source order. */
  readonly issues: ConfigIssue[];
}

const YAML_HINTS: Readonly<Record<string, string>> = {
  DUPLICATE_KEY: "remove or rename one of the two keys",
  TAB_AS_INDENT: "indent with spaces, not tabs",
  BAD_INDENT: "line the key up with its siblings; nested keys need more spaces than their parent",
  MULTIPLE_DOCS: "keep the whole configuration in one YAML document (remove the extra `---`)",
  BAD_ALIAS: "define the anchor (`&name`) before using the alias (`*name`)",
  MISSING_CHAR: "close the quote or bracket that is still open",
  BLOCK_AS_IMPLICIT_KEY: "check the indentation and the `:` after each key",
  MULTILINE_IMPLICIT_KEY: "a key must fit on one line; check for a missing `:` or a missing quote above",
};
const YAML_HINT = "quote values that contain `: ` or ` #`, or start with `*`, `&`, `!`, `{`, `[`, `%` or `@`";

function yamlIssue(e: YAMLError, lineCounter: LineCounter): ConfigIssue {
  const { line, col } = lineCounter.linePos(e.pos[0]);
  const message = e.message.split("\n")[0]?.replace(/ at line \d+, column \d+:?$/, "") ?? e.message;
  const unclosed = /must .*end with an? [\]}]/.test(message) ? YAML_HINTS.MISSING_CHAR : undefined;
  return {
    path: "",
    message: `YAML: ${message}`,
    hint: unclosed ?? YAML_HINTS[e.code] ?? YAML_HINT,
    line,
    column: col,
  };
}

const byPosition = (a: ConfigIssue, b: ConfigIssue) =>
  (a.line ?? Number.MAX_SAFE_INTEGER) - (b.line ?? Number.MAX_SAFE_INTEGER) || (a.column ?? 0) - (b.column ?? 0);

/**
 * Check a configuration text and, when it has no issue, build the frozen `AppConfig`.
 * Never throws for problems in the text: they come back as issues.
 */
export function checkConfigText(text: string, opts: LoadOptions): CheckOutcome {
  const source = resolve(opts.source);
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const syntax = [...doc.errors, ...doc.warnings].map((e) => yamlIssue(e, lineCounter));
  if (syntax.length > 0) return { config: null, issues: syntax.sort(byPosition) };

  let raw: unknown;
  try {
    raw = doc.toJS({ maxAliasCount: 1000 });
  } catch (e) {
    return {
      config: null,
      issues: [
        { path: "", message: `YAML: ${(e as Error).message}`, hint: "use fewer or shallower aliases (`*name`)" },
      ],
    };
  }

  const parsed = ConfigFileSchema.safeParse(raw, { reportInput: true });
  const problems = parsed.success ? [] : problemsFromZod(parsed.error.issues, ConfigFileSchema, raw);
  const checked = checkReferences(raw, { ...opts, source });
  problems.push(...checked.problems);

  const issues = locate(problems, createLocator(doc, lineCounter)).sort(byPosition);
  if (!parsed.success || issues.length > 0) return { config: null, issues };
  const config = buildAppConfig(parsed.data, {
    source,
    storageUrl: checked.storageUrl,
    targetSettings: checked.targetSettings,
  });
  return { config, issues: [] };
}

/**
 * Read, check and build the configuration at `path`.
 * Defaults: `process.env`, secret files read as UTF-8, secrets resolved, and no connectors — the
 * composition root passes `connectorSchemas` from src/connectors/registry.ts.
 * @throws ERR_CONFIG_INVALID (`ConfigError`, with every issue) when the file is unreadable or has problems.
 */
export function loadConfigFile(path: string, opts: Partial<LoadOptions> = {}): AppConfig {
  const source = resolve(opts.source ?? path);
  let text: string;
  try {
    text = readFileSync(resolve(path), "utf8");
  } catch (e) {
    const reason = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
    throw new ConfigError(
      [{ path: "", message: `cannot read ${source} (${reason})`, hint: "check the path of the configuration file" }],
      source,
    );
  }
  const { config, issues } = checkConfigText(text, {
    env: process.env,
    readSecretFile: (file) => readFileSync(file, "utf8"),
    connectorSchemas: {},
    resolveSecrets: true,
    ...opts,
    source,
  });
  if (!config) throw new ConfigError(issues, source);
  return config;
}

/**
 * Human-readable issues, one block per issue:
 * ```
 * breakglass.yaml:12:5  domains.production.roles.db-admin.max_duration: "90x" is not a duration
 *     fix: write it like 30m, 1h30m, 2d or 45s
 * ```
 */
export function formatIssues(issues: readonly ConfigIssue[], file: string): string {
  return issues
    .map((issue) => {
      const where = issue.line === undefined ? file : `${file}:${issue.line}:${issue.column ?? 1}`;
      const head = `${where}  ${issue.path === "" ? "" : `${issue.path}: `}${issue.message}`;
      return issue.hint === undefined ? head : `${head}\n    fix: ${issue.hint}`;
    })
    .join("\n");
}

export { configJsonSchema, configJsonSchemaText } from "../contract/config-schema.js";
