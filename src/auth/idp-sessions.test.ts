/**
 * The IdP login and the re-check, against a real OpenID provider on loopback (oidc-provider, the
 * authorization-code flow walked over HTTP): what the broker records, refuses and ends.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { makePolicy } from "../../test/support/core-fixtures.js";
import { ctx } from "../../test/support/ctx.js";
import { freePort } from "../../test/support/free-port.js";
import {
  IDP_CLIENT_ID,
  IDP_CLIENT_SECRET,
  startTestIdp,
  TestBrowser,
  type TestIdp,
} from "../../test/support/oidc-provider.js";
import { openUnitStore, type UnitStore } from "../../test/support/unit-store.js";
import type { OidcConfig } from "../config/app-config.js";
import { createDirectory, type Directory } from "./directory.js";
import { createIdpLogin, createIdpRecheck, type IdpRefresher } from "./idp-sessions.js";
import { createOidcLogin, type IdpLogin, type OidcLogin } from "./oidc.js";
import { createSessions, openIdpTokens, type Sessions } from "./sessions.js";

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;

let callback: http.Server;
let idp: TestIdp;
let oidc: OidcLogin;
let cfg: OidcConfig;

beforeAll(async () => {
  // Where the IdP sends the browser back: the test reads the URL, the page says nothing.
  callback = http.createServer((_req, res) => res.end("ok"));
  await new Promise<void>((r) => callback.listen(0, "127.0.0.1", r));
  const redirectUrl = `http://127.0.0.1:${(callback.address() as AddressInfo).port}/auth/callback`;
  idp = await startTestIdp({ port: await freePort(), redirectUri: redirectUrl, postLogoutUri: redirectUrl });
  cfg = {
    issuer: idp.issuer,
    clientId: IDP_CLIENT_ID,
    clientSecret: null,
    redirectUrl,
    scopes: ["openid", "profile", "email", "groups"],
    usernameClaim: "preferred_username",
    groupsClaim: "groups",
    groupMap: new Map([
      ["idp-sre", ["oncall"]],
      ["idp-db-leads", ["sre-leads"]],
    ]),
    allowInsecureHttp: true,
    refreshIntervalMs: 15 * MINUTE,
    healthIntervalMs: 30_000,
  };
  oidc = createOidcLogin(cfg, IDP_CLIENT_SECRET);
});
afterAll(async () => {
  await idp?.stop();
  await new Promise((r) => callback?.close(r));
});

let u: UnitStore;
let directory: Directory;
let sessions: Sessions;
let loginWithIdp: ReturnType<typeof createIdpLogin>;

beforeEach(async () => {
  // The IdP's tokens carry its own (wall-clock) times: the test's clock starts there.
  u = await openUnitStore({ now: Date.now() });
  directory = createDirectory(makePolicy(), 24 * HOUR);
  const refresher: IdpRefresher = {
    refresh: (token, subject, idToken) => oidc.refresh(token, subject, idToken),
    intervalMs: cfg.refreshIntervalMs,
    groupMap: cfg.groupMap,
  };
  const deps = { store: u.store, audit: u.audit, clock: u.clock, box: u.box };
  const recheck = createIdpRecheck({ ...deps, refresher, directory });
  sessions = createSessions({ ...deps, ids: u.ids, policy: directory.policy, directory, recheck });
  loginWithIdp = createIdpLogin({ ...deps, config: { sessionTtlMs: 8 * HOUR }, sessions });
});
afterEach(() => u.close());

/** Walk the IdP's login as `username`: what the IdP says about them. */
async function idpLogin(username: string): Promise<IdpLogin> {
  idp.loginAs(username);
  const { url, pending } = await oidc.begin("/", u.clock.now());
  const end = await new TestBrowser().go(url);
  return oidc.finish(new URL(end.url), pending);
}
const groupsOf = (idpGroups: readonly string[]) => [...new Set(idpGroups.flatMap((g) => cfg.groupMap.get(g) ?? []))];

