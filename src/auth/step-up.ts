/**
 * MFA step-up: verify a second factor now, for this session, so actions that ask for a recent
 * factor may proceed. Only a signed-in session can step up (an API token has no session to mark);
 * failures are throttled like logins.
 */
import { BreakglassError } from "../core/errors.js";
import type { RequestContext } from "../core/request-context.js";
import type { FactorProof, ProofCheck } from "./factor-proof.js";
import type { Sessions } from "./sessions.js";
import { type Throttle, throttleKeys } from "./throttle.js";

/** @throws ERR_FORBIDDEN without a session; ERR_LOCKED_OUT; ERR_UNAUTHENTICATED (counted) */
export type StepUp = (ctx: RequestContext, proof: FactorProof) => Promise<{ factorAt: number }>;

export function createStepUp(deps: {
  readonly throttle: Throttle;
  readonly checkProof: ProofCheck;
  readonly sessions: Pick<Sessions, "recordStepUp">;
}): StepUp {
  const { throttle, checkProof, sessions } = deps;
  return async (ctx, proof) => {
    const sessionId = ctx.auth?.sessionId;
    if (!sessionId) {
      throw new BreakglassError(
        "ERR_FORBIDDEN",
        "step-up needs a signed-in session (web or `breakglass login`); an API token cannot step up",
      );
    }
    const keys = throttleKeys(ctx, ctx.actor);
    await throttle.assertNotLocked(keys);
    const factor = await checkProof(ctx.actor, proof);
    if (!factor) return throttle.fail(ctx, keys, "second factor check");
    await throttle.succeed(keys);
    return sessions.recordStepUp(ctx, sessionId, factor.kind);
  };
}
