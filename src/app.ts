/**
 * The composition root: the only place adapters are constructed and wired. Everything else
 * receives what it needs as arguments.
 */
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { hostname } from "node:os";
import { dirname } from "node:path";
import type { FastifyInstance } from "fastify";
import { createLogger, type Logger } from "./adapters/logger.js";
import { sha256 } from "./adapters/node-crypto.js";
import { createIdGenerator, systemClock } from "./adapters/system-clock.js";
import { createAlarmChannels } from "./alarms/channel-registry.js";
import type { AuditAppender, AuditTx } from "./audit/audit-journal.js";
import { loadSigningKey, type SigningKey } from "./audit/signing-key.js";
import { type AuthService, createAuthService } from "./auth/auth-service.js";
import { createDirectory } from "./auth/directory.js";
import { createOidcLogin } from "./auth/oidc.js";
import { createBackgroundThread, type SpawnedBackgroundThread } from "./background/thread-client.js";
import type { AppConfig } from "./config/app-config.js";
import { describeDiff, diffConfig, fingerprintConfig, parseFingerprint } from "./config/config-fingerprint.js";
import { checkpointAlarms } from "./core/alarm-routing.js";
import { nonGrantEvent } from "./core/audit-event.js";
import { BreakglassError } from "./core/errors.js";
import { SYSTEM_ACTOR } from "./core/grant-machine.js";
import type { StateWrites } from "./core/ports/broker-state.js";
import type { Connector } from "./core/ports/connector.js";
import type { Clock, IdGenerator } from "./core/ports/runtime.js";
import type { Store } from "./core/ports/store.js";
import type { Transactions } from "./core/ports/transactions.js";
import { type RequestContext, SYSTEM_CONTEXT } from "./core/request-context.js";
import { upstreamAad } from "./gateway/gateway-login.js";
import { createGatewayThread } from "./gateway/gateway-thread-client.js";
import { createPgGateway, type GatewayHost, type GatewaySettings, type PgGateway } from "./gateway/pg-gateway.js";
import { createRecorder } from "./gateway/recorder.js";
import { storeWrite } from "./gateway/recording-writer.js";
import { createHttpServer } from "./http/server.js";
import { createMetrics } from "./metrics/metrics.js";
import { loadSecretBox, type SecretBox } from "./secrets/secret-box.js";
import { createSecretResolver } from "./secrets/secret-ref.js";
import { createApiQueries } from "./service/api-queries.js";
import { createDrillService, type DrillService } from "./service/drill-service.js";
import { createGrantService, type GrantService } from "./service/grant-service.js";
import { createIdpDeclaration, IDP_DECLARED_STATE } from "./service/idp-declaration.js";
import { type RotationRow, rotatePostgresAdmin, rotationStatus } from "./service/rotation.js";
import { createTerminalService } from "./service/terminal-service.js";
import { createTokenService, type TokenService } from "./service/token-service.js";
import { createVaultService, type VaultService } from "./service/vault-service.js";
import { openStore } from "./store/open-store.js";
import { acquireServerLock } from "./store/sqlite-server-lock.js";
import { createBackgroundWorkers, createConnectors, wireGrants } from "./wiring.js";
import { type AlarmWorker, sealAlarmDeliveries } from "./workers/alarm-worker.js";
import { type CheckpointWorker, createCheckpointWorker } from "./workers/checkpoint-worker.js";
import { createDetectorWorker, type DetectorWorker } from "./workers/detector-worker.js";
import type { EscalationWorker } from "./workers/escalation-worker.js";
import type { ExpiryWorker } from "./workers/expiry-worker.js";
import { createReconcileWorker, type ReconcileWorker } from "./workers/reconcile-worker.js";
import { createRotationWorker, type RotationWorker } from "./workers/rotation-worker.js";
import { createVaultReviewWorker, type VaultReviewWorker } from "./workers/vault-review-worker.js";

