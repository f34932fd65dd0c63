import * as OTPAuth from "otpauth";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { makePolicy } from "../../test/support/core-fixtures.js";
import { ctx } from "../../test/support/ctx.js";
import { SoftAuthenticator } from "../../test/support/soft-authenticator.js";
import { openUnitStore, type UnitStore } from "../../test/support/unit-store.js";
import type { RequestContext } from "../core/request-context.js";
import { createProofCheck, type ProofCheck } from "./factor-proof.js";
import { createFactors, type Factors } from "./factors.js";
import { createThrottle } from "./throttle.js";
import { MIN_ALLOWED_CREDENTIALS } from "./webauthn.js";

const RP = { id: "localhost", origin: "http://localhost:8080", name: "Breakglass" };
const CONFIG = { totpIssuer: "Breakglass test", webauthn: RP };
const LOCKOUT = { maxFailures: 3, windowMs: 900_000, durationMs: 900_000 };

let u: UnitStore;
let factors: Factors;
let check: ProofCheck;

beforeEach(async () => {
  u = await openUnitStore({ now: Date.UTC(2026, 0, 5, 3, 0, 0) });
  const throttle = createThrottle({ lockout: LOCKOUT, store: u.store, audit: u.audit, clock: u.clock });
  const deps = { store: u.store, audit: u.audit, clock: u.clock, box: u.box };
  factors = createFactors({ ...deps, config: CONFIG, policy: makePolicy(), ids: u.ids, throttle });
  check = createProofCheck({ ...deps, config: CONFIG });
});
afterEach(() => u.close());

const codeOf = (secret: string, at: number) =>
  new OTPAuth.TOTP({ secret: OTPAuth.Secret.fromBase32(secret), digits: 6, period: 30 }).generate({ timestamp: at });
const bob = ctx("bob", { auth: { method: "oidc", sessionId: "ws_1", factorAt: null } });
const bobFallback: RequestContext = { ...bob, auth: { method: "fallback", sessionId: "ws_2", factorAt: 1 } };

describe("TOTP enrolment", () => {
  it("gives the secret once, counts nothing until the first valid code confirms it, then pages security", async () => {
    const { factorId, secret, uri } = await factors.enrollTotp(bob, "  ");
    expect(uri).toContain("otpauth://totp/");
    expect(uri).toContain(`secret=${secret}`);
    const stored = (await u.store.listFactors("bob"))[0];
    expect(stored?.secret).not.toContain(secret);
    expect(await factors.list("bob")).toMatchObject([{ id: factorId, label: "authenticator app", confirmed: false }]);
    // Not usable before it is confirmed.
    expect(await check("bob", { code: codeOf(secret, u.clock.now()) })).toBeNull();
    expect(await u.events("auth.factor_enrolled")).toEqual([]);

    const view = await factors.confirm(bob, factorId, { code: codeOf(secret, u.clock.now()) });
    expect(view).toMatchObject({ id: factorId, kind: "totp", confirmed: true, lastUsedAt: u.clock.now() });
    expect((await u.events("auth.factor_enrolled"))[0]?.data).toEqual({
      user: "bob",
      factorId,
      kind: "totp",
      label: "authenticator app",
    });
    expect((await u.alarms()).map((a) => a.channel)).toEqual(["security"]);
    // The confirming code was used: the same code does not sign in again.
    expect(await check("bob", { code: codeOf(secret, u.clock.now()) })).toBeNull();
    u.clock.advance(30_000);
    expect((await check("bob", { code: codeOf(secret, u.clock.now()) }))?.id).toBe(factorId);
  });

  it("counts a wrong first code as a failed attempt, and locks like a login", async () => {
    const { factorId } = await factors.enrollTotp(bob, "phone");
    for (let i = 0; i < LOCKOUT.maxFailures; i++) {
      await expect(factors.confirm(bob, factorId, { code: "000000" })).rejects.toMatchObject({
        code: "ERR_UNAUTHENTICATED",
        message: "TOTP enrolment check failed",
      });
    }
    await expect(factors.confirm(bob, factorId, { code: "000000" })).rejects.toMatchObject({
      code: "ERR_LOCKED_OUT",
    });
  });

  it("records a confirmation once when two arrive together", async () => {
    const { factorId, secret } = await factors.enrollTotp(bob, "phone");
    const code = codeOf(secret, u.clock.now());
    const views = await Promise.all([
      factors.confirm(bob, factorId, { code }),
      factors.confirm(bob, factorId, { code }),
    ]);
    expect(views.map((v) => v.confirmed)).toEqual([true, true]);
    expect(await u.events("auth.factor_enrolled")).toHaveLength(1);
  });

  it("refuses to confirm someone else's factor, or a recovery code", async () => {
    const { factorId } = await factors.enrollTotp(bob, "phone");
    await expect(factors.confirm(ctx("carol"), factorId, { code: "123456" })).rejects.toMatchObject({
      code: "ERR_NOT_FOUND",
    });
    await factors.newRecoveryCodes(bob);
    const recovery = (await factors.list("bob")).find((f) => f.kind === "recovery");
    await expect(factors.confirm(bob, recovery?.id ?? "", { code: "123456" })).rejects.toMatchObject({
      code: "ERR_NOT_FOUND",
    });
  });

  it("provisions a confirmed factor for a configured user only, recording who provisioned it", async () => {
    await expect(factors.provisionTotp(ctx("erin"), "zed", "drill")).rejects.toMatchObject({
      code: "ERR_VALIDATION",
    });
    const { factorId, secret } = await factors.provisionTotp(ctx("erin"), "alice", "drill");
    expect((await check("alice", { code: codeOf(secret, u.clock.now()) }))?.id).toBe(factorId);
    expect((await u.events("auth.factor_enrolled"))[0]).toMatchObject({
      actor: "erin",
      data: { user: "alice", factorId, kind: "totp", label: "drill", provisionedBy: "erin" },
    });
  });
});

