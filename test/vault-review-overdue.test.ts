/**
 * A tier-2 opening nobody reviewed by its deadline is loud, like an overdue tier-1 review: the
 * broker raises `vault.review_overdue` once per opening, routed to the security channels whatever
 * the routes say; a reviewed opening, or one not yet due, raises nothing. The opening is put in
 * the store as an import would leave it (the import itself is tested in vault.test.ts).
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, expect, it } from "vitest";
import type { VaultOpening } from "../src/core/model.js";
import { manualClock } from "./support/manual-clock.js";
import { startTestBroker, type TestBroker } from "./support/test-broker.js";

const HOUR = 3_600_000;
let tb: TestBroker | undefined;
afterEach(async () => {
  await tb?.stop();
  tb = undefined;
});

function opening(id: string, openedAt: number, reviewed: boolean): VaultOpening {
  return {
    id,
    envelopeId: "env1",
    envelopeName: "root-db",
    recordSeq: Number(id.slice(-1)),
    recordHash: "0".repeat(64),
    openedAt,
    custodians: [{ name: "carol", fingerprint: "SHA256:x" }],
    reason: "the broker is down",
    incident: "INC-9",
    importedAt: openedAt,
    reviewDueAt: openedAt + 24 * HOUR,
    review: reviewed
      ? { reviewer: "erin", outcome: "justified", notes: "ok", followUps: [], at: openedAt + HOUR }
      : null,
    alarmPending: false,
    alarmDeliveredAt: openedAt,
  } as VaultOpening;
}

it("raises vault.review_overdue once per unreviewed opening past its deadline, to the security channels", async () => {
  const clock = manualClock();
  const t0 = clock.now();
  tb = await startTestBroker({
    clock,
    start: false,
    config: {
      alarms: {
        channels: { security: { type: "file", path: "./security.jsonl" }, ops: { type: "file", path: "./ops.jsonl" } },
        security_channels: ["security"],
        routes: [{ events: ["grant.*"], channels: ["ops"] }],
      },
    },
  });
  const { broker } = tb;
  await broker.store.transaction(async (tx) => {
    await tx.saveVaultOpening(opening("vo_env1_1", t0, false));
    await tx.saveVaultOpening(opening("vo_env1_2", t0, true));
    await tx.saveVaultOpening(opening("vo_env1_3", t0 + 20 * HOUR, false));
  });
  // Not due yet: nothing.
  clock.advance(23 * HOUR);
  expect(await broker.vaultReviews.runOnce()).toEqual([]);
  // The first is overdue; the reviewed one never is; the third is not due until t0 + 44 h.
  clock.advance(2 * HOUR);
  expect(await broker.vaultReviews.runOnce()).toEqual(["vo_env1_1"]);
  // Once: a second look, or another replica's, raises nothing more for it.
  clock.advance(HOUR);
  expect(await broker.vaultReviews.runOnce()).toEqual([]);
  clock.advance(20 * HOUR);
  expect(await broker.vaultReviews.runOnce()).toEqual(["vo_env1_3"]);

  const events = await broker.store.readNonGrantAudit(["vault.review_overdue"]);
  expect(events.map((e) => JSON.parse(e.payload).data.opening)).toEqual(["vo_env1_1", "vo_env1_3"]);
  await broker.alarms.drain();
  const lines = readFileSync(join(tb.dir, "security.jsonl"), "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l));
  const overdue = lines.filter((l) => l.event?.type === "vault.review_overdue");
  expect(overdue).toHaveLength(2);
  expect(overdue[0].summary).toContain("REVIEW OVERDUE");
  expect(overdue[0].summary).toContain("breakglass review vo_env1_1");
});
