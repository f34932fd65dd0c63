/**
 * The configuration file format (`breakglass.yaml`) as a zod schema: the single source of truth
 * for what the file may contain. The loader (src/config/load-config.ts) validates with it and then
 * runs the cross-reference checks a schema cannot express; `configJsonSchema()` publishes it as
 * JSON Schema (schema/breakglass.schema.json) so editors can complete and check the file.
 *
 * The schema describes the file as written (snake_case, durations as text). It has no transforms,
 * so it converts to JSON Schema faithfully; converting to the runtime shape is the loader's job.
 */
import { z } from "zod";
import { parseRule } from "../core/approval-policy.js";
import { durationProblem, isDuration, parseDuration } from "../core/duration.js";
import { USER_NAME_HINT } from "../core/user-name.js";
import { secretRefSchema } from "./secret-ref.js";
import { ConfigUserNameSchema, plainText } from "./text-schemas.js";

/** Names of users, groups, domains, roles and targets. */
export const NAME_PATTERN = /^[a-z0-9][a-z0-9_.-]*$/;
export { USER_NAME_HINT, USER_NAME_PATTERN } from "../core/user-name.js";
export const NAME_HINT =
  "use lowercase letters, digits, `_`, `.` and `-`, starting with a letter or digit (pattern ^[a-z0-9][a-z0-9_.-]*$)";
export const DURATION_HINT = "write it like 30m, 1h30m, 2d or 45s";
export const FINE_DURATION_HINT = "write it like 250ms, 30s, 5m or 1h30m";
export const APPROVAL_HINT =
  'write it as "2 of sre-leads", or combine terms: "1 of security and 1 of dba or 2 of sre-leads"';

export const DEFAULT_INCIDENT_PATTERN = "[A-Z][A-Z0-9]*-[0-9]+";
/** Review deadline of an emergency activation when the role sets none. */

/**
 * Fix-it hints for the checker, attached to schemas. A separate registry (not `.meta()`) so the
 * hints stay out of the published JSON Schema.
 */
export const configHints = z.registry<{ hint: string }>();

function withHint<T extends z.ZodType>(schema: T, hint: string): T {
  configHints.add(schema, { hint });
  return schema;
}

const DURATION_SOURCE = "^(?:\\d+d)?(?:\\d+h)?(?:\\d+m)?(?:\\d+s)?$";
const FINE_DURATION_SOURCE = "^(?:\\d+ms|(?:\\d+d)?(?:\\d+h)?(?:\\d+m)?(?:\\d+s)?)$";
const MILLIS = /^(\d+)ms$/;
/** Node timers cannot wait longer than 2^31-1 ms; a longer delay fires at once. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** Is `text` a duration that also allows whole milliseconds (`250ms`)? */
export function isFineDuration(text: string): boolean {
  return MILLIS.test(text) || isDuration(text);
}

/**
 * Milliseconds of a duration that may be written in `ms` (`250ms`) or like any other
 * duration (`30s`, `5m`). Core durations are whole seconds; worker timings need finer steps.
 * @throws ERR_VALIDATION when the text is not a duration.
 */
export function parseFineDurationMs(text: string): number {
  const m = MILLIS.exec(text.trim());
  return m?.[1] !== undefined ? Number(m[1]) : parseDuration(text) * 1000;
}

function durationSchema(fine: boolean, allowZero = false) {
  const valid = fine ? isFineDuration : isDuration;
  const toMs = fine ? parseFineDurationMs : (t: string) => parseDuration(t) * 1000;
  const hint = fine ? FINE_DURATION_HINT : DURATION_HINT;
  const schema = z
    // A bare number in the YAML (`duration: 30`) is refused with the unit it lacks, never taken as seconds.
    .string({ error: (iss) => (typeof iss.input === "number" ? durationProblem(iss.input) : undefined) })
    .check((ctx) => {
      const text = ctx.value;
      if (!valid(text)) {
        const message = /^\d+$/.test(text.trim()) ? durationProblem(text) : `"${text}" is not a duration`;
        ctx.issues.push({ code: "custom", input: text, message, params: { hint } });
      } else if (fine && toMs(text) > MAX_TIMER_MS) {
        ctx.issues.push({
          code: "custom",
          input: text,
          message: `"${text}" is longer than a timer can wait (24d)`,
          params: { hint: "use a duration of at most 24d" },
        });
      } else if (!allowZero && toMs(text) <= 0) {
        ctx.issues.push({
          code: "custom",
          input: text,
          message: `"${text}" is zero; a duration must be longer than 0s`,
          params: { hint: `use a positive duration; ${hint}` },
        });
      }
    })
    .meta({
      pattern: fine ? FINE_DURATION_SOURCE : DURATION_SOURCE,
      examples: fine ? ["250ms", "30s", "5m"] : ["30m", "1h30m", "2d"],
    });
  return withHint(schema, hint);
}

/**
 * A duration in whole seconds or more: `30m`, `1h30m`, `2d`, `45s`. Exported for connectors'
 * settings, so every duration a person writes is refused the same way without its unit.
 */
export const Duration = durationSchema(false);
/** A duration that may be `0s` (an allowance, such as a clock skew, that may be none). */
export const DurationOrZero = durationSchema(false, true);
/** A duration that may also be written in milliseconds: `250ms`. */
const FineDuration = durationSchema(true);

