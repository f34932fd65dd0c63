/**
 * The files the offline CLI keeps beside an envelope, written so that no opening can lose
 * another's data:
 *
 * - `ENVELOPE.openings.jsonl` — the signed, chained opening records (opening-record.ts);
 * - `ENVELOPE.pending-alarm.<seq>-<hash>.json` — one per opening whose alarm no endpoint took,
 *   kept until it is delivered (never overwritten: each opening has its own name);
 * - `ENVELOPE.alarm-receipts.jsonl` — one line per pending alarm delivered later (`flush-alarms`):
 *   the record it belongs to (seq and hash), when, and to how many endpoints. Records are signed
 *   by the custodians and cannot be amended afterwards; a receipt is how a record's "pending"
 *   becomes "delivered".
 *
 * Every write is atomic (a temporary file, fsync, then rename — or link, for a file that must not
 * exist yet — and an fsync of the folder): a crash leaves the old file or the new one, never half
 * of one. Read-modify-write of the records and receipts happens under `ENVELOPE.lock`, so two
 * openings racing in two processes both land, one after the other in the chain.
 */
import { randomBytes } from "node:crypto";
import {
  closeSync,
  existsSync,
  fsyncSync,
  linkSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  statSync,
  unlinkSync,
  writeSync,
} from "node:fs";
import { hostname } from "node:os";
import { basename, dirname, join } from "node:path";
import { BreakglassError } from "../core/errors.js";
import {
  type AlarmReceipt,
  alarmStillPending,
  type OpeningFacts,
  type OpeningRecord,
  parseReceipts,
  parseRecords,
} from "./opening-record.js";

export const recordsFileOf = (envelopeFile: string): string => `${envelopeFile}.openings.jsonl`;
export const receiptsFileOf = (envelopeFile: string): string => `${envelopeFile}.alarm-receipts.jsonl`;
/** Before issue 19 every opening wrote this one file (so a second opening overwrote the first's). */
export const legacyPendingFileOf = (envelopeFile: string): string => `${envelopeFile}.pending-alarm.json`;
const pendingPrefix = (envelopeFile: string) => `${basename(envelopeFile)}.pending-alarm.`;
export const pendingFileOf = (envelopeFile: string, record: { seq: number; hash: string }): string =>
  join(dirname(envelopeFile), `${pendingPrefix(envelopeFile)}${record.seq}-${record.hash.slice(0, 16)}.json`);

/** An opening's alarm that no endpoint took, waiting for `flush-alarms`. */
export interface PendingAlarm {
  /** The opening record it belongs to; null in a file written before records named their alarm. */
  readonly record: { readonly seq: number; readonly hash: string } | null;
  readonly event: Record<string, unknown>;
  readonly endpoints: readonly { type: string; url: string; to?: string }[];
  readonly errors: readonly string[];
}

function fsyncFolder(path: string): void {
  const fd = openSync(dirname(path), "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function writeTemp(path: string, data: string, mode: number): string {
  const temp = join(dirname(path), `.${basename(path)}.tmp-${process.pid}-${randomBytes(4).toString("hex")}`);
  const fd = openSync(temp, "wx", mode);
  try {
    writeSync(fd, data);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  return temp;
}

/** Replace `path` whole with `data`, atomically and durably. */
export function replaceFileAtomic(path: string, data: string, mode: number): void {
  const temp = writeTemp(path, data, mode);
  try {
    renameSync(temp, path);
  } catch (e) {
    rmQuiet(temp);
    throw e;
  }
  fsyncFolder(path);
}

/**
 * Create `path` with `data`, atomically and durably; never overwrites.
 * @throws an `EEXIST` error when `path` exists
 */
export function createFileAtomic(path: string, data: string, mode: number): void {
  const temp = writeTemp(path, data, mode);
  try {
    linkSync(temp, path); // fails when path exists: no overwrite, unlike rename
  } finally {
    rmQuiet(temp);
  }
  fsyncFolder(path);
}

function rmQuiet(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // already gone
  }
}

const LOCK_WAIT_MS = 60_000;
/** The lock is held for a read and a rename (milliseconds): one this old was left by a crash. */
const LOCK_STALE_MS = 30_000;

function lockIsStale(lock: string): boolean {
  try {
    const holder = JSON.parse(readFileSync(lock, "utf8")) as { pid?: number; host?: string };
    if (holder.host === hostname() && typeof holder.pid === "number") {
      try {
        process.kill(holder.pid, 0);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === "ESRCH") return true; // its process is gone
      }
    }
  } catch {
    // unreadable (being written, or damaged): judged by its age
  }
  try {
    return Date.now() - statSync(lock).mtimeMs > LOCK_STALE_MS;
  } catch {
    return false; // released meanwhile
  }
}

