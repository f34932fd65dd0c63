import { join } from "node:path";
import BetterSqlite3 from "better-sqlite3";
import type { FastifyInstance } from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sha256 } from "../src/adapters/node-crypto.js";
import type { Broker } from "../src/app.js";
import { exportAudit } from "../src/audit/audit-export.js";
import { formatVerdict, verifyJsonl, verifyStoreChain } from "../src/audit/audit-verify.js";
import { loadPublicKeys } from "../src/audit/signing-key.js";
import { terminalDigest } from "../src/core/recording-digest.js";
import { LATE_GRACE_MS } from "../src/service/terminal-service.js";
import { ctx } from "./support/ctx.js";
import { type ManualClock, manualClock } from "./support/manual-clock.js";
import { startTestBroker, type TestBroker } from "./support/test-broker.js";

type User = "alice" | "bob" | "erin";
let t: TestBroker;
let dir: string;
let broker: Broker;
let http: FastifyInstance;
let clock: ManualClock;
const tokens = new Map<User, string>();

beforeAll(async () => {
  clock = manualClock();
  t = await startTestBroker({
    base: "minimal",
    clock,
    start: false,
    config: {
      admin_groups: ["security"],
      users: { alice: { name: "Alice" }, bob: { name: "Bob" }, erin: { name: "Erin" } },
      groups: { oncall: ["alice"], leads: ["bob"], security: ["erin"] },
      domains: {
        production: {
          roles: { shell: { target: "box", max_duration: "1h", approval: "1 of leads", requesters: ["oncall"] } },
        },
      },
      targets: { box: { connector: "exec", settings: { grant: ["true"], revoke: ["true"] } } },
    },
  });
  ({ broker, http, dir } = t);
  for (const user of ["alice", "bob", "erin"] as const) tokens.set(user, await t.token(user));
});
afterAll(async () => {
  await t?.stop();
});

// biome-ignore lint/suspicious/noExplicitAny: responses are checked with expect(), field by field
type Json = any;
async function call(user: User, method: "GET" | "POST", url: string, payload?: Record<string, unknown>) {
  const res = await http.inject({
    method,
    url: `/api/v1${url}`,
    headers: { authorization: `Bearer ${tokens.get(user)}` },
    ...(payload === undefined ? {} : { payload }),
  });
  return { status: res.statusCode, json: res.json() as Json };
}

async function activeGrant(): Promise<string> {
  const g = await broker.service.request(ctx("alice"), {
    roleId: "production/shell",
    justification: "fix the stuck deploy by hand",
    incident: "INC-601",
    durationS: 1800,
  });
  await broker.service.approve(ctx("bob"), g.id, null);
  return g.id;
}

const out = (seq: number, data: string) => ({ seq, t: seq / 10, kind: "o", data });
const append = (session: string, events: unknown[]) => call("alice", "POST", `/terminal/${session}/events`, { events });
async function startShell(grantId: string): Promise<string> {
  const r = await call("alice", "POST", `/grants/${grantId}/terminal`, { command: "bash", width: 80, height: 24 });
  expect(r.status).toBe(201);
  return r.json.session.id;
}
async function auditOf(grantId: string, type: string) {
  return (await broker.store.readGrantAudit([grantId]))
    .filter((e) => e.type === type)
    .map((e) => ({ seq: e.seq, actor: e.actor, data: JSON.parse(e.payload).data }));
}
const keys = () => loadPublicKeys([broker.signingKey.publicKeyPem]).verifySignature;

