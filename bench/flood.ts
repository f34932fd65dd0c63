/**
 * The flood: one read-only token keeps 500 requests for the largest grant list in flight against a
 * real `breakglass server` process (a store of ~2,200 grants), while emergency grants on an `exec`
 * target (a file per holder, removed by the broker at the end) end one after another. Measured per
 * grant: the lag from its end to `grant.expired` (the broker closing the window) and to
 * `target.revoked` (the file gone); and `/health`'s latency, probed once every 100 ms from another
 * thread. The same grants and probe with no flood, in the same broker process, are the baseline.
 *
 * The flood and the probe run on threads of this process (bench/flood-client.ts); the broker is a
 * process of its own, as deployed. Everything shares the machine's cores: the figures are what a
 * flooded broker does on a small host, not what it does alone.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Worker } from "node:worker_threads";
import { silentLogger } from "../src/adapters/logger.js";
import { createBroker, openStore } from "../src/app.js";
import { loadConfigFile } from "../src/config/load-config.js";
import { connectorConfigChecks } from "../src/connectors/registry.js";
import { dueAt } from "../src/core/grant-machine.js";
import type { Grant } from "../src/core/model.js";
import { SYSTEM_CONTEXT } from "../src/core/request-context.js";
import { type Summary, summarize } from "./stats.js";

export interface FloodPhase {
  /** Grants that ended during the phase. */
  readonly grants: number;
  readonly expiryLagMs: Summary;
  readonly revokeLagMs: Summary;
  readonly healthMs: Summary;
  /** Health probes that failed (no answer, or not 200). */
  readonly healthErrors: number;
  /** The flood's answers by HTTP status (-1: no answer); empty without a flood. */
  readonly statuses: Readonly<Record<string, number>>;
  /** 429 answers that carried Retry-After. */
  readonly retryAfter: number;
}

export interface FloodResult {
  readonly backend: string;
  readonly storedGrants: number;
  readonly concurrency: number;
  readonly floodPath: string;
  readonly quiet: FloodPhase;
  readonly flood: FloodPhase;
}

const REQUESTERS = 24;
const SEEDED = 2_200;
const BIN = join(process.cwd(), "bin", "breakglass.js");

function yaml(storage: string): string {
  const users = Array.from({ length: REQUESTERS }, (_, i) => `u${i}: {}`).join(", ");
  const oncall = Array.from({ length: REQUESTERS }, (_, i) => `u${i}`).join(", ");
  return `version: 1
server: { host: 127.0.0.1, port: 0 }
storage: ${storage}
audit: { signing_key_file: ./audit-signing.pem, generate_key_if_missing: true }
alarms: { channels: { record: { type: file, path: ./alarms.jsonl } }, security_channels: [record], routes: [{ events: ["*"], channels: [record] }] }
workers: { expiry_poll: 250ms }
admin_groups: [security]
users: { ${users}, reader: {}, erin: {} }
groups: { oncall: [${oncall}], security: [erin] }
domains:
  production:
    roles:
      db: { target: box, default_duration: 5s, max_duration: 1h, approval: "1 of security", requesters: [oncall], emergency: true }
targets:
  box:
    connector: exec
    settings:
      grant: ["sh", "-c", 'mkdir -p targets && echo "$BREAKGLASS_USER" > "targets/$BREAKGLASS_PRINCIPAL"']
      revoke: ["sh", "-c", 'rm -f "targets/$BREAKGLASS_PRINCIPAL"']
      verify: ["sh", "-c", 'test ! -e "targets/$BREAKGLASS_PRINCIPAL"']
      timeout: 10s
`;
}

/** A reviewed grant of long ago: what a store of a few years holds, listed by the flood. */
function pastGrant(i: number, now: number): Grant {
  const requestedAt = now - 86_400_000 - i * 60_000;
  return {
    id: `g_past${i.toString().padStart(6, "0")}`,
    roleId: "production/db",
    domain: "production",
    target: "box",
    requester: `u${i % REQUESTERS}`,
    state: "reviewed",
    endReason: "expired",
    justification: "a past incident, long since reviewed",
    incident: `INC-${i}`,
    durationS: 1800,
    emergency: i % 3 === 0,
    requestedAt,
    approvedAt: requestedAt + 60_000,
    activatedAt: requestedAt + 60_000,
    endsAt: requestedAt + 1_860_000,
    endedAt: requestedAt + 1_860_000,
    lapseAt: null,
    reviewDueAt: requestedAt + 7 * 86_400_000,
    warnAt: null,
    reviewOverdueAt: null,
    approvals: [{ approver: "erin", at: requestedAt + 60_000, comment: null }],
    closedBy: null,
    closeReason: null,
    access: "revoked",
    accessHandle: { principal: `bg_past${i}` },
    accessAttempts: 0,
    accessLastError: null,
    activationFailure: null,
    accessNextAt: null,
    review: { reviewer: "erin", at: requestedAt + 86_400_000, outcome: "justified", notes: "ok", followUps: [] },
    version: 3,
  };
}

