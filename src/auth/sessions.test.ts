import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { makePolicy } from "../../test/support/core-fixtures.js";
import { ctx } from "../../test/support/ctx.js";
import { openUnitStore, type UnitStore } from "../../test/support/unit-store.js";
import type { WebSession } from "../core/records.js";
import { createDirectory, type Directory } from "./directory.js";
import { createSessions, openIdpTokens, type SessionRequest, type Sessions } from "./sessions.js";

const HOUR = 3_600_000;

let u: UnitStore;
let directory: Directory;
let sessions: Sessions;
let rechecked: WebSession[];

beforeEach(async () => {
  u = await openUnitStore();
  directory = createDirectory(makePolicy(), 24 * HOUR);
  rechecked = [];
  sessions = createSessions({
    policy: directory.policy,
    directory,
    store: u.store,
    audit: u.audit,
    clock: u.clock,
    ids: u.ids,
    box: u.box,
    recheck: async (s) => {
      rechecked.push(s);
    },
  });
});
afterEach(() => u.close());

const request = (user: string, over: Partial<SessionRequest> = {}): SessionRequest => ({
  user,
  method: "oidc",
  ttlMs: 8 * HOUR,
  factorAt: null,
  idp: null,
  event: ["auth.login", user, u.clock.now(), { user, method: "oidc" }],
  identity: null,
  ...over,
});

describe("session tokens", () => {
  it("issues ws_<id>.<secret>, stores only the secret's hash, and records the login with its session id", async () => {
    const issued = await sessions.issue(ctx("bob", { requestId: "r1", sourceAddress: "10.0.0.1" }), request("bob"));
    const token = issued.token.reveal();
    const [id, secret] = token.split(".") as [string, string];
    expect(id).toBe(issued.session.id);
    expect(id).toMatch(/^ws_/);
    const stored = await u.store.findWebSession(id);
    expect(stored?.secretHash).toMatch(/^[0-9a-f]{64}$/);
    expect(JSON.stringify(stored)).not.toContain(secret);
    expect(String(issued.token)).toBe("[redacted]");
    const [event] = await u.events("auth.login");
    expect(event).toMatchObject({ actor: "bob", requestId: "r1", sourceAddress: "10.0.0.1" });
    expect(event?.data).toEqual({ user: "bob", method: "oidc", sessionId: id });
  });

  it("authenticates the token's user and how they signed in, after the re-check", async () => {
    const issued = await sessions.issue(ctx("bob"), request("bob", { method: "fallback", factorAt: 5 }));
    expect(await sessions.authenticate(issued.token.reveal())).toEqual({
      user: "bob",
      auth: { method: "fallback", sessionId: issued.session.id, factorAt: 5 },
    });
    expect(rechecked.map((s) => s.id)).toEqual([issued.session.id]);
  });

  it("refuses a wrong secret, an unknown id and a malformed token alike", async () => {
    const issued = await sessions.issue(ctx("bob"), request("bob"));
    const [id, secret] = issued.token.reveal().split(".") as [string, string];
    const wrong = `${id}.${secret.slice(0, -1)}${secret.endsWith("A") ? "B" : "A"}`;
    for (const token of [wrong, `ws_unknown.${secret}`, secret, "", `${id}.short`]) {
      await expect(sessions.authenticate(token), token).rejects.toMatchObject({ code: "ERR_UNAUTHENTICATED" });
    }
    expect(rechecked).toEqual([]);
  });

  it("ends a session at its end, never extended by use", async () => {
    const issued = await sessions.issue(ctx("bob"), request("bob", { ttlMs: HOUR }));
    u.clock.advance(HOUR - 1);
    await sessions.authenticate(issued.token.reveal());
    u.clock.advance(1);
    await expect(sessions.authenticate(issued.token.reveal())).rejects.toMatchObject({ code: "ERR_UNAUTHENTICATED" });
  });

  it("refuses a session of someone no longer in the policy", async () => {
    const issued = await sessions.issue(ctx("zed"), request("zed"));
    await expect(sessions.authenticate(issued.token.reveal())).rejects.toMatchObject({ code: "ERR_UNAUTHENTICATED" });
  });

  it("derives the CSRF token from the session's secret: one per session, none without a token", async () => {
    const a = await sessions.issue(ctx("bob"), request("bob"));
    const b = await sessions.issue(ctx("bob"), request("bob"));
    expect(sessions.csrfFor(a.token.reveal())).toBe(a.csrf);
    expect(a.csrf).not.toBe(b.csrf);
    expect(sessions.csrfFor("not a token")).toBe("");
  });

  it("seals the IdP's tokens to the session", async () => {
    const idp = { idToken: "id.token.here", refreshToken: "rt", checkedAt: 7 };
    const issued = await sessions.issue(ctx("bob"), request("bob", { idp }));
    const sealed = issued.session.idp ?? "";
    expect(sealed).not.toContain("id.token.here");
    expect(openIdpTokens(u.box, issued.session.id, sealed)).toEqual(idp);
    expect(() => openIdpTokens(u.box, "ws_other", sealed)).toThrow();
  });

  it("saves what the IdP said about the person and applies it to the directory", async () => {
    const identity = {
      user: "frank",
      issuer: "https://idp.example",
      subject: "sub-frank",
      groups: ["oncall"],
      email: null,
      name: "Frank",
      refreshedAt: u.clock.now(),
    };
    await sessions.issue(ctx("frank"), request("frank", { identity }));
    expect(await u.store.findIdentity("frank")).toEqual(identity);
    expect(directory.policy.groups.get("oncall")?.has("frank")).toBe(true);
  });
});

