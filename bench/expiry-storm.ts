/**
 * The expiry storm: 10,000 active grants whose ends fall in the same second. Measures, per grant,
 * the lag from its end to its `grant.expired` event (the broker closing the window) and to its
 * `target.revoked` event (access verified gone at the target), while a separate thread keeps
 * calling the API, whose latency is compared between the idle phase before the storm and the
 * storm itself.
 *
 * The target is an in-process connector that does nothing: this measures the broker (claiming,
 * transitions, audit, bookkeeping), not a target. Real targets are measured in their own issues.
 *
 * With `replicas`, the brokers that serve the API and run the workers are that many replicas on
 * their own threads (bench/storm-replica.ts), sharing the store — the PostgreSQL deployment —
 * and the API load is spread over them; without, one broker runs in this process (the embedded
 * default). Either way this process seeds the grants and reads the audit log afterwards.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Worker } from "node:worker_threads";
import { silentLogger } from "../src/adapters/logger.js";
import { createBroker } from "../src/app.js";
import { loadConfigFile } from "../src/config/load-config.js";
import { connectorSettingsSchemas } from "../src/connectors/registry.js";
import { dueAt } from "../src/core/grant-machine.js";
import type { Grant } from "../src/core/model.js";
import { SYSTEM_CONTEXT } from "../src/core/request-context.js";
import { noopConnector } from "./noop-connector.js";
import { type Summary, summarize } from "./stats.js";

export interface StormResult {
  readonly backend: string;
  /** Broker replicas serving and working (threads), or 1 in-process broker. */
  readonly replicas: number;
  readonly grants: number;
  readonly expiryLagMs: Summary;
  readonly revokeLagMs: Summary;
  readonly apiIdleMs: Summary;
  readonly apiStormMs: Summary;
  readonly apiErrors: number;
}

function yaml(storage: string): string {
  // The API's request limits (issue 19) out of the way: the load thread is one legitimate caller
  // whose latency is measured, not a flood (bench/flood.ts measures the limits).
  return `version: 1
server:
  host: 127.0.0.1
  port: 0
  limits:
    per_caller: { per_second: 1000000, burst: 1000000 }
    per_address: { per_second: 1000000, burst: 1000000 }
storage: ${storage}
audit: { signing_key_file: ./audit-signing.pem, generate_key_if_missing: true }
workers: { expiry_poll: 250ms, expiry_batch_size: 500, revoke_concurrency: 16 }
admin_groups: [leads]
users: { alice: { name: Alice }, bob: { name: Bob }, carol: { name: Carol } }
groups: { oncall: [alice], leads: [bob, carol] }
domains:
  production:
    description: Production
    roles:
      db-admin:
        description: Recovery DBA
        target: box
        default_duration: 30m
        max_duration: 2h
        approval: "2 of leads"
        requesters: [oncall]
targets:
  box: { connector: exec, settings: { grant: ["true"], revoke: ["true"] } }
`;
}

function activeGrant(i: number, endsAt: number, template: Grant): Grant {
  return {
    ...template,
    id: `g_storm${i.toString().padStart(6, "0")}`,
    requester: `user${i}`, // one open grant per user and role: 10,000 users
    endsAt,
    activatedAt: endsAt - 30 * 60_000,
    requestedAt: endsAt - 31 * 60_000,
    approvedAt: endsAt - 30 * 60_000,
  };
}

