/**
 * The background thread runs expiry, revocation and alarm delivery (ADR 0008). A broker whose
 * thread has died would keep granting access that nothing ends, so the process exits with 70 and a
 * supervisor starts it again. Here a real broker (the build in dist/, as `breakglass server` builds
 * it, with the default death handler) loses its thread and must exit with 70, saying why; and a
 * broker told to handle the death itself (`onBackgroundDeath`) is told, with the reason.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { afterEach, beforeAll, expect, it } from "vitest";
import { ROOT, requireBuild } from "./support/broker-process.js";
import { writeTestConfig } from "./support/test-broker.js";
import { PATIENCE_MS } from "./support/wait.js";

const dist = (path: string) => pathToFileURL(join(ROOT, "dist", "src", path)).href;

/**
 * A broker process with a background thread, started; on a line `kill` on stdin its thread is
 * terminated from outside. `handler`: pass an `onBackgroundDeath` that prints the reason and exits 0.
 */
const SCRIPT = (configFile: string, handler: boolean) => `
import { createInterface } from "node:readline";
const { loadConfigFile } = await import(${JSON.stringify(dist("config/load-config.js"))});
const { connectorConfigChecks } = await import(${JSON.stringify(dist("connectors/registry.js"))});
const { spawnBackgroundThread } = await import(${JSON.stringify(dist("background/thread-client.js"))});
const { createBroker } = await import(${JSON.stringify(dist("app.js"))});
const thread = spawnBackgroundThread();
const config = loadConfigFile(${JSON.stringify(configFile)}, { ...connectorConfigChecks, env: {} });
const broker = await createBroker(config, {
  backgroundThread: thread,
  ${handler ? `onBackgroundDeath: (reason) => { console.log("told: " + reason); process.exit(0); },` : ""}
});
await broker.start();
console.log("started");
createInterface({ input: process.stdin }).on("line", (line) => {
  if (line === "kill") void thread.worker.terminate();
});
`;

let dir = "";
beforeAll(() => requireBuild());
afterEach(() => {
  if (dir !== "") rmSync(dir, { recursive: true, force: true });
  dir = "";
});

function runBroker(handler: boolean): Promise<{ code: number | null; stdout: string; stderr: string }> {
  dir = mkdtempSync(join(tmpdir(), "bg-thread-death-"));
  const { file } = writeTestConfig({ dir });
  const script = join(dir, "broker.mjs");
  writeFileSync(script, SCRIPT(file, handler));
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [script], {
      cwd: dir,
      stdio: ["pipe", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`the broker did not exit after its thread was killed\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, PATIENCE_MS);
    child.stdout.on("data", (c: Buffer) => {
      stdout += c.toString("utf8");
      // Only once it runs: the thread is then the broker's, not one still loading.
      if (stdout.includes("started\n") && !stdout.includes("killing")) {
        stdout += "killing\n";
        child.stdin.write("kill\n");
      }
    });
    child.stderr.on("data", (c: Buffer) => {
      stderr += c.toString("utf8");
    });
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

it("exits with 70, saying the background thread died, when the thread is gone (default handler)", async () => {
  const r = await runBroker(false);
  expect(r.stdout, r.stderr).toContain("started");
  expect(r.code, `stdout: ${r.stdout}\nstderr: ${r.stderr}`).toBe(70);
  expect(r.stderr + r.stdout).toContain("the background thread died");
  expect(r.stderr + r.stdout).toContain("the background thread exited (1)");
});

it("tells onBackgroundDeath why, when the broker handles the death itself", async () => {
  const r = await runBroker(true);
  expect(r.code, `stdout: ${r.stdout}\nstderr: ${r.stderr}`).toBe(0);
  expect(r.stdout).toContain("told: the background thread exited (1)");
});
