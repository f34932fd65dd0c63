/**
 * The whole store, as its adapters (src/store/) implement it: every narrow port at once. Only the
 * composition root and the tools that open a store themselves (the CLI's offline commands, tests)
 * hold this; everything else takes the narrow ports it uses (see docs/architecture.md).
 */
import type { AlarmReads, AlarmWrites } from "./alarms.js";
import type { AuditReads, AuditWrites } from "./audit.js";
import type {
  FactorReads,
  FactorWrites,
  SessionReads,
  SessionWrites,
  ThrottleReads,
  ThrottleWrites,
  TokenReads,
  TokenWrites,
} from "./auth.js";
import type { Leases, StateReads, StateWrites, StoreStats } from "./broker-state.js";
import type { EvidenceReads, EvidenceWrites } from "./evidence.js";
import type { CredentialReads, CredentialWrites, GrantReads, GrantWrites } from "./grants.js";
import type { GatewayReads, GatewayWrites, TerminalReads, TerminalWrites } from "./recordings.js";
import type { Transactions, TxScope } from "./transactions.js";

/** Every write port, as one transaction handle offers them. */
export type StoreTx = TxScope &
  GrantWrites &
  CredentialWrites &
  AuditWrites &
  AlarmWrites &
  TokenWrites &
  SessionWrites &
  FactorWrites &
  ThrottleWrites &
  GatewayWrites &
  TerminalWrites &
  EvidenceWrites &
  StateWrites;

/** Every read port, the transactions, and closing. */
export type Store = Transactions<StoreTx> &
  GrantReads &
  CredentialReads &
  AuditReads &
  AlarmReads &
  TokenReads &
  SessionReads &
  FactorReads &
  ThrottleReads &
  GatewayReads &
  TerminalReads &
  EvidenceReads &
  StateReads &
  Leases &
  StoreStats & {
    close(): Promise<void>;
  };
