/**
 * The PostgreSQL gateway: a listener of the broker that standard clients (psql, drivers,
 * pgbench) connect to with a grant's gateway login. It authenticates the client (SCRAM-SHA-256
 * against a stored verifier), checks the grant is active, connects to the target as the grant's
 * role, and relays the session byte for byte — recording every statement on the way, closing the
 * session at the grant's end with a FATAL the client can read, and mapping cancel requests to the
 * target's backend.
 *
 * Relaying: client → target is split into messages (statements are small) so each can be
 * inspected and recorded before it is forwarded; target → client is scanned in place (only
 * message headers, and the bodies of CommandComplete, ErrorResponse and ReadyForQuery, are read)
 * and forwarded chunk by chunk. Either side writing faster than the other can take pauses the
 * sender (bounded memory for any result size).
 */
import { randomBytes, randomInt } from "node:crypto";
import net from "node:net";
import tls from "node:tls";
import { sha256 } from "../adapters/node-crypto.js";
import type { GuardRules } from "../core/model.js";
import { digestStep, EMPTY_RECORDING_DIGEST, statementEntry } from "../core/recording-digest.js";
import type { StatementRecord } from "../core/records.js";
import { parseVerifier, ScramServer } from "../secrets/scram.js";
import { Inbox } from "./inbox.js";
import {
  authOk,
  authSasl,
  authSaslContinue,
  authSaslFinal,
  backendKeyData,
  errorFields,
  errorResponse,
  MAX_CLIENT_MESSAGE,
  message,
  readCString,
  readStartup,
  type StartupPacket,
} from "./pg-wire.js";
import type { Recorder } from "./recorder.js";
import {
  blockedStatement,
  decideStartup,
  GATEWAY_RULES,
  type GuardVerdict,
  loadParser,
  sessionGuard,
} from "./statement-guard.js";
import {
  cancelRequest,
  connectUpstream,
  openSocket,
  parseUpstream,
  UpstreamError,
  type UpstreamTarget,
} from "./upstream.js";

export interface GatewayLoginInfo {
  readonly grantId: string;
  readonly verifier: string;
  /** The target connection string (with the grant role's password), opened for this session. */
  readonly upstream: string;
}

export interface GrantWindow {
  readonly active: boolean;
  readonly endsAt: number | null;
  /** Why the grant is no longer active, for the client's FATAL message (`expired`, `revoked`…). */
  readonly ended: string | null;
}

export interface SessionSummary {
  readonly grantId: string;
  readonly sessionId: string;
  readonly user: string;
  readonly from: string | null;
  readonly application: string | null;
  readonly startedAt: number;
  readonly endedAt: number;
  readonly statements: number;
  /** Digest of every statement recorded, in order (core/recording-digest.ts): sealed into the end event. */
  readonly digest: string;
  readonly errors: number;
  readonly bytesToClient: number;
  readonly bytesFromClient: number;
  readonly endReason: string;
}

export interface GatewayDeps {
  readonly host: string;
  readonly port: number;
  readonly tls: { readonly cert: Buffer; readonly key: Buffer } | null;
  /** Refuse clients that do not ask for TLS (default when a certificate is configured). */
  readonly requireTls: boolean;
  readonly findLogin: (user: string) => Promise<GatewayLoginInfo | null>;
  readonly grantWindow: (grantId: string) => Promise<GrantWindow>;
  readonly recorder: Recorder;
  /** Called when a session is in (after upstream authentication), before it relays; a throw refuses it. */
  readonly onSessionStart: (s: {
    grantId: string;
    sessionId: string;
    user: string;
    from: string | null;
    application: string | null;
  }) => Promise<void>;
  readonly onSessionEnd: (summary: SessionSummary) => void;
  /** The role's statement guard, for a grant (null rules: no guard). */
  readonly guardFor: (
    grantId: string,
  ) => Promise<{ readonly role: string; readonly rules: GuardRules | null; readonly redactParameters: boolean }>;
  /** A statement the guard refused (it was replaced by one raising the guard's error at the target). */
  readonly onBlocked: (b: { grantId: string; sessionId: string; statement: string; reason: string }) => void;
  readonly now: () => number;
  readonly log: (msg: string, fields?: Record<string, unknown>) => void;
  /** How often open sessions' grants are checked (default 250 ms). */
  readonly checkMs?: number;
  readonly connectTimeoutMs?: number;
}

export interface PgGateway {
  listen(): Promise<{ host: string; port: number }>;
  /** Close every session of a grant now (its end was recorded). */
  cutGrant(grantId: string, why: string): void;
  readonly sessionCount: number;
  close(): Promise<void>;
}

