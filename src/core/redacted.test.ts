// biome-ignore-all lint/style/noRestrictedImports: tests import vitest and node:util; the purity rule guards shipped core code
import { format, inspect } from "node:util";
import { describe, expect, it } from "vitest";
import { Redacted } from "./redacted.js";

const SECRET = "postgres://admin:hunter2@db.internal/prod";

describe("Redacted", () => {
  const r = new Redacted(SECRET);

  it("prints [redacted] via String() and template literals", () => {
    expect(String(r)).toBe("[redacted]");
    expect(`${r}`).toBe("[redacted]");
    expect(r.toString()).toBe("[redacted]");
    expect(`url=${r}`).not.toContain("hunter2");
  });

  it("prints [redacted] via JSON.stringify, alone and nested", () => {
    expect(JSON.stringify(r)).toBe('"[redacted]"');
    expect(JSON.stringify({ storage: { url: r }, list: [r] })).toBe(
      '{"storage":{"url":"[redacted]"},"list":["[redacted]"]}',
    );
  });

  it("prints [redacted] via util.inspect, alone and nested", () => {
    expect(inspect(r)).toBe("[redacted]");
    const nested = inspect({ config: { url: r } }, { depth: 10, showHidden: true });
    expect(nested).toContain("[redacted]");
    expect(nested).not.toContain("hunter2");
  });

  it("leaks nothing through util.format, as console.log would print it", () => {
    for (const spec of ["%s", "%o", "%O", "%j"]) {
      expect(format(spec, r), spec).not.toContain("hunter2");
    }
    expect(format(r)).toBe("[redacted]");
  });

  it("has no enumerable own properties to spread or copy", () => {
    expect(Object.keys(r)).toEqual([]);
    expect(JSON.stringify({ ...r })).toBe("{}");
  });

  it("reveals the value to code that asks for it", () => {
    expect(r.reveal()).toBe(SECRET);
    const obj = new Redacted({ token: "t0k3n" });
    expect(obj.reveal().token).toBe("t0k3n");
    expect(JSON.stringify(obj)).toBe('"[redacted]"');
    expect(inspect(obj)).toBe("[redacted]");
  });
});
