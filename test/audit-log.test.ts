/**
 * The audit log on a real (SQLite) store: appends that fail closed, checkpoints signed on
 * schedule, and verification of the stored chain after an insider edits the database.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import BetterSqlite3 from "better-sqlite3";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { sha256 } from "../src/adapters/node-crypto.js";
import { createAuditLog } from "../src/audit/audit-log.js";
import { verifyStoreChain } from "../src/audit/audit-verify.js";
import { generateSigningKey, loadPublicKeys, type SigningKey } from "../src/audit/signing-key.js";
import { checkpointMessage, GENESIS_HASH } from "../src/core/audit-chain.js";
import type { AuditEventDraft } from "../src/core/audit-event.js";
import { BreakglassError } from "../src/core/errors.js";
import type { Store, StoreTx } from "../src/core/ports/store.js";
import type { Checkpoint } from "../src/core/records.js";
import { createSqliteStore } from "../src/store/sqlite-store.js";
import { createCheckpointWorker } from "../src/workers/checkpoint-worker.js";
import { makeAuditDraft } from "./support/core-fixtures.js";
import { sleep, until } from "./support/wait.js";

const T0 = 1_767_225_600_000;
const MINUTE = 60_000;

function draft(i: number, data: Record<string, unknown> = { n: i }): AuditEventDraft {
  return makeAuditDraft({ at: T0 + i, grantId: `g_${i}`, data });
}

const audit = createAuditLog({ sha256 });
let dir = "";
let path = "";
let store: Store;
let signer: SigningKey;
let now = T0;
const clock = { now: () => now };

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), "bg-audit-log-"));
  path = join(dir, "breakglass.db");
  store = await createSqliteStore({ path });
  signer = generateSigningKey(join(dir, "audit-signing.pem"));
  now = T0;
});

afterEach(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

async function append(from: number, count: number): Promise<void> {
  await store.transaction((tx) =>
    audit.append(
      tx,
      Array.from({ length: count }, (_, i) => draft(from + i)),
    ),
  );
}

/** SQL behind the store's back, as an insider with database access would. */
function tamper(sql: string): void {
  const raw = new BetterSqlite3(path);
  try {
    raw.exec(sql);
  } finally {
    raw.close();
  }
}

const verify = () => verifyStoreChain(store, loadPublicKeys([signer.publicKeyPem]).verifySignature);

function worker(overrides: Partial<Parameters<typeof createCheckpointWorker>[0]> = {}) {
  return createCheckpointWorker({ store, signer, clock, intervalMs: 5 * MINUTE, everyEvents: 100, ...overrides });
}

describe("createAuditLog", () => {
  it("seals events after the stored head, across transactions", async () => {
    await append(1, 3);
    const sealed = await store.transaction((tx) => audit.append(tx, [draft(4), draft(5)]));
    expect(sealed.map((e) => e.seq)).toEqual([4, 5]);
    const stored = await store.readAudit(1, 10);
    expect(stored.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5]);
    // Read back: the sealed event, its index columns beside it.
    expect(stored.slice(3)).toEqual(
      sealed.map((e) => ({ ...e, columns: { at: e.at, type: e.type, actor: e.actor, grantId: e.grantId } })),
    );
    expect(await verify()).toMatchObject({ ok: true, eventsChecked: 5, headHash: sealed[1]?.hash });
  });

  it("writes nothing and locks nothing for no drafts", async () => {
    const tx = { lockAuditHead: vi.fn(), insertAuditEvents: vi.fn() };
    expect(await audit.append(tx, [])).toEqual([]);
    expect(tx.lockAuditHead).not.toHaveBeenCalled();
  });

  it("fails closed: an event that cannot be written rolls back the action it records", async () => {
    const token = {
      id: "t_1",
      user: "alice",
      secretHash: "0".repeat(64),
      createdAt: T0,
      expiresAt: null,
      revokedAt: null,
      description: "ci",
      scopes: ["*"],
    };
    const attempt = store.transaction(async (tx) => {
      await tx.insertToken(token);
      await audit.append(tx, [draft(1, { ratio: Number.NaN })]);
    });
    await expect(attempt).rejects.toMatchObject({
      code: "ERR_AUDIT_WRITE_FAILED",
      detail: { reason: "ERR_VALIDATION", types: ["grant.activated"] },
    });
    expect(await store.findToken("t_1")).toBeNull();
    expect(await store.readAudit(1, 10)).toEqual([]);
  });

  it("turns any storage failure into ERR_AUDIT_WRITE_FAILED, keeping the cause", async () => {
    const boom = new Error("disk I/O error");
    const tx: Pick<StoreTx, "lockAuditHead" | "insertAuditEvents"> = {
      lockAuditHead: async () => ({ seq: 0, hash: GENESIS_HASH }),
      insertAuditEvents: async () => {
        throw boom;
      },
    };
    const error = await audit.append(tx, [draft(1)]).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BreakglassError);
    expect(error).toMatchObject({ code: "ERR_AUDIT_WRITE_FAILED", cause: boom });
    const locked: Pick<StoreTx, "lockAuditHead" | "insertAuditEvents"> = {
      lockAuditHead: async () => {
        throw new BreakglassError("ERR_STORAGE", "database is locked");
      },
      insertAuditEvents: async () => undefined,
    };
    await expect(audit.append(locked, [draft(1)])).rejects.toMatchObject({
      code: "ERR_AUDIT_WRITE_FAILED",
      detail: { reason: "ERR_STORAGE" },
    });
  });
});

