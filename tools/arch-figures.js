#!/usr/bin/env node
/**
 * The house's figures, computed from the source (issue 21): the largest port, the largest source
 * file, imports that run upward between src folders, import cycles between files, and the broker
 * configurations written by hand in tests.
 *
 *   node tools/arch-figures.js          # the figures as text
 *   node tools/arch-figures.js --json   # the same as JSON (test/architecture.test.ts reads it)
 *
 * Folder ranks: a folder may import its own files and folders of a lower rank, nothing else.
 * The same table is written out per folder as `noRestrictedImports` overrides in biome.json, so the
 * linter refuses an upward import while typing; this script counts them and test/architecture.test.ts
 * keeps the two in agreement. Type-only imports count: they still say which room knows about which.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");

/** Lower imports nothing above it. The root files `app.ts`, `wiring.ts` are named like folders. */
export const FOLDER_RANKS = {
  core: 0,
  contract: 1,
  adapters: 1,
  metrics: 1,
  secrets: 2,
  config: 3,
  store: 4,
  audit: 4,
  vault: 4,
  guardrail: 4,
  connectors: 5,
  gateway: 5,
  alarms: 6,
  auth: 6,
  service: 7,
  workers: 8,
  http: 9,
  wiring: 10,
  background: 11,
  app: 12,
  cli: 13,
};

function walk(dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out.push(...walk(path));
    else if (name.endsWith(".ts")) out.push(path);
  }
  return out;
}

const isTest = (file) => file.endsWith(".test.ts");

/** The folder of a file under src/: its first path segment, or the root file's name. */
export function folderOf(file) {
  const rel = relative(join(ROOT, "src"), file).split("/");
  return rel.length === 1 ? rel[0].replace(/\.ts$/, "") : rel[0];
}

