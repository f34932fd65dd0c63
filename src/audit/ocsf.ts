/**
 * Audit events as OCSF 1.3 events, for SIEMs (the JSONL export with `--format ocsf`, and the
 * `syslog` alarm channel's message body):
 *
 * - logins, logouts, lockouts and fallback logins → **Authentication** (3002, category IAM);
 * - grants turning access on and off at a target, factor enrolment and removal → **Account
 *   Change** (3001: Attach Policy / Detach Policy / MFA Factor Enable / Disable);
 * - everything else (requests, approvals, reviews, configuration, drills…) → **API Activity**
 *   (6003, category Application Activity).
 *
 * The Breakglass event itself travels unchanged in `unmapped.breakglass`, with its chain `seq` and
 * `hash` in `metadata`, so a SIEM copy can be checked against the signed log.
 *
 * @see https://schema.ocsf.io/1.3.0/classes/authentication
 */

export interface OcsfEvent {
  readonly class_uid: number;
  readonly class_name: string;
  readonly category_uid: number;
  readonly category_name: string;
  readonly activity_id: number;
  readonly activity_name: string;
  readonly type_uid: number;
  readonly time: number;
  readonly severity_id: number;
  readonly severity: string;
  readonly status_id: number;
  readonly status: string;
  readonly message: string;
  readonly metadata: Record<string, unknown>;
  readonly actor: { readonly user: { readonly name: string } };
  readonly [key: string]: unknown;
}

const SEVERITY: Record<string, [number, string]> = {
  info: [1, "Informational"],
  warning: [3, "Medium"],
  critical: [5, "Critical"],
};

type Mapping = { class: "auth" | "account" | "api"; activity: [number, string]; failed?: boolean };

function mapping(type: string): Mapping {
  switch (type) {
    case "auth.login":
    case "auth.fallback_login":
      return { class: "auth", activity: [1, "Logon"] };
    case "auth.logout":
      return { class: "auth", activity: [2, "Logoff"] };
    case "auth.locked_out":
      return { class: "auth", activity: [1, "Logon"], failed: true };
    case "auth.step_up":
      return { class: "auth", activity: [99, "Other"] };
    case "grant.activated":
    case "grant.emergency_activated":
    case "target.grant_started":
      return { class: "account", activity: [7, "Attach Policy"] };
    case "grant.expired":
    case "grant.revoked":
    case "grant.released":
    case "target.revoked":
    case "target.side_permission_swept":
    case "target.containment_drift":
    case "target.drift_fixed":
      return { class: "account", activity: [8, "Detach Policy"] };
    case "auth.factor_enrolled":
      return { class: "account", activity: [10, "MFA Factor Enable"] };
    case "auth.factor_removed":
      return { class: "account", activity: [11, "MFA Factor Disable"] };
    default: {
      if (/\.(requested|created|started)$/.test(type)) return { class: "api", activity: [1, "Create"] };
      if (/_read$/.test(type)) return { class: "api", activity: [2, "Read"] };
      return { class: "api", activity: [3, "Update"] };
    }
  }
}

const CLASSES = {
  auth: { uid: 3002, name: "Authentication", category: [3, "Identity & Access Management"] },
  account: { uid: 3001, name: "Account Change", category: [3, "Identity & Access Management"] },
  api: { uid: 6003, name: "API Activity", category: [6, "Application Activity"] },
} as const;

/**
 * One audit event (its canonical payload fields plus `seq` and `hash`) as an OCSF event.
 * `severity` and `summary` come from the alarm message when there is one.
 */
export function toOcsf(
  event: Readonly<Record<string, unknown>>,
  opts: { severity?: string; summary?: string; productVersion?: string } = {},
): OcsfEvent {
  const type = String(event.type ?? "");
  const m = mapping(type);
  const cls = CLASSES[m.class];
  const [severityId, severityName] = SEVERITY[opts.severity ?? "info"] ?? [1, "Informational"];
  const data = (event.data ?? {}) as Record<string, unknown>;
  const at = typeof event.at === "string" ? Date.parse(event.at) : Number(event.at ?? 0);
  // The account acted on: the user of an auth event, the holder of a grant.
  const subject = typeof data.user === "string" ? data.user : typeof data.holder === "string" ? data.holder : null;
  return {
    class_uid: cls.uid,
    class_name: cls.name,
    category_uid: cls.category[0],
    category_name: cls.category[1],
    activity_id: m.activity[0],
    activity_name: m.activity[1],
    type_uid: cls.uid * 100 + m.activity[0],
    time: at,
    severity_id: severityId,
    severity: severityName,
    status_id: m.failed ? 2 : 1,
    status: m.failed ? "Failure" : "Success",
    message: opts.summary ?? type,
    metadata: {
      version: "1.3.0",
      product: { name: "Breakglass", vendor_name: "Breakglass", version: opts.productVersion ?? "1" },
      uid: String(event.seq ?? ""),
      event_code: type,
      correlation_uid: typeof event.grant === "string" ? event.grant : undefined,
      log_name: "breakglass-audit",
      ...(typeof event.hash === "string" ? { labels: [`chain-hash:${event.hash}`] } : {}),
    },
    actor: { user: { name: String(event.actor ?? "") } },
    ...(subject ? { user: { name: subject } } : {}),
    ...(m.class === "api" ? { api: { operation: type, service: { name: "breakglass" } } } : {}),
    ...(typeof event.source === "string" ? { src_endpoint: { ip: event.source } } : {}),
    unmapped: { breakglass: event },
  };
}