const EndingWarning = z.union([z.literal("off"), Duration]);
const AlarmSeverity = z.enum(["critical", "warning", "info"]);

const Name = withHint(
  z.string().regex(NAME_PATTERN, { error: (iss) => `"${String(iss.input)}" is not a valid name` }),
  NAME_HINT,
);

/** A user name (`users` keys, group members, a drill's people): the user-name rule of src/core/user-name.ts. */
const UserName = withHint(ConfigUserNameSchema, USER_NAME_HINT);
/** Text shown to people (descriptions, display names): no control or bidi characters. */
const ShownText = withHint(
  plainText("prose", 10_000),
  "remove the control characters (only tab and newline are allowed)",
);
const ShownLine = withHint(plainText("line", 200), "write it on one line, without control characters");

const IncidentPattern = withHint(
  z.string().check((ctx) => {
    try {
      // Checked exactly as the grant machine uses it: anchored, no flags.
      new RegExp(`^(?:${ctx.value})$`);
    } catch (e) {
      ctx.issues.push({
        code: "custom",
        input: ctx.value,
        message: `"${ctx.value}" is not a valid regular expression: ${(e as Error).message}`,
      });
    }
  }),
  'write a JavaScript regular expression matching the whole incident id, e.g. "INC-[0-9]+"',
);

// The grammar of parseRule, for editors: `and`, `or` and `of` are case-insensitive there.
const TERM_SOURCE = "\\d+\\s+[Oo][Ff]\\s+[A-Za-z0-9][A-Za-z0-9_.-]*";
const APPROVAL_SOURCE = `^\\s*${TERM_SOURCE}(?:\\s+(?:[Aa][Nn][Dd]|[Oo][Rr])\\s+${TERM_SOURCE})*\\s*$`;

const ApprovalText = withHint(
  z
    .string()
    .check((ctx) => {
      const rule = parseRule(ctx.value);
      if ("error" in rule) {
        ctx.issues.push({ code: "custom", input: ctx.value, message: `invalid approval rule: ${rule.error}` });
      }
    })
    .meta({ pattern: APPROVAL_SOURCE, examples: ["2 of sre-leads", "1 of security and 1 of dba or 2 of sre-leads"] }),
  APPROVAL_HINT,
);

const FreeForm = z.record(z.string(), z.unknown());

const NonNegativeInt = (hint: string) => withHint(z.int().min(0), hint);
const PositiveInt = (hint: string) => withHint(z.int().min(1), hint);

/** One request limit: requests in flight at once, and a token bucket (sustained rate, burst). */
const RequestLimitSchema = (concurrent: number, perSecond: number, burst: number) =>
  z
    .strictObject({
      concurrent: PositiveInt("use a whole number of requests, at least 1")
        .default(concurrent)
        .describe("Requests in flight at once."),
      per_second: PositiveInt("use a whole number of requests per second, at least 1")
        .default(perSecond)
        .describe("Sustained requests per second."),
      burst: PositiveInt("use a whole number of requests, at least 1")
        .default(burst)
        .describe("Requests accepted at once above the sustained rate."),
    })
    .prefault({});

export const ServerSchema = z
  .strictObject({
    host: z.string().min(1).default("127.0.0.1").describe("Address the HTTP API listens on."),
    port: withHint(z.int().min(0).max(65535), "use a TCP port number from 1 to 65535 (0 picks a free port)")
      .default(8080)
      .describe("TCP port of the HTTP API; 0 picks a free port."),
    public_url: withHint(
      z.url({ protocol: /^https?$/ }),
      "write an absolute http(s) URL, e.g. https://breakglass.example.com",
    )
      .optional()
      .describe("Base URL used in links sent to people (approval links, alarms). Defaults to http://HOST:PORT."),
    limits: z
      .strictObject({
        per_caller: RequestLimitSchema(8, 50, 100).describe(
          "Per API token or signed-in session (counted before the credential is checked).",
        ),
        per_address: RequestLimitSchema(64, 200, 400).describe(
          "Per client address (the connecting address: behind a proxy, every client shares the proxy's).",
        ),
      })
      .prefault({})
      .describe(
        "Request limits of the API: a request over one is refused with 429 ERR_RATE_LIMITED and Retry-After. /health and /ready are outside them.",
      ),
  })
  .describe("The HTTP API.");

export const GatewaySchema = z
  .strictObject({
    host: z.string().min(1).default("127.0.0.1").describe("Address the PostgreSQL gateway listens on."),
    port: withHint(z.int().min(0).max(65535), "use a TCP port number from 1 to 65535 (0 picks a free port)")
      .default(5433)
      .describe("TCP port of the gateway; 0 picks a free port."),
    public_host: z
      .string()
      .min(1)
      .optional()
      .describe("Host name holders connect to (in the connection string they get). Defaults to `host`."),
    public_port: z.int().min(1).max(65535).optional().describe("Port holders connect to. Defaults to `port`."),
    tls: z
      .strictObject({
        cert_file: z
          .string()
          .min(1)
          .describe("PEM certificate (chain) the gateway presents, relative to the config file"),
        key_file: z.string().min(1).describe("PEM private key of the certificate, relative to the config file"),
      })
      .optional()
      .describe("TLS towards clients. Without it, the gateway answers SSLRequest with N (for loopback and tests)."),
    require_tls: z
      .boolean()
      .optional()
      .describe("Refuse clients that do not use TLS. Defaults to true when `tls` is set."),
    targets: z
      .array(Name)
      .default([])
      .describe(
        "postgres targets whose holders connect only through the gateway: every role on them is gateway-only (a role can also say `gateway_only: true` itself)",
      ),
    record_flush: FineDuration.default("100ms").describe(
      "Longest time a recorded statement waits in memory before it is written (batched; a broker crash can lose at most this much)",
    ),
  })
  .describe("The PostgreSQL gateway: recorded, time-boxed sessions to postgres targets.");

