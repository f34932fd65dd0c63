/** Recordings: the gateway's statements (and its logins) and terminal sessions. */
import type {
  GatewayLogin,
  RecordingRef,
  StatementBatch,
  StatementRecord,
  TerminalEvent,
  TerminalSession,
} from "../records.js";

/** The gateway's logins and recorded statements, inside a transaction. */
export interface GatewayWrites {
  /** Store (or replace) the gateway login of a grant. */
  saveGatewayLogin(login: GatewayLogin, at: number): Promise<void>;
  /**
   * Append recorded statements, a row per batch (from the gateway's recorder). A batch already
   * stored (same session and first seq: a write retried after it had in fact committed) is left
   * as it is.
   */
  insertStatementBatches(batches: readonly StatementBatch[]): Promise<void>;
}

/** The gateway's logins and recorded statements, outside a transaction. */
export interface GatewayReads {
  /** The gateway login for a user name, if that grant has one (deleted with the credentials). */
  findGatewayLogin(user: string): Promise<GatewayLogin | null>;
  /** A grant's recorded statements, by session and order. */
  listStatements(grantId: string): Promise<StatementRecord[]>;
}

/** Terminal sessions, inside a transaction. */
export interface TerminalWrites {
  /** Insert a terminal session, or record its end (by id). */
  saveTerminalSession(session: TerminalSession): Promise<void>;
  /** Append events; an event whose seq is already stored is ignored (a client's retry). */
  appendTerminalEvents(sessionId: string, events: readonly TerminalEvent[]): Promise<void>;
  /** A terminal session as it is inside this transaction (lock its grant first). */
  getTerminalSession(id: string): Promise<TerminalSession | null>;
  /** A terminal session's events in order, inside this transaction. */
  readTerminalEvents(sessionId: string): Promise<TerminalEvent[]>;
}

/** Terminal sessions, outside a transaction. */
export interface TerminalReads {
  getTerminalSession(id: string): Promise<TerminalSession | null>;
  /** A grant's terminal sessions (null: every grant's), oldest first. */
  listTerminalSessions(grantId: string | null): Promise<TerminalSession[]>;
  /** A terminal session's events in order. */
  readTerminalEvents(sessionId: string): Promise<TerminalEvent[]>;
  /**
   * Every recording there are rows of: terminal sessions (and terminal events whose session row is
   * gone), gateway sessions with statements. For verification to account for each.
   */
  listRecordings(): Promise<RecordingRef[]>;
}
