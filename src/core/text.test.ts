// biome-ignore-all lint/style/noRestrictedImports: tests import vitest and fast-check; the purity rule guards shipped core code
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { controlCharIn, lineText, requirePlainText, terminalText, visibleLength } from "./text.js";

/** Every character a terminal obeys or that reorders text; what no output may carry raw. */
const RAW_UNSAFE =
  // biome-ignore lint/suspicious/noControlCharactersInRegex: the test looks for them
  /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u061c\u180e\u200b\u200e\u200f\u2028-\u202e\u2060-\u2069\ufeff\u{e0000}-\u{e007f}]/u;

/** Strings full of the characters that matter, mixed with anything else. */
const hostile = fc.string({
  unit: fc.oneof(
    fc.constantFrom(
      "\x1b",
      "[2J",
      "]8;;https://x\x07",
      "\u202e",
      "\u2066",
      "\u200b",
      "\x00",
      "\x7f",
      "\x9b",
      "\r",
      "\n",
      "\t",
      "\u2028",
      "\u{e0041}",
    ),
    fc.string({ unit: "binary", maxLength: 3 }),
    fc.string({ unit: "grapheme", maxLength: 3 }),
  ),
  maxLength: 30,
});

describe("terminalText", () => {
  it("shows ESC, bidi overrides and the other controls as escapes, keeps newline and tab", () => {
    expect(terminalText("a\x1b[2Jb")).toBe("a\\x1b[2Jb");
    expect(terminalText("evil\u202etxt.exe")).toBe("evil\\u202etxt.exe");
    expect(terminalText("x\x7fy\x9bz")).toBe("x\\u007fy\\u009bz");
    expect(terminalText("line1\n\tline2\r")).toBe("line1\n\tline2\\x0d");
    expect(terminalText("tag\u{e0041}")).toBe("tag\\udb40\\udc41");
  });

  it("leaves no raw control or bidi character, whatever the input (property)", () => {
    fc.assert(
      fc.property(hostile, (s) => {
        expect(RAW_UNSAFE.test(terminalText(s))).toBe(false);
        const one = lineText(s);
        expect(RAW_UNSAFE.test(one) || /[\n\t\r]/.test(one)).toBe(false);
      }),
      { numRuns: 2000 },
    );
  });

  it("keeps serialised JSON valid and meaning the same (property)", () => {
    fc.assert(
      fc.property(hostile, (s) => {
        expect(JSON.parse(terminalText(JSON.stringify({ s })))).toEqual({ s });
      }),
      { numRuns: 1000 },
    );
  });

  it("changes nothing in ordinary text", () => {
    fc.assert(
      fc.property(fc.string({ unit: "grapheme-ascii" }), (s) => {
        const printable = [...s].filter((c) => c >= " " && c !== "\x7f").join("");
        expect(terminalText(printable)).toBe(printable);
      }),
    );
    expect(terminalText("Zoë — naïve café ✓ 数据库 👩‍💻")).toBe("Zoë — naïve café ✓ 数据库 👩‍💻");
  });
});

describe("free-text input", () => {
  it("names the first control character, allowing tab and newline in prose only", () => {
    expect(controlCharIn("fine text", "line")).toBeNull();
    expect(controlCharIn("two\nlines\tand tab", "prose")).toBeNull();
    expect(controlCharIn("two\nlines", "line")).toBe("\\x0a");
    expect(controlCharIn("clear\x1b[2J", "prose")).toBe("\\x1b");
    expect(controlCharIn("abc\u202edef", "prose")).toBe("\\u202e");
    expect(() => requirePlainText("incident", "INC-1\x1b]8;;http://x\x07", "line")).toThrow(
      expect.objectContaining({ code: "ERR_VALIDATION", detail: { field: "incident", character: "\\x1b" } }),
    );
  });

  it("counts only what a reader can see", () => {
    expect(visibleLength("\u200b".repeat(40))).toBe(0);
    expect(visibleLength("\x00".repeat(40))).toBe(0);
    expect(visibleLength(" \u3164\u2800\ufeff\u00ad\u2060 ")).toBe(0);
    expect(visibleLength("db down")).toBe(7);
    expect(visibleLength("  db \n\t down ")).toBe(7);
    expect(visibleLength("数据库 👍")).toBe(5);
  });
});