export const OidcSchema = z
  .strictObject({
    issuer: withHint(
      z.url({ protocol: /^https?$/ }),
      "write the issuer URL exactly as the IdP's discovery document names it",
    ).describe("The OpenID provider's issuer URL (its /.well-known/openid-configuration is read)."),
    client_id: z.string().min(1).describe("The broker's client id at the IdP."),
    client_secret: secretRefSchema
      .optional()
      .describe("The client secret (confidential client). Without it the broker is a public client using PKCE only."),
    redirect_url: withHint(
      z.url({ protocol: /^https?$/ }),
      "write the broker's public URL followed by /auth/callback, e.g. https://breakglass.example.com/auth/callback",
    )
      .optional()
      .describe(
        "Where the IdP sends the browser back; register it at the IdP. Defaults to server.public_url + /auth/callback.",
      ),
    scopes: z
      .array(z.string().min(1))
      .default(["openid", "profile", "email"])
      .describe("Scopes asked for; `openid` is always added. Add the one that releases groups (e.g. `groups`)."),
    username_claim: z
      .string()
      .min(1)
      .default("preferred_username")
      .describe(
        "Claim that names the user in Breakglass (preferred_username, email, upn…). Must match the keys of `users` for people configured there.",
      ),
    groups_claim: z
      .string()
      .min(1)
      .default("groups")
      .describe("Claim listing the user's IdP groups (Entra ID: groups or roles; Okta: groups; Keycloak: groups)."),
    group_map: z
      .record(z.string().min(1), z.union([Name, z.array(Name)]))
      .default({})
      .describe(
        "IdP group → Breakglass group(s). Only mapped groups count; a user's Breakglass groups are the mapped ones plus those in `groups`.",
      ),
    allow_insecure_http: z
      .boolean()
      .default(false)
      .describe("Allow an http:// issuer (loopback tests only; never in production)."),
    refresh_interval: FineDuration.default("15m").describe(
      "How often a session asks the IdP again (with its refresh token) for the person's current groups; a refused refresh ends the session. Needs the IdP to issue refresh tokens (scope offline_access on most).",
    ),
    health_interval: FineDuration.default("30s").describe(
      "How often the IdP's discovery document is fetched to tell whether it is reachable.",
    ),
  })
  .describe("Login through the organisation's OpenID Connect provider (authorization code + PKCE).");

export const AuthSchema = z
  .strictObject({
    oidc: OidcSchema.optional(),
    session_ttl: FineDuration.default("8h").describe(
      "Lifetime of a web/CLI session from its login (absolute; never extended).",
    ),
    fallback: z
      .strictObject({
        enabled: z
          .boolean()
          .default(true)
          .describe(
            "Allow login with user name + local factor while the IdP is down (for roles with `fallback: true`).",
          ),
        session_ttl: FineDuration.default("1h").describe("Lifetime of a session from a fallback login."),
        max_membership_age: Duration.default("7d").describe(
          "Last-known IdP group membership older than this does not count in a fallback login.",
        ),
      })
      .prefault({})
      .describe("Login when the IdP is unreachable (detected, or declared by an admin)."),
    lockout: z
      .strictObject({
        max_failures: z.int().min(1).default(5).describe("Failed logins or factor checks before a lockout."),
        window: FineDuration.default("15m").describe("Failures are counted within this window."),
        duration: FineDuration.default("15m").describe("How long a lockout lasts."),
      })
      .prefault({})
      .describe("Brute-force protection per user and per source address."),
    totp_issuer: z
      .string()
      .min(1)
      .default("Breakglass")
      .describe("Name shown in authenticator apps and security-key prompts."),
    webauthn: z
      .strictObject({
        rp_id: z
          .string()
          .min(1)
          .optional()
          .describe(
            "WebAuthn relying-party id: the host name users reach the console at. Defaults to server.public_url's.",
          ),
        origin: z
          .url({ protocol: /^https?$/ })
          .optional()
          .describe(
            "Origin of the console page, e.g. https://breakglass.example.com. Defaults to server.public_url's.",
          ),
      })
      .optional()
      .describe("Security keys and passkeys as local factors."),
  })
  .describe("Who is asking: IdP login, sessions, local factors and the IdP-down fallback.");

export const SqliteStorageSchema = z
  .strictObject({
    driver: z.literal("sqlite").describe("Embedded SQLite database (single broker process)."),
    path: z
      .string()
      .min(1)
      .default("./breakglass.db")
      .describe("Database file, relative to the folder of the configuration file; `:memory:` for a throwaway one."),
  })
  .describe("Embedded SQLite storage.");

