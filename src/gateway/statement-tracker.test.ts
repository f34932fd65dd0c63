import { describe, expect, it } from "vitest";
import type { StatementRecord } from "../core/records.js";
import { errorResponse, message } from "./pg-wire.js";
import { StatementTracker } from "./statement-tracker.js";

/** A tracker on a clock that ticks once per reading, and the records it hands on. */
function track(): { tracker: StatementTracker; records: StatementRecord[]; answer(...msgs: Buffer[]): void } {
  const records: StatementRecord[] = [];
  let t = 1000;
  const tracker = new StatementTracker({
    grantId: "g_1",
    sessionId: "s_1",
    now: () => t++,
    record: (r) => records.push(r),
  });
  // The target's messages as the scanner hands them over: DataRows counted, the rest by type and body.
  const answer = (...msgs: Buffer[]) => {
    for (const m of msgs) {
      if (m[0] === 0x44) tracker.dataRow();
      else tracker.message(m[0] as number, m.subarray(5));
    }
  };
  return { tracker, records, answer };
}

const complete = (tag: string) => message("C", Buffer.from(`${tag}\0`));
const ready = message("Z", Buffer.from("I"));
const parseComplete = message("1");
const row = message("D", Buffer.from([0, 0]));
const error = (code: string, text: string) => errorResponse("ERROR", code, text);
const brief = (r: StatementRecord) => [r.seq, r.kind, r.text, r.params, r.rows, r.tag, r.error];

