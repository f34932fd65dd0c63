/**
 * The one place errors become HTTP responses: RFC 9457 problem details with our stable `code`.
 *
 * - A BreakglassError keeps its code; its status comes from {@link STATUS_BY_CODE}. 4xx problems
 *   carry the message as `detail` plus the error's safe detail fields (primitives only).
 * - Fastify's own refusals (bad JSON, body too large, wrong content type) get stable codes.
 * - Anything else is a bug or an outage we did not name: 500 with only `code` and `instance`.
 *   5xx problems never carry a message or detail fields (a connector's error may quote a target's
 *   output): the log has them, keyed by request id.
 *
 * @see https://www.rfc-editor.org/rfc/rfc9457
 */
import type { ProblemCode } from "../contract/api.js";
import { type ErrorCode, isBreakglassError } from "../core/errors.js";

export const PROBLEM_CONTENT_TYPE = "application/problem+json";

/** HTTP status per error code. A `Record` over the whole union: a new code will not compile until it is mapped. */
export const STATUS_BY_CODE: Readonly<Record<ProblemCode, number>> = {
  ERR_VALIDATION: 400,
  ERR_UNAUTHENTICATED: 401,
  ERR_FORBIDDEN: 403,
  ERR_STEP_UP_REQUIRED: 403,
  ERR_SELF_APPROVAL: 403,
  ERR_NOT_ELIGIBLE_APPROVER: 403,
  ERR_NOT_ELIGIBLE_REQUESTER: 403,
  ERR_EMERGENCY_NOT_ALLOWED: 403,
  ERR_NOT_FOUND: 404,
  ERR_NOT_CONFIGURED: 404,
  ERR_METHOD_NOT_ALLOWED: 405,
  ERR_INVALID_TRANSITION: 409,
  ERR_DUPLICATE_APPROVAL: 409,
  ERR_OPEN_GRANT_EXISTS: 409,
  ERR_CONFLICT: 409,
  ERR_AUDIT_CHAIN_BROKEN: 409,
  ERR_PAYLOAD_TOO_LARGE: 413,
  ERR_HEADERS_TOO_LARGE: 431,
  ERR_REQUEST_TIMEOUT: 408,
  ERR_LOCKED_OUT: 429,
  ERR_RATE_LIMITED: 429,
  ERR_UNSUPPORTED_MEDIA_TYPE: 415,
  ERR_DURATION_EXCEEDS_MAX: 422,
  ERR_JUSTIFICATION_REQUIRED: 422,
  ERR_INCIDENT_REQUIRED: 422,
  ERR_CONFIG_INVALID: 500,
  ERR_INTERNAL: 500,
  ERR_CONNECTOR_FAILED: 502,
  ERR_AUDIT_WRITE_FAILED: 503,
  ERR_STORAGE: 503,
  ERR_IDP_UNAVAILABLE: 503,
  ERR_NOT_READY: 503,
};

