/**
 * Regression (issue 19, item 9): a second offline opening of one envelope overwrote the first
 * one's pending alarm — `flush-alarms` delivered only the second, the first opening's record said
 * `alarm=pending` for ever and `vault status` showed nothing. Every opening keeps its own pending
 * alarm until it is delivered; openings racing in parallel processes all survive (records chain,
 * one pending alarm each); a flush delivers every pending alarm even when one endpoint (or one
 * alarm) fails, and marks each delivered record; `vault status` and `vault verify-records` name
 * the openings whose alarm is still pending; once imported, posture is red for them.
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { newCustodianIdentity, parseEnvelope } from "../src/vault/envelope.js";
import { parseRecords, verifyRecords } from "../src/vault/opening-record.js";
import { requireBuild, runCli } from "./support/broker-process.js";
import { ctx } from "./support/ctx.js";
import { freePort } from "./support/free-port.js";
import { startTestBroker, writeTestConfig } from "./support/test-broker.js";

let cwd: string;
let server: Server;
let downPort: number;
/** What the working webhook accepted: the alarm events, in order. */
const received: { incident: string; delayed?: boolean; record?: number }[] = [];
/** Incidents the working webhook refuses for now (503), to fail one alarm of a flush. */
const refuse = new Set<string>();

const bg = (args: string[]) => runCli(args, {}, { cwd, timeoutMs: 60_000 });
// util-linux `unshare -rn`: no network at all, not even loopback — every alarm endpoint is down.
const offline = (args: string[]) => runCli(args, {}, { cwd, wrap: ["unshare", "-rn"], timeoutMs: 60_000 });
const hook = () => `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;

async function seal(name: string): Promise<void> {
  writeFileSync(join(cwd, `${name}.txt`), `${name}-secret`);
  const sealed = await bg([
    ...["vault", "seal", "--name", name, "--secret-file", `${name}.txt`, "--threshold", "2"],
    ...["--custodians", "alice.pub,bob.pub,carol.pub", "--out", `${name}.envelope`],
    // Two endpoints: one that never answers, one that works (when the network is there).
    ...["--alarm-webhook", `http://127.0.0.1:${downPort}/never`, "--alarm-webhook", hook()],
  ]);
  expect(sealed.code, sealed.stderr).toBe(0);
}

const openArgs = (envelope: string, incident: string) => [
  ...["vault", "open", envelope, "--reason", `outage ${incident}`, "--incident", incident],
  ...["--identity", "alice.key", "--identity", "bob.key"],
];

interface Status {
  pendingAlarm: boolean;
  pendingAlarms: { record: number | null; incident: string }[];
}
const status = async (envelope: string) => {
  const r = await bg(["vault", "status", envelope, "--json"]);
  return { ...r, json: JSON.parse(r.stdout) as Status };
};

