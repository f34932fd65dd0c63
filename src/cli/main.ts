/**
 * The `breakglass` command line. `main` parses the words, runs one command and returns the exit
 * code (see exit-codes.ts); every failure is printed once, as `error: <detail> (<code>)` on
 * stderr. No CLI framework: `node:util` parseArgs and a table of commands.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { packageRoot } from "../adapters/package-root.js";
import { isBreakglassError } from "../core/errors.js";
import { STATUS_BY_CODE } from "../http/problem.js";
import { ApiProblemError, BrokerUnreachableError } from "./api-client.js";
import { CliError, type CliIo, processIo, safeIo, UsageError, withCode } from "./cli-io.js";
import { type Command, commandHelp, parseCommand, usageLine } from "./command.js";
import { adminCommands } from "./commands/admin-commands.js";
import { authCommands } from "./commands/auth-commands.js";
import { drillCommands } from "./commands/drill-commands.js";
import { grantCommands } from "./commands/grant-commands.js";
import { guardrailCommands } from "./commands/guardrail-commands.js";
import { secretCommands } from "./commands/secret-commands.js";
import { demoCommand, serverCommand } from "./commands/server-commands.js";
import { replayCommand, shellCommand } from "./commands/shell-commands.js";
import { vaultCommands } from "./commands/vault-commands.js";
import { EXIT } from "./exit-codes.js";

export const COMMANDS: readonly Command[] = [
  serverCommand,
  demoCommand,
  ...adminCommands,
  ...secretCommands,
  ...guardrailCommands,
  ...authCommands,
  ...grantCommands,
  ...drillCommands,
  ...vaultCommands,
  shellCommand,
  replayCommand,
];

const GROUPS: Readonly<Record<string, string>> = {
  config: "Check the configuration, print its schema",
  token: "Manage API tokens",
  audit: "Verify, export and sign the audit log",
  secret: "Create the data key, seal secrets for the configuration",
  guardrail: "Generate and simulate the AWS guardrail policies",
  factors: "Your local second factors (authenticator app, recovery codes)",
  idp: "The identity provider's state; declare it down or up",
  drill: "Rehearse the break-glass path on the real components",
  vault: "Tier 2: sealed secrets opened offline by k of n custodians",
  rotation: "Ages of break-glass credentials; rotate them",
};

const SECTIONS: readonly [string, readonly string[]][] = [
  [
    "Tier 2 (offline: no broker, no IdP, no network)",
    [
      "vault custodian-keygen",
      "vault seal",
      "vault open",
      "vault verify-records",
      "vault flush-alarms",
      "vault import-record",
      "vault rotate",
      "vault rekey",
      "vault status",
    ],
  ],
  ["Run the broker", ["server", "demo"]],
  [
    "Sign in",
    [
      "login",
      "logout",
      "step-up",
      "factors list",
      "factors add-totp",
      "factors recovery-codes",
      "factors remove",
      "idp status",
      "idp declare",
    ],
  ],
  [
    "Grants (talk to a broker: BREAKGLASS_URL, BREAKGLASS_TOKEN)",
    [
      "request",
      "approve",
      "deny",
      "cancel",
      "activate",
      "revoke",
      "release",
      "extend",
      "credential",
      "recording",
      "shell",
      "replay",
      "review",
      "reviews",
      "posture",
      "drill run",
      "drill list",
      "grants",
      "show",
      "roles",
      "whoami",
      "incident",
      "ack",
      "containment resolve",
      "reconcile",
    ],
  ],
  [
    "Administration (offline: read the configuration and database directly)",
    [
      "config check",
      "config schema",
      "token create",
      "token list",
      "token revoke",
      "audit verify",
      "audit export",
      "report",
      "factors provision-totp",
      "rotation status",
      "rotation rotate-target",
      "audit keygen",
      "secret keygen",
      "secret seal",
      "guardrail aws",
      "guardrail simulate",
    ],
  ],
];

function version(): string {
  try {
    const manifest = JSON.parse(readFileSync(join(packageRoot(), "package.json"), "utf8")) as { version?: unknown };
    return typeof manifest.version === "string" ? manifest.version : "unknown";
  } catch {
    return "unknown";
  }
}

export function generalHelp(): string {
  const byName = new Map(COMMANDS.map((c) => [c.name, c]));
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  const lines = [
    "breakglass — emergency access: inert until used, loud when used, time-boxed, reviewed.",
    "",
    "Usage: breakglass <command> [arguments] [options]",
  ];
  for (const [title, names] of SECTIONS) {
    lines.push("", `${title}:`);
    for (const name of names) lines.push(`  ${name.padEnd(width)}  ${byName.get(name)?.summary ?? ""}`);
  }
  lines.push(
    "",
    "Run `breakglass <command> --help` for a command's options.",
    "",
    "Exit codes: 0 ok, 1 refused by the broker, 2 usage error, 3 configuration invalid,",
    "            4 audit verification failed, 5 broker unreachable or server error,",
    "            6 a check found a problem (posture red, drill failed, drift, overdue rotation, …).",
  );
  return lines.join("\n");
}

function groupHelp(group: string): string {
  const members = COMMANDS.filter((c) => c.name.startsWith(`${group} `));
  const width = Math.max(...members.map((c) => c.name.length));
  return [
    `breakglass ${group}: ${GROUPS[group] ?? ""}`,
    "",
    ...members.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    "",
    `Run \`breakglass ${group} <command> --help\` for its options.`,
  ].join("\n");
}

/** The command named by the first one or two words, and the words after it. */
function findCommand(argv: readonly string[]): { command: Command; rest: readonly string[] } | null {
  const [first, second] = argv;
  const two = COMMANDS.find((c) => c.name === `${first} ${second}`);
  if (two) return { command: two, rest: argv.slice(2) };
  const one = COMMANDS.find((c) => c.name === first);
  return one ? { command: one, rest: argv.slice(1) } : null;
}

