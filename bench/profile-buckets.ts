/**
 * Where a relaying process's time goes, per transaction: reads a `--cpu-prof` profile of the
 * broker (or of the bare relay) taken under `pgbench`, puts every sample in one bucket by its
 * stack (first rule that matches, in the order below), and divides by the transactions run.
 *
 *   node dist-bench/bench/profile-buckets.js TRANSACTIONS RELAYING.cpuprofile [OTHER.cpuprofile…]
 *
 * TRANSACTIONS is tps × seconds as pgbench printed them. Only the window in which the first
 * profile's thread relayed counts (from the first to the last sample with a relaying frame in its
 * stack), so the broker's start and the grant's activation do not; the other profiles — the other
 * threads of the same process (`--cpu-prof` writes one per thread: the broker's main thread, the
 * recording thread) — are counted over the same window. Idle samples are left out: the table is
 * busy time. The profiler samples wall time, so a thread descheduled inside a system call (a
 * socket write that woke its reader) counts as busy there: read the figures as busy time, not CPU.
 */
import { readFileSync } from "node:fs";

interface Node {
  readonly id: number;
  readonly callFrame: { readonly functionName: string; readonly url: string };
  readonly children?: readonly number[];
}
interface Profile {
  readonly nodes: readonly Node[];
  readonly startTime: number;
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

type Frame = Node["callFrame"];
const has = (stack: readonly Frame[], test: (f: Frame) => boolean) => stack.some(test);
const fn = (...names: string[]) => {
  const set = new Set(names);
  return (f: Frame) => set.has(f.functionName);
};
const inFile =
  (...parts: string[]) =>
  (f: Frame) =>
    parts.some((p) => f.url.includes(p));
const gatewayCode = inFile("/src/gateway/", "/bench/bare-relay");

/** Buckets in the order they are tried; the first whose rule matches a sample's stack takes it. */
export const BUCKETS: readonly { readonly name: string; readonly match: (stack: readonly Frame[]) => boolean }[] = [
  { name: "GC", match: (s) => s[0]?.functionName === "(garbage collector)" },
  { name: "recording: store insert", match: (s) => has(s, fn("insertStatements", "insertStatementBatches")) },
  {
    name: "recording: seal digest",
    match: (s) => has(s, fn("sealBatches", "digestStep", "canonicalJson", "sha256")),
  },
  {
    name: "recording: store transaction (BEGIN/COMMIT) and the broker's other store work",
    match: (s) => has(s, inFile("/src/store/", "better-sqlite3", "/kysely/")),
  },
  {
    name: "recording: gathering, and handing batches to the recording thread",
    match: (s) =>
      has(s, inFile("/src/gateway/recorder", "/src/gateway/recording-writer", "/src/gateway/recording-thread")),
  },
  { name: "recording: the statement's entry (its canonical JSON)", match: (s) => has(s, fn("statementEntry")) },
  {
    name: "socket writes",
    match: (s) =>
      has(s, fn("writeBuffer", "writev", "writeUtf8String", "writeGeneric", "writevGeneric", "_writeGeneric")),
  },
  { name: "gateway JS (framing, inspection, scanning, guard, records)", match: (s) => has(s, gatewayCode) },
  {
    name: "socket reads, stream and event machinery",
    match: (s) => has(s, fn("onStreamRead", "readableAddChunk", "addChunk", "emit", "resume_", "flow")),
  },
  { name: "timers", match: (s) => has(s, fn("listOnTimeout", "processTimers")) },
  { name: "other", match: () => true },
];

/** Each sample's stack (leaf first) and its time (µs, the profile's clock) and duration. */
function samplesOf(profile: Profile): { stack: Frame[]; at: number; dt: number }[] {
  const byId = new Map<number, Node>();
  const parent = new Map<number, number>();
  for (const n of profile.nodes) {
    byId.set(n.id, n);
    for (const c of n.children ?? []) parent.set(c, n.id);
  }
  const stacks = new Map<number, Frame[]>();
  const stackOf = (id: number): Frame[] => {
    let s = stacks.get(id);
    if (s) return s;
    s = [];
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const n = byId.get(at);
      if (n) s.push(n.callFrame);
    }
    stacks.set(id, s);
    return s;
  };
  const out: { stack: Frame[]; at: number; dt: number }[] = [];
  let at = profile.startTime;
  profile.samples.forEach((id, i) => {
    at += profile.timeDeltas[i] ?? 0;
    // A sample's delta is the time before it; the next sample's delta is this one's duration.
    out.push({ stack: stackOf(id), at, dt: profile.timeDeltas[i + 1] ?? 0 });
  });
  return out;
}

/**
 * µs of busy time per transaction, by bucket, over the window in which the first profile relayed
 * (plus the total, and the share of the first profile's window it was idle).
 */
export function bucketProfile(
  profiles: readonly Profile[],
  transactions: number,
): { rows: [string, number][]; idle: number } {
  const [first, ...others] = profiles.map(samplesOf);
  if (!first) throw new Error("no profile");
  const relaying = (s: readonly Frame[]) =>
    has(s, gatewayCode) || has(s, (f) => f.functionName === "ondata" && f.url.includes("stream"));
  const window = first.filter((x) => relaying(x.stack));
  const from = window[0]?.at ?? 0;
  const to = window[window.length - 1]?.at ?? 0;
  const us = new Map<string, number>(BUCKETS.map((b) => [b.name, 0]));
  let idle = 0;
  let all = 0;
  for (const [i, samples] of [first, ...others].entries()) {
    for (const x of samples) {
      if (x.at < from || x.at > to) continue;
      const isIdle = x.stack[0]?.functionName === "(idle)";
      if (i === 0) {
        all += x.dt;
        if (isIdle) idle += x.dt;
      }
      if (isIdle) continue;
      const bucket = BUCKETS.find((b) => b.match(x.stack)) as (typeof BUCKETS)[number];
      us.set(bucket.name, (us.get(bucket.name) ?? 0) + x.dt);
    }
  }
  const rows: [string, number][] = [...us].map(([k, v]) => [k, v / transactions]);
  rows.push(["total busy", [...us.values()].reduce((a, b) => a + b, 0) / transactions]);
  return { rows, idle: all === 0 ? 0 : idle / all };
}

if (process.argv[1]?.endsWith("profile-buckets.js")) {
  const [tx, ...files] = process.argv.slice(2);
  if (!tx || files.length === 0) throw new Error("usage: profile-buckets.js TRANSACTIONS RELAYING.cpuprofile [OTHER…]");
  const profiles = files.map((f) => JSON.parse(readFileSync(f, "utf8")) as Profile);
  const { rows, idle } = bucketProfile(profiles, Number(tx));
  for (const [name, v] of rows) console.log(`${v.toFixed(1).padStart(7)}  ${name}`);
  console.log(`the relaying thread idle in the window: ${(idle * 100).toFixed(0)} %`);
}
