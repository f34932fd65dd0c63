import { describe, expect, it } from "vitest";
import { sha256 } from "../adapters/node-crypto.js";
import { statementEntry, statementsDigest } from "../core/recording-digest.js";
import type { StatementBatch, StatementRecord } from "../core/records.js";
import { sealBatches, unpackStatements } from "../core/statement-batch.js";
import { createRecorder, type RecordingWrite } from "./recorder.js";

const statement = (sessionId: string, seq: number): StatementRecord => ({
  grantId: "g_1",
  sessionId,
  seq,
  startedAt: 1000 + seq,
  endedAt: 1001 + seq,
  kind: "simple",
  text: `SELECT ${seq} -- of ${sessionId}\n`,
  params: null,
  rows: 1,
  tag: "SELECT 1",
  error: null,
  bytes: 10,
});

/** A store's stand-in in memory: what was committed, and a switch that makes writes fail. */
function memoryWriter(): { write: RecordingWrite; stored: StatementBatch[]; fail: { on: boolean }; writes: number } {
  const state = {
    stored: [] as StatementBatch[],
    fail: { on: false },
    writes: 0,
    write: (async (gathered, before) => {
      state.writes += 1;
      await new Promise((r) => setTimeout(r, 1));
      if (state.fail.on) throw new Error("disk full");
      const { batches, digests } = sealBatches(sha256, gathered, before);
      state.stored.push(...batches);
      return digests;
    }) as RecordingWrite,
  };
  return state;
}

const storedStatements = (stored: readonly StatementBatch[], sessionId: string) =>
  stored.filter((b) => b.sessionId === sessionId).flatMap((b) => unpackStatements(b));

describe("createRecorder", () => {
  it("writes each session's statements in order, a batch per session per write, and seals what it stored", async () => {
    const w = memoryWriter();
    const recorder = createRecorder({ write: w.write, flushMs: 10_000, batchSize: 1000, log: () => {} });
    const a = [1, 2, 3].map((n) => statement("s_a", n));
    const b = [1, 2].map((n) => statement("s_b", n));
    for (const s of [a[0], b[0], a[1], b[1], a[2]] as StatementRecord[]) recorder.record(s, statementEntry(s));
    await recorder.flush();
    expect(w.stored.map((x) => [x.sessionId, x.firstSeq, x.lastSeq])).toEqual([
      ["s_a", 1, 3],
      ["s_b", 1, 2],
    ]);
    const more = statement("s_a", 4);
    recorder.record(more, statementEntry(more));
    expect(await recorder.seal("s_a")).toEqual({ digest: statementsDigest(sha256, [...a, more]), statements: 4 });
    expect(storedStatements(w.stored, "s_a")).toEqual([...a, more]);
    expect(await recorder.seal("s_b")).toEqual({ digest: statementsDigest(sha256, b), statements: 2 });
    // A session with nothing recorded seals the empty recording.
    expect(await recorder.seal("s_none")).toEqual({ digest: "0".repeat(64), statements: 0 });
  });

  it("writes at once when a batch's worth is waiting, without waiting for the timer", async () => {
    const w = memoryWriter();
    const recorder = createRecorder({ write: w.write, flushMs: 60_000, batchSize: 3, log: () => {} });
    for (let n = 1; n <= 3; n++) recorder.record(statement("s_a", n), statementEntry(statement("s_a", n)));
    await new Promise((r) => setTimeout(r, 50));
    expect(w.stored.map((x) => [x.firstSeq, x.lastSeq])).toEqual([[1, 3]]);
    await recorder.close();
  });

  it("keeps a failed write's statements, reports failing, and writes them first, once, when storage is back", async () => {
    const w = memoryWriter();
    const logs: string[] = [];
    const recorder = createRecorder({ write: w.write, flushMs: 5, batchSize: 1000, log: (m) => logs.push(m) });
    w.fail.on = true;
    const first = [1, 2].map((n) => statement("s_a", n));
    for (const s of first) recorder.record(s, statementEntry(s));
    await expect(recorder.flush()).rejects.toThrow(/disk full/);
    expect(recorder.failing).toBe(true);
    await expect(recorder.seal("s_a")).rejects.toThrow(/disk full/);
    const later = statement("s_a", 3);
    recorder.record(later, statementEntry(later));
    w.fail.on = false;
    // The recorder tries again by itself.
    for (let i = 0; i < 200 && recorder.failing; i++) await new Promise((r) => setTimeout(r, 5));
    expect(recorder.failing).toBe(false);
    expect(await recorder.seal("s_a")).toEqual({
      digest: statementsDigest(sha256, [...first, later]),
      statements: 3,
    });
    expect(storedStatements(w.stored, "s_a")).toEqual([...first, later]);
    expect(logs).toEqual(["recording storage failed; the gateway refuses new statements", "recording storage is back"]);
    await recorder.close();
  });

  it("writes what is left when it closes, then closes its writer", async () => {
    const w = memoryWriter();
    let writerClosed = false;
    const recorder = createRecorder({
      write: w.write,
      closeWriter: async () => {
        writerClosed = true;
      },
      flushMs: 60_000,
      batchSize: 1000,
      log: () => {},
    });
    recorder.record(statement("s_a", 1), statementEntry(statement("s_a", 1)));
    await recorder.close();
    expect(storedStatements(w.stored, "s_a")).toEqual([statement("s_a", 1)]);
    expect(writerClosed).toBe(true);
  });
});
