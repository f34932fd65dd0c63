import * as OTPAuth from "otpauth";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { makePolicy } from "../../test/support/core-fixtures.js";
import { ctx } from "../../test/support/ctx.js";
import { openUnitStore, type UnitStore } from "../../test/support/unit-store.js";
import type { AuthConfig, OidcConfig } from "../config/app-config.js";
import { createDirectory, type Directory } from "./directory.js";
import { createProofCheck } from "./factor-proof.js";
import { createFactors, type Factors } from "./factors.js";
import { createFallbackLogin, type FallbackLogin } from "./fallback.js";
import type { IdpHealth } from "./oidc.js";
import { createSessions, type Sessions } from "./sessions.js";
import { createThrottle } from "./throttle.js";

const HOUR = 3_600_000;
const RP = { id: "localhost", origin: "http://localhost:8080", name: "Breakglass" };
const OIDC: OidcConfig = {
  issuer: "https://idp.example",
  clientId: "breakglass",
  clientSecret: null,
  redirectUrl: "http://localhost:8080/auth/callback",
  scopes: ["openid"],
  usernameClaim: "preferred_username",
  groupsClaim: "groups",
  groupMap: new Map(),
  allowInsecureHttp: false,
  refreshIntervalMs: 15 * 60_000,
  healthIntervalMs: 30_000,
};
const FALLBACK: AuthConfig["fallback"] = { enabled: true, sessionTtlMs: 2 * HOUR, maxMembershipAgeMs: 24 * HOUR };
const DOWN: IdpHealth = { reachable: false, lastCheckAt: null, lastError: "connect ECONNREFUSED", declaredDown: null };

let u: UnitStore;
let directory: Directory;
let factors: Factors;
let sessions: Sessions;
let bobSecret: string;

const fallbackWith = (config: Pick<AuthConfig, "fallback" | "oidc">, dir: Directory = directory): FallbackLogin => {
  const lockout = { maxFailures: 3, windowMs: 900_000, durationMs: 900_000 };
  const throttle = createThrottle({ lockout, store: u.store, audit: u.audit, clock: u.clock });
  const checkProof = createProofCheck({
    config: { totpIssuer: "test", webauthn: RP },
    store: u.store,
    audit: u.audit,
    clock: u.clock,
    box: u.box,
  });
  return createFallbackLogin({
    config,
    policy: dir.policy,
    directory: dir,
    clock: u.clock,
    throttle,
    checkProof,
    sessions,
  });
};

beforeEach(async () => {
  u = await openUnitStore({ now: Date.UTC(2026, 0, 5, 3, 0, 0) });
  directory = createDirectory(makePolicy(), FALLBACK.maxMembershipAgeMs);
  const deps = { store: u.store, audit: u.audit, clock: u.clock, ids: u.ids, box: u.box };
  sessions = createSessions({ ...deps, policy: directory.policy, directory });
  factors = createFactors({
    ...deps,
    config: { totpIssuer: "test", webauthn: RP },
    policy: directory.policy,
    throttle: createThrottle({ lockout: { maxFailures: 3, windowMs: 1, durationMs: 1 }, ...deps }),
  });
  bobSecret = (await factors.provisionTotp(ctx("erin"), "bob", "phone")).secret;
});
afterEach(() => u.close());

const code = (secret = bobSecret) =>
  new OTPAuth.TOTP({ secret: OTPAuth.Secret.fromBase32(secret), digits: 6, period: 30 }).generate({
    timestamp: u.clock.now(),
  });
const from = (address: string) => ctx("anonymous", { sourceAddress: address });