describe("StatementTracker", () => {
  it("ends a simple query at its ReadyForQuery, with every command's tag, rows read and rows affected", () => {
    const { tracker, records, answer } = track();
    tracker.query("SELECT 1; UPDATE t SET x = 1", false);
    answer(row, complete("SELECT 1"), complete("UPDATE 3"));
    expect(records).toEqual([]); // not until ReadyForQuery
    answer(ready);
    expect(records.map(brief)).toEqual([
      [1, "simple", "SELECT 1; UPDATE t SET x = 1", null, 4, "SELECT 1; UPDATE 3", null],
    ]);
    expect(records[0]).toMatchObject({ grantId: "g_1", sessionId: "s_1", startedAt: 1000 });
    expect(records[0]?.endedAt).toBeGreaterThan(1000);
  });

  it("records a simple query's error, and counts statements and errors", () => {
    const { tracker, records, answer } = track();
    tracker.query("SELECT 1/0", false);
    answer(error("22012", "division by zero"), ready);
    tracker.query("SELECT 2", false);
    answer(row, complete("SELECT 1"), ready);
    expect(records.map(brief)).toEqual([
      [1, "simple", "SELECT 1/0", null, 0, null, "22012 division by zero"],
      [2, "simple", "SELECT 2", null, 1, "SELECT 1", null],
    ]);
    expect([tracker.statements, tracker.errors]).toEqual([2, 1]);
  });

  it("makes a Parse and the Execute sent before its answer one row (a driver's parameterised query)", () => {
    const { tracker, records, answer } = track();
    tracker.parse("", "SELECT $1::int", null);
    tracker.execute("SELECT $1::int", ["7"], "", false);
    answer(parseComplete, message("2"), row, complete("SELECT 1"), ready);
    expect(records.map(brief)).toEqual([[1, "extended", "SELECT $1::int", ["7"], 1, "SELECT 1", null]]);
  });

  it("gives the Parse's error to its Execute when the target refuses the Parse", () => {
    const { tracker, records, answer } = track();
    tracker.parse("bad", "SELEC $1::int", null);
    tracker.execute("SELEC $1::int", ["1"], "bad", false);
    answer(error("42601", 'syntax error at or near "SELEC"'), ready);
    expect(records.map(brief)).toEqual([
      [1, "extended", "SELEC $1::int", ["1"], 0, null, '42601 syntax error at or near "SELEC"'],
    ]);
  });

  it("records a Parse no Execute followed (prepared or described only, or refused) as `prepare`", () => {
    const { tracker, records, answer } = track();
    tracker.parse("", "SELECT id FROM t", null);
    answer(parseComplete, message("t", Buffer.alloc(2)), message("T", Buffer.alloc(2)), ready);
    tracker.parse("", "SELECT nope FROM t", null);
    answer(error("42703", 'column "nope" does not exist'), ready);
    expect(records.map(brief)).toEqual([
      [1, "prepare", "SELECT id FROM t", null, 0, null, null],
      [2, "prepare", "SELECT nope FROM t", null, 0, null, '42703 column "nope" does not exist'],
    ]);
  });

  it("records a statement prepared once and executed later as a `prepare` row, then one row per run", () => {
    const { tracker, records, answer } = track();
    tracker.parse("P0_1", "SELECT abalance FROM a WHERE aid = $1", null);
    answer(parseComplete, ready);
    for (const aid of ["5", "9"]) {
      tracker.execute("SELECT abalance FROM a WHERE aid = $1", [aid], "P0_1", false);
      answer(message("2"), row, complete("SELECT 1"), ready);
    }
    expect(records.map((r) => [r.seq, r.kind, r.params])).toEqual([
      [1, "prepare", null],
      [2, "extended", ["5"]],
      [3, "extended", ["9"]],
    ]);
  });

  it("records the Executes the target skipped after an error in their pipeline as not run", () => {
    const { tracker, records, answer } = track();
    tracker.parse("", "INSERT INTO t VALUES (1)", null);
    tracker.execute("INSERT INTO t VALUES (1)", [], "", false);
    tracker.parse("", "INSERT INTO t VALUES (2)", null);
    tracker.execute("INSERT INTO t VALUES (2)", [], "", false);
    answer(parseComplete, message("2"), error("23505", "duplicate key"), ready);
    expect(records.map(brief)).toEqual([
      [1, "extended", "INSERT INTO t VALUES (1)", [], 0, null, "23505 duplicate key"],
      [2, "extended", "INSERT INTO t VALUES (2)", [], 0, null, "not run: an earlier message of its pipeline failed"],
    ]);
  });

  it("ends an Execute at PortalSuspended or EmptyQueryResponse, and keeps the Executes after a Sync waiting", () => {
    const { tracker, records, answer } = track();
    tracker.execute("FETCH", [], null, false);
    tracker.execute("", [], null, false);
    tracker.execute("SELECT 3", [], null, false); // after a Sync the client sent
    answer(row, message("s"), message("I"), ready);
    expect(records.map((r) => [r.text, r.rows])).toEqual([
      ["FETCH", 1],
      ["", 0],
    ]);
    answer(complete("SELECT 0"), ready);
    expect(records.map((r) => r.text)).toEqual(["FETCH", "", "SELECT 3"]);
  });

  it("counts the bytes relayed to the client to the statement being answered", () => {
    const { tracker, records, answer } = track();
    tracker.query("SELECT big", false);
    tracker.sent(100);
    tracker.sent(23);
    answer(complete("SELECT 0"), ready);
    tracker.sent(7); // nothing pending: counted to nobody
    expect(records[0]?.bytes).toBe(123);
  });

  it("records what the guard refused as `blocked`, with the guard's error for a refused Parse", () => {
    const { tracker, records, answer } = track();
    tracker.query("DROP TABLE t", true);
    answer(error("42501", "Breakglass guard: DROP TABLE is not allowed"), ready);
    tracker.parse("x", "TRUNCATE t", "42501 Breakglass guard: TRUNCATE is not allowed (truncate) for role r");
    answer(parseComplete, ready);
    tracker.functionCall("<function call, oid 2078>", true);
    answer(error("42501", "Breakglass guard: a function call by OID"), ready);
    expect(records.map((r) => [r.kind, r.text, r.error?.slice(0, 5)])).toEqual([
      ["blocked", "DROP TABLE t", "42501"],
      ["blocked", "TRUNCATE t", "42501"],
      ["blocked", "<function call, oid 2078>", "42501"],
    ]);
  });

  it("records the statements still unanswered when the session ends, with the reason", () => {
    const { tracker, records } = track();
    tracker.query("SELECT pg_sleep(60)", false);
    tracker.abort("grant expired");
    tracker.abort("again"); // nothing left
    expect(records.map(brief)).toEqual([
      [
        1,
        "simple",
        "SELECT pg_sleep(60)",
        null,
        0,
        null,
        "session ended (grant expired) before the statement finished",
      ],
    ]);
  });
});