/** Short, fixed titles: the same for every occurrence of a code (RFC 9457 §3.1.4). */
const TITLE_BY_CODE: Readonly<Record<ProblemCode, string>> = {
  ERR_VALIDATION: "Invalid request",
  ERR_UNAUTHENTICATED: "Authentication required",
  ERR_FORBIDDEN: "Not allowed",
  ERR_STEP_UP_REQUIRED: "A fresh second factor is required",
  ERR_LOCKED_OUT: "Too many failed attempts",
  ERR_RATE_LIMITED: "Too many requests",
  ERR_IDP_UNAVAILABLE: "Identity provider unavailable",
  ERR_NOT_READY: "Not ready",
  ERR_SELF_APPROVAL: "Self-approval is not allowed",
  ERR_NOT_ELIGIBLE_APPROVER: "Not an eligible approver",
  ERR_NOT_ELIGIBLE_REQUESTER: "Not an eligible requester",
  ERR_EMERGENCY_NOT_ALLOWED: "Emergency activation not allowed",
  ERR_NOT_FOUND: "Not found",
  ERR_NOT_CONFIGURED: "Not configured on this broker",
  ERR_METHOD_NOT_ALLOWED: "Method not allowed",
  ERR_INVALID_TRANSITION: "Invalid state transition",
  ERR_DUPLICATE_APPROVAL: "Already approved",
  ERR_OPEN_GRANT_EXISTS: "An open grant already exists",
  ERR_CONFLICT: "Conflict",
  ERR_PAYLOAD_TOO_LARGE: "Request body too large",
  ERR_HEADERS_TOO_LARGE: "Request headers too large",
  ERR_REQUEST_TIMEOUT: "Request timeout",
  ERR_UNSUPPORTED_MEDIA_TYPE: "Unsupported media type",
  ERR_DURATION_EXCEEDS_MAX: "Duration exceeds the role's maximum",
  ERR_JUSTIFICATION_REQUIRED: "Justification required",
  ERR_INCIDENT_REQUIRED: "Incident id required",
  ERR_CONFIG_INVALID: "Internal error",
  ERR_AUDIT_CHAIN_BROKEN: "The audit log does not verify here",
  ERR_INTERNAL: "Internal error",
  ERR_CONNECTOR_FAILED: "Target connector failed",
  ERR_AUDIT_WRITE_FAILED: "Audit log unavailable",
  ERR_STORAGE: "Storage unavailable",
};

/** Members the problem object itself defines; detail fields never overwrite them. */
const RESERVED = new Set(["type", "title", "status", "detail", "code", "instance"]);

export interface ProblemBody {
  readonly type?: string;
  readonly title?: string;
  readonly status?: number;
  readonly detail?: string;
  readonly code: ProblemCode;
  readonly instance: string;
  readonly [extra: string]: unknown;
}

export interface ProblemResponse {
  readonly status: number;
  readonly body: ProblemBody;
  /** True when the error was not one we named: log it with its stack. */
  readonly unexpected: boolean;
}

export const problemType = (code: ProblemCode): string => `urn:breakglass:problem:${code}`;

/** Build a problem; 5xx problems carry no `detail` and no fields, ERR_INTERNAL only `code` and `instance`. */
export function problem(
  code: ProblemCode,
  instance: string,
  detail?: string,
  fields: Readonly<Record<string, unknown>> = {},
): ProblemBody {
  const status = STATUS_BY_CODE[code];
  // An internal error says nothing at all; a named outage says which, but not what or where.
  if (code === "ERR_INTERNAL") return { code, instance };
  if (status >= 500) return { type: problemType(code), title: TITLE_BY_CODE[code], status, code, instance };
  const safe: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(fields)) {
    if (!RESERVED.has(key) && isSafeValue(value)) safe[key] = value;
  }
  return {
    type: problemType(code),
    title: TITLE_BY_CODE[code],
    status,
    ...(detail === undefined ? {} : { detail }),
    code,
    instance,
    ...safe,
  };
}

/** Primitives and arrays of primitives: nothing nested that could carry more than it says. */
function isSafeValue(value: unknown): boolean {
  const primitive = (v: unknown) => v === null || ["string", "number", "boolean"].includes(typeof v);
  if (primitive(value)) return true;
  return Array.isArray(value) && value.length <= 50 && value.every(primitive);
}

/** Fastify's error codes for requests refused before a handler ran, and ours for them. */
const FRAMEWORK_CODES: Readonly<Record<string, ProblemCode>> = {
  FST_ERR_CTP_INVALID_JSON_BODY: "ERR_VALIDATION",
  FST_ERR_CTP_EMPTY_JSON_BODY: "ERR_VALIDATION",
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: "ERR_VALIDATION",
  FST_ERR_VALIDATION: "ERR_VALIDATION",
  FST_ERR_CTP_BODY_TOO_LARGE: "ERR_PAYLOAD_TOO_LARGE",
  FST_ERR_CTP_INVALID_MEDIA_TYPE: "ERR_UNSUPPORTED_MEDIA_TYPE",
  FST_ERR_NOT_FOUND: "ERR_NOT_FOUND",
};