export const PostgresStorageSchema = z
  .strictObject({
    driver: z.literal("postgres").describe("PostgreSQL: several broker replicas may share it."),
    url_env: z
      .string()
      .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, {
        error: (iss) => `"${String(iss.input)}" is not an environment variable name`,
      })
      .optional()
      .describe(
        "Name of the environment variable holding the connection URL (postgres://…). Exactly one of url_env / url_file.",
      ),
    url_file: z
      .string()
      .min(1)
      .optional()
      .describe(
        "File holding the connection URL, relative to the configuration file's folder (e.g. a mounted secret). Exactly one of url_env / url_file.",
      ),
    pool_size: PositiveInt("use a whole number of connections, at least 1")
      .default(10)
      .describe("Connections per pool; a broker process has two (its request thread and its background thread)."),
  })
  .describe("PostgreSQL storage. The connection URL never sits in the file: it comes from url_env or url_file.");

export const StorageSchema = z
  .discriminatedUnion("driver", [SqliteStorageSchema, PostgresStorageSchema])
  .prefault({ driver: "sqlite" })
  .describe("Where grants, approvals and the audit log are stored.");

export const AuditSchema = z
  .strictObject({
    signing_key_file: z
      .string()
      .min(1)
      .default("./audit-signing.pem")
      .describe(
        "PEM PKCS#8 Ed25519 private key that signs audit checkpoints, relative to the configuration file's folder.",
      ),
    generate_key_if_missing: z
      .boolean()
      .default(false)
      .describe(
        "Create the signing key on first start if it does not exist. For demos; production provisions the key.",
      ),
    checkpoint_interval: FineDuration.default("5m").describe(
      "Sign a checkpoint at least this often while events arrive.",
    ),
    checkpoint_every_events: PositiveInt("use a whole number of events, at least 1")
      .default(1000)
      .describe("…or after this many events, whichever comes first."),
  })
  .describe("The tamper-evident audit log.");

export const SecretsSchema = z
  .strictObject({
    key_file: z
      .string()
      .min(1)
      .optional()
      .describe(
        "File with the broker's 32-byte data key (base64), relative to the configuration file's folder. It encrypts the credentials handed to grant holders and opens `{sealed: …}` secrets. Create it with `breakglass secret keygen`; keep it out of database backups. Required by connectors that issue credentials (postgres, ssh, aws).",
      ),
    generate_key_if_missing: z
      .boolean()
      .default(false)
      .describe("Create the key file on first start if it does not exist. For demos; production provisions the key."),
  })
  .describe("Encryption at rest for the broker's secrets.");

const WebhookChannelSchema = z
  .strictObject({
    type: z.literal("webhook").describe("A signed JSON POST"),
    url: z
      .union([z.url({ protocol: /^https?$/ }), secretRefSchema])
      .describe("Where to POST: a URL, or a secret reference when the URL itself is a secret (Slack-style)"),
    secret: secretRefSchema.describe("HMAC-SHA256 key for the `breakglass-signature` header"),
    timeout: FineDuration.default("5s").describe("Longest one delivery may take"),
  })
  .describe("POSTs the alarm as JSON, signed (`breakglass-signature: t=…,v1=…`), with an idempotency key.");

const FileChannelSchema = z
  .strictObject({
    type: z.literal("file").describe("A local JSON Lines file"),
    path: z.string().min(1).describe("JSON Lines file the alarms are appended to, relative to the configuration file"),
  })
  .describe("Appends alarms to a local file: for demos, and as a record beside real channels.");

const SlackChannelSchema = z
  .strictObject({
    type: z.literal("slack").describe("A Slack incoming webhook (Block Kit message)"),
    url: secretRefSchema.describe("The incoming-webhook URL (it is a secret: anyone with it can post)"),
    timeout: FineDuration.default("5s").describe("Longest one delivery may take"),
  })
  .describe("Posts a Block Kit message with the grant's facts and links to the broker.");

const PagerDutyChannelSchema = z
  .strictObject({
    type: z.literal("pagerduty").describe("PagerDuty Events API v2"),
    routing_key: secretRefSchema.describe("The integration's routing key"),
    url: z.url().default("https://events.pagerduty.com/v2/enqueue").describe("Events API endpoint"),
    timeout: FineDuration.default("5s").describe("Longest one delivery may take"),
  })
  .describe("Triggers an incident per grant (dedup_key = grant id) on activation and resolves it when the grant ends.");

const EmailChannelSchema = z
  .strictObject({
    type: z.literal("email").describe("E-mail over SMTP, plain text and HTML"),
    smtp_url: z
      .union([z.url({ protocol: /^smtps?$/ }), secretRefSchema])
      .describe(
        "smtp://user:password@host:587 (STARTTLS) or smtps://…:465; a secret reference when it holds a password",
      ),
    require_tls: z.boolean().default(true).describe("Refuse to send over a connection that does not upgrade to TLS"),
    from: z.string().min(3).describe("Sender, e.g. `Breakglass <breakglass@example.com>`"),
    to: z.array(z.string().min(3)).default([]).describe("Fixed recipients (addresses)"),
    to_groups: z.array(Name).default([]).describe("Members of these groups (their `email`)"),
    to_approvers: z
      .boolean()
      .default(false)
      .describe("Also the members of the groups in the grant's approval rule (requests reach those who can approve)"),
    to_holder: z
      .boolean()
      .default(false)
      .describe(
        "Also the grant's holder (its requester): e.g. `grant.ending_soon` reaches the person who must finish up",
      ),
    to_holder_managers: z.boolean().default(false).describe("Also the members of the holder's `manager_group`"),
    timeout: FineDuration.default("10s").describe("Longest one delivery may take"),
  })
  .describe("Sends the alarm as an e-mail with plain-text and HTML parts.");

