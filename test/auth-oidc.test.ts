/**
 * Login through a real OpenID provider (oidc-provider on loopback): the whole authorization-code
 * + PKCE flow over HTTP with a cookie-keeping client, group mapping into the broker's groups,
 * CSRF on cookie writes, logout at the broker and the IdP, an expired session, and the broker
 * refusing a tampered ID token and a genuine one issued to another client.
 */
import { statSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Broker } from "../src/app.js";
import { requireBuild, runCli } from "./support/broker-process.js";
import { freePort } from "./support/free-port.js";
import { shiftedClock } from "./support/manual-clock.js";
import {
  IDP_CLIENT_ID,
  IDP_CLIENT_SECRET,
  jwtPayload,
  startTestIdp,
  TestBrowser,
  type TestIdp,
} from "./support/oidc-provider.js";
import { SECRET_KEY, startTestBroker, type TestBroker } from "./support/test-broker.js";

let t: TestBroker;
let dir: string;
let idp: TestIdp;
let broker: Broker;
let base: string;
const clock = shiftedClock();

beforeAll(async () => {
  const brokerPort = await freePort();
  base = `http://127.0.0.1:${brokerPort}`;
  idp = await startTestIdp({
    port: await freePort(),
    redirectUri: `${base}/auth/callback`,
    postLogoutUri: `${base}/`,
  });
  idp.setAccount({ sub: "sub-frank", username: "frank", email: "frank@example.com", groups: ["idp-sre", "unmapped"] });
  idp.setAccount({ sub: "sub-gina", username: "gina", groups: ["idp-db-leads"] });
  idp.setAccount({ sub: "sub-alice", username: "Alice", groups: [] });
  t = await startTestBroker({
    base: "minimal",
    clock,
    env: { IDP_SECRET: IDP_CLIENT_SECRET },
    config: {
      ...SECRET_KEY,
      server: { port: brokerPort },
      auth: {
        oidc: {
          issuer: idp.issuer,
          client_id: IDP_CLIENT_ID,
          client_secret: { env: "IDP_SECRET" },
          scopes: ["openid", "profile", "email", "groups"],
          allow_insecure_http: true,
          group_map: { "idp-sre": "oncall", "idp-db-leads": ["leads"] },
        },
      },
      admin_groups: ["leads"],
      users: { alice: { name: "Alice" }, bob: { name: "Bob" } },
      groups: { oncall: ["alice"], leads: ["bob"] },
      domains: {
        production: {
          roles: { restart: { target: "box", max_duration: "1h", approval: "1 of leads", requesters: ["oncall"] } },
        },
      },
      targets: { box: { connector: "exec", settings: { grant: ["true"], revoke: ["true"] } } },
    },
  });
  ({ broker, dir } = t);
});

afterAll(async () => {
  await t?.stop();
  await idp?.stop();
});

/** Walk the IdP login as `user`; the browser and its session token. */
async function login(user: string, returnTo = "/api/v1/auth/session") {
  const browser = new TestBrowser();
  idp.loginAs(user);
  const end = await browser.go(`${base}/auth/login?return_to=${encodeURIComponent(returnTo)}`);
  return { browser, end, token: browser.cookie(base, "bg_session") };
}

const api = (path: string, init: RequestInit & { token?: string | null; cookie?: string } = {}) => {
  const headers = new Headers(init.headers);
  if (init.token) headers.set("authorization", `Bearer ${init.token}`);
  if (init.cookie) headers.set("cookie", init.cookie);
  if (init.body) headers.set("content-type", "application/json");
  return fetch(`${base}/api/v1${path}`, { ...init, headers });
};

