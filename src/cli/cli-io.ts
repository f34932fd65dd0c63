/**
 * What a command needs from its surroundings: output streams, environment, working directory,
 * and a way to wait for a stop signal. Injected so commands run the same in a process and in a
 * test, and so nothing but `main` touches `process` directly.
 */
import { terminalText } from "../core/text.js";
import { EXIT, type ExitCode } from "./exit-codes.js";

export interface CliIo {
  /** Write to stdout (the command's result). Made terminal-safe by {@link safeIo}. */
  out(text: string): void;
  /** Write to stderr (progress, warnings, errors). Made terminal-safe by {@link safeIo}. */
  err(text: string): void;
  /**
   * The raw stdout stream, for data that must arrive byte for byte: an audit export, a report
   * written to a pipe, an opened tier-2 secret, a recorded terminal session played back. Never
   * for text a person reads: that goes through `out`.
   */
  readonly stdout: NodeJS.WritableStream;
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly cwd: string;
  /**
   * Resolves on the first SIGINT/SIGTERM (long-running commands: server, demo) — and, with
   * `withParent`, when the process that started this one exits (`parent exited`).
   */
  waitForStop(options?: { readonly withParent?: boolean }): Promise<string>;
  /** Ask on stderr and read one line from stdin (not echoed when `hidden` and stdin is a terminal). */
  ask(question: string, hidden: boolean): Promise<string>;
}

export const processIo = (): CliIo => ({
  out: (text) => process.stdout.write(text.endsWith("\n") ? text : `${text}\n`),
  err: (text) => process.stderr.write(text.endsWith("\n") ? text : `${text}\n`),
  stdout: process.stdout,
  env: process.env,
  cwd: process.cwd(),
  ask: (question, hidden) => askLine(question, hidden),
  waitForStop: (options = {}) =>
    new Promise((resolve) => {
      let watch: NodeJS.Timeout | undefined;
      const stop = (reason: string) => {
        if (watch) clearInterval(watch);
        // A second signal while stopping means "now": do not wait for a slow shutdown.
        process.once("SIGINT", () => process.exit(130));
        process.once("SIGTERM", () => process.exit(143));
        resolve(reason);
      };
      process.once("SIGINT", () => stop("SIGINT"));
      process.once("SIGTERM", () => stop("SIGTERM"));
      // A parent that dies without passing on a signal (npm killed, a closed tool) leaves this
      // process re-parented: its parent pid changes. Nothing to watch when started by init.
      const parent = process.ppid;
      if (options.withParent && parent > 1) {
        watch = setInterval(() => {
          if (process.ppid !== parent) stop("parent exited");
        }, 500);
      }
    }),
});

/**
 * The CLI's one output path for people: everything `out`, `err` and `ask` print passes through
 * {@link terminalText}, so no formatter — present or future — can hand the terminal a control or
 * bidi character from someone else's text (a justification with ESC sequences, a review note
 * with U+202E, an error detail quoting input). They are shown as `\x1b`, `\u202e`. Serialised
 * JSON stays valid and means the same (those escapes are JSON's own, and C0 never appears raw in
 * it). `main` wraps whatever io it is given, so tests see what a terminal would.
 */
export function safeIo(io: CliIo): CliIo {
  return {
    out: (text) => io.out(terminalText(text)),
    err: (text) => io.err(terminalText(text)),
    stdout: io.stdout,
    env: io.env,
    cwd: io.cwd,
    waitForStop: (options) => io.waitForStop(options),
    ask: (question, hidden) => io.ask(terminalText(question), hidden),
  };
}

/** One line from stdin; a terminal does not echo it when `hidden` (codes, tokens). */
async function askLine(question: string, hidden: boolean): Promise<string> {
  const stdin = process.stdin;
  if (hidden && stdin.isTTY) {
    // Raw mode (no echo) before the prompt appears: nothing typed after it is ever shown.
    stdin.setRawMode(true);
    process.stderr.write(question);
    return new Promise((resolve) => {
      let line = "";
      const onData = (chunk: Buffer) => {
        for (const ch of chunk.toString("utf8")) {
          if (ch === "\u0003") process.exit(130); // Ctrl-C
          if (ch === "\r" || ch === "\n") {
            stdin.setRawMode(false);
            stdin.off("data", onData);
            stdin.pause();
            process.stderr.write("\n");
            resolve(line.trim());
            return;
          }
          line = ch === "\u007f" ? line.slice(0, -1) : line + ch;
        }
      };
      stdin.on("data", onData);
      stdin.resume();
    });
  }
  process.stderr.write(question);
  return (await pipedLine()).trim();
}

/** What was read from a piped stdin beyond the last line handed out (several prompts, one pipe). */
let piped = "";
let pipeEnded = false;

/** The next line of a piped (not terminal) stdin; "" once it has ended. */
async function pipedLine(): Promise<string> {
  const stdin = process.stdin;
  for (;;) {
    const nl = piped.indexOf("\n");
    if (nl >= 0) {
      const line = piped.slice(0, nl);
      piped = piped.slice(nl + 1);
      return line;
    }
    if (pipeEnded) {
      const rest = piped;
      piped = "";
      return rest;
    }
    await new Promise<void>((resolve) => {
      const done = () => {
        stdin.off("data", onData);
        stdin.off("end", onEnd);
        stdin.pause(); // nothing keeps the process alive between prompts
        resolve();
      };
      const onData = (chunk: Buffer) => {
        piped += chunk.toString("utf8");
        done();
      };
      const onEnd = () => {
        pipeEnded = true;
        done();
      };
      stdin.on("data", onData);
      stdin.once("end", onEnd);
      stdin.resume();
    });
  }
}

/** The stable code a CLI failure prints when the command gives none: one per exit code. */
const CODE_BY_EXIT: Readonly<Record<ExitCode, string>> = {
  [EXIT.OK]: "ERR_INTERNAL",
  [EXIT.REFUSED]: "ERR_REFUSED",
  [EXIT.USAGE]: "ERR_USAGE",
  [EXIT.CONFIG]: "ERR_CONFIG_INVALID",
  [EXIT.AUDIT_FAILED]: "ERR_AUDIT_CHAIN_BROKEN",
  [EXIT.UNAVAILABLE]: "ERR_INTERNAL",
  [EXIT.CHECK_FAILED]: "ERR_CHECK_FAILED",
};

/**
 * A failure that ends the command with a given exit code and message, printed as
 * `error: <message> (<code>)` like every other error.
 */
export class CliError extends Error {
  readonly exitCode: ExitCode;
  /** The stable `ERR_…` code printed after the message. */
  readonly code: string;
  /** Printed after the message, e.g. the formatted config issues. */
  readonly extra: string | undefined;

  constructor(exitCode: ExitCode, message: string, extra?: string, code?: string) {
    super(message);
    this.name = "CliError";
    this.exitCode = exitCode;
    this.extra = extra;
    this.code = code ?? CODE_BY_EXIT[exitCode];
  }
}

/** The command line is wrong (exit 2, `ERR_USAGE`); the usage of the command is printed after the message. */
export class UsageError extends CliError {
  readonly command: string | undefined;
  constructor(message: string, command?: string) {
    super(EXIT.USAGE, message);
    this.name = "UsageError";
    this.command = command;
  }
}

/** `message (code)`, unless the message already ends with its code in parentheses. */
export function withCode(message: string, code: string): string {
  return /\(ERR_[A-Z_]+[^()]*\)$/.test(message) ? message : `${message} (${code})`;
}