describe("verifyStoreChain", () => {
  beforeEach(async () => {
    await append(1, 120);
    await worker().runOnce(); // no checkpoint yet: signs 120
    await append(121, 30);
  });

  it("accepts the untouched log, across pages", async () => {
    const keys = loadPublicKeys([signer.publicKeyPem]).verifySignature;
    const expected = { ok: true, eventsChecked: 150, headSeq: 150, checkpointsChecked: 1, unanchoredEvents: 30 };
    expect(await verifyStoreChain(store, keys, { pageSize: 7 })).toMatchObject(expected);
    expect(await verifyStoreChain(store, keys, { pageSize: 150 })).toMatchObject(expected);
  });

  it("finds a payload edited in the database", async () => {
    tamper(`UPDATE audit_events SET payload = replace(payload, '"INC-7"', '"INC-8"') WHERE seq = 42`);
    expect(await verify()).toMatchObject({ ok: false, seq: 42, problem: "modified", eventsChecked: 41 });
  });

  it("finds a hash edited in the database", async () => {
    tamper(`UPDATE audit_events SET hash = '${"f".repeat(64)}' WHERE seq = 42`);
    expect(await verify()).toMatchObject({ ok: false, seq: 42, problem: "modified" });
  });

  it("finds a deleted row", async () => {
    tamper("DELETE FROM audit_events WHERE seq = 42");
    expect(await verify()).toMatchObject({ ok: false, seq: 42, problem: "deleted" });
  });

  it("finds two rows whose contents were swapped", async () => {
    tamper(`
      UPDATE audit_events SET seq = -1 WHERE seq = 42;
      UPDATE audit_events SET seq = 42 WHERE seq = 43;
      UPDATE audit_events SET seq = 43 WHERE seq = -1;`);
    expect(await verify()).toMatchObject({ ok: false, seq: 42, problem: "reordered" });
  });

  it("finds a tail cut below the checkpoint", async () => {
    tamper("DELETE FROM audit_events WHERE seq > 100");
    expect(await verify()).toMatchObject({ ok: false, seq: 101, problem: "truncated" });
  });

  it("finds a chain rewritten with fresh hashes through the checkpoint", async () => {
    // The insider edits event 42 and recomputes every later hash.
    const rows = await store.readAudit(1, 200);
    let prev = rows[40]?.hash ?? "";
    const updates = rows.slice(41).map((row) => {
      const payload = row.seq === 42 ? row.payload.replace('"INC-7"', '"INC-8"') : row.payload;
      prev = sha256(prev, "\n", payload);
      return `UPDATE audit_events SET payload = '${payload}', hash = '${prev}' WHERE seq = ${row.seq};`;
    });
    tamper(updates.join("\n"));
    expect(await verify()).toMatchObject({ ok: false, seq: 120, problem: "checkpoint_mismatch", eventsChecked: 150 });
  });

  it("finds a checkpoint the insider re-pointed without the key", async () => {
    tamper(`UPDATE audit_checkpoints SET hash = '${"a".repeat(64)}'`);
    expect(await verify()).toMatchObject({ ok: false, seq: 120, problem: "bad_signature" });
  });

  it("misses a cut tail whose checkpoints were deleted too, unless a copy of a checkpoint survives elsewhere", async () => {
    const [checkpoint] = await store.readCheckpoints();
    tamper("DELETE FROM audit_events WHERE seq > 100; DELETE FROM audit_checkpoints;");
    expect(await verify()).toMatchObject({ ok: true, headSeq: 100, checkpointsChecked: 0, unanchoredEvents: 100 });
    // …which is why checkpoints are also exported to a SIEM: with that copy, the cut shows.
    const keys = loadPublicKeys([signer.publicKeyPem]).verifySignature;
    const withCopy = {
      readAudit: (from: number, limit: number) => store.readAudit(from, limit),
      listRecordings: () => store.listRecordings(),
      listGrants: () => store.listGrants({}),
      readTerminalEvents: (id: string) => store.readTerminalEvents(id),
      listStatements: (id: string) => store.listStatements(id),
      listTerminalSessions: (id: string | null) => store.listTerminalSessions(id),
      listVaultOpenings: (unreviewed: boolean) => store.listVaultOpenings(unreviewed),
      listDrillRuns: (name: string | null, limit: number) => store.listDrillRuns(name, limit),
      readAlarms: (after: string | null, limit: number) => store.readAlarms(after, limit),
      readAuditAt: (seqs: readonly number[]) => store.readAuditAt(seqs),
      listTokens: (user: string | null) => store.listTokens(user),
      listState: (prefix: string) => store.listState(prefix),
      readCheckpoints: async () => (checkpoint ? [checkpoint] : []),
    };
    expect(await verifyStoreChain(withCopy, keys)).toMatchObject({ ok: false, seq: 101, problem: "truncated" });
  });
});

