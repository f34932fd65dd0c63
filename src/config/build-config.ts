/**
 * From the checked file to the runtime `AppConfig`: durations in seconds / milliseconds, paths
 * absolute, groups as sets, role defaults applied, everything deeply frozen.
 */
import { dirname, resolve } from "node:path";
import { type ConfigFile, parseFineDurationMs } from "../contract/config-schema.js";
import { parseRule } from "../core/approval-policy.js";
import { parseDuration } from "../core/duration.js";
import type { ApprovalRule, DenyRule, DomainDef, Policy, RoleDef, TargetDef, UserDef } from "../core/model.js";
import { Redacted } from "../core/redacted.js";
import type {
  AlarmChannelConfig,
  AppConfig,
  AuthConfig,
  DrillDef,
  GatewayConfig,
  RequestLimit,
  ServerConfig,
  StorageConfig,
} from "./app-config.js";

/** A Map that cannot be changed after construction (Object.freeze does not reach a Map's entries). */
class FrozenMap<K, V> extends Map<K, V> {
  constructor(entries: Iterable<readonly [K, V]>) {
    super();
    for (const [k, v] of entries) super.set(k, v);
  }
  override set(): never {
    throw new TypeError("the configuration is frozen");
  }
  override delete(): never {
    throw new TypeError("the configuration is frozen");
  }
  override clear(): never {
    throw new TypeError("the configuration is frozen");
  }
}

/** A Set that cannot be changed after construction. */
class FrozenSet<T> extends Set<T> {
  constructor(values: Iterable<T>) {
    super();
    for (const v of values) super.add(v);
  }
  override add(): never {
    throw new TypeError("the configuration is frozen");
  }
  override delete(): never {
    throw new TypeError("the configuration is frozen");
  }
  override clear(): never {
    throw new TypeError("the configuration is frozen");
  }
}

/** Freeze objects, arrays, maps and sets all the way down. */
export function deepFreeze<T>(value: T, seen = new WeakSet<object>()): T {
  if (typeof value !== "object" || value === null || seen.has(value)) return value;
  // A typed array with elements cannot be frozen (and connector settings never hold one on purpose).
  if (ArrayBuffer.isView(value)) return value;
  seen.add(value);
  if (value instanceof Map) {
    for (const [k, v] of value) {
      deepFreeze(k, seen);
      deepFreeze(v, seen);
    }
  } else if (value instanceof Set) {
    for (const v of value) deepFreeze(v, seen);
  }
  for (const key of Reflect.ownKeys(value)) deepFreeze((value as Record<PropertyKey, unknown>)[key], seen);
  return Object.freeze(value);
}

export interface Resolved {
  /** Absolute path of the configuration file. */
  readonly source: string;
  readonly storageUrl: Redacted<string> | null;
  readonly targetSettings: ReadonlyMap<string, Readonly<Record<string, unknown>>>;
}

function rule(text: string): ApprovalRule {
  const parsed = parseRule(text);
  if ("error" in parsed) throw new Error(`unchecked approval rule reached the builder: ${parsed.error}`);
  return parsed;
}

