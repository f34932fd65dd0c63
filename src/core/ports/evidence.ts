/** Evidence kept beside the chain: drill runs and tier-2 vault openings. */
import type { VaultOpening } from "../model.js";
import type { DrillRun } from "../records.js";

/** Drill runs and vault openings, inside a transaction. */
export interface EvidenceWrites {
  /** Insert or replace a drill run (by id). */
  saveDrillRun(run: DrillRun): Promise<void>;
  /** Insert or replace a tier-2 opening (by id). */
  saveVaultOpening(opening: VaultOpening): Promise<void>;
}

/** Drill runs and vault openings, outside a transaction. */
export interface EvidenceReads {
  getDrillRun(id: string): Promise<DrillRun | null>;
  /** Drill runs, newest first (of one drill when `name` is given). */
  listDrillRuns(name: string | null, limit: number): Promise<DrillRun[]>;
  getVaultOpening(id: string): Promise<VaultOpening | null>;
  /** Tier-2 openings, oldest first; only those not yet reviewed when `unreviewed`. */
  listVaultOpenings(unreviewed: boolean): Promise<VaultOpening[]>;
}
