/**
 * The gateway's side towards the target: open a connection with `sslmode` semantics, send the
 * startup packet, and authenticate as the grant's role (trust, cleartext, md5 or SCRAM-SHA-256,
 * whatever the server asks for). Returns the connected socket with anything already read after
 * authentication, so the session relays from exactly there.
 */
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { readFileSync } from "node:fs";
import net from "node:net";
import tls from "node:tls";
import { hmac, scramKeys } from "../secrets/scram.js";
import { Inbox } from "./inbox.js";
import { errorFields, message, readCString, sslRequest, startupMessage } from "./pg-wire.js";

export { cancelRequest } from "./pg-wire.js";

export type SslMode = "disable" | "allow" | "prefer" | "require" | "verify-ca" | "verify-full";

export interface UpstreamTarget {
  readonly host: string;
  readonly port: number;
  readonly database: string;
  readonly user: string;
  readonly password: string;
  readonly sslmode: SslMode;
  readonly sslrootcert: string | null;
}

/** The parts of a `postgresql://` connection string the gateway connects with. */
export function parseUpstream(dsn: string): UpstreamTarget {
  const u = new URL(dsn);
  if (u.protocol !== "postgresql:" && u.protocol !== "postgres:") throw new Error("not a postgresql:// URL");
  const mode = (u.searchParams.get("sslmode") ?? "prefer") as SslMode;
  if (!["disable", "allow", "prefer", "require", "verify-ca", "verify-full"].includes(mode)) {
    throw new Error(`unknown sslmode ${mode}`);
  }
  return {
    host: u.hostname.replace(/^\[(.*)\]$/, "$1") || "localhost",
    port: Number(u.port || 5432),
    database: decodeURIComponent(u.pathname.replace(/^\//, "")) || decodeURIComponent(u.username),
    user: decodeURIComponent(u.username),
    password: decodeURIComponent(u.password),
    sslmode: mode,
    sslrootcert: u.searchParams.get("sslrootcert"),
  };
}

/** An error the upstream sent (its fields), or a connection problem. */
export class UpstreamError extends Error {
  constructor(
    message: string,
    readonly fields: Readonly<Record<string, string>> | null = null,
  ) {
    super(message);
  }
}

/** Open a socket to the target, negotiating TLS as `sslmode` says. */
export async function openSocket(t: UpstreamTarget, timeoutMs: number): Promise<net.Socket> {
  const raw = net.connect({ host: t.host, port: t.port });
  raw.setNoDelay(true);
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new UpstreamError(`connecting to ${t.host}:${t.port} timed out`)), timeoutMs);
    raw.once("connect", () => {
      clearTimeout(timer);
      resolve();
    });
    raw.once("error", (e) => {
      clearTimeout(timer);
      reject(new UpstreamError(`cannot connect to ${t.host}:${t.port}: ${e.message}`));
    });
  });
  if (t.sslmode === "disable" || t.sslmode === "allow") return raw;
  raw.write(sslRequest());
  const inbox = new Inbox(raw);
  const answer = await inbox.take((b) => (b.length >= 1 ? [b.subarray(0, 1).toString("latin1"), 1] : null), timeoutMs);
  inbox.detach();
  if (answer !== "S") {
    if (t.sslmode === "prefer") return raw;
    raw.destroy();
    throw new UpstreamError(`the target does not offer TLS, and sslmode is ${t.sslmode}`);
  }
  const verify = t.sslmode === "verify-ca" || t.sslmode === "verify-full";
  const secure = tls.connect({
    socket: raw,
    // The name (or IP address) the certificate must match under verify-full.
    host: t.host,
    servername: net.isIP(t.host) ? undefined : t.host,
    rejectUnauthorized: verify,
    ...(t.sslrootcert ? { ca: readFileSync(t.sslrootcert) } : {}),
    ...(t.sslmode === "verify-ca" ? { checkServerIdentity: () => undefined } : {}),
  });
  await new Promise<void>((resolve, reject) => {
    secure.once("secureConnect", () => resolve());
    secure.once("error", (e) => reject(new UpstreamError(`TLS to the target failed: ${e.message}`)));
  });
  secure.setNoDelay(true);
  return secure as unknown as net.Socket;
}

export interface UpstreamSession {
  readonly socket: net.Socket;
  /** ParameterStatus and NoticeResponse messages, and what followed authentication, up to and including ReadyForQuery. */
  readonly greeting: readonly Buffer[];
  readonly backendPid: number;
  readonly backendSecret: number;
  /** Bytes read after ReadyForQuery (normally none). */
  readonly leftover: Buffer;
}

