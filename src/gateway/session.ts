/**
 * One client's session through the gateway, once it is let in: the relay between the client's
 * socket and the target's (framed in place one way, scanned in place the other, each side paused
 * while the other cannot take more), the statement guard applied to every statement before it is
 * forwarded, every statement recorded, and the session's end — at the grant's end (a timer),
 * when either side closes, or when recording fails — with its summary.
 *
 * The handshake that authenticates the client and opens the target's connection is the
 * gateway's (pg-gateway.ts); it fills in the session's identity and guard, then calls `relay`.
 */
import { randomBytes } from "node:crypto";
import type net from "node:net";
import { statementEntry } from "../core/recording-digest.js";
import type { StatementRecord } from "../core/records.js";
import { ClientFramer } from "./client-framing.js";
import { errorResponse, message, readBindParams, readCString } from "./pg-wire.js";
import type { Recorder } from "./recorder.js";
import { ServerScanner } from "./server-scanner.js";
import { blockedStatement, type GuardVerdict } from "./statement-guard.js";
import { StatementTracker } from "./statement-tracker.js";
import type { UpstreamTarget } from "./upstream.js";

export interface SessionSummary {
  readonly grantId: string;
  readonly sessionId: string;
  readonly user: string;
  readonly from: string | null;
  readonly application: string | null;
  readonly startedAt: number;
  readonly endedAt: number;
  /** Statements recorded (their seal — the digest over them as stored — is the recorder's: `Recorder.seal`). */
  readonly statements: number;
  readonly errors: number;
  readonly bytesToClient: number;
  readonly bytesFromClient: number;
  readonly endReason: string;
}

/** A statement the guard refused (it was replaced by one raising the guard's error at the target). */
export interface BlockedStatement {
  readonly grantId: string;
  readonly sessionId: string;
  readonly statement: string;
  readonly reason: string;
}

export interface SessionDeps {
  readonly now: () => number;
  readonly recorder: Pick<Recorder, "record" | "failing">;
  readonly onBlocked: (b: BlockedStatement) => void;
  /** The end of a session that was let in (`started`), once. */
  readonly onSessionEnd: (summary: SessionSummary) => void;
  readonly log: (msg: string, fields?: Record<string, unknown>) => void;
  /** The session closed, let in or not: the gateway forgets it. */
  readonly onClosed: (session: Session) => void;
}

/** libpq's large-object functions (lo_open … lo_truncate64), which it calls by OID. */
const LARGE_OBJECT_FUNCTIONS = new Set([715, 952, 953, 954, 955, 956, 957, 958, 964, 1004, 3170, 3171, 3172]);
/** Longest parameter value kept in a statement's record (characters; longer ones are cut and marked). */
const MAX_PARAM_CHARS = 1024;

export class Session {
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
  readonly startedAt: number;
  endsAt: number | null = null;
  private timer: NodeJS.Timeout | null = null;
  private bytesToClient = 0;
  private bytesFromClient = 0;
  /** The recording rules; made when the session relays (its grant is known by then). */
  private tracker: StatementTracker | null = null;
  private readonly prepared = new Map<string, string>();
  private readonly portals = new Map<
    string,
    { stmt: string; text: string; params: (string | null)[]; blocked: boolean }
  >();
  /** Prepared statements the guard refused: their Parse was replaced, their Binds carry no values. */
  private readonly blockedStatements = new Set<string>();
  guard: ((sql: string) => GuardVerdict) | null = null;
  /** The role has a guard: FunctionCall messages are refused (but libpq's large-object calls). */
  fastpath = false;
  redact = false;
  role = "";

