/**
 * The whole parsed configuration: the policy `core` evaluates, plus the settings of the
 * broker's adapters. Produced once by `loadConfig` (src/config/load-config.ts), deeply frozen,
 * and passed around in slices.
 */
import type { SecretRef } from "../contract/secret-ref.js";
import type { AlarmRouting } from "../core/alarm-routing.js";
import type { Policy } from "../core/model.js";
import type { Redacted } from "../core/redacted.js";

export type StorageConfig =
  | { readonly driver: "sqlite"; readonly path: string }
  | {
      readonly driver: "postgres";
      /** Connection string; read from `url_env` or `url_file` so it never sits in the YAML. */
      readonly url: Redacted<string>;
      readonly poolSize: number;
    };

export interface ServerConfig {
  readonly host: string;
  readonly port: number;
  /** Public base URL used in links (defaults to http://host:port). */
  readonly publicUrl: string;
  /** Request limits of the API, per caller (credential) and per client address. */
  readonly limits: { readonly perCaller: RequestLimit; readonly perAddress: RequestLimit };
}

/** Requests in flight at once, and a token bucket: sustained rate per second and burst. */
export interface RequestLimit {
  readonly concurrent: number;
  readonly perSecond: number;
  readonly burst: number;
}

export interface GatewayConfig {
  readonly host: string;
  readonly port: number;
  readonly publicHost: string;
  readonly publicPort: number;
  /** Absolute paths of the PEM certificate and key; null without TLS. */
  readonly tls: { readonly certFile: string; readonly keyFile: string } | null;
  readonly requireTls: boolean;
  readonly targets: readonly string[];
  readonly recordFlushMs: number;
}

export interface OidcConfig {
  readonly issuer: string;
  readonly clientId: string;
  readonly clientSecret: SecretRef | null;
  readonly redirectUrl: string;
  readonly scopes: readonly string[];
  readonly usernameClaim: string;
  readonly groupsClaim: string;
  /** IdP group → Breakglass groups. */
  readonly groupMap: ReadonlyMap<string, readonly string[]>;
  readonly allowInsecureHttp: boolean;
  readonly refreshIntervalMs: number;
  readonly healthIntervalMs: number;
}

export interface AuthConfig {
  /** Null: no IdP login (API tokens only, and local factors). */
  readonly oidc: OidcConfig | null;
  readonly sessionTtlMs: number;
  readonly fallback: {
    readonly enabled: boolean;
    readonly sessionTtlMs: number;
    readonly maxMembershipAgeMs: number;
  };
  readonly lockout: { readonly maxFailures: number; readonly windowMs: number; readonly durationMs: number };
  readonly totpIssuer: string;
  /** WebAuthn relying party: host name, page origin, display name. */
  readonly webauthn: { readonly id: string; readonly origin: string; readonly name: string };
  /** Session cookies carry `Secure` (the broker's public URL is https). */
  readonly secureCookies: boolean;
}

export interface DrillDef {
  readonly name: string;
  readonly scenario: "approval-path" | "emergency" | "policy-rollback" | "idp-outage";
  readonly roleId: string;
  readonly requester: string;
  readonly approvers: readonly string[];
  readonly durationS: number;
  readonly incident: string | null;
  readonly probe: { readonly sql: string } | { readonly exec: readonly string[] } | null;
  /** Operators' own steps, run while the access is granted. */
  readonly checks: readonly { readonly name: string; readonly exec: readonly string[] }[];
  /** idp-outage: where the requester's TOTP secret is. */
  readonly factorSecret: SecretRef | null;
  /** policy-rollback: a statement the role's gateway guard must refuse. */
  readonly guardProbe: string | null;
  readonly everyS: number;
}

export interface AuditConfig {
  /** PEM PKCS#8 Ed25519 private key used to sign checkpoints. */
  readonly signingKeyFile: string;
  /** Create the key on first start if missing (demo only; production provisions it). */
  readonly generateKeyIfMissing: boolean;
  /** Sign a checkpoint at least this often while events arrive (ms). */
  readonly checkpointIntervalMs: number;
  /** …or after this many events, whichever comes first. */
  readonly checkpointEveryEvents: number;
}

