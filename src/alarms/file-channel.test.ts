import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { makeGrant } from "../../test/support/core-fixtures.js";
import { openUnitStore, routeAllTo, type UnitStore } from "../../test/support/unit-store.js";
import { grantEvent } from "../core/grant-machine.js";
import { createFileChannel } from "./file-channel.js";

let dir: string;
let u: UnitStore;
beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), "bg-file-channel-"));
  u = await openUnitStore({ routing: routeAllTo("record") });
});
afterEach(async () => {
  await u.close();
  rmSync(dir, { recursive: true, force: true });
});

const alarms = async (n: number) =>
  (
    await u.record(
      ...Array.from({ length: n }, (_, i) => grantEvent(makeGrant({ id: `g_${i}` }), "grant.requested", "alice", i)),
    )
  ).filter((a) => a.channel === "record");

describe("the file channel", () => {
  it("appends one JSON line per alarm, named by channel, in delivery order, to a private file in a new folder", async () => {
    const path = join(dir, "nested", "alarms.jsonl");
    const channel = createFileChannel({ type: "file", name: "record", path });
    const list = await alarms(20);
    await Promise.all(list.map((a) => channel.deliver(a)));
    const lines = readFileSync(path, "utf8")
      .trimEnd()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(lines.map((l) => l.idempotencyKey)).toEqual(list.map((a) => a.id));
    expect(new Set(lines.map((l) => l.event.grant)).size).toBe(20);
    expect(lines[0]).toMatchObject({ channel: "record", idempotencyKey: list[0]?.id });
    expect(statSync(path).mode & 0o777).toBe(0o600);
  });

  it("retries when the file cannot be written", async () => {
    const path = join(dir, "a-folder");
    mkdirSync(path);
    const [alarm] = await alarms(1);
    if (!alarm) throw new Error("no alarm");
    await expect(createFileChannel({ type: "file", name: "record", path }).deliver(alarm)).rejects.toMatchObject({
      permanent: false,
      message: expect.stringContaining(`cannot append to ${path}`),
    });
  });
});