const HANDSHAKE_MS = 15_000;

/**
 * Settings of every upstream session that bound it to the gateway's life: the target checks the
 * gateway's connection every second while a statement runs (PostgreSQL ≥ 14) and probes an idle
 * one with TCP keepalives, so when the broker dies — killed, or its host gone — the backend ends
 * on the target's own: at once when idle, within a second mid-statement (the statement is
 * cancelled and its transaction rolled back), within about 25 s when the host vanished without
 * closing the connection.
 */
export const SESSION_BOUNDS: Readonly<Record<string, string>> = {
  client_connection_check_interval: "1s",
  tcp_keepalives_idle: "10",
  tcp_keepalives_interval: "5",
  tcp_keepalives_count: "3",
};

/** libpq's large-object functions (lo_open … lo_truncate64), which it calls by OID. */
const LARGE_OBJECT_FUNCTIONS = new Set([715, 952, 953, 954, 955, 956, 957, 958, 964, 1004, 3170, 3171, 3172]);

/**
 * The database a client asked for, or null for "the default". PostgreSQL reads a startup packet
 * without `database` as the user's own name, and libpq, psql and `pg` fill a missing dbname with
 * the user name before they send it: so an absent, empty or user-named database is the default,
 * the target's configured database.
 */
export function askedDatabase(params: Readonly<Record<string, string>>, user: string): string | null {
  const db = params.database;
  return db === undefined || db === "" || db === user ? null : db;
}

/** The client's startup parameters the gateway passes on (all but user and database). */
const forwardedParams = (params: Readonly<Record<string, string>>): Record<string, string> => {
  const forward: Record<string, string> = {};
  for (const [k, v] of Object.entries(params)) if (k !== "user" && k !== "database") forward[k] = v;
  return forward;
};

/**
 * The rules of a gateway session: the role's guard, plus two rules always — `login_credential`
 * (a holder of a gateway login has no direct credential and must not be able to make one) and
 * `session_bounds` (nor disarm the settings that end the session at the target when the gateway
 * is gone) — and its own role among those `SET ROLE` may name.
 */
export function gatewayRules(rules: GuardRules | null, user: string): GuardRules {
  const base = rules ?? { named: [], deny: [], denySchemas: [], setRoles: [] };
  const always = GATEWAY_RULES.filter((r) => !base.named.includes(r));
  return { ...base, named: [...base.named, ...always], setRoles: [...base.setRoles, user] };
}
const MAX_PARAM_CHARS = 1024;
const EMPTY = Buffer.alloc(0);
/** Target messages whose bodies the gateway reads: CommandComplete, ErrorResponse, ReadyForQuery, PortalSuspended, EmptyQueryResponse, ParseComplete. */
const WANTED = new Set([0x43, 0x45, 0x5a, 0x73, 0x49, 0x31]);
/** Client messages the gateway inspects (the rest — Describe, Sync, Flush, CopyData… — pass as they are). */
const INSPECTED = new Set([0x51, 0x50, 0x42, 0x45, 0x43, 0x46, 0x58]);

interface Pending {
  readonly kind: StatementRecord["kind"];
  readonly text: string;
  readonly params: (string | null)[] | null;
  readonly startedAt: number;
  rows: number;
  /** Command tags so far, joined by "; " (null: none yet). */
  tag: string | null;
  error: string | null;
  bytes: number;
  /**
   * A Parse: the statement's name (null for every other message). It is recorded on its own only
   * when no Execute of it came before the server answered it (`executedBy` stays null).
   */
  readonly parse: string | null;
  executedBy: Pending | null;
}

