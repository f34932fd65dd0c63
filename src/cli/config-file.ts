/**
 * Finding and loading the configuration file for commands that work on it directly (server,
 * demo, token create, audit verify/export): `--config`, else `BREAKGLASS_CONFIG`, else
 * `./breakglass.yaml`.
 *
 * The loader and the broker are imported when a command needs them, not at start: commands that
 * only talk HTTP then start in a fraction of the time.
 */
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { packageRoot } from "../adapters/package-root.js";
import type { AppConfig } from "../config/app-config.js";
import { ConfigError } from "../core/errors.js";
import type { CliIo } from "./cli-io.js";
import { CliError } from "./cli-io.js";
import { EXIT } from "./exit-codes.js";

export const DEFAULT_CONFIG_FILE = "breakglass.yaml";

export function resolveConfigPath(flag: string | undefined, io: Pick<CliIo, "env" | "cwd">): string {
  const chosen = flag ?? io.env.BREAKGLASS_CONFIG ?? DEFAULT_CONFIG_FILE;
  return resolve(io.cwd, chosen);
}

/**
 * Load and check the configuration, with the connectors this build knows.
 * @throws CliError (exit 3) listing every issue with its YAML path, line and fix.
 */
export async function loadConfig(path: string, io: Pick<CliIo, "env">): Promise<AppConfig> {
  if (!existsSync(path)) {
    // The first thing a new user meets: say where the file was looked for, and how to name one.
    const chosenBy = io.env.BREAKGLASS_CONFIG ? "BREAKGLASS_CONFIG" : null;
    throw new CliError(
      EXIT.CONFIG,
      `no configuration file at ${path}${chosenBy ? ` (from ${chosenBy})` : ""}`,
      [
        `    fix: name it with --config FILE or the BREAKGLASS_CONFIG variable (default: ./${DEFAULT_CONFIG_FILE});`,
        `         to start from an example, copy ${join(packageRoot(), "examples", "demo", DEFAULT_CONFIG_FILE)} (see docs/configuration.md),`,
        "         or try everything first with `breakglass demo`",
      ].join("\n"),
    );
  }
  const { formatIssues, loadConfigFile } = await import("../config/load-config.js");
  const { connectorConfigChecks } = await import("../connectors/registry.js");
  try {
    return loadConfigFile(path, { ...connectorConfigChecks, env: io.env });
  } catch (e) {
    if (e instanceof ConfigError) {
      throw new CliError(
        EXIT.CONFIG,
        `${path} has ${e.issues.length} problem${e.issues.length === 1 ? "" : "s"} (ERR_CONFIG_INVALID)`,
        formatIssues(e.issues, path),
      );
    }
    throw e;
  }
}
