/**
 * A gateway session's statements stored as batches read back field for field, and the entry
 * the seal hashes is the RFC 8785 canonical JSON of the statement — checked against
 * {@link canonicalJson} on generated statements, since the gateway computes it the fast way.
 */
// biome-ignore lint/style/noRestrictedImports: the test tools are not part of core's runtime
import fc from "fast-check";
// biome-ignore lint/style/noRestrictedImports: the test runner is not part of core's runtime
import { describe, expect, it } from "vitest";
import { canonicalJson } from "./canonical-json.js";
import { statementEntry } from "./recording-digest.js";
import type { StatementRecord } from "./records.js";
import { byStart, packStatements, unpackStatements } from "./statement-batch.js";

/** Texts as a client can send them: any Unicode, lone surrogates, quotes, backslashes, controls. */
const text = fc.oneof(
  fc.string({ unit: "binary" }),
  fc.string({ unit: fc.constantFrom("\\", '"', "\n", "\u0000", "\u2028", "\ud800", "\udfff", "é", "😀", "a") }),
);
const statement = (sessionId: string, seq: number): fc.Arbitrary<StatementRecord> =>
  fc.record({
    grantId: fc.constant("g_1"),
    sessionId: fc.constant(sessionId),
    seq: fc.constant(seq),
    startedAt: fc.integer({ min: 0, max: 2 ** 50 }),
    endedAt: fc.option(fc.integer({ min: 0, max: 2 ** 50 })),
    kind: fc.constantFrom("simple", "extended", "blocked", "function", "prepare"),
    text,
    params: fc.option(fc.array(fc.option(text))),
    rows: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
    tag: fc.option(text),
    error: fc.option(text),
    bytes: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
  });
const session = (id: string) =>
  fc.integer({ min: 1, max: 12 }).chain((n) => fc.tuple(...Array.from({ length: n }, (_, i) => statement(id, i + 1))));

describe("statementEntry", () => {
  it("is the canonical JSON (RFC 8785) of the statement's fields", () => {
    fc.assert(
      fc.property(statement("s_1", 1), (s) => {
        const entry = statementEntry(s);
        // One entry a line: the recorder passes a batch's entries joined by line breaks.
        expect(entry.includes("\n")).toBe(false);
        expect(entry).toBe(
          canonicalJson([s.seq, s.startedAt, s.endedAt, s.kind, s.text, s.params, s.rows, s.tag, s.error, s.bytes]),
        );
      }),
      { numRuns: 2000 },
    );
  });
});

describe("packStatements / unpackStatements", () => {
  it("stores each session's statements as one batch and reads every field back", () => {
    fc.assert(
      fc.property(session("s_a"), session("s_b"), (a, b) => {
        // Interleaved as the recorder gets them; each session's own in seq order.
        const mixed = [...a, ...b].sort((x, y) => x.startedAt - y.startedAt || x.seq - y.seq);
        const inOrder = [...a, ...b];
        const batches = packStatements(inOrder);
        expect(batches.map((x) => [x.sessionId, x.firstSeq, x.lastSeq, x.startedAt])).toEqual([
          ["s_a", 1, a.length, a[0]?.startedAt],
          ["s_b", 1, b.length, b[0]?.startedAt],
        ]);
        const back = batches.flatMap((x) => unpackStatements(x));
        expect(back).toEqual(inOrder);
        expect([...back].sort(byStart).map((s) => s.startedAt)).toEqual(
          [...mixed].sort(byStart).map((s) => s.startedAt),
        );
      }),
      { numRuns: 300 },
    );
  });

  it("reads a batch edited into something the recorder never writes as one statement no seal covers", () => {
    const stored = { grantId: "g_1", sessionId: "s_1", firstSeq: 4 };
    for (const entries of [
      "[[4, 0, 0, ",
      "{}",
      '[[4,0,0,"simple","SELECT 1",null,1,"SELECT 1",null]]',
      '[[4,0,0,"shell","SELECT 1",null,1,"SELECT 1",null,1]]',
      '[[4,"0",0,"simple","SELECT 1",null,1,"SELECT 1",null,1]]',
      '[[4,0,0,"simple","SELECT 1",[1],1,"SELECT 1",null,1]]',
    ]) {
      expect(unpackStatements({ ...stored, entries }), entries).toEqual([
        expect.objectContaining({ sessionId: "s_1", seq: 4, text: entries, error: expect.stringMatching(/changed/) }),
      ]);
    }
  });
});
