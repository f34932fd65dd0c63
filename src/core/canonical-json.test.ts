/**
 * Known answers from RFC 8785 (JSON Canonicalization Scheme): its number table (Appendix B),
 * its sorting example (§3.2.3) and its full example (§3.2.4).
 *
 * @see https://www.rfc-editor.org/rfc/rfc8785
 */
// biome-ignore lint/style/noRestrictedImports: the test runner is not part of core's runtime
import { describe, expect, it } from "vitest";
import { canonicalJson } from "./canonical-json.js";
import { BreakglassError } from "./errors.js";

/** The IEEE 754 double with these bits, as the RFC's table gives them. */
function double(hex: string): number {
  const view = new DataView(new ArrayBuffer(8));
  view.setBigUint64(0, BigInt(`0x${hex}`));
  return view.getFloat64(0);
}

describe("canonicalJson (RFC 8785)", () => {
  it.each([
    ["0000000000000000", "0"],
    ["8000000000000000", "0"], // -0
    ["0000000000000001", "5e-324"],
    ["8000000000000001", "-5e-324"],
    ["7fefffffffffffff", "1.7976931348623157e+308"],
    ["ffefffffffffffff", "-1.7976931348623157e+308"],
    ["4340000000000000", "9007199254740992"],
    ["c340000000000000", "-9007199254740992"],
    ["4430000000000000", "295147905179352830000"],
    ["44b52d02c7e14af5", "9.999999999999997e+22"],
    ["44b52d02c7e14af6", "1e+23"],
    ["44b52d02c7e14af7", "1.0000000000000001e+23"],
    ["444b1ae4d6e2ef4e", "999999999999999700000"],
    ["444b1ae4d6e2ef4f", "999999999999999900000"],
    ["444b1ae4d6e2ef50", "1e+21"],
    ["3eb0c6f7a0b5ed8c", "9.999999999999997e-7"],
    ["3eb0c6f7a0b5ed8d", "0.000001"],
    ["41b3de4355555553", "333333333.3333332"],
    ["41b3de4355555554", "333333333.33333325"],
    ["41b3de4355555555", "333333333.3333333"],
    ["41b3de4355555556", "333333333.3333334"],
    ["41b3de4355555557", "333333333.33333343"],
    ["becbf647612f3696", "-0.0000033333333333333333"],
    ["43143ff3c1cb0959", "1424953923781206.2"],
  ])("serialises the double 0x%s as %s (Appendix B)", (bits, expected) => {
    expect(canonicalJson(double(bits))).toBe(expected);
  });

  it("serialises number literals the way ECMAScript does", () => {
    expect(canonicalJson(1e21)).toBe("1e+21");
    expect(canonicalJson(1e-7)).toBe("1e-7");
    expect(canonicalJson(-0)).toBe("0");
    // The RFC's literal has more digits than a double holds: parse it as a JSON reader would.
    expect(canonicalJson(JSON.parse("333333333.33333329"))).toBe("333333333.3333333");
    expect(canonicalJson(4.5)).toBe("4.5");
    expect(canonicalJson(2e-3)).toBe("0.002");
    expect(canonicalJson(1e30)).toBe("1e+30");
  });

  it("sorts keys by UTF-16 code units, so an astral character sorts before U+FB33 (§3.2.3)", () => {
    const input = {
      "\u20ac": "Euro Sign",
      "\r": "Carriage Return",
      "\ufb33": "Hebrew Letter Dalet With Dagesh",
      "1": "One",
      "\ud83d\ude00": "Emoji: Grinning Face",
      "\u0080": "Control",
      "\u00f6": "Latin Small Letter O With Diaeresis",
    };
    expect(canonicalJson(input)).toBe(
      '{"\\r":"Carriage Return","1":"One","\u0080":"Control","\u00f6":"Latin Small Letter O With Diaeresis",' +
        '"\u20ac":"Euro Sign","\ud83d\ude00":"Emoji: Grinning Face","\ufb33":"Hebrew Letter Dalet With Dagesh"}',
    );
  });

  it("reproduces the RFC's complete example byte for byte (§3.2.4)", () => {
    const text = String.raw`{
      "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
      "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
      "literals": [null, true, false]
    }`;
    const expected = String.raw`{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}`;
    expect(canonicalJson(JSON.parse(text))).toBe(expected);
  });

  it("escapes only what JSON requires, with the short forms and lowercase hex", () => {
    expect(canonicalJson('\b\t\n\f\r\u0000\u001f"\\/\u007f\u00e9')).toBe(
      '"\\b\\t\\n\\f\\r\\u0000\\u001f\\"\\\\/\u007f\u00e9"',
    );
  });

  it("sorts nested objects, keeps array order and drops undefined members", () => {
    expect(canonicalJson({ b: [3, { z: 1, a: null }, "x"], a: { d: true, c: undefined }, c: [] })).toBe(
      '{"a":{"d":true},"b":[3,{"a":null,"z":1},"x"],"c":[]}',
    );
  });

  it("sorts integer-like keys as strings, not numerically", () => {
    expect(canonicalJson({ 9: "nine", 10: "ten", a: "a" })).toBe('{"10":"ten","9":"nine","a":"a"}');
  });

  it.each([
    ["NaN", Number.NaN],
    ["Infinity", Number.POSITIVE_INFINITY],
    ["-Infinity", Number.NEGATIVE_INFINITY],
  ])("rejects %s with ERR_VALIDATION, also when nested", (_name, value) => {
    for (const input of [value, { data: { n: value } }, [1, value]]) {
      expect(() => canonicalJson(input)).toThrow(BreakglassError);
      try {
        canonicalJson(input);
      } catch (e) {
        expect((e as BreakglassError).code).toBe("ERR_VALIDATION");
      }
    }
  });

  it("rejects values JSON cannot represent", () => {
    expect(() => canonicalJson(10n)).toThrow(expect.objectContaining({ code: "ERR_VALIDATION" }));
    expect(() => canonicalJson(() => 1)).toThrow(expect.objectContaining({ code: "ERR_VALIDATION" }));
    expect(() => canonicalJson(undefined)).toThrow(expect.objectContaining({ code: "ERR_VALIDATION" }));
  });
});
