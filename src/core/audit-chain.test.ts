// biome-ignore-all lint/style/noRestrictedImports: tests bring the runner and real SHA-256/Ed25519 into core
import { createHash, generateKeyPairSync, type KeyObject, sign, verify } from "node:crypto";
import { describe, expect, it } from "vitest";
import {
  type ChainVerdict,
  ChainVerifier,
  checkpointMessage,
  eventPayload,
  GENESIS_HASH,
  sealEvents,
  type VerifiableEvent,
} from "./audit-chain.js";
import type { AuditEventDraft, SealedAuditEvent } from "./audit-event.js";
import type { Sha256 } from "./ports/runtime.js";
import type { Checkpoint } from "./records.js";

const sha256: Sha256 = (...parts) => {
  const h = createHash("sha256");
  for (const part of parts) h.update(part);
  return h.digest("hex");
};

const T0 = 1_735_689_600_000;
const utf8 = (text: string) => new TextEncoder().encode(text);
const base64 = (text: string) => Uint8Array.from(atob(text), (c) => c.charCodeAt(0));

const signingKey = generateKeyPairSync("ed25519");
const otherKey = generateKeyPairSync("ed25519");
const KEY_ID = "k-current";

function draft(i: number): AuditEventDraft {
  return {
    type: i % 2 ? "grant.requested" : "grant.approved",
    actor: i % 3 ? "alice" : "bob",
    at: T0 + i * 1000,
    grantId: `g_${i}`,
    roleId: "production/db-admin",
    domain: "production",
    target: "pg-main",
    justification: `replication broken (${i})`,
    incident: "INC-1234",
    requestId: `req_${i}`,
    sourceAddress: "10.0.0.1",
    data: { n: i, note: "é ✓" },
  };
}

function chain(n: number): SealedAuditEvent[] {
  return sealEvents(
    sha256,
    { seq: 0, hash: GENESIS_HASH },
    Array.from({ length: n }, (_, i) => draft(i + 1)),
  );
}

function checkpoint(
  events: readonly VerifiableEvent[],
  seq: number,
  key: KeyObject = signingKey.privateKey,
  keyId = KEY_ID,
): Checkpoint {
  const event = events.find((e) => e.seq === seq);
  if (!event) throw new Error(`no event ${seq}`);
  const unsigned = { seq, hash: event.hash, at: T0 + 10_000_000 + seq, keyId };
  return { ...unsigned, signature: sign(null, utf8(checkpointMessage(unsigned)), key).toString("base64") };
}

const verifySignature = (message: string, cp: Checkpoint): boolean | null =>
  cp.keyId === KEY_ID ? verify(null, utf8(message), signingKey.publicKey, base64(cp.signature)) : null;

function verifyAll(events: readonly VerifiableEvent[], checkpoints: readonly Checkpoint[] = []): ChainVerdict {
  const verifier = new ChainVerifier(
    sha256,
    checkpoints.map((cp) => cp.seq),
  );
  for (const event of events) if (!verifier.push(event)) break;
  return verifier.finish(checkpoints, verifySignature);
}

/** Replace event `seq` (1-based) by `fn(event)`. */
function edit(events: readonly SealedAuditEvent[], seq: number, fn: (e: SealedAuditEvent) => SealedAuditEvent) {
  return events.map((e) => (e.seq === seq ? fn(e) : e));
}

describe("sealEvents", () => {
  it("numbers events from the head and chains SHA-256(prev hash ‖ LF ‖ payload) from the genesis hash", () => {
    const [first, second] = chain(2);
    expect(first?.seq).toBe(1);
    expect(first?.payload).toBe(eventPayload(1, draft(1)));
    expect(first?.hash).toBe(sha256(`${GENESIS_HASH}\n${first?.payload}`));
    expect(second?.hash).toBe(sha256(`${first?.hash}\n${second?.payload}`));
  });

  it("writes the canonical payload: sorted keys, v 1, ISO time, the draft's fields under their wire names", () => {
    expect(JSON.parse(eventPayload(7, draft(7)))).toEqual({
      v: 1,
      seq: 7,
      at: "2025-01-01T00:00:07.000Z",
      type: "grant.requested",
      actor: "alice",
      grant: "g_7",
      role: "production/db-admin",
      domain: "production",
      target: "pg-main",
      justification: "replication broken (7)",
      incident: "INC-1234",
      request_id: "req_7",
      source: "10.0.0.1",
      data: { n: 7, note: "é ✓" },
    });
    expect(eventPayload(7, draft(7)).startsWith('{"actor":"alice","at":"2025-01-01T00:00:07.000Z","data":{')).toBe(
      true,
    );
  });

  it("continues a chain from its head exactly as one batch would", () => {
    const whole = chain(5);
    const head = whole[2];
    if (!head) throw new Error("short chain");
    const rest = sealEvents(sha256, head, [draft(4), draft(5)]);
    expect([...whole.slice(0, 3), ...rest]).toEqual(whole);
  });
});

