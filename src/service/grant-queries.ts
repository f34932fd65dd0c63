/**
 * The read side of grants, for the API: a page of grants (keyset cursor), one grant with its
 * alarms and events, an incident's record, and terminal sessions checked against the chain.
 * Reads only, through the narrow read ports; the writes are the grant service's.
 */
import { type EvidenceEvent, evidenceOf } from "../audit/audit-evidence.js";
import {
  type AlarmCheck,
  alarmIntegrity,
  alarmsAsRecorded,
  type RowIntegrity,
  terminalSessionIntegrity,
} from "../audit/evidence-rows.js";
import type { AlarmsConfig } from "../config/app-config.js";
import { GRANT_PAGE_MAX, GRANT_STATES } from "../contract/api.js";
import { ACTIVATION_EVENTS, isUnalarmed } from "../core/alarm-routing.js";
import type { LinkedAuditEvent } from "../core/audit-event.js";
import { BreakglassError } from "../core/errors.js";
import type { Grant, GrantState, Policy } from "../core/model.js";
import type { AlarmReads } from "../core/ports/alarms.js";
import type { AuditReads } from "../core/ports/audit.js";
import type { GrantReads } from "../core/ports/grants.js";
import type { TerminalReads } from "../core/ports/recordings.js";
import type { Clock } from "../core/ports/runtime.js";
import type { AlarmRecord, TerminalSession } from "../core/records.js";
import { unknownRoleHint } from "../core/suggest.js";

/** Page size when the caller names none. */
export const DEFAULT_PAGE = 100;

/** What `GET /grants` asks for, as parsed from its query. */
export interface GrantPageQuery {
  /** Comma-separated grant states. */
  readonly state?: string | undefined;
  readonly requester?: string | undefined;
  readonly role?: string | undefined;
  /** Only `actor`'s grants. */
  readonly mine?: boolean | undefined;
  /** A `next` this service gave out. */
  readonly cursor?: string | undefined;
  readonly limit?: number | undefined;
}

/** An alarm with what the chain says of it (see audit/evidence-rows.ts). */
export type CheckedAlarms = ReadonlyMap<string, AlarmCheck & { readonly integrity: RowIntegrity | null }>;

export interface GrantPage {
  /** Newest first; `unalarmed` on active grants only (whether security was told of the activation). */
  readonly grants: readonly { readonly grant: Grant; readonly unalarmed?: boolean }[];
  /** Where the next page starts, opaque to clients; null on the last page. */
  readonly next: string | null;
}

export interface GrantDetail {
  readonly grant: Grant;
  readonly alarms: readonly AlarmRecord[];
  readonly checks: CheckedAlarms;
  readonly events: readonly LinkedAuditEvent[];
  /** Whether security was told of the activation, as the chain records it where it does. */
  readonly unalarmed: boolean;
}

export interface IncidentRecord {
  readonly incident: string;
  readonly grants: readonly Grant[];
  /** Every event of its grants, as evidence (a row that does not chain is refused). */
  readonly timeline: readonly EvidenceEvent[];
  /** Every alarm of its grants, in event order. */
  readonly alarms: readonly AlarmRecord[];
  readonly checks: CheckedAlarms;
}

/** A terminal session with what grant.terminal_started/ended say of its row. */
export interface CheckedTerminalSession {
  readonly session: TerminalSession;
  readonly integrity: RowIntegrity | null | undefined;
}

export interface GrantQueries {
  /**
   * A page of grants, newest first, filtered.
   * @throws ERR_VALIDATION (an unknown state, a cursor not given out here, `mine` with another
   *   requester), ERR_NOT_FOUND (a role that is not configured and has no grants: a typo)
   */
  page(actor: string, query: GrantPageQuery): Promise<GrantPage>;
  /** @throws ERR_NOT_FOUND */
  detail(id: string): Promise<GrantDetail>;
  /** @throws ERR_NOT_FOUND (no grant names the incident), ERR_AUDIT_CHAIN_BROKEN */
  incident(id: string): Promise<IncidentRecord>;
  /** The grant's terminal sessions, checked. */
  terminalSessions(grantId: string): Promise<CheckedTerminalSession[]>;
  /** These terminal sessions, checked against their grants' events. */
  checkTerminalSessions(sessions: readonly TerminalSession[]): Promise<CheckedTerminalSession[]>;
}

export interface GrantQueriesDeps {
  readonly policy: Policy;
  readonly alarms: Pick<AlarmsConfig, "routing" | "unalarmedAfterMs">;
  readonly clock: Clock;
  readonly store: GrantReads &
    Pick<AuditReads, "readGrantAudit" | "readNonGrantAudit"> &
    Pick<AlarmReads, "listAlarms" | "listAlarmsOfGrants"> &
    Pick<TerminalReads, "listTerminalSessions">;
}

/** A page's `next`: where the following page starts (the last grant's place in the order). */
function cursorOf(grant: Grant): string {
  return Buffer.from(`${grant.requestedAt}:${grant.id}`).toString("base64url");
}

/** @throws ERR_VALIDATION when `cursor` is not a `next` this service gave out. */
function parseCursor(cursor: string): { requestedAt: number; id: string } {
  const m = /^(\d{1,16}):(.{1,100})$/.exec(Buffer.from(cursor, "base64url").toString("utf8"));
  if (!m?.[1] || !m[2]) {
    throw new BreakglassError("ERR_VALIDATION", "cursor: not a `next` from a grant list; start without it", {
      field: "cursor",
    });
  }
  return { requestedAt: Number(m[1]), id: m[2] };
}

