/**
 * The compliance evidence report on a seeded period: its contents match the audit log exactly
 * (accesses, approvals, activation times, alarm deliveries, reviews, checkpoints), a grant
 * outside the period is left out, and the PDF printed by real Chromium has the expected pages,
 * rendered to PNG with pdftoppm and checked not to be blank.
 */
import { execFile } from "node:child_process";
import { readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { chromium } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Broker } from "../src/app.js";
import { verifyStoreChain } from "../src/audit/audit-verify.js";
import { buildEvidenceReport, reportCsv, reportHtml, reportJson } from "../src/audit/evidence-report.js";
import { HEADLESS_CHROMIUM_ARGS } from "../src/audit/pdf.js";
import { loadPublicKeys } from "../src/audit/signing-key.js";
import { nextRecord } from "../src/vault/opening-record.js";
import { requireBuild, runCli } from "./support/broker-process.js";
import { ctx } from "./support/ctx.js";
import { manualClock } from "./support/manual-clock.js";
import { startTestBroker, type TestBroker } from "./support/test-broker.js";

const run = promisify(execFile);
const DAY = 86_400_000;
const clock = manualClock(Date.UTC(2026, 10, 1, 9, 0, 0));
let t: TestBroker;
let dir: string;
let broker: Broker;
const FROM = Date.UTC(2026, 10, 1);
const TO = Date.UTC(2026, 11, 1);

async function access(emergency: boolean, outcome: "justified" | "unjustified") {
  const g = await broker.service.request(ctx("alice"), {
    roleId: "production/db-admin",
    justification: emergency ? "primary down at night, nobody reachable" : "replica lag, killing a query",
    incident: "INC-77",
    ...(emergency ? { emergency: true } : {}),
  });
  if (!emergency) {
    clock.advance(60_000);
    await broker.service.approve(ctx("bob"), g.id, null);
    clock.advance(60_000);
    await broker.service.approve(ctx("carol"), g.id, null);
  }
  await broker.alarms.tick(); // delivered right after the activation
  clock.advance(20 * 60_000);
  await broker.service.release(ctx("alice"), g.id);
  clock.advance(DAY);
  await broker.service.review(ctx("erin"), g.id, { outcome, notes: `${outcome}: checked with the on-call log` });
  return g.id;
}

beforeAll(async () => {
  t = await startTestBroker({ clock, config: { audit: { checkpoint_every_events: 5 } } });
  ({ broker, dir } = t);
  await access(false, "justified");
  clock.advance(3 * DAY);
  await access(true, "unjustified");
  // A tier-2 opening imported from its record, reviewed.
  clock.advance(DAY);
  const record = nextRecord(
    [],
    {
      envelope: "e0a1",
      name: "aws-root",
      at: new Date(clock.now() - 3_600_000).toISOString(),
      custodians: [
        { name: "alice", fingerprint: "0123456789abcdef" },
        { name: "dave", fingerprint: "fedcba9876543210" },
      ],
      reason: "AWS SSO down",
      incident: "INC-78",
      alarm: "delivered to 1 endpoint(s)",
    },
    () => "sig",
  );
  await broker.vault.importOpenings({ id: "e0a1", name: "aws-root" }, [record], []);
  await broker.vault.review(ctx("erin"), "vo_e0a1_1", { outcome: "justified", notes: "SSO outage INC-78" });
  await broker.checkpoints.checkpointNow();
  clock.set(Date.UTC(2026, 11, 3, 9, 0, 0)); // outside the period
  await access(false, "justified");
  await broker.alarms.tick();
});

afterAll(async () => {
  await t?.stop();
});

async function build() {
  const keys = loadPublicKeys([broker.signingKey.publicKeyPem]);
  const chain = await verifyStoreChain(broker.store, keys.verifySignature);
  const credentials = await broker.rotationStatus();
  return buildEvidenceReport(broker.store, { from: FROM, to: TO, now: clock.now(), chain, credentials });
}

