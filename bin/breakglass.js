#!/usr/bin/env node
// The package's executable: the CLI is compiled to dist/ by `npm run build` (run by `npm ci`).
import { existsSync } from "node:fs";

const main = new URL("../dist/src/cli/main.js", import.meta.url);
if (!existsSync(main)) {
  // A clone without its build (`npm ci --ignore-scripts`, or dist/ deleted): say what to run.
  process.stderr.write(
    "error: the breakglass CLI is not built: dist/src/cli/main.js is missing; run `npm run build` in the repository (`npm ci` runs it) (ERR_NOT_BUILT)\n",
  );
  process.exit(5);
}
const { main: run } = await import(main.href);
process.exitCode = await run(process.argv.slice(2));
