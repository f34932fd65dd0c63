/**
 * Recorded terminal sessions (`breakglass shell GRANT -- COMMAND`): the holder's CLI runs the
 * command in a pseudo-terminal and streams its output (and input, where the role says so) to the
 * broker as asciicast v2 events while it happens, so a killed laptop loses at most the last
 * moments. The broker answers every batch with whether the grant is still active: when it is
 * not, the session is ended here and the CLI closes the command.
 *
 * A recording closes when its session ends or its grant does. The end event seals it: it carries
 * the digest of every stored event (core/recording-digest.ts), which `audit verify` recomputes.
 * Batches already in flight may still arrive for {@link LATE_GRACE_MS}; each such late append is
 * audited with the recording's new digest. After that, or once the grant is reviewed, appends are
 * refused (ERR_INVALID_TRANSITION): nobody adds to evidence a reviewer may already have read.
 */

import { type AuditAppender, type AuditTx, stamp } from "../audit/audit-journal.js";
import { isHolder, mayReadRecording } from "../core/authorization.js";
import { BreakglassError } from "../core/errors.js";
import { grantEvent } from "../core/grant-machine.js";
import type { Grant, Policy } from "../core/model.js";
import type { GrantWrites } from "../core/ports/grants.js";
import type { TerminalReads, TerminalWrites } from "../core/ports/recordings.js";
import type { Clock, IdGenerator, Sha256 } from "../core/ports/runtime.js";
import type { Transactions } from "../core/ports/transactions.js";
import { terminalDigest } from "../core/recording-digest.js";
import type { TerminalEvent, TerminalSession } from "../core/records.js";
import { type RequestContext, SYSTEM_CONTEXT } from "../core/request-context.js";

export interface TerminalService {
  /** @throws ERR_NOT_FOUND, ERR_FORBIDDEN (not the holder), ERR_INVALID_TRANSITION (grant not active) */
  start(
    ctx: RequestContext,
    grantId: string,
    spec: { command: string; width: number; height: number },
  ): Promise<{ session: TerminalSession; endsAt: number }>;
  /**
   * Store a batch of events (a repeated seq is ignored); tells whether the grant is still active.
   * A batch arriving after the session or its grant ended is kept within {@link LATE_GRACE_MS} of
   * that end (audited, with the recording's new digest) and refused after it.
   * @throws ERR_INVALID_TRANSITION after the grace period or once the grant is reviewed
   */
  append(
    ctx: RequestContext,
    sessionId: string,
    events: readonly TerminalEvent[],
  ): Promise<{ active: boolean; endsAt: number | null }>;
  end(ctx: RequestContext, sessionId: string, reason: string): Promise<TerminalSession>;
  /** Holder, approvers of the role, admins; audited. */
  read(ctx: RequestContext, sessionId: string): Promise<{ session: TerminalSession; events: TerminalEvent[] }>;
}

/** How long after a recording closes batches already in flight are still taken (and audited as late). */
export const LATE_GRACE_MS = 30_000;

/** A terminal session changes under its grant's lock, with its audit event. */
type TerminalTx = Pick<GrantWrites, "lockGrant"> & TerminalWrites & AuditTx;

