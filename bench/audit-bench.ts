/**
 * Audit log benchmarks: durable append (one event per transaction, and 100 per transaction)
 * against a same-run baseline of plain inserts of the same bytes into the same database, and
 * chain verification from the database, from a JSONL export, and in memory.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import pg from "pg";
import { sha256 } from "../src/adapters/node-crypto.js";
import { exportAudit } from "../src/audit/audit-export.js";
import { createAuditLog } from "../src/audit/audit-log.js";
import { verifyJsonl, verifyStoreChain } from "../src/audit/audit-verify.js";
import { ChainVerifier } from "../src/core/audit-chain.js";
import type { AuditEventDraft } from "../src/core/audit-event.js";
import type { Store } from "../src/core/ports/store.js";
import { createPostgresStore } from "../src/store/postgres-store.js";
import { createSqliteStore } from "../src/store/sqlite-store.js";

export interface AppendResult {
  readonly backend: string;
  readonly mode: string;
  readonly events: number;
  readonly eventsPerS: number;
  readonly baselinePerS: number;
  readonly ratio: number;
}

export interface VerifyResult {
  readonly backend: string;
  readonly source: string;
  readonly events: number;
  readonly eventsPerS: number;
}

function draft(i: number): AuditEventDraft {
  return {
    type: "grant.approval_added",
    actor: "bob",
    at: 1_790_000_000_000 + i,
    grantId: `g_bench${(i % 5000).toString().padStart(6, "0")}`,
    roleId: "production/db-admin",
    domain: "production",
    target: "pg-main",
    justification: "primary database is down, failover did not complete",
    incident: "INC-4711",
    requestId: `req_${i}`,
    sourceAddress: "127.0.0.1",
    data: { approver: "bob", comment: null, approvals: 1 },
  };
}

const elapsedS = (start: bigint): number => Number(process.hrtime.bigint() - start) / 1e9;

async function appendRate(store: Store, total: number, perTx: number, offset: number): Promise<number> {
  const log = createAuditLog({ sha256 });
  const start = process.hrtime.bigint();
  for (let i = 0; i < total; i += perTx) {
    const batch = Array.from({ length: perTx }, (_, k) => draft(offset + i + k));
    await store.transaction((tx) => log.append(tx, batch));
  }
  return total / elapsedS(start);
}

/** The same payload bytes inserted without chaining, locking or hashing: what the database alone costs. */
interface Baseline {
  rate(total: number, perTx: number): Promise<number>;
  close(): Promise<void>;
}

function sqliteBaseline(path: string): Baseline {
  const db = new Database(path);
  db.pragma("journal_mode = WAL");
  db.pragma("synchronous = FULL");
  db.exec("CREATE TABLE IF NOT EXISTS plain (seq INTEGER PRIMARY KEY, payload TEXT NOT NULL, hash TEXT NOT NULL)");
  const insert = db.prepare("INSERT INTO plain (payload, hash) VALUES (?, ?)");
  const payload = JSON.stringify(draft(0));
  const hash = "0".repeat(64);
  return {
    async rate(total, perTx) {
      const tx = db.transaction((n: number) => {
        for (let k = 0; k < n; k++) insert.run(payload, hash);
      });
      const start = process.hrtime.bigint();
      for (let i = 0; i < total; i += perTx) tx(perTx);
      return total / elapsedS(start);
    },
    async close() {
      db.close();
    },
  };
}

async function postgresBaseline(url: string): Promise<Baseline> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  await client.query(
    "CREATE TABLE IF NOT EXISTS plain (seq bigserial PRIMARY KEY, payload text NOT NULL, hash text NOT NULL)",
  );
  const payload = JSON.stringify(draft(0));
  const hash = "0".repeat(64);
  return {
    async rate(total, perTx) {
      const start = process.hrtime.bigint();
      for (let i = 0; i < total; i += perTx) {
        await client.query("BEGIN");
        const values = Array.from({ length: perTx }, (_, k) => `($${2 * k + 1}, $${2 * k + 2})`).join(",");
        const params = Array.from({ length: perTx }, () => [payload, hash]).flat();
        await client.query(`INSERT INTO plain (payload, hash) VALUES ${values}`, params);
        await client.query("COMMIT");
      }
      return total / elapsedS(start);
    },
    close: () => client.end(),
  };
}