/** Fixed texts for the framework's refusals (its own messages vary between versions). */
const FRAMEWORK_DETAIL: Readonly<Record<string, string>> = {
  FST_ERR_CTP_INVALID_JSON_BODY: "the request body is not valid JSON",
  FST_ERR_CTP_EMPTY_JSON_BODY: "the request body is empty; send a JSON object (`{}` when there are no fields)",
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: "the request body does not match its Content-Length",
  FST_ERR_VALIDATION: "the request is not valid",
  FST_ERR_CTP_BODY_TOO_LARGE: "the request body is larger than the 64 KiB limit",
  FST_ERR_CTP_INVALID_MEDIA_TYPE: "send the request body as application/json",
  FST_ERR_NOT_FOUND: "no such route",
};

/**
 * The raw HTTP answer to a request Node's HTTP parser refused before any route saw it (headers
 * too large, a malformed request line or header, a request that took too long): problem+json
 * like every other refusal, then the connection is closed.
 */
export function clientErrorResponse(error: { code?: string }, instance: string): string {
  const [code, status, reason, detail]: [ProblemCode, number, string, string] =
    error.code === "HPE_HEADER_OVERFLOW"
      ? [
          "ERR_HEADERS_TOO_LARGE",
          431,
          "Request Header Fields Too Large",
          "the request headers are larger than the server accepts",
        ]
      : error.code === "ERR_HTTP_REQUEST_TIMEOUT" || error.code === "ERR_HTTP_HEADERS_TIMEOUT"
        ? ["ERR_REQUEST_TIMEOUT", 408, "Request Timeout", "the request did not arrive in time"]
        : ["ERR_VALIDATION", 400, "Bad Request", "the request is not valid HTTP"];
  const body = JSON.stringify(problem(code, instance, detail));
  return [
    `HTTP/1.1 ${status} ${reason}`,
    `content-type: ${PROBLEM_CONTENT_TYPE}`,
    `content-length: ${Buffer.byteLength(body)}`,
    `x-request-id: ${instance}`,
    "cache-control: no-store",
    "connection: close",
    "",
    body,
  ].join("\r\n");
}

/** Map any thrown value to the problem the client sees. */
export function toProblem(error: unknown, instance: string): ProblemResponse {
  if (isBreakglassError(error)) {
    const code: ErrorCode = error.code;
    return {
      status: STATUS_BY_CODE[code],
      body: problem(code, instance, error.message, error.detail),
      unexpected: STATUS_BY_CODE[code] >= 500,
    };
  }
  const frameworkCode = fastifyCode(error);
  const mapped = frameworkCode === undefined ? undefined : FRAMEWORK_CODES[frameworkCode];
  if (frameworkCode !== undefined && mapped) {
    const detail = FRAMEWORK_DETAIL[frameworkCode];
    return { status: STATUS_BY_CODE[mapped], body: problem(mapped, instance, detail), unexpected: false };
  }
  // Other refusals of the HTTP layer (a malformed URL, a JSON body with `__proto__`) and a
  // SyntaxError from the JSON parser: the client sent something we cannot read.
  const status = typeof error === "object" && error !== null ? statusOf(error) : undefined;
  if (frameworkCode !== undefined && status !== undefined && status >= 400 && status < 500) {
    return {
      status: 400,
      body: problem("ERR_VALIDATION", instance, "the request is malformed"),
      unexpected: false,
    };
  }
  if (error instanceof SyntaxError && status === 400) {
    return {
      status: 400,
      body: problem("ERR_VALIDATION", instance, "the request body is not valid JSON"),
      unexpected: false,
    };
  }
  return { status: 500, body: problem("ERR_INTERNAL", instance), unexpected: true };
}

function fastifyCode(error: unknown): string | undefined {
  if (typeof error !== "object" || error === null || !("code" in error)) return undefined;
  const code = (error as { code: unknown }).code;
  return typeof code === "string" && code.startsWith("FST_") ? code : undefined;
}

function statusOf(error: object): number | undefined {
  const status = (error as { statusCode?: unknown }).statusCode;
  return typeof status === "number" ? status : undefined;
}
