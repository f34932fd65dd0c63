/**
 * Audit to SIEMs: a real TLS syslog listener receives every audit event of a grant as an RFC 5424
 * message, octet-counted (RFC 6587), whose body is the event as OCSF JSON carrying the original
 * event and its chain hash; the JSONL export in OCSF shape has one line per event.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import tls from "node:tls";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Broker } from "../src/app.js";
import { exportAudit } from "../src/audit/audit-export.js";
import { ctx as actorCtx } from "./support/ctx.js";
import { selfSignedCert } from "./support/self-signed.js";
import { startTestBroker, type TestBroker } from "./support/test-broker.js";
import { PATIENCE_MS, settle } from "./support/wait.js";

let dir: string;
let t: TestBroker;
let broker: Broker;
let server: tls.Server;
const frames: string[] = [];
const ctx = (actor: string) => actorCtx(actor, { sourceAddress: "10.1.2.3" });

/** Split an RFC 6587 octet-counted stream into messages. */
function deframe(buffer: Buffer): { messages: string[]; rest: Buffer } {
  const messages: string[] = [];
  let b = buffer;
  for (;;) {
    const space = b.indexOf(0x20);
    if (space <= 0) break;
    const len = Number(b.subarray(0, space).toString("ascii"));
    if (!Number.isInteger(len) || b.length < space + 1 + len) break;
    messages.push(b.subarray(space + 1, space + 1 + len).toString("utf8"));
    b = b.subarray(space + 1 + len);
  }
  return { messages, rest: b };
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "bg-siem-"));
  await selfSignedCert({
    certFile: join(dir, "c.pem"),
    keyFile: join(dir, "k.pem"),
    cn: "localhost",
    san: "DNS:localhost",
  });
  server = tls.createServer({ cert: readFileSync(join(dir, "c.pem")), key: readFileSync(join(dir, "k.pem")) }, (s) => {
    let buf: Buffer = Buffer.alloc(0);
    s.on("data", (c: Buffer) => {
      const { messages, rest } = deframe(Buffer.concat([buf, c]));
      frames.push(...messages);
      buf = rest;
    });
    s.on("end", () => s.end());
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as AddressInfo).port;
  t = await startTestBroker({
    base: "minimal",
    dir,
    config: {
      alarms: {
        channels: {
          siem: { type: "syslog", host: "localhost", port, tls: true, ca_file: "./c.pem", facility: 13 },
        },
        security_channels: ["siem"],
        routes: [{ events: ["*"], channels: ["siem"] }],
      },
      admin_groups: ["leads"],
      users: { alice: { name: "Alice" }, bob: { name: "Bob" } },
      groups: { oncall: ["alice"], leads: ["bob"] },
      domains: {
        production: {
          roles: { restart: { target: "box", max_duration: "1h", approval: "1 of leads", requesters: ["oncall"] } },
        },
      },
      targets: { box: { connector: "exec", settings: { grant: ["true"], revoke: ["true"] } } },
    },
  });
  broker = t.broker;
});

afterAll(async () => {
  await t?.stop();
  server?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("audit to a SIEM", () => {
  it("sends every event of a grant over TLS syslog as RFC 5424 + OCSF, with the original event and its hash", async () => {
    const g = await broker.service.request(ctx("alice"), {
      roleId: "production/restart",
      justification: "disk full on db-1",
      incident: "INC-5",
    });
    await broker.service.approve(ctx("bob"), g.id, null);
    await broker.service.release(ctx("alice"), g.id);
    const events = await broker.store.readGrantAudit([g.id]);
    const mine = await settle(
      () => frames.filter((f) => f.includes(g.id)),
      (sent) => sent.length >= events.length,
      PATIENCE_MS,
      100,
    );
    expect(mine).toHaveLength(events.length);
    for (const e of events) {
      const frame = mine.find((f) => f.includes(`"uid":"${e.seq}"`));
      expect(frame, `event ${e.seq} ${e.type}`).toBeDefined();
      // <PRI>1 TIMESTAMP HOST APP PROCID MSGID - BOM MSG
      const m = /^<(\d+)>1 (\S+) (\S+) breakglass (\d+) (\S+) - \ufeff(\{.*\})$/.exec(frame ?? "");
      expect(m, frame).not.toBeNull();
      const [, pri, timestamp, , , msgid, json] = m as unknown as string[];
      expect(Math.floor(Number(pri) / 8)).toBe(13);
      expect(timestamp).toBe(new Date(e.at).toISOString());
      expect(msgid).toBe(e.type.slice(0, 32));
      // biome-ignore lint/suspicious/noExplicitAny: checked with expect(), field by field
      const ocsf = JSON.parse(json as string) as Record<string, any>;
      expect(ocsf.unmapped.breakglass).toMatchObject(JSON.parse(e.payload));
      expect(ocsf.metadata.labels).toEqual([`chain-hash:${e.hash}`]);
      expect(ocsf.actor.user.name).toBe(e.actor);
      expect(ocsf.src_endpoint?.ip ?? null).toBe(JSON.parse(e.payload).source);
      if (e.type === "grant.activated") {
        expect(ocsf).toMatchObject({ class_uid: 3001, activity_name: "Attach Policy", type_uid: 300107 });
        // Activations go to security: syslog severity from the alarm's (warning → 4).
        expect(Number(pri) % 8).toBe(4);
      }
      if (e.type === "grant.requested") expect(ocsf).toMatchObject({ class_uid: 6003, activity_name: "Create" });
      if (e.type === "grant.released") expect(ocsf).toMatchObject({ class_uid: 3001, activity_name: "Detach Policy" });
    }
  });

  it("exports the log as OCSF JSON lines, one per event", async () => {
    const lines: string[] = [];
    const summary = await exportAudit(broker.store, (line) => lines.push(line), { format: "ocsf" });
    expect(lines).toHaveLength(summary.events);
    const all = await broker.store.readAudit(1, 100_000);
    expect(lines.map((l) => (JSON.parse(l) as { metadata: { uid: string } }).metadata.uid)).toEqual(
      all.map((e) => String(e.seq)),
    );
    expect(lines.every((l) => [3001, 3002, 6003].includes((JSON.parse(l) as { class_uid: number }).class_uid))).toBe(
      true,
    );
  });
});