describe("ChainVerifier", () => {
  const events = chain(100);
  const checkpoints = [checkpoint(events, 20), checkpoint(events, 50), checkpoint(events, 80)];

  it("accepts an untouched chain and reports its head and what the checkpoints leave unanchored", () => {
    expect(verifyAll(events, checkpoints)).toEqual({
      ok: true,
      eventsChecked: 100,
      headSeq: 100,
      headHash: events[99]?.hash,
      checkpointsChecked: 3,
      unanchoredEvents: 20,
    });
  });

  it("accepts an empty log", () => {
    expect(verifyAll([])).toMatchObject({ ok: true, eventsChecked: 0, headSeq: 0, headHash: GENESIS_HASH });
  });

  it("finds a modified payload at its seq", () => {
    const tampered = edit(events, 42, (e) => ({ ...e, payload: e.payload.replace("broken (42)", "fixed (42)") }));
    expect(verifyAll(tampered, checkpoints)).toMatchObject({
      ok: false,
      seq: 42,
      problem: "modified",
      eventsChecked: 41,
    });
  });

  it("finds a modified hash at its seq", () => {
    const tampered = edit(events, 42, (e) => ({ ...e, hash: sha256("forged") }));
    expect(verifyAll(tampered, checkpoints)).toMatchObject({ ok: false, seq: 42, problem: "modified" });
  });

  it("finds an event deleted from the middle", () => {
    const tampered = events.filter((e) => e.seq !== 42);
    const verdict = verifyAll(tampered, checkpoints);
    expect(verdict).toMatchObject({ ok: false, seq: 42, problem: "deleted", eventsChecked: 41 });
    expect(verdict.ok || verdict.message).toMatch(/42\.\.42 are missing/);
  });

  it("finds an event deleted and the rest renumbered to close the gap", () => {
    const tampered = events.filter((e) => e.seq !== 42).map((e) => (e.seq > 42 ? { ...e, seq: e.seq - 1 } : e));
    expect(verifyAll(tampered, checkpoints)).toMatchObject({ ok: false, seq: 42, problem: "deleted" });
  });

  it("finds two swapped events as reordered, at the first of them", () => {
    const tampered = [...events];
    [tampered[41], tampered[42]] = [events[42] as SealedAuditEvent, events[41] as SealedAuditEvent];
    expect(verifyAll(tampered, checkpoints)).toMatchObject({
      ok: false,
      seq: 42,
      problem: "reordered",
      eventsChecked: 41,
    });
  });

  it("finds two events whose contents were swapped between their rows as reordered", () => {
    const a = events[41] as SealedAuditEvent;
    const b = events[42] as SealedAuditEvent;
    const tampered = edit(
      edit(events, 42, () => ({ ...b, seq: 42 })),
      43,
      () => ({ ...a, seq: 43 }),
    );
    expect(verifyAll(tampered, checkpoints)).toMatchObject({ ok: false, seq: 42, problem: "reordered" });
  });

  it("finds an event moved far from its place as reordered", () => {
    const moved = events[41] as SealedAuditEvent;
    const tampered = [...events.slice(0, 41), ...events.slice(42, 90), moved, ...events.slice(90)];
    expect(verifyAll(tampered, checkpoints)).toMatchObject({ ok: false, seq: 42, problem: "reordered" });
  });

  it("finds a duplicated event", () => {
    const tampered = [...events.slice(0, 43), events[42] as SealedAuditEvent, ...events.slice(43)];
    expect(verifyAll(tampered)).toMatchObject({ ok: false, seq: 44, problem: "reordered" });
  });

  it("finds a tail truncated below a signed checkpoint", () => {
    const verdict = verifyAll(events.slice(0, 70), checkpoints);
    expect(verdict).toMatchObject({ ok: false, seq: 71, problem: "truncated", eventsChecked: 70 });
    expect(verdict.ok || verdict.message).toMatch(/71\.\.80 were removed/);
  });

  it("catches a rewritten chain (every hash recomputed) at the first checkpoint it contradicts", () => {
    const drafts = Array.from({ length: 100 }, (_, i) => draft(i + 1));
    drafts[41] = { ...draft(42), actor: "mallory" };
    const rewritten = sealEvents(sha256, { seq: 0, hash: GENESIS_HASH }, drafts);
    const verdict = verifyAll(rewritten, checkpoints);
    expect(verdict).toMatchObject({ ok: false, seq: 50, problem: "checkpoint_mismatch", eventsChecked: 100 });
    expect(verdict.ok || verdict.message).toMatch(/events 21\.\.50 were rewritten/);
  });

  it("rejects a checkpoint whose signature does not match (re-pointed at a rewritten head)", () => {
    const drafts = Array.from({ length: 100 }, (_, i) => draft(i + 1));
    drafts[41] = { ...draft(42), actor: "mallory" };
    const rewritten = sealEvents(sha256, { seq: 0, hash: GENESIS_HASH }, drafts);
    const forged = checkpoints.map((cp) => ({ ...cp, hash: rewritten[cp.seq - 1]?.hash ?? "" }));
    expect(verifyAll(rewritten, forged)).toMatchObject({ ok: false, seq: 50, problem: "bad_signature" });
  });

  it("rejects a checkpoint signed by someone else under the current key id", () => {
    const forged = [checkpoint(events, 20), checkpoint(events, 50, otherKey.privateKey, KEY_ID)];
    expect(verifyAll(events, forged)).toMatchObject({ ok: false, seq: 50, problem: "bad_signature" });
  });

  it("rejects a checkpoint whose signature is not even base64 Ed25519", () => {
    const forged = [{ ...checkpoint(events, 20), signature: "AAAA" }];
    expect(verifyAll(events, forged)).toMatchObject({ ok: false, seq: 20, problem: "bad_signature" });
  });

  it("rejects a checkpoint by a key it does not know", () => {
    const unknown = [checkpoint(events, 20), checkpoint(events, 50, otherKey.privateKey, "k-stranger")];
    const verdict = verifyAll(events, unknown);
    expect(verdict).toMatchObject({ ok: false, seq: 50, problem: "unknown_key" });
    expect(verdict.ok || verdict.message).toMatch(/k-stranger/);
  });

  it("cannot see a tail cut after the last checkpoint: it reports the unanchored events instead (known limitation)", () => {
    const verdict = verifyAll(events.slice(0, 90), checkpoints);
    expect(verdict).toEqual({
      ok: true,
      eventsChecked: 90,
      headSeq: 90,
      headHash: events[89]?.hash,
      checkpointsChecked: 3,
      unanchoredEvents: 10,
    });
  });

  it("ignores events pushed after a settled failure", () => {
    const verifier = new ChainVerifier(sha256);
    const tampered = edit(events, 2, (e) => ({ ...e, hash: GENESIS_HASH }));
    expect(verifier.push(tampered[0] as SealedAuditEvent)).toBe(true);
    // A modified event: the next one tells whether its hash or its payload was changed.
    expect(verifier.push(tampered[1] as SealedAuditEvent)).toBe(true);
    expect(verifier.push(tampered[2] as SealedAuditEvent)).toBe(false);
    expect(verifier.push(tampered[3] as SealedAuditEvent)).toBe(false);
    expect(verifier.failed).toMatchObject({ seq: 2, problem: "modified" });
  });

  it("names the stored column that differs: hash or payload, seq, and index columns against the payload", () => {
    const stored = events.map((e) => ({
      ...e,
      columns: { at: e.at, type: e.type, actor: e.actor, grantId: e.grantId },
    }));
    type Row = (typeof stored)[number];
    const at = (seq: number, fn: (e: Row) => Row) => stored.map((e) => (e.seq === seq ? fn(e) : e));
    expect(verifyAll(stored)).toMatchObject({ ok: true });
    expect(verifyAll(at(42, (e) => ({ ...e, hash: GENESIS_HASH })))).toMatchObject({ seq: 42, column: "hash" });
    expect(verifyAll(at(42, (e) => ({ ...e, payload: e.payload.replace("INC-1234", "INC-9") })))).toMatchObject({
      seq: 42,
      column: "payload",
    });
    // The newest event: with a checkpoint on it, a changed hash is still told from a changed payload.
    const head = at(100, (e) => ({ ...e, hash: GENESIS_HASH }));
    expect(verifyAll(head, [checkpoint(stored, 100)])).toMatchObject({ seq: 100, column: "hash" });
    expect(verifyAll(head)).toMatchObject({ seq: 100, column: null });
    const moved = stored.map((e) => (e.seq === 42 ? { ...e, seq: 1000 } : e)).sort((a, b) => a.seq - b.seq);
    expect(verifyAll(moved)).toMatchObject({ seq: 42, problem: "reordered", column: "seq" });
    for (const [column, patch] of [
      ["at", { at: T0 }],
      ["type", { type: "grant.revoked" }],
      ["actor", { actor: "mallory" }],
      ["grant_id", { grantId: null }],
    ] as const) {
      const verdict = verifyAll(at(42, (e) => ({ ...e, columns: { ...e.columns, ...patch } })));
      expect(verdict).toMatchObject({ ok: false, seq: 42, problem: "column_mismatch", column });
    }
    // From a file (no columns), nothing is said about columns.
    expect(verifyAll(edit(events, 42, (e) => ({ ...e, hash: GENESIS_HASH })))).toMatchObject({ column: null });
  });
});
