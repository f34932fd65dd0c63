/**
 * `breakglass shell GRANT -- COMMAND…`: run a command in a pseudo-terminal (util-linux `script`
 * allocates it) with its output — and input, where the role says so — streamed to the broker as
 * asciicast v2 events every 100 ms, so a killed laptop loses at most the last moment. The broker's
 * answer to each batch says whether the grant is still active; at its end the command is closed.
 *
 * `breakglass replay SESSION [--cast FILE]`: play a recorded session in the terminal with its
 * timing, or write it as an asciicast v2 file for asciinema.
 */
import { spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { StringDecoder } from "node:string_decoder";
import { ApiProblemError } from "../api-client.js";
import { type CliIo, UsageError } from "../cli-io.js";
import type { Command } from "../command.js";
import { EXIT } from "../exit-codes.js";
import { API_ENV_NOTES, clientFrom } from "./grant-commands.js";

const FLUSH_MS = 100;
/** Unsent output kept while the broker is unreachable; beyond it the command is closed (nothing unrecorded). */
const MAX_UNSENT = 16 * 1024 * 1024;

const shellQuote = (word: string) => (/^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, "'\\''")}'`);

export const shellCommand: Command = {
  name: "shell",
  summary: "Run a command in a recorded terminal session on your active grant",
  description:
    "Runs COMMAND (e.g. `ssh -i key admin@host`, `psql …`, `bash`) in a pseudo-terminal; everything it prints (and what you type, where the role records input) goes to the broker as it happens. The session closes when the grant ends. Replay it with `breakglass replay SESSION`.",
  args: [
    { name: "GRANT", required: true, description: "Your active grant" },
    { name: "-- COMMAND…", required: true, description: "The command and its arguments, after --", variadic: true },
  ],
  options: {},
  notes: [...API_ENV_NOTES, "Needs util-linux `script` (Debian: bsdutils) for the pseudo-terminal."],
  async run(input, io) {
    const grantId = input.arg(0);
    const argv = input.args.slice(1);
    if (argv.length === 0) throw new UsageError("give the command to run after --", "shell");
    const client = clientFrom(io);
    const width = process.stdout.columns ?? 80;
    const height = process.stdout.rows ?? 24;
    const command = argv.map(shellQuote).join(" ");
    const started = await client.startTerminal(grantId, { command, width, height });
    const session = started.session;
    io.err(`breakglass: recording terminal session ${session.id} on grant ${grantId}; it closes at ${started.endsAt}`);
    return runRecorded(io, session.id, session.recordInput, command, width, height, Date.parse(started.endsAt));
  },
};

