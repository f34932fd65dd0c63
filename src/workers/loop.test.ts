import { describe, expect, it } from "vitest";
import { until } from "../../test/support/wait.js";
import { BreakglassError } from "../core/errors.js";
import { createLoop } from "./loop.js";

/** A pass the test ends by hand. */
function gate() {
  let open: () => void = () => {};
  const opened = new Promise<void>((r) => {
    open = r;
  });
  return { opened, open };
}

describe("createLoop", () => {
  it("shares the pass in flight with a caller of runOnce (single flight)", async () => {
    let passes = 0;
    const g = gate();
    const loop = createLoop({
      name: "t",
      run: async () => {
        passes += 1;
        await g.opened;
        return passes;
      },
      intervalMs: 60_000,
      log: () => {},
    });
    const a = loop.runOnce();
    const b = loop.runOnce();
    g.open();
    expect(await Promise.all([a, b])).toEqual([1, 1]);
    expect(passes).toBe(1);
  });

  it("runs again at once when kicked during a pass, not after the interval", async () => {
    const starts: number[] = [];
    let g = gate();
    const loop = createLoop({
      name: "t",
      run: async () => {
        starts.push(starts.length);
        await g.opened;
      },
      intervalMs: 3_600_000,
      firstDelayMs: 0,
      log: () => {},
    });
    loop.start();
    await until("the first pass", () => starts.length === 1);
    loop.kick();
    const first = g;
    g = gate();
    first.open();
    await until("the kicked pass (the interval is an hour)", () => starts.length === 2);
    g.open();
    await loop.stop();
  });

  it("logs a failed pass with its code and goes on", async () => {
    const logged: unknown[][] = [];
    let n = 0;
    const loop = createLoop({
      name: "the job",
      run: async () => {
        n += 1;
        if (n === 1) throw new BreakglassError("ERR_STORAGE", "database is locked");
        return n;
      },
      intervalMs: 10,
      firstDelayMs: 0,
      log: (...args) => logged.push(args),
    });
    loop.start();
    await until("a pass after the failure", () => n >= 2);
    await loop.stop();
    expect(logged[0]).toEqual(["the job failed", { code: "ERR_STORAGE", error: "database is locked" }]);
  });

  it("stops: waits for the pass in flight, then runs no more, and a kick while stopped does nothing", async () => {
    let passes = 0;
    const g = gate();
    let ended = false;
    const loop = createLoop({
      name: "t",
      run: async () => {
        passes += 1;
        await g.opened;
        ended = true;
      },
      intervalMs: 1,
      firstDelayMs: 0,
      log: () => {},
    });
    loop.start();
    await until("a pass", () => passes === 1);
    const stopped = loop.stop().then(() => ended);
    g.open();
    expect(await stopped).toBe(true);
    loop.kick();
    await new Promise((r) => setTimeout(r, 50));
    expect(passes).toBe(1);
  });

  it("goes on passing after stop() and start() during a pass", async () => {
    let passes = 0;
    let g = gate();
    const loop = createLoop({
      name: "t",
      run: async () => {
        passes += 1;
        await g.opened;
      },
      intervalMs: 5,
      firstDelayMs: 0,
      log: () => {},
    });
    loop.start();
    await until("a pass", () => passes === 1);
    const stopping = loop.stop();
    loop.start();
    const first = g;
    g = gate();
    g.open();
    first.open();
    await stopping;
    await until("ten more passes", () => passes >= 11);
    await loop.stop();
  });
});