  /**
   * @param client the client's socket (replaced by its TLS socket when the client asks for TLS)
   * @param pid, secret the cancel key the client is given (the gateway's, not the target's)
   */
  constructor(
    public client: net.Socket,
    readonly pid: number,
    readonly secret: number,
    private readonly deps: SessionDeps,
  ) {
    this.from = client.remoteAddress ?? null;
    this.startedAt = deps.now();
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
    this.tracker?.abort(reason);
    this.deps.onClosed(this);
    // Only a session that was let in has an end to record (a refused login has no session).
    if (this.started) {
      this.deps.onSessionEnd({
        grantId: this.grantId,
        sessionId: this.id,
        user: this.user,
        from: this.from,
        application: this.application,
        startedAt: this.startedAt,
        endedAt: this.deps.now(),
        statements: this.tracker?.statements ?? 0,
        errors: this.tracker?.errors ?? 0,
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
    const wait = Math.min(Math.max(0, endsAt - this.deps.now()), 3_600_000);
    this.timer = setTimeout(() => {
      if (this.deps.now() >= endsAt) this.expire("expired");
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

  /**
   * Relay between the client and the target's connection, from the bytes each side sent during
   * the handshake that nobody read yet.
   */
  relay(upstream: net.Socket, clientLeftover: Buffer, upstreamLeftover: Buffer): void {
    const client = this.client;
    const tracker = new StatementTracker({
      grantId: this.grantId,
      sessionId: this.id,
      now: this.deps.now,
      record: (r) => this.record(r),
    });
    this.tracker = tracker;
    const scanner = new ServerScanner(tracker);
    const framer = new ClientFramer((type, body) => this.inspect(tracker, type, body));
    // Client → target: messages framed in place (client-framing.ts).
    const fromClient = (chunk: Buffer) => {
      this.bytesFromClient += chunk.length;
      try {
        if (!framer.push(chunk, upstream)) return;
      } catch (e) {
        this.close("protocol error", { code: "08P01", text: `invalid message from the client: ${String(e)}` });
        return;
      }
      if (upstream.writableNeedDrain) client.pause();
    };
    // Target → client: forwarded as it came, then scanned in place — the client has its answer
    // before the statement's record is made (the record waits in memory either way).
    const fromUpstream = (chunk: Buffer) => {
      const full = !client.write(chunk);
      this.bytesToClient += chunk.length;
      tracker.sent(chunk.length);
      scanner.scan(chunk);
      if (full) upstream.pause();
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
    upstream.on("error", (e) => this.deps.log("gateway upstream error", { session: this.id, error: e.message }));
    if (upstreamLeftover.length > 0) fromUpstream(upstreamLeftover);
    if (clientLeftover.length > 0) fromClient(clientLeftover);
    client.resume();
    upstream.resume();
  }

  private record(r: StatementRecord): void {
    this.deps.recorder.record(r, statementEntry(r));
  }

  /** A statement the guard refuses: reported, and replaced by one raising the guard's error. */
  private block(text: string, reason: string): string {
    this.deps.onBlocked({ grantId: this.grantId, sessionId: this.id, statement: text, reason });
    return blockedStatement(reason, this.role);
  }

  /**
   * Inspect one client message before it is forwarded: true to forward it as it is, a buffer to
   * forward instead (a blocked statement's replacement), false when the session must stop.
   */
  private inspect(tracker: StatementTracker, type: number, body: Buffer): boolean | Buffer {
    switch (type) {
      case 0x51: {
        // Q: simple query
        if (this.deps.recorder.failing) return this.refuseUnrecorded();
        const text = readCString(body, 0)[0];
        const verdict = this.guard?.(text);
        if (verdict && !verdict.allowed) {
          tracker.query(text, true);
          return message("Q", Buffer.from(`${this.block(text, verdict.reason)}\0`, "utf8"));
        }
        tracker.query(text, false);
        return true;
      }
      case 0x50: {
        // P: Parse (name, text, parameter types)
        // Recorded (kind `prepare`) unless an Execute of it follows before the server answers it
        // (then the Execute is the record): a statement only prepared, or one the server refuses
        // to prepare, is in the recording too.
        if (this.deps.recorder.failing) return this.refuseUnrecorded();
        const [name, at] = readCString(body, 0);
        const text = readCString(body, at)[0];
        this.prepared.set(name, text);
        const verdict = this.guard?.(text);
        if (verdict && !verdict.allowed) {
          this.blockedStatements.add(name);
          const replacement = this.block(text, verdict.reason);
          // The replacement parses; its error is what an Execute of it would raise.
          tracker.parse(name, text, `42501 Breakglass guard: ${verdict.reason} for role ${this.role}`);
          return message("P", Buffer.concat([Buffer.from(`${name}\0${replacement}\0`, "utf8"), Buffer.alloc(2)]));
        }
        this.blockedStatements.delete(name);
        tracker.parse(name, text, null);
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
          params: readBindParams(body, b, this.redact, MAX_PARAM_CHARS),
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
        if (this.deps.recorder.failing) return this.refuseUnrecorded();
        const portal = this.portals.get(readCString(body, 0)[0]);
        tracker.execute(
          portal?.text ?? "<unknown portal>",
          portal?.params ?? null,
          portal?.stmt ?? null,
          portal?.blocked === true,
        );
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
        if (this.deps.recorder.failing) return this.refuseUnrecorded();
        const oid = body.readInt32BE(0);
        const text = `<function call, oid ${oid}>`;
        if (this.fastpath && !LARGE_OBJECT_FUNCTIONS.has(oid)) {
          tracker.functionCall(text, true);
          const reason = `a function call by OID (${oid}) is not allowed (the guard cannot read it)`;
          // Answered as a failed call is: ErrorResponse, then ReadyForQuery.
          return message("Q", Buffer.from(`${this.block(text, reason)}\0`, "utf8"));
        }
        tracker.functionCall(text, false);
        return true;
      }
      case 0x58: // X: Terminate
        this.endReason = "client terminated";
        return true;
      default:
        return true;
    }
  }

  private refuseUnrecorded(): boolean {
    this.close("recording storage unavailable", {
      code: "57P03",
      text: "Breakglass cannot record statements right now (recording storage unavailable); nothing was run unrecorded — reconnect when it is back",
    });
    return false;
  }
}
