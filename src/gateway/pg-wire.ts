/**
 * The PostgreSQL frontend/backend protocol (version 3.0), as far as the gateway needs it: the
 * untyped startup packets, typed message framing, and the few messages the gateway writes itself
 * (authentication, errors, ReadyForQuery, BackendKeyData). Everything else is relayed as bytes.
 * Reference: https://www.postgresql.org/docs/current/protocol-message-formats.html
 */

export const PROTOCOL_3 = 196608;
export const SSL_REQUEST = 80877103;
export const GSSENC_REQUEST = 80877104;
export const CANCEL_REQUEST = 80877102;

/** A startup-phase packet: Int32 length, Int32 code, body. */
export type StartupPacket =
  | { readonly kind: "ssl" }
  | { readonly kind: "gssenc" }
  | { readonly kind: "cancel"; readonly pid: number; readonly secret: number }
  | { readonly kind: "startup"; readonly params: Readonly<Record<string, string>> }
  | { readonly kind: "unsupported"; readonly code: number };

/** Largest startup packet accepted (PostgreSQL's own limit is 10,000 bytes). */
const MAX_STARTUP = 10_000;
/** Largest message the gateway itself parses from a client (a statement with its parameters). */
export const MAX_CLIENT_MESSAGE = 64 * 1024 * 1024;

/**
 * Read one startup packet from the front of `buf`.
 * @returns the packet and its byte length, null if incomplete, or a string saying why it is bad
 */
export function readStartup(buf: Buffer): { packet: StartupPacket; size: number } | null | string {
  if (buf.length < 8) return null;
  const len = buf.readInt32BE(0);
  if (len < 8 || len > MAX_STARTUP) return `invalid startup packet length ${len}`;
  if (buf.length < len) return null;
  const code = buf.readInt32BE(4);
  const size = len;
  if (code === SSL_REQUEST) return { packet: { kind: "ssl" }, size };
  if (code === GSSENC_REQUEST) return { packet: { kind: "gssenc" }, size };
  if (code === CANCEL_REQUEST) {
    if (len !== 16) return "invalid cancel request";
    return { packet: { kind: "cancel", pid: buf.readInt32BE(8), secret: buf.readInt32BE(12) }, size };
  }
  if (code !== PROTOCOL_3) return { packet: { kind: "unsupported", code }, size };
  const params: Record<string, string> = {};
  let pos = 8;
  while (pos < len - 1) {
    const keyEnd = buf.indexOf(0, pos);
    if (keyEnd < 0 || keyEnd >= len) return "malformed startup parameters";
    const key = buf.toString("utf8", pos, keyEnd);
    if (key === "") break;
    const valEnd = buf.indexOf(0, keyEnd + 1);
    if (valEnd < 0 || valEnd >= len) return "malformed startup parameters";
    params[key] = buf.toString("utf8", keyEnd + 1, valEnd);
    pos = valEnd + 1;
  }
  return { packet: { kind: "startup", params }, size };
}

export function startupMessage(params: Readonly<Record<string, string>>): Buffer {
  const parts: Buffer[] = [];
  for (const [k, v] of Object.entries(params)) parts.push(Buffer.from(`${k}\0${v}\0`, "utf8"));
  parts.push(Buffer.from([0]));
  const body = Buffer.concat(parts);
  const head = Buffer.alloc(8);
  head.writeInt32BE(body.length + 8, 0);
  head.writeInt32BE(PROTOCOL_3, 4);
  return Buffer.concat([head, body]);
}

export function sslRequest(): Buffer {
  const b = Buffer.alloc(8);
  b.writeInt32BE(8, 0);
  b.writeInt32BE(SSL_REQUEST, 4);
  return b;
}

export function cancelRequest(pid: number, secret: number): Buffer {
  const b = Buffer.alloc(16);
  b.writeInt32BE(16, 0);
  b.writeInt32BE(CANCEL_REQUEST, 4);
  b.writeInt32BE(pid, 8);
  b.writeInt32BE(secret, 12);
  return b;
}