async function runRecorded(
  io: CliIo,
  sessionId: string,
  recordInput: boolean,
  command: string,
  width: number,
  height: number,
  endsAt: number,
): Promise<number> {
  const client = clientFrom(io);
  const t0 = performance.now();
  const queue: { seq: number; t: number; kind: "o" | "i"; data: string }[] = [];
  let queued = 0;
  let seq = 0;
  const push = (kind: "o" | "i", data: string) => {
    if (data === "") return;
    seq += 1;
    queue.push({ seq, t: Math.round(performance.now() - t0) / 1000, kind, data });
    queued += data.length;
  };

  // The pseudo-terminal: `script` runs the command under a pty of this size and copies its output.
  const child = spawn(
    "script",
    ["-q", "-f", "-e", "-c", `stty cols ${width} rows ${height} 2>/dev/null; exec ${command}`, "/dev/null"],
    {
      stdio: ["pipe", "pipe", "inherit"],
      detached: true,
      env: { ...process.env, TERM: process.env.TERM ?? "xterm-256color" },
    },
  );
  const out = new StringDecoder("utf8");
  child.stdout.on("data", (chunk: Buffer) => {
    process.stdout.write(chunk);
    push("o", out.write(chunk));
  });
  const stdin = process.stdin;
  const raw = stdin.isTTY === true;
  if (raw) stdin.setRawMode(true);
  const typed = new StringDecoder("utf8");
  const onInput = (chunk: Buffer) => {
    child.stdin.write(chunk);
    if (recordInput) push("i", typed.write(chunk));
  };
  stdin.on("data", onInput);
  stdin.on("end", () => child.stdin.end());
  child.stdin.on("error", () => {});

  let closedBy: string | null = null;
  const close = (why: string) => {
    if (closedBy) return;
    closedBy = why;
    process.stderr.write(`\r\nbreakglass: ${why}; the session is closed\r\n`);
    // `script` ends on SIGTERM and takes the command's session down with it (the pty closes).
    const signal = (sig: NodeJS.Signals) => {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, sig);
      } catch {
        child.kill(sig);
      }
    };
    signal("SIGTERM");
    setTimeout(() => signal("SIGKILL"), 2000).unref();
  };
  const endTimer = setTimeout(() => close("the grant ended"), Math.max(0, endsAt - Date.now()));

  // Stream: one batch at a time, every FLUSH_MS; what the broker has not taken stays queued.
  let sending: Promise<void> | null = null;
  const flush = async () => {
    if (sending || queue.length === 0) return;
    const batch = queue.slice(0, 2000);
    sending = client
      .appendTerminal(sessionId, batch)
      .then((r) => {
        queue.splice(0, batch.length);
        queued = queue.reduce((n, e) => n + e.data.length, 0);
        if (!r.active) close("the grant ended");
      })
      .catch((e: unknown) => {
        // The recording is closed (past its end's grace period, or reviewed): retrying cannot help.
        if (e instanceof ApiProblemError && e.problem.code === "ERR_INVALID_TRANSITION") {
          io.err(`breakglass: ${queue.length} events were refused: ${e.message}`);
          queue.splice(0);
          close("the recording is closed");
        } else if (queued > MAX_UNSENT) close(`the broker has not taken the recording for too long (${String(e)})`);
      })
      .finally(() => {
        sending = null;
      });
    await sending;
  };
  const ticker = setInterval(() => void flush(), FLUSH_MS);

  const code = await new Promise<number>((done) => child.on("close", (c) => done(c ?? 1)));
  clearInterval(ticker);
  clearTimeout(endTimer);
  stdin.off("data", onInput);
  if (raw) stdin.setRawMode(false);
  stdin.pause();
  push("o", out.end());
  // Everything recorded reaches the broker before the session is closed there.
  for (let attempt = 0; queue.length > 0 && attempt < 50; attempt++) {
    await sending;
    await flush();
    if (queue.length > 0) await new Promise((r) => setTimeout(r, 200));
  }
  if (queue.length > 0) io.err(`breakglass: ${queue.length} events of session ${sessionId} could not be sent`);
  await client.endTerminal(sessionId, closedBy ?? `exited ${code}`).catch(() => {});
  io.err(`breakglass: session ${sessionId} recorded (${seq} events); replay with: breakglass replay ${sessionId}`);
  // Closed by the broker (grant ended): exit 1, as for any refusal; otherwise the command's own code.
  return closedBy ? EXIT.REFUSED : code;
}

export const replayCommand: Command = {
  name: "replay",
  summary: "Replay a recorded terminal session, or write it as an asciicast v2 file",
  description:
    "Plays the session's output with its original timing (--speed to change it), or with --cast writes an asciicast v2 file (`asciinema play FILE`). The holder, approvers of the role and admins can read it; every read is audited.",
  args: [
    { name: "SESSION", required: true, description: "Terminal session id (t_…), from `breakglass recording GRANT`" },
  ],
  options: {
    cast: { type: "string", value: "FILE", description: "Write an asciicast v2 file instead of playing" },
    speed: { type: "string", value: "N", description: "Playback speed factor (default 1; 0 = no delays)" },
  },
  notes: API_ENV_NOTES,
  async run(input, io) {
    const rec = await clientFrom(io).getTerminal(input.arg(0));
    const file = input.string("cast");
    if (file !== undefined) {
      const s = rec.session;
      const header = {
        version: 2,
        width: s.width,
        height: s.height,
        timestamp: Math.floor(Date.parse(s.startedAt) / 1000),
        command: s.command,
        title: `breakglass grant ${s.grantId}, session ${s.id}`,
      };
      const lines = [JSON.stringify(header), ...rec.events.map((e) => JSON.stringify(e))];
      writeFileSync(resolve(io.cwd, file), `${lines.join("\n")}\n`, { mode: 0o600 });
      io.err(`wrote ${rec.events.length} events to ${file}`);
      return EXIT.OK;
    }
    const speedText = input.string("speed") ?? "1";
    const speed = Number(speedText);
    if (!Number.isFinite(speed) || speed < 0) throw new UsageError("--speed must be a number ≥ 0", "replay");
    let last = 0;
    for (const [t, kind, data] of rec.events) {
      if (kind !== "o") continue;
      if (speed > 0 && t > last) await new Promise((r) => setTimeout(r, Math.min(((t - last) * 1000) / speed, 5000)));
      last = t;
      io.stdout.write(data);
    }
    return EXIT.OK;
  },
};