describe("login through the IdP", () => {
  it("signs in with code + PKCE, lands on the page asked for, and maps the IdP's groups", async () => {
    const { end, token } = await login("frank");
    expect(end.url).toBe(`${base}/api/v1/auth/session`);
    expect(end.res.status).toBe(200);
    expect(JSON.parse(end.body)).toMatchObject({ user: "frank", method: "oidc", csrfToken: expect.any(String) });
    expect(token).toMatch(/^ws_/);

    const me = await (await api("/me", { token })).json();
    // idp-sre → oncall; "unmapped" counts for nothing.
    expect(me).toMatchObject({ user: "frank", groups: ["oncall"], admin: false });

    const events = await broker.store.readAudit(1, 1000);
    const loginEvent = events.filter((e) => e.type === "auth.login").at(-1);
    expect(JSON.parse(loginEvent?.payload ?? "{}")).toMatchObject({
      actor: "frank",
      data: { user: "frank", method: "oidc", groups: ["oncall"], idpGroups: ["idp-sre", "unmapped"] },
    });
    // The token never reaches the audit log.
    expect(JSON.stringify(events)).not.toContain((token ?? "").split(".")[1]);
  });

  it("lets a mapped IdP group request and approve: the two-person rule across IdP users", async () => {
    const frank = await login("frank");
    const gina = await login("gina");
    const created = await api("/grants", {
      method: "POST",
      token: frank.token,
      body: JSON.stringify({ role: "production/restart", justification: "disk full on db-1", incident: "INC-7" }),
    });
    expect(created.status).toBe(201);
    const grant = (await created.json()) as { id: string };
    const approved = await api(`/grants/${grant.id}/approve`, { method: "POST", token: gina.token, body: "{}" });
    expect(approved.status).toBe(200);
    expect(((await approved.json()) as { state: string }).state).toBe("active");
    await api(`/grants/${grant.id}/release`, { method: "POST", token: frank.token, body: "{}" });
  });

  it("needs the CSRF token on writes made with the session cookie", async () => {
    const { token } = await login("frank");
    const cookie = `bg_session=${token}`;
    const session = (await (await api("/auth/session", { cookie })).json()) as { csrfToken: string };
    const body = JSON.stringify({ role: "production/restart", justification: "disk full on db-1", incident: "INC-8" });
    const without = await api("/grants", { method: "POST", cookie, body });
    expect(without.status).toBe(403);
    expect(await without.json()).toMatchObject({
      code: "ERR_FORBIDDEN",
      detail: expect.stringContaining("x-csrf-token"),
    });
    const wrong = await api("/grants", { method: "POST", cookie, body, headers: { "x-csrf-token": "x".repeat(43) } });
    expect(wrong.status).toBe(403);
    const ok = await api("/grants", { method: "POST", cookie, body, headers: { "x-csrf-token": session.csrfToken } });
    expect(ok.status).toBe(201);
    const g = (await ok.json()) as { id: string };
    await api(`/grants/${g.id}/cancel`, { method: "POST", token, body: "{}" });
  });

  it("logout is a POST with the session's CSRF token: a cross-site link or form ends nothing", async () => {
    const { browser, token } = await login("frank");
    const cookie = `bg_session=${token}`;
    // A link (GET) only shows the sign-out button; the session goes on.
    const page = await fetch(`${base}/auth/logout`, { headers: { cookie } });
    expect(page.status).toBe(200);
    expect(page.headers.get("content-security-policy")).toContain("frame-ancestors 'none'");
    expect(await page.text()).toMatch(/<form method="post" action="\/auth\/logout">/);
    // A form posted from another site carries the cookie but not the token.
    for (const body of ["", "csrf=", `csrf=${"x".repeat(43)}`]) {
      const forged = await fetch(`${base}/auth/logout`, {
        method: "POST",
        headers: { cookie, "content-type": "application/x-www-form-urlencoded", origin: "https://evil.example" },
        body,
        redirect: "manual",
      });
      expect(forged.status).toBe(403);
    }
    expect((await api("/auth/session", { token })).status).toBe(200);
    expect(browser.cookie(base, "bg_session")).toBe(token);
  });

  it("logs out at the broker and at the IdP; the session no longer works", async () => {
    const { browser, token } = await login("frank");
    expect((await api("/auth/session", { token })).status).toBe(200);
    const { csrfToken } = (await (await api("/auth/session", { token })).json()) as { csrfToken: string };
    const out = await browser.go(`${base}/auth/logout`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: `csrf=${encodeURIComponent(csrfToken)}`,
    });
    // Through the IdP's end-session endpoint and back to the broker.
    expect(out.url).toBe(`${base}/`);
    expect(browser.cookie(base, "bg_session")).toBeNull();
    const after = await api("/auth/session", { token });
    expect(after.status).toBe(401);
    expect(((await after.json()) as { code: string }).code).toBe("ERR_UNAUTHENTICATED");
    const events = await broker.store.readAudit(1, 1000);
    expect(events.some((e) => e.type === "auth.logout" && e.actor === "frank")).toBe(true);
    // The IdP's own session is gone too: the next login asks it to sign in again.
    idp.loginAs("gina");
    const again = await browser.go(`${base}/auth/login?return_to=/api/v1/auth/session`);
    expect(JSON.parse(again.body).user).toBe("gina");
  });

  it("asks the IdP again after refresh_interval: new groups apply, a disabled account ends the session", async () => {
    idp.setAccount({ sub: "sub-hana", username: "hana", groups: ["idp-sre"] });
    const { token } = await login("hana");
    const groups = async () => ((await (await api("/me", { token })).json()) as { groups: string[] }).groups;
    expect(await groups()).toEqual(["oncall"]);
    idp.setAccount({ sub: "sub-hana", username: "hana", groups: ["idp-db-leads"] });
    expect(await groups()).toEqual(["oncall"]); // not asked again yet
    try {
      clock.offsetMs = 16 * 60_000; // refresh_interval defaults to 15m
      expect(await groups()).toEqual(["leads"]);
      idp.removeAccount("hana");
      clock.offsetMs = 32 * 60_000;
      const res = await api("/me", { token });
      expect(res.status).toBe(401);
      expect(((await res.json()) as { detail: string }).detail).toContain("identity provider ended your session");
      const ended = (await broker.store.readAudit(1, 10_000)).filter((e) => e.type === "auth.logout").at(-1);
      expect(JSON.parse(ended?.payload ?? "{}")).toMatchObject({ actor: "system", data: { user: "hana" } });
    } finally {
      clock.offsetMs = 0;
    }
  });

  it("refuses an expired session", async () => {
    const { token } = await login("frank");
    expect((await api("/auth/session", { token })).status).toBe(200);
    clock.offsetMs = 8 * 3600_000 + 1000; // session_ttl defaults to 8h
    try {
      const res = await api("/auth/session", { token });
      expect(res.status).toBe(401);
      expect(((await res.json()) as { code: string }).code).toBe("ERR_UNAUTHENTICATED");
    } finally {
      clock.offsetMs = 0;
    }
  });

  it("refuses a tampered ID token (signature no longer matches)", async () => {
    idp.tamperTokens((body) => {
      const jwt = String(body.id_token);
      const [head, , sig] = jwt.split(".");
      const payload = { ...jwtPayload(jwt), groups: ["idp-db-leads"] };
      return { ...body, id_token: `${head}.${Buffer.from(JSON.stringify(payload)).toString("base64url")}.${sig}` };
    });
    try {
      const { end, token } = await login("frank");
      expect(end.res.status).toBe(401);
      expect(end.body).toContain("Login refused");
      expect(token).toBeNull();
    } finally {
      idp.tamperTokens(null);
    }
  });

  it("refuses an ID token signed by the IdP but issued to another client", async () => {
    idp.tamperTokens((body) => {
      const original = jwtPayload(String(body.id_token));
      return { ...body, id_token: idp.signWithIdpKey({ ...original, aud: "some-other-app", azp: "some-other-app" }) };
    });
    try {
      const { end, token } = await login("frank");
      expect(end.res.status).toBe(401);
      expect(end.body).toMatch(/aud/i);
      expect(token).toBeNull();
    } finally {
      idp.tamperTokens(null);
    }
  });

  it("keeps a configured user's name when the IdP spells it with capitals", async () => {
    const { token } = await login("Alice");
    const me = await (await api("/me", { token })).json();
    // alice is configured: her configured groups count, the IdP adds none.
    expect(me).toMatchObject({ user: "alice", groups: ["oncall"] });
  });
});

