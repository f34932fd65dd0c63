/**
 * The README's "Five-minute tour", run as written: the test reads README.md, takes the tour's
 * ```sh blocks, starts the real `breakglass demo` (the first block's `npm run demo`, as
 * `node bin/breakglass.js demo --port 0` in a temp folder that looks like the clone: `bin/` is a
 * link to the real one, and the demo's state lands in its `.breakglass/demo/`), then runs every
 * command in bash with the README's own `source`, `alias` and `export` lines — the grant id
 * substituted where the README tells the reader to — and checks what each one promises: its
 * `# →` output line, its trailing `# …` comment (each comment has a check here, or the test
 * fails), otherwise exit 0. The README cannot drift from what the CLI does.
 */
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type BrokerProcess, ROOT, startBrokerProcess } from "./support/broker-process.js";

interface Command {
  /** The command as the reader types it (continuation lines joined). */
  readonly text: string;
  /** Its trailing `# …` comment: what the README says it shows. */
  readonly comment: string | null;
  /** `# → …` lines after it: output the README prints. */
  readonly shows: string[];
}

interface Result {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

const README = readFileSync(join(ROOT, "README.md"), "utf8");

/** The tour's ```sh blocks, in order. */
function tourBlocks(): string[] {
  const start = README.indexOf("## Five-minute tour");
  expect(start, "README.md has a Five-minute tour").toBeGreaterThan(0);
  const end = README.indexOf("\n## ", start + 1);
  const section = README.slice(start, end < 0 ? undefined : end);
  return [...section.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1] ?? "");
}

function commandsOf(block: string): Command[] {
  const commands: { text: string; comment: string | null; shows: string[] }[] = [];
  const lines = block.split("\n");
  for (let i = 0; i < lines.length; i++) {
    let line = lines[i] ?? "";
    if (line.trim() === "") continue;
    const shown = /^#\s*→\s?(.*)$/.exec(line.trim());
    if (shown) {
      commands.at(-1)?.shows.push(shown[1] ?? "");
      continue;
    }
    if (line.trim().startsWith("#")) continue;
    while (line.endsWith("\\") && i + 1 < lines.length) line = `${line.slice(0, -1)} ${(lines[++i] ?? "").trim()}`;
    const withComment = /^(.*?\S)\s+#\s+(.*)$/.exec(line);
    commands.push({
      text: (withComment ? withComment[1] : line)?.trim() ?? "",
      comment: withComment?.[2]?.trim() ?? null,
      shows: [],
    });
  }
  return commands;
}

let dir: string;
let demo: BrokerProcess;
/** The session so far: `source`, `alias` and `export` lines, as a terminal keeps them. */
const session: string[] = ["shopt -s expand_aliases"];
let grant = "";

function cleanEnv(): Record<string, string | undefined> {
  const env: Record<string, string | undefined> = { ...process.env };
  for (const key of Object.keys(env)) if (key.startsWith("BREAKGLASS_")) delete env[key];
  return env;
}

function bash(script: string): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn("bash", ["-c", script], { cwd: dir, env: cleanEnv(), stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => {
      stdout += c.toString("utf8");
    });
    child.stderr.on("data", (c: Buffer) => {
      stderr += c.toString("utf8");
    });
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`did not finish: ${script}\nstderr: ${stderr}`));
    }, 120_000);
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Run a command in the session (its own bash, with every `source`/`alias`/`export` so far). */
const inSession = (text: string) => bash(`${session.join("\n")}\n${text}\n`);

const lines = (text: string) => text.split("\n").filter((l) => l.trim() !== "");

/**
 * What each trailing comment promises, checked on the command's result. A comment the README
 * gains without a check here fails the test: add the check (or fix the README).
 */