export interface BrokerOptions {
  readonly clock?: Clock;
  readonly ids?: IdGenerator;
  readonly log?: Logger;
  /** Replace connectors per target name (benchmarks); defaults to the configured connectors. */
  readonly connectors?: ReadonlyMap<string, Connector>;
  /** Environment for `{env: …}` secret references; defaults to process.env. */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /**
   * Run expiry, revocation, alarm delivery and escalation on a thread of their own, with their
   * own store connection, where request handling cannot delay them (docs/adr/0008). The server
   * does; it needs the build (dist) and the configuration's file, and cannot take an injected
   * clock or connectors — in-process tests and benchmarks that inject them run the workers on
   * the broker's own thread. A thread from `spawnBackgroundThread()`, spawned before the
   * broker's modules were loaded, starts sooner. When the thread dies, `onBackgroundDeath` is
   * called (default: log and exit the process, so a supervisor restarts it).
   */
  readonly backgroundThread?: boolean | SpawnedBackgroundThread;
  readonly onBackgroundDeath?: (reason: string) => void;
  /**
   * Run the gateway — its listener and every session's relay — on a thread of its own, and write
   * its recordings from another, with its own store connection (docs/adr/0011, 0010): nothing of
   * the broker's shares the relay's event loop, and no insert or fsync stops it. The server and
   * the demo do; it needs the build (dist). Without it the gateway relays on the broker's thread
   * and records through the broker's store. When the thread dies, `onBackgroundDeath` is called
   * as for the background thread.
   */
  readonly gatewayThread?: boolean;
  /** The level the background thread logs at (default `warn`). */
  readonly logLevel?: "info" | "warn" | "error" | "silent";
}

export interface Broker {
  readonly config: AppConfig;
  readonly store: Store;
  readonly service: GrantService;
  readonly tokens: TokenService;
  /** Sessions, factors, fallback login; null without the broker's secret key. */
  readonly auth: AuthService | null;
  readonly expiry: ExpiryWorker;
  readonly reconcile: ReconcileWorker;
  readonly rotation: RotationWorker;
  /** Tier-2 openings past their review deadline: `vault.review_overdue`, once each. */
  readonly vaultReviews: VaultReviewWorker;
  readonly alarms: AlarmWorker;
  readonly detector: DetectorWorker;
  /**
   * Activations nobody acknowledged in time; null without `alarms.escalation`, and with a
   * background thread (the escalation runs there).
   */
  readonly escalation: EscalationWorker | null;
  readonly checkpoints: CheckpointWorker;
  readonly signingKey: SigningKey;
  readonly http: FastifyInstance;
  readonly drills: DrillService;
  /** The PostgreSQL gateway, when configured; its address once started. */
  readonly gateway: PgGateway | null;
  gatewayAddress(): { host: string; port: number } | null;
  /** Tier-2 openings: imported from their records, reviewed (src/service/vault-service.ts). */
  readonly vault: VaultService;
  /** Rotate a postgres target's admin password (see src/service/rotation.ts). */
  rotateTarget(ctx: RequestContext, target: string): Promise<{ user: string; file: string }>;
  /** Every break-glass credential's age against the maximum. */
  rotationStatus(maxAgeMs?: number): Promise<RotationRow[]>;
  /** Start the workers and listen; returns the base URL. */
  start(): Promise<string>;
  /** Stop listening, finish in-flight work, sign a last checkpoint, close the store. */
  stop(): Promise<void>;
}

export { openStore } from "./store/open-store.js";

/** How often tier-2 openings are checked against their review deadline (deadlines are hours or days). */
const VAULT_REVIEW_CHECK_MS = 60_000;