describe("evidence report", () => {
  it("matches the audit log exactly for the period", async () => {
    const r = await build();
    // biome-ignore lint/suspicious/noExplicitAny: checked with expect(), field by field
    const json = reportJson(r) as Record<string, any>;
    expect(json.summary).toMatchObject({ accesses: 2, emergency: 1, reviewed: 2, unjustified: 1, auditChainOk: true });
    for (const a of json.accesses) {
      const events = await broker.store.readGrantAudit([a.grant]);
      const at = (type: string) =>
        events.filter((e) => e.type === type).map((e) => new Date(e.at).toISOString().replace(".000Z", "Z"));
      expect(a.approvals.map((x: { approver: string }) => x.approver)).toEqual(
        events.filter((e) => e.type === "grant.approval_added" || e.type === "grant.approved").map((e) => e.actor),
      );
      expect([a.activatedAt]).toEqual([...at("grant.activated"), ...at("grant.emergency_activated")]);
      expect([a.endedAt]).toEqual(at("grant.released"));
      const reviewed = events.find((e) => e.type === "grant.reviewed");
      expect(a.review).toMatchObject({
        outcome: (JSON.parse(reviewed?.payload ?? "{}") as { data: { outcome: string } }).data.outcome,
        reviewer: reviewed?.actor,
      });
      const alarms = await broker.store.listAlarms(a.grant);
      const activation = alarms.filter((x) => x.eventType.endsWith("activated"));
      expect(a.activationAlarms.map((x: { channel: string }) => x.channel).sort()).toEqual(
        activation.map((x) => x.channel).sort(),
      );
    }
    const checkpoints = (await broker.store.readCheckpoints()).filter((c) => c.at >= FROM && c.at < TO);
    expect(json.checkpoints.map((c: { seq: number }) => c.seq)).toEqual(checkpoints.map((c) => c.seq));
    expect(json.checkpoints.length).toBeGreaterThan(0);
    // The December grant is not in November's report.
    expect(json.accesses.every((a: { activatedAt: string }) => a.activatedAt < "2026-12-01")).toBe(true);
    const csv = reportCsv(r).trim().split("\r\n");
    expect(csv).toHaveLength(3);
    expect(csv[2]).toContain("unjustified");
    const html = reportHtml(r);
    expect(html).toContain("SOC 2 CC6.1");
    expect(html).toContain("HIPAA §164.312(a)(2)(ii)");
    expect(html).toContain("EMERGENCY self-activation");
    // Tier-2 openings and the credentials' rotation have their own sections.
    // Only credentials the configuration has: this one sets no `secrets.key_file`, so no data key.
    expect(json.summary).toMatchObject({ vaultOpenings: 1, vaultOpeningsReviewed: 1, credentials: 1 });
    expect(json.vaultOpenings).toEqual([
      expect.objectContaining({
        opening: "vo_e0a1_1",
        custodians: ["alice", "dave"],
        incident: "INC-78",
        review: expect.objectContaining({ outcome: "justified", reviewer: "erin" }),
      }),
    ]);
    expect(json.rotation.credentials.map((c: { credential: string }) => c.credential)).toEqual(["audit signing key"]);
    expect(html).toContain("<h2>Tier-2 openings</h2>");
    expect(html).toContain("AWS SSO down");
    expect(html).toContain("<h2>Credential rotation</h2>");
  });

  it("on screen, the document starts at the top: the cover fills a page only when printed", async () => {
    const file = join(dir, "report.html");
    writeFileSync(file, reportHtml(await build()));
    const browser = await chromium.launch({
      executablePath: process.env.BREAKGLASS_CHROMIUM ?? "/usr/bin/chromium",
      args: [...HEADLESS_CHROMIUM_ARGS],
    });
    try {
      const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
      await page.goto(`file://${file}`);
      const top = async () =>
        (await page.evaluate("document.querySelector('h1').getBoundingClientRect().top")) as number;
      // Before the fix the title sat ~360 px down, centred in a 240 mm cover on screen too.
      expect(await top()).toBeLessThan(40);
      await page.emulateMedia({ media: "print" });
      expect(await top()).toBeGreaterThan(200);
    } finally {
      await browser.close();
    }
  });

  it("prints to PDF with Chromium; the pages render and are not blank", async () => {
    requireBuild();
    const pdf = join(dir, "report.pdf");
    const cli = await runCli(
      [
        "report",
        "--from",
        "2026-11-01",
        "--to",
        "2026-12-01",
        "--format",
        "pdf",
        "--out",
        pdf,
        "--config",
        join(dir, "breakglass.yaml"),
      ],
      {},
      { timeoutMs: 120_000 },
    );
    expect(cli.stderr).toContain("audit chain verified");
    expect(cli.code).toBe(0);
    expect(readFileSync(pdf).subarray(0, 5).toString()).toBe("%PDF-");
    const pngDir = process.env.BREAKGLASS_REPORT_PNG_DIR ?? join(dir, "png");
    await run("mkdir", ["-p", pngDir]);
    await run("pdftoppm", ["-png", "-r", "60", pdf, join(pngDir, "page")]);
    const pages = readdirSync(pngDir).filter((f) => f.endsWith(".png"));
    // cover, summary, one page per access (2), drills + integrity
    expect(pages.length).toBeGreaterThanOrEqual(5);
    for (const p of pages) expect(statSync(join(pngDir, p)).size).toBeGreaterThan(3000);
  }, 180_000);
});
