import { generateKeyPairSync } from "node:crypto";
import { afterEach, beforeEach, describe, expect, test } from "vitest";
import { makePolicy, T0 } from "../../test/support/core-fixtures.js";
import { type MemoryStore, openMemoryStore } from "../../test/support/memory-store.js";
import { signingKeyFromPem } from "../audit/signing-key.js";
import { nonGrantEvent } from "../core/audit-event.js";
import { type AuditQueries, createAuditQueries } from "./audit-queries.js";

// erin is the fixture's only admin (platform-admins); carol is in security, which is not an admin group.
const policy = makePolicy();
const signingKey = signingKeyFromPem(
  generateKeyPairSync("ed25519").privateKey.export({ format: "pem", type: "pkcs8" }).toString(),
);
let db: MemoryStore;
let queries: AuditQueries;

beforeEach(async () => {
  db = await openMemoryStore();
  queries = createAuditQueries({ policy, signingKey, store: db.store });
  const events = Array.from({ length: 7 }, (_, i) =>
    nonGrantEvent("target.drift_reported", "system", T0 + i, { kind: "standing_privilege", principal: `p${i}` }, "box"),
  );
  await db.insert([], events);
});
afterEach(() => db.close());

describe("the audit log is read by admins only", () => {
  for (const user of ["alice", "carol", "nobody"]) {
    test(`${user} is refused its events, checkpoints and verification`, async () => {
      await expect(queries.events(user, {})).rejects.toMatchObject({
        code: "ERR_FORBIDDEN",
        detail: { groups: ["platform-admins"] },
      });
      await expect(queries.checkpoints(user)).rejects.toMatchObject({ code: "ERR_FORBIDDEN" });
      await expect(queries.verify(user)).rejects.toMatchObject({ code: "ERR_FORBIDDEN" });
    });
  }

  test("an admin reads the events a page at a time: `next` where the following page starts", async () => {
    const first = await queries.events("erin", { limit: 3 });
    expect(first.events.map((e) => e.seq)).toEqual([1, 2, 3]);
    expect(first.next).toBe(4);
    const last = await queries.events("erin", { from: 7, limit: 3 });
    expect(last.events.map((e) => e.seq)).toEqual([7]);
    expect(last.next).toBeNull();
  });

  test("an admin reads the checkpoints with the key that signs them, and verifies the chain", async () => {
    const { checkpoints, signingKey: key } = await queries.checkpoints("erin");
    expect(checkpoints).toEqual([]);
    expect(key).toEqual({ keyId: signingKey.keyId, publicKeyPem: signingKey.publicKeyPem });
    const v = await queries.verify("erin");
    expect(v.verdict).toMatchObject({ ok: true });
    expect(v.summary).toMatch(/^OK: 7 events/);
  });
});
