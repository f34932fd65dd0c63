/**
 * Recorded terminal sessions (`breakglass shell GRANT -- COMMAND`): the holder's CLI runs the
 * command in a pseudo-terminal and streams its output (and input, where the role says so) to the
 * broker as asciicast v2 events while it happens, so a killed laptop loses at most the last
 * moments. The broker answers every batch with whether the grant is still active: when it is
 * not, the session is ended here and the CLI closes the command.
 */
import { BreakglassError } from "../core/errors.js";
import { grantEvent, mayReadRecording } from "../core/grant-machine.js";
import type { Grant, Policy } from "../core/model.js";
import type { Clock, IdGenerator, Store, StoreTx, TerminalEvent, TerminalSession } from "../core/ports.js";
import { type AuditAppender, stamp } from "./grant-writer.js";
import type { RequestContext } from "./request-context.js";

export interface TerminalService {
  /** @throws ERR_NOT_FOUND, ERR_FORBIDDEN (not the holder), ERR_INVALID_TRANSITION (grant not active) */
  start(
    ctx: RequestContext,
    grantId: string,
    spec: { command: string; width: number; height: number },
  ): Promise<{ session: TerminalSession; endsAt: number }>;
  /**
   * Store a batch of events (a repeated seq is ignored); tells whether the grant is still active.
   * Events are kept even after the end: what ran is evidence.
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

export function createTerminalService(deps: {
  readonly policy: Policy;
  readonly store: Store;
  readonly audit: AuditAppender;
  readonly clock: Clock;
  readonly ids: IdGenerator;
}): TerminalService {
  const { policy, store, audit, clock, ids } = deps;

  const live = (g: Grant, now: number) =>
    g.state === "active" && g.access === "granted" && g.endsAt !== null && g.endsAt > now;

  const find = async (sessionId: string): Promise<TerminalSession> => {
    const session = await store.getTerminalSession(sessionId);
    if (!session) throw new BreakglassError("ERR_NOT_FOUND", `no terminal session ${sessionId}`);
    return session;
  };

  /** The session's grant, locked, for the holder only. */
  const own = async (tx: StoreTx, ctx: RequestContext, session: TerminalSession): Promise<Grant> => {
    const grant = await tx.lockGrant(session.grantId);
    if (!grant) throw new BreakglassError("ERR_NOT_FOUND", `no terminal session ${session.id}`);
    if (grant.requester !== ctx.actor) {
      throw new BreakglassError("ERR_FORBIDDEN", `terminal session ${session.id} belongs to ${grant.requester}`);
    }
    return grant;
  };

  const finish = async (tx: StoreTx, ctx: RequestContext, grant: Grant, session: TerminalSession, reason: string) => {
    const now = clock.now();
    const ended = { ...session, endedAt: now, endReason: reason };
    await tx.saveTerminalSession(ended);
    await audit.append(tx, [
      stamp(
        grantEvent(grant, "grant.terminal_ended", ctx.actor, now, {
          session: session.id,
          reason,
          durationMs: now - session.startedAt,
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
        if (g.requester !== ctx.actor) {
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
            grantEvent(g, "grant.terminal_started", ctx.actor, now, { session: session.id, command: spec.command }),
            ctx,
          ),
        ]);
        return { session, endsAt: g.endsAt };
      }),

    append: async (ctx, sessionId, events) => {
      const session = await find(sessionId);
      return store.transaction(async (tx) => {
        const grant = await own(tx, ctx, session);
        await tx.appendTerminalEvents(sessionId, events);
        const now = clock.now();
        if (live(grant, now) && session.endedAt === null) return { active: true, endsAt: grant.endsAt };
        if (session.endedAt === null) await finish(tx, ctx, grant, session, "grant ended");
        return { active: false, endsAt: grant.endsAt };
      });
    },

    end: async (ctx, sessionId, reason) => {
      const session = await find(sessionId);
      return store.transaction(async (tx) => {
        const grant = await own(tx, ctx, session);
        return session.endedAt === null ? finish(tx, ctx, grant, session, reason) : session;
      });
    },

    async read(ctx, sessionId) {
      const s = await find(sessionId);
      // Read first, disclose after the event has committed; a session without events discloses
      // nothing and writes no `grant.recording_read`.
      const events = await store.readTerminalEvents(sessionId);
      const session = await store.transaction(async (tx) => {
        const g = await tx.lockGrant(s.grantId);
        if (!g) throw new BreakglassError("ERR_NOT_FOUND", `no terminal session ${sessionId}`);
        if (!mayReadRecording(policy, g, ctx.actor)) {
          throw new BreakglassError(
            "ERR_FORBIDDEN",
            `${ctx.actor} cannot read terminal session ${sessionId}: the holder, approvers of ${g.roleId} and admins can`,
          );
        }
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
        return s;
      });
      return { session, events };
    },
  };
}