describe("a terminal recording after its end", () => {
  let grantId = "";
  let session = "";

  it("seals the recording's digest into the end event", async () => {
    grantId = await activeGrant();
    session = await startShell(grantId);
    expect((await append(session, [out(1, "$ ls\r\n"), out(2, "a b\r\n")])).json.active).toBe(true);
    expect((await call("alice", "POST", `/terminal/${session}/end`, { reason: "exited 0" })).status).toBe(200);
    const [ended] = await auditOf(grantId, "grant.terminal_ended");
    const events = await broker.store.readTerminalEvents(session);
    expect(ended?.data).toMatchObject({ session, events: 2, digest: terminalDigest(sha256, events) });
  });

  it("takes a batch still in flight within the grace period, and audits it with the new digest", async () => {
    clock.advance(LATE_GRACE_MS / 3);
    const late = await append(session, [out(2, "a b\r\n"), out(3, "$ exit\r\n")]);
    expect(late).toMatchObject({ status: 200, json: { active: true } });
    const events = await broker.store.readTerminalEvents(session);
    expect(events).toHaveLength(3);
    expect(await auditOf(grantId, "grant.terminal_late_events")).toEqual([
      expect.objectContaining({
        actor: "alice",
        data: expect.objectContaining({ session, added: 1, events: 3, digest: terminalDigest(sha256, events) }),
      }),
    ]);
    // A retry of events already stored adds nothing and writes nothing.
    await append(session, [out(3, "$ exit\r\n")]);
    expect(await auditOf(grantId, "grant.terminal_late_events")).toHaveLength(1);
  });

  it("refuses appends after the grace period, and keeps the recording as it was", async () => {
    clock.advance(LATE_GRACE_MS);
    const refused = await append(session, [out(4, "everything was fine, nothing deleted\r\n")]);
    expect(refused).toMatchObject({ status: 409, json: { code: "ERR_INVALID_TRANSITION" } });
    expect(refused.json.detail).toMatch(new RegExp(`terminal session ${session} closed at`));
    expect(await broker.store.readTerminalEvents(session)).toHaveLength(3);
    await broker.service.release(ctx("alice"), grantId);
  });

  it("closes with the grant: a session left open is sealed by the first batch after the grant ended", async () => {
    const g = await activeGrant();
    const open = await startShell(g);
    await append(open, [out(1, "working\r\n")]);
    await broker.service.release(ctx("alice"), g);
    clock.advance(1000);
    // The batch in flight when the grant ended: kept, and the session ends sealed, saying so.
    expect(await append(open, [out(2, "done\r\n")])).toMatchObject({ status: 200, json: { active: false } });
    const [ended] = await auditOf(g, "grant.terminal_ended");
    expect(ended?.data).toMatchObject({ session: open, reason: "grant ended", events: 2, lateEvents: 1 });
  });

  it("refuses any append once the grant is reviewed, even within the grace period", async () => {
    const g = await activeGrant();
    const s = await startShell(g);
    await append(s, [out(1, "rm -rf /var/tmp/cache\r\n")]);
    await call("alice", "POST", `/terminal/${s}/end`, { reason: "exited 0" });
    await broker.service.release(ctx("alice"), g);
    const reviewed = await call("erin", "POST", `/grants/${g}/review`, { outcome: "justified", notes: "read it" });
    expect(reviewed.status).toBe(200);
    const refused = await append(s, [out(2, "(only a cache, as agreed with the team)\r\n")]);
    expect(refused).toMatchObject({ status: 409, json: { code: "ERR_INVALID_TRANSITION" } });
    expect(refused.json.detail).toMatch(/reviewed/);
    expect(await broker.store.readTerminalEvents(s)).toHaveLength(1);
  });

  it("seals a session nobody closed when the refusal comes, so the recording is fixed from then on", async () => {
    const g = await activeGrant();
    const s = await startShell(g);
    await append(s, [out(1, "top\r\n")]);
    await broker.service.release(ctx("alice"), g);
    clock.advance(LATE_GRACE_MS + 1000);
    expect((await append(s, [out(2, "late\r\n")])).status).toBe(409);
    const [ended] = await auditOf(g, "grant.terminal_ended");
    expect(ended?.data).toMatchObject({ session: s, reason: "grant ended", events: 1 });
  });
});

describe("verification of recordings", () => {
  it("checks every sealed recording online, names the one changed after its end, and the story shows it", async () => {
    const verdict = await verifyStoreChain(broker.store, keys());
    expect(verdict).toMatchObject({ ok: true, recordings: { matched: 4, unsealed: 0 } });
    expect(formatVerdict(verdict)).toMatch(/; 4 recordings match their sealed digest/);

    const [grant] = await broker.store.listGrants({ incident: "INC-601", limit: 100 }).then((l) => l.slice(-1));
    const [session] = await broker.store.listTerminalSessions(grant?.id ?? "");
    const [seal] = await auditOf(grant?.id ?? "", "grant.terminal_late_events");
    const db = new BetterSqlite3(join(dir, "breakglass.db"));
    try {
      db.prepare("UPDATE terminal_events SET data = 'nothing\r\n' WHERE session_id = ? AND seq = 2").run(session?.id);
    } finally {
      db.close();
    }
    expect(await verifyStoreChain(broker.store, keys())).toMatchObject({
      ok: false,
      seq: seal?.seq,
      problem: "recording_mismatch",
      message: expect.stringContaining(`terminal session ${session?.id}`),
    });
    const story = await call("erin", "GET", `/grants/${grant?.id}/story`);
    expect(story.json.recording.sessions).toEqual([
      {
        kind: "terminal",
        session: session?.id,
        entries: 3,
        sealedBy: seal?.seq,
        digest: seal?.data.digest,
        matches: false,
        // The session's row itself is what its events say (only its recorded events were edited).
        integrity: null,
      },
    ]);
  });

  it("offline, from an export, says recordings are not checked there", async () => {
    const lines: string[] = [];
    await exportAudit(broker.store, (l) => lines.push(l), { format: "jsonl" });
    const verdict = await verifyJsonl(lines, keys());
    expect(verdict).toMatchObject({ ok: true, recordings: null });
    expect(formatVerdict(verdict)).toMatch(/recordings not checked \(an export holds none/);
  });
});