const SyslogChannelSchema = z
  .strictObject({
    type: z.literal("syslog").describe("A syslog collector (SIEM), RFC 5424 over TCP"),
    host: z.string().min(1).describe("Collector host"),
    port: z.int().min(1).max(65535).default(6514).describe("Collector TCP port"),
    tls: z.boolean().default(true).describe("RFC 5425 TLS (false: plain TCP, for a collector on a trusted network)"),
    ca_file: z
      .string()
      .min(1)
      .optional()
      .describe("PEM CA to trust for the collector, relative to the configuration file"),
    facility: z.int().min(0).max(23).default(13).describe("Syslog facility number (13: log audit; 10: authpriv)"),
    app_name: z.string().min(1).max(48).default("breakglass").describe("APP-NAME in each message"),
    timeout: FineDuration.default("5s").describe("Longest one delivery may take"),
  })
  .describe(
    'Sends each alarm\'s audit event to a syslog collector as an RFC 5424 message (octet-counted, RFC 6587) whose body is the event as OCSF JSON. Route `events: ["*"]` to it to forward the whole audit log.',
  );

export const AlarmChannelSchema = z.discriminatedUnion("type", [
  EmailChannelSchema,
  WebhookChannelSchema,
  FileChannelSchema,
  SyslogChannelSchema,
  SlackChannelSchema,
  PagerDutyChannelSchema,
]);

export const AlarmsSchema = z
  .strictObject({
    channels: z
      .record(Name, AlarmChannelSchema)
      .default({ local: { type: "file", path: "./alarms.jsonl" } })
      .describe("Alarm channels, by name."),
    security_channels: z
      .array(Name)
      .default(["local"])
      .describe(
        "Channels that receive every activation alarm (normal and emergency). Cannot be empty: activation alarms cannot be silenced.",
      ),
    routes: z
      .array(
        z.strictObject({
          events: z
            .array(z.string().regex(/^(\*|[a-z_]+\.(\*|[a-z_]+))$/))
            .min(1)
            .describe("Event types or globs: grant.*, target.revoke_failed, *"),
          channels: z.array(Name).min(1).describe("Channels (names under alarms.channels) these events go to"),
          domains: z.array(Name).optional().describe("Only events of grants in these domains"),
        }),
      )
      .default([{ events: ["*"], channels: ["local"] }])
      .describe("Which other events go to which channels."),
    delivery_lease: FineDuration.default("60s").describe(
      "How long a replica holds an alarm while delivering; after that another replica retries it (at least once). A replica that dies has its deliveries taken over at once.",
    ),
    unalarmed_after: FineDuration.default("60s").describe(
      "An active grant whose activation alarm no security channel has delivered within this time is flagged `unalarmed` (the grant keeps working).",
    ),
    escalation: z
      .strictObject({
        after: FineDuration.describe("An activation nobody acknowledged (`breakglass ack`) within this time escalates"),
        channels: z.array(Name).min(1).describe("Where the escalation goes (the next on-call, a pager)"),
      })
      .optional()
      .describe("Escalate unacknowledged activations."),
  })
  .superRefine((a, ctx) => {
    if (a.security_channels.length === 0) {
      ctx.addIssue({
        code: "custom",
        path: ["security_channels"],
        message:
          "activation alarms cannot be silenced: name at least one channel in security_channels (a break-glass activation nobody hears about is a backdoor)",
      });
    }
    // A delivery that outlives its lease is taken over by another replica while it still runs: the
    // receiver gets it twice at once and the first result may be recorded over the second's.
    const leaseMs = parseFineDurationMs(a.delivery_lease);
    for (const [name, channel] of Object.entries(a.channels)) {
      const timeout = "timeout" in channel ? channel.timeout : undefined;
      if (timeout !== undefined && parseFineDurationMs(timeout) >= leaseMs) {
        ctx.addIssue({
          code: "custom",
          path: ["channels", name, "timeout"],
          message: `a delivery may take ${timeout}, as long as alarms.delivery_lease (${a.delivery_lease}) or longer, so another replica would take the alarm over while it is still being delivered: make the timeout shorter than delivery_lease, or delivery_lease longer`,
        });
      }
    }
    const known = new Set(Object.keys(a.channels));
    // `local` is what the defaults name: a user who defines channels of their own and leaves out
    // security_channels or routes meets it without having written it anywhere.
    const undefinedChannel = (c: string, key: "security_channels" | "routes") =>
      c === "local"
        ? `channel \`local\` is not defined under alarms.channels — it is the default of alarms.${key} (${key === "routes" ? "every event to `local`" : "`[local]`"}), which applies when ${key} is left out: set alarms.${key} to your own channels${key === "routes" ? " (`routes: []` for none beyond the security channels)" : ""}, or define a channel named \`local\``
        : `channel \`${c}\` is not defined under alarms.channels`;
    a.security_channels.forEach((c, i) => {
      if (!known.has(c))
        ctx.addIssue({
          code: "custom",
          path: ["security_channels", i],
          message: undefinedChannel(c, "security_channels"),
        });
    });
    for (const [j, c] of (a.escalation?.channels ?? []).entries()) {
      if (!known.has(c)) {
        ctx.addIssue({
          code: "custom",
          path: ["escalation", "channels", j],
          message: `channel \`${c}\` is not defined under alarms.channels`,
        });
      }
    }
    for (const [i, r] of a.routes.entries()) {
      for (const [j, c] of r.channels.entries()) {
        if (!known.has(c)) {
          ctx.addIssue({
            code: "custom",
            path: ["routes", i, "channels", j],
            message: undefinedChannel(c, "routes"),
          });
        }
      }
    }
  })
  .describe("Alarms: channels, and which events reach them. Without this section, every event goes to ./alarms.jsonl.");