describe("declaring the IdP down", () => {
  it("is for admins, pages security, opens the fallback login, and is undone the same way", async () => {
    const frank = await login("frank");
    const gina = await login("gina"); // idp-db-leads → leads = admin_groups
    const body = (down: boolean) => JSON.stringify({ down, reason: "IdP loops on every login (INC-13)" });
    expect((await api("/auth/idp", { method: "POST", token: frank.token, body: body(true) })).status).toBe(403);
    const down = await api("/auth/idp", { method: "POST", token: gina.token, body: body(true) });
    expect(down.status).toBe(200);
    expect(await down.json()).toMatchObject({ reachable: false, fallbackOpen: true, declaredDown: { by: "gina" } });
    // Kept in the store: other replicas, and this one after a restart, read it back.
    expect(JSON.parse((await broker.store.readState("idp_declared")) ?? "{}")).toMatchObject({ by: "gina" });
    // Declared down, the IdP login is refused with what to do instead.
    const browser = new TestBrowser();
    const refused = await browser.go(`${base}/auth/login`);
    expect(refused.res.status).toBe(503);
    expect(refused.body).toContain("fallback");
    const up = await api("/auth/idp", { method: "POST", token: gina.token, body: body(false) });
    expect(await up.json()).toMatchObject({ reachable: true, fallbackOpen: false, declaredDown: null });
    expect(await broker.store.readState("idp_declared")).toBeNull();
    const events = (await broker.store.readAudit(1, 10_000)).filter((e) => e.type === "auth.idp_declared");
    expect(events.map((e) => JSON.parse(e.payload).data.down)).toEqual([true, false]);
  });
});