describe("the fallback login", () => {
  it("opens a short, factor-verified session while the IdP is down, and pages security", async () => {
    const login = fallbackWith({ fallback: FALLBACK, oidc: OIDC });
    const issued = await login(from("10.0.0.1"), " Bob ", { code: code() }, DOWN);
    expect(issued.session).toMatchObject({
      user: "bob",
      method: "fallback",
      factorAt: u.clock.now(),
      expiresAt: u.clock.now() + FALLBACK.sessionTtlMs,
    });
    const [event] = await u.events("auth.fallback_login");
    expect(event).toMatchObject({ actor: "bob", sourceAddress: "10.0.0.1" });
    expect(event?.data).toMatchObject({
      user: "bob",
      factor: "totp",
      idp: "unreachable: connect ECONNREFUSED",
      membershipAgeS: null,
      membershipStale: false,
      groups: [],
      sessionId: issued.session.id,
    });
    expect(event?.data).not.toHaveProperty("drill");
    const alarm = (await u.alarms()).find((a) => a.eventType === "auth.fallback_login");
    expect(alarm?.channel).toBe("security");
    expect(JSON.parse(alarm?.payload ?? "{}")).toMatchObject({ severity: "critical" });
  });

  it("is refused while the IdP is reachable, with no IdP configured, or when switched off", async () => {
    const proof = { code: code() };
    const up = { ...DOWN, reachable: true };
    for (const [login, idp] of [
      [fallbackWith({ fallback: FALLBACK, oidc: OIDC }), up],
      [fallbackWith({ fallback: FALLBACK, oidc: null }), DOWN],
      [fallbackWith({ fallback: { ...FALLBACK, enabled: false }, oidc: OIDC }), DOWN],
    ] as const) {
      await expect(login(from("10.0.0.1"), "bob", proof, idp)).rejects.toMatchObject({ code: "ERR_FORBIDDEN" });
    }
    expect(await u.events("auth.fallback_login")).toEqual([]);
  });

  it("says why the IdP counts as down, and marks a drill's login", async () => {
    const login = fallbackWith({ fallback: FALLBACK, oidc: OIDC });
    const declared = { ...DOWN, declaredDown: { by: "erin", at: 1, reason: "IdP returns garbage" } };
    await login(from("10.0.0.1"), "bob", { code: code() }, declared, { drill: true });
    expect((await u.events("auth.fallback_login"))[0]?.data).toMatchObject({
      idp: "declared down by erin",
      drill: true,
    });
  });

  it("reports the age of the IdP's last word on the person, and whether it is too old to count", async () => {
    const login = fallbackWith({ fallback: FALLBACK, oidc: OIDC });
    directory.apply(
      {
        user: "frank",
        issuer: OIDC.issuer,
        subject: "sub-frank",
        groups: ["oncall"],
        email: null,
        name: null,
        refreshedAt: u.clock.now(),
      },
      u.clock.now(),
    );
    const { secret } = await factors.provisionTotp(ctx("erin"), "frank", "phone");
    u.clock.advance(FALLBACK.maxMembershipAgeMs + 1000);
    await login(from("10.0.0.1"), "frank", { code: code(secret) }, DOWN);
    expect((await u.events("auth.fallback_login"))[0]?.data).toMatchObject({
      user: "frank",
      membershipAgeS: FALLBACK.maxMembershipAgeMs / 1000 + 1,
      membershipStale: true,
      groups: ["oncall"],
    });
  });

  it("answers and counts a name that does not exist exactly like one that does", async () => {
    const login = fallbackWith({ fallback: FALLBACK, oidc: OIDC });
    const attempt = (user: string, address: string) =>
      login(from(address), user, { code: "000000" }, DOWN).catch((e: { code: string; message: string }) => ({
        code: e.code,
        message: e.message,
      }));
    const answers: Record<string, unknown[]> = { bob: [], zed: [] };
    for (const user of ["bob", "zed"]) {
      for (let i = 1; i <= 4; i++) answers[user]?.push(await attempt(user, `10.0.${user.length}.${i}`));
    }
    expect(answers.zed).toEqual(answers.bob);
    expect(answers.bob?.at(-1)).toMatchObject({ code: "ERR_LOCKED_OUT" });
    expect(answers.bob?.[0]).toEqual({ code: "ERR_UNAUTHENTICATED", message: "fallback login failed" });
  });

  it("refuses a proof by a known factor of a name the broker does not know", async () => {
    // A factor left behind for someone no longer configured does not open a session.
    const { secret } = await factors.provisionTotp(ctx("erin"), "alice", "phone");
    const policy = makePolicy();
    const users = new Map(policy.users);
    users.delete("alice");
    const without = createDirectory({ ...policy, users }, FALLBACK.maxMembershipAgeMs);
    const login = fallbackWith({ fallback: FALLBACK, oidc: OIDC }, without);
    await expect(login(from("10.0.0.1"), "alice", { code: code(secret) }, DOWN)).rejects.toMatchObject({
      code: "ERR_UNAUTHENTICATED",
    });
  });

  it("is refused while locked, before anything else is checked", async () => {
    const login = fallbackWith({ fallback: FALLBACK, oidc: OIDC });
    for (let i = 0; i < 3; i++) await login(from("10.0.0.1"), "bob", { code: "000000" }, DOWN).catch(() => {});
    await expect(login(from("10.0.0.1"), "bob", { code: code() }, DOWN)).rejects.toMatchObject({
      code: "ERR_LOCKED_OUT",
    });
    await expect(login(from("10.0.0.1"), "bob", { code: code() }, { ...DOWN, reachable: true })).rejects.toMatchObject({
      code: "ERR_LOCKED_OUT",
    });
  });
});