const pause = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Run `fn` holding the envelope's lock file (`ENVELOPE.lock`, created exclusively). A lock whose
 * process is gone, or that is older than 30 s, was left by a crash and is taken over.
 * @throws ERR_CONFLICT when another process holds it for a minute
 */
export async function withEnvelopeLock<T>(envelopeFile: string, fn: () => T | Promise<T>): Promise<T> {
  const lock = `${envelopeFile}.lock`;
  const deadline = Date.now() + LOCK_WAIT_MS;
  for (;;) {
    try {
      const fd = openSync(lock, "wx", 0o644);
      try {
        writeSync(fd, JSON.stringify({ pid: process.pid, host: hostname(), at: new Date().toISOString() }));
      } finally {
        closeSync(fd);
      }
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
      if (lockIsStale(lock)) {
        rmQuiet(lock);
        continue;
      }
      if (Date.now() > deadline) {
        throw new BreakglassError(
          "ERR_CONFLICT",
          `${lock} is held by another breakglass vault command; if none is running, remove the file`,
        );
      }
      await pause(10 + Math.floor(Math.random() * 40));
    }
  }
  try {
    return await fn();
  } finally {
    rmQuiet(lock);
  }
}

const readIfExists = (path: string): string => (existsSync(path) ? readFileSync(path, "utf8") : "");

export const readRecords = (envelopeFile: string): OpeningRecord[] =>
  parseRecords(readIfExists(recordsFileOf(envelopeFile)));

export const readReceipts = (envelopeFile: string): AlarmReceipt[] =>
  parseReceipts(readIfExists(receiptsFileOf(envelopeFile)));

/**
 * Append the next opening record under the envelope's lock: `make` gets the records as they are
 * now (another process may have added some since this one started). When `pending` is given, the
 * opening's own pending alarm file is written first — a crash in between leaves an alarm to
 * deliver, never a record whose alarm is lost.
 */
export async function appendOpening(
  envelopeFile: string,
  make: (previous: readonly OpeningRecord[]) => OpeningRecord,
  pending: Omit<PendingAlarm, "record"> | null,
): Promise<{ record: OpeningRecord; pendingFile: string | null }> {
  return withEnvelopeLock(envelopeFile, () => {
    const recordsFile = recordsFileOf(envelopeFile);
    const text = readIfExists(recordsFile);
    const record = make(parseRecords(text));
    let pendingFile: string | null = null;
    if (pending) {
      pendingFile = pendingFileOf(envelopeFile, record);
      const body: PendingAlarm = { record: { seq: record.seq, hash: record.hash }, ...pending };
      createFileAtomic(pendingFile, `${JSON.stringify(body)}\n`, 0o600);
    }
    const sep = text === "" || text.endsWith("\n") ? "" : "\n";
    replaceFileAtomic(recordsFile, `${text}${sep}${JSON.stringify(record)}\n`, 0o644);
    return { record, pendingFile };
  });
}

