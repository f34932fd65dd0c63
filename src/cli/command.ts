/**
 * A command of the CLI: its name, options and arguments (parsed with `node:util` parseArgs,
 * strictly: unknown options are usage errors), its help text, and what it runs.
 */
import { type ParseArgsConfig, parseArgs } from "node:util";
import { closest } from "../core/suggest.js";
import { type CliIo, UsageError } from "./cli-io.js";

export interface OptionSpec {
  readonly type: "string" | "boolean";
  readonly short?: string;
  readonly multiple?: boolean;
  /** Placeholder in help, e.g. `TEXT`. */
  readonly value?: string;
  readonly description: string;
  readonly required?: boolean;
}

export interface ArgSpec {
  readonly name: string;
  readonly required: boolean;
  readonly description: string;
  /** The last argument only: takes every remaining word (after `--`). */
  readonly variadic?: boolean;
}

export interface Command {
  /** One or two words: `request`, `audit verify`. */
  readonly name: string;
  readonly summary: string;
  readonly description?: string;
  readonly args: readonly ArgSpec[];
  readonly options: Readonly<Record<string, OptionSpec>>;
  /** Extra help lines (examples, environment). */
  readonly notes?: readonly string[];
  run(input: CommandInput, io: CliIo): Promise<number>;
}

/** Parsed options with typed accessors. */
export class CommandInput {
  readonly command: string;
  readonly args: readonly string[];
  readonly #values: Readonly<Record<string, string | boolean | (string | boolean)[] | undefined>>;

  constructor(
    command: string,
    args: readonly string[],
    values: Readonly<Record<string, string | boolean | (string | boolean)[] | undefined>>,
  ) {
    this.command = command;
    this.args = args;
    this.#values = values;
  }

  string(name: string): string | undefined {
    const v = this.#values[name];
    return typeof v === "string" ? v : undefined;
  }

  /** @throws UsageError when the option is missing or empty. */
  requireString(name: string): string {
    const v = this.string(name);
    if (v === undefined || v.trim() === "") throw new UsageError(`--${name} is required`, this.command);
    return v;
  }

  strings(name: string): string[] {
    const v = this.#values[name];
    return Array.isArray(v) ? v.filter((x): x is string => typeof x === "string") : typeof v === "string" ? [v] : [];
  }

  flag(name: string): boolean {
    return this.#values[name] === true;
  }

  /** Positional argument `i`; required ones are checked before `run`. */
  arg(i: number): string {
    const v = this.args[i];
    if (v === undefined) throw new UsageError(`missing argument ${i + 1}`, this.command);
    return v;
  }
}

const HELP: OptionSpec = { type: "boolean", short: "h", description: "Show this help" };

/** Parse `argv` (the words after the command name) for `command`. @throws UsageError */
export function parseCommand(command: Command, argv: readonly string[]): { input: CommandInput; help: boolean } {
  const options: NonNullable<ParseArgsConfig["options"]> = {};
  for (const [name, spec] of Object.entries({ ...command.options, help: HELP })) {
    options[name] = {
      type: spec.type,
      ...(spec.short === undefined ? {} : { short: spec.short }),
      ...(spec.multiple ? { multiple: true } : {}),
    };
  }
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({ args: [...argv], options, allowPositionals: true, strict: true });
  } catch (e) {
    throw new UsageError(parseArgsMessage(e, command), command.name);
  }
  const values = parsed.values as Record<string, string | boolean | (string | boolean)[] | undefined>;
  const help = values.help === true;
  const input = new CommandInput(command.name, parsed.positionals, values);
  if (help) return { input, help };

  const required = command.args.filter((a) => a.required).length;
  if (parsed.positionals.length < required) {
    const missing = command.args.slice(parsed.positionals.length).find((a) => a.required);
    throw new UsageError(`missing ${missing?.name ?? "argument"}`, command.name);
  }
  if (parsed.positionals.length > command.args.length && !command.args.at(-1)?.variadic) {
    throw new UsageError(`unexpected argument "${parsed.positionals[command.args.length]}"`, command.name);
  }
  for (const [name, spec] of Object.entries(command.options)) {
    if (spec.required && spec.type === "string") input.requireString(name);
  }
  return { input, help };
}

/**
 * parseArgs' messages, in the CLI's own style (lower case, the option in double quotes, like
 * every other usage error) and with a "did you mean" for an option that is nearly right.
 */
function parseArgsMessage(e: unknown, command: Command): string {
  const message = e instanceof Error ? e.message : String(e);
  const code = (e as { code?: unknown }).code;
  const option = /'(-{1,2}[^'\s<=]+)/.exec(message)?.[1];
  if (option === undefined) return message.split(/\.\s/)[0]?.replace(/\.$/, "") ?? message;
  if (code === "ERR_PARSE_ARGS_UNKNOWN_OPTION") {
    const names = Object.keys(command.options).concat("help");
    const near = option.startsWith("--") ? closest(option.slice(2), names) : undefined;
    return `unknown option "${option}" for \`breakglass ${command.name}\`${near === undefined ? "" : `; did you mean "--${near}"?`}`;
  }
  if (code === "ERR_PARSE_ARGS_INVALID_OPTION_VALUE") {
    if (/does not take an argument/.test(message)) return `option "${option}" takes no value`;
    if (/ambiguous/.test(message)) {
      return `option "${option}" needs a value, and the next word looks like an option (write ${option}=VALUE if it is the value)`;
    }
    return `option "${option}" needs a value`;
  }
  return message.split(/\.\s/)[0]?.replace(/\.$/, "").replace(/'/g, '"') ?? message;
}

export function usageLine(command: Command): string {
  const parts = [`breakglass ${command.name}`];
  for (const a of command.args) parts.push(a.required ? a.name : `[${a.name}]`);
  for (const [name, spec] of Object.entries(command.options)) {
    const text = spec.type === "string" ? `--${name} ${spec.value ?? "VALUE"}` : `--${name}`;
    parts.push(spec.required ? text : `[${text}]`);
  }
  return parts.join(" ");
}

export function commandHelp(command: Command): string {
  const lines = [`Usage: ${usageLine(command)}`, "", command.description ?? command.summary];
  const rows: [string, string][] = [
    ...command.args.map((a): [string, string] => [a.name, a.description]),
    ...Object.entries({ ...command.options, help: HELP }).map(([name, spec]): [string, string] => [
      `${spec.short ? `-${spec.short}, ` : ""}--${name}${spec.type === "string" ? ` ${spec.value ?? "VALUE"}` : ""}`,
      `${spec.description}${spec.multiple ? " (repeatable)" : ""}`,
    ]),
  ];
  const width = Math.max(...rows.map(([k]) => k.length));
  lines.push("", "Arguments and options:", ...rows.map(([k, v]) => `  ${k.padEnd(width)}  ${v}`));
  if (command.notes && command.notes.length > 0) lines.push("", ...command.notes);
  return lines.join("\n");
}
