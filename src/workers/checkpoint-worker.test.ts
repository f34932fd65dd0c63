/** When the checkpoint worker signs the chain's head: over a real in-memory store and a real Ed25519 key. */
import { generateKeyPairSync } from "node:crypto";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { openUnitStore, type UnitStore } from "../../test/support/unit-store.js";
import { publicKeyFromPem, signingKeyFromPem } from "../audit/signing-key.js";
import { checkpointMessage } from "../core/audit-chain.js";
import { nonGrantEvent } from "../core/audit-event.js";
import { type CheckpointWorkerDeps, createCheckpointWorker } from "./checkpoint-worker.js";

const HOUR = 3_600_000;
const pem = generateKeyPairSync("ed25519").privateKey.export({ format: "pem", type: "pkcs8" }).toString();
const signer = signingKeyFromPem(pem);
let u: UnitStore;

beforeEach(async () => {
  u = await openUnitStore();
});
afterEach(() => u.close());

const worker = (opts: Pick<CheckpointWorkerDeps, "onCheckpoint"> = {}) =>
  createCheckpointWorker({
    store: u.store,
    signer,
    clock: u.clock,
    intervalMs: HOUR,
    everyEvents: 3,
    log: () => {},
    ...opts,
  });
const events = (n: number) =>
  u.record(...Array.from({ length: n }, () => nonGrantEvent("auth.login", "bob", u.clock.now(), { user: "bob" })));

describe("audit checkpoints", () => {
  it("sign the head at once when there is none yet, with a signature the public key verifies", async () => {
    const w = worker();
    expect(await w.runOnce()).toBeNull(); // an empty chain has nothing to pin
    await events(1);
    const cp = await w.runOnce();
    if (!cp) throw new Error("no checkpoint");
    expect(cp).toMatchObject({ seq: 1, keyId: signer.keyId, at: u.clock.now() });
    const head = (await u.store.readAudit(1, 10)).at(-1);
    expect(cp.hash).toBe(head?.hash);
    expect(publicKeyFromPem(signer.publicKeyPem).verify(checkpointMessage(cp), cp.signature)).toBe(true);
    expect(await u.store.readCheckpoints()).toEqual([cp]);
  });

  it("are due once every_events arrived, or the interval passed, since the last — never for an unmoved head", async () => {
    const w = worker();
    await events(1);
    await w.runOnce();
    await events(2);
    expect(await w.runOnce()).toBeNull();
    await events(1);
    expect((await w.runOnce())?.seq).toBe(4);
    await events(1);
    u.clock.advance(HOUR - 1);
    expect(await w.runOnce()).toBeNull();
    u.clock.advance(1);
    expect((await w.runOnce())?.seq).toBe(5);
    u.clock.advance(2 * HOUR);
    expect(await w.runOnce()).toBeNull();
    expect(await w.checkpointNow()).toBeNull();
  });

  it("sign the head now on shutdown (checkpointNow), due or not", async () => {
    const w = worker();
    await events(1);
    await w.runOnce();
    await events(1);
    expect((await w.checkpointNow())?.seq).toBe(2);
  });

  it("run their hook in the checkpoint's transaction; of replicas signing the same head, one does", async () => {
    const seen: string[] = [];
    const hooked = (name: string) =>
      worker({
        onCheckpoint: async (tx, cp) => {
          seen.push(`${name}:${cp.seq}`);
          await tx.insertAlarms([]);
        },
      });
    await events(3);
    const made = await Promise.all([hooked("a").runOnce(), hooked("b").runOnce()]);
    expect(made.filter((c) => c !== null)).toHaveLength(1);
    expect((await u.store.readCheckpoints()).map((c) => c.seq)).toEqual([3]);
    expect(seen).toHaveLength(1);
  });
});