export interface SecretsConfig {
  /** The data key file (absolute), or null when none is configured. */
  readonly keyFile: string | null;
  readonly generateKeyIfMissing: boolean;
}

export type AlarmChannelConfig =
  | {
      readonly type: "webhook";
      readonly name: string;
      /** A URL, or a reference to a secret holding it. */
      readonly url: string | SecretRef;
      readonly secret: SecretRef;
      readonly timeoutMs: number;
    }
  | { readonly type: "file"; readonly name: string; readonly path: string }
  | {
      readonly type: "syslog";
      readonly name: string;
      readonly host: string;
      readonly port: number;
      readonly tls: boolean;
      /** Absolute path of a PEM CA bundle, or null for the system's. */
      readonly caFile: string | null;
      readonly facility: number;
      readonly appName: string;
      readonly timeoutMs: number;
    }
  | { readonly type: "slack"; readonly name: string; readonly url: SecretRef; readonly timeoutMs: number }
  | {
      readonly type: "email";
      readonly name: string;
      readonly smtpUrl: string | SecretRef;
      readonly requireTls: boolean;
      readonly from: string;
      readonly to: readonly string[];
      readonly toGroups: readonly string[];
      readonly toApprovers: boolean;
      /** The grant's holder (its requester). */
      readonly toHolder: boolean;
      /** Members of the holder's `manager_group`. */
      readonly toHolderManagers: boolean;
      readonly timeoutMs: number;
    }
  | {
      readonly type: "pagerduty";
      readonly name: string;
      readonly routingKey: SecretRef;
      readonly url: string;
      readonly timeoutMs: number;
    };

export interface AlarmsConfig {
  readonly channels: readonly AlarmChannelConfig[];
  readonly routing: AlarmRouting;
  readonly leaseMs: number;
  /** Flag an activation as unalarmed when no security channel delivered it within this (ms). */
  readonly unalarmedAfterMs: number;
  /** Unacknowledged activations escalate after `afterMs` to `channels`; null = no escalation. */
  readonly escalation: { readonly afterMs: number; readonly channels: readonly string[] } | null;
}

export interface WorkerConfig {
  /** Longest sleep of the expiry worker between checks for due grants (ms). */
  readonly expiryPollMs: number;
  /** Grants handled per claim. */
  readonly expiryBatchSize: number;
  /** Concurrent connector calls for revocations. */
  readonly revokeConcurrency: number;
  /** Interval of the reconciliation job (ms). */
  readonly reconcileIntervalMs: number;
  /** Ended grants younger than this are re-verified at their target (ms). */
  readonly reconcileLookbackMs: number;
}

export interface AppConfig {
  /** Absolute path of the file this came from (relative paths inside resolve against its folder). */
  readonly source: string;
  readonly policy: Policy;
  readonly storage: StorageConfig;
  readonly server: ServerConfig;
  /** The PostgreSQL gateway; null when not configured. */
  readonly gateway: GatewayConfig | null;
  readonly auth: AuthConfig;
  readonly drills: readonly DrillDef[];
  /** Absolute paths of tier-2 envelopes posture and `rotation status` check. */
  readonly envelopes: readonly string[];
  /** Who reviews tier-2 openings, and by when after their import. */
  readonly vaultReview: { readonly reviewers: readonly string[]; readonly deadlineMs: number };
  readonly audit: AuditConfig;
  readonly secrets: SecretsConfig;
  readonly alarms: AlarmsConfig;
  readonly workers: WorkerConfig;
  readonly rotation: RotationConfig;
}

export interface RotationConfig {
  /** Longest a break-glass credential may live (ms). */
  readonly maxAgeMs: number;
  /** How often the rotation worker checks (ms). */
  readonly checkIntervalMs: number;
  /** Postgres targets whose admin password the broker rotates when due. */
  readonly auto: readonly string[];
}