export function createPgGateway(deps: GatewayDeps): PgGateway {
  const sessions = new Map<number, Session>(); // by gateway pid (cancel requests)
  const byGrant = new Map<string, Set<Session>>();
  const connectTimeoutMs = deps.connectTimeoutMs ?? 10_000;
  let server: net.Server | null = null;
  let checker: NodeJS.Timeout | null = null;

  const fatal = (socket: net.Socket, code: string, text: string, hint?: string) => {
    socket.end(errorResponse("FATAL", code, text, hint));
  };

  class Session {
    readonly pid: number;
    readonly secret: number;
    readonly id = `s_${randomBytes(9).toString("base64url")}`;
    grantId = "";
    user = "";
    application: string | null = null;
    readonly from: string | null;
    upstream: net.Socket | null = null;
    target: UpstreamTarget | null = null;
    backendPid = 0;
    backendSecret = 0;
    closed = false;
    /** Let in: recorded as started, relaying. */
    started = false;
    endReason = "client disconnected";
    startedAt = deps.now();
    endsAt: number | null = null;
    timer: NodeJS.Timeout | null = null;
    // Recording state. A statement's seq is given as it is recorded: statements are recorded in
    // the order they were sent, and a Parse covered by its Execute takes none (no gaps).
    seq = 0;
    statementCount = 0;
    /** Folded over each statement as it is recorded, so the end event can seal the recording. */
    digest = EMPTY_RECORDING_DIGEST;
    errorCount = 0;
    bytesToClient = 0;
    bytesFromClient = 0;
    readonly pending: Pending[] = [];
    readonly prepared = new Map<string, string>();
    /** Parses the server has not answered yet, by statement name (an Execute of one covers it). */
    readonly parsing = new Map<string, Pending>();
    readonly portals = new Map<string, { stmt: string; text: string; params: (string | null)[]; blocked: boolean }>();
    /** Prepared statements the guard refused: their Parse was replaced, their Binds carry no values. */
    readonly blockedStatements = new Set<string>();
    guard: ((sql: string) => GuardVerdict) | null = null;
    /** The role has a guard: FunctionCall messages are refused (but libpq's large-object calls). */
    fastpath = false;
    redact = false;
    role = "";
    skipping = false;
    // Target → client scanner state.
    readonly header = Buffer.alloc(5);
    headerLen = 0;
    remaining = 0;
    type = 0;
    /** The current target message's body is wanted (see {@link WANTED}); pieces of one split across chunks. */
    want = false;
    pieces: Buffer[] | null = null;
    /** Client bytes of a message not yet whole (null: none). */
    partial: Buffer | null = null;

    constructor(public client: net.Socket) {
      this.from = client.remoteAddress ?? null;
      let pid = randomInt(1, 2 ** 31 - 1);
      while (sessions.has(pid)) pid = randomInt(1, 2 ** 31 - 1);
      this.pid = pid;
      this.secret = randomInt(0, 2 ** 31 - 1);
    }

    /** Close the session: a FATAL to the client when `why` is given, both sockets ended. */
    close(reason: string, why?: { code: string; text: string }): void {
      if (this.closed) return;
      this.closed = true;
      this.endReason = reason;
      if (this.timer) clearTimeout(this.timer);
      if (why) this.client.end(errorResponse("FATAL", why.code, why.text));
      else this.client.end();
      setTimeout(() => this.client.destroy(), 1000).unref();
      if (this.upstream) {
        this.upstream.end(message("X"));
        this.upstream.destroy();
      }
      for (const p of this.pending.splice(0)) {
        this.settle(p, deps.now(), p.error ?? `session ended (${reason}) before the statement finished`);
      }
      sessions.delete(this.pid);
      const set = byGrant.get(this.grantId);
      set?.delete(this);
      if (set?.size === 0) byGrant.delete(this.grantId);
      // Only a session that was let in has an end to record (a refused login has no session).
      if (this.started) {
        deps.onSessionEnd({
          grantId: this.grantId,
          sessionId: this.id,
          user: this.user,
          from: this.from,
          application: this.application,
          startedAt: this.startedAt,
          endedAt: deps.now(),
          statements: this.statementCount,
          digest: this.digest,
          errors: this.errorCount,
          bytesToClient: this.bytesToClient,
          bytesFromClient: this.bytesFromClient,
          endReason: reason,
        });
      }
    }

    /** Close at the grant's end; re-armed when the end moves (extension). */
    arm(endsAt: number | null): void {
      if (this.timer) clearTimeout(this.timer);
      this.timer = null;
      this.endsAt = endsAt;
      if (endsAt === null) return;
      const wait = Math.min(Math.max(0, endsAt - deps.now()), 3_600_000);
      this.timer = setTimeout(() => {
        if (deps.now() >= endsAt) this.expire("expired");
        else this.arm(endsAt);
      }, wait);
      this.timer.unref();
    }

    expire(ended: string): void {
      this.close(`grant ${ended}`, {
        code: "57P01",
        text: `break-glass grant ${this.grantId} ${ended}: this session is closed`,
      });
    }

    finish(p: Pending, at: number, error: string | null = p.error): void {
      if (error) this.errorCount += 1;
      this.statementCount += 1;
      this.seq += 1;
      const record: StatementRecord = {
        grantId: this.grantId,
        sessionId: this.id,
        seq: this.seq,
        startedAt: p.startedAt,
        endedAt: at,
        kind: p.kind,
        text: p.text,
        params: p.params,
        rows: p.rows,
        tag: p.tag,
        error,
        bytes: p.bytes,
      };
      this.digest = digestStep(sha256, this.digest, statementEntry(record));
      deps.recorder.record(record);
    }

    start(
      kind: Pending["kind"],
      text: string,
      params: (string | null)[] | null,
      parse: string | null = null,
      error: string | null = null,
    ): Pending {
      const p: Pending = {
        kind,
        text,
        params,
        startedAt: deps.now(),
        rows: 0,
        tag: null,
        error,
        bytes: 0,
        parse,
        executedBy: null,
      };
      this.pending.push(p);
      return p;
    }

    /**
     * A pending entry leaves the queue: recorded — but a Parse whose Execute was sent before the
     * server answered it is that Execute's to record (a Parse error goes to the Execute).
     */
    settle(p: Pending, at: number, error: string | null): void {
      if (p.parse !== null) {
        if (this.parsing.get(p.parse) === p) this.parsing.delete(p.parse);
        if (p.executedBy) {
          if (error !== null && p.error === null) p.executedBy.error ??= error;
          return;
        }
      }
      this.finish(p, at, error);
    }

    /** A statement the guard refuses: recorded, reported, and replaced by one raising the guard's error. */
    block(text: string, reason: string): string {
      deps.onBlocked({ grantId: this.grantId, sessionId: this.id, statement: text, reason });
      return blockedStatement(reason, this.role);
    }

    /**
     * Inspect one client message before it is forwarded: true to forward it as it is, a buffer to
     * forward instead (a blocked statement's replacement), false when the session must stop.
     */
    inspect(type: number, body: Buffer): boolean | Buffer {
      switch (type) {
        case 0x51: {
          // Q: simple query
          if (deps.recorder.failing) return this.refuseUnrecorded();
          const text = readCString(body, 0)[0];
          const verdict = this.guard?.(text);
          if (verdict && !verdict.allowed) {
            this.start("blocked", text, null);
            return message("Q", Buffer.from(`${this.block(text, verdict.reason)}\0`, "utf8"));
          }
          this.start("simple", text, null);
          return true;
        }
        case 0x50: {
          // P: Parse (name, text, parameter types)
          // Recorded (kind `prepare`) unless an Execute of it follows before the server answers it
          // (then the Execute is the record): a statement only prepared, or one the server refuses
          // to prepare, is in the recording too.
          if (deps.recorder.failing) return this.refuseUnrecorded();
          const [name, at] = readCString(body, 0);
          const text = readCString(body, at)[0];
          this.prepared.set(name, text);
          const verdict = this.guard?.(text);
          if (verdict && !verdict.allowed) {
            this.blockedStatements.add(name);
            const replacement = this.block(text, verdict.reason);
            // The replacement parses; its error is what an Execute of it would raise.
            const why = `42501 Breakglass guard: ${verdict.reason} for role ${this.role}`;
            this.parsing.set(name, this.start("blocked", text, null, name, why));
            return message("P", Buffer.concat([Buffer.from(`${name}\0${replacement}\0`, "utf8"), Buffer.alloc(2)]));
          }
          this.blockedStatements.delete(name);
          this.parsing.set(name, this.start("prepare", text, null, name));
          return true;
        }
        case 0x42: {
          // B: Bind (portal, statement, formats, values, …)
          const [portal, a] = readCString(body, 0);
          const [stmt, b] = readCString(body, a);
          const blocked = this.blockedStatements.has(stmt);
          this.portals.set(portal, {
            stmt,
            text: this.prepared.get(stmt) ?? `<prepared statement ${stmt}>`,
            params: bindParams(body, b, this.redact),
            blocked,
          });
          // The replacement takes no parameters: bind none (and ask for text results).
          if (blocked) {
            return message("B", Buffer.concat([Buffer.from(`${portal}\0${stmt}\0`, "utf8"), Buffer.alloc(6)]));
          }
          return true;
        }
        case 0x45: {
          // E: Execute (portal, max rows)
          if (deps.recorder.failing) return this.refuseUnrecorded();
          const portal = this.portals.get(readCString(body, 0)[0]);
          const p = this.start(
            portal?.blocked ? "blocked" : "extended",
            portal?.text ?? "<unknown portal>",
            portal?.params ?? null,
          );
          const parse = portal ? this.parsing.get(portal.stmt) : undefined;
          if (parse && parse.executedBy === null) parse.executedBy = p;
          return true;
        }
        case 0x43: {
          // C: Close (S statement | P portal, name)
          const name = readCString(body, 1)[0];
          if (body[0] === 0x53) this.prepared.delete(name);
          else this.portals.delete(name);
          return true;
        }
        case 0x46: {
          // F: FunctionCall (oid, …): a function called by its OID, which no parse tree shows. A
          // guarded role may call only libpq's large-object functions this way.
          if (deps.recorder.failing) return this.refuseUnrecorded();
          const oid = body.readInt32BE(0);
          const text = `<function call, oid ${oid}>`;
          if (this.fastpath && !LARGE_OBJECT_FUNCTIONS.has(oid)) {
            this.start("blocked", text, null);
            const reason = `a function call by OID (${oid}) is not allowed (the guard cannot read it)`;
            // Answered as a failed call is: ErrorResponse, then ReadyForQuery.
            return message("Q", Buffer.from(`${this.block(text, reason)}\0`, "utf8"));
          }
          this.start("function", text, null);
          return true;
        }
        case 0x58: // X: Terminate
          this.endReason = "client terminated";
          return true;
        default:
          return true;
      }
    }

    refuseUnrecorded(): boolean {
      this.close("recording storage unavailable", {
        code: "57P03",
        text: "Breakglass cannot record statements right now (recording storage unavailable); nothing was run unrecorded — reconnect when it is back",
      });
      return false;
    }

    /** A complete interesting message from the target. */
    complete(type: number, body: Buffer): void {
      const head = this.pending[0];
      if (head?.parse != null && (type === 0x31 || type === 0x45)) {
        // 1: ParseComplete, or the ErrorResponse refusing the Parse (the server then skips to Sync).
        this.pending.shift();
        if (type === 0x31) {
          this.settle(head, deps.now(), head.error);
          return;
        }
        const f = errorFields(body);
        this.settle(head, deps.now(), head.error ?? `${f.C ?? ""} ${f.M ?? "error"}`.trim());
        this.skipping = true;
        return;
      }
      switch (type) {
        case 0x43: {
          // C: CommandComplete
          if (!head) return;
          const tag = readCString(body, 0)[0];
          head.tag = head.tag === null ? tag : `${head.tag}; ${tag}`;
          // Rows affected, from the tag's last number (SELECT and FETCH rows were counted as DataRows).
          if (!tag.startsWith("SELECT") && !tag.startsWith("FETCH")) {
            const n = Number(tag.slice(tag.lastIndexOf(" ") + 1));
            if (Number.isFinite(n)) head.rows += n;
          }
          if (head.kind !== "simple") this.done();
          return;
        }
        case 0x73: // s: PortalSuspended
        case 0x49: // I: EmptyQueryResponse
          if (head && head.kind !== "simple") this.done();
          return;
        case 0x45: {
          // E: ErrorResponse
          const f = errorFields(body);
          const text = `${f.C ?? ""} ${f.M ?? "error"}`.trim();
          if (!head) return;
          head.error ??= text;
          if (head.kind !== "simple") {
            this.done();
            // The target skips the rest of the pipeline up to Sync.
            this.skipping = true;
          }
          return;
        }
        case 0x5a: {
          // Z: ReadyForQuery — the end of a simple query, or of a pipeline up to Sync.
          const now = deps.now();
          while (this.pending.length > 0) {
            const p = this.pending[0] as Pending;
            if (p.kind !== "simple" && !this.skipping) break; // an Execute after this Sync
            this.pending.shift();
            this.settle(
              p,
              now,
              p.kind === "simple" ? p.error : (p.error ?? "not run: an earlier message of its pipeline failed"),
            );
            if (p.kind === "simple") break;
          }
          this.skipping = false;
          return;
        }
        default:
          return;
      }
    }

    done(): void {
      const p = this.pending.shift();
      if (p) this.settle(p, deps.now(), p.error);
    }

    /**
     * Scan a chunk from the target in place: message headers, and the bodies worth reading (whole
     * in the chunk: a view of it; split across chunks: gathered). No allocation per message else.
     */
    scan(chunk: Buffer): void {
      let pos = 0;
      const len = chunk.length;
      const head = this.pending[0];
      if (head) head.bytes += len;
      while (pos < len) {
        if (this.remaining === 0) {
          let t: number;
          if (this.headerLen === 0 && len - pos >= 5) {
            t = chunk[pos] as number;
            this.remaining = chunk.readInt32BE(pos + 1) - 4;
            pos += 5;
          } else {
            const take = Math.min(5 - this.headerLen, len - pos);
            chunk.copy(this.header, this.headerLen, pos, pos + take);
            this.headerLen += take;
            pos += take;
            if (this.headerLen < 5) break;
            this.headerLen = 0;
            t = this.header[0] as number;
            this.remaining = this.header.readInt32BE(1) - 4;
          }
          this.type = t;
          if (t === 0x44) {
            // D: DataRow
            const p = this.pending[0];
            if (p) p.rows += 1;
            this.want = false;
          } else {
            this.want = WANTED.has(t);
            if (this.want && this.remaining === 0) {
              this.want = false;
              this.complete(t, EMPTY);
            }
          }
          continue;
        }
        const take = Math.min(this.remaining, len - pos);
        if (this.want) {
          if (take === this.remaining && this.pieces === null) {
            this.want = false;
            this.remaining = 0;
            this.complete(this.type, chunk.subarray(pos, pos + take));
            pos += take;
            continue;
          }
          if (this.pieces === null) this.pieces = [];
          this.pieces.push(chunk.subarray(pos, pos + take));
        }
        pos += take;
        this.remaining -= take;
        if (this.remaining === 0 && this.want && this.pieces) {
          const body = Buffer.concat(this.pieces);
          this.pieces = null;
          this.want = false;
          this.complete(this.type, body);
        }
      }
    }

    relay(upstream: net.Socket, clientLeftover: Buffer, upstreamLeftover: Buffer): void {
      const client = this.client;
      // Client → target: messages framed in place in the chunk; the chunk itself is forwarded when
      // nothing in it was replaced (the common case), in one write. A replaced statement splits
      // it: the writes of one chunk are corked into one.
      const fromClient = (chunk: Buffer) => {
        this.bytesFromClient += chunk.length;
        let buf = chunk;
        if (this.partial !== null) {
          buf = Buffer.concat([this.partial, chunk]);
          this.partial = null;
        }
        const len = buf.length;
        let pos = 0;
        let sent = 0;
        let corked = false;
        try {
          while (len - pos >= 5) {
            const size = buf.readInt32BE(pos + 1);
            if (size < 4 || size > MAX_CLIENT_MESSAGE) throw new Error(`invalid message length ${size}`);
            const end = pos + 1 + size;
            if (end > len) break;
            const type = buf[pos] as number;
            if (INSPECTED.has(type)) {
              const r = this.inspect(type, buf.subarray(pos + 5, end));
              if (r === false) return;
              if (r !== true) {
                if (!corked) {
                  upstream.cork();
                  corked = true;
                }
                if (pos > sent) upstream.write(buf.subarray(sent, pos));
                upstream.write(r);
                sent = end;
              }
            }
            pos = end;
          }
        } catch (e) {
          this.close("protocol error", { code: "08P01", text: `invalid message from the client: ${String(e)}` });
          return;
        }
        if (pos < len) this.partial = buf.subarray(pos);
        if (pos > sent) upstream.write(sent === 0 && pos === len ? buf : buf.subarray(sent, pos));
        if (corked) upstream.uncork();
        if (upstream.writableNeedDrain) client.pause();
      };
      const fromUpstream = (chunk: Buffer) => {
        this.bytesToClient += chunk.length;
        this.scan(chunk);
        if (!client.write(chunk)) upstream.pause();
      };
      client.on("data", fromClient);
      upstream.on("data", fromUpstream);
      client.on("drain", () => upstream.resume());
      upstream.on("drain", () => client.resume());
      upstream.on("close", () => {
        // After the client's Terminate the target closes: that is the client's doing.
        if (!this.closed)
          this.close(this.endReason === "client terminated" ? this.endReason : "target closed the connection");
      });
      upstream.on("error", (e) => deps.log("gateway upstream error", { session: this.id, error: e.message }));
      if (upstreamLeftover.length > 0) fromUpstream(upstreamLeftover);
      if (clientLeftover.length > 0) fromClient(clientLeftover);
      client.resume();
      upstream.resume();
    }
  }

  const handle = async (raw: net.Socket): Promise<void> => {
    raw.setNoDelay(true);
    const session = new Session(raw);
    let socket: net.Socket = raw;
    let inbox = new Inbox(socket);
    raw.on("error", () => {});
    raw.on("close", () => session.close(session.endReason));
    try {
      // 1. Startup: SSL negotiation, then the startup packet (or a cancel request).
      let packet: StartupPacket;
      let tlsOn = false;
      for (;;) {
        packet = await inbox.take((b) => {
          const r = readStartup(b);
          if (typeof r === "string") throw new Error(r);
          return r ? [r.packet, r.size] : null;
        }, HANDSHAKE_MS);
        if (packet.kind === "ssl" && !tlsOn) {
          if (!deps.tls) {
            socket.write("N");
            continue;
          }
          inbox.detach();
          socket.write("S");
          const secure = new tls.TLSSocket(socket, { isServer: true, cert: deps.tls.cert, key: deps.tls.key });
          secure.on("error", () => {});
          socket = secure as unknown as net.Socket;
          session.client = socket;
          inbox = new Inbox(socket);
          socket.resume();
          tlsOn = true;
          continue;
        }
        if (packet.kind === "gssenc") {
          socket.write("N");
          continue;
        }
        break;
      }
      if (packet.kind === "cancel") {
        inbox.detach();
        socket.destroy();
        await cancel(packet.pid, packet.secret);
        return;
      }
      if (packet.kind !== "startup") {
        return fatal(socket, "08P01", "unsupported frontend protocol: Breakglass's gateway speaks protocol 3.0");
      }
      if (deps.requireTls && !tlsOn) {
        return fatal(socket, "28000", "the Breakglass gateway requires TLS", "connect with sslmode=require");
      }
      const params = packet.params;
      const user = params.user ?? "";
      if (params.replication !== undefined) {
        return fatal(socket, "28000", "replication connections are not allowed through the Breakglass gateway");
      }
      session.user = user;
      session.application = params.application_name ?? null;

      // 2. Authenticate the client: SCRAM-SHA-256 against the grant's verifier.
      const login = await deps.findLogin(user);
      const scram = new ScramServer(login ? parseVerifier(login.verifier) : null);
      socket.write(authSasl(["SCRAM-SHA-256"]));
      const initial = await inbox.message(HANDSHAKE_MS);
      if (initial.type !== 0x70) return fatal(socket, "08P01", "expected a SASL initial response");
      const [mechanism, at] = readCString(initial.body, 0);
      if (mechanism !== "SCRAM-SHA-256") {
        return fatal(socket, "28000", `SASL mechanism ${mechanism} is not supported; use SCRAM-SHA-256`);
      }
      const firstLen = initial.body.readInt32BE(at);
      const serverFirst = scram.first(initial.body.toString("utf8", at + 4, at + 4 + firstLen));
      if (serverFirst.startsWith("error:")) return fatal(socket, "08P01", serverFirst.slice(7));
      socket.write(authSaslContinue(serverFirst));
      const response = await inbox.message(HANDSHAKE_MS);
      const serverFinal = response.type === 0x70 ? scram.final(response.body.toString("utf8")) : null;
      if (serverFinal === null || login === null) {
        return fatal(socket, "28P01", `password authentication failed for user "${user}"`);
      }
      socket.write(authSaslFinal(serverFinal));
      // The session runs in the target's database, and nowhere else: a client that names another
      // gets PostgreSQL's own answer (after authentication, as PostgreSQL answers it), not a
      // session in a database it did not ask for. See {@link askedDatabase}.
      const target = parseUpstream(login.upstream);
      const asked = askedDatabase(params, user);
      if (asked !== null && asked !== target.database) {
        return fatal(socket, "3D000", `database "${asked}" does not exist`);
      }
      session.grantId = login.grantId;
      const guard = await deps.guardFor(login.grantId);
      const rules = gatewayRules(guard.rules, user);
      session.role = guard.role;
      session.guard = sessionGuard(rules);
      session.fastpath = guard.rules !== null;
      session.redact = guard.redactParameters;
      const startup = decideStartup(forwardedParams(params), rules);
      if (!startup.allowed) {
        deps.onBlocked({
          grantId: login.grantId,
          sessionId: session.id,
          statement: `startup parameters ${JSON.stringify(forwardedParams(params))}`,
          reason: startup.reason,
        });
        return fatal(socket, "42501", `Breakglass guard: ${startup.reason} for role ${guard.role}`);
      }

      // 3. The grant must be active, and the recording must work.
      const window = await deps.grantWindow(login.grantId);
      if (!window.active) {
        return fatal(socket, "28000", `break-glass grant ${login.grantId} is ${window.ended ?? "not active"}`);
      }
      if (deps.recorder.failing) {
        return fatal(
          socket,
          "57P03",
          "Breakglass cannot record sessions right now (recording storage unavailable); try again shortly",
        );
      }

      // 4. The target, as the grant's role.
      session.target = target;
      let up: Awaited<ReturnType<typeof connectUpstream>>;
      try {
        up = await connectBounded(target, forwardedParams(params));
      } catch (e) {
        const f = e instanceof UpstreamError ? e.fields : null;
        return fatal(
          socket,
          f?.C ?? "08006",
          `the target refused the session: ${e instanceof Error ? e.message : String(e)}`,
        );
      }
      session.upstream = up.socket;
      session.backendPid = up.backendPid;
      session.backendSecret = up.backendSecret;
      if (session.closed) {
        up.socket.destroy();
        return;
      }
      await deps.onSessionStart({
        grantId: login.grantId,
        sessionId: session.id,
        user,
        from: session.from,
        application: session.application,
      });

      // 5. In: the client sees the target's greeting with the gateway's own cancel key.
      session.started = true;
      sessions.set(session.pid, session);
      const set = byGrant.get(login.grantId) ?? new Set<Session>();
      byGrant.set(login.grantId, set);
      set.add(session);
      session.arm(window.endsAt);
      const greeting = up.greeting;
      const last = greeting[greeting.length - 1] as Buffer; // ReadyForQuery
      socket.write(
        Buffer.concat([authOk(), ...greeting.slice(0, -1), backendKeyData(session.pid, session.secret), last]),
      );
      session.relay(up.socket, inbox.detach(), up.leftover);
    } catch (e) {
      inbox.detach();
      if (!session.closed) {
        deps.log("gateway session refused", { session: session.id, error: String(e) });
        session.close("refused", {
          code: "08006",
          text: `Breakglass gateway: ${e instanceof Error ? e.message : String(e)}`,
        });
      }
    }
  };

  /**
   * Connect as the grant's role with settings that make the target end the backend once the
   * gateway is gone (see {@link SESSION_BOUNDS}). A server older than PostgreSQL 14 does not know
   * `client_connection_check_interval`: it is tried again without it.
   */
  const connectBounded = async (
    target: UpstreamTarget,
    forward: Readonly<Record<string, string>>,
  ): Promise<Awaited<ReturnType<typeof connectUpstream>>> => {
    try {
      return await connectUpstream(target, { ...forward, ...SESSION_BOUNDS }, connectTimeoutMs);
    } catch (e) {
      if (
        !(e instanceof UpstreamError) ||
        e.fields?.C !== "42704" ||
        !/client_connection_check_interval/.test(e.message)
      ) {
        throw e;
      }
      const { client_connection_check_interval: _, ...older } = SESSION_BOUNDS;
      return await connectUpstream(target, { ...forward, ...older }, connectTimeoutMs);
    }
  };

  /** A cancel request: forwarded to the target's backend of the session with that key, if any. */
  const cancel = async (pid: number, secret: number): Promise<void> => {
    const s = sessions.get(pid);
    if (!s || s.secret !== secret || !s.target) return; // as PostgreSQL: no answer either way
    try {
      const sock = await openSocket(s.target, connectTimeoutMs);
      sock.end(cancelRequest(s.backendPid, s.backendSecret));
      sock.on("error", () => {});
    } catch (e) {
      deps.log("gateway cancel failed", { session: s.id, error: String(e) });
    }
  };

  /** Every open session's grant, checked: ended → closed; extended → timer moved. */
  const check = async () => {
    for (const [grantId, set] of [...byGrant]) {
      let w: GrantWindow;
      try {
        w = await deps.grantWindow(grantId);
      } catch (e) {
        deps.log("gateway could not check a grant", { grantId, error: String(e) });
        continue;
      }
      for (const s of [...set]) {
        if (!w.active) s.expire(w.ended ?? "ended");
        else if (w.endsAt !== s.endsAt) s.arm(w.endsAt);
      }
    }
  };

  return {
    async listen() {
      await loadParser();
      server = net.createServer((socket) => void handle(socket));
      await new Promise<void>((resolve, reject) => {
        server?.once("error", reject);
        server?.listen(deps.port, deps.host, () => resolve());
      });
      const schedule = () => {
        checker = setTimeout(() => {
          void check().finally(() => {
            if (checker) schedule();
          });
        }, deps.checkMs ?? 250);
        checker.unref();
      };
      schedule();
      const addr = server.address() as net.AddressInfo;
      return { host: addr.address, port: addr.port };
    },
    cutGrant(grantId, why) {
      for (const s of [...(byGrant.get(grantId) ?? [])]) s.expire(why);
    },
    get sessionCount() {
      return sessions.size;
    },
    async close() {
      if (checker) clearTimeout(checker);
      checker = null;
      for (const s of [...sessions.values()])
        s.close("broker shutting down", { code: "57P01", text: "the Breakglass broker is shutting down" });
      await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
      await deps.recorder.close();
    },
  };
}

/** The parameter values of a Bind message, as text (binary values in hex), each capped; or redacted. */
function bindParams(body: Buffer, start: number, redact: boolean): (string | null)[] {
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
    const end = Math.min(pos + len, pos + MAX_PARAM_CHARS);
    const text = binary ? `\\x${body.toString("hex", pos, end)}` : body.toString("utf8", pos, end);
    out.push(len > MAX_PARAM_CHARS ? `${text}…` : text);
    pos += len;
  }
  return out;
}
