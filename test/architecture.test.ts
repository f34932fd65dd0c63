/**
 * The folder rules of docs/architecture.md hold: no import between src folders runs upward or
 * sideways, no file import cycle, and biome.json's per-folder import restrictions (which refuse
 * such an import while editing) are the ones tools/arch-figures.js derives from its rank table.
 * And tests start brokers, wait and act through test/support (docs/architecture.md, "A test").
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { expect, it } from "vitest";
// @ts-expect-error: a plain JavaScript tool without type declarations
import { brokerYamlsIn, isContextLiteral } from "../tools/arch-figures.js";

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

it("has every test start its broker through the typed fixture, wait with wait.ts and act with ctx.ts", () => {
  const f = run("--json") as {
    brokerYamls: { documents: number; list: string[]; kept: { list: string[] } };
    tests: { createBroker: string[]; waits: string[]; contexts: string[] };
  };
  expect(f.brokerYamls.list).toEqual([]);
  expect(f.tests.createBroker).toEqual([]);
  expect(f.tests.waits).toEqual([]);
  expect(f.tests.contexts).toEqual([]);
  // Kept by hand only with a reason.
  for (const kept of f.brokerYamls.kept.list) expect(kept).toMatch(/\(\S.*\)$/);
});

it("counts a configuration written as a template literal, and keeps apart one marked with why", () => {
  const [tick, hole] = ["`", "$"];
  const text = [
    "const re = /`[^`]*`/; // a regular expression, not a template",
    `const a = ${tick}version: 1`,
    "server: { host: 127.0.0.1, port: 0 }",
    `domains: { production: { roles: {} } }${tick};`,
    `const b = ${tick}${hole}{SQLITE_BROKER_HEADER}users: { alice: {} }${tick};`,
    `const c = ${tick}gateway: session cut ${hole}{ms} ms after the revoke${tick};`,
    "// yaml-under-test: the loader's line numbers",
    `const d = ${tick}version: 1`,
    `users: {}${tick};`,
  ].join("\n");
  expect(brokerYamlsIn(text)).toEqual([
    { line: 2, kept: null },
    { line: 5, kept: null },
    { line: 8, kept: "the loader's line numbers" },
  ]);
});

it("tells a RequestContext built by hand from an audit event's expected fields", () => {
  const hole = "$";
  expect(isContextLiteral('const system = { actor: "system", requestId: null, sourceAddress: null };')).toBe(true);
  expect(isContextLiteral("const as = (actor: string) => ({ actor, requestId: null, sourceAddress: null });")).toBe(
    true,
  );
  expect(isContextLiteral(`const c = { actor: \`u${hole}{round}\`, requestId: null, sourceAddress: null };`)).toBe(
    true,
  );
  expect(
    isContextLiteral('expect(event).toMatchObject({ actor: "bob", requestId: "r1", sourceAddress: "10.0.0.1" });'),
  ).toBe(false);
  expect(isContextLiteral('  { actor: "alice", grantId: g.id, requestId: "r-1", sourceAddress: "10.0.0.9" },')).toBe(
    false,
  );
});