describe("service tokens", () => {
  it("are made by people with scopes and an expiry, shown once, listed without secrets, and revocable", async () => {
    const { token: session } = await login("frank");
    const made = await api("/tokens", {
      method: "POST",
      token: session,
      body: JSON.stringify({ description: "CI reader", scopes: ["read"], ttl: "1d" }),
    });
    expect(made.status).toBe(201);
    const created = (await made.json()) as { id: string; token: string; scopes: string[]; expiresAt: string };
    expect(created.scopes).toEqual(["read"]);
    expect(Date.parse(created.expiresAt) - Date.now()).toBeGreaterThan(23 * 3600_000);
    const ci = created.token;

    expect((await api("/grants", { token: ci })).status).toBe(200);
    const write = await api("/grants", {
      method: "POST",
      token: ci,
      body: JSON.stringify({ role: "production/restart", justification: "disk full on db-1", incident: "INC-12" }),
    });
    expect(write.status).toBe(403);
    expect(await write.json()).toMatchObject({
      code: "ERR_FORBIDDEN",
      detail: expect.stringContaining("`request` scope"),
    });
    // A token cannot mint tokens or touch factors: that is for people.
    const mint = await api("/tokens", {
      method: "POST",
      token: ci,
      body: JSON.stringify({ description: "x", scopes: ["*"] }),
    });
    expect(mint.status).toBe(403);
    expect((await api("/auth/factors", { token: ci })).status).toBe(403);
    // Someone else's token: admins only.
    const forOther = await api("/tokens", {
      method: "POST",
      token: session,
      body: JSON.stringify({ description: "x", scopes: ["read"], user: "bob" }),
    });
    expect(forOther.status).toBe(403);

    const listed = (await (await api("/tokens", { token: session })).json()) as { tokens: { id: string }[] };
    expect(listed.tokens.map((t) => t.id)).toContain(created.id);
    expect(JSON.stringify(listed)).not.toContain(ci.split(".")[1]);

    const revoked = await api(`/tokens/${created.id}/revoke`, { method: "POST", token: session, body: "{}" });
    expect(revoked.status).toBe(200);
    expect((await api("/grants", { token: ci })).status).toBe(401);
    const types = (await broker.store.readAudit(1, 10_000)).map((e) => e.type);
    expect(types).toContain("token.created");
    expect(types).toContain("token.revoked");
  });
});

describe("breakglass login (CLI)", () => {
  it("signs in through the browser page, saves the session 0600, uses it, and logs out", async () => {
    requireBuild();
    const { end, token: browserToken } = await login("frank", "/auth/cli");
    expect(end.res.status).toBe(200);
    const token = /ws_[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+/.exec(end.body)?.[0];
    expect(token).toBeDefined();
    const env = { BREAKGLASS_SESSION_FILE: join(dir, "cli-session.json") };
    const loggedIn = await runCli(["login", "--url", base], env, { input: `${token}\n` });
    expect(loggedIn.stderr).toContain("Signed in as frank");
    expect(loggedIn.code).toBe(0);
    expect(statSync(env.BREAKGLASS_SESSION_FILE).mode & 0o777).toBe(0o600);
    const who = await runCli(["whoami"], env);
    expect(who.stdout).toContain("frank");
    const status = await runCli(["idp", "status", "--url", base], env);
    expect(status.stdout).toContain("IdP reachable");
    expect((await runCli(["logout"], env)).code).toBe(0);
    const after = await runCli(["whoami"], env);
    expect(after.code).toBe(2);
    expect(after.stderr).toContain("breakglass login");
    // The CLI had a session of its own: the browser's survives the CLI's logout.
    expect(token).not.toBe(browserToken);
    expect((await api("/auth/session", { token: browserToken })).status).toBe(200);
  });
});
