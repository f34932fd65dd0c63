import * as OTPAuth from "otpauth";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { makePolicy } from "../../test/support/core-fixtures.js";
import { ctx } from "../../test/support/ctx.js";
import { SoftAuthenticator } from "../../test/support/soft-authenticator.js";
import { openUnitStore, type UnitStore } from "../../test/support/unit-store.js";
import { normalizeCode } from "./factor-codes.js";
import { createProofCheck, type ProofCheck } from "./factor-proof.js";
import { createFactors, type Factors } from "./factors.js";
import { createThrottle } from "./throttle.js";

const RP = { id: "localhost", origin: "http://localhost:8080", name: "Breakglass" };
const CONFIG = { totpIssuer: "Breakglass test", webauthn: RP };

let u: UnitStore;
let factors: Factors;
let check: ProofCheck;

beforeEach(async () => {
  // On a step boundary, so "one step earlier" is exactly 30 s back.
  u = await openUnitStore({ now: Date.UTC(2026, 0, 5, 3, 0, 0) });
  const lockout = { maxFailures: 5, windowMs: 900_000, durationMs: 900_000 };
  const throttle = createThrottle({ lockout, store: u.store, audit: u.audit, clock: u.clock });
  const deps = { store: u.store, audit: u.audit, clock: u.clock, box: u.box };
  factors = createFactors({ ...deps, config: CONFIG, policy: makePolicy(), ids: u.ids, throttle });
  check = createProofCheck({ ...deps, config: CONFIG });
});
afterEach(() => u.close());

const codeOf = (secret: string, at: number) =>
  new OTPAuth.TOTP({ secret: OTPAuth.Secret.fromBase32(secret), digits: 6, period: 30 }).generate({ timestamp: at });

describe("TOTP codes", () => {
  it("accept one step of clock skew either way, not two", async () => {
    const { secret } = await factors.provisionTotp(ctx("erin"), "bob", "phone");
    const now = () => u.clock.now();
    expect(await check("bob", { code: codeOf(secret, now() - 60_000) })).toBeNull();
    expect(await check("bob", { code: codeOf(secret, now() + 60_000) })).toBeNull();
    expect(await check("bob", { code: codeOf(secret, now() - 30_000) })).not.toBeNull();
    u.clock.advance(60_000);
    expect(await check("bob", { code: codeOf(secret, now() + 30_000) })).not.toBeNull();
  });

  it("accept each code once, and no earlier code after a later one", async () => {
    const { secret, factorId } = await factors.provisionTotp(ctx("erin"), "bob", "phone");
    const code = codeOf(secret, u.clock.now());
    expect((await check("bob", { code }))?.id).toBe(factorId);
    expect(await check("bob", { code })).toBeNull();
    expect(await check("bob", { code: codeOf(secret, u.clock.now() - 30_000) })).toBeNull();
  });

  it("let only one of two requests with the same code pass", async () => {
    const { secret } = await factors.provisionTotp(ctx("erin"), "bob", "phone");
    const code = codeOf(secret, u.clock.now());
    const results = await Promise.all([check("bob", { code }), check("bob", { code })]);
    expect(results.filter((r) => r !== null)).toHaveLength(1);
  });

  it("are checked against the user's own factors only", async () => {
    const { secret } = await factors.provisionTotp(ctx("erin"), "bob", "phone");
    await factors.provisionTotp(ctx("erin"), "carol", "phone");
    expect(await check("carol", { code: codeOf(secret, u.clock.now()) })).toBeNull();
  });
});

describe("recovery codes", () => {
  it("accept a code once, however it is typed, and record how many are left", async () => {
    const codes = await factors.newRecoveryCodes(ctx("bob"));
    const typed = ` ${(codes[3] ?? "").toUpperCase().replace(/-/g, " - ")} `;
    expect(normalizeCode(typed)).toBe((codes[3] ?? "").replace(/-/g, ""));
    const used = await check("bob", { code: typed });
    expect(used?.kind).toBe("recovery");
    expect(await check("bob", { code: codes[3] })).toBeNull();
    expect(await check("carol", { code: codes[4] })).toBeNull();
    const [event] = await u.events("auth.recovery_code_used");
    expect(event).toMatchObject({ actor: "bob", data: { user: "bob", factorId: used?.id, left: 9 } });
  });
});

describe("security keys", () => {
  const enrolled = async () => {
    const key = new SoftAuthenticator(RP.origin);
    const started = await factors.enrollWebauthn(ctx("bob"), "key");
    await factors.confirm(ctx("bob"), started.factorId, {
      webauthn: key.create(started.options as Record<string, unknown>),
    });
    return key;
  };
  const challenge = async () => (await factors.webauthnChallenge("bob")) as Record<string, unknown>;

  it("refuse an assertion without a challenge pending, or for one older than two minutes", async () => {
    const key = await enrolled();
    const options = await challenge();
    const first = key.get(options, RP.id);
    expect(await check("bob", { webauthn: first })).not.toBeNull();
    // Answered again after its challenge was consumed: nothing is pending.
    expect(await check("bob", { webauthn: key.get(options, RP.id) })).toBeNull();
    const late = await challenge();
    u.clock.advance(2 * 60_000 + 1);
    expect(await check("bob", { webauthn: key.get(late, RP.id) })).toBeNull();
    expect(await check("bob", { webauthn: key.get(await challenge(), RP.id) })).not.toBeNull();
  });

  it("refuse an assertion whose signature counter is behind the last one accepted (a cloned key)", async () => {
    const key = await enrolled();
    expect(await check("bob", { webauthn: key.get(await challenge(), RP.id) })).not.toBeNull(); // counter 1
    // A clone of the key has been used up to counter 5: this key's next answer (counter 2) is behind.
    const [factor] = await u.store.listFactors("bob");
    if (!factor) throw new Error("no factor");
    expect(factor.lastStep).toBe(1);
    await u.store.transaction((tx) => tx.saveFactor({ ...factor, lastStep: 5 }));
    expect(await check("bob", { webauthn: key.get(await challenge(), RP.id) })).toBeNull(); // counter 2
    for (let i = 3; i <= 5; i++) key.get(await challenge(), RP.id); // counters 3-5, never presented
    expect(await check("bob", { webauthn: key.get(await challenge(), RP.id) })).not.toBeNull(); // counter 6
  });

  it("refuse an assertion by another user's key", async () => {
    const key = await enrolled();
    const started = await factors.enrollWebauthn(ctx("carol"), "key");
    await factors.confirm(ctx("carol"), started.factorId, {
      webauthn: new SoftAuthenticator(RP.origin).create(started.options as Record<string, unknown>),
    });
    const forBob = key.get(await challenge(), RP.id);
    await factors.webauthnChallenge("carol");
    expect(await check("carol", { webauthn: forBob })).toBeNull();
  });
});
