/**
 * The read side of reviews, for the API: the review queue (ended grants not yet reviewed, oldest
 * deadline first, and tier-2 openings), and a grant's whole story for its reviewer — its events
 * with their facts, alarms and their delivery, what was recorded and whether each recording still
 * matches the digest the chain sealed, and whether the caller may record the verdict. Recording
 * the verdict is the grant service's (`review`) or the vault service's.
 */
import { type EvidenceEvent, evidenceOf } from "../audit/audit-evidence.js";
import {
  alarmIntegrity,
  type RowIntegrity,
  terminalSessionIntegrity,
  vaultOpeningIntegrity,
} from "../audit/evidence-rows.js";
import { type Difference, grantDifference } from "../audit/grant-verify.js";
import type { AuditEventType } from "../core/audit-event.js";
import { reviewBlocker, reviewRefusal } from "../core/authorization.js";
import { BreakglassError } from "../core/errors.js";
import { awaitsReview } from "../core/grant-machine.js";
import { type Grant, isEmergencyUse, type Policy, type VaultOpening } from "../core/model.js";
import type { AlarmReads } from "../core/ports/alarms.js";
import type { AuditReads } from "../core/ports/audit.js";
import type { GrantReads } from "../core/ports/grants.js";
import type { GatewayReads, TerminalReads } from "../core/ports/recordings.js";
import type { Clock, Sha256 } from "../core/ports/runtime.js";
import { RECORDING_SEALS, statementsDigest, terminalDigest } from "../core/recording-digest.js";
import type { AlarmRecord, StatementRecord, TerminalSession } from "../core/records.js";
import type { CheckedAlarms } from "./grant-queries.js";
import type { VaultService } from "./vault-service.js";

/** An ended grant waiting for its review. */
export interface ReviewRow {
  readonly grant: Grant;
  readonly overdue: boolean;
  /** An emergency use or a grant from a fallback login: reviewed by the emergency reviewers. */
  readonly emergency: boolean;
  /** Why the caller may not review it; null when they may. */
  readonly why: string | null;
}

/** A tier-2 opening waiting for its review. */
export interface OpeningRow {
  readonly opening: VaultOpening;
  readonly integrity: RowIntegrity | null | undefined;
  readonly overdue: boolean;
  readonly why: string | null;
}

/** One recording of a grant against the last digest the chain sealed for it. */
export interface RecordingSeal {
  readonly kind: "terminal" | "gateway";
  readonly session: string;
  /** Events (terminal) or statements (gateway) stored now. */
  readonly entries: number;
  readonly sealedBy: number | null;
  readonly digest: string | null;
  /** Whether the stored entries still hash to the sealed digest; null while unsealed. */
  readonly matches: boolean | null;
  /** A terminal session's row against grant.terminal_started/ended (none for gateway sessions). */
  readonly integrity: RowIntegrity | null | undefined;
}

export interface GrantStory {
  readonly grant: Grant;
  /** The first fact where the grant's row differs from its events (an edited row); null when none. */
  readonly difference: Difference | null;
  readonly timeline: readonly EvidenceEvent[];
  readonly alarms: readonly AlarmRecord[];
  readonly alarmChecks: CheckedAlarms;
  readonly statements: readonly StatementRecord[];
  readonly terminalSessions: number;
  readonly recordings: readonly RecordingSeal[];
  /** Why the caller cannot record the verdict now; null when they can. */
  readonly why: string | null;
}

export interface ReviewQueries {
  /** The queue as `actor` sees it, oldest deadline first; `mine`: only what they may review. */
  queue(
    actor: string,
    filter: { readonly overdue: boolean; readonly mine: boolean },
  ): Promise<{ readonly reviews: readonly ReviewRow[]; readonly openings: readonly OpeningRow[] }>;
  /** @throws ERR_NOT_FOUND, ERR_AUDIT_CHAIN_BROKEN (an event that does not chain is not shown as evidence) */
  story(actor: string, grantId: string): Promise<GrantStory>;
  /** What vault.opened/opening_reviewed say of the opening's row. */
  checkOpening(opening: VaultOpening): Promise<RowIntegrity | null | undefined>;
}

export interface ReviewQueriesDeps {
  readonly policy: Policy;
  readonly clock: Clock;
  readonly sha256: Sha256;
  readonly store: Pick<GrantReads, "getGrant" | "listGrants"> &
    Pick<AuditReads, "readGrantAudit" | "readNonGrantAudit"> &
    Pick<AlarmReads, "listAlarms"> &
    Pick<GatewayReads, "listStatements"> &
    Pick<TerminalReads, "listTerminalSessions" | "readTerminalEvents">;
  /** Tier-2 openings waiting for review; absent where the vault is not wired. */
  readonly vault?: Pick<VaultService, "queue"> | undefined;
}