export async function createBroker(config: AppConfig, opts: BrokerOptions = {}): Promise<Broker> {
  const threaded = opts.backgroundThread !== undefined && opts.backgroundThread !== false;
  if (threaded && (opts.clock !== undefined || opts.connectors !== undefined)) {
    throw new Error("a broker with a background thread cannot take an injected clock or connectors");
  }
  const clock = opts.clock ?? systemClock;
  const ids = opts.ids ?? createIdGenerator(clock);
  const log = opts.log ?? createLogger();
  const logFn = (msg: string, fields?: Record<string, unknown>) => log.warn(msg, fields);
  // The live policy: configured people and groups plus what the IdP said at their last login.
  const directory = createDirectory(config.policy, config.auth.fallback.maxMembershipAgeMs);
  const { policy } = directory;

  const signingKey = loadSigningKey(config.audit.signingKeyFile, {
    generateIfMissing: config.audit.generateKeyIfMissing,
  });
  const box: SecretBox | null =
    config.secrets.keyFile === null
      ? null
      : loadSecretBox(config.secrets.keyFile, { generateIfMissing: config.secrets.generateKeyIfMissing });
  const baseDir = dirname(config.source);
  const env = opts.env ?? process.env;
  const resolveSecret = createSecretResolver({ baseDir, env, box });
  const connectors = opts.connectors ?? createConnectors(policy, baseDir, resolveSecret, logFn, clock);
  // One lease owner for the process: the background thread's leases are the broker's.
  const owner = threaded ? `bg-${randomUUID()}` : undefined;
  const store = await openStore(config.storage, owner === undefined ? {} : { owner });
  const metrics = createMetrics();
  const background = threaded
    ? createBackgroundThread(
        {
          configFile: config.source,
          env,
          server: config.server,
          fingerprint: fingerprintConfig(config).fingerprint,
          owner: owner as string,
          logLevel: opts.logLevel ?? "warn",
        },
        {
          metrics,
          cut: (grantId, reason) => gateway?.cutGrant(grantId, reason),
          onDeath: opts.onBackgroundDeath ?? threadDied(log, "background"),
        },
        typeof opts.backgroundThread === "object" ? opts.backgroundThread : undefined,
      )
    : null;
  const wakeAlarms = () => alarms.kick();
  // Activations, extensions and revocations people ask for run here, on the request's thread.
  const wiring = wireGrants({
    config,
    policy,
    store,
    connectors,
    clock,
    box,
    wakeAlarms,
    // Gateway sessions are closed with Breakglass's own message before the target cuts them.
    beforeRevoke: (g) => gateway?.cutGrant(g.id, g.endReason ?? "ended"),
    log: logFn,
  });
  const { audit, writer, access } = wiring;
  // Expiry, revocation, alarm delivery, escalation: on the background thread, or here.
  const {
    alarms,
    expiry,
    escalation,
  }: { alarms: AlarmWorker; expiry: ExpiryWorker; escalation: EscalationWorker | null } = background
    ? { alarms: background.alarms, expiry: background.expiry, escalation: null }
    : createBackgroundWorkers({
        config,
        policy,
        store,
        wiring,
        channels: createAlarmChannels(config, policy, store, resolveSecret, clock),
        clock,
        metrics,
        log: logFn,
      });
  const service = createGrantService({ policy, store, audit, writer, access, clock, ids, box });
  const tokens = createTokenService({ policy, store, audit, clock, ids });
  const reconcile = createReconcileWorker({
    policy,
    store,
    audit,
    access,
    connectors,
    clock,
    intervalMs: config.workers.reconcileIntervalMs,
    lookbackMs: config.workers.reconcileLookbackMs,
    log: logFn,
  });
  const detector = createDetectorWorker({ store, audit, connectors, clock, intervalMs: 1000, log: logFn });
  const checkpoints = createCheckpointWorker({
    onCheckpoint: async (tx, cp) => {
      const queued = checkpointAlarms(cp, config.alarms.routing);
      if (queued.length > 0) await tx.insertAlarms(queued);
    },
    store,
    signer: signingKey,
    clock,
    intervalMs: config.audit.checkpointIntervalMs,
    everyEvents: config.audit.checkpointEveryEvents,
    log: logFn,
  });
  const rotation = createRotationWorker({
    store,
    audit,
    clock,
    intervalMs: config.rotation.checkIntervalMs,
    auto: config.rotation.auto,
    status: (now) => rotationStatus(config, store, now),
    rotate: (target) =>
      rotatePostgresAdmin({
        config,
        targetName: target,
        resolveSecret,
        box,
        store,
        audit,
        clock,
        ctx: SYSTEM_CONTEXT,
      }),
    replicaId: `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`,
    log: logFn,
  });
  const vaultReviews = createVaultReviewWorker({
    store,
    audit,
    clock,
    intervalMs: VAULT_REVIEW_CHECK_MS,
    log: logFn,
  });
  const gateway = config.gateway
    ? createGateway(
        config,
        store,
        audit,
        box,
        clock,
        logFn,
        opts.gatewayThread === true ? { onDeath: opts.onBackgroundDeath ?? threadDied(log, "gateway") } : null,
      )
    : null;
  let gatewayAddress: { host: string; port: number } | null = null;

  const oidcConfig = config.auth.oidc;
  const oidc = oidcConfig
    ? createOidcLogin(
        oidcConfig,
        oidcConfig.clientSecret ? resolveSecret(oidcConfig.clientSecret, "auth.oidc.client_secret").reveal() : null,
      )
    : null;
  // Sessions and local factors are kept encrypted: without the broker's secret key, API tokens only.
  const auth = box
    ? createAuthService({
        config: config.auth,
        policy,
        directory,
        store,
        audit,
        clock,
        ids,
        box,
        refresher:
          oidc && oidcConfig
            ? {
                refresh: (token, subject, idToken) => oidc.refresh(token, subject, idToken),
                intervalMs: oidcConfig.refreshIntervalMs,
                groupMap: oidcConfig.groupMap,
              }
            : null,
      })
    : null;
  const timers: NodeJS.Timeout[] = [];
  let serverLock: { release(): void } | null = null;
  /** For readiness: work runs between the end of start() and the beginning of stop(). */
  let lifecycle: "starting" | "running" | "stopping" = "starting";

  const vault = createVaultService({
    policy,
    store,
    audit,
    clock,
    reviewers: config.vaultReview.reviewers,
    reviewDeadlineMs: config.vaultReview.deadlineMs,
  });
  const drills = createDrillService({
    drills: config.drills,
    policy,
    service,
    auth,
    resolveSecret,
    store,
    audit,
    clock,
    ids,
    log: logFn,
  });
  const http = createHttpServer({
    policy,
    drills,
    vault,
    alarmChannels: () => alarms.channels(),
    readiness: () => lifecycle,
    // Always registered: without a secret key (auth null) they answer for API tokens and say the
    // rest is not configured here, so no client meets a missing route on a valid configuration.
    authRoutes: {
      config: config.auth,
      publicUrl: config.server.publicUrl,
      auth,
      oidc,
      idp: createIdpDeclaration({ policy, oidc, store, audit, clock }),
      clock,
      box,
    },
    config,
    service,
    tokens,
    queries: createApiQueries({ config, policy, clock, sha256, signingKey, vault, store }),
    clock,
    ids,
    log,
    reconcile,
    detector,
    terminal: createTerminalService({ policy, store, audit, clock, ids, sha256 }),
    metrics,
  });

  return {
    config,
    store,
    service,
    tokens,
    auth,
    expiry,
    reconcile,
    rotation,
    vaultReviews,
    alarms,
    detector,
    escalation,
    checkpoints,
    signingKey,
    http,
    drills,
    gateway,
    gatewayAddress: () => gatewayAddress,
    rotateTarget: (ctx, target) =>
      rotatePostgresAdmin({ config, targetName: target, resolveSecret, box, store, audit, clock, ctx }),
    rotationStatus: (maxAgeMs) => rotationStatus(config, store, clock.now(), maxAgeMs),
    vault,
    async start() {
      // One server per SQLite file (replicas need PostgreSQL).
      if (config.storage.driver === "sqlite" && config.storage.path !== ":memory:") {
        serverLock = acquireServerLock(config.storage.path);
      }
      // A configuration that differs from the last one this database ran with is an event (and
      // an alarm): who may break which glass is itself security-relevant. Refuses to start if it
      // cannot be recorded.
      await recordConfigChange(store, audit, config, clock.now());
      // Before any activation can be recorded: from here on activation alarms' deliveries are in
      // the chain, and verification holds every later activation to it.
      await sealAlarmDeliveries(store, audit, clock.now());
      // Last-known IdP membership (with its age), refreshed from the store so logins on other
      // replicas count here too; and the IdP's health, so the fallback opens when it is down.
      const refreshIdentity = async () => {
        directory.load(await store.listIdentities(), clock.now());
        oidc?.restoreDeclaration(await store.readState(IDP_DECLARED_STATE));
      };
      await refreshIdentity();
      timers.push(
        setInterval(() => {
          refreshIdentity().catch((e: unknown) => logFn("could not refresh IdP identities", { error: String(e) }));
        }, 60_000),
      );
      if (oidc && oidcConfig) {
        void oidc.check(clock.now());
        timers.push(setInterval(() => void oidc.check(clock.now()), oidcConfig.healthIntervalMs));
      }
      for (const t of timers) t.unref();
      // End everything that fell due while the broker was down before serving anyone (the
      // background thread does so before it says it runs).
      if (background) await background.start();
      else await expiry.tick();
      expiry.start();
      reconcile.start();
      rotation.start();
      vaultReviews.start();
      alarms.start();
      detector.start();
      escalation?.start();
      checkpoints.start();
      if (gateway) gatewayAddress = await gateway.listen();
      lifecycle = "running";
      return http.listen({ host: config.server.host, port: config.server.port });
    },
    async stop() {
      lifecycle = "stopping";
      for (const t of timers.splice(0)) clearInterval(t);
      await http.close();
      await gateway?.close();
      await expiry.stop();
      await background?.stop();
      await reconcile.stop();
      await rotation.stop();
      await vaultReviews.stop();
      await alarms.stop();
      await detector.stop();
      await escalation?.stop();
      checkpoints.stop();
      await checkpoints.checkpointNow().catch((e: unknown) => logFn("final checkpoint failed", { error: String(e) }));
      await store.close();
      serverLock?.release();
      await Promise.all([...connectors.values()].map((c) => c.close?.()));
    },
  };
}