const IMPORT_RE =
  /(?:^|\n)\s*(?:import|export)\s(?:[^;"']*?\sfrom\s)?["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)/g;

function importsOf(file) {
  const text = readFileSync(file, "utf8");
  const out = [];
  for (const m of text.matchAll(IMPORT_RE)) {
    const spec = m[1] ?? m[2];
    if (!spec?.startsWith(".")) continue;
    const target = resolve(dirname(file), spec.replace(/\.js$/, ".ts"));
    out.push(target);
  }
  return out;
}

function countLines(file) {
  return readFileSync(file, "utf8").split("\n").length - 1;
}

/** Members of each `export interface X { ... }` in a file that are methods (`name(` or `name: (`). */
function interfaceMethods(file) {
  const text = readFileSync(file, "utf8");
  const out = {};
  for (const m of text.matchAll(/export interface (\w+)(?:<[^>]*>)?(?: extends ([^{]+))?\s*\{/g)) {
    let depth = 1;
    let i = m.index + m[0].length;
    const start = i;
    while (depth > 0 && i < text.length) {
      if (text[i] === "{") depth++;
      else if (text[i] === "}") depth--;
      i++;
    }
    const body = text.slice(start, i - 1);
    // Only top-level members: strip nested braces and comments first.
    let flat = body.replace(/\/\*[\s\S]*?\*\//g, "").replace(/\/\/.*$/gm, "");
    for (let prev = ""; prev !== flat; ) {
      prev = flat;
      flat = flat.replace(/\{[^{}]*\}/g, "{}");
    }
    const methods = flat.match(/^\s*(?:readonly\s+)?\w+\??(?:<[^>]*>)?\s*(?:\(|:\s*\()/gm) ?? [];
    out[m[1]] = { methods: methods.length, extends: m[2]?.trim() ?? null };
  }
  return out;
}

function cycles(graph) {
  // Tarjan's strongly connected components; a component of two or more files is a cycle.
  let index = 0;
  const stack = [];
  const on = new Set();
  const idx = new Map();
  const low = new Map();
  const out = [];
  const visit = (v) => {
    idx.set(v, index);
    low.set(v, index);
    index++;
    stack.push(v);
    on.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!graph.has(w)) continue;
      if (!idx.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v), low.get(w)));
      } else if (on.has(w)) low.set(v, Math.min(low.get(v), idx.get(w)));
    }
    if (low.get(v) === idx.get(v)) {
      const scc = [];
      let w;
      do {
        w = stack.pop();
        on.delete(w);
        scc.push(w);
      } while (w !== v);
      if (scc.length > 1) out.push(scc.map((f) => relative(ROOT, f)).sort());
    }
  };
  for (const v of graph.keys()) if (!idx.has(v)) visit(v);
  return out;
}

/** Template literals in test files that are a whole broker configuration (`version: 1` … `domains:`). */
function handWrittenBrokerYamls() {
  const files = [...walk(join(ROOT, "test")), ...walk(join(ROOT, "src"))].filter(
    (f) => isTest(f) && !f.includes("/test/support/"),
  );
  let documents = 0;
  const inFiles = [];
  for (const file of files) {
    const text = readFileSync(file, "utf8");
    const found = [...text.matchAll(/`[^`]*?version: 1[^`]*?`/g)].filter((m) => /\bdomains:|\broles:/.test(m[0]));
    if (found.length > 0) {
      documents += found.length;
      inFiles.push(relative(ROOT, file));
    }
  }
  return { documents, files: inFiles.length, list: inFiles };
}

export function figures() {
  const src = walk(join(ROOT, "src")).filter((f) => !isTest(f) && !f.endsWith("test-fixtures.ts"));
  const graph = new Map(src.map((f) => [f, importsOf(f)]));

  const upward = [];
  const unranked = new Set();
  for (const [file, targets] of graph) {
    const from = folderOf(file);
    for (const target of targets) {
      if (!target.startsWith(join(ROOT, "src"))) continue;
      const to = folderOf(target);
      if (to === from) continue;
      const rf = FOLDER_RANKS[from];
      const rt = FOLDER_RANKS[to];
      if (rf === undefined) unranked.add(from);
      if (rt === undefined) unranked.add(to);
      if (rf !== undefined && rt !== undefined && rt >= rf) {
        upward.push(`${relative(ROOT, file)} -> ${relative(ROOT, target)} (${from} -> ${to})`);
      }
    }
  }

  const sizes = src.map((f) => ({ file: relative(ROOT, f), lines: countLines(f) })).sort((a, b) => b.lines - a.lines);
  const portFiles = src.filter((f) => /\/core\/(ports|.*-port|.*-ports)\.ts$/.test(f) || f.includes("/core/ports/"));
  const ports = [];
  for (const f of portFiles) {
    for (const [name, info] of Object.entries(interfaceMethods(f))) {
      ports.push({ port: name, file: relative(ROOT, f), methods: info.methods, extends: info.extends });
    }
  }
  // A port that extends another carries the other's methods too.
  const byName = new Map(ports.map((p) => [p.port, p]));
  const total = (p, seen = new Set()) => {
    if (seen.has(p.port)) return 0;
    seen.add(p.port);
    let n = p.methods;
    for (const parent of (p.extends ?? "").split(",").map((s) => s.trim().replace(/<.*$/, ""))) {
      const q = byName.get(parent);
      if (q) n += total(q, seen);
    }
    return n;
  };
  for (const p of ports) p.withInherited = total(p);
  ports.sort((a, b) => b.withInherited - a.withInherited);

  return {
    largestPort: ports[0] ?? null,
    ports: ports.slice(0, 8),
    largestFiles: sizes.slice(0, 8),
    upwardImports: upward.length,
    upward,
    unrankedFolders: [...unranked],
    cycles: cycles(graph),
    brokerYamls: handWrittenBrokerYamls(),
  };
}

/**
 * The folder rules as biome.json `overrides`: per folder, every folder of the same or a higher rank
 * is a restricted import. `node tools/arch-figures.js --biome` prints them; biome.json holds them
 * and test/architecture.test.ts checks the two agree. (core keeps its own, stricter, override.)
 */
export function biomeOverrides() {
  const names = Object.keys(FOLDER_RANKS);
  const isRootFile = (name) => name === "app" || name === "wiring";
  return names
    .filter((from) => from !== "core")
    .map((from) => {
      const banned = names.filter((to) => to !== from && FOLDER_RANKS[to] >= FOLDER_RANKS[from]);
      const prefixes = isRootFile(from) ? ["./"] : ["../", "../../"];
      const group = banned.flatMap((to) => prefixes.map((p) => (isRootFile(to) ? `${p}${to}.js` : `${p}${to}/**`)));
      const mayImport = names.filter((to) => to !== from && FOLDER_RANKS[to] < FOLDER_RANKS[from]);
      return {
        includes: isRootFile(from) ? [`src/${from}.ts`] : [`src/${from}/**`, "!**/*.test.ts"],
        linter: {
          rules: {
            style: {
              noRestrictedImports: {
                level: "error",
                options: {
                  patterns: [
                    {
                      group,
                      message: `${from} may import only ${mayImport.join(", ")} (docs/architecture.md): this import runs upward or sideways`,
                    },
                  ],
                },
              },
            },
          },
        },
      };
    });
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  if (process.argv.includes("--biome")) {
    console.log(JSON.stringify(biomeOverrides(), null, 2));
    process.exit(0);
  }
  const f = figures();
  if (process.argv.includes("--json")) {
    console.log(JSON.stringify(f, null, 2));
  } else {
    const lp = f.largestPort;
    console.log(`largest port: ${lp ? `${lp.port} (${lp.file}) ${lp.withInherited} methods` : "none"}`);
    for (const p of f.ports) console.log(`  ${p.port}: ${p.methods} own, ${p.withInherited} with inherited`);
    console.log(`largest source file: ${f.largestFiles[0]?.file} (${f.largestFiles[0]?.lines} lines)`);
    for (const s of f.largestFiles.slice(1)) console.log(`  ${s.file}: ${s.lines}`);
    console.log(`upward imports between src folders: ${f.upwardImports}`);
    for (const u of f.upward) console.log(`  ${u}`);
    if (f.unrankedFolders.length > 0) console.log(`unranked folders: ${f.unrankedFolders.join(", ")}`);
    console.log(`import cycles: ${f.cycles.length}`);
    for (const c of f.cycles) console.log(`  ${c.join(" <-> ")}`);
    console.log(`hand-written broker YAMLs in tests: ${f.brokerYamls.documents} in ${f.brokerYamls.files} files`);
  }
}