/**
 * Connect and authenticate; read up to the first ReadyForQuery.
 * @throws UpstreamError (with the server's error fields when it refused)
 */
export async function connectUpstream(
  t: UpstreamTarget,
  params: Readonly<Record<string, string>>,
  timeoutMs: number,
): Promise<UpstreamSession> {
  const socket = await openSocket(t, timeoutMs);
  const inbox = new Inbox(socket);
  try {
    socket.write(startupMessage({ ...params, user: t.user, database: t.database }));
    const greeting: Buffer[] = [];
    let pid = 0;
    let secret = 0;
    let scram: { nonce: string; bare: string; serverSignature?: Buffer } | null = null;
    for (;;) {
      const m = await inbox.message(timeoutMs);
      const type = String.fromCharCode(m.type);
      if (type === "E") {
        const f = errorFields(m.body);
        throw new UpstreamError(f.M ?? "the target refused the connection", f);
      }
      if (type === "R") {
        const code = m.body.readInt32BE(0);
        if (code === 0) continue;
        if (code === 3) {
          socket.write(message("p", Buffer.from(`${t.password}\0`, "utf8")));
          continue;
        }
        if (code === 5) {
          const salt = m.body.subarray(4, 8);
          const inner = createHash("md5")
            .update(t.password + t.user)
            .digest("hex");
          const outer = createHash("md5")
            .update(Buffer.concat([Buffer.from(inner), salt]))
            .digest("hex");
          socket.write(message("p", Buffer.from(`md5${outer}\0`, "utf8")));
          continue;
        }
        if (code === 10) {
          const mechanisms: string[] = [];
          let pos = 4;
          while (pos < m.body.length && m.body[pos] !== 0) {
            const [name, next] = readCString(m.body, pos);
            mechanisms.push(name);
            pos = next;
          }
          if (!mechanisms.includes("SCRAM-SHA-256")) {
            throw new UpstreamError(`the target offers no supported SASL mechanism (${mechanisms.join(", ")})`);
          }
          const nonce = randomBytes(18).toString("base64");
          const bare = `n=*,r=${nonce}`;
          scram = { nonce, bare };
          const first = Buffer.from(`n,,${bare}`, "utf8");
          const len = Buffer.alloc(4);
          len.writeInt32BE(first.length, 0);
          socket.write(message("p", Buffer.concat([Buffer.from("SCRAM-SHA-256\0"), len, first])));
          continue;
        }
        if (code === 11 && scram) {
          const serverFirst = m.body.toString("utf8", 4);
          const attrs = new Map(serverFirst.split(",").map((p) => [p.charAt(0), p.slice(2)] as const));
          const r = attrs.get("r") ?? "";
          const salt = Buffer.from(attrs.get("s") ?? "", "base64");
          const iterations = Number(attrs.get("i"));
          if (!r.startsWith(scram.nonce) || !Number.isInteger(iterations) || iterations < 1) {
            throw new UpstreamError("the target's SCRAM answer is malformed");
          }
          const { clientKey, storedKey, serverKey } = scramKeys(t.password, salt, iterations);
          const withoutProof = `c=biws,r=${r}`;
          const authMessage = `${scram.bare},${serverFirst},${withoutProof}`;
          const signature = hmac(storedKey, authMessage);
          const proof = Buffer.alloc(clientKey.length);
          for (let i = 0; i < proof.length; i++) proof[i] = (clientKey[i] as number) ^ (signature[i] as number);
          scram.serverSignature = hmac(serverKey, authMessage);
          socket.write(message("p", Buffer.from(`${withoutProof},p=${proof.toString("base64")}`, "utf8")));
          continue;
        }
        if (code === 12 && scram?.serverSignature) {
          const v = Buffer.from(m.body.toString("utf8", 4).replace(/^v=/, ""), "base64");
          if (v.length !== scram.serverSignature.length || !timingSafeEqual(v, scram.serverSignature)) {
            throw new UpstreamError("the target could not prove it knows the password (SCRAM server signature)");
          }
          continue;
        }
        throw new UpstreamError(`the target asks for an authentication method the gateway does not speak (${code})`);
      }
      if (type === "K") {
        pid = m.body.readInt32BE(0);
        secret = m.body.readInt32BE(4);
        continue;
      }
      greeting.push(Buffer.from(m.raw));
      if (type === "Z") break;
    }
    const leftover = inbox.detach();
    return { socket, greeting, backendPid: pid, backendSecret: secret, leftover };
  } catch (e) {
    inbox.detach();
    socket.destroy();
    throw e;
  }
}