/** Record that a pending alarm was delivered (under the lock, atomically). */
export async function appendReceipt(envelopeFile: string, receipt: AlarmReceipt): Promise<void> {
  await withEnvelopeLock(envelopeFile, () => {
    const file = receiptsFileOf(envelopeFile);
    const text = readIfExists(file);
    const sep = text === "" || text.endsWith("\n") ? "" : "\n";
    replaceFileAtomic(file, `${text}${sep}${JSON.stringify(receipt)}\n`, 0o644);
  });
}

/** Every pending alarm file of the envelope (this version's, and the one legacy file), by path. */
export function listPendingAlarms(envelopeFile: string): { file: string; alarm: PendingAlarm }[] {
  const folder = dirname(envelopeFile);
  const prefix = pendingPrefix(envelopeFile);
  const files = readdirSync(folder)
    .filter((f) => f.startsWith(prefix) && f.endsWith(".json"))
    .map((f) => join(folder, f));
  const out: { file: string; alarm: PendingAlarm }[] = [];
  for (const file of files) {
    try {
      const parsed = JSON.parse(readFileSync(file, "utf8")) as Partial<PendingAlarm>;
      out.push({
        file,
        alarm: {
          record: parsed.record ?? null,
          event: parsed.event ?? {},
          endpoints: parsed.endpoints ?? [],
          errors: parsed.errors ?? [],
        },
      });
    } catch {
      // removed meanwhile (delivered by another flush), or damaged: the record still says pending
    }
  }
  return out;
}

export const removeFile = rmQuiet;

/** An opening's alarm that no endpoint has taken yet, and the files that hold it. */
export interface WaitingAlarm {
  /** The opening's record; null for a pending alarm file whose opening has no record (it crashed before). */
  readonly record: OpeningRecord | null;
  readonly at: string;
  readonly incident: string;
  /** What to announce: the pending file's event, or rebuilt from the record when its file is gone. */
  readonly event: Record<string, unknown>;
  readonly files: readonly string[];
}

/**
 * Every alarm of the envelope still to deliver: each record whose alarm was pending at the
 * opening and has no receipt (whether or not its pending file survived — the signed record has
 * everything the alarm says), plus pending files that name no record. `delivered` lists pending
 * files whose alarm was delivered already (a flush that stopped before removing them).
 */
export function gatherPendingAlarms(envelopeFile: string): {
  waiting: WaitingAlarm[];
  delivered: string[];
} {
  const records = readRecords(envelopeFile);
  const receipts = readReceipts(envelopeFile);
  const files = listPendingAlarms(envelopeFile);
  const factsOf = (r: OpeningRecord) => JSON.parse(r.payload) as OpeningFacts;
  const belongs = (f: PendingAlarm, r: OpeningRecord) =>
    f.record
      ? f.record.seq === r.seq && f.record.hash === r.hash
      : // The legacy single file: its event carries the opening's time and envelope id.
        f.event.at === factsOf(r).at && f.event.envelopeId === factsOf(r).envelope;
  const claimed = new Set<string>();
  const waiting: WaitingAlarm[] = [];
  for (const r of alarmStillPending(records, receipts)) {
    const facts = factsOf(r);
    const mine = files.filter((f) => belongs(f.alarm, r));
    for (const f of mine) claimed.add(f.file);
    waiting.push({
      record: r,
      at: facts.at,
      incident: facts.incident,
      event: mine[0]?.alarm.event ?? {
        type: "vault.opened",
        envelope: facts.name,
        envelopeId: facts.envelope,
        at: facts.at,
        custodians: facts.custodians,
        reason: facts.reason,
        incident: facts.incident,
      },
      files: mine.map((f) => f.file),
    });
  }
  const delivered: string[] = [];
  for (const f of files) {
    if (claimed.has(f.file)) continue;
    if (records.some((r) => belongs(f.alarm, r))) delivered.push(f.file);
    else
      waiting.push({
        record: null,
        at: String(f.alarm.event.at ?? "?"),
        incident: String(f.alarm.event.incident ?? "?"),
        event: f.alarm.event,
        files: [f.file],
      });
  }
  return { waiting, delivered };
}
