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

/**
 * The template literals of a TypeScript file, found by scanning it (strings, comments, regular
 * expressions and `${…}` nesting respected): each with its first and last line, its static text
 * (each expression replaced by HOLE) and the source of its expressions.
 */
const HOLE = "«expr»";
export function templateLiterals(text) {
  const out = [];
  let i = 0;
  let lastSignificant = "";
  const lineAt = (at) => text.slice(0, at).split("\n").length;
  const regexMayStart = () => lastSignificant === "" || /[(,=:[!&|?{};+\-*%<>~^]$/.test(lastSignificant);
  // Scans code until `stop` (a `}` closing a template expression at depth 0) or the end.
  const code = (stopAtBrace) => {
    let depth = 0;
    const startAt = i;
    while (i < text.length) {
      const c = text[i];
      const n = text[i + 1];
      if (c === "/" && n === "/") {
        i = text.indexOf("\n", i);
        if (i < 0) i = text.length;
      } else if (c === "/" && n === "*") {
        i = text.indexOf("*/", i + 2);
        i = i < 0 ? text.length : i + 2;
      } else if (c === '"' || c === "'") {
        i++;
        while (i < text.length && text[i] !== c) i += text[i] === "\\" ? 2 : 1;
        i++;
        lastSignificant = c;
      } else if (c === "`") {
        template();
        lastSignificant = "`";
      } else if (c === "/" && regexMayStart()) {
        i++;
        let inClass = false;
        while (i < text.length && (inClass || text[i] !== "/") && text[i] !== "\n") {
          if (text[i] === "\\") i++;
          else if (text[i] === "[") inClass = true;
          else if (text[i] === "]") inClass = false;
          i++;
        }
        i++;
        lastSignificant = "/";
      } else {
        if (c === "{") depth++;
        if (c === "}") {
          if (depth === 0 && stopAtBrace) return text.slice(startAt, i);
          depth--;
        }
        if (!/\s/.test(c)) {
          // Words like `return` or `typeof` may be followed by a regular expression.
          const word = /^[A-Za-z_$][\w$]*/.exec(text.slice(i))?.[0];
          if (word) {
            lastSignificant = /^(return|typeof|case|of|in|yield|await)$/.test(word) ? ";" : word;
            i += word.length;
            continue;
          }
          lastSignificant = c;
        }
        i++;
      }
    }
    return text.slice(startAt, i);
  };
  const template = () => {
    const at = i;
    i++;
    let staticText = "";
    const expressions = [];
    while (i < text.length && text[i] !== "`") {
      if (text[i] === "\\") {
        staticText += text.slice(i, i + 2);
        i += 2;
      } else if (text[i] === "$" && text[i + 1] === "{") {
        i += 2;
        lastSignificant = "{";
        expressions.push(code(true));
        staticText += HOLE;
        i++;
      } else {
        staticText += text[i];
        i++;
      }
    }
    i++;
    out.push({ line: lineAt(at), endLine: lineAt(i - 1), text: staticText, expressions });
  };
  code(false);
  return out;
}

/** The top-level keys of a broker configuration file (contract/config-schema.ts). */
const CONFIG_KEYS =
  /^(version|server|storage|audit|secrets|alarms|auth|gateway|workers|users|groups|admin_groups|domains|targets|drills|vault)\s*:/gm;
/** Support code that hands a test the start of a configuration to write more YAML after. */
const YAML_HEADERS = /^\s*(SQLITE_BROKER_HEADER|testConfigYaml\b)/;

/**
 * Why a hand-written configuration is kept, when its subject is the YAML text itself: a comment
 * `// yaml-under-test: <reason>` on the line before the literal (or on its first line).
 */
const KEPT_RE = /\/\/\s*yaml-under-test:\s*(\S.*)$/;

/** Is this template literal a broker configuration (or the rest of one after a support header)? */
function isBrokerYaml(t) {
  const keys = new Set([...t.text.matchAll(CONFIG_KEYS)].map((m) => m[1]));
  const afterHeader = t.text.startsWith(HOLE) && YAML_HEADERS.test(t.expressions[0] ?? "");
  return afterHeader || (keys.has("version") && keys.size >= 2) || keys.size >= 3;
}

/** The broker configurations written as template literals in a file's text: their line, and why one is kept. */
export function brokerYamlsIn(text) {
  const lines = text.split("\n");
  return templateLiterals(text)
    .filter(isBrokerYaml)
    .map((t) => ({
      line: t.line,
      kept: [lines[t.line - 2], lines[t.line - 1]].map((l) => KEPT_RE.exec(l ?? "")?.[1]).find(Boolean) ?? null,
    }));
}

/**
 * Broker configurations written by hand in tests (template literals that are a configuration
 * file, or that append YAML to a support header), split into those still to move onto the typed
 * fixture (test/support/test-broker.ts) and those kept because the YAML text is what they test.
 */
function handWrittenBrokerYamls(files) {
  const counted = { documents: 0, list: [] };
  const kept = { documents: 0, list: [] };
  for (const file of files) {
    const rel = relative(ROOT, file);
    for (const y of brokerYamlsIn(readFileSync(file, "utf8"))) {
      const into = y.kept ? kept : counted;
      into.documents++;
      into.list.push(y.kept ? `${rel}:${y.line} (${y.kept})` : `${rel}:${y.line}`);
    }
  }
  const fileCount = (list) => new Set(list.map((l) => l.replace(/:\d+.*$/, ""))).size;
  return {
    documents: counted.documents,
    files: fileCount(counted.list),
    list: counted.list,
    kept: { documents: kept.documents, files: fileCount(kept.list), list: kept.list },
  };
}

/**
 * What test files do their own way instead of through test/support: calling `createBroker`
 * (instead of `startTestBroker`), defining a wait helper or a deadline poll loop, or waiting with
 * vitest's own (instead of wait.ts), and building a request context by hand (instead of ctx.ts).
 */
const CONTEXT_KEYS = new Set(["actor", "requestId", "sourceAddress"]);
/** Does a line build a RequestContext by hand (an object of actor, requestId, sourceAddress alone)? */
export function isContextLiteral(line) {
  if (/\bexpect\(/.test(line)) return false;
  return [...line.replace(/\$\{[^{}]*\}/g, "x").matchAll(/\{([^{}]*)\}/g)].some((m) => {
    const keys = m[1]
      .split(",")
      .map((p) => /^\s*(\w+)\s*(?::|$)/.exec(p)?.[1])
      .filter(Boolean);
    return keys.includes("actor") && keys.includes("requestId") && keys.every((k) => CONTEXT_KEYS.has(k));
  });
}

function testHarnessFigures(files) {
  const hits = (re, where = () => true) => {
    const list = [];
    for (const file of files) {
      const text = readFileSync(file, "utf8");
      const templates = templateLiterals(text);
      text.split("\n").forEach((line, n) => {
        if (re.test(line) && where(templates, n + 1, line)) list.push(`${relative(ROOT, file)}:${n + 1}`);
      });
    }
    return list;
  };
  const inTemplate = (templates, line) => templates.some((t) => t.line < line && line <= t.endLine);
  const fileCount = (list) => new Set(list.map((l) => l.replace(/:\d+$/, ""))).size;
  const createBroker = hits(/\bcreateBroker\(/, (templates, line) => !inTemplate(templates, line));
  // The text of a script a test runs as a process of its own (e.g. with a background thread it
  // holds): that process builds its broker itself, from a file the test wrote.
  const createBrokerInScripts = hits(/\bcreateBroker\(/, inTemplate);
  const waits = hits(
    /(?:function\s+|(?:const|let)\s+)(?:until|waitFor\w*|waitUntil|eventually|poll\w*|sleep|delay)\b\s*(?:=\s*(?:async\s*)?\(|<|\()|\bdeadline\s*=\s*Date\.now\(\)|\bvi\.wait(?:For|Until)\(/,
  );
  // A RequestContext built by hand: an object of `actor`, `requestId` and `sourceAddress` alone (an
  // expectation about an audit event has the same keys: lines asserting with expect() are not counted).
  const ctxs = hits(/\{\s*actor\s*[:,]/, (_t, _line, text) => isContextLiteral(text));
  return {
    createBrokerFiles: fileCount(createBroker),
    createBroker,
    createBrokerInScripts,
    localWaits: waits.length,
    waits,
    localContexts: ctxs.length,
    contexts: ctxs,
  };
}

export function figures() {
  const testFiles = [...walk(join(ROOT, "test")), ...walk(join(ROOT, "src"))].filter(
    (f) => isTest(f) && !f.includes("/test/support/"),
  );
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
    brokerYamls: handWrittenBrokerYamls(testFiles),
    tests: testHarnessFigures(testFiles),
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
    const y = f.brokerYamls;
    console.log(`hand-written broker YAMLs in tests: ${y.documents} in ${y.files} files`);
    for (const l of y.list) console.log(`  ${l}`);
    console.log(`  kept (the YAML text is under test): ${y.kept.documents} in ${y.kept.files} files`);
    for (const l of y.kept.list) console.log(`    ${l}`);
    const t = f.tests;
    console.log(`test files calling createBroker directly: ${t.createBrokerFiles}`);
    for (const l of t.createBroker) console.log(`  ${l}`);
    if (t.createBrokerInScripts.length > 0) {
      console.log(`  in scripts a test runs as a process of its own: ${t.createBrokerInScripts.join(", ")}`);
    }
    console.log(`local wait helpers and deadline loops in tests: ${t.localWaits}`);
    for (const l of t.waits) console.log(`  ${l}`);
    console.log(`local request-context helpers in tests: ${t.localContexts}`);
    for (const l of t.contexts) console.log(`  ${l}`);
  }
}