describe("logout", () => {
  it("ends the session once: of two logouts at once, one records auth.logout", async () => {
    const issued = await sessions.issue(ctx("bob"), request("bob"));
    const [a, b] = await Promise.all([
      sessions.logout(ctx("bob"), issued.session.id),
      sessions.logout(ctx("bob"), issued.session.id),
    ]);
    expect([a, b].filter((x) => x !== null)).toHaveLength(1);
    expect(await u.events("auth.logout")).toHaveLength(1);
    await expect(sessions.authenticate(issued.token.reveal())).rejects.toMatchObject({ code: "ERR_UNAUTHENTICATED" });
    expect(await sessions.logout(ctx("bob"), issued.session.id)).toBeNull();
    expect(await sessions.logout(ctx("bob"), "ws_unknown")).toBeNull();
  });
});

describe("the CLI's session", () => {
  it("has the browser session's user, method and end, a token of its own, and is recorded as a CLI login", async () => {
    const from = await sessions.issue(ctx("bob"), request("bob"));
    u.clock.advance(HOUR);
    const cli = await sessions.cliSession(ctx("bob"), from.session.id);
    expect(cli.token.reveal()).not.toBe(from.token.reveal());
    expect(cli.session).toMatchObject({ user: "bob", method: "oidc", expiresAt: from.session.expiresAt, idp: null });
    const login = (await u.events("auth.login")).at(-1);
    expect(login?.data).toEqual({
      user: "bob",
      method: "oidc",
      client: "cli",
      from: from.session.id,
      sessionId: cli.session.id,
    });
  });

  it("is refused from an ended or expired session", async () => {
    const ended = await sessions.issue(ctx("bob"), request("bob"));
    await sessions.logout(ctx("bob"), ended.session.id);
    await expect(sessions.cliSession(ctx("bob"), ended.session.id)).rejects.toMatchObject({
      code: "ERR_UNAUTHENTICATED",
    });
    const old = await sessions.issue(ctx("bob"), request("bob", { ttlMs: HOUR }));
    u.clock.advance(HOUR);
    await expect(sessions.cliSession(ctx("bob"), old.session.id)).rejects.toMatchObject({
      code: "ERR_UNAUTHENTICATED",
    });
  });
});

describe("step-up", () => {
  it("records the factor's time on the session and audits it", async () => {
    const issued = await sessions.issue(ctx("bob"), request("bob"));
    u.clock.advance(60_000);
    const { factorAt } = await sessions.recordStepUp(ctx("bob"), issued.session.id, "totp");
    expect(factorAt).toBe(u.clock.now());
    expect((await sessions.authenticate(issued.token.reveal())).auth.factorAt).toBe(factorAt);
    expect((await u.events("auth.step_up"))[0]?.data).toEqual({
      user: "bob",
      sessionId: issued.session.id,
      factor: "totp",
    });
  });
});