describe("managing factors needs a full login", () => {
  it("refuses enrolment, recovery codes and removal after a fallback login", async () => {
    const { factorId } = await factors.enrollTotp(bob, "phone");
    for (const attempt of [
      () => factors.enrollTotp(bobFallback, "phone"),
      () => factors.enrollWebauthn(bobFallback, "key"),
      () => factors.confirm(bobFallback, factorId, { code: "123456" }),
      () => factors.newRecoveryCodes(bobFallback),
      () => factors.remove(bobFallback, factorId),
    ]) {
      await expect(attempt()).rejects.toMatchObject({ code: "ERR_FORBIDDEN" });
    }
    expect(await factors.list("bob")).toHaveLength(1);
  });
});

describe("recovery codes", () => {
  it("makes 10 codes shown once, stored hashed, and a new batch replaces the unused old ones", async () => {
    const first = await factors.newRecoveryCodes(bob);
    expect(first).toHaveLength(10);
    expect(new Set(first).size).toBe(10);
    for (const code of first) expect(code).toMatch(/^[0-9a-f]{5}-[0-9a-f]{5}-[0-9a-f]{5}-[0-9a-f]{5}$/);
    const stored = JSON.stringify(await u.store.listFactors("bob"));
    for (const code of first) expect(stored).not.toContain(code.replace(/-/g, ""));
    expect((await check("bob", { code: first[0] }))?.kind).toBe("recovery");

    const second = await factors.newRecoveryCodes(bob);
    expect(await check("bob", { code: first[1] })).toBeNull();
    expect((await check("bob", { code: second[1] }))?.kind).toBe("recovery");
    expect((await u.events("auth.factor_enrolled")).map((e) => e.data)).toEqual([
      { user: "bob", kind: "recovery", count: 10, replaced: 0 },
      { user: "bob", kind: "recovery", count: 10, replaced: 9 },
    ]);
  });
});