describe("createCheckpointWorker", () => {
  it("signs the first checkpoint as soon as there is an event, then waits for the event or time threshold", async () => {
    const w = worker();
    expect(await w.runOnce()).toBeNull(); // empty log
    await append(1, 3);
    const first = await w.runOnce();
    expect(first).toMatchObject({ seq: 3, at: T0, keyId: signer.keyId });
    expect(await w.runOnce()).toBeNull(); // nothing new
    await append(4, 50);
    now = T0 + MINUTE;
    expect(await w.runOnce()).toBeNull(); // 50 events and 1 minute: not yet
    await append(54, 50);
    expect(await w.runOnce()).toMatchObject({ seq: 103 }); // 100 events
    await append(104, 1);
    now += 5 * MINUTE;
    expect(await w.runOnce()).toMatchObject({ seq: 104, at: now }); // 5 minutes
    now += 60 * MINUTE;
    expect(await w.runOnce()).toBeNull(); // time passed, but no new event
    expect((await store.readCheckpoints()).map((c) => c.seq)).toEqual([3, 103, 104]);
  });

  it("signs the canonical {at, hash, keyId, seq} with the key it names", async () => {
    await append(1, 5);
    const cp = (await worker().runOnce()) as Checkpoint;
    const [head] = (await store.readAudit(5, 1)).slice(-1);
    expect(cp.hash).toBe(head?.hash);
    expect(loadPublicKeys([signer.publicKeyPem]).verifySignature(checkpointMessage(cp), cp)).toBe(true);
    expect(await store.readCheckpoints()).toEqual([cp]);
  });

  it("checkpointNow signs an unanchored head regardless of thresholds", async () => {
    const w = worker();
    await append(1, 1);
    await w.runOnce();
    await append(2, 1);
    expect(await w.runOnce()).toBeNull();
    expect(await w.checkpointNow()).toMatchObject({ seq: 2 });
    expect(await w.checkpointNow()).toBeNull();
  });

  it("treats a checkpoint another replica just signed as done, not as an error", async () => {
    const a = worker();
    const b = worker();
    await append(1, 10);
    expect(await b.runOnce()).toMatchObject({ seq: 10 });
    await append(11, 1);
    expect(await a.checkpointNow()).toMatchObject({ seq: 11 }); // b does not know about it
    expect(await b.checkpointNow()).toBeNull(); // conflict on seq 11: a did it
    expect((await store.readCheckpoints()).map((c) => c.seq)).toEqual([10, 11]);
  });

  it("runs on a timer without overlapping, logs failures and keeps going", async () => {
    await append(1, 1);
    let running = 0;
    let overlapped = false;
    let calls = 0;
    const flaky: Pick<Store, "transaction" | "readCheckpoints"> = {
      readCheckpoints: () => store.readCheckpoints(),
      async transaction(fn) {
        calls += 1;
        running += 1;
        if (running > 1) overlapped = true;
        await sleep(5);
        running -= 1;
        if (calls === 1) throw new BreakglassError("ERR_STORAGE", "database is locked");
        return store.transaction(fn);
      },
    };
    const log = vi.fn();
    const w = worker({ store: flaky, pollMs: 1, log });
    w.start();
    w.start(); // idempotent
    await until(
      "the checkpoint written after the failed pass",
      async () => (await store.readCheckpoints()).length === 1,
    );
    await w.stop();
    const after = calls;
    await sleep(20);
    expect(calls).toBe(after);
    expect(overlapped).toBe(false);
    expect(log).toHaveBeenCalledWith("audit checkpoint failed", { code: "ERR_STORAGE", error: "database is locked" });
  });
});