beforeAll(async () => {
  requireBuild();
  cwd = mkdtempSync(join(tmpdir(), "bg-vault-pending-"));
  for (const who of ["alice", "bob", "carol"]) {
    const { identity, recipient } = await newCustodianIdentity();
    writeFileSync(join(cwd, `${who}.key`), `${identity}\n`, { mode: 0o600 });
    writeFileSync(join(cwd, `${who}.pub`), `${recipient}\n`);
  }
  downPort = await freePort();
  server = createServer((req, res) => {
    let body = "";
    req.on("data", (c: Buffer) => {
      body += c.toString("utf8");
    });
    req.on("end", () => {
      const event = (JSON.parse(body) as { event: { incident: string; delayed?: boolean; record?: number } }).event;
      if (refuse.has(event.incident)) {
        res.writeHead(503).end();
        return;
      }
      received.push(event);
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
});
afterAll(() => {
  server.close();
  rmSync(cwd, { recursive: true, force: true });
});

describe("offline openings keep one pending alarm each (issue 19, item 9)", () => {
  it("two openings while no endpoint answers: both alarms kept, both shown, both flushed — even when one fails", async () => {
    await seal("db");
    for (const incident of ["INC-1", "INC-2"]) {
      const opened = await offline(openArgs("db.envelope", incident));
      expect(opened.code, opened.stderr).toBe(0);
      expect(opened.stderr).toContain("NO ALARM WAS DELIVERED");
    }
    const records = parseRecords(readFileSync(join(cwd, "db.envelope.openings.jsonl"), "utf8"));
    expect(records.map((r) => JSON.parse(r.payload).alarm)).toEqual(["pending", "pending"]);

    // Both openings are named as waiting for their alarm: status (exit 6) and verify-records.
    const before = await status("db.envelope");
    expect(before.code).toBe(6);
    expect(before.json.pendingAlarm).toBe(true);
    expect(before.json.pendingAlarms.map((p) => [p.record, p.incident])).toEqual([
      [1, "INC-1"],
      [2, "INC-2"],
    ]);
    const text = await bg(["vault", "status", "db.envelope"]);
    expect(text.stdout).toMatch(/ALARM NOT DELIVERED.*opening 1 .*INC-1/);
    expect(text.stdout).toMatch(/ALARM NOT DELIVERED.*opening 2 .*INC-2/);
    const verified = await bg(["vault", "verify-records", "db.envelope"]);
    expect(verified.code).toBe(0);
    expect(verified.stdout).toContain("OK: 2 opening record(s)");
    expect(verified.stdout).toMatch(/record 1 .*INC-1.*alarm still pending/);
    expect(verified.stdout).toMatch(/record 2 .*INC-2.*alarm still pending/);

    // The network is back, but the working endpoint refuses the first alarm for now (and the other
    // endpoint never answers): the second alarm is still delivered, the first stays pending.
    refuse.add("INC-1");
    const partial = await bg(["vault", "flush-alarms", "db.envelope"]);
    expect(partial.code).toBe(5);
    expect(partial.stderr).toMatch(/opening 1 .*INC-1.*STILL NOT DELIVERED/);
    expect(received.map((e) => [e.incident, e.delayed])).toEqual([["INC-2", true]]);
    expect((await status("db.envelope")).json.pendingAlarms.map((p) => p.incident)).toEqual(["INC-1"]);

    refuse.clear();
    const flushed = await bg(["vault", "flush-alarms", "db.envelope"]);
    expect(flushed.code, flushed.stderr).toBe(0);
    expect(received.map((e) => e.incident)).toEqual(["INC-2", "INC-1"]);
    const after = await status("db.envelope");
    expect(after.json.pendingAlarm).toBe(false);
    expect(after.json.pendingAlarms).toEqual([]);
    expect((await bg(["vault", "status", "db.envelope"])).stdout).not.toContain("ALARM NOT DELIVERED");
    expect((await bg(["vault", "verify-records", "db.envelope"])).stdout).not.toContain("alarm still pending");
    // Delivered alarms are not delivered again.
    const again = await bg(["vault", "flush-alarms", "db.envelope"]);
    expect(again.code).toBe(0);
    expect(again.stderr).toContain("No pending alarm");
    expect(received).toHaveLength(2);
  });

  it("openings racing in parallel processes all survive: every record chains, every alarm is kept", async () => {
    await seal("par");
    const incidents = ["P-1", "P-2", "P-3", "P-4"];
    const results = await Promise.all(incidents.map((i) => offline(openArgs("par.envelope", i))));
    for (const r of results) expect(r.code, r.stderr).toBe(0);
    const envelope = parseEnvelope(readFileSync(join(cwd, "par.envelope"), "utf8"));
    const records = parseRecords(readFileSync(join(cwd, "par.envelope.openings.jsonl"), "utf8"));
    expect(verifyRecords(envelope, records)).toBeNull();
    expect(records.map((r) => r.seq)).toEqual([1, 2, 3, 4]);
    expect(records.map((r) => JSON.parse(r.payload).incident).sort()).toEqual(incidents);
    expect(
      (await status("par.envelope")).json.pendingAlarms.map((p) => p.incident).sort((a, b) => a.localeCompare(b)),
    ).toEqual(incidents);
    // No temporary or lock file is left behind.
    expect(readdirSync(cwd).filter((f) => f.includes("par.envelope") && /tmp|lock/.test(f))).toEqual([]);

    const from = received.length;
    const flushed = await bg(["vault", "flush-alarms", "par.envelope"]);
    expect(flushed.code, flushed.stderr).toBe(0);
    expect(
      received
        .slice(from)
        .map((e) => e.incident)
        .sort(),
    ).toEqual(incidents);
  });

  it("posture is red for an imported opening whose alarm is pending, until it is delivered and imported again", async () => {
    await seal("pz");
    expect((await offline(openArgs("pz.envelope", "INC-7"))).code).toBe(0);
    mkdirSync(join(cwd, "broker"));
    writeTestConfig({ dir: join(cwd, "broker") });
    const importRecords = () => bg(["vault", "import-record", "pz.envelope", "--config", "broker/breakglass.yaml"]);
    expect((await importRecords()).code).toBe(0);

    const vaultPosture = async () => {
      const t = await startTestBroker({ dir: join(cwd, "broker"), start: false });
      const broker = t.broker;
      try {
        const token = (await broker.tokens.create(ctx("erin"), { user: "erin", description: "t" })).token.reveal();
        const res = await broker.http.inject({
          method: "GET",
          url: "/api/v1/posture",
          headers: { authorization: `Bearer ${token}` },
        });
        const body = res.json() as { status: string; vault: { level: string; what: string; fix: string }[] };
        const events = (await broker.store.readAudit(1, 10_000)).map((e) => e.type);
        return { ...body, events };
      } finally {
        await t.stop();
      }
    };
    const red = await vaultPosture();
    expect(red.status).toBe("red");
    expect(red.vault).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          level: "red",
          what: expect.stringMatching(/tier-2 opening of envelope pz \(INC-7\).*alarm was never delivered/),
          fix: expect.stringContaining("vault flush-alarms"),
        }),
      ]),
    );

    expect((await bg(["vault", "flush-alarms", "pz.envelope"])).code).toBe(0);
    const reimported = await importRecords();
    expect(reimported.code, reimported.stderr).toBe(0);
    expect(reimported.stderr).toContain("1 late alarm delivery");
    const cleared = await vaultPosture();
    expect(cleared.vault.filter((i) => /alarm/.test(i.what))).toEqual([]);
    expect(cleared.events.filter((t) => t === "vault.alarm_delivered")).toHaveLength(1);
  });
});
