/**
 * The one error vocabulary of Breakglass. Every failure that can reach a user carries a stable
 * string `code` (`ERR_...`), a human message, and the fields that explain it. Adapters map these
 * codes once to HTTP (problem+json, RFC 9457) and, later, once to SQLSTATE for the gateway.
 *
 * @see https://www.rfc-editor.org/rfc/rfc9457
 */
export type ErrorCode =
  | "ERR_VALIDATION"
  | "ERR_CONFIG_INVALID"
  | "ERR_NOT_FOUND"
  | "ERR_UNAUTHENTICATED"
  | "ERR_FORBIDDEN"
  | "ERR_STEP_UP_REQUIRED"
  | "ERR_LOCKED_OUT"
  | "ERR_RATE_LIMITED"
  | "ERR_IDP_UNAVAILABLE"
  | "ERR_NOT_READY"
  | "ERR_NOT_CONFIGURED"
  | "ERR_INVALID_TRANSITION"
  | "ERR_SELF_APPROVAL"
  | "ERR_DUPLICATE_APPROVAL"
  | "ERR_NOT_ELIGIBLE_APPROVER"
  | "ERR_NOT_ELIGIBLE_REQUESTER"
  | "ERR_EMERGENCY_NOT_ALLOWED"
  | "ERR_DURATION_EXCEEDS_MAX"
  | "ERR_JUSTIFICATION_REQUIRED"
  | "ERR_INCIDENT_REQUIRED"
  | "ERR_OPEN_GRANT_EXISTS"
  | "ERR_CONFLICT"
  | "ERR_AUDIT_WRITE_FAILED"
  | "ERR_AUDIT_CHAIN_BROKEN"
  | "ERR_CONNECTOR_FAILED"
  | "ERR_STORAGE"
  | "ERR_INTERNAL";

/** Base class: `code` is stable and safe to show; `detail` fields must never hold secrets. */
export class BreakglassError extends Error {
  readonly code: ErrorCode;
  readonly detail: Readonly<Record<string, unknown>>;

  constructor(code: ErrorCode, message: string, detail: Record<string, unknown> = {}) {
    super(message);
    this.name = "BreakglassError";
    this.code = code;
    this.detail = Object.freeze({ ...detail });
  }
}

/** One problem found in a configuration file, located by its YAML path. */
export interface ConfigIssue {
  /** e.g. `domains.production.roles.db-admin.max_duration` */
  readonly path: string;
  readonly message: string;
  /** What to change to fix it. */
  readonly hint?: string;
  /** 1-based line/column in the source file, when known. */
  readonly line?: number;
  readonly column?: number;
}

export class ConfigError extends BreakglassError {
  readonly issues: readonly ConfigIssue[];

  constructor(issues: readonly ConfigIssue[], source = "configuration") {
    const first = issues
      .slice(0, 3)
      .map((i) => `${i.path || "(top)"}: ${i.message}`)
      .join("; ");
    super(
      "ERR_CONFIG_INVALID",
      `${source} has ${issues.length} problem(s): ${first}${issues.length > 3 ? "; …" : ""}`,
      {
        issues,
      },
    );
    this.name = "ConfigError";
    this.issues = issues;
  }
}

export function isBreakglassError(e: unknown): e is BreakglassError {
  return e instanceof BreakglassError;
}
