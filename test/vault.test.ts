/**
 * Tier 2 envelopes: seal/open round trips (2-of-3, 3-of-5), fewer than k shares refused (and an
 * envelope edited to ask for fewer does not open), duplicate custodians refused, tampered
 * metadata, shares and ciphertext refused with a clear message; the CLI opening offline with its
 * alarm left pending, a real webhook told when reachable, signed chained opening records, and
 * `--exec` handing the secret over without printing it; rekeying to a changed custodian set
 * (same secret, same due date) and passphrase-protected identities.
 */
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import PostalMime from "postal-mime";
import { SMTPServer } from "smtp-server";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { routeAlarms } from "../src/core/alarm-routing.js";
import {
  decryptShare,
  type Envelope,
  newCustodianIdentity,
  openEnvelope,
  parseEnvelope,
  rekeyEnvelope,
  sealEnvelope,
} from "../src/vault/envelope.js";
import { parseRecords, verifyRecords } from "../src/vault/opening-record.js";
import { requireBuild, runCli } from "./support/broker-process.js";
import { ctx } from "./support/ctx.js";
import { freePort } from "./support/free-port.js";
import { startTestBroker, writeTestConfig } from "./support/test-broker.js";

const SECRET = "correct horse battery staple";
let dir: string;
let ids: { identity: string; recipient: string }[];

async function seal(n: number, k: number, alarms: Envelope["meta"]["alarms"] = []): Promise<Envelope> {
  return sealEnvelope({
    name: "aws-root",
    secret: Buffer.from(SECRET),
    custodians: ids.slice(0, n).map((c, i) => ({ name: `c${i + 1}`, recipient: c.recipient })),
    threshold: k,
    alarms,
    now: Date.now(),
    rotationDays: 30,
  });
}
const identityOf = (who: string) =>
  readFileSync(join(dir, `${who}.key`), "utf8")
    .split("\n")
    .find((l) => l.startsWith("AGE-SECRET-KEY-")) ?? "";