export const WorkersSchema = z
  .strictObject({
    expiry_poll: FineDuration.default("250ms").describe(
      "Longest sleep of the expiry worker between checks for due grants.",
    ),
    expiry_batch_size: PositiveInt("use a whole number, at least 1").default(500).describe("Grants handled per claim."),
    revoke_concurrency: PositiveInt("use a whole number, at least 1")
      .default(8)
      .describe("Concurrent connector calls for revocations."),
    reconcile_interval: FineDuration.default("5m").describe(
      "How often every target is compared with the broker's records (leftover access is removed, standing privilege reported).",
    ),
    reconcile_lookback: Duration.default("24h").describe(
      "Ended grants younger than this are re-verified at their target on every reconciliation.",
    ),
  })
  .describe("Background workers.");

export const RotationSchema = z
  .strictObject({
    max_age: Duration.default("30d").describe(
      "Longest a break-glass credential may live before it is rotated (seed 002: at least monthly): target admin passwords, SSH CA keys, the audit signing key, the data key, tier-2 envelopes without a date of their own.",
    ),
    check_interval: FineDuration.default("1h").describe(
      "How often the broker checks every credential's age: overdue ones raise `credential.rotation_overdue` (once a day each, to the security channels); those listed in `auto` are rotated.",
    ),
    auto: z
      .array(Name)
      .default([])
      .describe(
        "Postgres targets whose admin password the broker rotates itself when due (new password as a SCRAM verifier, proven by a new login before the old one is discarded). Their admin_url must be a file or sealed file.",
      ),
  })
  .describe("Rotation of break-glass credentials.");

export const RoleDefaultsSchema = z
  .strictObject({
    justification_min_length: NonNegativeInt("use a whole number of characters, 0 or more")
      .default(10)
      .describe("Shortest accepted justification, in characters."),
    incident_pattern: IncidentPattern.default(DEFAULT_INCIDENT_PATTERN).describe(
      "Regular expression an incident id must match in full (implicitly anchored).",
    ),
    approval_timeout: Duration.default("1h").describe(
      "A request not fully approved within this time lapses (approval_expired).",
    ),
    activation_timeout: Duration.default("15m").describe(
      "An approved grant not activated within this time lapses (approval_expired).",
    ),
    review_deadline: Duration.default("5d").describe("Time after a grant ends by which it must be reviewed."),
    emergency_review_deadline: Duration.default("24h").describe(
      "Review deadline of emergency activations and of grants from a login via local fallback (or review_deadline, if shorter).",
    ),
    emergency_reviewers: z
      .array(Name)
      .optional()
      .describe(
        "Groups whose members review emergency activations and fallback grants. Defaults to admin_groups; a role's `reviewers` wins.",
      ),
    ending_warning: EndingWarning.default("10m").describe(
      "Tell the holder this long before the grant ends (`grant.ending_soon`), never in the first half of the window; `off` for no warning.",
    ),
    alarm_severity: AlarmSeverity.default("warning").describe(
      "Severity of a normal activation's alarm (PagerDuty severity, Slack and e-mail emphasis). Emergency activations are always critical.",
    ),
  })
  .describe("Defaults for every role; a role's own setting wins.");

export const GUARD_RULE_NAMES = [
  "drop_database",
  "drop_table",
  "drop_schema",
  "drop_any",
  "truncate",
  "alter_system",
  "copy_program",
  "delete_without_where",
  "update_without_where",
  "grant",
  "grant_role",
  "create_role",
  "alter_role",
  "do_block",
  "create_function",
  "security_definer",
  "change_owner",
  "set_role",
  "login_credential",
  "session_bounds",
] as const;

const GuardSchema = z
  .strictObject({
    deny: z
      .array(
        z.union([
          z.enum(GUARD_RULE_NAMES),
          z.strictObject({
            node: z
              .string()
              .regex(/^[A-Z][A-Za-z_]*$/, { message: "a PostgreSQL parse node type like DropStmt" })
              .describe("Parse node type anywhere in the statement (libpg-query names: DropStmt, IndexStmt…)"),
            where: z
              .record(z.string(), z.union([z.string(), z.number(), z.boolean(), z.null()]))
              .optional()
              .describe("Field conditions on that node; null means the field is absent (e.g. whereClause: null)"),
            label: z.string().min(1).describe("How the rule is named in the error the client gets"),
          }),
        ]),
      )
      .default([])
      .describe(`Statements refused: named rules (${GUARD_RULE_NAMES.join(", ")}) or {node, where, label}`),
    deny_schemas: z
      .array(z.string().min(1))
      .default([])
      .describe("Statements naming relations in these schemas are refused"),
  })
  .describe("What the gateway refuses to run for this role, decided on PostgreSQL's parse tree.");