/** A typed message: type byte, Int32 length (including itself), body. */
export function message(type: string, body: Buffer = Buffer.alloc(0)): Buffer {
  const out = Buffer.allocUnsafe(5 + body.length);
  out[0] = type.charCodeAt(0);
  out.writeInt32BE(body.length + 4, 1);
  body.copy(out, 5);
  return out;
}

const int32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n, 0);
  return b;
};
const cstr = (s: string) => Buffer.from(`${s}\0`, "utf8");

export const authOk = () => message("R", int32(0));
export const authSasl = (mechanisms: readonly string[]) =>
  message("R", Buffer.concat([int32(10), ...mechanisms.map(cstr), Buffer.from([0])]));
export const authSaslContinue = (data: string) => message("R", Buffer.concat([int32(11), Buffer.from(data, "utf8")]));
export const authSaslFinal = (data: string) => message("R", Buffer.concat([int32(12), Buffer.from(data, "utf8")]));
export const backendKeyData = (pid: number, secret: number) => message("K", Buffer.concat([int32(pid), int32(secret)]));
export const readyForQuery = (status: "I" | "T" | "E") => message("Z", Buffer.from(status, "latin1"));

/** An ErrorResponse (or NoticeResponse with `type` "N"): severity, SQLSTATE, message, optional hint. */
export function errorResponse(
  severity: "ERROR" | "FATAL" | "NOTICE" | "WARNING",
  code: string,
  text: string,
  hint?: string,
  type: "E" | "N" = "E",
): Buffer {
  const fields = [
    Buffer.from("S"),
    cstr(severity),
    Buffer.from("V"),
    cstr(severity),
    Buffer.from("C"),
    cstr(code),
    Buffer.from("M"),
    cstr(text),
    ...(hint ? [Buffer.from("H"), cstr(hint)] : []),
    Buffer.from([0]),
  ];
  return message(type, Buffer.concat(fields));
}

/** The fields of an ErrorResponse/NoticeResponse body, by their one-letter codes. */
export function errorFields(body: Buffer): Record<string, string> {
  const out: Record<string, string> = {};
  let pos = 0;
  while (pos < body.length && body[pos] !== 0) {
    const code = String.fromCharCode(body[pos] as number);
    const end = body.indexOf(0, pos + 1);
    if (end < 0) break;
    out[code] = body.toString("utf8", pos + 1, end);
    pos = end + 1;
  }
  return out;
}

/** A NUL-terminated string at `pos`, and the position after it. */
export function readCString(body: Buffer, pos: number): [string, number] {
  const end = body.indexOf(0, pos);
  if (end < 0) return [body.toString("utf8", pos), body.length];
  return [body.toString("utf8", pos, end), end + 1];
}

/**
 * The parameter values of a Bind message body from `start` (its format codes, then its values),
 * as text — binary values in hex —, each capped at `maxChars` (then marked "…"); or each
 * `<redacted>`. A NULL stays null.
 */
export function readBindParams(body: Buffer, start: number, redact: boolean, maxChars: number): (string | null)[] {
  let pos = start;
  const nFormats = body.readInt16BE(pos);
  pos += 2;
  const formats: number[] = [];
  for (let i = 0; i < nFormats; i++, pos += 2) formats.push(body.readInt16BE(pos));
  const n = body.readInt16BE(pos);
  pos += 2;
  const out: (string | null)[] = [];
  for (let i = 0; i < n; i++) {
    const len = body.readInt32BE(pos);
    pos += 4;
    if (len < 0) {
      out.push(null);
      continue;
    }
    if (redact) {
      out.push("<redacted>");
      pos += len;
      continue;
    }
    const binary = (nFormats === 1 ? formats[0] : formats[i]) === 1;
    const end = Math.min(pos + len, pos + maxChars);
    const text = binary ? `\\x${body.toString("hex", pos, end)}` : body.toString("utf8", pos, end);
    out.push(len > maxChars ? `${text}…` : text);
    pos += len;
  }
  return out;
}
