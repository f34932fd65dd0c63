import { describe, expect, it } from "vitest";
import { errorResponse, message } from "./pg-wire.js";
import { ServerScanner } from "./server-scanner.js";

/** What the scanner reported, in order: `D` per DataRow, `<type>:<body>` per wanted message. */
function scanned(chunks: readonly Buffer[]): string[] {
  const seen: string[] = [];
  const scanner = new ServerScanner({
    dataRow: () => seen.push("D"),
    message: (type, body) => seen.push(`${String.fromCharCode(type)}:${body.toString("latin1")}`),
  });
  for (const c of chunks) scanner.scan(c);
  return seen;
}

const dataRow = (v: string) => {
  const body = Buffer.alloc(6 + v.length);
  body.writeInt16BE(1, 0);
  body.writeInt32BE(v.length, 2);
  body.write(v, 6, "latin1");
  return message("D", body);
};

// A simple query's answer: RowDescription, two DataRows, CommandComplete, a NoticeResponse, an
// ErrorResponse, ParseComplete (empty body), ReadyForQuery.
const answer = Buffer.concat([
  message("T", Buffer.from("\0\0")),
  dataRow("one"),
  dataRow("two"),
  message("C", Buffer.from("SELECT 2\0")),
  errorResponse("NOTICE", "00000", "hello", undefined, "N"),
  errorResponse("ERROR", "22012", "division by zero"),
  message("1"),
  message("Z", Buffer.from("I")),
]);
const whole = scanned([answer]);

describe("ServerScanner", () => {
  it("counts DataRows and hands over the bodies of the messages the recording reads, no others", () => {
    expect(whole).toEqual([
      "D",
      "D",
      "C:SELECT 2\0",
      `E:${errorResponse("ERROR", "22012", "division by zero").subarray(5).toString("latin1")}`,
      "1:",
      "Z:I",
    ]);
  });

  it("reports the same whichever way the stream is cut into chunks", () => {
    for (let cut = 1; cut < answer.length; cut++) {
      expect(scanned([answer.subarray(0, cut), answer.subarray(cut)]), `cut at ${cut}`).toEqual(whole);
    }
    const bytes = [...answer].map((b) => Buffer.from([b]));
    expect(scanned(bytes)).toEqual(whole);
  });
});
