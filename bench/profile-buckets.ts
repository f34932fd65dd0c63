/**
 * Where a relaying process's time goes, per transaction: reads a `--cpu-prof` profile of the
 * broker (or of the bare relay) taken under `pgbench`, puts every sample in one bucket by its
 * stack (first rule that matches, in the order below), and divides by the transactions run.
 *
 *   node dist-bench/bench/profile-buckets.js PROFILE.cpuprofile TRANSACTIONS
 *
 * TRANSACTIONS is tps × seconds as pgbench printed them. Only the window in which the process
 * relayed counts (from the first to the last sample with a relaying frame in its stack), so the
 * broker's start and the grant's activation do not. Idle samples are left out: the table is the
 * process's busy time. Threads other than the profiled one have profiles of their own.
 */
import { readFileSync } from "node:fs";

interface Node {
  readonly id: number;
  readonly callFrame: { readonly functionName: string; readonly url: string };
  readonly children?: readonly number[];
}
interface Profile {
  readonly nodes: readonly Node[];
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
  { name: "recording: writer thread messages", match: (s) => has(s, inFile("/src/gateway/recording-writer")) },
  {
    name: "recording: store insert",
    match: (s) => has(s, fn("insertStatements", "insertStatementBatch")),
  },
  {
    name: "recording: store transaction (BEGIN/COMMIT) and the broker's other store work",
    match: (s) => has(s, inFile("/src/gateway/recorder", "/src/store/", "better-sqlite3", "/kysely/")),
  },
  {
    name: "recording: seal digest",
    match: (s) => has(s, fn("digestStep", "statementEntry", "canonicalJson", "sha256")),
  },
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

/** µs of busy time per transaction, by bucket (plus the total and the share idle in the window). */
export function bucketProfile(profile: Profile, transactions: number): { rows: [string, number][]; idle: number } {
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
  const relaying = (s: readonly Frame[]) =>
    has(s, gatewayCode) || has(s, (f) => f.functionName === "ondata" && f.url.includes("stream"));
  let first = -1;
  let last = -1;
  profile.samples.forEach((id, i) => {
    if (relaying(stackOf(id))) {
      if (first < 0) first = i;
      last = i;
    }
  });
  const us = new Map<string, number>(BUCKETS.map((b) => [b.name, 0]));
  let idle = 0;
  let all = 0;
  for (let i = Math.max(first, 0); i <= last; i++) {
    // A sample's delta is the time before it; the next sample's delta is this one's duration.
    const dt = profile.timeDeltas[i + 1] ?? 0;
    const stack = stackOf(profile.samples[i] as number);
    all += dt;
    if (stack[0]?.functionName === "(idle)") {
      idle += dt;
      continue;
    }
    const bucket = BUCKETS.find((b) => b.match(stack)) as (typeof BUCKETS)[number];
    us.set(bucket.name, (us.get(bucket.name) ?? 0) + dt);
  }
  const rows: [string, number][] = [...us].map(([k, v]) => [k, v / transactions]);
  rows.push(["total busy", [...us.values()].reduce((a, b) => a + b, 0) / transactions]);
  return { rows, idle: all === 0 ? 0 : idle / all };
}

if (process.argv[1]?.endsWith("profile-buckets.js")) {
  const [file, tx] = process.argv.slice(2);
  if (!file || !tx) throw new Error("usage: profile-buckets.js PROFILE.cpuprofile TRANSACTIONS");
  const { rows, idle } = bucketProfile(JSON.parse(readFileSync(file, "utf8")) as Profile, Number(tx));
  for (const [name, v] of rows) console.log(`${v.toFixed(1).padStart(7)}  ${name}`);
  console.log(`idle in the window: ${(idle * 100).toFixed(0)} %`);
}
