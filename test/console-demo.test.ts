/**
 * The web console on `breakglass demo` — the command and configuration the README starts every
 * new user with (examples/demo/breakglass.yaml: no secret key, no IdP, API tokens only). The demo
 * runs as its own process (`node bin/breakglass.js demo`, in a fresh folder, on a free port) and
 * the test signs in with the tokens it prints, as alice (on call), bob and carol (the leads; carol
 * is security, the demo's admins), at a desktop's width and at a phone's (390 × 844):
 *
 * - the README's story: alice requests production/db-admin, bob and carol approve it from their
 *   Now pages, alice holds it, carol revokes it ("ended (revoked)"); nobody independent is left
 *   to review it, so nobody is offered the review form;
 * - only what the viewer may do: the holder gets Release and Extend but no Revoke; an approver
 *   gets Revoke but no Release; nobody gets connection details on the demo's exec targets;
 * - an emergency activation on a phone, released from Now, and reviewed by security (carol);
 * - every page as alice and as carol at both widths: axe-core, a screenshot under
 *   test-artifacts/console/demo/, and on a phone no sideways scrolling of Now and Audit (time
 *   left, alarm state, holder and actor columns inside the window);
 * - no console error, failed request or page error anywhere (a route the console calls that the
 *   demo lacks fails this).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type BrokerProcess, startBrokerProcess } from "./support/broker-process.js";
import {
  accessible,
  columnVisible,
  DESKTOP,
  launchChromium,
  overflowX,
  PHONE,
  shot,
  watchPage,
} from "./support/console-browser.js";
import { until } from "./support/wait.js";

const SHOTS = join(process.cwd(), "test-artifacts", "console", "demo");
type User = "alice" | "bob" | "carol";

let dir: string;
let demo: BrokerProcess;
let browser: Browser;
const tokens = new Map<User, string>();
const problems: string[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "bg-console-demo-"));
  // The README's command, run where a new user would run it (its state goes to ./.breakglass/demo).
  demo = await startBrokerProcess(join(dir, "unused.yaml"), { args: ["demo", "--port", "0"] });
  const out = demo.output().stdout;
  for (const user of ["alice", "bob", "carol"] as const) {
    const token = new RegExp(`export ${user.toUpperCase()}_TOKEN=(\\S+)`).exec(out)?.[1];
    if (!token) throw new Error(`the demo printed no ${user.toUpperCase()}_TOKEN:\n${out}`);
    tokens.set(user, token);
  }
  browser = await launchChromium();
});

afterAll(async () => {
  await browser?.close();
  await demo?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const size = (viewport: typeof DESKTOP | typeof PHONE) => (viewport === PHONE ? "phone" : "desktop");

/** A person at their own browser, signed in with the token the demo printed for them. */
async function signIn(user: User, viewport: typeof DESKTOP | typeof PHONE = DESKTOP): Promise<Page> {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  page.setDefaultTimeout(60_000); // a deadline for a loaded machine, not a latency bound
  watchPage(page, user, demo.url, problems);
  await page.goto(`${demo.url}/`);
  await page.getByLabel("API token").fill(tokens.get(user) as string);
  await page.getByRole("button", { name: "Sign in with token" }).click();
  await page.getByRole("navigation", { name: "Main" }).waitFor();
  await page.getByRole("heading", { name: "Now", exact: true }).waitFor();
  return page;
}

const buttons = async (page: Page) =>
  (await page.locator(".actions button").allInnerTexts()).map((t) => t.trim()).filter((t) => t !== "");

