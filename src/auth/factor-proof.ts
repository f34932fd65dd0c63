/**
 * Checking a second factor someone presents (fallback login, step-up): a TOTP code, a one-time
 * recovery code, or a WebAuthn assertion, against the user's confirmed factors.
 *
 * - Each proof is accepted once: a TOTP time step and a security key's signature counter must move
 *   on (a conditional update, so two requests with one code cannot both pass); a recovery code is
 *   marked used (audited, with how many are left).
 * - A replayed TOTP code is a failure, not a reason to try the user's next factor.
 */
import type { AuditAppender, AuditTx } from "../audit/audit-journal.js";
import type { AuthConfig } from "../config/app-config.js";
import { nonGrantEvent } from "../core/audit-event.js";
import type { FactorReads, FactorWrites } from "../core/ports/auth.js";
import type { StateWrites } from "../core/ports/broker-state.js";
import type { Clock } from "../core/ports/runtime.js";
import type { Transactions } from "../core/ports/transactions.js";
import type { LocalFactor } from "../core/records.js";
import type { SecretBox } from "../secrets/secret-box.js";
import { acceptedStep, normalizeCode, recoveryCodeHash, sameHash, totpOf } from "./factor-codes.js";
import { verifyAssertion } from "./webauthn.js";

/** A second factor presented: an authenticator or recovery code, or a WebAuthn assertion. */
export interface FactorProof {
  readonly code?: string | undefined;
  readonly webauthn?: unknown;
}

/** Check a proof against `user`'s confirmed factors: the factor it used (now spent), or null. */
export type ProofCheck = (user: string, proof: FactorProof) => Promise<LocalFactor | null>;

export function createProofCheck(deps: {
  readonly config: Pick<AuthConfig, "totpIssuer" | "webauthn">;
  readonly store: Transactions<FactorWrites & StateWrites & AuditTx> & FactorReads;
  readonly audit: AuditAppender;
  readonly clock: Clock;
  readonly box: SecretBox;
}): ProofCheck {
  const { config, store, audit, clock, box } = deps;
  return async (user, proof) => {
    const factors = await store.listFactors(user);
    const now = clock.now();
    if (proof.webauthn !== undefined) {
      const r = await verifyAssertion(config.webauthn, store, user, factors, proof.webauthn, now);
      if (!r) return null;
      // The signature counter must move on (authenticators without one always report 0).
      if (r.counter === 0 && (r.factor.lastStep ?? 0) === 0) {
        await store.transaction((tx) => tx.saveFactor({ ...r.factor, usedAt: now }));
        return r.factor;
      }
      const fresh = await store.transaction((tx) => tx.advanceFactorStep(r.factor.id, r.counter, now));
      return fresh ? r.factor : null;
    }
    const clean = normalizeCode(proof.code ?? "");
    if (/^\d{6}$/.test(clean)) {
      for (const f of factors) {
        if (f.kind !== "totp" || f.confirmedAt === null) continue;
        const step = acceptedStep(totpOf(config.totpIssuer, box, f, user), clean, now);
        if (step === null) continue;
        const fresh = await store.transaction((tx) => tx.advanceFactorStep(f.id, step, now));
        return fresh ? f : null; // a replayed code is a failure, not a try of the next factor
      }
      return null;
    }
    const hash = recoveryCodeHash(clean);
    for (const f of factors) {
      if (f.kind !== "recovery" || f.usedAt !== null) continue;
      if (!sameHash(f.secret, hash)) continue;
      const first = await store.transaction(async (tx) => {
        const ok = await tx.useRecoveryCode(f.id, now);
        if (ok) {
          await audit.append(tx, [
            nonGrantEvent("auth.recovery_code_used", user, now, {
              user,
              factorId: f.id,
              left: factors.filter((x) => x.kind === "recovery" && x.usedAt === null).length - 1,
            }),
          ]);
        }
        return ok;
      });
      return first ? f : null;
    }
    return null;
  };
}
