/**
 * The web console's end-to-end tests share this: Debian's Chromium through playwright-core,
 * axe-core on a page as it is, screenshots checked to be real PNGs, and a watch on every page
 * for console errors, page errors and failed requests (a route the console calls that the broker
 * does not have shows up here as a failed request).
 */
import { mkdirSync, readFileSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { type Browser, chromium, type Page } from "playwright-core";
import { expect } from "vitest";
import { HEADLESS_CHROMIUM_ARGS } from "../../src/audit/pdf.js";

export const CHROMIUM = process.env.BREAKGLASS_CHROMIUM ?? "/usr/bin/chromium";
const AXE = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");

export const DESKTOP = { width: 1280, height: 900 } as const;
export const PHONE = { width: 390, height: 844 } as const;

export function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, args: [...HEADLESS_CHROMIUM_ARGS] });
}

/** axe-core on the page as it is: no serious or critical violation. */
export async function accessible(page: Page, what: string): Promise<void> {
  const result = (await page.evaluate(`${AXE}\n;axe.run(document, { resultTypes: ["violations"] })`)) as {
    violations: { id: string; impact: string | null; nodes: { target: string[] }[] }[];
  };
  const serious = result.violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  expect(
    serious.map((v) => `${what}: ${v.id} (${v.impact}) at ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`),
  ).toEqual([]);
}

/** A full-page screenshot in `dir`, checked to be a PNG of a page rather than a blank canvas. */
export async function shot(page: Page, dir: string, name: string): Promise<void> {
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  const png = readFileSync(file);
  expect(png.subarray(1, 4).toString()).toBe("PNG");
  expect(statSync(file).size).toBeGreaterThan(8_000);
}

/** A refusal a test provokes on purpose: it allows one such failed request in the console. */
export interface ExpectedRefusal {
  readonly user: string;
  readonly path: string;
  readonly status: number;
}

/**
 * Watch a page for console errors (Chromium logs every failed request as one), page errors and
 * CSP violations; each goes to `problems` unless it is a refusal declared in `expected` (used up)
 * or the signed-out app's first question (GET /auth/session answered 401).
 */
export function watchPage(
  page: Page,
  user: string,
  base: string,
  problems: string[],
  expected: ExpectedRefusal[] = [],
): void {
  page.on("console", (m) => {
    if (m.type() !== "error") return;
    if (m.text().includes("status of 401") && m.location().url === `${base}/api/v1/auth/session`) return;
    const i = expected.findIndex(
      (r) =>
        r.user === user && m.location().url === `${base}/api/v1${r.path}` && m.text().includes(`status of ${r.status}`),
    );
    if (i >= 0) {
      expected.splice(i, 1);
      return;
    }
    problems.push(`${user} console: ${m.text()} (${m.location().url})`);
  });
  page.on("pageerror", (e) => problems.push(`${user} page error: ${e.message}`));
}

/** How far the page is wider than the window (0 or less: no sideways scrolling). */
export function overflowX(page: Page): Promise<number> {
  return page.evaluate("document.documentElement.scrollWidth - window.innerWidth") as Promise<number>;
}

/**
 * The cells of the column headed `header`, in every table on the page: each must lie inside the
 * window (seen without scrolling sideways). Returns how many were checked.
 */
export async function columnVisible(page: Page, header: string): Promise<number> {
  const out = (await page.evaluate(`(() => {
    const width = window.innerWidth;
    const bad = [];
    let seen = 0;
    for (const cell of document.querySelectorAll('td[data-label="${header}"]')) {
      const r = cell.getBoundingClientRect();
      if (r.width === 0 && r.height === 0) continue;
      seen++;
      if (r.left < 0 || r.right > width + 0.5) bad.push(cell.textContent + " at " + Math.round(r.left) + "-" + Math.round(r.right));
    }
    for (const box of document.querySelectorAll('.scroll')) {
      if (box.scrollWidth > box.clientWidth + 1) bad.push("a table scrolls sideways (" + box.scrollWidth + " > " + box.clientWidth + ")");
    }
    return { seen, bad };
  })()`)) as { seen: number; bad: string[] };
  expect(out.bad, `column ${header}`).toEqual([]);
  return out.seen;
}