const shareOf = (e: Envelope, i: number) => decryptShare(e, (ids[i] as { identity: string }).identity);

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "bg-vault-"));
  ids = await Promise.all(Array.from({ length: 5 }, () => newCustodianIdentity()));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("envelopes", () => {
  it("open with any k of n custodians: 2-of-3 and 3-of-5", async () => {
    const e23 = await seal(3, 2);
    for (const [a, b] of [
      [0, 1],
      [0, 2],
      [1, 2],
    ] as const) {
      const opened = await openEnvelope(e23, [await shareOf(e23, a), await shareOf(e23, b)]);
      expect(opened.secret.toString()).toBe(SECRET);
    }
    const e35 = await seal(5, 3);
    const opened = await openEnvelope(e35, [await shareOf(e35, 4), await shareOf(e35, 1), await shareOf(e35, 2)]);
    expect(opened.secret.toString()).toBe(SECRET);
  });

  it("refuse fewer than k, a custodian twice, and an envelope edited to need fewer", async () => {
    const e = await seal(5, 3);
    await expect(openEnvelope(e, [await shareOf(e, 0), await shareOf(e, 1)])).rejects.toMatchObject({
      code: "ERR_FORBIDDEN",
      message: expect.stringContaining("2 share(s) of 3 needed"),
    });
    await expect(
      openEnvelope(e, [await shareOf(e, 0), await shareOf(e, 0), await shareOf(e, 1)]),
    ).rejects.toMatchObject({
      message: expect.stringContaining("two shares from c1"),
    });
    // k-1 shares reveal nothing: lowering the threshold in the file does not help.
    const lowered = { ...e, meta: { ...e.meta, threshold: 2 } };
    await expect(openEnvelope(lowered, [await shareOf(lowered, 0), await shareOf(lowered, 1)])).rejects.toMatchObject({
      code: "ERR_VALIDATION",
      message: expect.stringContaining("were altered"),
    });
    await expect(
      sealEnvelope({
        name: "x",
        secret: Buffer.from("s"),
        custodians: [
          { name: "a", recipient: ids[0]?.recipient ?? "" },
          { name: "b", recipient: ids[0]?.recipient ?? "" },
        ],
        threshold: 2,
        alarms: [],
        now: 0,
        rotationDays: 30,
      }),
    ).rejects.toMatchObject({ message: "custodian b is listed twice" });
  });

  it("rekey needs a threshold of the current custodians, and only the new set opens the result", async () => {
    const e = await seal(3, 2);
    const next = {
      custodians: [3, 4].map((i) => ({ name: `c${i + 1}`, recipient: (ids[i] as { recipient: string }).recipient })),
      threshold: 2,
      now: Date.now(),
    };
    await expect(rekeyEnvelope(e, [await shareOf(e, 0)], next)).rejects.toMatchObject({ code: "ERR_FORBIDDEN" });
    const fresh = await rekeyEnvelope(e, [await shareOf(e, 0), await shareOf(e, 2)], next);
    const opened = await openEnvelope(fresh, [await shareOf(fresh, 3), await shareOf(fresh, 4)]);
    expect(opened.secret.toString()).toBe(SECRET);
    await expect(shareOf(fresh, 0)).rejects.toMatchObject({ code: "ERR_FORBIDDEN" });
  });

  it("refuse tampered metadata, shares and ciphertext, saying so", async () => {
    const e = await seal(3, 2);
    const two = async (env: Envelope) => openEnvelope(env, [await shareOf(env, 0), await shareOf(env, 1)]);
    const altered = [
      { ...e, meta: { ...e.meta, alarms: [{ type: "webhook" as const, url: "https://attacker.example/quiet" }] } },
      { ...e, meta: { ...e.meta, rotationDueAt: "2099-01-01T00:00:00.000Z" } },
      { ...e, cipher: { ...e.cipher, data: Buffer.from("x".repeat(28)).toString("base64") } },
    ];
    for (const env of altered) {
      await expect(two(env)).rejects.toMatchObject({
        message: expect.stringMatching(/does not open: its metadata, shares or ciphertext were altered/),
      });
    }
    const badShare = {
      ...e,
      shares: e.shares.map((s, i) => (i === 0 ? { ...s, age: Buffer.from("junk").toString("base64") } : s)),
    };
    await expect(shareOf(badShare, 0)).rejects.toMatchObject({ message: expect.stringContaining("does not decrypt") });
    await expect(decryptShare(e, (ids[4] as { identity: string }).identity)).rejects.toMatchObject({
      code: "ERR_FORBIDDEN",
    });
    expect(() => parseEnvelope("{}")).toThrow(/not an envelope/);
  });
});