/** @throws ERR_VALIDATION naming a state that is not one */
function parseStates(text: string | undefined): GrantState[] | undefined {
  if (text === undefined) return undefined;
  const states = text.split(",");
  for (const s of states) {
    if (!(GRANT_STATES as readonly string[]).includes(s)) {
      throw new BreakglassError("ERR_VALIDATION", `state: "${s}" is not a grant state (${GRANT_STATES.join(", ")})`, {
        field: "state",
      });
    }
  }
  return states as GrantState[];
}

export function createGrantQueries(deps: GrantQueriesDeps): GrantQueries {
  const { policy, alarms: alarmsConfig, clock, store } = deps;

  const checkTerminalSessions = async (sessions: readonly TerminalSession[]): Promise<CheckedTerminalSession[]> => {
    if (sessions.length === 0) return [];
    const events = await store.readGrantAudit([...new Set(sessions.map((t) => t.grantId))]);
    const integrity = terminalSessionIntegrity(sessions, events);
    return sessions.map((session) => ({ session, integrity: integrity.get(session.id) }));
  };

  return {
    async page(actor, query) {
      if (query.mine && query.requester !== undefined && query.requester !== actor) {
        throw new BreakglassError("ERR_VALIDATION", "mine: cannot be combined with another requester", {
          field: "mine",
        });
      }
      const limit = Math.min(query.limit ?? DEFAULT_PAGE, GRANT_PAGE_MAX);
      // One row more than the page: whether there is a next page, without counting.
      const rows = await store.listGrants({
        states: parseStates(query.state),
        requester: query.mine ? actor : query.requester,
        roleId: query.role,
        after: query.cursor === undefined ? undefined : parseCursor(query.cursor),
        limit: limit + 1,
      });
      const grants = rows.slice(0, limit);
      const last = grants.at(-1);
      const next = rows.length > limit && last ? cursorOf(last) : null;
      // A role that is not configured and has no grants is a typo, not an empty list (a role
      // removed from the configuration still lists its old grants).
      if (
        query.role !== undefined &&
        query.cursor === undefined &&
        grants.length === 0 &&
        !policy.roles.has(query.role)
      ) {
        throw new BreakglassError(
          "ERR_NOT_FOUND",
          `no role "${query.role}" is configured; ${unknownRoleHint(query.role, policy.roles.keys())}`,
          { roleId: query.role },
        );
      }
      // Active grants say whether a security channel has their activation alarm (the console
      // shows the unalarmed ones red): one read for the whole list, activation alarms only —
      // the list may hold thousands during a storm.
      const now = clock.now();
      const due = grants.filter(
        (g) => g.state === "active" && g.activatedAt !== null && now - g.activatedAt >= alarmsConfig.unalarmedAfterMs,
      );
      const alarmsOf = new Map<string, AlarmRecord[]>();
      if (due.length > 0) {
        for (const a of await store.listAlarmsOfGrants(
          due.map((g) => g.id),
          ACTIVATION_EVENTS,
        )) {
          if (a.grantId !== null) alarmsOf.set(a.grantId, [...(alarmsOf.get(a.grantId) ?? []), a]);
        }
      }
      return {
        grants: grants.map((grant) =>
          grant.state === "active"
            ? {
                grant,
                unalarmed: isUnalarmed(
                  alarmsOf.get(grant.id) ?? [],
                  alarmsConfig.routing,
                  grant.activatedAt,
                  now,
                  alarmsConfig.unalarmedAfterMs,
                ),
              }
            : { grant },
        ),
        next,
      };
    },

    async detail(id) {
      const grant = await store.getGrant(id);
      if (!grant) throw new BreakglassError("ERR_NOT_FOUND", `no grant ${id}`, { grantId: id });
      const [alarms, events] = await Promise.all([store.listAlarms(grant.id), store.readGrantAudit([grant.id])]);
      const checks = await alarmIntegrity(store, alarms, events);
      const unalarmed = isUnalarmed(
        alarmsAsRecorded(alarms, checks),
        alarmsConfig.routing,
        grant.activatedAt,
        clock.now(),
        alarmsConfig.unalarmedAfterMs,
      );
      return { grant, alarms, checks, events, unalarmed };
    },

    async incident(id) {
      const grants = await store.listGrants({ incident: id, limit: 1000 });
      if (grants.length === 0) {
        throw new BreakglassError("ERR_NOT_FOUND", `no grant was requested for incident ${id}`, { incident: id });
      }
      const rows = await store.readGrantAudit(grants.map((g) => g.id));
      const timeline = evidenceOf(rows);
      // Every grant's alarms in one read, not one per grant.
      const alarms = await store.listAlarmsOfGrants(
        grants.map((g) => g.id),
        [],
      );
      alarms.sort((a, b) => a.eventSeq - b.eventSeq || a.channel.localeCompare(b.channel));
      const checks = await alarmIntegrity(store, alarms, rows);
      return { incident: id, grants, timeline, alarms, checks };
    },

    terminalSessions: async (grantId) => checkTerminalSessions(await store.listTerminalSessions(grantId)),

    checkTerminalSessions,
  };
}
