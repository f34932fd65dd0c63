import { describe, expect, it } from "vitest";
import { groupWrites } from "./group-writes.js";

/** A write the test lets finish, recording each batch. */
function recorder(fail: (batch: readonly string[]) => boolean = () => false) {
  const batches: string[][] = [];
  let release: () => void = () => {};
  let held = Promise.resolve();
  const write = async (items: readonly string[]) => {
    batches.push([...items]);
    await held;
    if (fail(items)) throw new Error(`write of ${items.join(",")} failed`);
  };
  const hold = () => {
    held = new Promise<void>((r) => {
      release = r;
    });
  };
  return { batches, write, hold, release: () => release() };
}

describe("group writes", () => {
  it("write the items added in one turn together, in order", async () => {
    const r = recorder();
    const add = groupWrites(r.write);
    await Promise.all(["a", "b", "c"].map(add));
    expect(r.batches).toEqual([["a", "b", "c"]]);
  });

  it("gather the items added while a write runs into the next write", async () => {
    const r = recorder();
    const add = groupWrites(r.write);
    r.hold();
    const first = add("a");
    await new Promise((resolve) => setTimeout(resolve, 0));
    const later = [add("b"), add("c")];
    r.release();
    await Promise.all([first, ...later]);
    expect(r.batches).toEqual([["a"], ["b", "c"]]);
    // Idle again: the next item starts a new write.
    await add("d");
    expect(r.batches.at(-1)).toEqual(["d"]);
  });

  it("fail only the items of the write that failed", async () => {
    const r = recorder((batch) => batch.includes("bad"));
    const add = groupWrites(r.write);
    r.hold();
    const first = add("bad").catch((e: Error) => e.message);
    await new Promise((resolve) => setTimeout(resolve, 0));
    const next = add("good");
    r.release();
    expect(await first).toBe("write of bad failed");
    await expect(next).resolves.toBeUndefined();
  });
});
