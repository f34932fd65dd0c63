/**
 * Managing a person's local second factors while the IdP is healthy: TOTP enrolment (confirmed by
 * the first valid code), security keys and passkeys (WebAuthn registration), batches of recovery
 * codes, removal, and TOTP provisioning for configured non-person identities (a drill's requester).
 *
 * - Managing factors needs a full login (IdP session or API token), never a fallback one: a login
 *   by local factor may not change the local factors.
 * - Confirmation is throttled like a login (a wrong first code counts as a failure) and happens
 *   once: of two concurrent confirmations, one is recorded (`auth.factor_enrolled`).
 * - A new batch of recovery codes replaces the old one as the database has it then.
 */
import * as OTPAuth from "otpauth";
import type { AuditTx } from "../audit/audit-journal.js";
import { type AuditAppender, stamp } from "../audit/audit-journal.js";
import type { AuthConfig } from "../config/app-config.js";
import { nonGrantEvent } from "../core/audit-event.js";
import { BreakglassError } from "../core/errors.js";
import type { Policy } from "../core/model.js";
import type { FactorReads, FactorWrites } from "../core/ports/auth.js";
import type { StateWrites } from "../core/ports/broker-state.js";
import type { Clock, IdGenerator } from "../core/ports/runtime.js";
import type { Transactions } from "../core/ports/transactions.js";
import type { FactorKind, LocalFactor } from "../core/records.js";
import type { RequestContext } from "../core/request-context.js";
import { normalizeUserName } from "../core/user-name.js";
import type { SecretBox } from "../secrets/secret-box.js";
import { acceptedStep, newRecoveryCodes, recoveryCodeHash, sealTotpSecret, totpOf } from "./factor-codes.js";
import type { FactorProof } from "./factor-proof.js";
import { type Throttle, throttleKeys } from "./throttle.js";
import { authenticationOptions, registrationOptions, verifyRegistration } from "./webauthn.js";

export interface FactorView {
  readonly id: string;
  readonly kind: FactorKind;
  readonly label: string;
  readonly createdAt: number;
  readonly confirmed: boolean;
  readonly lastUsedAt: number | null;
}

export interface Factors {
  list(user: string): Promise<FactorView[]>;
  /** Start a TOTP enrolment: the shared secret, shown once. @throws ERR_FORBIDDEN after a fallback login */
  enrollTotp(ctx: RequestContext, label: string): Promise<{ factorId: string; secret: string; uri: string }>;
  /**
   * A confirmed TOTP factor for a configured user, by an operator (audited and alarmed like any
   * enrolment). @throws ERR_VALIDATION when `user` is not configured
   */
  provisionTotp(ctx: RequestContext, user: string, label: string): Promise<{ factorId: string; secret: string }>;
  /** Start registering a security key or passkey: the browser's creation options. @throws ERR_FORBIDDEN */
  enrollWebauthn(ctx: RequestContext, label: string): Promise<{ factorId: string; options: unknown }>;
  /**
   * Finish enrolling: a TOTP factor's first code, or the key's registration answer.
   * @throws ERR_FORBIDDEN, ERR_LOCKED_OUT, ERR_UNAUTHENTICATED (a wrong proof, counted), ERR_NOT_FOUND
   */
  confirm(ctx: RequestContext, factorId: string, proof: FactorProof): Promise<FactorView>;
  /** Assertion options for `user`'s security keys (a decoy for a name without one). */
  webauthnChallenge(user: string): Promise<unknown>;
  /** A new batch of recovery codes (older unused ones stop working); shown once. @throws ERR_FORBIDDEN */
  newRecoveryCodes(ctx: RequestContext): Promise<string[]>;
  /** @throws ERR_FORBIDDEN, ERR_NOT_FOUND (not the caller's, or removed already) */
  remove(ctx: RequestContext, factorId: string): Promise<void>;
}

export const factorView = (f: LocalFactor): FactorView => ({
  id: f.id,
  kind: f.kind,
  label: f.label,
  createdAt: f.createdAt,
  confirmed: f.kind === "recovery" || f.confirmedAt !== null,
  lastUsedAt: f.usedAt,
});

/** Factor management needs a full login (IdP session or API token), never a fallback one. */
const requireFullLogin = (ctx: RequestContext, what: string) => {
  if (ctx.auth?.method === "fallback") {
    throw new BreakglassError(
      "ERR_FORBIDDEN",
      `${what} needs a normal login: a login via local fallback may only request break-glass roles`,
    );
  }
};

