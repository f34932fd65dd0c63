/**
 * A load generator on its own thread (its own event loop), so that client work does not sit on
 * the broker's event loop. Sends GETs of single grants and of the active list, and records
 * each latency with the phase (idle or storm) it started in.
 */
import { parentPort, workerData } from "node:worker_threads";

interface LoadInput {
  /** The replicas' base URLs; each client loop sticks to one, round robin. */
  readonly urls: readonly string[];
  readonly token: string;
  readonly grantIds: readonly string[];
  readonly concurrency: number;
}

const input = workerData as LoadInput;
let phase = "idle";
let stop = false;
const samples: { phase: string; ms: number; status: number }[] = [];

parentPort?.on("message", (msg: { phase?: string; stop?: boolean }) => {
  if (msg.phase) phase = msg.phase;
  if (msg.stop) stop = true;
});

async function loop(n: number): Promise<void> {
  const url = input.urls[n % input.urls.length];
  let i = n;
  while (!stop) {
    i++;
    const id = input.grantIds[(i * 7919) % input.grantIds.length];
    const path = i % 2 === 0 ? `/api/v1/grants/${id}` : "/api/v1/grants?state=active&limit=20";
    const started = performance.now();
    const current = phase;
    let status = 0;
    try {
      const res = await fetch(url + path, { headers: { authorization: `Bearer ${input.token}` } });
      await res.arrayBuffer();
      status = res.status;
    } catch {
      status = -1;
    }
    samples.push({ phase: current, ms: performance.now() - started, status });
  }
}

await Promise.all(Array.from({ length: input.concurrency }, (_, n) => loop(n)));
parentPort?.postMessage(samples);
