/**
 * Local factors, step-up and the IdP-down fallback, against a real OpenID provider, a real
 * PostgreSQL target and a real webhook receiver:
 * - TOTP enrolment (QR code, first code confirms), a code accepted once, one step of clock skew
 *   either way and no more, recovery codes single-use;
 * - a security key (a software WebAuthn authenticator with real P-256 signatures) registered and
 *   used for step-up; a replayed, tampered or wrong-origin assertion refused;
 * - step-up: a role with `step_up` refuses to be requested or approved without a fresh factor,
 *   and says what to do;
 * - the IdP stopped → login via local fallback with TOTP → emergency grant on PostgreSQL that
 *   works at the target → "login via local fallback" alarm delivered → the grant flagged for
 *   review; what a fallback login may not do;
 * - lockout after repeated failures, with its alarm.
 */
import { join } from "node:path";
import * as OTPAuth from "otpauth";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Broker } from "../src/app.js";
import { requireBuild, runCli } from "./support/broker-process.js";
import { freePort } from "./support/free-port.js";
import { shiftedClock } from "./support/manual-clock.js";
import { IDP_CLIENT_ID, IDP_CLIENT_SECRET, startTestIdp, TestBrowser, type TestIdp } from "./support/oidc-provider.js";
import { type PostgresTarget, startPostgresTarget, TARGET_ENV, tryLogin } from "./support/postgres-target.js";
import { SoftAuthenticator } from "./support/soft-authenticator.js";
import { type RoleOverride, SECRET_KEY, startTestBroker, type TestBroker } from "./support/test-broker.js";
import { until } from "./support/wait.js";
import { Receiver, WEBHOOK_SECRET } from "./support/webhook-receiver.js";

/** The two roles on the PostgreSQL target differ in `fallback` and `step_up`. */
const DB_ROLE = {
  target: "pg-app",
  grants: { roles: ["recovery_rw"] },
  max_duration: "1h",
  approval: "1 of leads",
  requesters: ["oncall"],
  emergency: true,
} satisfies RoleOverride;

let t: TestBroker;
let dir: string;
let idp: TestIdp;
let target: PostgresTarget;
let broker: Broker;
let base: string;
const receiver = new Receiver();
const clock = shiftedClock();
let totpSecret = "";
let bobToken = "";

beforeAll(async () => {
  target = await startPostgresTarget();
  receiver.now = () => clock.now();
  await receiver.start();
  const brokerPort = await freePort();
  base = `http://127.0.0.1:${brokerPort}`;
  idp = await startTestIdp({ port: await freePort(), redirectUri: `${base}/auth/callback`, postLogoutUri: `${base}/` });
  idp.setAccount({ sub: "sub-alice", username: "alice", email: "alice@example.com", groups: ["idp-sre"] });
  idp.setAccount({ sub: "sub-gina", username: "gina", groups: ["idp-db-leads"] });
  t = await startTestBroker({
    base: "minimal",
    clock,
    env: { IDP_SECRET: IDP_CLIENT_SECRET, HOOK_SECRET: WEBHOOK_SECRET, [TARGET_ENV]: target.adminUrl },
    config: {
      ...SECRET_KEY,
      server: { port: brokerPort },
      workers: { expiry_poll: "100ms" },
      alarms: {
        channels: {
          "security-hook": {
            type: "webhook",
            url: `http://127.0.0.1:${receiver.port}/hook`,
            secret: { env: "HOOK_SECRET" },
            timeout: "2s",
          },
        },
        security_channels: ["security-hook"],
        routes: [],
      },
      auth: {
        oidc: {
          issuer: idp.issuer,
          client_id: IDP_CLIENT_ID,
          client_secret: { env: "IDP_SECRET" },
          scopes: ["openid", "profile", "email", "groups"],
          allow_insecure_http: true,
          group_map: { "idp-sre": "oncall", "idp-db-leads": "leads" },
          health_interval: "1s",
        },
        lockout: { max_failures: 5, window: "15m", duration: "15m" },
      },
      users: { bob: { name: "Bob" } },
      groups: { oncall: [], leads: ["bob"] },
      admin_groups: ["leads"],
      domains: {
        production: {
          roles: {
            "db-recovery": { ...DB_ROLE, fallback: true },
            "db-admin": { ...DB_ROLE, step_up: "5m" },
          },
        },
      },
      targets: { "pg-app": { connector: "postgres", settings: { admin_url: { env: TARGET_ENV }, timeout: "5s" } } },
    },
  });
  ({ broker, dir } = t);
  bobToken = await t.token("bob");
});

