/**
 * HTML → PDF with headless Chromium (`--print-to-pdf`), for the evidence report. Chromium is
 * found on PATH (`chromium`, `chromium-browser`, `google-chrome`) or at BREAKGLASS_CHROMIUM.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { BreakglassError } from "../core/errors.js";

const run = promisify(execFile);
const CANDIDATES = ["chromium", "chromium-browser", "google-chrome", "google-chrome-stable"];

async function findChromium(env: Readonly<Record<string, string | undefined>>): Promise<string> {
  if (env.BREAKGLASS_CHROMIUM) return env.BREAKGLASS_CHROMIUM;
  for (const name of CANDIDATES) {
    try {
      await run("sh", ["-c", `command -v ${name}`]);
      return name;
    } catch {
      // next
    }
  }
  throw new BreakglassError(
    "ERR_VALIDATION",
    "PDF needs Chromium: install it (Debian: apt-get install chromium) or set BREAKGLASS_CHROMIUM; --format html gives the same document to print",
  );
}

/** Headless Chromium that reaches nothing by itself (no updates, sync or background traffic). */
export const HEADLESS_CHROMIUM_ARGS: readonly string[] = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
];

export async function htmlToPdf(html: string, outFile: string, env = process.env): Promise<void> {
  const chromium = await findChromium(env);
  const dir = mkdtempSync(join(tmpdir(), "bg-report-"));
  try {
    const page = join(dir, "report.html");
    writeFileSync(page, html);
    await run(
      chromium,
      [
        ...HEADLESS_CHROMIUM_ARGS,
        `--user-data-dir=${join(dir, "profile")}`,
        "--no-pdf-header-footer",
        `--print-to-pdf=${outFile}`,
        `file://${page}`,
      ],
      { timeout: 120_000 },
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
