import { generateKeyPairSync } from "node:crypto";
import { createInterface } from "node:readline";
import { Readable } from "node:stream";
import { describe, expect, it } from "vitest";
import { sha256 } from "../adapters/node-crypto.js";
import { checkpointMessage, GENESIS_HASH, sealEvents } from "../core/audit-chain.js";
import type { AuditEventDraft } from "../core/audit-event.js";
import { checkpointLine, eventLine } from "./audit-export.js";
import { formatVerdict, verifyJsonl } from "./audit-verify.js";
import { loadPublicKeys, signingKeyFromPem } from "./signing-key.js";

const key = signingKeyFromPem(
  generateKeyPairSync("ed25519").privateKey.export({ format: "pem", type: "pkcs8" }).toString(),
);
const keys = loadPublicKeys([key.publicKeyPem]);

function draft(i: number): AuditEventDraft {
  return {
    type: "token.created",
    actor: "erin",
    at: 1_767_225_600_000 + i,
    grantId: null,
    roleId: null,
    domain: null,
    target: null,
    justification: null,
    incident: null,
    requestId: `r${i}`,
    sourceAddress: null,
    data: { token: `t_${i}` },
  };
}

/** A JSONL export of `n` events with a checkpoint at `cpSeq`. */
function file(n: number, cpSeq: number): string[] {
  const events = sealEvents(
    sha256,
    { seq: 0, hash: GENESIS_HASH },
    Array.from({ length: n }, (_, i) => draft(i + 1)),
  );
  const at = events[cpSeq - 1];
  if (!at) throw new Error("no such event");
  const unsigned = { seq: cpSeq, hash: at.hash, at: 0, keyId: key.keyId };
  const cp = { ...unsigned, signature: key.sign(checkpointMessage(unsigned)) };
  return [checkpointLine(cp), ...events.map((e) => eventLine(e.seq, e.hash, e.payload))];
}

describe("verifyJsonl", () => {
  it("reads a file line by line from a stream, with CRLF line ends and blank lines", async () => {
    const text = `${file(20, 15).join("\r\n")}\r\n\r\n`;
    const lines = createInterface({ input: Readable.from([text]), crlfDelay: Number.POSITIVE_INFINITY });
    expect(await verifyJsonl(lines, keys.verifySignature)).toMatchObject({
      ok: true,
      eventsChecked: 20,
      checkpointsChecked: 1,
      unanchoredEvents: 5,
    });
  });

  it("accepts an empty file as an empty log, and a file of checkpoints alone as truncated", async () => {
    expect(await verifyJsonl([], keys.verifySignature)).toMatchObject({ ok: true, eventsChecked: 0 });
    expect(await verifyJsonl(file(3, 2).slice(0, 1), keys.verifySignature)).toMatchObject({
      ok: false,
      seq: 1,
      problem: "truncated",
    });
  });

  it("names malformed checkpoint and event lines", async () => {
    const lines = file(3, 2);
    const bad = (i: number, line: string) =>
      verifyJsonl(
        lines.map((l, j) => (j === i ? line : l)),
        keys.verifySignature,
      );
    expect(await bad(0, '{"kind":"checkpoint","seq":2}')).toMatchObject({
      ok: false,
      message: "line 1 is a checkpoint without hash, keyId or signature",
    });
    expect(await bad(2, '{"kind":"event","seq":2,"hash":"x","event":[]}')).toMatchObject({
      ok: false,
      seq: 2,
      message: "line 3 has no event object",
    });
    expect(await bad(2, "[1]")).toMatchObject({ ok: false, message: "line 3 is not a JSON object" });
  });
});

describe("formatVerdict", () => {
  const ok = {
    ok: true,
    eventsChecked: 10_000,
    headSeq: 10_000,
    headHash: "3f2a".repeat(16),
    checkpointsChecked: 3,
    unanchoredEvents: 12,
  } as const;

  it("summarises a good log, its head and what is not yet pinned by a checkpoint", () => {
    expect(formatVerdict(ok)).toBe(
      "OK: 10,000 events, head 10000 3f2a3f2a3f2a3f2a…, 3 checkpoints, 12 events after the last checkpoint",
    );
    expect(formatVerdict({ ...ok, unanchoredEvents: 0 })).toMatch(/3 checkpoints, the head is checkpointed$/);
    expect(formatVerdict({ ...ok, checkpointsChecked: 0, unanchoredEvents: 10_000 })).toMatch(
      /0 checkpoints, no checkpoint yet: nothing is pinned by a signature$/,
    );
    expect(formatVerdict({ ...ok, eventsChecked: 0, headSeq: 0, checkpointsChecked: 0 })).toBe(
      "OK: empty log, 0 checkpoints",
    );
  });

  it("leads with the first bad seq and the problem", () => {
    expect(
      formatVerdict({
        ok: false,
        seq: 42,
        problem: "modified",
        column: null,
        message: "event 42 does not hash",
        eventsChecked: 41,
      }),
    ).toBe("FAILED at seq 42: modified — event 42 does not hash (41 events verified before it)");
  });

  it("names the column found changed", () => {
    const failure = { ok: false as const, seq: 42, problem: "column_mismatch" as const, eventsChecked: 41 };
    expect(formatVerdict({ ...failure, column: "actor", message: "event 42's actor column says …" })).toBe(
      "FAILED at seq 42, column actor: column_mismatch — event 42's actor column says … (41 events verified before it)",
    );
  });
});
