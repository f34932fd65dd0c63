/**
 * The web console end to end, in Debian's Chromium driven by playwright-core, against a real
 * broker (a real PostgreSQL target) signing people in through a real OpenID provider: log in, request, approve as a second
 * and third user from the alarm's deep link, the live countdown, revoke, the timeline; emergency
 * activation behind its confirmation; a review; the same pages at a phone's width. Every page is
 * checked with axe-core (no serious or critical violation), no console error or CSP violation may
 * occur, and each main page is saved as a screenshot under test-artifacts/console/ (checked to
 * be a real, non-blank PNG).
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { Secret, TOTP } from "otpauth";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Broker } from "../src/app.js";
import { SYSTEM_CONTEXT } from "../src/core/request-context.js";
import { requireBuild } from "./support/broker-process.js";
import {
  accessible as axeCheck,
  type ExpectedRefusal,
  launchChromium,
  shot as screenshot,
  watchPage,
} from "./support/console-browser.js";
import { ctx } from "./support/ctx.js";
import { freePort } from "./support/free-port.js";
import { IDP_CLIENT_ID, IDP_CLIENT_SECRET, startTestIdp, type TestIdp } from "./support/oidc-provider.js";
import { type PostgresTarget, startPostgresTarget, TARGET_ENV, tryLogin } from "./support/postgres-target.js";
import { SECRET_KEY, startTestBroker, type TestBroker } from "./support/test-broker.js";
import { PATIENCE_MS, until } from "./support/wait.js";

/** How long a page may take to show what the test waits for: a deadline for a loaded machine, not a latency bound. */
const WAIT_MS = 60_000;
const SHOTS = join(process.cwd(), "test-artifacts", "console");

let t: TestBroker;
let idp: TestIdp;
let broker: Broker;
let base: string;
let browser: Browser;
let target: PostgresTarget;
const problems: string[] = [];
let loginChecked = false;
/** Refusals a test provokes on purpose: each allows one such failed request in the console. */
const expectedRefusals: ExpectedRefusal[] = [];
const expectRefusal = (user: string, path: string, status: number) => expectedRefusals.push({ user, path, status });

beforeAll(async () => {
  requireBuild(); // the console is served from dist/web
  mkdirSync(SHOTS, { recursive: true });
  const port = await freePort();
  // `localhost`, not 127.0.0.1: WebAuthn takes the relying party from the host name, and an IP
  // address is not a valid one (the broker still listens on 127.0.0.1).
  base = `http://localhost:${port}`;
  idp = await startTestIdp({ port: await freePort(), redirectUri: `${base}/auth/callback`, postLogoutUri: `${base}/` });
  for (const user of ["alice", "bob", "carol", "erin"])
    idp.setAccount({ sub: `sub-${user}`, username: user, groups: [] });
  target = await startPostgresTarget();
  t = await startTestBroker({
    base: "minimal",
    env: { IDP_SECRET: IDP_CLIENT_SECRET, [TARGET_ENV]: target.adminUrl, HOOK_SECRET: "console-test-hook" },
    config: {
      ...SECRET_KEY,
      server: { port, public_url: base },
      alarms: {
        channels: {
          record: { type: "file", path: "./alarms.jsonl" },
          chat: { type: "webhook", url: "http://127.0.0.1:9/closed", secret: { env: "HOOK_SECRET" } },
        },
        security_channels: ["record"],
        routes: [{ events: ["*"], channels: ["record", "chat"] }],
      },
      auth: {
        oidc: {
          issuer: idp.issuer,
          client_id: IDP_CLIENT_ID,
          client_secret: { env: "IDP_SECRET" },
          allow_insecure_http: true,
        },
      },
      admin_groups: ["security"],
      users: {
        alice: { name: "Alice Adams" },
        bob: { name: "Bob Brown" },
        carol: { name: "Carol Chen" },
        erin: { name: "Erin Evans" },
        "drill-bot": { name: "Drill bot" },
      },
      groups: { oncall: ["alice", "drill-bot"], leads: ["bob", "carol"], security: ["erin"] },
      domains: {
        production: {
          description: "Production databases",
          roles: {
            "db-admin": {
              description: "Recovery DBA on the primary",
              target: "pg-main",
              grants: { roles: ["recovery_rw"] },
              default_duration: "30m",
              max_duration: "2h",
              approval: "2 of leads",
              requesters: ["oncall"],
              emergency: true,
            },
            "db-readonly": {
              description: "Read-only look at the primary, behind a fresh second factor",
              target: "pg-main",
              grants: { roles: ["recovery_rw"] },
              max_duration: "1h",
              approval: "1 of leads",
              requesters: ["oncall"],
              step_up: "5m",
            },
          },
        },
      },
      drills: {
        "db-approval": {
          scenario: "approval-path",
          role: "production/db-admin",
          requester: "drill-bot",
          approvers: ["bob", "carol"],
          duration: "3s",
          probe: { sql: "SELECT 1" },
        },
      },
      targets: { "pg-main": { connector: "postgres", settings: { admin_url: { env: TARGET_ENV } } } },
    },
  });
  broker = t.broker;
  browser = await launchChromium();
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await t?.stop();
  await idp?.stop();
  await target?.stop();
});