export function createReviewQueries(deps: ReviewQueriesDeps): ReviewQueries {
  const { policy, clock, sha256, store, vault } = deps;

  /** Each recording of the grant against the last digest the chain sealed for it. */
  const recordingSeals = async (
    timeline: readonly EvidenceEvent[],
    terminals: readonly TerminalSession[],
    statements: readonly StatementRecord[],
    grantEvents: Parameters<typeof terminalSessionIntegrity>[1],
  ): Promise<RecordingSeal[]> => {
    const seals = new Map<string, { seq: number; digest: string }>();
    for (const { record: e } of timeline) {
      const { session, digest } = e.data;
      if (RECORDING_SEALS.has(e.type as AuditEventType) && typeof session === "string" && typeof digest === "string") {
        seals.set(session, { seq: e.seq, digest });
      }
    }
    const integrity = terminalSessionIntegrity(terminals, grantEvents);
    const bySession = new Map<string, StatementRecord[]>();
    for (const s of statements) bySession.set(s.sessionId, [...(bySession.get(s.sessionId) ?? []), s]);
    const row = (kind: "terminal" | "gateway", session: string, entries: number, digest: string): RecordingSeal => {
      const seal = seals.get(session);
      return {
        kind,
        session,
        entries,
        sealedBy: seal?.seq ?? null,
        digest: seal?.digest ?? null,
        matches: seal === undefined ? null : seal.digest === digest,
        integrity: integrity.get(session),
      };
    };
    return [
      ...(await Promise.all(
        terminals.map(async (t) => {
          const events = await store.readTerminalEvents(t.id);
          return row("terminal", t.id, events.length, terminalDigest(sha256, events));
        }),
      )),
      ...[...bySession].map(([session, list]) => row("gateway", session, list.length, statementsDigest(sha256, list))),
    ];
  };

  const checkOpenings = (openings: readonly VaultOpening[]) => vaultOpeningIntegrity(store, openings);

  return {
    async queue(actor, filter) {
      const now = clock.now();
      const keep = (r: { overdue: boolean; why: string | null }) =>
        (!filter.overdue || r.overdue) && (!filter.mine || r.why === null);
      // A drill's grant is a rehearsal, not a use: its run is its record, and it is never queued.
      const ended = (await store.listGrants({ states: ["ended"], limit: 1000 })).filter(awaitsReview);
      const reviews = ended
        .map((grant) => ({
          grant,
          overdue: grant.reviewDueAt !== null && grant.reviewDueAt < now,
          emergency: isEmergencyUse(grant),
          why: reviewRefusal(policy, grant, actor),
        }))
        .filter(keep)
        .sort(
          (a, b) => (a.grant.reviewDueAt ?? Number.MAX_SAFE_INTEGER) - (b.grant.reviewDueAt ?? Number.MAX_SAFE_INTEGER),
        );
      const queued = (await vault?.queue(actor)) ?? [];
      const integrity = await checkOpenings(queued.map((o) => o.opening));
      const openings = queued
        .map((o) => ({ opening: o.opening, integrity: integrity.get(o.opening.id), overdue: o.overdue, why: o.why }))
        .filter(keep);
      return { reviews, openings };
    },

    async story(actor, grantId) {
      const grant = await store.getGrant(grantId);
      if (!grant) throw new BreakglassError("ERR_NOT_FOUND", `no grant ${grantId}`, { grantId });
      const why = reviewBlocker(policy, grant, actor);
      const [events, alarms, statements, terminals] = await Promise.all([
        store.readGrantAudit([grant.id]),
        store.listAlarms(grant.id),
        store.listStatements(grant.id),
        store.listTerminalSessions(grant.id),
      ]);
      // Every value from the hashed payload; a row that does not chain is refused, not shown.
      const timeline = evidenceOf(events);
      // The row against its own events: an edited fact is named here, not only by `audit verify`.
      const difference = grantDifference(grant, events);
      const alarmChecks = await alarmIntegrity(store, alarms, events);
      return {
        grant,
        difference,
        timeline,
        alarms,
        alarmChecks,
        statements,
        terminalSessions: terminals.length,
        recordings: await recordingSeals(timeline, terminals, statements, events),
        why,
      };
    },

    checkOpening: async (opening) => (await checkOpenings([opening])).get(opening.id),
  };
}
