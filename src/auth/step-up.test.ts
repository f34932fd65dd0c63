import * as OTPAuth from "otpauth";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { makePolicy } from "../../test/support/core-fixtures.js";
import { ctx } from "../../test/support/ctx.js";
import { openUnitStore, type UnitStore } from "../../test/support/unit-store.js";
import type { RequestContext } from "../core/request-context.js";
import { createDirectory } from "./directory.js";
import { createProofCheck } from "./factor-proof.js";
import { createFactors } from "./factors.js";
import { createSessions, type IssuedSession, type Sessions } from "./sessions.js";
import { createStepUp, type StepUp } from "./step-up.js";
import { createThrottle } from "./throttle.js";

const RP = { id: "localhost", origin: "http://localhost:8080", name: "Breakglass" };
const CONFIG = { totpIssuer: "test", webauthn: RP };

let u: UnitStore;
let sessions: Sessions;
let stepUp: StepUp;
let secret: string;
let issued: IssuedSession;
let bob: RequestContext;

beforeEach(async () => {
  u = await openUnitStore({ now: Date.UTC(2026, 0, 5, 3, 0, 0) });
  const deps = { store: u.store, audit: u.audit, clock: u.clock, box: u.box };
  const directory = createDirectory(makePolicy(), 86_400_000);
  const lockout = { maxFailures: 3, windowMs: 900_000, durationMs: 900_000 };
  const throttle = createThrottle({ lockout, ...deps });
  sessions = createSessions({ ...deps, ids: u.ids, policy: directory.policy, directory });
  const factors = createFactors({ ...deps, ids: u.ids, config: CONFIG, policy: directory.policy, throttle });
  stepUp = createStepUp({ throttle, checkProof: createProofCheck({ ...deps, config: CONFIG }), sessions });
  secret = (await factors.provisionTotp(ctx("erin"), "bob", "phone")).secret;
  issued = await sessions.issue(ctx("bob"), {
    user: "bob",
    method: "oidc",
    ttlMs: 3_600_000,
    factorAt: null,
    idp: null,
    event: ["auth.login", "bob", u.clock.now(), { user: "bob" }],
    identity: null,
  });
  bob = ctx("bob", {
    sourceAddress: "10.0.0.1",
    auth: { method: "oidc", sessionId: issued.session.id, factorAt: null },
  });
});
afterEach(() => u.close());

const code = () =>
  new OTPAuth.TOTP({ secret: OTPAuth.Secret.fromBase32(secret), digits: 6, period: 30 }).generate({
    timestamp: u.clock.now(),
  });

describe("step-up", () => {
  it("marks the session with the time a second factor was verified", async () => {
    u.clock.advance(5_000);
    expect(await stepUp(bob, { code: code() })).toEqual({ factorAt: u.clock.now() });
    expect((await sessions.authenticate(issued.token.reveal())).auth.factorAt).toBe(u.clock.now());
    expect((await u.events("auth.step_up"))[0]?.data).toMatchObject({ user: "bob", factor: "totp" });
  });

  it("is refused to an API token, which has no session to mark", async () => {
    const token = ctx("bob", { auth: { method: "token", sessionId: null, factorAt: null } });
    await expect(stepUp(token, { code: code() })).rejects.toMatchObject({ code: "ERR_FORBIDDEN" });
    await expect(stepUp(ctx("bob"), { code: code() })).rejects.toMatchObject({ code: "ERR_FORBIDDEN" });
  });

  it("counts wrong codes like failed logins and locks, leaving the session unmarked", async () => {
    for (let i = 0; i < 3; i++) {
      await expect(stepUp(bob, { code: "000000" })).rejects.toMatchObject({
        code: "ERR_UNAUTHENTICATED",
        message: "second factor check failed",
      });
    }
    await expect(stepUp(bob, { code: code() })).rejects.toMatchObject({ code: "ERR_LOCKED_OUT" });
    expect((await sessions.authenticate(issued.token.reveal())).auth.factorAt).toBeNull();
    expect(await u.events("auth.step_up")).toEqual([]);
  });

  it("clears the failures a success was checked against", async () => {
    await stepUp(bob, { code: "000000" }).catch(() => {});
    await stepUp(bob, { code: "000000" }).catch(() => {});
    await stepUp(bob, { code: code() });
    await stepUp(bob, { code: "000000" }).catch(() => {});
    u.clock.advance(30_000);
    await stepUp(bob, { code: "000000" }).catch(() => {});
    expect((await stepUp(bob, { code: code() })).factorAt).toBe(u.clock.now());
  });
});