afterAll(async () => {
  await t?.stop();
  await idp?.stop();
  await receiver.stop();
  await target?.stop();
});

async function idpLogin(user: string): Promise<string> {
  const browser = new TestBrowser();
  idp.loginAs(user);
  await browser.go(`${base}/auth/login`);
  const token = browser.cookie(base, "bg_session");
  if (!token) throw new Error(`no session for ${user}`);
  return token;
}

// biome-ignore lint/suspicious/noExplicitAny: responses are checked with expect(), field by field
type Json = any;

async function call(path: string, token: string | null, body?: unknown): Promise<{ status: number; json: Json }> {
  const res = await fetch(`${base}/api/v1${path}`, {
    method: body === undefined ? "GET" : "POST",
    headers: {
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: res.status, json: await res.json() };
}

/** The code of the user's authenticator at the broker's time plus `skewS`. */
const code = (skewS = 0) =>
  new OTPAuth.TOTP({ secret: OTPAuth.Secret.fromBase32(totpSecret), period: 30, digits: 6 }).generate({
    timestamp: clock.now() + skewS * 1000,
  });

const alarmsOf = (type: string) =>
  receiver.received.filter((r) => (r.body.event as { type?: string } | undefined)?.type === type);

describe("local factors", () => {
  it("enrols an authenticator app: secret and QR code once, confirmed by its first code, alarmed", async () => {
    const alice = await idpLogin("alice");
    const started = await call("/auth/factors/totp", alice, { label: "phone" });
    expect(started.status).toBe(201);
    expect(started.json.uri).toMatch(/^otpauth:\/\/totp\/Breakglass:alice\?/);
    expect(started.json.qrSvg).toMatch(/^<svg/);
    totpSecret = started.json.secret;
    // Not confirmed yet: it does not count.
    expect((await call("/auth/factors", alice)).json.factors).toMatchObject([{ label: "phone", confirmed: false }]);
    const wrong = await call(`/auth/factors/${started.json.factorId}/confirm`, alice, { code: "000000" });
    expect(wrong.status).toBe(401);
    const ok = await call(`/auth/factors/${started.json.factorId}/confirm`, alice, { code: code() });
    expect(ok.status).toBe(200);
    expect(ok.json).toMatchObject({ kind: "totp", confirmed: true });
    await until("the enrolment alarm", () => alarmsOf("auth.factor_enrolled").length === 1);
    expect(JSON.stringify(receiver.received)).not.toContain(totpSecret);
  });

  it("accepts a code once, and one step of clock skew either way but not two", async () => {
    const alice = await idpLogin("alice");
    // The confirmation used this step's code: the next step's code is new.
    const next = code(30);
    expect((await call("/auth/step-up", alice, { code: next })).status).toBe(200);
    const replay = await call("/auth/step-up", alice, { code: next });
    expect(replay.status).toBe(401);
    clock.offsetMs += 10 * 60_000; // later: fresh time steps
    expect((await call("/auth/step-up", alice, { code: code(-30) })).status).toBe(200); // phone 30 s behind
    clock.offsetMs += 10 * 60_000;
    expect((await call("/auth/step-up", alice, { code: code(30) })).status).toBe(200); // 30 s ahead
    clock.offsetMs += 10 * 60_000;
    expect((await call("/auth/step-up", alice, { code: code(-90) })).status).toBe(401); // 90 s behind: no
    expect((await call("/auth/step-up", alice, { code: code(90) })).status).toBe(401); // 90 s ahead: no
  });

  it("hands out recovery codes once; each works once", async () => {
    const alice = await idpLogin("alice");
    const made = await call("/auth/factors/recovery", alice, {});
    expect(made.status).toBe(201);
    const codes: string[] = made.json.codes;
    expect(codes).toHaveLength(10);
    expect(new Set(codes).size).toBe(10);
    expect((await call("/auth/step-up", alice, { code: codes[0] })).status).toBe(200);
    expect((await call("/auth/step-up", alice, { code: codes[0] })).status).toBe(401);
    expect((await call("/auth/factors", alice)).json.recoveryCodesLeft).toBe(9);
    await until("the recovery-code alarm", () => alarmsOf("auth.recovery_code_used").length === 1);
  });
});

describe("security keys (WebAuthn)", () => {
  const key = new SoftAuthenticator("");
  const assert = async (authenticator: SoftAuthenticator) => {
    const options = (await call("/auth/webauthn/challenge", null, { user: "alice" })).json;
    return authenticator.get(options, "127.0.0.1");
  };

  it("registers a security key and steps up with it", async () => {
    key.origin = base;
    const alice = await idpLogin("alice");
    const started = await call("/auth/factors/webauthn", alice, { label: "yubikey" });
    expect(started.status).toBe(201);
    expect(started.json.options).toMatchObject({
      rp: { id: "127.0.0.1" },
      attestation: "none",
      hints: ["security-key"],
    });
    const confirmed = await call(`/auth/factors/${started.json.factorId}/confirm`, alice, {
      webauthn: key.create(started.json.options),
    });
    expect(confirmed.status).toBe(200);
    expect(confirmed.json).toMatchObject({ kind: "webauthn", label: "yubikey", confirmed: true });
    const answer = await assert(key);
    expect((await call("/auth/step-up", alice, { webauthn: answer })).status).toBe(200);
    // The challenge was used up: the same answer again is refused.
    expect((await call("/auth/step-up", alice, { webauthn: answer })).status).toBe(401);
  });

  it("refuses a tampered signature and an assertion made for another origin", async () => {
    const alice = await idpLogin("alice");
    const answer = await assert(key);
    const response = answer.response as { signature: string };
    const sig = Buffer.from(response.signature, "base64url");
    sig[sig.length - 1] = (sig[sig.length - 1] ?? 0) ^ 1;
    const tampered = { ...answer, response: { ...response, signature: sig.toString("base64url") } };
    expect((await call("/auth/step-up", alice, { webauthn: tampered })).status).toBe(401);
    const phished = new SoftAuthenticator("http://breakglass.evil.example");
    const started = await call("/auth/factors/webauthn", alice, { label: "other" });
    phished.create(started.json.options); // registered at the attacker's page, never confirmed here
    const wrongOrigin = await call(`/auth/factors/${started.json.factorId}/confirm`, alice, {
      webauthn: phished.create(started.json.options),
    });
    expect(wrongOrigin.status).toBe(401);
  });
});

describe("step-up", () => {
  it("refuses a role with step_up without a fresh factor, says what to do, and lets it through after", async () => {
    const alice = await idpLogin("alice");
    const body = { role: "production/db-admin", justification: "replica lag, need to kill a query", incident: "INC-9" };
    const refused = await call("/grants", alice, body);
    expect(refused.status).toBe(403);
    expect(refused.json).toMatchObject({
      code: "ERR_STEP_UP_REQUIRED",
      detail: expect.stringContaining("breakglass step-up"),
      maxAgeS: 300,
    });
    expect((await call("/auth/step-up", alice, { code: code(30) })).status).toBe(200);
    const requested = await call("/grants", alice, body);
    expect(requested.status).toBe(201);
    // An approver with an API token cannot prove a second factor.
    const approve = await call(`/grants/${requested.json.id}/approve`, bobToken, {});
    expect(approve.status).toBe(403);
    expect(approve.json).toMatchObject({ code: "ERR_STEP_UP_REQUIRED", detail: expect.stringContaining("API token") });
    expect((await call(`/grants/${requested.json.id}/cancel`, alice, { reason: "fixed without it" })).status).toBe(200);
    // Six minutes later the factor is stale again.
    clock.offsetMs += 6 * 60_000;
    expect((await call("/grants", alice, { ...body, incident: "INC-10" })).json.code).toBe("ERR_STEP_UP_REQUIRED");
  });
});

describe("the IdP is down", () => {
  it("refuses a fallback login while the IdP is reachable", async () => {
    const r = await call("/auth/fallback/login", null, { user: "alice", code: code(30) });
    expect(r.status).toBe(403);
    expect(r.json.detail).toContain("reachable");
    expect((await call("/auth/idp", null)).json).toMatchObject({
      configured: true,
      reachable: true,
      fallbackOpen: false,
    });
  });

  it("fallback login with TOTP → emergency grant on PostgreSQL → alarm → flagged for review", async () => {
    clock.offsetMs += 5 * 60_000;
    await idp.stop();
    try {
      expect((await call("/auth/idp", null)).json).toMatchObject({ reachable: false, fallbackOpen: true });
      const login = await call("/auth/fallback/login", null, { user: "alice", code: code() });
      expect(login.status).toBe(200);
      expect(login.json).toMatchObject({ user: "alice", method: "fallback" });
      const token: string = login.json.token;

      // Security is paged, loudly and distinctly.
      await until("the fallback-login alarm", () => alarmsOf("auth.fallback_login").length === 1);
      const alarm = alarmsOf("auth.fallback_login")[0]?.body as { severity: string; summary: string };
      expect(alarm.severity).toBe("critical");
      expect(alarm.summary).toContain("LOGIN VIA LOCAL FALLBACK: alice");

      // Only roles that allow it, and nothing but requesting and using grants.
      const breakGlass = (role: string) =>
        call("/grants", token, {
          role,
          justification: "primary down, failing over",
          incident: "INC-11",
          emergency: true,
        });
      const notAllowed = await breakGlass("production/db-admin");
      expect(notAllowed.status).toBe(403);
      expect(notAllowed.json.detail).toContain("fallback");
      expect((await call("/auth/factors/recovery", token, {})).status).toBe(403);
      expect((await call("/audit/events", token)).status).toBe(403);

      const grant = await breakGlass("production/db-recovery");
      expect(grant.status).toBe(201);
      expect(grant.json).toMatchObject({ state: "active", emergency: true, viaFallback: true });
      const cred = await call(`/grants/${grant.json.id}/credential`, token);
      expect(cred.status).toBe(200);
      expect(await tryLogin(cred.json.credential)).toBeNull();

      // The runbook's commands, for real: CLI fallback login (code read from stdin), then whoami.
      requireBuild();
      const env = { BREAKGLASS_SESSION_FILE: join(dir, "cli-session.json") };
      clock.offsetMs += 60_000; // a fresh code for the CLI
      const cli = await runCli(["login", "--fallback", "--user", "alice", "--url", base], env, {
        input: `${code()}\n`,
      });
      expect(cli.stderr).toContain("via LOCAL FALLBACK");
      expect(cli.code).toBe(0);
      expect((await runCli(["whoami"], env)).stdout).toContain("alice");
      const cliRequest = await runCli(
        ["request", "production/db-admin", "--emergency", "--reason", "primary down", "--incident", "INC-11"],
        env,
      );
      expect(cliRequest.code).not.toBe(0);
      expect(cliRequest.stderr).toContain("fallback");

      const released = await call(`/grants/${grant.json.id}/release`, token, {});
      expect(released.json.state).toBe("ended");
      const ended = Date.parse(released.json.endedAt);
      expect(Date.parse(released.json.reviewDueAt) - ended).toBeLessThanOrEqual(24 * 3600_000);
      const events = await broker.store.readGrantAudit([grant.json.id]);
      expect(JSON.parse(events[0]?.payload ?? "{}")).toMatchObject({
        type: "grant.requested",
        data: { viaFallback: true },
      });
    } finally {
      await idp.restart();
    }
  });
});

describe("brute force", () => {
  it("locks out after repeated failures and pages security", async () => {
    const alice = await idpLogin("alice");
    let last = 0;
    for (let i = 0; i < 5; i++) last = (await call("/auth/step-up", alice, { code: "123456" })).status;
    expect(last).toBe(401);
    const locked = await call("/auth/step-up", alice, { code: code(30) });
    expect(locked.status).toBe(429);
    expect(locked.json.code).toBe("ERR_LOCKED_OUT");
    await until("the lockout alarm", () => alarmsOf("auth.locked_out").length >= 1);
  });
});
