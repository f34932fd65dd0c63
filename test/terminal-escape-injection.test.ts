/**
 * Issue 19, item 4: a requester's text must not act on the approver's terminal. A real broker (in
 * process, listening on loopback) and the real CLI (`main`, its one output path) as an approver
 * would run it. The API refuses control characters in free text; whatever got into the store
 * before (or comes from another broker) is printed with its control characters visible, by every
 * command that shows someone else's text; alarms to Slack and e-mail escape it their own way.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { renderEmail } from "../src/alarms/email-channel.js";
import { slackMessage } from "../src/alarms/slack-channel.js";
import type { Broker } from "../src/app.js";
import type { CliIo } from "../src/cli/cli-io.js";
import { main } from "../src/cli/main.js";
import { GrantViewSchema } from "../src/contract/api.js";
import { startTestBroker, type TestBroker } from "./support/test-broker.js";

/** Clears the screen, plants a hyperlink, reverses the rest of the line, and forges a line. */
const EVIL =
  "db down\x1b[2J\x1b[H\x1b]8;;https://evil.example/\x07click\x1b]8;;\x07 \u202eevil\u202c\x00\x7f\x9b\n  approvals  2 of 2 (approved)";
const RAW =
  // biome-ignore lint/suspicious/noControlCharactersInRegex: the test looks for them
  /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u061c\u200b\u200e\u200f\u2028-\u202e\u2060-\u2069\ufeff]/u;

let t: TestBroker;
let dir: string;
let broker: Broker;
let url: string;
const tokens = new Map<string, string>();

beforeAll(async () => {
  t = await startTestBroker({ config: { defaults: { justification_min_length: 10 } } });
  ({ broker, dir, url } = t);
  for (const user of ["alice", "bob", "carol", "erin"]) tokens.set(user, await t.token(user));
});

afterAll(async () => {
  await t?.stop();
});

