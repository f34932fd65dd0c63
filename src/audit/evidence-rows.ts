/**
 * The readers' side of row-check.ts: before a page, the story, posture or the evidence report
 * shows a terminal session, a tier-2 opening, a drill run or an alarm, it checks the row against
 * the events that recorded it (read by grant, or through the non-grant index) and flags what
 * differs — the row was edited; `audit verify` fails on it too. Events whose payload does not chain
 * with their neighbours are left out (they are not evidence), so a row resting on them is flagged
 * as unrecorded rather than vouched for.
 */

import { sha256 } from "../adapters/node-crypto.js";
import type { LinkedAuditEvent, StoredAuditEvent } from "../core/audit-event.js";
import { checkStoredEvent } from "../core/audit-record.js";
import type { VaultOpening } from "../core/model.js";
import type { AuditReads } from "../core/ports/audit.js";
import type { AlarmRecord, DrillRun, TerminalSession } from "../core/records.js";
import { type AlarmCheck, alarmChecks } from "./alarm-verify.js";
import { DRILL_EVENTS, drillRunDifferences } from "./drill-verify.js";
import { type RowIntegrity, rowIntegrity } from "./row-check.js";
import { terminalSessionDifferences } from "./terminal-verify.js";
import { VAULT_EVENTS, vaultOpeningDifferences } from "./vault-verify.js";

export type { AlarmCheck, RowIntegrity };

/** Rows that chain with their neighbours (an edited index column is fine: facts come from the payload). */
export function chained(rows: readonly LinkedAuditEvent[]): StoredAuditEvent[] {
  return rows.filter((r) => {
    const { record, integrity } = checkStoredEvent(sha256, r);
    return record !== null && (integrity === null || integrity.problem === "column_mismatch");
  });
}

const integrities = <T extends { id: string }>(
  rows: readonly T[],
  diffs: Map<string, Parameters<typeof rowIntegrity>[0]>,
) => new Map(rows.map((r) => [r.id, rowIntegrity(diffs.get(r.id) ?? [])]));

/** A grant's terminal sessions against its events (`grantEvents`: the grant's, from readGrantAudit). */
export function terminalSessionIntegrity(
  sessions: readonly TerminalSession[],
  grantEvents: readonly LinkedAuditEvent[],
): Map<string, RowIntegrity | null> {
  return integrities(sessions, terminalSessionDifferences(sessions, chained(grantEvents)));
}

/** Alarms of these grants against the grants' events, and what the chain says of each delivery. */
export async function alarmIntegrity(
  store: Pick<AuditReads, "readNonGrantAudit">,
  alarms: readonly AlarmRecord[],
  grantEvents: readonly LinkedAuditEvent[],
): Promise<Map<string, AlarmCheck & { readonly integrity: RowIntegrity | null }>> {
  const mark = chained(await store.readNonGrantAudit(["alarm.deliveries_sealed"]))[0]?.seq ?? null;
  const checks = alarmChecks(alarms, chained(grantEvents), mark);
  return new Map([...checks].map(([id, c]) => [id, { ...c, integrity: rowIntegrity(c.differences) }]));
}

/**
 * The alarms as the chain has them: a delivery the chain covers is shown as it says (delivered at
 * its time, or not delivered), whatever the row says; the rest as stored.
 */
export function alarmsAsRecorded(
  alarms: readonly AlarmRecord[],
  checks: ReadonlyMap<string, AlarmCheck>,
): AlarmRecord[] {
  return alarms.map((a) => {
    const at = checks.get(a.id)?.deliveredAt;
    if (at === undefined || at === a.deliveredAt) return a;
    return at === null
      ? { ...a, state: a.state === "delivered" ? "failed" : a.state, deliveredAt: null }
      : { ...a, state: "delivered", deliveredAt: at };
  });
}

export async function vaultOpeningIntegrity(
  store: Pick<AuditReads, "readNonGrantAudit">,
  openings: readonly VaultOpening[],
): Promise<Map<string, RowIntegrity | null>> {
  if (openings.length === 0) return new Map();
  const events = chained(await store.readNonGrantAudit(VAULT_EVENTS));
  return integrities(openings, vaultOpeningDifferences(openings, events));
}

export async function drillRunIntegrity(
  store: Pick<AuditReads, "readNonGrantAudit">,
  runs: readonly DrillRun[],
): Promise<Map<string, RowIntegrity | null>> {
  if (runs.length === 0) return new Map();
  const events = chained(await store.readNonGrantAudit(DRILL_EVENTS));
  return integrities(runs, drillRunDifferences(runs, events));
}