const count = (n: number, what: string) => `${n} ${what}${n === 1 ? "" : "s"}`;

/**
 * Compare the configuration's fingerprint with the one this database last ran with; when it
 * differs (or on the first start), append `config.changed` naming the sections that changed.
 * The fingerprint and the event commit together.
 * @returns the event's summary, or null when nothing changed.
 */
export async function recordConfigChange(
  store: Transactions<StateWrites & AuditTx>,
  audit: AuditAppender,
  config: AppConfig,
  now: number,
): Promise<string | null> {
  const current = fingerprintConfig(config);
  return store.transaction(async (tx) => {
    const before = parseFingerprint(await tx.swapState("config", JSON.stringify(current), now));
    if (before?.fingerprint === current.fingerprint) return null;
    const diff = before === null ? null : diffConfig(before, current);
    const summary =
      diff === null
        ? `first start with this database: ${count(config.policy.roles.size, "role")}, ${count(config.policy.targets.size, "target")}, ${count(config.alarms.channels.length, "alarm channel")}`
        : describeDiff(diff);
    const cap = (keys: readonly string[]) => keys.slice(0, 100);
    await audit.append(tx, [
      nonGrantEvent("config.changed", SYSTEM_ACTOR, now, {
        summary,
        source: config.source,
        fingerprint: current.fingerprint,
        previous: before?.fingerprint ?? null,
        ...(diff ? { added: cap(diff.added), removed: cap(diff.removed), changed: cap(diff.changed) } : {}),
      }),
    ]);
    return summary;
  });
}