async function api(user: string, method: string, path: string, body?: unknown) {
  const res = await fetch(`${url}/api/v1${path}`, {
    method,
    headers: { authorization: `Bearer ${tokens.get(user)}`, ...(body ? { "content-type": "application/json" } : {}) },
    ...(body ? { body: JSON.stringify(body) } : {}),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

/** Run the CLI as `user`; what reached stdout and stderr. */
async function cli(user: string, ...argv: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const io: CliIo = {
    out: (t) => out.push(t),
    err: (t) => err.push(t),
    stdout: process.stdout,
    env: { BREAKGLASS_URL: url, BREAKGLASS_TOKEN: tokens.get(user), HOME: dir },
    cwd: dir,
    waitForStop: () => new Promise(() => {}),
    ask: async () => "",
  };
  const code = await main(argv, io);
  return { code, stdout: out.join("\n"), stderr: err.join("\n") };
}

/** Put text into a stored grant as an older broker (or a direct database write) could have. */
async function plant(id: string, patch: Record<string, unknown>) {
  await broker.store.transaction(async (tx) => {
    const g = await tx.lockGrant(id);
    if (!g) throw new Error(`no grant ${id}`);
    await tx.saveGrant({ ...g, ...patch, version: g.version + 1 } as typeof g, null);
  });
}

describe("at input: free text with control characters is refused", () => {
  const request = { role: "production/db-reader", justification: "the primary is down", incident: "INC-1" };

  it.each([
    ["justification", { ...request, justification: "db down \x1b[2J\x1b[H all fine" }, "\\x1b"],
    ["justification", { ...request, justification: "see \u202etxt.exe" }, "\\u202e"],
    ["justification", { ...request, justification: "nul\x00 inside the text" }, "\\x00"],
    ["incident", { ...request, incident: "INC-1\n  approvals  2 of 2" }, "\\x0a"],
    ["incident", { ...request, incident: "INC-1\t" }, "\\x09"],
  ])("POST /grants with a control character in %s: 400 naming it", async (field, body, shown) => {
    const res = await api("alice", "POST", "/grants", body);
    expect(res.status, JSON.stringify(res.body)).toBe(400);
    expect(res.body.code).toBe("ERR_VALIDATION");
    expect(res.body.field).toBe(field);
    expect(String(res.body.detail)).toContain(shown);
  });

  it("tab and newline stay allowed in prose (a justification of several lines)", async () => {
    const res = await api("alice", "POST", "/grants", {
      ...request,
      justification: "primary is down:\n\t- failover stuck\n\t- replicas lagging",
    });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    const id = String(res.body.id);
    // …and the reasons, comments and notes that follow refuse control characters too.
    const deny = await api("bob", "POST", `/grants/${id}/deny`, { reason: "no\x1b[8m hidden" });
    expect([deny.status, deny.body.code, deny.body.field]).toEqual([400, "ERR_VALIDATION", "reason"]);
    const approve = await api("bob", "POST", `/grants/${id}/approve`, { comment: "ok \u2066hidden\u2069" });
    expect([approve.status, approve.body.code, approve.body.field]).toEqual([400, "ERR_VALIDATION", "comment"]);
    await api("alice", "POST", `/grants/${id}/cancel`, { reason: "test done" });
  });

  it("a justification of only invisible characters does not meet justification_min_length", async () => {
    for (const justification of ["\u200b".repeat(20), `${"\u200b\u2060\ufeff".repeat(5)}ok`, "\u3164".repeat(12)]) {
      const res = await api("alice", "POST", "/grants", { ...request, justification });
      expect(res.status, JSON.stringify(res.body)).not.toBe(201);
      expect(["ERR_JUSTIFICATION_REQUIRED", "ERR_VALIDATION"]).toContain(res.body.code);
    }
    const nul = await api("alice", "POST", "/grants", { ...request, justification: "\x00".repeat(20) });
    expect(nul.body.code).toBe("ERR_VALIDATION");
    const zw = await api("alice", "POST", "/grants", { ...request, justification: "   \u3164\u2800\u3164   x" });
    expect(zw.body.code).toBe("ERR_JUSTIFICATION_REQUIRED");
    expect(String(zw.body.detail)).toMatch(/at least 10 visible characters .*got 1/);
  });

  it("a follow-up owner must be a user name, and not a reserved one", async () => {
    const res = await api("erin", "POST", "/grants/g_none/review", {
      outcome: "justified",
      notes: "fine",
      followUps: [{ action: "rotate", owner: "system" }],
    });
    expect([res.status, res.body.code, res.body.field]).toEqual([400, "ERR_VALIDATION", "followUps.0.owner"]);
  });
});

describe("at output: someone else's text is shown, never obeyed", () => {
  let id: string;

  beforeAll(async () => {
    const res = await api("alice", "POST", "/grants", {
      role: "production/db-admin",
      justification: "primary is down, failover stuck",
      incident: "INC-77",
      emergency: true,
    });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    id = String(res.body.id);
    await api("alice", "POST", `/grants/${id}/release`, {});
    // What an older broker stored, or another broker sends: text with every trick in it.
    await plant(id, { justification: EVIL, closeReason: EVIL, requester: "alice\x1b[2J\u202eevil\u202c" });
  });

  it.each([
    ["show", ["show", "$ID"]],
    ["grants", ["grants"]],
    ["incident", ["incident", "INC-77"]],
    ["review (the story)", ["review", "$ID"]],
    ["reviews", ["reviews"]],
  ])("`%s` prints the control characters as visible escapes", async (_name, args) => {
    const res = await cli("erin", ...args.map((a) => (a === "$ID" ? id : a)));
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout + res.stderr).not.toMatch(RAW);
    expect(res.stdout).toContain("\\x1b[2J");
    if (!["grants", "reviews", "incident"].includes(_name)) {
      expect(res.stdout).toContain("\\u202eevil\\u202c");
      // The forged line is marked as the justification's own continuation, not a field.
      expect(res.stdout).not.toMatch(/^ {2}approvals {2}2 of 2/m);
    }
  });

  it("`show --json` stays valid JSON that means exactly what the broker sent", async () => {
    const res = await cli("erin", "show", id, "--json");
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).not.toMatch(RAW);
    expect(GrantViewSchema.parse(JSON.parse(res.stdout)).justification).toBe(EVIL);
  });

  it("an error message that quotes the input shows it visibly", async () => {
    const res = await cli("erin", "show", "g_\x1b[2Jgone\u202e");
    expect(res.code).not.toBe(0);
    expect(res.stderr).toMatch(/^error: /);
    expect(res.stderr).not.toMatch(RAW);
  });

  it("Slack and e-mail alarms escape the text their own way (no <!channel>, no planted link)", () => {
    const event = {
      type: "grant.requested",
      grant: id,
      actor: "alice",
      role: "production/db-admin",
      incident: "INC-77",
      justification: "<!channel> see <https://evil.example|the runbook> \x1b[2J\u202e",
    };
    const m = {
      idempotencyKey: "k1",
      severity: "critical" as const,
      summary: `alice asks: ${event.justification}`,
      event,
    };
    const slack = JSON.stringify(slackMessage(m, "https://bg.example"));
    expect(slack).not.toContain("<!channel>");
    expect(slack).not.toContain("<https://evil.example|");
    expect(slack).toContain("&lt;!channel&gt;");
    expect(JSON.parse(slack) as unknown).toBeTruthy();
    expect(slack.replace(/\\u[0-9a-f]{4}/g, "")).not.toMatch(RAW);
    const mail = renderEmail(m, "https://bg.example");
    for (const part of [mail.subject, mail.text, mail.html]) expect(part).not.toMatch(RAW);
    expect(mail.html).toContain("&lt;!channel&gt;");
    expect(mail.subject).not.toContain("\n");
  });
});