export async function benchAuditAppend(
  backend: string,
  store: Store,
  baseline: Baseline,
  sizes: { single: number; batched: number },
): Promise<AppendResult[]> {
  const out: AppendResult[] = [];
  // Warm up both paths.
  await appendRate(store, 200, 1, 0);
  await baseline.rate(200, 1);
  const chained1 = await appendRate(store, sizes.single, 1, 1_000);
  const plain1 = await baseline.rate(sizes.single, 1);
  out.push({
    backend,
    mode: "1 event / transaction",
    events: sizes.single,
    eventsPerS: chained1,
    baselinePerS: plain1,
    ratio: chained1 / plain1,
  });
  const chained100 = await appendRate(store, sizes.batched, 100, 1_000_000);
  const plain100 = await baseline.rate(sizes.batched, 100);
  out.push({
    backend,
    mode: "100 events / transaction",
    events: sizes.batched,
    eventsPerS: chained100,
    baselinePerS: plain100,
    ratio: chained100 / plain100,
  });
  return out;
}

export async function benchAuditVerify(backend: string, store: Store, events: number): Promise<VerifyResult[]> {
  const log = createAuditLog({ sha256 });
  const head = (await store.readAudit(1, 1_000_000)).length;
  for (let i = head; i < events; i += 1000) {
    const batch = Array.from({ length: Math.min(1000, events - i) }, (_, k) => draft(2_000_000 + i + k));
    await store.transaction((tx) => log.append(tx, batch));
  }
  const noKeys = () => null;
  const out: VerifyResult[] = [];

  let start = process.hrtime.bigint();
  const verdict = await verifyStoreChain(store, noKeys);
  if (!verdict.ok) throw new Error(`chain did not verify: ${verdict.message}`);
  out.push({
    backend,
    source: "database (read + hash)",
    events: verdict.eventsChecked,
    eventsPerS: verdict.eventsChecked / elapsedS(start),
  });

  const rows = await store.readAudit(1, Number.MAX_SAFE_INTEGER);
  start = process.hrtime.bigint();
  const v = new ChainVerifier(sha256);
  for (const r of rows) v.push(r);
  const mem = v.finish([], noKeys);
  if (!mem.ok) throw new Error("in-memory verify failed");
  out.push({
    backend,
    source: "in memory (hash only)",
    events: rows.length,
    eventsPerS: rows.length / elapsedS(start),
  });

  const lines: string[] = [];
  await exportAudit(store, (line) => lines.push(line), { format: "jsonl" });
  start = process.hrtime.bigint();
  const file = await verifyJsonl(lines, noKeys);
  if (!file.ok) throw new Error("JSONL verify failed");
  out.push({
    backend,
    source: "JSONL export (parse + canonicalise + hash)",
    events: file.eventsChecked,
    eventsPerS: file.eventsChecked / elapsedS(start),
  });
  return out;
}

export async function runAuditBenchmarks(pgUrl: string, sizes: { single: number; batched: number; verify: number }) {
  const dir = mkdtempSync(join(tmpdir(), "bg-bench-audit-"));
  try {
    const sqlite = await createSqliteStore({ path: join(dir, "audit.db") });
    const sqliteBase = sqliteBaseline(join(dir, "baseline.db"));
    const append = await benchAuditAppend("sqlite", sqlite, sqliteBase, sizes);
    await sqliteBase.close();
    const verify = await benchAuditVerify("sqlite", sqlite, sizes.verify);
    await sqlite.close();

    const postgres = await createPostgresStore({ url: pgUrl, poolSize: 4 });
    const pgBase = await postgresBaseline(pgUrl);
    append.push(...(await benchAuditAppend("postgres", postgres, pgBase, sizes)));
    await pgBase.close();
    verify.push(...(await benchAuditVerify("postgres", postgres, sizes.verify)));
    await postgres.close();
    return { append, verify };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
