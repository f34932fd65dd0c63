/**
 * The one way grants change: lock the row, apply a pure transition, save it with its due time,
 * and append its audit event — all in one transaction. If the audit append fails, nothing is
 * saved (fail closed).
 */

import { type AuditAppender, type AuditTx, stamp } from "../audit/audit-journal.js";
import { BreakglassError } from "../core/errors.js";
import { dueAt, type Transition } from "../core/grant-machine.js";
import type { Grant } from "../core/model.js";
import type { CredentialWrites, GrantWrites } from "../core/ports/grants.js";
import type { GatewayWrites } from "../core/ports/recordings.js";
import type { Transactions } from "../core/ports/transactions.js";
import type { RequestContext } from "../core/request-context.js";

/** What a grant transition writes: the grant, its audit event and the alarms that event raises. */
export type TransitionTx = GrantWrites & AuditTx;

/**
 * What the writer's transactions offer: a transition, and what activation keeps with it (the
 * holder's sealed credential, a gateway login).
 */
export type GrantWriterTx = TransitionTx & CredentialWrites & GatewayWrites;

/** Save a transition's grant and event inside an open transaction. */
export async function commitTransition(
  tx: TransitionTx,
  audit: AuditAppender,
  t: Transition,
  ctx: RequestContext,
): Promise<Grant> {
  await tx.saveGrant(t.grant, dueAt(t.grant));
  await audit.append(tx, [stamp(t.event, ctx)]);
  return t.grant;
}

export interface GrantWriter {
  /**
   * Lock grant `id`, apply `fn`, save the result and its audit event, then run `also` in the same
   * transaction (e.g. store the holder's credential); returns the new grant.
   */
  transition(
    id: string,
    ctx: RequestContext,
    fn: (grant: Grant) => Transition,
    also?: (tx: GrantWriterTx, next: Grant) => Promise<void>,
  ): Promise<Grant>;
  /** Lock grant `id` and save `fn`'s result without an audit event (bookkeeping, not a state change). */
  update(id: string, fn: (grant: Grant) => Grant): Promise<Grant>;
}

export function createGrantWriter(store: Transactions<GrantWriterTx>, audit: AuditAppender): GrantWriter {
  const locked = async (tx: GrantWrites, id: string): Promise<Grant> => {
    const grant = await tx.lockGrant(id);
    if (!grant) throw new BreakglassError("ERR_NOT_FOUND", `no grant ${id}`, { grantId: id });
    return grant;
  };
  return {
    transition: (id, ctx, fn, also) =>
      store.transaction(async (tx) => {
        const next = await commitTransition(tx, audit, fn(await locked(tx, id)), ctx);
        await also?.(tx, next);
        return next;
      }),
    update: (id, fn) =>
      store.transaction(async (tx) => {
        const next = fn(await locked(tx, id));
        await tx.saveGrant(next, dueAt(next));
        return next;
      }),
  };
}