/** Build the runtime configuration from a file that passed every check. */
export function buildAppConfig(file: ConfigFile, resolved: Resolved): AppConfig {
  const dir = dirname(resolved.source);
  const inDir = (p: string) => resolve(dir, p);
  const d = file.defaults;

  const users = new FrozenMap<string, UserDef>(
    Object.entries(file.users).map(([name, u]) => [
      name,
      { name, displayName: u.name ?? name, email: u.email ?? null, managerGroup: u.manager_group ?? null },
    ]),
  );
  const groups = new FrozenMap<string, ReadonlySet<string>>(
    Object.entries(file.groups).map(([name, members]) => [name, new FrozenSet(members)]),
  );
  const domains = new FrozenMap<string, DomainDef>(
    Object.entries(file.domains).map(([name, dom]) => [name, { name, description: dom.description }]),
  );
  const roles = new FrozenMap<string, RoleDef>(
    Object.entries(file.domains).flatMap(([domain, dom]) =>
      Object.entries(dom.roles).map(([name, r]): [string, RoleDef] => {
        const id = `${domain}/${name}`;
        const maxDurationS = parseDuration(r.max_duration);
        const reviewDeadlineS = parseDuration(r.review_deadline ?? d.review_deadline);
        return [
          id,
          {
            id,
            domain,
            name,
            description: r.description,
            target: r.target,
            grants: r.grants,
            defaultDurationS: r.default_duration === undefined ? maxDurationS : parseDuration(r.default_duration),
            maxDurationS,
            approval: rule(r.approval),
            requesters: [...r.requesters],
            emergencyAllowed: r.emergency,
            reviewDeadlineS,
            emergencyReviewDeadlineS: Math.min(reviewDeadlineS, parseDuration(d.emergency_review_deadline)),
            emergencyReviewers: [...(r.reviewers ?? d.emergency_reviewers ?? file.admin_groups)],
            endingWarningS: warningS(r.ending_warning ?? d.ending_warning),
            alarmSeverity: r.alarm_severity ?? d.alarm_severity,
            guard: r.guard
              ? {
                  named: r.guard.deny.filter((x) => typeof x === "string"),
                  deny: r.guard.deny.filter((x) => typeof x !== "string") as DenyRule[],
                  denySchemas: [...r.guard.deny_schemas],
                  // The recovery roles a postgres grant is made a member of: switching to them is the grant.
                  setRoles: Array.isArray(r.grants.roles) ? r.grants.roles.filter((x) => typeof x === "string") : [],
                }
              : null,
            gatewayOnly: r.gateway_only || (file.gateway?.targets ?? []).includes(r.target),
            redactParameters: r.recording?.redact_parameters ?? false,
            recordTerminalInput: r.recording?.terminal_input ?? false,
            justificationMinLength: r.justification_min_length ?? d.justification_min_length,
            incidentPattern: r.incident_pattern ?? d.incident_pattern,
            approvalTimeoutS: parseDuration(r.approval_timeout ?? d.approval_timeout),
            activationTimeoutS: parseDuration(r.activation_timeout ?? d.activation_timeout),
            autoActivate: r.auto_activate,
            stepUpS: r.step_up === undefined ? null : parseDuration(r.step_up),
            fallbackAllowed: r.fallback,
          },
        ];
      }),
    ),
  );
  const targets = new FrozenMap<string, TargetDef>(
    Object.entries(file.targets).map(([name, t]) => [
      name,
      { name, connector: t.connector, settings: resolved.targetSettings.get(name) ?? t.settings },
    ]),
  );
  const policy: Policy = { users, groups, domains, roles, targets, adminGroups: [...file.admin_groups] };

  const s = file.storage;
  const storage: StorageConfig =
    s.driver === "sqlite"
      ? { driver: "sqlite", path: s.path === ":memory:" ? s.path : inDir(s.path) }
      : { driver: "postgres", url: resolved.storageUrl ?? new Redacted(""), poolSize: s.pool_size };

  const { host, port } = file.server;
  const urlHost = host.includes(":") ? `[${host}]` : host;
  const server: ServerConfig = {
    host,
    port,
    publicUrl: (file.server.public_url ?? `http://${urlHost}:${port}`).replace(/\/+$/, ""),
    limits: {
      perCaller: requestLimit(file.server.limits.per_caller),
      perAddress: requestLimit(file.server.limits.per_address),
    },
  };

  const g = file.gateway;
  const gateway: GatewayConfig | null = g
    ? {
        host: g.host,
        port: g.port,
        publicHost: g.public_host ?? g.host,
        publicPort: g.public_port ?? g.port,
        tls: g.tls ? { certFile: inDir(g.tls.cert_file), keyFile: inDir(g.tls.key_file) } : null,
        requireTls: g.require_tls ?? g.tls !== undefined,
        targets: [...g.targets],
        recordFlushMs: parseFineDurationMs(g.record_flush),
      }
    : null;

  const a = file.auth;
  const auth: AuthConfig = {
    oidc: a.oidc
      ? {
          issuer: a.oidc.issuer,
          clientId: a.oidc.client_id,
          clientSecret: a.oidc.client_secret ?? null,
          redirectUrl: a.oidc.redirect_url ?? `${server.publicUrl}/auth/callback`,
          scopes: [...new Set(["openid", ...a.oidc.scopes])],
          usernameClaim: a.oidc.username_claim,
          groupsClaim: a.oidc.groups_claim,
          groupMap: new Map(
            Object.entries(a.oidc.group_map).map(([k, v]) => [k, typeof v === "string" ? [v] : [...v]] as const),
          ),
          allowInsecureHttp: a.oidc.allow_insecure_http,
          refreshIntervalMs: parseFineDurationMs(a.oidc.refresh_interval),
          healthIntervalMs: parseFineDurationMs(a.oidc.health_interval),
        }
      : null,
    sessionTtlMs: parseFineDurationMs(a.session_ttl),
    fallback: {
      enabled: a.fallback.enabled,
      sessionTtlMs: parseFineDurationMs(a.fallback.session_ttl),
      maxMembershipAgeMs: parseDuration(a.fallback.max_membership_age) * 1000,
    },
    lockout: {
      maxFailures: a.lockout.max_failures,
      windowMs: parseFineDurationMs(a.lockout.window),
      durationMs: parseFineDurationMs(a.lockout.duration),
    },
    totpIssuer: a.totp_issuer,
    webauthn: {
      id: a.webauthn?.rp_id ?? new URL(server.publicUrl).hostname,
      origin: a.webauthn?.origin ?? new URL(server.publicUrl).origin,
      name: a.totp_issuer,
    },
    secureCookies: server.publicUrl.startsWith("https:"),
  };

  const drills: DrillDef[] = Object.entries(file.drills).map(([name, d]) => ({
    name,
    scenario: d.scenario,
    roleId: d.role,
    requester: d.requester,
    approvers: [...d.approvers],
    durationS: parseDuration(d.duration),
    incident: d.incident ?? null,
    probe: d.probe === undefined ? null : "sql" in d.probe ? { sql: d.probe.sql } : { exec: [...d.probe.exec] },
    guardProbe: d.guard_probe?.sql ?? null,
    factorSecret: d.factor_secret ?? null,
    checks: d.checks.map((c) => ({ name: c.name, exec: [...c.exec] })),
    everyS: parseDuration(d.every),
  }));

  return deepFreeze({
    source: resolved.source,
    policy,
    storage,
    server,
    gateway,
    auth,
    drills,
    envelopes: file.vault.envelopes.map(inDir),
    vaultReview: {
      reviewers: [...(file.vault.reviewers ?? file.defaults.emergency_reviewers ?? file.admin_groups)],
      deadlineMs: parseDuration(file.vault.review_deadline ?? file.defaults.emergency_review_deadline) * 1000,
    },
    audit: {
      signingKeyFile: inDir(file.audit.signing_key_file),
      generateKeyIfMissing: file.audit.generate_key_if_missing,
      checkpointIntervalMs: parseFineDurationMs(file.audit.checkpoint_interval),
      checkpointEveryEvents: file.audit.checkpoint_every_events,
    },
    alarms: {
      channels: Object.entries(file.alarms.channels).map(([name, c]): AlarmChannelConfig => {
        switch (c.type) {
          case "webhook":
            return { type: "webhook", name, url: c.url, secret: c.secret, timeoutMs: parseFineDurationMs(c.timeout) };
          case "slack":
            return { type: "slack", name, url: c.url, timeoutMs: parseFineDurationMs(c.timeout) };
          case "email":
            return {
              type: "email",
              name,
              smtpUrl: c.smtp_url,
              requireTls: c.require_tls,
              from: c.from,
              to: c.to,
              toGroups: c.to_groups,
              toApprovers: c.to_approvers,
              toHolder: c.to_holder,
              toHolderManagers: c.to_holder_managers,
              timeoutMs: parseFineDurationMs(c.timeout),
            };
          case "pagerduty":
            return {
              type: "pagerduty",
              name,
              routingKey: c.routing_key,
              url: c.url,
              timeoutMs: parseFineDurationMs(c.timeout),
            };
          case "file":
            return { type: "file", name, path: inDir(c.path) };
          case "syslog":
            return {
              type: "syslog",
              name,
              host: c.host,
              port: c.port,
              tls: c.tls,
              caFile: c.ca_file === undefined ? null : inDir(c.ca_file),
              facility: c.facility,
              appName: c.app_name,
              timeoutMs: parseFineDurationMs(c.timeout),
            };
        }
        // Unreachable: the schema admits only the types above.
        throw new Error(`alarms.channels.${name}: unknown channel type`);
      }),
      routing: {
        securityChannels: file.alarms.security_channels,
        escalationChannels: file.alarms.escalation?.channels ?? [],
        routes: file.alarms.routes.map((r) => ({ events: r.events, channels: r.channels, domains: r.domains ?? null })),
        roleSeverity: new FrozenMap([...roles].map(([id, r]) => [id, r.alarmSeverity])),
      },
      leaseMs: parseFineDurationMs(file.alarms.delivery_lease),
      unalarmedAfterMs: parseFineDurationMs(file.alarms.unalarmed_after),
      escalation: file.alarms.escalation
        ? { afterMs: parseFineDurationMs(file.alarms.escalation.after), channels: file.alarms.escalation.channels }
        : null,
    },
    secrets: {
      keyFile: file.secrets.key_file === undefined ? null : inDir(file.secrets.key_file),
      generateKeyIfMissing: file.secrets.generate_key_if_missing,
    },
    workers: {
      expiryPollMs: parseFineDurationMs(file.workers.expiry_poll),
      expiryBatchSize: file.workers.expiry_batch_size,
      revokeConcurrency: file.workers.revoke_concurrency,
      reconcileIntervalMs: parseFineDurationMs(file.workers.reconcile_interval),
      reconcileLookbackMs: parseDuration(file.workers.reconcile_lookback) * 1000,
    },
    rotation: {
      maxAgeMs: parseDuration(file.rotation.max_age) * 1000,
      checkIntervalMs: parseFineDurationMs(file.rotation.check_interval),
      auto: file.rotation.auto,
    },
  });
}

const warningS = (text: string): number => (text === "off" ? 0 : parseDuration(text));

function requestLimit(l: { concurrent: number; per_second: number; burst: number }): RequestLimit {
  return { concurrent: l.concurrent, perSecond: l.per_second, burst: l.burst };
}