describe("breakglass vault (CLI, offline)", () => {
  let server: Server;
  const received: Record<string, unknown>[] = [];
  beforeAll(async () => {
    server = createServer((req, res) => {
      let body = "";
      req.on("data", (c: Buffer) => {
        body += c.toString("utf8");
      });
      req.on("end", () => {
        received.push(JSON.parse(body) as Record<string, unknown>);
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  });
  afterAll(() => server.close());

  it("seals, opens with two custodians' files, announces, records; --exec keeps the secret off stdout", async () => {
    requireBuild();
    const cwd = dir;
    const bg = (args: string[], input?: string) => runCli(args, {}, { cwd, ...(input === undefined ? {} : { input }) });
    for (const c of ["alice", "bob", "carol"]) {
      const k = await bg(["vault", "custodian-keygen", "--out", `${c}.key`]);
      expect(k.code).toBe(0);
      writeFileSync(join(cwd, `${c}.pub`), k.stdout);
    }
    writeFileSync(join(cwd, "secret.txt"), SECRET);
    const port = (server.address() as AddressInfo).port;
    const sealed = await bg([
      "vault",
      "seal",
      "--name",
      "aws-root",
      "--secret-file",
      "secret.txt",
      "--custodians",
      "alice.pub,bob.pub,carol.pub",
      "--threshold",
      "2",
      "--out",
      "aws-root.envelope",
      "--alarm-webhook",
      `http://127.0.0.1:${port}/hook`,
    ]);
    expect(sealed.code).toBe(0);
    expect(readFileSync(join(cwd, "aws-root.envelope"), "utf8")).not.toContain(SECRET);

    const one = await bg(
      ["vault", "open", "aws-root.envelope", "--reason", "SSO down", "--incident", "INC-9", "--identity", "alice.key"],
      "\n",
    );
    expect(one.code).toBe(1);
    expect(one.stderr).toContain("1 share(s) of 2 needed");

    const opened = await bg([
      "vault",
      "open",
      "aws-root.envelope",
      "--reason",
      "SSO down",
      "--incident",
      "INC-9",
      "--identity",
      "alice.key",
      "--identity",
      "carol.key",
    ]);
    expect(opened.code).toBe(0);
    expect(opened.stdout).toBe(SECRET);
    expect(opened.stderr).toContain("Opening announced: delivered to 1 endpoint(s)");
    expect(received[0]).toMatchObject({
      severity: "critical",
      event: { type: "vault.opened", incident: "INC-9", reason: "SSO down" },
    });

    const viaExec = await bg([
      "vault",
      "open",
      "aws-root.envelope",
      "--reason",
      "rotate it",
      "--incident",
      "INC-9",
      "--identity",
      "bob.key",
      "--identity",
      "carol.key",
      "--exec",
      "--",
      "sh",
      "-c",
      'test "$BREAKGLASS_SECRET" = "correct horse battery staple" && echo handed-over',
    ]);
    expect(viaExec.code).toBe(0);
    expect(viaExec.stdout.trim()).toBe("handed-over");

    const envelope = parseEnvelope(readFileSync(join(cwd, "aws-root.envelope"), "utf8"));
    const records = parseRecords(readFileSync(join(cwd, "aws-root.envelope.openings.jsonl"), "utf8"));
    expect(records).toHaveLength(2);
    expect(verifyRecords(envelope, records)).toBeNull();
    expect(JSON.parse(records[1]?.payload ?? "{}")).toMatchObject({
      reason: "rotate it",
      custodians: [{ name: "bob" }, { name: "carol" }],
    });
    expect((await bg(["vault", "verify-records", "aws-root.envelope"])).stdout).toContain("OK: 2 opening record(s)");
    // An edited record fails verification.
    const edited = readFileSync(join(cwd, "aws-root.envelope.openings.jsonl"), "utf8").replace("rotate it", "routine");
    writeFileSync(join(cwd, "aws-root.envelope.openings.jsonl"), edited);
    const check = await bg(["vault", "verify-records", "aws-root.envelope"]);
    expect(check.code).toBe(4);
    expect(check.stderr).toContain("record 2: its hash does not match");
  });

  it("opens with no network at all (a network namespace): the emergency wins, the alarm is left pending, loudly", async () => {
    const cwd = dir;
    const bg = (args: string[]) => runCli(args, {}, { cwd });
    const port = (server.address() as AddressInfo).port;
    writeFileSync(join(cwd, "db.txt"), "db-admin-password");
    await bg([
      "vault",
      "seal",
      "--name",
      "db",
      "--secret-file",
      "db.txt",
      "--custodians",
      "alice.pub,bob.pub,carol.pub",
      "--threshold",
      "2",
      "--out",
      "db.envelope",
      "--alarm-webhook",
      `http://127.0.0.1:${port}/hook`,
    ]);
    // util-linux `unshare -rn`: a user and network namespace with nothing in it — not even the
    // loopback this test's webhook listens on. No broker, no IdP, no network.
    const offline = (args: string[]) => runCli(args, {}, { cwd, wrap: ["unshare", "-rn"] });
    const opened = await offline([
      "vault",
      "open",
      "db.envelope",
      "--reason",
      "network down",
      "--incident",
      "INC-10",
      "--identity",
      "alice.key",
      "--identity",
      "bob.key",
    ]);
    expect(opened.code).toBe(0);
    expect(opened.stdout).toBe("db-admin-password");
    expect(opened.stderr).toContain("NO ALARM WAS DELIVERED");
    // One pending alarm file per opening, named after its record (issue 19: never overwritten).
    const pendingFiles = readdirSync(cwd).filter((f) => /^db\.envelope\.pending-alarm\.1-[0-9a-f]{16}\.json$/.test(f));
    expect(pendingFiles).toHaveLength(1);
    const pending = JSON.parse(readFileSync(join(cwd, pendingFiles[0] as string), "utf8")) as {
      record: { seq: number };
      event: { incident: string };
    };
    expect(pending).toMatchObject({ record: { seq: 1 }, event: { incident: "INC-10" } });
    const records = parseRecords(readFileSync(join(cwd, "db.envelope.openings.jsonl"), "utf8"));
    expect(JSON.parse(records[0]?.payload ?? "{}")).toMatchObject({ alarm: "pending" });

    // Later, the network is back: the pending alarm goes to the envelope's endpoint.
    const before = received.length;
    const flushed = await bg(["vault", "flush-alarms", "db.envelope"]);
    expect(flushed.code).toBe(0);
    expect(received.slice(before)).toEqual([
      expect.objectContaining({ event: expect.objectContaining({ incident: "INC-10", delayed: true }) }),
    ]);
    expect((await bg(["vault", "flush-alarms", "db.envelope"])).stderr).toContain("No pending alarm");
  });

  it("opens interactively in a terminal: two custodians paste their identities at prompts that do not echo", async () => {
    const cwd = dir;
    const identity = (who: string) =>
      readFileSync(join(cwd, `${who}.key`), "utf8")
        .split("\n")
        .find((l) => l.startsWith("AGE-SECRET-KEY-")) ?? "";
    // util-linux `script` gives the CLI a real pseudo-terminal.
    const command = `node ${JSON.stringify(join(process.cwd(), "bin", "breakglass.js"))} vault open db.envelope --reason "interactive ceremony" --incident INC-11`;
    const child = spawn("script", ["-qfec", command, "/dev/null"], { cwd, stdio: ["pipe", "pipe", "pipe"] });
    let screen = "";
    const answered = new Set<number>();
    const done = new Promise<number | null>((resolve) => child.on("close", resolve));
    child.stdout.on("data", (c: Buffer) => {
      screen += c.toString("utf8");
      for (const [n, who] of [
        [1, "bob"],
        [2, "carol"],
      ] as const) {
        if (!answered.has(n) && screen.includes(`Custodian ${n} of 2`)) {
          answered.add(n);
          child.stdin.write(`${identity(who)}\r`);
        }
      }
    });
    const code = await done;
    expect(code).toBe(0);
    expect(screen).toContain("share of bob");
    expect(screen).toContain("share of carol");
    expect(screen).toContain("db-admin-password");
    // Nothing typed at the prompts was echoed to the terminal.
    expect(screen).not.toContain(identity("bob"));
    expect(screen).not.toContain(identity("carol"));
    expect(screen).not.toContain(identity("bob").slice(15, 40));
  });

  it("status shows a used envelope red; rotate seals the new secret for the same custodians, naming the old", async () => {
    const cwd = dir;
    const bg = (args: string[]) => runCli(args, {}, { cwd });
    const status = await bg(["vault", "status", "db.envelope"]);
    expect(status.code).toBe(6);
    expect(status.stdout).toContain("USED: opened");
    writeFileSync(join(cwd, "db2.txt"), "new-db-admin-password");
    const rotated = await bg(["vault", "rotate", "db.envelope", "--secret-file", "db2.txt", "--out", "db-2.envelope"]);
    expect(rotated.code).toBe(0);
    const old = parseEnvelope(readFileSync(join(cwd, "db.envelope"), "utf8"));
    const fresh = parseEnvelope(readFileSync(join(cwd, "db-2.envelope"), "utf8"));
    expect(fresh.meta).toMatchObject({ name: "db", threshold: 2, replaces: { id: old.meta.id, name: "db" } });
    expect(fresh.meta.custodians.map((c) => c.fingerprint)).toEqual(old.meta.custodians.map((c) => c.fingerprint));
    const opened = await bg([
      "vault",
      "open",
      "db-2.envelope",
      "--reason",
      "check",
      "--incident",
      "INC-12",
      "--identity",
      "alice.key",
      "--identity",
      "carol.key",
    ]);
    expect(opened.stdout).toBe("new-db-admin-password");
    // The replacement link is authenticated like the rest of the metadata.
    const { replaces: _dropped, ...metaWithoutLink } = fresh.meta;
    const unlinked: Envelope = { ...fresh, meta: metaWithoutLink };
    const shares = [
      await decryptShare(unlinked, identityOf("alice")),
      await decryptShare(unlinked, identityOf("carol")),
    ];
    await expect(openEnvelope(unlinked, shares)).rejects.toMatchObject({
      message: expect.stringContaining("were altered"),
    });
  });

  it("rekeys to a changed custodian set without a new secret; a passphrase-protected identity opens it", async () => {
    const cwd = dir;
    const bg = (args: string[], input?: string) => runCli(args, {}, { cwd, ...(input === undefined ? {} : { input }) });
    const pass = "dave's long passphrase";
    const mismatch = await bg(["vault", "custodian-keygen", "--passphrase", "--out", "dave.key"], `${pass}\nother\n`);
    expect(mismatch.code).toBe(2);
    expect(mismatch.stderr).toContain("the two passphrases differ; nothing was written");
    const short = await bg(["vault", "custodian-keygen", "--passphrase", "--out", "dave.key"], "short\nshort\n");
    expect(short.code).toBe(1);
    expect(short.stderr).toContain("shorter than 12 characters");
    const dave = await bg(["vault", "custodian-keygen", "--passphrase", "--out", "dave.key"], `${pass}\n${pass}\n`);
    expect(dave.code).toBe(0);
    writeFileSync(join(cwd, "dave.pub"), dave.stdout);
    const daveFile = readFileSync(join(cwd, "dave.key"), "utf8");
    expect(daveFile).toContain("-----BEGIN AGE ENCRYPTED FILE-----");
    expect(daveFile).not.toContain("AGE-SECRET-KEY-");

    writeFileSync(join(cwd, "rk.txt"), "rekey-secret");
    const port = (server.address() as AddressInfo).port;
    const sealed = await bg([
      ...["vault", "seal", "--name", "rk", "--secret-file", "rk.txt", "--threshold", "2", "--out", "rk.envelope"],
      ...["--custodians", "alice.pub,bob.pub,carol.pub", "--alarm-webhook", `http://127.0.0.1:${port}/hook`],
    ]);
    expect(sealed.code).toBe(0);
    const before = received.length;
    const rekeyed = await bg([
      ...["vault", "rekey", "rk.envelope", "--custodians", "bob.pub,carol.pub,dave.pub", "--out", "rk-2.envelope"],
      ...["--identity", "alice.key", "--identity", "bob.key"],
    ]);
    expect(rekeyed.code).toBe(0);
    expect(rekeyed.stdout).toBe("");
    expect(rekeyed.stderr).not.toContain("rekey-secret");
    expect(rekeyed.stderr).toContain("Rekeyed rk by alice and bob: 2 of 3 (bob, carol, dave)");
    expect(received.slice(before)).toEqual([
      expect.objectContaining({
        summary: "TIER-2 ENVELOPE REKEYED: rk (2 of [alice, bob, carol] → 2 of [bob, carol, dave]) by alice and bob",
      }),
    ]);
    const old = parseEnvelope(readFileSync(join(cwd, "rk.envelope"), "utf8"));
    const fresh = parseEnvelope(readFileSync(join(cwd, "rk-2.envelope"), "utf8"));
    expect(fresh.meta.replaces).toMatchObject({
      id: old.meta.id,
      kind: "rekey",
      custodians: old.meta.custodians.filter((c) => c.name !== "carol").map((c) => c.fingerprint),
    });
    expect(fresh.meta.rotationDueAt).toBe(old.meta.rotationDueAt); // the same secret ages on
    expect(fresh.meta.alarms).toEqual(old.meta.alarms);

    const open = (identities: string[], input?: string) =>
      bg(
        [
          ...["vault", "open", "rk-2.envelope", "--reason", "after rekey", "--incident", "INC-13"],
          ...identities.flatMap((f) => ["--identity", f]),
        ],
        input,
      );
    const wrong = await open(["dave.key", "carol.key"], "not the passphrase\n");
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toContain("wrong passphrase");
    const opened = await open(["dave.key", "carol.key"], `${pass}\n`);
    expect(opened.stderr).toContain("Passphrase for dave.key");
    expect(opened.stdout).toBe("rekey-secret");
    // Alice left the custodians: her share is not in the new envelope.
    const removed = await open(["alice.key", "carol.key"]);
    expect(removed.code).toBe(1);
    expect(removed.stderr).toMatch(/identity [0-9a-f]{16} is not a custodian of envelope rk/);

    // The new envelope was opened: its secret has been seen, so a rekey is refused.
    const refused = await bg([
      ...["vault", "rekey", "rk-2.envelope", "--custodians", "bob.pub,carol.pub", "--out", "rk-3.envelope"],
      ...["--identity", "bob.key", "--identity", "carol.key"],
    ]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain("rk was opened 1 time(s): its secret has been seen");
  });

  it("drills: the custodians prove the envelope opens and the alarm path answers; the secret is not shown, the envelope not used", async () => {
    const cwd = dir;
    const bg = (args: string[]) => runCli(args, {}, { cwd });
    writeFileSync(join(cwd, "dr.txt"), "drill-secret-value");
    const port = (server.address() as AddressInfo).port;
    await bg([
      ...["vault", "seal", "--name", "dr", "--secret-file", "dr.txt", "--threshold", "2", "--out", "dr.envelope"],
      ...["--custodians", "alice.pub,bob.pub,carol.pub", "--alarm-webhook", `http://127.0.0.1:${port}/hook`],
    ]);
    expect((await bg(["vault", "open", "dr.envelope", "--drill", "--exec", "--", "true"])).code).toBe(2);
    const before = received.length;
    const drilled = await bg([
      "vault",
      "open",
      "dr.envelope",
      "--drill",
      "--identity",
      "alice.key",
      "--identity",
      "bob.key",
    ]);
    expect(drilled.code).toBe(0);
    expect(drilled.stdout).toBe("");
    expect(drilled.stderr).not.toContain("drill-secret-value");
    expect(drilled.stderr).toContain("DRILL PASSED: dr opens with alice and bob");
    expect(drilled.stderr).toContain("Alarm path verified: delivered to 1 endpoint(s)");
    expect(received.slice(before)).toEqual([
      expect.objectContaining({
        summary: "[DRILL] tier-2 envelope dr opened by alice and bob as a rehearsal (the secret was not shown)",
        event: expect.objectContaining({ drill: true }),
      }),
    ]);
    const status = await bg(["vault", "status", "dr.envelope"]);
    expect(status.code).toBe(0); // a drill is not a use
    expect(status.stdout).toContain("never opened");
    expect(status.stdout).toMatch(/last drill \d{4}-\d\d-\d\d by alice and bob/);
    expect((await bg(["vault", "verify-records", "dr.envelope"])).stdout).toContain("OK: 1 opening record(s)");

    // Imported into the broker: recorded (tagged drill), nothing to review.
    mkdirSync(join(cwd, "drill-broker"));
    writeTestConfig({ dir: join(cwd, "drill-broker") });
    const imported = await bg(["vault", "import-record", "dr.envelope", "--config", "drill-broker/breakglass.yaml"]);
    expect(imported.code).toBe(0);
    const t = await startTestBroker({ dir: join(cwd, "drill-broker"), start: false });
    const broker = t.broker;
    try {
      const events = (await broker.store.readAudit(1, 1000)).filter((e) => e.type === "vault.opened");
      expect(events).toHaveLength(1);
      expect(JSON.parse(events[0]?.payload ?? "{}")).toMatchObject({ data: { name: "dr", drill: true } });
      const [alarm] = routeAlarms(events, broker.config.alarms.routing);
      expect(JSON.parse(alarm?.payload ?? "{}")).toMatchObject({
        severity: "info",
        summary: expect.stringMatching(/^\[DRILL\] /),
      });
      expect(await broker.vault.queue("erin")).toEqual([]);
    } finally {
      await t.stop();
    }
  });

  it("announces by SMTP too: an opening while the mail server is down is mailed by flush-alarms once it is up", async () => {
    const cwd = dir;
    const bg = (args: string[]) => runCli(args, {}, { cwd });
    const port = await freePort();
    writeFileSync(join(cwd, "ca.txt"), "ssh-ca-private-key");
    const sealed = await bg([
      "vault",
      "seal",
      "--name",
      "ssh-ca",
      "--secret-file",
      "ca.txt",
      "--custodians",
      "alice.pub,bob.pub,carol.pub",
      "--threshold",
      "2",
      "--out",
      "ssh-ca.envelope",
      "--alarm-smtp",
      `smtp://127.0.0.1:${port}`,
      "--alarm-to",
      "security@example.com",
    ]);
    expect(sealed.code).toBe(0);
    const opened = await bg([
      "vault",
      "open",
      "ssh-ca.envelope",
      "--reason",
      "CA host lost",
      "--incident",
      "INC-13",
      "--identity",
      "alice.key",
      "--identity",
      "bob.key",
    ]);
    expect(opened.stderr).toContain("NO ALARM WAS DELIVERED");
    const mails: { rcpt: string[]; subject: string; text: string }[] = [];
    const smtp = new SMTPServer({
      authOptional: true,
      disabledCommands: ["STARTTLS"],
      logger: false,
      onData(stream, session, callback) {
        const chunks: Buffer[] = [];
        stream.on("data", (c: Buffer) => chunks.push(c));
        stream.on("end", () => {
          void PostalMime.parse(Buffer.concat(chunks)).then((mail) => {
            mails.push({
              rcpt: session.envelope.rcptTo.map((r) => r.address),
              subject: mail.subject ?? "",
              text: mail.text ?? "",
            });
            callback();
          });
        });
      },
    });
    await new Promise<void>((r) => smtp.listen(port, "127.0.0.1", () => r()));
    try {
      const flushed = await bg(["vault", "flush-alarms", "ssh-ca.envelope"]);
      expect(flushed.code).toBe(0);
      expect(mails).toEqual([
        expect.objectContaining({
          rcpt: ["security@example.com"],
          subject: "[CRITICAL] TIER-2 ENVELOPE OPENED: ssh-ca (INC-13)",
          text: expect.stringContaining('"reason": "CA host lost"'),
        }),
      ]);
    } finally {
      await new Promise<void>((r) => smtp.close(() => r()));
    }
  });

  it("imports verified opening records into the broker's audit log once, paging security", async () => {
    const cwd = dir;
    writeTestConfig({ dir: cwd });
    const imported = await runCli(
      ["vault", "import-record", "aws-root.envelope.bak", "--config", "breakglass.yaml"],
      {},
      { cwd },
    );
    expect(imported.code).not.toBe(0); // no such envelope
    // The aws-root records were edited above; the db envelope's verify.
    const refused = await runCli(
      ["vault", "import-record", "aws-root.envelope", "--config", "breakglass.yaml"],
      {},
      { cwd },
    );
    expect(refused.code).toBe(4);
    expect(refused.stderr).toContain("nothing imported");
    const ok = await runCli(["vault", "import-record", "db.envelope", "--config", "breakglass.yaml"], {}, { cwd });
    expect(ok.stderr).toMatch(/(\d) opening record\(s\) of db imported into the audit log \(0 already there\)/);
    const count = Number(/(\d) opening record/.exec(ok.stderr)?.[1]);
    const again = await runCli(["vault", "import-record", "db.envelope", "--config", "breakglass.yaml"], {}, { cwd });
    expect(again.stderr).toContain(`0 opening record(s) of db imported into the audit log (${count} already there)`);
    const t = await startTestBroker({ dir: cwd, start: false });
    const broker = t.broker;
    try {
      const events = (await broker.store.readAudit(1, 1000)).filter((e) => e.type === "vault.opened");
      expect(events).toHaveLength(count);
      expect(JSON.parse(events[0]?.payload ?? "{}")).toMatchObject({
        data: { name: "db", incident: "INC-10", reason: "network down", alarmAtOpening: "pending" },
      });
      // It pages security like an activation.
      const alarms = routeAlarms(events, broker.config.alarms.routing);
      expect(alarms.map((a) => a.channel)).toEqual(
        expect.arrayContaining([...broker.config.alarms.routing.securityChannels]),
      );
      expect((JSON.parse(alarms[0]?.payload ?? "{}") as { severity: string }).severity).toBe("critical");

      // Each opening waits in the review queue for the vault's reviewers (admin_groups here:
      // erin), never a custodian who opened it.
      const url = await broker.start();
      const tokenOf = async (user: string) =>
        (await broker.tokens.create(ctx("erin"), { user, description: "t" })).token.reveal();
      const [erin, bob] = [await tokenOf("erin"), await tokenOf("bob")];
      const queue = await broker.http.inject({
        method: "GET",
        url: "/api/v1/reviews",
        headers: { authorization: `Bearer ${erin}` },
      });
      const openings = (
        queue.json() as {
          vaultOpenings: { opening: { id: string; custodians: { name: string }[] }; canReview: boolean }[];
        }
      ).vaultOpenings;
      expect(openings).toHaveLength(count);
      expect(openings.every((o) => o.canReview)).toBe(true);
      const first = openings[0]?.opening as { id: string; custodians: { name: string }[] };
      const opener = first.custodians[0]?.name as string;
      const review = (token: string, id: string, outcome: string) =>
        broker.http.inject({
          method: "POST",
          url: `/api/v1/vault-openings/${id}/review`,
          headers: { authorization: `Bearer ${token}` },
          payload: { outcome, notes: "network down during INC-10; secret rotated afterwards" },
        });
      const byOpener = await review(await tokenOf(opener), first.id, "justified");
      expect(byOpener.statusCode).toBe(403);
      expect(byOpener.json()).toMatchObject({
        code: "ERR_FORBIDDEN",
        detail: `${opener} opened envelope db as a custodian and cannot review that opening`,
      });
      if (opener !== "bob")
        expect((await review(bob, first.id, "justified")).json()).toMatchObject({ code: "ERR_FORBIDDEN" });
      const done = await review(erin, first.id, "justified");
      expect(done.statusCode).toBe(200);
      expect(done.json()).toMatchObject({ id: first.id, review: { reviewer: "erin", outcome: "justified" } });
      expect((await review(erin, first.id, "justified")).json()).toMatchObject({ code: "ERR_CONFLICT" });

      // The CLI: the queue shows the rest; an unjustified verdict pages security.
      const env = { BREAKGLASS_URL: url, BREAKGLASS_TOKEN: erin };
      const listed = await runCli(["reviews"], env);
      expect(listed.stdout).toContain("TIER-2 ENVELOPE OPENINGS");
      expect(listed.stdout).not.toContain(first.id);
      const second = openings[1]?.opening.id as string;
      expect(listed.stdout).toContain(second);
      const shown = await runCli(["review", second], env);
      expect(shown.stdout).toContain(`Tier-2 opening ${second}: envelope db`);
      const verdict = await runCli(
        ["review", second, "--outcome", "unjustified", "--notes", "no incident was open at the time"],
        env,
      );
      expect(verdict.stdout).toContain(`Tier-2 opening ${second} of db reviewed: unjustified`);
      const reviewed = (await broker.store.readAudit(1, 10_000)).filter((e) => e.type === "vault.opening_reviewed");
      expect(reviewed).toHaveLength(2);
      const paged = routeAlarms(reviewed.slice(1), broker.config.alarms.routing);
      expect(paged.map((a) => a.channel)).toEqual(
        expect.arrayContaining([...broker.config.alarms.routing.securityChannels]),
      );
      expect(JSON.parse(paged[0]?.payload ?? "{}")).toMatchObject({
        severity: "critical",
        summary: expect.stringContaining("UNJUSTIFIED tier-2 opening: envelope db (INC-"),
      });
    } finally {
      await t.stop();
    }
  });
});
