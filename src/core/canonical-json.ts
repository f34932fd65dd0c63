/**
 * JSON Canonicalization Scheme (RFC 8785): object keys sorted by UTF-16 code units, no
 * whitespace, numbers and strings serialised as ECMAScript's JSON.stringify does (which is
 * what the RFC specifies). The audit chain hashes these exact bytes.
 *
 * @see https://www.rfc-editor.org/rfc/rfc8785
 * @throws ERR_VALIDATION for values JSON cannot represent (non-finite numbers, bigint, functions).
 */
import { BreakglassError } from "./errors.js";

export function canonicalJson(value: unknown): string {
  if (value === null) return "null";
  switch (typeof value) {
    case "boolean":
      return value ? "true" : "false";
    case "string":
      return JSON.stringify(value);
    case "number":
      if (!Number.isFinite(value)) {
        throw new BreakglassError("ERR_VALIDATION", `cannot canonicalise the number ${value}`);
      }
      return JSON.stringify(value);
    case "object": {
      if (Array.isArray(value)) return `[${value.map((v) => canonicalJson(v ?? null)).join(",")}]`;
      const record = value as Record<string, unknown>;
      const keys = Object.keys(record)
        .filter((k) => record[k] !== undefined)
        .sort();
      return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(record[k])}`).join(",")}}`;
    }
    default:
      throw new BreakglassError("ERR_VALIDATION", `cannot canonicalise a ${typeof value}`);
  }
}
