/**
 * Real processes for end-to-end tests: a broker started with `node bin/breakglass.js server`
 * (port 0 in its config; the URL is read from what it prints), and one-shot CLI runs.
 * Both use the build in dist/, so run `npm run build` first (`npm test` does).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { PATIENCE_MS } from "./wait.js";

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
export const BIN = join(ROOT, "bin", "breakglass.js");

/** Fail early, and say why, when the CLI has not been built. */
export function requireBuild(): void {
  if (!existsSync(join(ROOT, "dist", "src", "cli", "main.js"))) {
    throw new Error("dist/src/cli/main.js is missing: run `npm run build` before the end-to-end tests");
  }
}

export interface CliResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Run `breakglass ...args` to completion. */
export function runCli(
  args: readonly string[],
  env: Readonly<Record<string, string | undefined>> = {},
  options: { cwd?: string; timeoutMs?: number; input?: string; wrap?: readonly string[] } = {},
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    // `wrap`: run the CLI under another command, e.g. `unshare -rn` (no network at all).
    const [cmd, ...pre] = [...(options.wrap ?? []), process.execPath];
    const child = spawn(cmd as string, [...pre, BIN, ...args], {
      cwd: options.cwd ?? ROOT,
      env: { ...baseEnv(), ...env },
      stdio: [options.input === undefined ? "ignore" : "pipe", "pipe", "pipe"],
    });
    if (options.input !== undefined) child.stdin?.end(options.input);
    let stdout = "";
    let stderr = "";
    child.stdout?.on("data", (c: Buffer) => {
      stdout += c.toString("utf8");
    });
    child.stderr?.on("data", (c: Buffer) => {
      stderr += c.toString("utf8");
    });
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`breakglass ${args.join(" ")} did not finish in time\nstderr: ${stderr}`));
    }, options.timeoutMs ?? PATIENCE_MS);
    child.on("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** The test runner's environment without anything that would steer the CLI elsewhere. */
function baseEnv(): Record<string, string | undefined> {
  const env: Record<string, string | undefined> = { ...process.env };
  for (const key of Object.keys(env)) if (key.startsWith("BREAKGLASS_")) delete env[key];
  return env;
}

export interface BrokerProcess {
  /** Base URL, e.g. http://127.0.0.1:41234 */
  readonly url: string;
  readonly child: ChildProcess;
  output(): { stdout: string; stderr: string };
  /** SIGTERM and wait for the exit (SIGKILL after `graceMs`); returns the exit code. */
  stop(graceMs?: number): Promise<number | null>;
}

/**
 * Start `breakglass server --config FILE` (or `args`, e.g. a `demo`) in FILE's folder and wait
 * until /api/v1/health answers.
 */
export async function startBrokerProcess(
  configFile: string,
  options: {
    env?: Readonly<Record<string, string>>;
    timeoutMs?: number;
    args?: readonly string[];
    /** Run under another command that ends by exec'ing its arguments (e.g. `unshare -rm sh -c …`). */
    wrap?: readonly string[];
  } = {},
): Promise<BrokerProcess> {
  requireBuild();
  const timeoutMs = options.timeoutMs ?? PATIENCE_MS;
  const [cmd, ...pre] = [...(options.wrap ?? []), process.execPath];
  const child = spawn(cmd as string, [...pre, BIN, ...(options.args ?? ["server", "--config", configFile])], {
    cwd: dirname(configFile),
    env: { ...baseEnv(), BREAKGLASS_LOG_LEVEL: "warn", ...options.env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout?.on("data", (c: Buffer) => {
    stdout += c.toString("utf8");
  });
  child.stderr?.on("data", (c: Buffer) => {
    stderr += c.toString("utf8");
  });
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  let exitCode: number | null | undefined;
  void exited.then((code) => {
    exitCode = code;
  });

  const stop = async (graceMs = 10_000): Promise<number | null> => {
    if (exitCode !== undefined) return exitCode;
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
    try {
      return await exited;
    } finally {
      clearTimeout(timer);
    }
  };

  const deadline = Date.now() + timeoutMs;
  let url: string | undefined;
  while (Date.now() < deadline) {
    if (exitCode !== undefined) {
      throw new Error(`the broker exited with ${exitCode} before it was ready\nstdout: ${stdout}\nstderr: ${stderr}`);
    }
    url ??= /listening on (http:\/\/\S+)/.exec(stdout)?.[1];
    if (url !== undefined && (await healthy(url))) {
      const base = url;
      return { url: base, child, output: () => ({ stdout, stderr }), stop };
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  await stop(1_000);
  throw new Error(`the broker was not ready within ${timeoutMs} ms\nstdout: ${stdout}\nstderr: ${stderr}`);
}

async function healthy(url: string): Promise<boolean> {
  try {
    const res = await fetch(`${url}/api/v1/health`, { signal: AbortSignal.timeout(10_000) });
    return res.ok;
  } catch {
    return false;
  }
}