export const RoleSchema = z
  .strictObject({
    description: ShownText.default("").describe("What the role is for, shown to requesters and approvers."),
    target: Name.describe("Name of the target (under `targets`) the role grants access on."),
    grants: FreeForm.default({}).describe(
      "What the role grants on the target; free-form, read by the target's connector (e.g. `{ roles: [recovery_rw] }`).",
    ),
    default_duration: Duration.optional().describe("Grant length when a request names none. Defaults to max_duration."),
    max_duration: Duration.describe(
      "Longest grant a request may ask for. The credential at the target carries this end.",
    ),
    approval: ApprovalText.describe(
      'Who must approve: "N of GROUP" terms joined by `and`, clauses joined by `or` (`and` binds tighter), e.g. "1 of security and 1 of dba or 2 of sre-leads". Approvers are distinct people and never the requester.',
    ),
    requesters: withHint(
      z.array(Name).min(1, { error: "list at least one group whose members may request the role" }),
      "name the groups whose members may request the role, e.g. `requesters: [oncall]`",
    ).describe("Groups whose members may request the role."),
    emergency: z
      .boolean()
      .default(false)
      .describe("Allow emergency self-activation without approval (pages louder and must be reviewed)."),
    review_deadline: Duration.optional().describe(
      "Time after the grant ends by which it must be reviewed. Defaults to defaults.review_deadline (5d); emergency activations: defaults.emergency_review_deadline (24h), if shorter.",
    ),
    reviewers: z
      .array(Name)
      .optional()
      .describe(
        "Groups whose members review this role's emergency activations and fallback grants. Defaults to defaults.emergency_reviewers, then admin_groups.",
      ),
    ending_warning: EndingWarning.optional().describe(
      "Tell the holder this long before the grant ends; `off` for no warning. Defaults to defaults.ending_warning.",
    ),
    alarm_severity: AlarmSeverity.optional().describe(
      "Severity of a normal activation's alarm. Defaults to defaults.alarm_severity; emergency activations are always critical.",
    ),
    justification_min_length: NonNegativeInt("use a whole number of characters, 0 or more")
      .optional()
      .describe("Shortest accepted justification. Defaults to defaults.justification_min_length."),
    incident_pattern: IncidentPattern.optional().describe(
      "Regular expression an incident id must match in full. Defaults to defaults.incident_pattern.",
    ),
    approval_timeout: Duration.optional().describe(
      "A request not fully approved within this time lapses. Defaults to defaults.approval_timeout.",
    ),
    activation_timeout: Duration.optional().describe(
      "An approved grant not activated within this time lapses. Defaults to defaults.activation_timeout.",
    ),
    auto_activate: z
      .boolean()
      .default(true)
      .describe("Activate as soon as the approval rule is satisfied, without a separate activate step."),
    guard: GuardSchema.optional(),
    gateway_only: z
      .boolean()
      .default(false)
      .describe(
        "Holders get a gateway login only, never a credential that works at the target: every session goes through the gateway (recorded, guarded, closed at the end), and a broker outage ends it. Needs `gateway` and a postgres target; every role of a target under gateway.targets is gateway-only.",
      ),
    step_up: Duration.optional().describe(
      "Require a second factor verified within this time to request, activate or approve the role, independent of the IdP session.",
    ),
    fallback: z
      .boolean()
      .default(false)
      .describe("May be requested from a login via local fallback (IdP down); such grants are flagged for review."),
    recording: z
      .strictObject({
        redact_parameters: z
          .boolean()
          .default(false)
          .describe(
            "Record parameter values of prepared statements as <redacted> (statement texts are always recorded)",
          ),
        terminal_input: z
          .boolean()
          .default(false)
          .describe(
            "Record keystrokes in `breakglass shell` sessions too (output is always recorded); passwords typed are recorded",
          ),
      })
      .optional()
      .describe("How the gateway records this role's sessions."),
  })
  .describe("A recovery role: one bounded kind of access on one target. Its id is `DOMAIN/ROLE`.");

export const DomainSchema = z
  .strictObject({
    description: ShownText.default("").describe("What the domain covers."),
    roles: z.record(Name, RoleSchema).default({}).describe("Recovery roles of this domain, by name."),
  })
  .describe("A domain (production, security, network, …) and its recovery roles.");

export const UserSchema = z
  .strictObject({
    name: ShownLine.min(1).optional().describe("Display name. Defaults to the user's key."),
    email: withHint(z.email(), "write an address like alice@example.com").optional().describe("E-mail address."),
    manager_group: Name.optional().describe(
      "Group that manages this person: e-mailed about their grants by channels with `to_holder_managers`.",
    ),
  })
  .describe("A person who may request, approve or review.");

export const TargetSchema = z
  .strictObject({
    connector: z.string().min(1).describe("Connector that grants and revokes access on this target, e.g. `exec`."),
    settings: FreeForm.default({}).describe("Connector settings, validated by the connector's own schema."),
  })
  .describe("A system access is granted on.");

