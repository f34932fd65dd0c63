/**
 * Recorded terminal sessions end to end: `breakglass shell` (the built CLI, a real pseudo-terminal
 * through util-linux `script`) streams a scripted session to a real broker; `breakglass replay`
 * plays it back byte for byte and writes an asciicast v2 file; a CLI killed mid-session leaves
 * what it had streamed; the broker closes a shell when its grant ends.
 */
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Broker } from "../src/app.js";
import { SYSTEM_CONTEXT } from "../src/core/request-context.js";
import { BIN, runCli } from "./support/broker-process.js";
import { ctx } from "./support/ctx.js";
import { startTestBroker, type TestBroker } from "./support/test-broker.js";
import { until } from "./support/wait.js";

let t: TestBroker;
let dir: string;
let broker: Broker;
let env: Record<string, string>;

beforeAll(async () => {
  t = await startTestBroker({
    base: "minimal",
    config: {
      users: { alice: { name: "Alice" }, bob: { name: "Bob" }, mallory: { name: "Mallory" } },
      groups: { oncall: ["alice"], leads: ["bob"] },
      domains: {
        production: {
          roles: {
            shell: {
              target: "box",
              max_duration: "1h",
              approval: "1 of leads",
              requesters: ["oncall"],
              recording: { terminal_input: true },
            },
          },
        },
      },
      targets: { box: { connector: "exec", settings: { grant: ["true"], revoke: ["true"] } } },
    },
  });
  ({ broker, dir } = t);
  env = { BREAKGLASS_URL: t.url, BREAKGLASS_TOKEN: await t.token("alice") };
});
afterAll(async () => {
  await t?.stop();
});

let last: string | null = null;
async function grant(durationS = 1800): Promise<string> {
  if (last) await broker.service.release(ctx("alice"), last).catch(() => {});
  const g = await broker.service.request(ctx("alice"), {
    roleId: "production/shell",
    justification: "fix the stuck deploy by hand",
    incident: "INC-600",
    durationS,
  });
  await broker.service.approve(ctx("bob"), g.id, null);
  last = g.id;
  return g.id;
}
const sessionOf = (stderr: string) => /recording terminal session (t_\S+)/.exec(stderr)?.[1] ?? "";