export function createTerminalService(deps: {
  readonly policy: Policy;
  readonly store: Transactions<TerminalTx> & Pick<TerminalReads, "getTerminalSession">;
  readonly audit: AuditAppender;
  readonly clock: Clock;
  readonly ids: IdGenerator;
  readonly sha256: Sha256;
}): TerminalService {
  const { policy, store, audit, clock, ids, sha256 } = deps;

  const live = (g: Grant, now: number) =>
    g.state === "active" && g.access === "granted" && g.endsAt !== null && g.endsAt > now;

  /** When the recording closed: the session's end, else its grant's (null while both are open). */
  const closedAt = (g: Grant, session: TerminalSession, now: number): number | null => {
    if (session.endedAt !== null) return session.endedAt;
    if (live(g, now)) return null;
    return g.endedAt ?? Math.min(now, g.endsAt ?? now);
  };

  /** The session as it is now, inside the transaction. */
  const current = async (tx: TerminalTx, session: TerminalSession): Promise<TerminalSession> =>
    (await tx.getTerminalSession(session.id)) ?? session;

  const find = async (sessionId: string): Promise<TerminalSession> => {
    const session = await store.getTerminalSession(sessionId);
    if (!session) throw new BreakglassError("ERR_NOT_FOUND", `no terminal session ${sessionId}`);
    return session;
  };

  /** The session's grant, locked, for the holder only. */
  const own = async (tx: TerminalTx, ctx: RequestContext, session: TerminalSession): Promise<Grant> => {
    const grant = await tx.lockGrant(session.grantId);
    if (!grant) throw new BreakglassError("ERR_NOT_FOUND", `no terminal session ${session.id}`);
    if (!isHolder(grant, ctx.actor)) {
      throw new BreakglassError("ERR_FORBIDDEN", `terminal session ${session.id} belongs to ${grant.requester}`);
    }
    return grant;
  };

  /** End the session and seal its recording: the end event carries the digest of every stored event. */
  const finish = async (
    tx: TerminalTx,
    ctx: RequestContext,
    grant: Grant,
    session: TerminalSession,
    reason: string,
    lateEvents = 0,
  ) => {
    const now = clock.now();
    const ended = { ...session, endedAt: now, endReason: reason };
    await tx.saveTerminalSession(ended);
    const events = await tx.readTerminalEvents(session.id);
    await audit.append(tx, [
      stamp(
        grantEvent(grant, "grant.terminal_ended", ctx.actor, now, {
          session: session.id,
          reason,
          durationMs: now - session.startedAt,
          events: events.length,
          digest: terminalDigest(sha256, events),
          ...(lateEvents > 0 ? { lateEvents } : {}),
        }),
        ctx,
      ),
    ]);
    return ended;
  };

  return {
    start: (ctx, grantId, spec) =>
      store.transaction(async (tx) => {
        const g = await tx.lockGrant(grantId);
        if (!g) throw new BreakglassError("ERR_NOT_FOUND", `no grant ${grantId}`, { grantId });
        if (!isHolder(g, ctx.actor)) {
          throw new BreakglassError(
            "ERR_FORBIDDEN",
            `only the holder (${g.requester}) can open a shell on grant ${grantId}`,
          );
        }
        const now = clock.now();
        if (!live(g, now) || g.endsAt === null) {
          throw new BreakglassError("ERR_INVALID_TRANSITION", `grant ${grantId} is not active`, { grantId });
        }
        const session: TerminalSession = {
          id: ids.next("t"),
          grantId,
          command: spec.command,
          width: spec.width,
          height: spec.height,
          recordInput: policy.roles.get(g.roleId)?.recordTerminalInput ?? false,
          startedAt: now,
          endedAt: null,
          endReason: null,
        };
        await tx.saveTerminalSession(session);
        await audit.append(tx, [
          stamp(
            // Every fact of the session's row is stated here (or by its end), for `audit verify`.
            grantEvent(g, "grant.terminal_started", ctx.actor, now, {
              session: session.id,
              command: spec.command,
              width: session.width,
              height: session.height,
              recordInput: session.recordInput,
            }),
            ctx,
          ),
        ]);
        return { session, endsAt: g.endsAt };
      }),

    append: async (ctx, sessionId, events) => {
      const found = await find(sessionId);
      const r = await store.transaction(async (tx) => {
        const grant = await own(tx, ctx, found);
        const session = await current(tx, found);
        const now = clock.now();
        const closed = closedAt(grant, session, now);
        if (closed === null) {
          await tx.appendTerminalEvents(sessionId, events);
          return { active: true, endsAt: grant.endsAt };
        }
        if (grant.state === "reviewed" || now > closed + LATE_GRACE_MS) {
          // Refused; what was recorded is sealed all the same (committed, then the refusal thrown).
          if (session.endedAt === null) await finish(tx, ctx, grant, session, "grant ended");
          return { refused: { closed, reviewed: grant.state === "reviewed" } };
        }
        // Late, within the grace period: batches that were in flight when the recording closed.
        const before = (await tx.readTerminalEvents(sessionId)).length;
        await tx.appendTerminalEvents(sessionId, events);
        const stored = await tx.readTerminalEvents(sessionId);
        const added = stored.length - before;
        if (session.endedAt === null) {
          await finish(tx, ctx, grant, session, "grant ended", added);
        } else if (added > 0) {
          await audit.append(tx, [
            stamp(
              grantEvent(grant, "grant.terminal_late_events", ctx.actor, now, {
                session: sessionId,
                added,
                afterEndMs: now - closed,
                events: stored.length,
                digest: terminalDigest(sha256, stored),
              }),
              ctx,
            ),
          ]);
        }
        return { active: live(grant, now), endsAt: grant.endsAt };
      });
      if ("refused" in r) {
        const { closed, reviewed } = r.refused;
        throw new BreakglassError(
          "ERR_INVALID_TRANSITION",
          reviewed
            ? `terminal session ${sessionId} is closed: its grant was reviewed; the recording can no longer change`
            : `terminal session ${sessionId} closed at ${new Date(closed).toISOString()}; events are taken up to ${LATE_GRACE_MS / 1000} s after that`,
          { sessionId, closedAt: new Date(closed).toISOString() },
        );
      }
      return r;
    },

    end: async (ctx, sessionId, reason) => {
      const found = await find(sessionId);
      return store.transaction(async (tx) => {
        const grant = await own(tx, ctx, found);
        const session = await current(tx, found);
        return session.endedAt === null ? finish(tx, ctx, grant, session, reason) : session;
      });
    },

    async read(ctx, sessionId) {
      const s = await find(sessionId);
      // Read in the transaction, disclose after the event has committed; a session without events
      // discloses nothing and writes no `grant.recording_read`.
      const { session, events } = await store.transaction(async (tx) => {
        const g = await tx.lockGrant(s.grantId);
        if (!g) throw new BreakglassError("ERR_NOT_FOUND", `no terminal session ${sessionId}`);
        if (!mayReadRecording(policy, g, ctx.actor)) {
          throw new BreakglassError(
            "ERR_FORBIDDEN",
            `${ctx.actor} cannot read terminal session ${sessionId}: the holder, approvers of ${g.roleId} and admins can`,
          );
        }
        let session = await current(tx, s);
        // A recording left open (its CLI never came back) is sealed by the first read after it closed.
        const closed = closedAt(g, session, clock.now());
        if (session.endedAt === null && closed !== null && clock.now() > closed + LATE_GRACE_MS) {
          session = await finish(tx, SYSTEM_CONTEXT, g, session, "grant ended");
        }
        const events = await tx.readTerminalEvents(sessionId);
        if (events.length > 0) {
          await audit.append(tx, [
            stamp(
              grantEvent(g, "grant.recording_read", ctx.actor, clock.now(), {
                terminalSession: sessionId,
                events: events.length,
              }),
              ctx,
            ),
          ]);
        }
        return { session, events };
      });
      return { session, events };
    },
  };
}