export const DrillSchema = z
  .strictObject({
    scenario: z
      .enum(["approval-path", "emergency", "policy-rollback", "idp-outage"])
      .describe(
        "approval-path: request → approvals → access probed → the window ends → access gone at the target. emergency: emergency self-activation → probe → release → access gone. policy-rollback: the approval path, plus the role's statement guard proven to refuse `guard_probe` (gateway targets). idp-outage: the IdP treated as down for this drill → local fallback login with the requester's TOTP → emergency grant → probe → release → access gone.",
      ),
    role: z.string().min(1).describe("The role rehearsed, `DOMAIN/ROLE`."),
    requester: UserName.describe("Who the drill requests as (a user allowed to request the role)."),
    approvers: z
      .array(UserName)
      .default([])
      .describe("Who approves, in order (approval-path): enough distinct people for the rule."),
    duration: Duration.default("30s").describe(
      "Grant length: the drill waits for the end and checks the access is gone at the target.",
    ),
    incident: ShownLine.min(1).optional().describe("Incident id for the drill's grant. Defaults to DRILL-<time>."),
    probe: z
      .union([
        z.strictObject({
          sql: z.string().min(1).describe("Query run with the grant's credential (postgres targets)."),
        }),
        z.strictObject({
          exec: z
            .array(z.string())
            .min(1)
            .describe("Command run with the credential in BREAKGLASS_CREDENTIAL; exit 0 means access works."),
        }),
      ])
      .optional()
      .describe("How the drill proves the access works while granted, and is gone after."),
    checks: z
      .array(
        z.strictObject({
          name: z.string().min(1).max(100).describe("The step's name in the run"),
          exec: z
            .array(z.string())
            .min(1)
            .describe("Command; BREAKGLASS_CREDENTIAL holds the grant's credential; exit 0 passes"),
        }),
      )
      .default([])
      .describe("Your own steps, run in order while the access is granted (after the probe)."),
    factor_secret: secretRefSchema
      .optional()
      .describe(
        "idp-outage: the requester's TOTP secret (from `breakglass factors provision-totp`), so the drill can sign in by fallback.",
      ),
    guard_probe: z
      .strictObject({
        sql: z.string().min(1).describe("A statement the role's guard must refuse, e.g. DROP TABLE public.accounts"),
      })
      .optional()
      .describe(
        "policy-rollback: run through the gateway with the grant's credential; the drill fails unless the guard refuses it.",
      ),
    every: Duration.default("30d").describe("How often the drill must pass; older results show red in posture."),
  })
  .describe("A drill: the real break-glass path, run end to end on schedule, in drill mode.");

export const ConfigFileSchema = z
  .strictObject({
    version: withHint(z.literal(1), "set `version: 1`").describe("Format version of this file; always 1."),
    server: ServerSchema.prefault({}),
    storage: StorageSchema,
    audit: AuditSchema.prefault({}),
    secrets: SecretsSchema.prefault({}),
    alarms: AlarmsSchema.prefault({}),
    workers: WorkersSchema.prefault({}),
    gateway: GatewaySchema.optional(),
    auth: AuthSchema.prefault({}),
    defaults: RoleDefaultsSchema.prefault({}),
    admin_groups: z.array(Name).default([]).describe("Members of these groups may revoke any grant."),
    users: z.record(UserName, UserSchema).default({}).describe("People, by user name."),
    groups: z.record(Name, z.array(UserName)).default({}).describe("Groups, by name: each a list of user names."),
    domains: z.record(Name, DomainSchema).default({}).describe("Domains, by name, each with its recovery roles."),
    targets: z.record(Name, TargetSchema).default({}).describe("Targets, by name."),
    drills: z.record(Name, DrillSchema).default({}).describe("Drills, by name (`breakglass drill run NAME`)."),
    rotation: RotationSchema.prefault({}),
    vault: z
      .strictObject({
        envelopes: z
          .array(z.string().min(1))
          .default([])
          .describe("Tier-2 envelope files (relative to this file) whose rotation and use posture checks"),
        reviewers: z
          .array(Name)
          .optional()
          .describe(
            "Groups whose members review tier-2 openings (imported with `vault import-record`). Defaults to defaults.emergency_reviewers, then admin_groups. A custodian who opened an envelope never reviews that opening.",
          ),
        review_deadline: Duration.optional().describe(
          "Time after an opening is imported by which it must be reviewed (default: defaults.emergency_review_deadline).",
        ),
      })
      .prefault({})
      .describe("Tier-2 envelopes the broker keeps an eye on (it never opens them)."),
  })
  .meta({
    title: "Breakglass configuration",
    description:
      "Recovery roles as code: people, groups, domains with their recovery roles, targets, and the broker's own settings. Durations are written like 30m, 1h30m, 2d, 45s.",
  });

/** The file as written, after validation, with the schema's defaults applied. */
export type ConfigFile = z.output<typeof ConfigFileSchema>;
export type RoleFile = z.output<typeof RoleSchema>;

/** JSON Schema (draft 2020-12) of the configuration file, documenting every key. */
export function configJsonSchema(): Record<string, unknown> {
  // `input`: keys with defaults are optional in the file, which is what an editor should check.
  return z.toJSONSchema(ConfigFileSchema, { target: "draft-2020-12", io: "input" }) as Record<string, unknown>;
}

/** `configJsonSchema()` as committed to schema/breakglass.schema.json: 2-space indent, trailing newline. */
export function configJsonSchemaText(): string {
  return `${JSON.stringify(configJsonSchema(), null, 2)}\n`;
}