describe("recorded terminal sessions", () => {
  it("records a scripted session and replays it byte for byte; writes an asciicast v2 file", async () => {
    const id = await grant();
    const script = "printf 'hello\\n'; sleep 0.3; printf '\\033[1mbold\\033[0m caf\\303\\251\\n'; exit 3";
    const shell = await runCli(["shell", id, "--", "sh", "-c", script], env);
    expect(shell.code, shell.stderr).toBe(3); // the command's own exit code
    expect(shell.stdout).toBe("hello\r\n\u001b[1mbold\u001b[0m café\r\n");
    const session = sessionOf(shell.stderr);
    expect(session).toMatch(/^t_/);

    const replay = await runCli(["replay", session, "--speed", "0"], env);
    expect(replay.code, replay.stderr).toBe(0);
    expect(replay.stdout).toBe(shell.stdout);

    const cast = join(dir, "session.cast");
    expect((await runCli(["replay", session, "--cast", cast], env)).code).toBe(0);
    const [header, ...events] = readFileSync(cast, "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(header).toMatchObject({ version: 2, width: 80, height: 24, command: expect.stringContaining("sh -c") });
    expect(events.every((e: unknown[]) => e.length === 3 && typeof e[0] === "number")).toBe(true);
    expect(
      events
        .filter((e: unknown[]) => e[1] === "o")
        .map((e: unknown[]) => e[2])
        .join(""),
    ).toBe(shell.stdout);
    // The pause between the two lines is in the timing.
    const bold = events.find((e: unknown[]) => String(e[2]).includes("bold"));
    expect(bold[0]).toBeGreaterThanOrEqual(0.25);

    // The session is on the grant's recording and in the audit trail.
    const rec = await runCli(["recording", id, "--json"], env);
    expect(JSON.parse(rec.stdout).terminalSessions).toMatchObject([{ id: session, endReason: "exited 3" }]);
    const types = (await broker.store.readGrantAudit([id])).map((e) => e.type);
    expect(types).toEqual(
      expect.arrayContaining(["grant.terminal_started", "grant.terminal_ended", "grant.recording_read"]),
    );
  });

  it("keeps what was streamed when the CLI is killed mid-session", async () => {
    const id = await grant();
    const child = spawn(
      process.execPath,
      [BIN, "shell", id, "--", "sh", "-c", "i=0; while [ $i -lt 100 ]; do echo line $i; i=$((i+1)); sleep 0.05; done"],
      { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] },
    );
    let stderr = "";
    let printed = "";
    /** When each line reached this test (the CLI printed it no later). */
    const seenAt: number[] = [];
    child.stderr.on("data", (c: Buffer) => {
      stderr += c.toString();
    });
    child.stdout.on("data", (c: Buffer) => {
      printed += c.toString();
      const lines = printed.split("\r\n").filter((l) => l.startsWith("line")).length;
      while (seenAt.length < lines) seenAt.push(Date.now());
    });
    // Killed mid-session: once a good part of the output has been shown for a while.
    const SETTLED_MS = 2_000;
    await until("the session well under way", () => {
      const early = seenAt.filter((t) => t < Date.now() - SETTLED_MS).length;
      return early > 10 && seenAt.length < 100;
    });
    const killedAt = Date.now();
    child.kill("SIGKILL");
    await new Promise((r) => child.once("close", r));
    const session = sessionOf(stderr);
    const events = await broker.store.readTerminalEvents(session);
    const recorded = events.map((e) => e.data).join("");
    // The CLI streams every 100 ms: what it printed well before it was killed — here 2 s, twenty
    // flush intervals, room for a slow broker on a busy machine — reached the broker; only the
    // last moments may be lost.
    const settled = seenAt.filter((t) => t < killedAt - SETTLED_MS).length;
    const kept = recorded.split("\r\n").filter((l) => l.startsWith("line")).length;
    expect(settled).toBeGreaterThan(10);
    expect(kept).toBeGreaterThanOrEqual(settled);
    expect(printed.startsWith(recorded)).toBe(true);
  });

  it("records what is typed when the role says so (recording.terminal_input)", async () => {
    const id = await grant();
    const child = spawn(process.execPath, [BIN, "shell", id, "--", "sh", "-c", "read x; echo got $x"], {
      env: { ...process.env, ...env },
      stdio: ["pipe", "pipe", "pipe"],
    });
    let stderr = "";
    child.stderr.on("data", (c: Buffer) => {
      stderr += c.toString();
    });
    await until("the session started", () => sessionOf(stderr) !== "");
    child.stdin.write("restart-api\n");
    const code = await new Promise((r) => child.once("close", r));
    expect(code).toBe(0);
    const events = await broker.store.readTerminalEvents(sessionOf(stderr));
    expect(
      events
        .filter((e) => e.kind === "i")
        .map((e) => e.data)
        .join(""),
    ).toBe("restart-api\n");
    expect(
      events
        .filter((e) => e.kind === "o")
        .map((e) => e.data)
        .join(""),
    ).toContain("got restart-api");
  });

  it("closes the shell when the grant ends, and only the holder may open one", async () => {
    const id = await grant(8); // time for the CLI to open the shell on a busy machine; short to wait for
    const shell = await runCli(["shell", id, "--", "sh", "-c", "echo started; sleep 30"], env);
    expect(shell.code).toBe(1);
    expect(shell.stderr).toMatch(/the grant ended; the session is closed/);
    const session = sessionOf(shell.stderr);
    expect((await broker.store.getTerminalSession(session))?.endReason).toMatch(/grant ended/);

    const other = (await broker.tokens.create(SYSTEM_CONTEXT, { user: "mallory", description: "t" })).token.reveal();
    const id2 = await grant();
    const refused = await runCli(["shell", id2, "--", "true"], { ...env, BREAKGLASS_TOKEN: other });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/ERR_FORBIDDEN/);
  });
});