/** A thread of the broker died: log why and exit, so that a supervisor starts the broker again. */
function threadDied(log: Logger, thread: "background" | "gateway"): (reason: string) => void {
  return (reason) => {
    log.error(`the ${thread} thread died: exiting, so that a supervisor starts the broker again`, { reason });
    process.exit(70);
  };
}

/** The gateway, wired to the store (logins, grant windows, recordings) and the audit log (sessions). */
function createGateway(
  config: AppConfig,
  store: Store,
  audit: AuditAppender,
  box: SecretBox | null,
  clock: Clock,
  log: (msg: string, fields?: Record<string, unknown>) => void,
  thread: { readonly onDeath: (reason: string) => void } | null,
): PgGateway {
  const g = config.gateway;
  if (!g) throw new Error("no gateway configured");
  if (!box) {
    // The configuration check refuses gateway targets that are not postgres, and postgres needs the key.
    throw new BreakglassError("ERR_INTERNAL", "the gateway needs `secrets.key_file` to open target credentials");
  }
  const sessionEvent = async (
    type: "gateway.session_started" | "gateway.session_ended" | "gateway.statement_blocked",
    grantId: string,
    data: Record<string, unknown>,
  ) => {
    const grant = await store.getGrant(grantId);
    await store.transaction((tx) =>
      audit.append(tx, [
        {
          type,
          actor: grant?.requester ?? "unknown",
          at: clock.now(),
          grantId,
          roleId: grant?.roleId ?? null,
          domain: grant?.domain ?? null,
          target: grant?.target ?? null,
          justification: null,
          incident: grant?.incident ?? null,
          requestId: null,
          sourceAddress: typeof data.from === "string" ? data.from : null,
          // A drill's sessions are tagged like the rest of its grant's events.
          data: grant?.drill === true ? { ...data, drill: true } : data,
        },
      ]),
    );
  };
  const settings: GatewaySettings = {
    host: g.host,
    port: g.port,
    tls: g.tls ? { cert: readFileSync(g.tls.certFile), key: readFileSync(g.tls.keyFile) } : null,
    requireTls: g.requireTls,
  };
  const host = gatewayHost(config, store, box, sessionEvent, log);
  if (thread) {
    const storage = config.storage;
    return createGatewayThread(
      {
        settings,
        recording:
          storage.driver === "sqlite"
            ? { driver: "sqlite", path: storage.path }
            : { driver: "postgres", url: storage.url.reveal() },
        recordFlushMs: g.recordFlushMs,
      },
      host,
      thread.onDeath,
    );
  }
  const recorder = createRecorder({ write: storeWrite(store), flushMs: g.recordFlushMs, batchSize: 1000, log });
  return createPgGateway({ ...settings, ...host, recorder, now: () => clock.now() });
}