/** A person at their own browser (own cookies), signed in through the IdP. */
async function person(
  user: string,
  viewport = { width: 1280, height: 900 },
): Promise<{ context: BrowserContext; page: Page }> {
  const context = await browser.newContext({ viewport, colorScheme: user === "erin" ? "dark" : "light" });
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT_MS);
  // Signed out, the app's first question (who am I?) is answered 401: that is how it learns to
  // show the sign-in page. Any other failed request is a problem, unless declared with
  // `expectRefusal` just before.
  watchPage(page, user, base, problems, expectedRefusals);
  await page.goto(`${base}/`);
  await page.getByRole("link", { name: "Sign in with your identity provider" }).waitFor();
  if (user === "alice" && !loginChecked) {
    loginChecked = true;
    await accessible(page, "sign-in");
    await shot(page, "sign-in");
  }
  idp.loginAs(user);
  await page.getByRole("link", { name: "Sign in with your identity provider" }).click();
  await page.getByRole("navigation", { name: "Main" }).waitFor();
  return { context, page };
}

const accessible = axeCheck;
const shot = (page: Page, name: string) => screenshot(page, SHOTS, name);

describe("web console", () => {
  let grantId: string;

  it("alice signs in and requests a recovery role", async () => {
    const { page } = await person("alice");
    await expect(page.getByRole("heading", { name: "Now" }).isVisible()).resolves.toBe(true);
    await page.getByText("Nobody holds break-glass access right now.").waitFor();
    await accessible(page, "now");
    await shot(page, "now-empty");
    await page.getByRole("link", { name: "Request" }).click();
    await page.getByRole("radio", { name: /Recovery DBA on the primary/ }).check();
    await page.getByLabel("Justification").fill("primary is refusing writes after the failover");
    await page.getByLabel("Incident id").fill("INC-4711");
    await page.getByLabel(/Duration/).fill("45m");
    await accessible(page, "request");
    await shot(page, "request");
    await page.getByRole("button", { name: "Request access" }).click();
    await page.getByText("requested", { exact: true }).waitFor();
    grantId = new URL(page.url()).pathname.split("/")[2] as string;
    expect(grantId).toMatch(/^g_/);
    // The holder cannot approve their own request: no button for it.
    expect(await page.getByRole("button", { name: "Approve" }).count()).toBe(0);
  });

  it("bob and carol approve from the alarm's deep link; alice sees the countdown and connection details", async () => {
    for (const approver of ["bob", "carol"]) {
      const { page, context } = await person(approver);
      if (approver === "bob") {
        // The request waits on the approver's Now page.
        await page.getByRole("heading", { name: "Waiting for your approval (1)" }).waitFor();
      }
      await page.goto(`${base}/grants/${grantId}`); // the link alarms carry
      await page.getByText("primary is refusing writes after the failover").waitFor();
      await accessible(page, `grant (${approver})`);
      await page.getByRole("button", { name: "Approve" }).click();
      await page.getByLabel("Comment (optional)").fill(`ok from ${approver}`);
      await page.getByRole("button", { name: "Approve" }).click();
      await page.getByText(approver === "bob" ? "approvals: bob" : "approvals: bob, carol").waitFor();
      if (approver === "bob") await shot(page, "grant-approve");
      await context.close();
    }
    const { page } = await person("alice");
    await page.getByRole("link", { name: grantId }).click();
    await page.getByText("active", { exact: true }).waitFor();
    const first = await page.locator(".countdown").first().textContent();
    await page.waitForTimeout(2100);
    const later = await page.locator(".countdown").first().textContent();
    expect(first).toMatch(/4[45]:\d\d left/);
    expect(later).not.toBe(first); // it counts down live
    await page.getByRole("button", { name: "Show connection details" }).click();
    await page.getByText("Connect with").waitFor();
    // The connection string shown works at the real server, for this grant's window.
    const shown = (await page.locator("pre").innerText()).trim();
    expect(await tryLogin(shown, "SELECT 1")).toBeNull();
    await accessible(page, "grant (active)");
    await shot(page, "grant-active");

    // Alice works in a recorded shell (`breakglass shell`, through the same API).
    const token = (await broker.tokens.create(ctx("erin"), { user: "alice", description: "shell" })).token.reveal();
    const post = async (path: string, body: unknown) => {
      const res = await fetch(`${base}/api/v1${path}`, {
        method: "POST",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        body: JSON.stringify(body),
      });
      expect(res.status).toBeLessThan(300);
      return res.json() as Promise<Record<string, unknown>>;
    };
    const started = (await post(`/grants/${grantId}/terminal`, { command: "psql app", width: 100, height: 30 })) as {
      session: { id: string };
    };
    await post(`/terminal/${started.session.id}/events`, {
      events: [
        { seq: 1, t: 0.1, kind: "o", data: "app=> \u001b[1mSELECT\u001b[0m count(*) FROM accounts;\r\n" },
        { seq: 2, t: 0.4, kind: "o", data: " count \r\n-------\r\n     2\r\n" },
      ],
    });
    await post(`/terminal/${started.session.id}/end`, { reason: "exited" });
  });

  it("the security lead sees who holds what, revokes it, and the timeline tells the story", async () => {
    const { page } = await person("erin");
    await page.getByRole("cell", { name: "alice" }).waitFor();
    // The chat webhook has failed every delivery so far: the console says so on every page.
    await page
      .getByText(/Alarm channel chat is failing \(.*\): alarms routed only there are not reaching anyone/)
      .waitFor();
    await expect(page.getByText("alarmed").first().isVisible()).resolves.toBe(true);
    await accessible(page, "now (active, dark)");
    await shot(page, "now-active-dark");
    await page.getByRole("link", { name: grantId }).click();
    await page.getByRole("button", { name: "Revoke" }).click();
    await page.getByLabel("Why revoke").fill("fixed; closing the window early");
    await page.getByRole("button", { name: "Revoke" }).click();
    await page.getByText("ended (revoked)", { exact: true }).waitFor();
    const timeline = await page.locator(".timeline").innerText();
    for (const type of [
      "grant.requested",
      "grant.approval_added",
      "grant.approved",
      "grant.activated",
      "grant.revoked",
    ])
      expect(timeline).toContain(type);
    expect(timeline).toContain("fixed; closing the window early");
    // The recorded shell, replayed (escape sequences dropped).
    await page.getByRole("button", { name: "Open the recording (the read is audited)" }).click();
    await page.getByRole("button", { name: "Replay" }).click();
    await page.getByRole("button", { name: "Show all" }).click();
    const screen = await page.locator("pre.terminal").innerText();
    expect(screen).toContain("app=> SELECT count(*) FROM accounts;");
    expect(screen).toContain("     2");
    await accessible(page, "grant (recording)");
    await shot(page, "grant-timeline");
  });

  it("erin reviews the ended grant from the review queue", async () => {
    const { page } = await person("erin");
    // The first Tab reaches the skip link, which jumps over the navigation.
    await page.keyboard.press("Tab");
    expect(await page.evaluate("document.activeElement && document.activeElement.textContent")).toBe("Skip to content");
    await page.getByRole("link", { name: "Reviews" }).click();
    await page.getByRole("link", { name: "review", exact: true }).click();
    await page.getByRole("radio", { name: "justified with findings" }).check();
    await page.getByLabel(/Notes/).fill("needed; the runbook missed the replica step");
    await accessible(page, "review");
    await page.getByRole("button", { name: "Record review" }).click();
    await page.getByText("needed; the runbook missed the replica step").waitFor();
    await page.getByRole("link", { name: "Reviews" }).click();
    await page.getByText("No grant is waiting for a review.").waitFor();
    await shot(page, "reviews");
    for (const [link, heading] of [
      ["Posture", /Posture/],
      ["Audit", /Audit log/],
      ["Roles", /Domains and roles/],
    ] as const) {
      await page.getByRole("link", { name: link, exact: true }).click();
      await page.getByRole("heading", { name: heading }).waitFor();
      if (link === "Audit") await page.getByText("chain verified").waitFor();
      await accessible(page, link);
      await shot(page, link.toLowerCase());
    }
  });

  it("the security lead runs a drill from the console and reads its timed steps", async () => {
    const { page } = await person("erin");
    await page.getByRole("link", { name: "Drills" }).click();
    await page.getByText("never run").waitFor();
    await page.getByRole("button", { name: "Run now" }).click();
    await page.getByRole("button", { name: "Hide history" }).waitFor();
    // The drill runs in the background: look again until it has passed.
    for (let i = 0; i < 40 && !(await page.getByText("passed").first().isVisible()); i++) {
      await page.waitForTimeout(500);
      await page.getByRole("button", { name: "Hide history" }).click();
      await page.getByRole("button", { name: "History" }).click();
    }
    await page.getByText("passed").first().waitFor();
    await page
      .getByText(/✓ .*probe/)
      .first()
      .waitFor();
    await accessible(page, "drills");
    await shot(page, "drills");
  });

  it("emergency activation only after its deliberate confirmation, on a phone", async () => {
    const { page } = await person("alice", { width: 390, height: 844 });
    await page.getByRole("link", { name: "Request" }).click();
    await page.getByRole("radio", { name: /Recovery DBA on the primary/ }).check();
    await page.getByLabel("Justification").fill("primary down at night, no lead answers the phone");
    await page.getByLabel("Incident id").fill("INC-4712");
    await page.getByLabel(/Emergency: activate now/).check();
    const go = page.getByRole("button", { name: "Activate emergency access now" });
    expect(await go.isDisabled()).toBe(true); // not until the consequences are acknowledged
    await page.getByLabel(/I understand: this bypasses the approval rule/).check();
    await accessible(page, "request (emergency, phone)");
    await shot(page, "phone-emergency-confirm");
    await go.click();
    await page.getByText("EMERGENCY (approval bypassed)").waitFor();
    await page.getByText("active", { exact: true }).waitFor();
    await shot(page, "phone-grant-emergency");
    await page.getByRole("link", { name: "Now" }).click();
    await page.getByRole("cell", { name: "alice" }).first().waitFor();
    // Nothing wider than the phone: the tables scroll inside their box.
    const overflow = (await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")) as number;
    expect(overflow).toBeLessThanOrEqual(0);
    await accessible(page, "now (phone)");
    await shot(page, "phone-now");
    // The holder ends it from the Now page as soon as the work is done.
    await page.getByRole("button", { name: "Release now" }).click();
    await page.getByRole("heading", { name: "My active grants (0)" }).waitFor();
  });

  it("a grant whose activation the target refused says why, and when the broker tries again (issue 19)", async () => {
    await target.sql("REASSIGN OWNED BY recovery_rw TO app_owner; DROP OWNED BY recovery_rw; DROP ROLE recovery_rw");
    const g = await broker.service.request(ctx("alice"), {
      roleId: "production/db-admin",
      justification: "restore the accounts table",
      incident: "INC-4713",
    });
    await broker.service.approve(ctx("bob"), g.id, null);
    expect((await broker.service.approve(ctx("carol"), g.id, null)).state).toBe("approved");
    const { page } = await person("alice");
    await page.goto(`${base}/grants/${g.id}`);
    const banner = page.getByTestId("activation-failed");
    await banner.getByText(/Activation failed at pg-main/).waitFor();
    expect(await banner.textContent()).toMatch(/role "recovery_rw" does not exist/);
    expect(await banner.textContent()).toMatch(/The broker tries again by itself at/);
    await accessible(page, "grant (activation failed)");
    await shot(page, "grant-activation-failed");
    // The role is back: the broker's own retry gets alice in.
    await target.sql(`CREATE ROLE recovery_rw NOLOGIN;
      GRANT USAGE, CREATE ON SCHEMA public TO recovery_rw;
      GRANT SELECT, INSERT, UPDATE, DELETE ON public.accounts TO recovery_rw WITH GRANT OPTION`);
    await until(
      "the broker's retry to activate the grant",
      async () => (await broker.store.getGrant(g.id))?.state === "active",
    );
    await page.reload();
    await page.getByText("active", { exact: true }).waitFor();
    expect(await page.getByTestId("activation-failed").count()).toBe(0);
    await broker.service.release(ctx("alice"), g.id);
  });

  it("asks for a fresh second factor where the role needs one, then carries on", async () => {
    const admin = ctx("erin");
    const totp = async (user: string) => {
      const { secret } = await (broker.auth as NonNullable<Broker["auth"]>).provisionTotp(admin, user, "phone");
      return () => new TOTP({ secret: Secret.fromBase32(secret) }).generate();
    };
    const [aliceCode, carolCode] = [await totp("alice"), await totp("carol")];
    const { page } = await person("alice");
    await page.getByRole("link", { name: "Request" }).click();
    await page.getByRole("radio", { name: /Read-only look at the primary/ }).check();
    await page.getByLabel("Justification").fill("check replication lag on the primary");
    await page.getByLabel("Incident id").fill("INC-4713");
    // The broker answers ERR_STEP_UP_REQUIRED (403) to the request without a fresh factor, and
    // refuses a wrong code (401): the console turns the first into the dialog, and shows the
    // second in it until a right code is given; then the request runs again.
    expectRefusal("alice", "/grants", 403);
    expectRefusal("alice", "/auth/step-up", 401);
    await page.getByRole("button", { name: "Request access" }).click();
    const dialog = page.getByRole("dialog", { name: "Confirm it is you" });
    await dialog.waitFor();
    await accessible(page, "step-up dialog");
    await shot(page, "step-up");
    await page.getByLabel(/Code from your authenticator app/).fill("000000");
    await page.getByRole("button", { name: "Verify and continue" }).click();
    await dialog
      .getByRole("alert")
      .filter({ hasText: /code|factor/i })
      .waitFor(); // a wrong code is refused, in the dialog
    await page.getByLabel(/Code from your authenticator app/).fill(aliceCode());
    await page.getByRole("button", { name: "Verify and continue" }).click();
    await page.getByText("requested", { exact: true }).waitFor();
    const id = new URL(page.url()).pathname.split("/")[2] as string;

    expectRefusal("carol", `/grants/${id}/approve`, 403);
    const carol = await person("carol");
    await carol.page.goto(`${base}/grants/${id}`);
    await carol.page.getByRole("button", { name: "Approve" }).click();
    await carol.page.getByRole("button", { name: "Approve" }).click();
    await carol.page.getByRole("dialog", { name: "Confirm it is you" }).waitFor();
    // Keyboard only: the dialog puts the cursor in the code field (once it has rendered: wait for
    // that rather than type into whatever has the focus first on a busy machine), Enter submits.
    await carol.page.waitForFunction('document.activeElement?.id === "stepup-code"', null, {
      timeout: PATIENCE_MS,
    });
    await carol.page.keyboard.type(carolCode());
    await carol.page.keyboard.press("Enter");
    await carol.page.getByText("active", { exact: true }).waitFor();
    const steps = (await broker.store.readAudit(1, 10_000)).filter((e) => e.type === "auth.step_up");
    expect(steps.map((e) => e.actor).sort()).toEqual(["alice", "carol"]);
  });

  it("security keys: bob enrols one in the console, steps up with it, and signs in with it while the IdP is down", async () => {
    // A fresh request of the step-up role by alice (her earlier one released first).
    for (const g of await broker.service.list({ states: ["active"], requester: "alice", limit: 10 })) {
      await broker.service.release(ctx("alice"), g.id);
    }
    const request = await broker.service.request(ctx("alice"), {
      roleId: "production/db-readonly",
      justification: "look at the replication slots",
      incident: "INC-4714",
    });
    const { context, page } = await person("bob");
    // Chromium's virtual authenticator: a USB security key, touched at once when asked.
    const cdp = await context.newCDPSession(page);
    await cdp.send("WebAuthn.enable");
    const { authenticatorId } = await cdp.send("WebAuthn.addVirtualAuthenticator", {
      options: {
        protocol: "ctap2",
        transport: "usb",
        hasResidentKey: false,
        hasUserVerification: true,
        isUserVerified: true,
        automaticPresenceSimulation: true,
      },
    });
    await page.getByRole("link", { name: "Factors" }).click();
    await page.getByText("None yet: without one you cannot sign in while the IdP is down.").waitFor();
    await page.getByLabel("Name of the key").fill("yubikey 5c");
    await page.getByRole("button", { name: "Add a security key" }).click();
    await page.getByRole("cell", { name: "yubikey 5c", exact: true }).waitFor();
    expect((await cdp.send("WebAuthn.getCredentials", { authenticatorId })).credentials).toHaveLength(1);
    await accessible(page, "factors");
    await shot(page, "factors");
    const enrolled = (await broker.store.readAudit(1, 10_000)).filter((e) => e.type === "auth.factor_enrolled");
    expect(enrolled.map((e) => [e.actor, JSON.parse(e.payload).data.kind])).toContainEqual(["bob", "webauthn"]);

    // Approving the step-up role needs a fresh factor: the dialog offers the key.
    expectRefusal("bob", `/grants/${request.id}/approve`, 403);
    await page.goto(`${base}/grants/${request.id}`);
    await page.getByRole("button", { name: "Approve" }).click();
    await page.getByRole("button", { name: "Approve" }).click();
    await page.getByRole("dialog", { name: "Confirm it is you" }).waitFor();
    await page.getByRole("button", { name: "Use a security key" }).click();
    await page.getByText("active", { exact: true }).waitFor();
    const stepUps = (await broker.store.readAudit(1, 10_000)).filter(
      (e) => e.type === "auth.step_up" && e.actor === "bob",
    );
    expect(stepUps).toHaveLength(1);

    // The IdP goes down (declared by security): bob signs in by the local fallback with his key.
    const erin = (await broker.tokens.create(SYSTEM_CONTEXT, { user: "erin", description: "declare" })).token.reveal();
    const declare = (down: boolean) =>
      fetch(`${base}/api/v1/auth/idp`, {
        method: "POST",
        headers: { authorization: `Bearer ${erin}`, "content-type": "application/json" },
        body: JSON.stringify({ down, reason: "console test: IdP outage drill" }),
      });
    expect((await declare(true)).status).toBe(200);
    try {
      await page.getByRole("button", { name: "Sign out" }).click();
      await page.goto(`${base}/`);
      await page.getByRole("heading", { name: "The IdP is down: local fallback login" }).waitFor();
      await page.getByLabel("User name").fill("bob");
      await accessible(page, "fallback sign-in");
      await shot(page, "fallback-sign-in");
      await page.getByRole("button", { name: "Sign in with a security key" }).click();
      await page.getByText("fallback login", { exact: true }).waitFor();
      // A fallback login only requests and uses grants: the navigation offers just that.
      const links = await page.getByRole("navigation", { name: "Main" }).getByRole("link").allInnerTexts();
      expect(links.map((t) => t.trim())).toEqual(["Now", "Request", "Roles"]);
      await page.getByRole("heading", { name: /Active break-glass grants/ }).waitFor();
      await accessible(page, "now (fallback login)");
      await shot(page, "now-fallback");
      const logins = (await broker.store.readAudit(1, 10_000)).filter(
        (e) => e.type === "auth.fallback_login" && e.actor === "bob",
      );
      expect(logins).toHaveLength(1);
    } finally {
      expect((await declare(false)).status).toBe(200);
    }
    await context.close();
  });

  it("signs in with an API token too (a broker without an IdP, like the demo), kept in the tab only", async () => {
    const created = await broker.tokens.create(ctx("erin"), { user: "carol", description: "console test" });
    const context = await browser.newContext();
    const page = await context.newPage();
    page.setDefaultTimeout(WAIT_MS);
    page.on("pageerror", (e) => problems.push(`token page error: ${e.message}`));
    await page.goto(`${base}/roles`);
    await page.getByLabel("Or with an API token").fill("t_wrong.token");
    await page.getByRole("button", { name: "Sign in with token" }).click();
    await page.getByRole("alert").waitFor();
    await page.getByLabel("Or with an API token").fill(created.token.reveal());
    await page.getByRole("button", { name: "Sign in with token" }).click();
    await page.getByText("Carol Chen").waitFor();
    await page.getByRole("heading", { name: "Domains and roles" }).waitFor(); // the page asked for
    // Not in a cookie or localStorage: this tab only.
    expect(await context.cookies()).toEqual([]);
    expect(await page.evaluate("JSON.stringify(localStorage)")).toBe("{}");
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByRole("button", { name: "Sign in with token" }).waitFor();
    expect(await page.evaluate("sessionStorage.length")).toBe(0);
    await context.close();
  });

  it("is served by the broker with a strict CSP; its pages are the broker's paths; assets only by name", async () => {
    const page = await fetch(`${base}/grants/g_anything`);
    expect(page.status).toBe(200);
    expect(page.headers.get("content-security-policy")).toContain("script-src 'self'");
    expect(page.headers.get("content-security-policy")).toContain("frame-ancestors 'none'");
    const html = await page.text();
    const asset = /src="(\/assets\/[^"]+\.js)"/.exec(html)?.[1] as string;
    const js = await fetch(`${base}${asset}`);
    expect(js.headers.get("content-type")).toContain("text/javascript");
    expect(js.headers.get("cache-control")).toContain("immutable");
    for (const bad of ["/assets/..%2F..%2Fpackage.json", "/assets/.vite", "/assets/nothing.js"])
      expect((await fetch(`${base}${bad}`)).status).toBe(404);
    // The API keeps answering problem+json, not the app.
    expect((await fetch(`${base}/api/v1/nope`)).headers.get("content-type")).toContain("application/problem+json");
  });

  it("no console error, page error or CSP violation anywhere in the run", () => {
    expect(problems).toEqual([]);
    expect(expectedRefusals).toEqual([]); // every provoked refusal did happen
  });
});