/**
 * Run through `npm run SCRIPT --port 9000`, npm keeps `--port` for itself (and passes `9000` on as
 * a stray argument): say so, with the form that works. npm tells its scripts the options it kept
 * through `npm_config_<name>` variables.
 */
function npmTookOptions(command: Command, io: CliIo): string | null {
  const script = io.env.npm_lifecycle_event;
  if (script === undefined) return null;
  // An option npm did not know is kept as a flag (`true`) and its value passed on as an argument.
  const taken = Object.keys(command.options).filter(
    (name) => io.env[`npm_config_${name.replace(/-/g, "_")}`] === "true",
  );
  if (taken.length === 0) return null;
  const example = taken.map((name) => `--${name}${command.options[name]?.type === "string" ? " VALUE" : ""}`).join(" ");
  return `npm kept ${taken.map((n) => `--${n}`).join(", ")} for itself: put the options after \`--\`, as in \`npm run ${script} -- ${example}\``;
}

/** Print a failure once and choose its exit code. */
export function report(error: unknown, io: CliIo): number {
  if (error instanceof UsageError) {
    io.err(`error: ${withCode(error.message, error.code)}`);
    const command = COMMANDS.find((c) => c.name === error.command);
    if (command) {
      const npm = npmTookOptions(command, io);
      if (npm) io.err(npm);
      io.err(`usage: ${usageLine(command)}\nRun \`breakglass ${command.name} --help\` for details.`);
    }
    return EXIT.USAGE;
  }
  if (error instanceof CliError) {
    io.err(`error: ${withCode(error.message, error.code)}`);
    if (error.extra) io.err(error.extra);
    return error.exitCode;
  }
  if (error instanceof ApiProblemError) {
    const p = error.problem;
    if (error.status >= 500) {
      io.err(`error: the broker failed: ${p.detail ?? p.title ?? "internal error"} (${p.code}, request ${p.instance})`);
      return EXIT.UNAVAILABLE;
    }
    io.err(`error: ${p.detail ?? p.title ?? `HTTP ${error.status}`} (${p.code})`);
    return EXIT.REFUSED;
  }
  if (error instanceof BrokerUnreachableError) {
    io.err(`error: ${error.message}; is the broker running, and is BREAKGLASS_URL right? (ERR_UNREACHABLE)`);
    return EXIT.UNAVAILABLE;
  }
  if (isBreakglassError(error)) {
    io.err(`error: ${error.message} (${error.code})`);
    if (error.code === "ERR_CONFIG_INVALID") return EXIT.CONFIG;
    return STATUS_BY_CODE[error.code] < 500 ? EXIT.REFUSED : EXIT.UNAVAILABLE;
  }
  const message = error instanceof Error ? error.message : String(error);
  io.err(`error: unexpected failure: ${message} (ERR_INTERNAL)`);
  if (io.env.BREAKGLASS_DEBUG && error instanceof Error && error.stack) io.err(error.stack);
  return EXIT.UNAVAILABLE;
}

/** Run the CLI with `argv` (without `node` and the script); returns the exit code. */
export async function main(argv: readonly string[], given: CliIo = processIo()): Promise<number> {
  const io = safeIo(given);
  try {
    const [first, second] = argv;
    if (first === undefined) {
      io.err(generalHelp());
      return EXIT.USAGE;
    }
    if (first === "--version" || first === "-V" || first === "version") {
      io.out(version());
      return EXIT.OK;
    }
    if (first === "help" || first === "--help" || first === "-h") {
      const rest = argv.slice(1);
      const found = rest.length > 0 ? findCommand(rest) : null;
      if (found) io.out(commandHelp(found.command));
      else if (second !== undefined && GROUPS[second] !== undefined) io.out(groupHelp(second));
      else if (second !== undefined) throw new UsageError(`unknown command "${rest.join(" ")}"`);
      else io.out(generalHelp());
      return EXIT.OK;
    }
    const found = findCommand(argv);
    if (!found) {
      if (GROUPS[first] !== undefined) {
        if (second === "--help" || second === "-h") {
          io.out(groupHelp(first));
          return EXIT.OK;
        }
        io.err(groupHelp(first));
        throw new UsageError(
          second === undefined ? `"${first}" needs a subcommand` : `unknown command "${first} ${second}"`,
        );
      }
      throw new UsageError(`unknown command "${first}"; run \`breakglass help\` for the list`);
    }
    const { input, help } = parseCommand(found.command, found.rest);
    if (help) {
      io.out(commandHelp(found.command));
      return EXIT.OK;
    }
    return await found.command.run(input, io);
  } catch (e) {
    return report(e, io);
  }
}
