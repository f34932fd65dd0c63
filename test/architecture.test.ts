/**
 * The folder rules of docs/architecture.md hold: no import between src folders runs upward or
 * sideways, no file import cycle, and biome.json's per-folder import restrictions (which refuse
 * such an import while editing) are the ones tools/arch-figures.js derives from its rank table.
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { expect, it } from "vitest";

const run = (flag: string): unknown =>
  JSON.parse(execFileSync(process.execPath, ["tools/arch-figures.js", flag], { encoding: "utf8" }));

it("has no upward import, no import cycle, and every src folder ranked", () => {
  const f = run("--json") as { upward: string[]; cycles: string[][]; unrankedFolders: string[] };
  expect(f.upward).toEqual([]);
  expect(f.cycles).toEqual([]);
  expect(f.unrankedFolders).toEqual([]);
});

it("keeps biome.json's folder import rules in step with the rank table", () => {
  const biome = JSON.parse(readFileSync("biome.json", "utf8")) as { overrides: unknown[] };
  expect(biome.overrides.slice(2)).toEqual(run("--biome"));
});