/** The broker's part of the gateway: logins, grant windows and guard rules from the store; session events into the audit log. */
function gatewayHost(
  config: AppConfig,
  store: Store,
  box: SecretBox,
  sessionEvent: (
    type: "gateway.session_started" | "gateway.session_ended" | "gateway.statement_blocked",
    grantId: string,
    data: Record<string, unknown>,
  ) => Promise<void>,
  log: (msg: string, fields?: Record<string, unknown>) => void,
): GatewayHost {
  return {
    log,
    async findLogin(user) {
      const login = await store.findGatewayLogin(user);
      if (!login) return null;
      return {
        grantId: login.grantId,
        verifier: login.verifier,
        upstream: box.open(login.upstream, upstreamAad(login.grantId)).reveal(),
      };
    },
    async grantWindow(grantId) {
      const grant = await store.getGrant(grantId);
      const active = grant !== null && grant.state === "active" && grant.access === "granted";
      return {
        active,
        endsAt: grant?.endsAt ?? null,
        ended: active ? null : grant?.endReason ? `${grant.endReason}` : (grant?.state ?? "unknown"),
      };
    },
    // The session is in the audit log before it relays a byte (fail closed).
    onSessionStart: (s) =>
      sessionEvent("gateway.session_started", s.grantId, {
        session: s.sessionId,
        user: s.user,
        from: s.from,
        application: s.application,
      }),
    async guardFor(grantId) {
      const grant = await store.getGrant(grantId);
      const role = grant ? config.policy.roles.get(grant.roleId) : undefined;
      return {
        role: grant?.roleId ?? "?",
        rules: role?.guard ?? null,
        redactParameters: role?.redactParameters ?? false,
      };
    },
    onBlocked: (b) => {
      sessionEvent("gateway.statement_blocked", b.grantId, {
        session: b.sessionId,
        statement: b.statement.length > 2000 ? `${b.statement.slice(0, 2000)}…` : b.statement,
        reason: b.reason,
      }).catch((e: unknown) => log("recording a blocked statement failed", { session: b.sessionId, error: String(e) }));
    },
    // Written once the session's statements are stored (the gateway seals first): never a seal
    // over a recording still in memory, which `audit verify` would read as deleted.
    onSessionEnd: (s) => {
      sessionEvent("gateway.session_ended", s.grantId, {
        session: s.sessionId,
        from: s.from,
        durationMs: s.endedAt - s.startedAt,
        statements: s.statements,
        digest: s.digest,
        errors: s.errors,
        bytesToClient: s.bytesToClient,
        bytesFromClient: s.bytesFromClient,
        reason: s.endReason,
      }).catch((e: unknown) =>
        log("recording a gateway session's end failed", { session: s.sessionId, error: String(e) }),
      );
    },
  };
}
