/**
 * The `exec` connector: runs the operator's own commands to grant, revoke and verify access on a
 * target Breakglass does not know. Commands are argv arrays (no shell unless the operator asks
 * for one), get the grant's facts in environment variables, run with a timeout, and a non-zero
 * exit is a failure. Output is captured (bounded) into the audit trail — commands must not print
 * secrets.
 */
import { spawn } from "node:child_process";
import { z } from "zod";
import { Duration } from "../contract/config-schema.js";
import { parseDuration } from "../core/duration.js";
import { BreakglassError } from "../core/errors.js";
import type { Connector, ConnectorGrantFacts, ConnectorResult, VerifyResult } from "../core/ports/connector.js";

const argv = z.array(z.string().min(1)).min(1).describe("Command and arguments, run without a shell");

export const execSettingsSchema = z
  .object({
    grant: argv.describe("Creates access for the grant's principal; must be idempotent"),
    revoke: argv.describe("Removes the principal's access; must succeed if it is already gone"),
    verify: argv.optional().describe("Exit 0 when access is really gone, non-zero when it still exists"),
    timeout: Duration.default("30s").describe("Longest a command may run before it is killed"),
    env: z.record(z.string(), z.string()).default({}).describe("Extra environment for every command"),
  })
  .strict();

export type ExecSettings = z.infer<typeof execSettingsSchema>;

const OUTPUT_LIMIT = 16 * 1024;

export interface ExecRun {
  readonly exitCode: number | null;
  readonly signal: string | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly durationMs: number;
  readonly timedOut: boolean;
}

/** Run one argv with a timeout; output beyond the limit is cut (and says so). */
export function runCommand(
  command: readonly string[],
  opts: { cwd: string; env: Record<string, string>; timeoutMs: number },
): Promise<ExecRun> {
  const [file, ...args] = command;
  if (!file) return Promise.reject(new BreakglassError("ERR_CONNECTOR_FAILED", "empty command"));
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, {
      cwd: opts.cwd,
      env: opts.env,
      stdio: ["ignore", "pipe", "pipe"],
      detached: true,
    });
    const out = { stdout: "", stderr: "" };
    // Output dropped past the limit: a first chunk of exactly OUTPUT_LIMIT bytes must still be marked.
    const dropped = { stdout: false, stderr: false };
    const collect = (key: "stdout" | "stderr") => (chunk: Buffer) => {
      if (out[key].length < OUTPUT_LIMIT) out[key] += chunk.toString("utf8");
      else dropped[key] = true;
    };
    child.stdout.on("data", collect("stdout"));
    child.stderr.on("data", collect("stderr"));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      // Kill the whole process group so a shell's children die too.
      if (child.pid !== undefined) {
        try {
          process.kill(-child.pid, "SIGKILL");
        } catch {
          child.kill("SIGKILL");
        }
      }
    }, opts.timeoutMs);
    child.on("error", (err) => {
      clearTimeout(timer);
      reject(new BreakglassError("ERR_CONNECTOR_FAILED", `cannot run ${file}: ${err.message}`, { command: file }));
    });
    child.on("close", (exitCode, signal) => {
      clearTimeout(timer);
      const cut = (key: "stdout" | "stderr") => {
        const s = out[key];
        return s.length > OUTPUT_LIMIT || dropped[key] ? `${s.slice(0, OUTPUT_LIMIT)}…[truncated]` : s;
      };
      resolve({
        exitCode,
        signal,
        stdout: cut("stdout"),
        stderr: cut("stderr"),
        durationMs: Math.round(performance.now() - started),
        timedOut,
      });
    });
  });
}

function describeRun(step: string, run: ExecRun): string {
  if (run.timedOut) return `${step} command timed out after ${run.durationMs} ms`;
  const why = run.exitCode === null ? `was killed by ${run.signal}` : `exited with ${run.exitCode}`;
  const tail = run.stderr.trim().split("\n").slice(-3).join(" | ");
  return `${step} command ${why}${tail ? `: ${tail}` : ""}`;
}

function runDetail(run: ExecRun): Record<string, unknown> {
  return { exitCode: run.exitCode, durationMs: run.durationMs, stdout: run.stdout, stderr: run.stderr };
}

export function createExecConnector(settings: ExecSettings, opts: { cwd: string }): Connector {
  const timeoutMs = parseDuration(settings.timeout) * 1000;

  const env = (facts: ConnectorGrantFacts, handle: Readonly<Record<string, unknown>>): Record<string, string> => ({
    PATH: process.env.PATH ?? "/usr/local/bin:/usr/bin:/bin",
    HOME: process.env.HOME ?? "/",
    ...settings.env,
    BREAKGLASS_GRANT_ID: facts.grantId,
    BREAKGLASS_USER: facts.requester,
    BREAKGLASS_ROLE: facts.role.id,
    BREAKGLASS_DOMAIN: facts.role.domain,
    BREAKGLASS_TARGET: facts.target.name,
    BREAKGLASS_INCIDENT: facts.incident,
    BREAKGLASS_ENDS_AT: new Date(facts.endsAt).toISOString(),
    BREAKGLASS_ENDS_AT_EPOCH: String(Math.floor(facts.endsAt / 1000)),
    BREAKGLASS_PRINCIPAL: String(handle.principal ?? ""),
    BREAKGLASS_GRANTS_JSON: JSON.stringify(facts.role.grants),
  });

  const step = async (
    name: "grant" | "revoke",
    facts: ConnectorGrantFacts,
    handle: Readonly<Record<string, unknown>>,
  ): Promise<ConnectorResult> => {
    const run = await runCommand(settings[name], { cwd: opts.cwd, env: env(facts, handle), timeoutMs });
    if (run.exitCode !== 0) {
      throw new BreakglassError("ERR_CONNECTOR_FAILED", describeRun(name, run), runDetail(run));
    }
    return { credential: null, detail: runDetail(run) };
  };

  return {
    timeoutMs,
    plan: (facts) => ({ principal: `bg_${facts.grantId}` }),
    grant: (facts, handle) => step("grant", facts, handle),
    revoke: (facts, handle) => step("revoke", facts, handle),
    async verify(facts, handle): Promise<VerifyResult> {
      if (!settings.verify) return { revoked: true, detail: { verified: false, note: "no verify command configured" } };
      const run = await runCommand(settings.verify, { cwd: opts.cwd, env: env(facts, handle), timeoutMs });
      if (run.timedOut || run.exitCode === null) {
        throw new BreakglassError("ERR_CONNECTOR_FAILED", describeRun("verify", run), runDetail(run));
      }
      return { revoked: run.exitCode === 0, detail: { verified: true, ...runDetail(run) } };
    },
  };
}