describe("the IdP login", () => {
  it("records who the IdP says the person is, applies their groups, and opens a session holding its tokens", async () => {
    idp.setAccount({ sub: "sub-frank", username: "frank", email: "frank@example.test", groups: ["idp-sre"] });
    const login = await idpLogin("frank");
    const issued = await loginWithIdp(
      ctx("anonymous", { sourceAddress: "10.0.0.1" }),
      login,
      groupsOf(login.idpGroups),
    );
    expect(issued.session).toMatchObject({ user: "frank", method: "oidc", expiresAt: u.clock.now() + 8 * HOUR });
    expect(await u.store.findIdentity("frank")).toMatchObject({
      subject: "sub-frank",
      issuer: idp.issuer,
      groups: ["oncall"],
    });
    expect(directory.policy.groups.get("oncall")?.has("frank")).toBe(true);
    expect(openIdpTokens(u.box, issued.session.id, issued.session.idp ?? "")).toMatchObject({
      idToken: login.idToken,
      refreshToken: login.refreshToken,
    });
    const [event] = await u.events("auth.login");
    expect(event).toMatchObject({ actor: "frank", sourceAddress: "10.0.0.1" });
    expect(event?.data).toMatchObject({ user: "frank", method: "oidc", groups: ["oncall"], idpGroups: ["idp-sre"] });
  });

  it("refuses a user name another IdP account holds already, and pages security", async () => {
    idp.setAccount({ sub: "sub-gina", username: "gina", groups: [] });
    const first = await idpLogin("gina");
    await loginWithIdp(ctx("anonymous"), first, []);
    idp.setAccount({ sub: "sub-gina-2", username: "gina", groups: ["idp-db-leads"] });
    const impostor = await idpLogin("gina");
    await expect(loginWithIdp(ctx("anonymous"), impostor, ["sre-leads"])).rejects.toMatchObject({
      code: "ERR_UNAUTHENTICATED",
    });
    const [refused] = await u.events("auth.login_refused");
    expect(refused?.data).toMatchObject({ claimed: "gina", subject: "sub-gina-2" });
    expect((await u.alarms()).some((a) => a.eventType === "auth.login_refused")).toBe(true);
    expect(directory.policy.groups.get("sre-leads")?.has("gina")).toBe(false);
  });

  it("refuses a name the configuration could never hold, or a reserved one", async () => {
    for (const [sub, username] of [
      ["sub-sys", "system"],
      ["sub-odd", "Not A Name"],
    ] as const) {
      idp.setAccount({ sub, username, groups: [] });
      const login = await idpLogin(username);
      await expect(loginWithIdp(ctx("anonymous"), login, [])).rejects.toMatchObject({ code: "ERR_UNAUTHENTICATED" });
    }
    expect((await u.events("auth.login_refused")).map((e) => e.data.claimed)).toEqual(["system", "not a name"]);
    expect(await u.events("auth.login")).toEqual([]);
  });
});

describe("the re-check with the IdP", () => {
  it("asks again only after the interval, then applies the person's current groups", async () => {
    idp.setAccount({ sub: "sub-hana", username: "hana", groups: ["idp-sre"] });
    const login = await idpLogin("hana");
    const issued = await loginWithIdp(ctx("anonymous"), login, groupsOf(login.idpGroups));
    const token = issued.token.reveal();
    idp.setAccount({ sub: "sub-hana", username: "hana", groups: ["idp-db-leads"] });
    u.clock.advance(15 * MINUTE - 1);
    await sessions.authenticate(token);
    expect((await u.store.findIdentity("hana"))?.groups).toEqual(["oncall"]);
    u.clock.advance(1);
    await sessions.authenticate(token);
    expect((await u.store.findIdentity("hana"))?.groups).toEqual(["sre-leads"]);
    expect(directory.policy.groups.get("sre-leads")?.has("hana")).toBe(true);
    expect(directory.policy.groups.get("oncall")?.has("hana")).toBe(false);
  });

  it("ends the session when the IdP refuses to refresh it (the account is gone), recorded as the broker's", async () => {
    idp.setAccount({ sub: "sub-ivan", username: "ivan", groups: ["idp-sre"] });
    const login = await idpLogin("ivan");
    const issued = await loginWithIdp(ctx("anonymous"), login, groupsOf(login.idpGroups));
    idp.removeAccount("ivan");
    u.clock.advance(16 * MINUTE);
    await expect(sessions.authenticate(issued.token.reveal())).rejects.toMatchObject({
      code: "ERR_UNAUTHENTICATED",
      message: "the identity provider ended your session: sign in again",
    });
    expect((await u.store.findWebSession(issued.session.id))?.revokedAt).toBe(u.clock.now());
    const [ended] = await u.events("auth.logout");
    expect(ended).toMatchObject({ actor: "system", data: { user: "ivan", sessionId: issued.session.id } });
    expect(String(ended?.data.reason)).toContain("the IdP refused to refresh the session");
  });

  it("changes nothing while the IdP cannot be reached, and asks again an interval later", async () => {
    idp.setAccount({ sub: "sub-jo", username: "jo", groups: ["idp-sre"] });
    const login = await idpLogin("jo");
    const issued = await loginWithIdp(ctx("anonymous"), login, groupsOf(login.idpGroups));
    const token = issued.token.reveal();
    await idp.stop();
    try {
      u.clock.advance(16 * MINUTE);
      expect((await sessions.authenticate(token)).user).toBe("jo");
    } finally {
      await idp.restart();
    }
    const stored = await u.store.findWebSession(issued.session.id);
    expect(stored?.revokedAt).toBeNull();
    expect(openIdpTokens(u.box, issued.session.id, stored?.idp ?? "").checkedAt).toBe(u.clock.now());
    expect(await u.events("auth.logout")).toEqual([]);
  });
});
