/**
 * The pieces both composition roots build from a configuration: the broker's (app.ts) and its
 * background thread's (background/background-thread.ts), which runs expiry, revocation and alarm
 * delivery off the event loop that answers requests (docs/adr/0008). Each root builds its own
 * over its own store connection; nothing here is shared at run time.
 */

import { sha256 } from "./adapters/node-crypto.js";
import type { AlarmChannel } from "./alarms/alarm-channel.js";
import { type AuditJournal, createAuditJournal } from "./audit/audit-journal.js";
import type { AppConfig } from "./config/app-config.js";
import { createConnector } from "./connectors/registry.js";
import type { Grant, Policy } from "./core/model.js";
import type { Connector } from "./core/ports/connector.js";
import type { GrantReads } from "./core/ports/grants.js";
import type { Clock } from "./core/ports/runtime.js";
import type { Transactions } from "./core/ports/transactions.js";
import type { Metrics } from "./metrics/metrics.js";
import type { SecretBox } from "./secrets/secret-box.js";
import type { SecretResolver } from "./secrets/secret-ref.js";
import { createGrantWriter, type GrantWriter, type GrantWriterTx } from "./service/grant-transitions.js";
import { createTargetAccess, type TargetAccess } from "./service/target-access.js";
import { type AlarmWorkerDeps, createAlarmWorker } from "./workers/alarm-worker.js";
import { createEscalationWorker, type EscalationWorkerDeps } from "./workers/escalation-worker.js";
import { createExpiryWorker, type ExpiryWorkerDeps } from "./workers/expiry-worker.js";

export type LogFn = (msg: string, fields?: Record<string, unknown>) => void;

/** A connector per configured target. */
export function createConnectors(
  policy: Policy,
  baseDir: string,
  resolveSecret: SecretResolver,
  log: LogFn,
  clock: Clock,
): Map<string, Connector> {
  const roles = [...policy.roles.values()];
  return new Map(
    [...policy.targets.values()].map(
      (t) =>
        [
          t.name,
          createConnector(
            t,
            { baseDir, resolveSecret, log, clock },
            roles.filter((r) => r.target === t.name),
          ),
        ] as const,
    ),
  );
}

export interface GrantWiring {
  /** Appends audit events and, in the same transaction, queues their alarms (the outbox). */
  readonly audit: AuditJournal;
  readonly writer: GrantWriter;
  readonly access: TargetAccess;
}

/**
 * The audit journal, the grant writer and the access controller over one store. `wakeAlarms`
 * runs after a transaction that queued alarms commits (deliver at once, not at the next poll).
 */
export function wireGrants(deps: {
  readonly config: AppConfig;
  readonly policy: Policy;
  /** What the grant writer and the access controller use. */
  readonly store: Transactions<GrantWriterTx> & Pick<GrantReads, "getGrant">;
  readonly connectors: ReadonlyMap<string, Connector>;
  readonly clock: Clock;
  readonly box: SecretBox | null;
  readonly wakeAlarms: () => void;
  readonly beforeRevoke: (grant: Grant) => void;
  readonly log: LogFn;
}): GrantWiring {
  const { config, store } = deps;
  const audit = createAuditJournal({ sha256, routing: config.alarms.routing, wakeAlarms: deps.wakeAlarms });
  const writer = createGrantWriter(store, audit);
  const access = createTargetAccess({
    policy: deps.policy,
    writer,
    store,
    audit,
    connectors: deps.connectors,
    clock: deps.clock,
    box: deps.box,
    gateway: config.gateway,
    beforeRevoke: deps.beforeRevoke,
    log: deps.log,
  });
  return { audit, writer, access };
}

/**
 * The work that must not wait behind requests: expiry (with revocation, activation retries,
 * notices and the takeover of a dead process's leases), alarm delivery, and escalation.
 */
export function createBackgroundWorkers(deps: {
  readonly config: AppConfig;
  readonly policy: Policy;
  /** What the three workers use. */
  readonly store: AlarmWorkerDeps["store"] & ExpiryWorkerDeps["store"] & EscalationWorkerDeps["store"];
  readonly wiring: GrantWiring;
  readonly channels: ReadonlyMap<string, AlarmChannel>;
  readonly clock: Clock;
  readonly metrics: Pick<Metrics, "expiryLag" | "alarmDelivery">;
  readonly log: LogFn;
}) {
  const { config, store, clock, log, wiring } = deps;
  const alarms = createAlarmWorker({
    metrics: deps.metrics,
    audit: wiring.audit,
    failureThreshold: 3,
    store,
    channels: deps.channels,
    clock,
    leaseMs: config.alarms.leaseMs,
    pollMs: 100,
    batchSize: 100,
    log,
  });
  const expiry = createExpiryWorker({
    metrics: deps.metrics,
    policy: deps.policy,
    store,
    audit: wiring.audit,
    access: wiring.access,
    clock,
    pollMs: config.workers.expiryPollMs,
    batchSize: config.workers.expiryBatchSize,
    revokeConcurrency: config.workers.revokeConcurrency,
    log,
  });
  const escalation = config.alarms.escalation
    ? createEscalationWorker({
        store,
        audit: wiring.audit,
        clock,
        afterMs: config.alarms.escalation.afterMs,
        intervalMs: 1000,
        log,
      })
    : null;
  return { alarms, expiry, escalation };
}