describe("the web console on `breakglass demo`", () => {
  let grantId: string;

  it("signed out, offers the demo's way in: an API token (no IdP on the demo)", async () => {
    for (const viewport of [DESKTOP, PHONE]) {
      const context = await browser.newContext({ viewport });
      const page = await context.newPage();
      watchPage(page, "signed-out", demo.url, problems);
      await page.goto(`${demo.url}/`);
      await page.getByRole("heading", { name: "Sign in" }).waitFor();
      await page.getByLabel("API token").waitFor();
      expect(await page.getByText("Not found.").count()).toBe(0);
      expect(await page.getByRole("link", { name: /identity provider/ }).count()).toBe(0);
      await accessible(page, `sign-in (${size(viewport)})`);
      await shot(page, SHOTS, `${size(viewport)}-sign-in`);
      await context.close();
    }
  });

  it("alice signs in with ALICE_TOKEN and requests production/db-admin, as the README says", async () => {
    const page = await signIn("alice");
    await page.getByText("Nobody holds break-glass access right now.").waitFor();
    // The demo has no secret key: no sign-in factors to manage, so no page for them.
    expect(await page.getByRole("link", { name: "Factors" }).count()).toBe(0);
    await page.getByRole("link", { name: "Request", exact: true }).click();
    await page.getByRole("radio", { name: /Recovery DBA on the main database/ }).check();
    await page.getByLabel("Justification").fill("primary database is down, failover is stuck");
    await page.getByLabel("Incident id").fill("INC-1234");
    await page.getByRole("button", { name: "Request access" }).click();
    await page.getByText("requested", { exact: true }).waitFor();
    grantId = new URL(page.url()).pathname.split("/")[2] as string;
    expect(grantId).toMatch(/^g_/);
    // Her own request: she may withdraw it, not approve, deny or revoke it.
    expect(await buttons(page)).toEqual(["Cancel request"]);
    await page.context().close();
  });

  it("bob and carol approve it from their Now page; the approver's page offers what an approver may do", async () => {
    for (const approver of ["bob", "carol"] as const) {
      const page = await signIn(approver);
      await page.getByRole("heading", { name: "Waiting for your approval (1)" }).waitFor();
      await page.getByRole("link", { name: "alice asks for production/db-admin" }).click();
      await page.getByText("primary database is down, failover is stuck").waitFor();
      expect(await buttons(page)).toEqual(["Approve", "Deny"]);
      await page.getByRole("button", { name: "Approve" }).click();
      await page.getByLabel("Comment (optional)").fill(`ok from ${approver}`);
      await page.getByRole("button", { name: "Approve" }).click();
      await page.getByText(approver === "bob" ? "approvals: bob" : "approvals: bob, carol").waitFor();
      if (approver === "bob") {
        // One of two approvals: bob's part is done, nothing else for him to do but stop it.
        expect(await buttons(page)).toEqual(["Deny"]);
        await accessible(page, "grant (approved once)");
        await shot(page, SHOTS, "desktop-grant-requested-bob");
      }
      await page.context().close();
    }
  });

  it("alice holds it: live countdown, Release and Extend, no Revoke and no connection details (exec target)", async () => {
    const page = await signIn("alice");
    await page.getByRole("heading", { name: "My active grants (1)" }).waitFor();
    await page.getByRole("link", { name: grantId }).click();
    await page.getByText("active", { exact: true }).waitFor();
    expect(await buttons(page)).toEqual(["Release now", "Extend"]);
    expect(await page.getByRole("button", { name: "Show connection details" }).count()).toBe(0);
    await accessible(page, "grant (holder)");
    await shot(page, SHOTS, "desktop-grant-active-alice");
    await page.context().close();
  });

  it("carol revokes it (Revoke, no Release); the page says how it ended", async () => {
    const page = await signIn("carol");
    await page.getByRole("link", { name: grantId }).click();
    await page.getByText("active", { exact: true }).waitFor();
    // carol is an approver of the role and in security (admins): revoke and extend, not release.
    expect(await buttons(page)).toEqual(["Extend", "Revoke"]);
    await page.getByRole("button", { name: "Revoke" }).click();
    await page.getByLabel("Why revoke").fill("fixed; closing the window early");
    await page.getByRole("button", { name: "Revoke" }).click();
    await page.getByText("ended (revoked)", { exact: true }).waitFor();
    expect(await buttons(page)).toEqual([]);
    const timeline = await page.locator(".timeline").innerText();
    expect(timeline).toContain("grant.revoked");
    expect(timeline).toContain("fixed; closing the window early");
    await accessible(page, "grant (ended)");
    await shot(page, SHOTS, "desktop-grant-ended-carol");
    await page.context().close();
  });

  it("nobody independent is left to review it: no review form for anyone, and the queue says why", async () => {
    for (const user of ["alice", "bob", "carol"] as const) {
      const page = await signIn(user);
      await page.goto(`${demo.url}/grants/${grantId}`);
      await page.getByText("ended (revoked)", { exact: true }).waitFor();
      await page.getByText(/you cannot review it/i).waitFor();
      expect(await page.getByRole("button", { name: "Record review" }).count()).toBe(0);
      await page.getByRole("link", { name: "Reviews", exact: true }).click();
      await page.getByRole("cell", { name: grantId, exact: true }).waitFor();
      expect(await page.getByRole("link", { name: "review", exact: true }).count()).toBe(0);
      await page.context().close();
    }
  });

  it("alice breaks the glass on her phone (emergency), sees it on Now without scrolling sideways, releases it", async () => {
    const page = await signIn("alice", PHONE);
    await page.getByRole("link", { name: "Request", exact: true }).click();
    await page.getByRole("radio", { name: /Change edge firewall rules/ }).check();
    await page.getByLabel("Justification").fill("edge firewall drops all traffic");
    await page.getByLabel("Incident id").fill("INC-1235");
    await page.getByLabel(/Emergency: activate now/).check();
    await page.getByLabel(/I understand: this bypasses the approval rule/).check();
    await accessible(page, "request (emergency, phone)");
    await shot(page, SHOTS, "phone-request-emergency");
    await page.getByRole("button", { name: "Activate emergency access now" }).click();
    await page.getByText("EMERGENCY (approval bypassed)").waitFor();
    await page.getByText("active", { exact: true }).waitFor();
    expect(await buttons(page)).toEqual(["Release now", "Extend"]);
    await shot(page, SHOTS, "phone-grant-emergency");
    await page.getByRole("link", { name: "Now", exact: true }).click();
    await page.getByRole("heading", { name: "Active break-glass grants (1)" }).waitFor();
    expect(await overflowX(page)).toBeLessThanOrEqual(0);
    for (const column of ["Left", "Alarm", "Holder"]) expect(await columnVisible(page, column)).toBe(1);
    await accessible(page, "now (phone, active)");
    await shot(page, SHOTS, "phone-now-active");
    await page.getByRole("button", { name: "Release now" }).click();
    await page.getByRole("heading", { name: "My active grants (0)" }).waitFor();
    await page.context().close();
  });

  it("emergency uses are reviewed by security: bob is told why not, carol reviews it from the queue", async () => {
    const bob = await signIn("bob");
    await bob.getByRole("link", { name: "Reviews", exact: true }).click();
    await bob.getByRole("cell", { name: /an emergency activation: it is reviewed by a member of security/ }).waitFor();
    expect(await bob.getByRole("link", { name: "review", exact: true }).count()).toBe(0);
    await bob.context().close();
    const page = await signIn("carol");
    await page.getByRole("link", { name: "Reviews", exact: true }).click();
    await page.getByRole("link", { name: "review", exact: true }).click();
    await page.getByText("ended (released)", { exact: true }).waitFor();
    await page.getByRole("radio", { name: "justified with findings" }).check();
    await page.getByLabel(/Notes/).fill("needed; the firewall runbook missed the rollback");
    await accessible(page, "review form");
    await shot(page, SHOTS, "desktop-review-carol");
    await page.getByRole("button", { name: "Record review" }).click();
    await page.getByText("needed; the firewall runbook missed the rollback").waitFor();
    await page.context().close();
  });

  it("a drill's grant is marked DRILL on its page and never waits in the review queue", async () => {
    const page = await signIn("carol");
    await page.getByRole("link", { name: "Drills", exact: true }).click();
    await page.getByRole("button", { name: "Run now" }).click();
    const api = async (path: string) => {
      const res = await fetch(`${demo.url}/api/v1${path}`, {
        headers: { authorization: `Bearer ${tokens.get("carol")}` },
      });
      return (await res.json()) as Record<string, unknown>;
    };
    const drillGrant = await until(
      "the drill to run and its grant to end",
      async () => {
        const { runs } = (await api("/drills/db-admin-approval/runs")) as { runs: { result: string }[] };
        const { grants } = (await api("/grants?limit=50")) as {
          grants: { id: string; drill: boolean; state: string }[];
        };
        const g = grants.find((x) => x.drill);
        return runs[0] && runs[0].result !== "running" && g && g.state === "ended" ? g.id : null;
      },
      120_000,
      500,
    );
    await page.goto(`${demo.url}/grants/${drillGrant}`);
    await page.getByText("DRILL (a rehearsal, never reviewed)").waitFor();
    await page.getByText("A drill's grant is never reviewed").waitFor();
    expect(await page.getByRole("button", { name: "Record review" }).count()).toBe(0);
    await page.getByRole("link", { name: "Reviews", exact: true }).click();
    await page.getByRole("heading", { name: /Grants \(\d+\)/ }).waitFor();
    expect(await page.getByRole("link", { name: drillGrant as string }).count()).toBe(0);
    await page.context().close();
  }, 180_000);

  for (const viewport of [DESKTOP, PHONE]) {
    for (const user of ["alice", "carol"] as const) {
      it(`every page as ${user} at ${viewport.width} px: readable, accessible, nothing the viewer may not use`, async () => {
        const page = await signIn(user, viewport);
        const nav = page.getByRole("navigation", { name: "Main" });
        const links = (await nav.getByRole("link").allInnerTexts()).map((t) => t.trim());
        // The audit log is for admins (carol): nobody else is shown a page that would refuse them.
        expect(links).toEqual(
          user === "carol"
            ? ["Now", "Request", "Reviews", "Posture", "Drills", "Audit", "Roles"]
            : ["Now", "Request", "Reviews", "Posture", "Drills", "Roles"],
        );
        for (const link of links) {
          const target = nav.getByRole("link", { name: link, exact: true });
          // Every link of the navigation is on screen and usable by touch (no hidden overflow).
          const box = await target.boundingBox();
          expect(box && box.x >= 0 && box.x + box.width <= viewport.width, `${link} link on screen`).toBe(true);
          await target.click();
          await page.waitForFunction(`document.title.startsWith(${JSON.stringify(link)})`);
          await page.locator('main [aria-busy="true"]').first().waitFor({ state: "detached" });
          if (link === "Now") await page.getByRole("heading", { name: /Active break-glass grants \(\d+\)/ }).waitFor();
          if (link === "Audit") await page.getByText("chain verified").waitFor();
          if (link === "Reviews") await page.getByRole("heading", { name: /Grants \(\d+\)/ }).waitFor();
          if (link === "Roles") await page.getByRole("heading", { name: "Domains and roles" }).waitFor();
          if (link === "Drills") {
            await page.getByText("db-admin-approval").waitFor();
            expect(await page.getByRole("button", { name: "Run now" }).count()).toBe(user === "carol" ? 1 : 0);
          }
          expect(await overflowX(page), `${link} is wider than the window`).toBeLessThanOrEqual(0);
          if (viewport === PHONE && link === "Now") await columnVisible(page, "Left");
          if (viewport === PHONE && link === "Audit") {
            expect(await columnVisible(page, "Actor")).toBeGreaterThan(0);
            await columnVisible(page, "Type");
          }
          await accessible(page, `${link} (${user}, ${size(viewport)})`);
          await shot(page, SHOTS, `${size(viewport)}-${user}-${link.toLowerCase()}`);
        }
        // A grant's own page (what alarm links open), at this width.
        await page.goto(`${demo.url}/grants/${grantId}`);
        await page.getByText("ended (revoked)", { exact: true }).waitFor();
        expect(await overflowX(page)).toBeLessThanOrEqual(0);
        await accessible(page, `grant (${user}, ${size(viewport)})`);
        await shot(page, SHOTS, `${size(viewport)}-${user}-grant`);
        await page.context().close();
      });
    }
  }

  it("no console error, failed request or page error anywhere in the run", () => {
    expect(problems).toEqual([]);
  });
});
