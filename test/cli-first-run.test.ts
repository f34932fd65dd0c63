/**
 * The first minutes with the CLI (issue 18), as real processes: usage errors in the same
 * `error: … (ERR_…)` style as every other error, with a "did you mean" for a mistyped option;
 * `server` without a configuration says how to name one; `npm run demo --port 9000` says where
 * the option went; the executable says what to run when the build is missing; `npm run demo`
 * builds only when the build is stale; and the demo stops when npm, its parent, is killed.
 */
import { type ChildProcess, spawn } from "node:child_process";
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ROOT, requireBuild, runCli } from "./support/broker-process.js";
import { until } from "./support/wait.js";

let dir: string;

beforeAll(() => {
  requireBuild();
  dir = mkdtempSync(join(tmpdir(), "bg-cli-first-run-"));
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Every line of stderr that starts with `error:` ends with a stable code in parentheses. */
function errorLines(stderr: string): string[] {
  return stderr.split("\n").filter((l) => l.startsWith("error:"));
}

describe("usage errors look like every other error", () => {
  it("an unknown option: lower case, quoted, the command named, a did-you-mean, ERR_USAGE, exit 2", async () => {
    const res = await runCli(["grants", "--rol", "x"]);
    expect(res.code).toBe(2);
    expect(errorLines(res.stderr)).toEqual([
      'error: unknown option "--rol" for `breakglass grants`; did you mean "--role"? (ERR_USAGE)',
    ]);
    expect(res.stderr).toContain("usage: breakglass grants");
  });

  it("an option without its value, a missing argument, an unknown command: all end with (ERR_USAGE)", async () => {
    const missingValue = await runCli(["request", "production/db-admin", "--reason"]);
    expect(errorLines(missingValue.stderr)).toEqual(['error: option "--reason" needs a value (ERR_USAGE)']);
    const missingArg = await runCli(["request"]);
    expect(errorLines(missingArg.stderr)).toEqual(["error: missing ROLE (ERR_USAGE)"]);
    const unknown = await runCli(["frob"]);
    expect(errorLines(unknown.stderr)).toEqual([
      'error: unknown command "frob"; run `breakglass help` for the list (ERR_USAGE)',
    ]);
    for (const r of [missingValue, missingArg, unknown]) expect(r.code).toBe(2);
  });
});

describe("server without a configuration", () => {
  it("says where it looked and how to name one: --config, BREAKGLASS_CONFIG, the example; exit 3", async () => {
    const res = await runCli(["server"], {}, { cwd: dir });
    expect(res.code).toBe(3);
    expect(errorLines(res.stderr)).toEqual([
      `error: no configuration file at ${join(dir, "breakglass.yaml")} (ERR_CONFIG_INVALID)`,
    ]);
    expect(res.stderr).toContain("--config FILE or the BREAKGLASS_CONFIG variable");
    expect(res.stderr).toContain(join(ROOT, "examples", "demo", "breakglass.yaml"));
    expect(res.stderr).toContain("breakglass demo");

    const fromEnv = await runCli(["server"], { BREAKGLASS_CONFIG: "nope.yaml" }, { cwd: dir });
    expect(errorLines(fromEnv.stderr)[0]).toBe(
      `error: no configuration file at ${join(dir, "nope.yaml")} (from BREAKGLASS_CONFIG) (ERR_CONFIG_INVALID)`,
    );
  });
});

describe("npm and the build", () => {
  it("`npm run demo --port 9000`: npm keeps --port; the error says to put it after --", async () => {
    const res = await run("npm", ["run", "demo", "--port", "9000"], { cwd: ROOT, timeoutMs: 300_000 });
    expect(res.code).not.toBe(0);
    expect(res.stderr).toContain('error: unexpected argument "9000" (ERR_USAGE)');
    expect(res.stderr).toContain(
      "npm kept --port for itself: put the options after `--`, as in `npm run demo -- --port VALUE`",
    );
  }, 300_000);

  it("the executable says what to run when the build is missing (exit 5)", async () => {
    const fake = join(dir, "nobuild");
    mkdirSync(join(fake, "bin"), { recursive: true });
    copyFileSync(join(ROOT, "bin", "breakglass.js"), join(fake, "bin", "breakglass.js"));
    const res = await run(process.execPath, [join(fake, "bin", "breakglass.js"), "roles"], { cwd: fake });
    expect(res.code).toBe(5);
    expect(res.stderr).toBe(
      "error: the breakglass CLI is not built: dist/src/cli/main.js is missing; run `npm run build` in the repository (`npm ci` runs it) (ERR_NOT_BUILT)\n",
    );
  });

  it("`npm run demo` builds only when the build is missing or older than a source", async () => {
    // A package with the real script and a `build` that only counts its runs.
    const pkg = join(dir, "stale");
    mkdirSync(join(pkg, "tools"), { recursive: true });
    mkdirSync(join(pkg, "src"), { recursive: true });
    copyFileSync(join(ROOT, "tools", "build-if-stale.js"), join(pkg, "tools", "build-if-stale.js"));
    writeFileSync(join(pkg, "src", "a.ts"), "export {};\n");
    const build = [
      "const fs = require('node:fs');",
      "fs.mkdirSync('dist/src/cli', { recursive: true }); fs.mkdirSync('dist/web', { recursive: true });",
      "fs.writeFileSync('dist/src/cli/main.js', ''); fs.writeFileSync('dist/web/index.html', '');",
      "fs.appendFileSync('builds.log', 'built\\n');",
    ].join(" ");
    writeFileSync(
      join(pkg, "package.json"),
      JSON.stringify({ name: "stale-check", private: true, scripts: { build: `node -e "${build}"` } }),
    );
    const builds = () => (existsSync(join(pkg, "builds.log")) ? readFileSync(join(pkg, "builds.log"), "utf8") : "");
    const check = () => run(process.execPath, [join(pkg, "tools", "build-if-stale.js")], { cwd: pkg });

    const first = await check();
    expect(first.code, first.stderr).toBe(0);
    expect(first.stderr).toContain("Building (dist/src/cli/main.js is missing)");
    expect(builds()).toBe("built\n");

    const fresh = await check(); // what `npm ci && npm run demo` does: `prepare` built it already
    expect(fresh.code).toBe(0);
    expect(fresh.stderr).toBe("");
    expect(builds()).toBe("built\n");

    const later = new Date(Date.now() + 60_000);
    utimesSync(join(pkg, "src", "a.ts"), later, later); // an edited source
    const edited = await check();
    expect(edited.stderr).toContain("Building (src changed since the last build)");
    expect(builds()).toBe("built\nbuilt\n");

    // And the real package runs it before the demo, with no unconditional build.
    const scripts = (
      JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { scripts: Record<string, string> }
    ).scripts;
    expect(scripts.demo).toBe("node tools/build-if-stale.js && exec node bin/breakglass.js demo");
    expect(scripts.prepare).toBe("npm run build");
  });
});

describe("the demo stops with its parent", () => {
  it("`npm run demo`, then npm killed (SIGKILL, nothing passed on): the broker exits and the port closes", async () => {
    const state = join(dir, "demo-state");
    const npm = spawn("npm", ["run", "demo", "--", "--dir", state, "--port", "0"], {
      cwd: ROOT,
      env: cleanEnv(),
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    npm.stdout?.on("data", (c: Buffer) => {
      stdout += c.toString("utf8");
    });
    npm.stderr?.on("data", (c: Buffer) => {
      stderr += c.toString("utf8");
    });
    try {
      const url = await until(
        "the demo to listen",
        () => /listening on (http:\/\/\S+)/.exec(stdout)?.[1] ?? null,
        300_000,
        100,
        () => `stdout: ${stdout}\nstderr: ${stderr}`,
      );
      expect((await fetch(`${url}/api/v1/health`)).ok).toBe(true);
      const broker = await until("the broker process", () => descendantRunning(npm, "breakglass.js"), 30_000, 100);
      npm.kill("SIGKILL");
      await until(
        "the broker to exit",
        () => (alive(broker) ? null : true),
        60_000,
        100,
        () => stderr,
      );
      expect(stderr).toContain("The process that started the demo has exited: stopping the demo.");
      await expect(fetch(`${url}/api/v1/health`, { signal: AbortSignal.timeout(5_000) })).rejects.toThrow();
      // Its state stayed in --dir, not in the repository.
      expect(existsSync(join(state, "breakglass.db"))).toBe(true);
    } finally {
      npm.kill("SIGKILL");
    }
  }, 400_000);
});

// ---------------------------------------------------------------------------------------------

function cleanEnv(): Record<string, string | undefined> {
  const env: Record<string, string | undefined> = { ...process.env };
  for (const key of Object.keys(env)) if (key.startsWith("BREAKGLASS_")) delete env[key];
  return env;
}

function run(
  cmd: string,
  args: readonly string[],
  opts: { cwd: string; timeoutMs?: number },
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, [...args], { cwd: opts.cwd, env: cleanEnv(), stdio: ["ignore", "pipe", "pipe"] });
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
      reject(new Error(`${cmd} ${args.join(" ")} did not finish\nstderr: ${stderr}`));
    }, opts.timeoutMs ?? 60_000);
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** /proc/PID/stat: [state, parent pid], or null when the process is gone. */
function procStat(pid: number): { state: string; ppid: number } | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const [state, ppid] = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return { state: state ?? "", ppid: Number(ppid) };
  } catch {
    return null;
  }
}

/** Running (a zombie waiting for its reaper has exited). */
function alive(pid: number): boolean {
  const s = procStat(pid);
  return s !== null && s.state !== "Z" && s.state !== "X";
}

/** A running descendant of `parent` whose command line contains `needle`. */
function descendantRunning(parent: ChildProcess, needle: string): number | null {
  const root = parent.pid;
  if (root === undefined) return null;
  const pids = readdirSync("/proc")
    .filter((p) => /^\d+$/.test(p))
    .map(Number);
  const under = new Set([root]);
  for (let grew = true; grew; ) {
    grew = false;
    for (const pid of pids) {
      const s = procStat(pid);
      if (s && under.has(s.ppid) && !under.has(pid)) {
        under.add(pid);
        grew = true;
      }
    }
  }
  for (const pid of under) {
    if (pid === root || !alive(pid)) continue;
    try {
      if (readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(needle)) return pid;
    } catch {
      // gone meanwhile
    }
  }
  return null;
}