export async function runExpiryStorm(
  backend: string,
  storageYaml: string,
  env: Record<string, string>,
  grants = 10_000,
  replicas?: number,
): Promise<StormResult> {
  const dir = mkdtempSync(join(tmpdir(), `bg-bench-storm-${backend}-`));
  try {
    writeFileSync(join(dir, "breakglass.yaml"), yaml(storageYaml));
    const config = loadConfigFile(join(dir, "breakglass.yaml"), { connectorSchemas: connectorSettingsSchemas, env });
    const broker = await createBroker(config, {
      log: silentLogger,
      env,
      connectors: new Map([["box", noopConnector]]),
    });
    const { token } = await broker.tokens.create(SYSTEM_CONTEXT, { user: "bob", description: "bench" });

    const template: Grant = {
      id: "",
      roleId: "production/db-admin",
      domain: "production",
      target: "box",
      requester: "",
      state: "active",
      endReason: null,
      justification: "storm benchmark grant",
      incident: "INC-1",
      durationS: 1800,
      emergency: false,
      requestedAt: 0,
      approvedAt: null,
      activatedAt: null,
      endsAt: null,
      endedAt: null,
      lapseAt: null,
      reviewDueAt: null,
      warnAt: null,
      reviewOverdueAt: null,
      approvals: [],
      closedBy: null,
      closeReason: null,
      access: "granted",
      accessHandle: { principal: "bg_storm" },
      accessAttempts: 0,
      accessLastError: null,
      activationFailure: null,
      accessNextAt: null,
      review: null,
      version: 1,
    };
    // All ends fall inside one second that starts after seeding, the replicas' start and an idle phase.
    const t0 = Date.now() + 15_000;
    const ends = new Map<string, number>();
    for (let i = 0; i < grants; i += 1000) {
      await broker.store.transaction(async (tx) => {
        for (let k = i; k < Math.min(grants, i + 1000); k++) {
          const g = activeGrant(k, t0 + Math.floor((k * 997) % 1000), template);
          ends.set(g.id, g.endsAt ?? 0);
          await tx.saveGrant(g, dueAt(g));
        }
      });
    }
    const threads =
      replicas === undefined
        ? []
        : Array.from(
            { length: replicas },
            () =>
              new Worker(new URL("./storm-replica.js", import.meta.url), {
                workerData: { configFile: join(dir, "breakglass.yaml"), env },
              }),
          );
    const urls =
      replicas === undefined
        ? [await broker.start()]
        : await Promise.all(
            threads.map(
              (t) =>
                new Promise<string>((resolve, reject) => {
                  t.once("message", (m: { url: string }) => resolve(m.url));
                  t.once("error", reject);
                }),
            ),
          );
    if (Date.now() > t0 - 3_000) throw new Error("seeding took too long for a clean idle phase; lower the grant count");
    const load = new Worker(new URL("./load-worker.js", import.meta.url), {
      workerData: { urls, token: token.reveal(), grantIds: [...ends.keys()], concurrency: 4 },
    });
    const samples = new Promise<{ phase: string; ms: number; status: number }[]>((resolve, reject) => {
      load.once("message", resolve);
      load.once("error", reject);
    });

    await new Promise((r) => setTimeout(r, Math.max(0, t0 - Date.now())));
    load.postMessage({ phase: "storm" });
    const deadline = Date.now() + 180_000;
    for (;;) {
      const next = await broker.store.nextDueAt();
      // Done when nothing is due any more but the reviews' deadlines, days away.
      if ((next === null || next > Date.now() + 3_600_000) && Date.now() > t0 + 1000) break;
      if (Date.now() > deadline) throw new Error("storm did not finish within 3 minutes");
      await new Promise((r) => setTimeout(r, 100));
    }
    load.postMessage({ stop: true });
    const all = await samples;
    await load.terminate();

    const expiryLag: number[] = [];
    const revokeLag: number[] = [];
    for (let seq = 1; ; seq += 10_000) {
      const page = await broker.store.readAudit(seq, 10_000);
      for (const e of page) {
        const end = e.grantId === null ? undefined : ends.get(e.grantId);
        if (end === undefined) continue;
        if (e.type === "grant.expired") expiryLag.push(e.at - end);
        if (e.type === "target.revoked") revokeLag.push(e.at - end);
      }
      if (page.length < 10_000) break;
    }
    await Promise.all(
      threads.map(
        (t) =>
          new Promise<void>((resolve) => {
            t.once("message", () => resolve());
            t.postMessage({ stop: true });
          }),
      ),
    );
    await Promise.all(threads.map((t) => t.terminate()));
    await broker.stop();
    if (expiryLag.length !== grants || revokeLag.length !== grants) {
      throw new Error(`expected ${grants} expiries and revocations, saw ${expiryLag.length} and ${revokeLag.length}`);
    }
    const failed = all.filter((s) => s.status !== 200).length;
    // Latencies of refusals are not the API's latency: a run where many requests failed says nothing.
    if (failed > all.length / 100) {
      const statuses = new Map<number, number>();
      for (const s of all) if (s.status !== 200) statuses.set(s.status, (statuses.get(s.status) ?? 0) + 1);
      throw new Error(
        `the API answered ${failed} of ${all.length} requests with an error (${[...statuses].map(([k, n]) => `${k}: ${n}`).join(", ")}): its latency was not measured`,
      );
    }
    return {
      backend,
      replicas: replicas ?? 1,
      grants,
      expiryLagMs: summarize(expiryLag),
      revokeLagMs: summarize(revokeLag),
      apiIdleMs: summarize(all.filter((s) => s.phase === "idle").map((s) => s.ms)),
      apiStormMs: summarize(all.filter((s) => s.phase === "storm").map((s) => s.ms)),
      apiErrors: failed,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