const PROMISES: Readonly<Record<string, readonly [exit: number, check: (r: Result) => void]>> = {
  "five domains, six recovery roles": [
    0,
    (r) => {
      const roles = lines(r.stdout).slice(1);
      expect(roles).toHaveLength(6);
      expect(new Set(roles.map((l) => l.split("/")[0])).size).toBe(5);
    },
  ],
  "refused: self-approval": [
    1,
    (r) => {
      // The prose: "She cannot approve it herself (`ERR_SELF_APPROVAL`, exit code 1)".
      expect(README).toContain("(`ERR_SELF_APPROVAL`, exit code 1)");
      expect(r.stderr).toBe(`error: alice requested grant ${grant} and cannot approve it (ERR_SELF_APPROVAL)\n`);
    },
  ],
  'active, "29m50s left"': [
    0,
    (r) => {
      const row = lines(r.stdout).find((l) => l.startsWith(grant));
      expect(row).toMatch(/production\/db-admin\s+active\s+alice\s+(29m\d\ds|30m) left\s+INC-4711$/);
    },
  ],
  "approvals, access state, timeline": [
    0,
    (r) => {
      expect(r.stdout).toMatch(/approval rule +2 of sre-leads/);
      expect(r.stdout).toMatch(/access +granted/);
      expect(r.stdout).toContain("Timeline");
      expect(r.stdout).toContain("approved by bob");
      expect(r.stdout).toContain('approved by carol — "on the bridge"');
    },
  ],
  "bg_$GRANT.access": [
    0,
    (r) => {
      expect(r.stdout.trim()).toBe(`bg_${grant}.access`);
    },
  ],
  'exec targets: "has no credential"': [
    1,
    (r) => {
      expect(r.stderr).toContain(`grant ${grant} has no credential`);
    },
  ],
  '"extended by alice by 15m"': [
    0,
    (r) => {
      expect(r.stdout).toContain("requested by alice for 30m");
      expect(r.stdout).toMatch(/extended by alice by 15m, until .* — "restore still running"/);
      expect(r.stdout).toMatch(/duration +45m/);
    },
  ],
  "ended (revoked), access revoked": [
    0,
    (r) => {
      expect(r.stdout).toMatch(/state +ended \(revoked\)/);
      expect(r.stdout).toMatch(/access +revoked/);
      expect(r.stdout).toContain('ended (revoked) by carol — "incident resolved"');
    },
  ],
  "nothing: the file is gone": [
    0,
    (r) => {
      expect(r.stdout.trim()).toBe("");
    },
  ],
  '"no: carol approved grant …"': [
    0,
    (r) => {
      expect(r.stdout).toContain(`no: carol approved grant ${grant} and cannot also review it`);
    },
  ],
  'the story; "You cannot record its verdict: …"': [
    0,
    (r) => {
      expect(r.stdout).toContain(`Grant ${grant} — production/db-admin on pg-main for alice, incident INC-4711`);
      expect(r.stdout).toContain("Timeline:");
      expect(r.stdout).toContain(`You cannot record its verdict: carol approved grant ${grant}`);
      expect(r.stdout).not.toContain("Record the verdict");
    },
  ],
  "PASSED, time to access": [
    0,
    (r) => {
      expect(r.stdout).toMatch(/Drill db-admin-approval \(approval-path\), run d_\w+: PASSED, time to access [\d.]+ s/);
    },
  ],
  'the drill\'s grant: "[DRILL]"': [
    0,
    (r) => {
      const drill = lines(r.stdout).filter((l) => l.includes("[DRILL]"));
      expect(drill).toHaveLength(1);
      expect(drill[0]).toMatch(
        /production\/db-admin\s+ended \(expired\) \[DRILL\]\s+alice\s+drill: not reviewed\s+INC-0/,
      );
      expect(lines(r.stdout).find((l) => l.startsWith(grant))).not.toContain("[DRILL]");
    },
  ],
  "red items, each with its fix": [
    6,
    (r) => {
      // The prose: posture exits 6 while anything is red.
      expect(README).toContain("posture exits 6 while anything is red");
      expect(r.stdout).toMatch(/^Posture: RED/);
      expect(r.stdout).toMatch(/RED production\/db-superuser: no drill rehearses this role\n {4}fix: /);
      // Only what the demo has: no data key, and the drill is not an open review.
      expect(r.stdout).not.toContain("data key");
      expect(r.stdout).toContain("AMBER production/db-admin: 1 review open, not yet due");
    },
  ],
};