describe("removal", () => {
  it("removes one's own factor once, and says not found for another's or a second time", async () => {
    const { factorId } = await factors.provisionTotp(ctx("erin"), "bob", "phone");
    await expect(factors.remove(ctx("carol"), factorId)).rejects.toMatchObject({ code: "ERR_NOT_FOUND" });
    await factors.remove(bob, factorId);
    await expect(factors.remove(bob, factorId)).rejects.toMatchObject({ code: "ERR_NOT_FOUND" });
    expect(await factors.list("bob")).toEqual([]);
    expect((await u.events("auth.factor_removed")).map((e) => e.data)).toEqual([
      { user: "bob", factorId, kind: "totp", label: "phone" },
    ]);
  });
});

describe("security keys", () => {
  it("registers a key from the browser's answer and accepts each of its assertions once", async () => {
    const key = new SoftAuthenticator(RP.origin);
    const started = await factors.enrollWebauthn(bob, "");
    const options = started.options as Record<string, unknown>;
    const view = await factors.confirm(bob, started.factorId, { webauthn: key.create(options) });
    expect(view).toMatchObject({ kind: "webauthn", label: "security key", confirmed: true });

    const challenge = (await factors.webauthnChallenge("bob")) as Record<string, unknown>;
    const assertion = key.get(challenge, RP.id);
    expect((await check("bob", { webauthn: assertion }))?.id).toBe(started.factorId);
    // The challenge was consumed: the same assertion again is refused.
    expect(await check("bob", { webauthn: assertion })).toBeNull();
  });

  it("refuses a registration made for another origin, counted as a failure", async () => {
    const started = await factors.enrollWebauthn(bob, "key");
    const phished = new SoftAuthenticator("https://breakglass.evil.example");
    await expect(
      factors.confirm(bob, started.factorId, { webauthn: phished.create(started.options as Record<string, unknown>) }),
    ).rejects.toMatchObject({ code: "ERR_UNAUTHENTICATED", message: "security key registration failed" });
    expect((await factors.list("bob"))[0]?.confirmed).toBe(false);
  });

  it("answers a name without a key with a stable decoy, remembering nothing", async () => {
    const a = (await factors.webauthnChallenge("carol")) as { allowCredentials: { id: string }[] };
    const b = (await factors.webauthnChallenge("Carol")) as { allowCredentials: { id: string }[] };
    const c = (await factors.webauthnChallenge("nobody")) as { allowCredentials: { id: string }[] };
    expect(a.allowCredentials.map((x) => x.id)).toEqual(b.allowCredentials.map((x) => x.id));
    expect(a.allowCredentials[0]?.id).not.toBe(c.allowCredentials[0]?.id);
    expect(await u.store.listState("webauthn:")).toEqual([]);
  });

  it("lists as many credential ids for a name with two keys as for one without: its keys among decoys, sorted", async () => {
    const keys = [new SoftAuthenticator(RP.origin), new SoftAuthenticator(RP.origin)];
    const ids: string[] = [];
    for (const key of keys) {
      const started = await factors.enrollWebauthn(bob, "");
      const created = key.create(started.options as Record<string, unknown>);
      ids.push(created.id as string);
      await factors.confirm(bob, started.factorId, { webauthn: created });
    }
    type Options = { allowCredentials: { id: string; transports: string[] }[] };
    const mine = (await factors.webauthnChallenge("bob")) as Options;
    const none = (await factors.webauthnChallenge("nobody")) as Options;
    expect(mine.allowCredentials).toHaveLength(MIN_ALLOWED_CREDENTIALS);
    expect(none.allowCredentials).toHaveLength(MIN_ALLOWED_CREDENTIALS);
    expect(mine.allowCredentials.map((c) => c.id)).toEqual(expect.arrayContaining(ids));
    const sorted = [...mine.allowCredentials.map((c) => c.id)].sort();
    expect(mine.allowCredentials.map((c) => c.id)).toEqual(sorted);
    expect(new Set(mine.allowCredentials.map((c) => JSON.stringify(c.transports))).size).toBe(1);
    expect(mine.allowCredentials[0]?.transports).toEqual(none.allowCredentials[0]?.transports);
    // Either key signs the challenge.
    const assertion = keys[1]?.get(mine as unknown as Record<string, unknown>, RP.id);
    expect((await check("bob", { webauthn: assertion }))?.id).toBeDefined();
  });
});
