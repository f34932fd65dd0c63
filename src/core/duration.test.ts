// biome-ignore-all lint/style/noRestrictedImports: tests import vitest; the purity rule guards shipped core code
import { describe, expect, it } from "vitest";
import { formatDuration, isDuration, parseDuration } from "./duration.js";
import { BreakglassError } from "./errors.js";

describe("parseDuration", () => {
  it.each([
    ["45s", 45],
    ["30m", 1_800],
    ["1h", 3_600],
    ["1h30m", 5_400],
    ["2d", 172_800],
    ["1d2h3m4s", 93_784],
    ["2d12h", 216_000],
    ["90m", 5_400],
    ["0s", 0],
    ["007m", 420],
    [" 1h30m ", 5_400],
    ["\t2d\n", 172_800],
  ])("parses %j as %i seconds", (text, seconds) => {
    expect(parseDuration(text)).toBe(seconds);
    expect(isDuration(text)).toBe(true);
  });

  it.each([
    "90x",
    "0",
    "90",
    "",
    "   ",
    "h",
    "1h 30m",
    "30m1h",
    "1s1m",
    "1d1d",
    "1hh",
    "1.5h",
    "-1h",
    "+1h",
    "1H",
    "1w",
    "1h-",
    "PT1H",
    "99999999999999999999d",
  ])("rejects %j with ERR_VALIDATION", (text) => {
    expect(isDuration(text)).toBe(false);
    let caught: unknown;
    try {
      parseDuration(text);
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(BreakglassError);
    expect((caught as BreakglassError).code).toBe("ERR_VALIDATION");
    expect((caught as BreakglassError).detail).toEqual({ value: text });
  });
});

describe("formatDuration", () => {
  it.each([
    [0, "0s"],
    [1, "1s"],
    [45, "45s"],
    [60, "1m"],
    [61, "1m1s"],
    [3_600, "1h"],
    [5_400, "1h30m"],
    [86_400, "1d"],
    [90_061, "1d1h1m1s"],
    [176_400, "2d1h"],
    [59.9, "59s"],
    [-5, "0s"],
  ])("formats %d as %j", (seconds, text) => {
    expect(formatDuration(seconds)).toBe(text);
  });

  it("round-trips through parseDuration", () => {
    for (const seconds of [0, 1, 59, 60, 3_599, 3_600, 5_400, 86_399, 86_400, 93_784, 30 * 86_400 + 1]) {
      expect(parseDuration(formatDuration(seconds))).toBe(seconds);
    }
  });
});
