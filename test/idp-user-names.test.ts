/**
 * Issue 19, item 5: names from the IdP are held to the rule configured names follow. A real
 * OpenID provider (oidc-provider on loopback) vouches for accounts whose `preferred_username` is
 * `System`, `anonymous`, a full-width `ＳＹＳＴＥＭ`, or carries escape sequences and a newline;
 * the broker refuses each, says why, writes `auth.login_refused` and pages security. A name
 * already bound to another IdP subject is refused the same way.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Broker } from "../src/app.js";
import { freePort } from "./support/free-port.js";
import { IDP_CLIENT_ID, IDP_CLIENT_SECRET, startTestIdp, TestBrowser, type TestIdp } from "./support/oidc-provider.js";
import { SECRET_KEY, startTestBroker, type TestBroker } from "./support/test-broker.js";
import { settle } from "./support/wait.js";

let dir: string;
let idp: TestIdp;
let t: TestBroker;
let broker: Broker;
let base: string;

beforeAll(async () => {
  const brokerPort = await freePort();
  base = `http://127.0.0.1:${brokerPort}`;
  idp = await startTestIdp({ port: await freePort(), redirectUri: `${base}/auth/callback`, postLogoutUri: `${base}/` });
  t = await startTestBroker({
    base: "minimal",
    env: { IDP_SECRET: IDP_CLIENT_SECRET },
    config: {
      server: { port: brokerPort },
      ...SECRET_KEY,
      auth: {
        oidc: {
          issuer: idp.issuer,
          client_id: IDP_CLIENT_ID,
          client_secret: { env: "IDP_SECRET" },
          scopes: ["openid", "profile", "email", "groups"],
          allow_insecure_http: true,
          group_map: { "idp-sre": "oncall" },
        },
      },
      alarms: {
        channels: { security: { type: "file", path: "./security.jsonl" } },
        security_channels: ["security"],
        routes: [],
      },
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

/** Walk the IdP login as the account `key`; where it ended and the session cookie, if any. */
async function login(key: string) {
  const browser = new TestBrowser();
  idp.loginAs(key);
  const end = await browser.go(`${base}/auth/login?return_to=${encodeURIComponent("/api/v1/auth/session")}`);
  return { end, token: browser.cookie(base, "bg_session") };
}

async function refusals() {
  const events = await broker.store.readAudit(1, 10_000);
  return events
    .filter((e) => e.type === "auth.login_refused")
    .map((e) => JSON.parse(e.payload) as { data: Record<string, unknown> });
}

/** The alarms the security channel has written, waiting up to 20 s for `n` of them. */
async function pagedRefusals(n: number): Promise<string[]> {
  const file = join(dir, "security.jsonl");
  return settle(
    () =>
      existsSync(file)
        ? readFileSync(file, "utf8")
            .split("\n")
            .filter((l) => l.includes("auth.login_refused"))
        : [],
    (lines) => lines.length >= n,
    20_000,
    100,
  );
}

describe("names from the IdP follow the user-name rule", () => {
  it.each([
    ["System", "reserved"],
    ["anonymous", "reserved"],
    ["ＳＹＳＴＥＭ", "reserved"],
    ["vault", "reserved"],
    ["eve\x1b[2J\nsystem", "not valid"],
    ["eve smith", "not valid"],
    ["-eve", "not valid"],
  ])("an account named %j is refused (%s), told why, audited and paged", async (name, why) => {
    const sub = `sub-${Buffer.from(name).toString("hex")}`;
    idp.setAccount({ sub, username: name, groups: ["idp-sre"] });
    const before = (await refusals()).length;
    const { end, token } = await login(name);
    expect(token).toBeNull();
    expect(end.res.status).toBe(401);
    expect(end.body).toContain("Login refused");
    expect(end.body).toContain(why);
    // The page escapes the name: nothing of it runs in the browser or the terminal that reads it.
    expect(end.body).not.toContain("\x1b");
    const all = await refusals();
    expect(all).toHaveLength(before + 1);
    expect(all.at(-1)?.data).toMatchObject({ subject: sub, why: expect.stringContaining(why) });
    // Nobody by that name was recorded: the broker's own `system` stays the broker's.
    expect(await broker.store.findIdentity(name.normalize("NFKC").toLowerCase())).toBeNull();
    expect((await pagedRefusals(before + 1)).length).toBeGreaterThanOrEqual(before + 1);
  });

  it("an e-mail address is a valid name (IdPs that name people by address)", async () => {
    idp.setAccount({ sub: "sub-dana", username: "Dana.Ops+oncall@Example.com", groups: ["idp-sre"] });
    const { token } = await login("Dana.Ops+oncall@Example.com");
    expect(token).toMatch(/^ws_/);
    const me = (await (await fetch(`${base}/api/v1/me`, { headers: { authorization: `Bearer ${token}` } })).json()) as {
      user: string;
    };
    expect(me.user).toBe("dana.ops+oncall@example.com");
  });

  it("a user name bound to one IdP subject is refused to another, audited and paged", async () => {
    idp.setAccount({ sub: "sub-frank-1", username: "frank", groups: ["idp-sre"] });
    expect((await login("frank")).token).toMatch(/^ws_/);
    // Another IdP account now claims the same preferred_username.
    idp.setAccount({ sub: "sub-frank-2", username: "frank", groups: ["idp-sre"] });
    const before = (await refusals()).length;
    const { end, token } = await login("frank");
    expect(token).toBeNull();
    expect(end.res.status).toBe(401);
    expect(end.body).toContain("belongs to another IdP account");
    const all = await refusals();
    expect(all).toHaveLength(before + 1);
    expect(all.at(-1)?.data).toMatchObject({ claimed: "frank", subject: "sub-frank-2" });
    expect((await broker.store.findIdentity("frank"))?.subject).toBe("sub-frank-1");
    expect((await pagedRefusals(before + 1)).length).toBeGreaterThanOrEqual(before + 1);
  });
});
