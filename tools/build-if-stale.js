#!/usr/bin/env node
// `npm run demo` builds only when the build in dist/ is missing or older than its sources.
// `npm ci` already built it (the `prepare` script): a fresh clone's `npm ci && npm run demo`
// builds once, and someone who edited a source file still gets a fresh build.
//
// The build's time is the older of its two outputs (the compiled CLI and the web console),
// each rewritten by every build; a source is anything the build reads.
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const OUTPUTS = ["dist/src/cli/main.js", "dist/web/index.html"];
const SOURCES = ["src", "web", "tsconfig.json", "tsconfig.build.json", "package-lock.json"];

/** The newest modification time under `path` (a file or a folder), 0 when it does not exist. */
function newest(path) {
  let stat;
  try {
    stat = statSync(path);
  } catch {
    return 0;
  }
  if (!stat.isDirectory()) return stat.mtimeMs;
  let max = stat.mtimeMs; // a deleted file shows as a newer folder
  for (const entry of readdirSync(path)) {
    if (entry === "node_modules") continue;
    max = Math.max(max, newest(join(path, entry)));
  }
  return max;
}

function staleReason() {
  const missing = OUTPUTS.find((o) => !existsSync(join(root, o)));
  if (missing) return `${missing} is missing`;
  const builtAt = Math.min(...OUTPUTS.map((o) => statSync(join(root, o)).mtimeMs));
  const changed = SOURCES.find((s) => newest(join(root, s)) > builtAt);
  return changed ? `${changed} changed since the last build` : null;
}

const reason = staleReason();
if (reason === null) {
  process.exit(0);
}
process.stderr.write(`Building (${reason})…\n`);
const npm = process.env.npm_execpath;
const build = npm
  ? spawnSync(process.execPath, [npm, "run", "build"], { cwd: root, stdio: "inherit" })
  : spawnSync("npm", ["run", "build"], { cwd: root, stdio: "inherit" });
process.exit(build.status ?? 1);
