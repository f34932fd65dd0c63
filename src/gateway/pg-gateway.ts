/**
 * The PostgreSQL gateway: a listener of the broker that standard clients (psql, drivers,
 * pgbench) connect to with a grant's gateway login. It authenticates the client (SCRAM-SHA-256
 * against a stored verifier), checks the grant is active, connects to the target as the grant's
 * role, and relays the session byte for byte — recording every statement on the way, closing the
 * session at the grant's end with a FATAL the client can read, and mapping cancel requests to the
 * target's backend.
 *
 * This file is the listener and the handshake (startup, TLS, SCRAM, the database, the guard's
 * startup rules, the grant's window, the target's login), cancel requests and the periodic check
 * of open sessions' grants. A session once let in is session.ts: the relay (client-framing.ts one
 * way, server-scanner.ts the other), the guard per statement, and the recording rules
 * (statement-tracker.ts).
 */
import { randomInt } from "node:crypto";
import net from "node:net";
import tls from "node:tls";
import type { GuardRules } from "../core/model.js";
import { parseVerifier, ScramServer } from "../secrets/scram.js";
import { Inbox } from "./inbox.js";
import {
  authOk,
  authSasl,
  authSaslContinue,
  authSaslFinal,
  backendKeyData,
  errorResponse,
  readCString,
  readStartup,
  type StartupPacket,
} from "./pg-wire.js";
import type { Recorder } from "./recorder.js";
import { type BlockedStatement, Session, type SessionSummary } from "./session.js";

export type { SessionSummary } from "./session.js";

import { decideStartup, GATEWAY_RULES, loadParser, sessionGuard } from "./statement-guard.js";
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

/** A session's end with its recording's seal: the digest of every statement stored, and how many. */
export interface SealedSession extends SessionSummary {
  readonly digest: string;
}

/** Where and how the gateway listens. */
export interface GatewaySettings {
  readonly host: string;
  readonly port: number;
  readonly tls: { readonly cert: Buffer; readonly key: Buffer } | null;
  /** Refuse clients that do not ask for TLS (default when a certificate is configured). */
  readonly requireTls: boolean;
  /** How often open sessions' grants are checked (default 250 ms). */
  readonly checkMs?: number;
  readonly connectTimeoutMs?: number;
}

/**
 * What the broker gives its gateway: its store and audit log, as calls and events — messages
 * to the broker's thread when the gateway runs on a thread of its own (gateway-thread.ts).
 */
export interface GatewayHost {
  readonly findLogin: (user: string) => Promise<GatewayLoginInfo | null>;
  readonly grantWindow: (grantId: string) => Promise<GrantWindow>;
  /** Called when a session is in (after upstream authentication), before it relays; a throw refuses it. */
  readonly onSessionStart: (s: {
    grantId: string;
    sessionId: string;
    user: string;
    from: string | null;
    application: string | null;
  }) => Promise<void>;
  /**
   * A session that was let in ended, and every statement of it is stored: its summary and seal
   * (so a seal never covers statements still in memory; while storage refuses them the gateway
   * waits and tries again).
   */
  readonly onSessionEnd: (session: SealedSession) => void;
  /** The role's statement guard, for a grant (null rules: no guard). */
  readonly guardFor: (
    grantId: string,
  ) => Promise<{ readonly role: string; readonly rules: GuardRules | null; readonly redactParameters: boolean }>;
  /** A statement the guard refused (it was replaced by one raising the guard's error at the target). */
  readonly onBlocked: (b: BlockedStatement) => void;
  readonly log: (msg: string, fields?: Record<string, unknown>) => void;
}

export interface GatewayDeps extends GatewaySettings, GatewayHost {
  /** The gateway's recorder (closed with the gateway). */
  readonly recorder: Recorder;
  readonly now: () => number;
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

export function createPgGateway(deps: GatewayDeps): PgGateway {
  const sessions = new Map<number, Session>(); // by gateway pid (cancel requests)
  const byGrant = new Map<string, Set<Session>>();
  const connectTimeoutMs = deps.connectTimeoutMs ?? 10_000;
  let server: net.Server | null = null;
  let checker: NodeJS.Timeout | null = null;

  /** A session closed: no longer reachable by its cancel key or its grant. */
  const forget = (session: Session) => {
    if (sessions.get(session.pid) === session) sessions.delete(session.pid);
    const set = byGrant.get(session.grantId);
    set?.delete(session);
    if (set?.size === 0) byGrant.delete(session.grantId);
  };

  /**
   * A session ended: its recording is sealed once its statements are stored — the recorder
   * writes what it holds first, and while storage refuses it this waits and tries again (a crash
   * meanwhile leaves the recording unsealed, as any open one).
   */
  const sealing = new Set<Promise<void>>();
  const seal = (s: SessionSummary): void => {
    const p = sealed(s).finally(() => sealing.delete(p));
    sealing.add(p);
  };
  const sealed = async (s: SessionSummary): Promise<void> => {
    for (let wait = 250; ; wait = Math.min(wait * 2, 10_000)) {
      try {
        const sealed = await deps.recorder.seal(s.sessionId);
        deps.onSessionEnd({ ...s, statements: sealed.statements, digest: sealed.digest });
        return;
      } catch {
        await new Promise((r) => setTimeout(r, wait).unref());
      }
    }
  };

  const fatal = (socket: net.Socket, code: string, text: string, hint?: string) => {
    socket.end(errorResponse("FATAL", code, text, hint));
  };

  const handle = async (raw: net.Socket): Promise<void> => {
    raw.setNoDelay(true);
    let pid = randomInt(1, 2 ** 31 - 1);
    while (sessions.has(pid)) pid = randomInt(1, 2 ** 31 - 1);
    const session = new Session(raw, pid, randomInt(0, 2 ** 31 - 1), {
      now: deps.now,
      recorder: deps.recorder,
      onBlocked: deps.onBlocked,
      onSessionEnd: seal,
      log: deps.log,
      onClosed: forget,
    });
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
      // The sessions just closed are sealed once their statements are written (a while, at most,
      // when storage refuses them: then they stay unsealed, as after a crash).
      const grace = new Promise<void>((r) => setTimeout(r, 5_000).unref());
      await Promise.race([Promise.all(sealing), grace]);
      await deps.recorder.close();
    },
  };
}