function startServer(
  configFile: string,
  cwd: string,
  env: Record<string, string>,
): Promise<{ url: string; child: ChildProcess }> {
  const child = spawn(process.execPath, [BIN, "server", "--config", configFile], {
    cwd,
    env: { ...process.env, ...env, BREAKGLASS_LOG_LEVEL: "silent" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  child.stderr?.on("data", (c: Buffer) => {
    err += c.toString("utf8");
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the broker did not start: ${err}`)), 30_000);
    child.stdout?.on("data", (c: Buffer) => {
      out += c.toString("utf8");
      const url = /listening on (http:\/\/\S+)/.exec(out)?.[1];
      if (url) {
        clearTimeout(timer);
        resolve({ url, child });
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`the broker exited with ${code}: ${err}`));
    });
  });
}

function client<T>(data: Record<string, unknown>): { result: Promise<T>; stop(): void } {
  const w = new Worker(new URL("./flood-client.js", import.meta.url), { workerData: data });
  const result = new Promise<T>((resolve, reject) => {
    w.once("message", (m: T) => {
      resolve(m);
      void w.terminate();
    });
    w.once("error", reject);
  });
  return { result, stop: () => w.postMessage("stop") };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * One phase: emergency grants requested at once with lengths of 3 to 10 s (3 ending each
 * second), with or without the flood running from just after they are active until the last has
 * ended and been revoked, or `maxMs`.
 */
async function phase(
  url: string,
  tokens: { requesters: string[]; reader: string; admin: string },
  flood: { path: string; concurrency: number } | null,
  prefix: string,
): Promise<{ grants: Map<string, number>; health: { ms: number; status: number }[]; flood: unknown }> {
  const grants = new Map<string, number>();
  await Promise.all(
    tokens.requesters.map(async (token, i) => {
      const res = await fetch(`${url}/api/v1/grants`, {
        method: "POST",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        body: JSON.stringify({
          role: "production/db",
          justification: `${prefix}: flood benchmark`,
          incident: prefix === "quiet" ? "INC-1" : "INC-2",
          duration: `${3 + (i % 8)}s`,
          emergency: true,
        }),
      });
      const g = (await res.json()) as { id?: string; state?: string; endsAt?: string };
      if (res.status !== 201 || g.state !== "active" || !g.id || !g.endsAt) {
        throw new Error(`emergency grant not active: ${res.status} ${JSON.stringify(g)}`);
      }
      grants.set(g.id, Date.parse(g.endsAt));
    }),
  );
  const probe = client<{ samples: { at: number; ms: number; status: number }[] }>({
    kind: "probe",
    url,
    path: "/api/v1/health",
    intervalMs: 100,
  });
  const floodClient = flood
    ? client<{ statuses: Record<string, number>; retryAfter: number }>({
        kind: "flood",
        url,
        path: flood.path,
        token: tokens.reader,
        concurrency: flood.concurrency,
      })
    : null;
  const lastEnd = Math.max(...grants.values());
  // The flood lasts until every grant has ended (+1 s); then wait for their revocations.
  await sleep(Math.max(0, lastEnd + 1_000 - Date.now()));
  floodClient?.stop();
  probe.stop();
  const [samples, floodResult] = await Promise.all([probe.result, floodClient?.result ?? Promise.resolve(null)]);
  return { grants, health: samples.samples, flood: floodResult };
}

async function waitRevoked(url: string, admin: string, ids: readonly string[]): Promise<void> {
  const deadline = Date.now() + 180_000;
  for (const id of ids) {
    for (;;) {
      const res = await fetch(`${url}/api/v1/grants/${id}`, { headers: { authorization: `Bearer ${admin}` } });
      if (res.status === 429) {
        await sleep(Number(res.headers.get("retry-after") ?? "1") * 1000);
        continue;
      }
      const g = (await res.json()) as { state: string; access: { state: string } };
      if (g.state !== "active" && g.access.state === "revoked") break;
      if (Date.now() > deadline) throw new Error(`grant ${id} not revoked within 3 minutes`);
      await sleep(200);
    }
  }
}

export async function runFlood(
  backend: string,
  storageYaml: string,
  env: Record<string, string>,
  opts: { concurrency?: number; path?: string } = {},
): Promise<FloodResult> {
  const concurrency = opts.concurrency ?? 500;
  const floodPath = opts.path ?? "/api/v1/grants?limit=1000";
  const dir = mkdtempSync(join(tmpdir(), `bg-bench-flood-${backend}-`));
  let child: ChildProcess | null = null;
  try {
    const file = join(dir, "breakglass.yaml");
    writeFileSync(file, yaml(storageYaml));
    const config = loadConfigFile(file, { ...connectorConfigChecks, env });
    // Tokens and the stored grants, written before the server starts.
    const setup = await createBroker(config, { log: silentLogger, env });
    const requesters: string[] = [];
    for (let i = 0; i < REQUESTERS; i++) {
      const t = await setup.tokens.create(SYSTEM_CONTEXT, { user: `u${i}`, description: "bench", scopes: ["request"] });
      requesters.push(t.token.reveal());
    }
    const reader = (
      await setup.tokens.create(SYSTEM_CONTEXT, { user: "reader", description: "bench flood", scopes: ["read"] })
    ).token.reveal();
    const admin = (await setup.tokens.create(SYSTEM_CONTEXT, { user: "erin", description: "bench" })).token.reveal();
    const now = Date.now();
    for (let i = 0; i < SEEDED; i += 500) {
      await setup.store.transaction(async (tx) => {
        for (let k = i; k < Math.min(SEEDED, i + 500); k++) {
          const g = pastGrant(k, now);
          await tx.saveGrant(g, dueAt(g));
        }
      });
    }
    await setup.stop();

    const server = await startServer(file, dir, env);
    child = server.child;
    const tokens = { requesters, reader, admin };
    const quiet = await phase(server.url, tokens, null, "quiet");
    await waitRevoked(server.url, admin, [...quiet.grants.keys()]);
    await sleep(2_000);
    const flooded = await phase(server.url, tokens, { path: floodPath, concurrency }, "flood");
    await waitRevoked(server.url, admin, [...flooded.grants.keys()]);

    child.kill("SIGTERM");
    await new Promise((r) => child?.once("exit", r));
    child = null;

    // The lags, from the audit log as the broker wrote it.
    const store = await openStore(config.storage);
    const expired = new Map<string, number>();
    const revoked = new Map<string, number>();
    try {
      for (let seq = 1; ; seq += 10_000) {
        const page = await store.readAudit(seq, 10_000);
        for (const e of page) {
          if (e.grantId === null) continue;
          if (e.type === "grant.expired") expired.set(e.grantId, e.at);
          if (e.type === "target.revoked") revoked.set(e.grantId, e.at);
        }
        if (page.length < 10_000) break;
      }
    } finally {
      await store.close();
    }
    const summary = (p: typeof quiet): FloodPhase => {
      const lag = (events: Map<string, number>) =>
        [...p.grants].map(([id, end]) => {
          const at = events.get(id);
          if (at === undefined) throw new Error(`grant ${id} has no ${events === expired ? "expiry" : "revocation"}`);
          return at - end;
        });
      const f = p.flood as { statuses: Record<string, number>; retryAfter: number } | null;
      return {
        grants: p.grants.size,
        expiryLagMs: summarize(lag(expired)),
        revokeLagMs: summarize(lag(revoked)),
        healthMs: summarize(p.health.filter((s) => s.status === 200).map((s) => s.ms)),
        healthErrors: p.health.filter((s) => s.status !== 200).length,
        statuses: f?.statuses ?? {},
        retryAfter: f?.retryAfter ?? 0,
      };
    };
    return {
      backend,
      storedGrants: SEEDED,
      concurrency,
      floodPath,
      quiet: summary(quiet),
      flood: summary(flooded),
    };
  } finally {
    if (child) {
      child.kill("SIGKILL");
      await new Promise((r) => child?.once("exit", r));
    }
    rmSync(dir, { recursive: true, force: true });
  }
}
