// biome-ignore-all lint/style/noRestrictedImports: tests bring the runner and real SHA-256 into core
import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { chainHash, GENESIS_HASH, sealEvents } from "./audit-chain.js";
import { columnsMatch } from "./audit-columns.js";
import type { AuditEventDraft, LinkedAuditEvent, SealedAuditEvent } from "./audit-event.js";
import { checkStoredEvent } from "./audit-record.js";
import type { Sha256 } from "./ports/runtime.js";

const sha256: Sha256 = (...parts) => {
  const h = createHash("sha256");
  for (const part of parts) h.update(part);
  return h.digest("hex");
};

const draft = (i: number, data: Record<string, unknown> = {}): AuditEventDraft => ({
  type: "grant.revoked",
  actor: i === 2 ? 'o"brien ✓' : "bob",
  at: 1_767_225_600_000 + i,
  grantId: i === 3 ? null : `g_${i}`,
  roleId: null,
  domain: null,
  target: null,
  justification: i === 2 ? ',"grant":"g_9","incident":' : null,
  incident: null,
  requestId: null,
  sourceAddress: null,
  data,
});

const events = sealEvents(sha256, { seq: 0, hash: GENESIS_HASH }, [
  draft(1, { grant: "g_x", seq: 7, nested: { grant: "g_y" } }),
  draft(2),
  draft(3),
]);
const columnsOf = (e: SealedAuditEvent) => ({ at: e.at, type: e.type, actor: e.actor, grantId: e.grantId });
const linked = (list: readonly SealedAuditEvent[], i: number): LinkedAuditEvent => {
  const e = list[i] as SealedAuditEvent;
  const next = list[i + 1];
  return {
    ...e,
    columns: columnsOf(e),
    prevHash: i === 0 ? GENESIS_HASH : (list[i - 1]?.hash ?? null),
    next: next ? { payload: next.payload, hash: next.hash } : null,
  };
};

describe("columnsMatch", () => {
  it("proves the columns repeat the payload without parsing, undeceived by look-alike keys in data or strings", () => {
    for (const e of events) expect(columnsMatch(e.seq, e.payload, columnsOf(e))).toBe(true);
    const [first, second] = events as [SealedAuditEvent, SealedAuditEvent];
    expect(columnsMatch(1, first.payload, { ...columnsOf(first), grantId: "g_x" })).toBe(false);
    expect(columnsMatch(7, first.payload, columnsOf(first))).toBe(false);
    expect(columnsMatch(2, second.payload, { ...columnsOf(second), grantId: "g_9" })).toBe(false);
    expect(columnsMatch(2, second.payload, { ...columnsOf(second), at: Number.NaN })).toBe(false);
  });
});

describe("checkStoredEvent", () => {
  it("reads the facts from the payload and flags the columns that say otherwise", () => {
    const row = { ...linked(events, 1), columns: { ...columnsOf(events[1] as SealedAuditEvent), actor: "mallory" } };
    const checked = checkStoredEvent(sha256, row);
    expect(checked.record).toMatchObject({ seq: 2, actor: 'o"brien ✓', type: "grant.revoked", grantId: "g_2" });
    expect(checked.integrity).toMatchObject({ problem: "column_mismatch", columns: ["actor"] });
    expect(checkStoredEvent(sha256, linked(events, 1))).toMatchObject({ integrity: null });
  });

  it("refuses a row whose payload was edited, or rewritten with its own hash recomputed", () => {
    const edited = [...events];
    const e = edited[1] as SealedAuditEvent;
    edited[1] = { ...e, payload: e.payload.replace("g_2", "g_5") };
    expect(checkStoredEvent(sha256, linked(edited, 1))).toMatchObject({
      record: null,
      integrity: { problem: "modified" },
    });
    const payload = e.payload.replace("g_2", "g_4");
    edited[1] = { ...e, payload, hash: chainHash(sha256, events[0]?.hash ?? "", payload) };
    const rewritten = checkStoredEvent(sha256, linked(edited, 1));
    expect(rewritten).toMatchObject({ record: null, integrity: { problem: "modified" } });
    expect(rewritten.integrity?.message).toMatch(/event 3 does not chain from it/);
    // The next row sees it too: it no longer chains from its predecessor.
    expect(checkStoredEvent(sha256, linked(edited, 2)).integrity).toMatchObject({ problem: "modified" });
  });
});
