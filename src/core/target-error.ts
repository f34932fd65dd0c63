/**
 * What a target said when it failed, made fit to show the holder, the approvers, the audit log
 * and the alarm channels: secrets that error texts are known to carry (a connection URL's
 * password, `password=…` settings, bearer tokens, private keys, AWS secret keys) are replaced by
 * `[redacted]`, control characters by spaces, and the text is cut to a readable length. The full
 * text never leaves the connector's own log line.
 */

const MAX_LENGTH = 600;

const RULES: readonly (readonly [RegExp, string | ((m: string) => string)])[] = [
  // PEM private keys (SSH CA keys, TLS keys) echoed by a failing command.
  [/-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----[\s\S]*?(-----END [A-Z0-9 ]*PRIVATE KEY-----|$)/g, "[redacted private key]"],
  // scheme://user:password@host
  [/\b([a-z][a-z0-9+.-]*:\/\/[^\s:/@]+):[^\s@/]+@/gi, "$1:[redacted]@"],
  // password=…, pwd: …, secret=…, token=…, api_key=…, PASSWORD '…' (SQL)
  [
    /\b((?:[a-z0-9_-]*(?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key))["']?\s*(?:[=:]|\s(?=["']))\s*)("[^"]*"|'[^']*'|[^\s,;&]+)/gi,
    "$1[redacted]",
  ],
  [/\b(bearer|basic)\s+[a-z0-9._~+/=-]{8,}/gi, "$1 [redacted]"],
  // AWS secret access keys: 40 characters of mixed-case base64 (not a hex digest or a fingerprint).
  [
    /(?<![A-Za-z0-9/+=])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])/g,
    (m) => (/[a-z]/.test(m) && /[A-Z]/.test(m) && /[0-9/+]/.test(m) ? "[redacted]" : m),
  ],
];

export function sanitizeTargetError(text: string): string {
  let out = text;
  for (const [pattern, replacement] of RULES) {
    out = typeof replacement === "string" ? out.replace(pattern, replacement) : out.replace(pattern, replacement);
  }
  // biome-ignore lint/suspicious/noControlCharactersInRegex: that is what is removed
  out = out.replace(/[\u0000-\u001f\u007f-\u009f]+/g, " ").trim();
  return out.length > MAX_LENGTH ? `${out.slice(0, MAX_LENGTH - 1)}…` : out;
}
