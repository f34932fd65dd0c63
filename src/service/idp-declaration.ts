/**
 * An admin declares the IdP down (which opens the local fallback login) or up again: kept in the
 * broker's named state for every replica and for restarts, recorded in the chain (and alarmed)
 * in the same transaction, then applied to this process's IdP health.
 */
import { type AuditAppender, type AuditTx, stamp } from "../audit/audit-journal.js";
import type { OidcLogin } from "../auth/oidc.js";
import { nonGrantEvent } from "../core/audit-event.js";
import { requireAdmin } from "../core/authorization.js";
import { BreakglassError } from "../core/errors.js";
import type { Policy } from "../core/model.js";
import type { StateWrites } from "../core/ports/broker-state.js";
import type { Clock } from "../core/ports/runtime.js";
import type { Transactions } from "../core/ports/transactions.js";
import type { RequestContext } from "../core/request-context.js";

/** The broker-state key holding an admin's declaration that the IdP is down ("" once up again). */
export const IDP_DECLARED_STATE = "idp_declared";

export interface IdpDeclaration {
  /**
   * Declare the IdP down (`down`) or up again, with why.
   * @throws ERR_FORBIDDEN (not an admin), ERR_NOT_CONFIGURED (no IdP), ERR_AUDIT_WRITE_FAILED
   */
  declare(ctx: RequestContext, down: boolean, reason: string): Promise<void>;
}

export function createIdpDeclaration(deps: {
  readonly policy: Policy;
  readonly oidc: OidcLogin | null;
  readonly store: Transactions<StateWrites & AuditTx>;
  readonly audit: AuditAppender;
  readonly clock: Clock;
}): IdpDeclaration {
  const { policy, oidc, store, audit, clock } = deps;
  return {
    async declare(ctx, down, reason) {
      requireAdmin(policy, ctx.actor, "declaring the IdP down or up");
      if (!oidc) {
        throw new BreakglassError(
          "ERR_NOT_CONFIGURED",
          "no IdP is configured (auth.oidc): there is nothing to declare",
          {
            feature: "idpLogin",
          },
        );
      }
      const now = clock.now();
      await store.transaction(async (tx) => {
        // Kept for every replica and for restarts (read back by the broker every minute).
        const declared = down ? JSON.stringify({ by: ctx.actor, at: now, reason }) : "";
        await tx.swapState(IDP_DECLARED_STATE, declared, now);
        await audit.append(tx, [stamp(nonGrantEvent("auth.idp_declared", ctx.actor, now, { down, reason }), ctx)]);
      });
      oidc.declare(down, ctx.actor, reason, now);
    },
  };
}