/** Checks for commands without a comment, by how they start (exit 0 is always checked). */
const PLAIN: readonly [RegExp, (r: Result) => void][] = [
  [/^source /, () => {}],
  [/^alias /, () => {}],
  [/^export GRANT=/, () => {}],
  [
    /breakglass approve \$GRANT$/,
    (r) => expect(r.stdout).toContain(`${grant}  production/db-admin  requested  — 1 approval so far`),
  ],
  [
    /breakglass approve \$GRANT --comment/,
    (r) =>
      expect(r.stdout).toMatch(new RegExp(`^${grant}  production/db-admin  active  — until .* \\(\\d+m\\d+s left\\)`)),
  ],
  [/breakglass extend /, (r) => expect(r.stdout).toMatch(/active {2}— until .* \((44m\d\ds|45m) left\)/)],
  [/breakglass revoke /, (r) => expect(r.stdout).toContain("ended (revoked)  — access at pg-main: revoked")],
  [
    /^breakglass report /,
    (r) => {
      expect(r.stderr).toMatch(/^1 access\(es\), 1 drill\(s\), audit chain verified; written to .*report\.html$/m);
      expect(readFileSync(join(dir, "report.html"), "utf8")).toContain("Break-glass access evidence");
    },
  ],
  [/^breakglass audit verify --config /, (r) => expect(r.stdout).toMatch(/^OK: \d+ events/)],
  [/^breakglass audit export /, () => expect(existsSync(join(dir, "audit.jsonl"))).toBe(true)],
  [/^breakglass audit verify --file /, (r) => expect(r.stdout).toMatch(/^OK: \d+ events/)],
];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "bg-readme-tour-"));
  // The reader is in the clone: `bin/` is the real one (its build included), the state is here.
  symlinkSync(join(ROOT, "bin"), join(dir, "bin"));
  const [first] = tourBlocks();
  expect(first?.trim()).toBe("npm run demo");
  demo = await startBrokerProcess(join(dir, "breakglass.yaml"), {
    args: ["demo", "--port", "0"],
    env: {},
    timeoutMs: 60_000,
  });
});

afterAll(async () => {
  await demo?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("the README's five-minute tour", () => {
  it("every command does what the README says, in order", async () => {
    // The demo did what the tour's first paragraph says: state under .breakglass/demo/, tokens file.
    const env = readFileSync(join(dir, ".breakglass", "demo", "demo-tokens.env"), "utf8");
    for (const name of ["ALICE_TOKEN", "BOB_TOKEN", "CAROL_TOKEN", "BREAKGLASS_URL"]) expect(env).toContain(`${name}=`);
    expect(existsSync(join(dir, ".breakglass", "demo", "breakglass.yaml"))).toBe(true);

    const commands = tourBlocks().slice(1).flatMap(commandsOf);
    expect(commands.length).toBeGreaterThan(20);
    let lastVerify = "";
    for (const command of commands) {
      let text = command.text;
      if (/^export GRANT=/.test(text)) {
        // "export GRANT=g_…     # the id it printed": the reader pastes the id the request printed.
        expect(command.comment).toBe("the id it printed");
        expect(grant).toMatch(/^g_[0-9a-z]+$/);
        text = `export GRANT=${grant}`;
      }
      const r = await inSession(text);
      const context = `$ ${text}\n${r.stdout}${r.stderr}`;
      if (/^(source|alias|export) /.test(text)) session.push(text);

      if (/breakglass request /.test(text)) grant = /^(g_[0-9a-z]+) /.exec(r.stdout)?.[1] ?? "";
      for (const shown of command.shows) {
        // The README prints one real run's id; any id in its place.
        const pattern = new RegExp(
          `^${shown.replace(/[.*+?^${}()|[\]\\]/g, "\\$&").replace(/g_[0-9a-z]+/g, "g_[0-9a-z]+")}$`,
          "m",
        );
        expect(r.stdout, context).toMatch(pattern);
      }
      if (command.comment !== null && !/^export GRANT=/.test(command.text)) {
        const promise = PROMISES[command.comment];
        if (!promise) throw new Error(`README promises "${command.comment}" for \`${text}\`: add its check here`);
        expect(r.code, context).toBe(promise[0]);
        promise[1](r);
      } else {
        expect(r.code, context).toBe(0);
        const plain = PLAIN.find(([re]) => re.test(text));
        if (!plain && command.shows.length === 0) throw new Error(`no check for \`${text}\`: add one to PLAIN`);
        plain?.[1](r);
      }
      if (/audit verify --file/.test(text)) lastVerify = text;
    }

    // "Edit any line of `audit.jsonl` and verify again: it names the first bad sequence number
    // and why, and exits 4."
    expect(README).toContain("Edit any line of `audit.jsonl` and verify again: it names the first bad sequence number");
    const file = join(dir, "audit.jsonl");
    const jsonl = readFileSync(file, "utf8").split("\n");
    const at = jsonl.findIndex((l) => l.includes('"grant.approval_added"'));
    expect(at).toBeGreaterThan(0);
    jsonl[at] = (jsonl[at] ?? "").replace('"actor":"bob"', '"actor":"mallory"');
    writeFileSync(file, jsonl.join("\n"));
    const tampered = await inSession(lastVerify);
    expect(tampered.code).toBe(4);
    expect(tampered.stderr).toMatch(/^error: audit verification FAILED at seq \d+: modified — /);
  }, 300_000);
});