export function createFactors(deps: {
  readonly config: Pick<AuthConfig, "totpIssuer" | "webauthn">;
  readonly policy: Policy;
  readonly store: Transactions<FactorWrites & StateWrites & AuditTx> & FactorReads;
  readonly audit: AuditAppender;
  readonly clock: Clock;
  readonly ids: IdGenerator;
  readonly box: SecretBox;
  readonly throttle: Throttle;
}): Factors {
  const { config, policy, store, audit, clock, ids, box, throttle } = deps;

  /** A factor as first stored: unused, not removed. */
  const newFactor = (
    id: string,
    user: string,
    kind: FactorKind,
    label: string,
    secret: string,
    confirmedAt: number | null,
  ): LocalFactor => ({
    id,
    user,
    kind,
    label,
    secret,
    createdAt: clock.now(),
    confirmedAt,
    lastStep: null,
    usedAt: null,
    removedAt: null,
  });

  const enrolled = (ctx: RequestContext, now: number, data: Record<string, unknown>) =>
    stamp(nonGrantEvent("auth.factor_enrolled", ctx.actor, now, data), ctx);

  return {
    async list(user) {
      return (await store.listFactors(user)).map(factorView);
    },

    async enrollTotp(ctx, label) {
      requireFullLogin(ctx, "enrolling a factor");
      const secret = new OTPAuth.Secret({ size: 20 });
      const id = ids.next("f");
      const factor = newFactor(
        id,
        ctx.actor,
        "totp",
        label.trim() || "authenticator app",
        sealTotpSecret(box, id, secret.base32),
        null,
      );
      await store.transaction((tx) => tx.saveFactor(factor));
      const uri = totpOf(config.totpIssuer, box, factor, ctx.actor).toString();
      return { factorId: id, secret: secret.base32, uri };
    },

    async provisionTotp(ctx, user, label) {
      if (!policy.users.has(user)) {
        throw new BreakglassError("ERR_VALIDATION", `"${user}" is not a configured user`, { user });
      }
      const secret = new OTPAuth.Secret({ size: 20 });
      const id = ids.next("f");
      const now = clock.now();
      await store.transaction(async (tx) => {
        await tx.saveFactor(newFactor(id, user, "totp", label, sealTotpSecret(box, id, secret.base32), now));
        await audit.append(tx, [
          enrolled(ctx, now, { user, factorId: id, kind: "totp", label, provisionedBy: ctx.actor }),
        ]);
      });
      return { factorId: id, secret: secret.base32 };
    },

    async enrollWebauthn(ctx, label) {
      requireFullLogin(ctx, "enrolling a factor");
      const options = await registrationOptions(config.webauthn, ctx.actor, await store.listFactors(ctx.actor));
      const id = ids.next("f");
      const factor = newFactor(
        id,
        ctx.actor,
        "webauthn",
        label.trim() || "security key",
        box.seal(options.challenge, `factor:${id}`),
        null,
      );
      await store.transaction((tx) => tx.saveFactor(factor));
      return { factorId: id, options };
    },

    async confirm(ctx, factorId, proof) {
      requireFullLogin(ctx, "enrolling a factor");
      const keys = throttleKeys(ctx, ctx.actor);
      await throttle.assertNotLocked(keys);
      const f = (await store.listFactors(ctx.actor)).find((x) => x.id === factorId && x.kind !== "recovery");
      if (!f) throw new BreakglassError("ERR_NOT_FOUND", `no factor ${factorId} of yours is being enrolled`);
      if (f.confirmedAt !== null) return factorView(f);
      const now = clock.now();
      let confirmed: LocalFactor;
      if (f.kind === "totp") {
        const step = acceptedStep(totpOf(config.totpIssuer, box, f, ctx.actor), proof.code ?? "", now);
        if (step === null) return throttle.fail(ctx, keys, "TOTP enrolment check");
        confirmed = { ...f, confirmedAt: now, lastStep: step, usedAt: now };
      } else {
        const challenge = box.open(f.secret, `factor:${f.id}`).reveal();
        const r =
          proof.webauthn === undefined ? null : await verifyRegistration(config.webauthn, challenge, proof.webauthn);
        if (!r) return throttle.fail(ctx, keys, "security key registration");
        confirmed = { ...f, secret: r.secret, confirmedAt: now, lastStep: r.counter, usedAt: now };
      }
      await throttle.succeed(keys);
      const first = await store.transaction(async (tx) => {
        // Confirmed by this call, or by a concurrent one first (then one enrolment, one event).
        if (!(await tx.confirmFactor(confirmed))) return false;
        await audit.append(tx, [enrolled(ctx, now, { user: ctx.actor, factorId, kind: f.kind, label: f.label })]);
        return true;
      });
      if (!first) {
        const current = (await store.listFactors(ctx.actor)).find((x) => x.id === factorId);
        if (!current) throw new BreakglassError("ERR_NOT_FOUND", `no factor ${factorId} of yours is being enrolled`);
        return factorView(current);
      }
      return factorView(confirmed);
    },

    async webauthnChallenge(user) {
      const name = normalizeUserName(user);
      return authenticationOptions(config.webauthn, store, name, await store.listFactors(name), clock.now(), (u) =>
        // 32 bytes, like the credential ids of common security keys.
        box.mac("webauthn-decoy", u).slice(0, 43),
      );
    },

    async newRecoveryCodes(ctx) {
      requireFullLogin(ctx, "creating recovery codes");
      const now = clock.now();
      const codes = newRecoveryCodes();
      await store.transaction(async (tx) => {
        // The codes the database has now (a concurrent replacement's included), not a list read before.
        const old = await tx.removeFactors(ctx.actor, { kind: "recovery" }, now);
        for (const code of codes) {
          await tx.saveFactor(
            newFactor(ids.next("f"), ctx.actor, "recovery", "recovery code", recoveryCodeHash(code), now),
          );
        }
        await audit.append(tx, [
          enrolled(ctx, now, {
            user: ctx.actor,
            kind: "recovery",
            count: codes.length,
            replaced: old.filter((f) => f.usedAt === null).length,
          }),
        ]);
      });
      return codes;
    },

    async remove(ctx, factorId) {
      requireFullLogin(ctx, "removing a factor");
      const now = clock.now();
      await store.transaction(async (tx) => {
        // Removed by this call, or by a concurrent one first (then it is gone: one event, not two).
        const [removed] = await tx.removeFactors(ctx.actor, { id: factorId }, now);
        if (!removed) throw new BreakglassError("ERR_NOT_FOUND", `no factor ${factorId} of yours`);
        await audit.append(tx, [
          stamp(
            nonGrantEvent("auth.factor_removed", ctx.actor, now, {
              user: ctx.actor,
              factorId,
              kind: removed.kind,
              label: removed.label,
            }),
            ctx,
          ),
        ]);
      });
    },
  };
}
