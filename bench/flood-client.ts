/**
 * A client on its own thread (its own event loop), so its work does not sit on the event loop of
 * the program that measures. Two kinds:
 * - `flood`: one caller keeps `concurrency` requests in flight against `path` with one token,
 *   sending the next as soon as one answers (an attacker does not honour Retry-After), until told
 *   to stop; reports how many got which status;
 * - `probe`: GET `path` one after another every `intervalMs`, recording each latency.
 */
import { parentPort, workerData } from "node:worker_threads";

type Input =
  | { kind: "flood"; url: string; path: string; token: string; concurrency: number }
  | { kind: "probe"; url: string; path: string; intervalMs: number };

const input = workerData as Input;
let stop = false;
parentPort?.on("message", () => {
  stop = true;
});

if (input.kind === "flood") {
  const statuses = new Map<number, number>();
  let retryAfter = 0;
  const one = async (): Promise<void> => {
    while (!stop) {
      let status = -1;
      try {
        const res = await fetch(input.url + input.path, { headers: { authorization: `Bearer ${input.token}` } });
        await res.arrayBuffer();
        status = res.status;
        if (status === 429 && res.headers.get("retry-after") !== null) retryAfter++;
      } catch {
        status = -1; // connection refused or reset
      }
      statuses.set(status, (statuses.get(status) ?? 0) + 1);
    }
  };
  await Promise.all(Array.from({ length: input.concurrency }, one));
  parentPort?.postMessage({ statuses: Object.fromEntries(statuses), retryAfter });
} else {
  const samples: { at: number; ms: number; status: number }[] = [];
  while (!stop) {
    const at = Date.now();
    const started = performance.now();
    let status = -1;
    try {
      const res = await fetch(input.url + input.path, { signal: AbortSignal.timeout(60_000) });
      await res.arrayBuffer();
      status = res.status;
    } catch {
      status = -1;
    }
    const ms = performance.now() - started;
    samples.push({ at, ms, status });
    await new Promise((r) => setTimeout(r, Math.max(0, input.intervalMs - ms)));
  }
  parentPort?.postMessage({ samples });
}
