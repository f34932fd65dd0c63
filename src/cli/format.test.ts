import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { GrantView } from "../contract/api.js";
import { type CliIo, safeIo } from "./cli-io.js";
import { actionSummary, grantDetail, grantsTable } from "./format.js";
import { main } from "./main.js";
import { openingText, reviewQueueText, storyText } from "./review-format.js";

/** What no output may carry raw: C0 (but newline and tab), DEL, C1, bidi controls, invisible separators, tags. */
const RAW_UNSAFE =
  // biome-ignore lint/suspicious/noControlCharactersInRegex: the test looks for them
  /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u061c\u180e\u200b\u200e\u200f\u2028-\u202e\u2060-\u2069\ufeff\u{e0000}-\u{e007f}]/u;

const hostile = fc.string({
  unit: fc.oneof(
    fc.constantFrom(
      "\x1b[2J",
      "\x1b]8;;https://evil.example\x07",
      "\u202e",
      "\u2067",
      "\u200b",
      "\x00",
      "\x7f",
      "\x9b",
    ),
    fc.constantFrom("\r", "\n", "\n  approvals  2 of 2", "\t"),
    fc.string({ unit: "binary", maxLength: 3 }),
  ),
  maxLength: 12,
});
const time = fc.constant("2026-11-22T04:37:02.123Z");

const grantView = fc.record({
  id: hostile,
  role: hostile,
  domain: hostile,
  target: hostile,
  requester: hostile,
  state: fc.constantFrom("requested", "approved", "active", "ended", "reviewed", "denied"),
  endReason: fc.constantFrom(null, "revoked"),
  emergency: fc.boolean(),
  viaFallback: fc.boolean(),
  drill: fc.boolean(),
  justification: hostile,
  incident: hostile,
  durationS: fc.nat(100_000),
  approvalRule: fc.option(hostile),
  approvals: fc.array(fc.record({ approver: hostile, at: time, comment: fc.option(hostile) }), { maxLength: 2 }),
  requestedAt: time,
  approvedAt: fc.option(time),
  activatedAt: fc.option(time),
  endsAt: fc.option(time),
  endedAt: fc.option(time),
  lapseAt: fc.option(time),
  reviewDueAt: fc.option(time),
  remainingS: fc.option(fc.nat(10_000)),
  closedBy: fc.option(hostile),
  closeReason: fc.option(hostile),
  access: fc.record({
    state: fc.constantFrom("none", "granted", "revoking"),
    attempts: fc.nat(3),
    lastError: fc.option(hostile),
    nextAttemptAt: fc.option(time),
    revocationFailing: fc.boolean(),
  }),
  alarms: fc.array(
    fc.record({
      id: hostile,
      channel: hostile,
      event: hostile,
      state: fc.constantFrom("queued", "delivered", "failed"),
      attempts: fc.nat(3),
      lastError: fc.option(hostile),
      createdAt: time,
      deliveredAt: fc.option(time),
      latencyMs: fc.option(fc.nat(1000)),
      nextAttemptAt: fc.option(time),
    }),
    { maxLength: 2 },
  ),
  extensions: fc.array(fc.record({ at: time, by: hostile, extraS: fc.nat(600), endsAt: time, reason: hostile }), {
    maxLength: 1,
  }),
  review: fc.option(
    fc.record({
      reviewer: hostile,
      at: time,
      outcome: fc.constantFrom("justified", "unjustified"),
      notes: hostile,
      followUps: fc.array(fc.record({ action: hostile, owner: hostile, due: fc.option(fc.constant("2026-12-01")) }), {
        maxLength: 2,
      }),
    }),
  ),
  version: fc.nat(10),
}) as unknown as fc.Arbitrary<GrantView>;

/** Print through the CLI's one output path and collect what a terminal would get. */
function printed(write: (io: CliIo) => void): string {
  const chunks: string[] = [];
  const capture: CliIo = {
    out: (t) => chunks.push(t),
    err: (t) => chunks.push(t),
    stdout: process.stdout,
    env: {},
    cwd: "/",
    waitForStop: () => new Promise(() => {}),
    ask: async () => "",
  };
  write(safeIo(capture));
  return chunks.join("\n");
}

describe("human output carries no raw control or bidi character, whatever the input (property)", () => {
  it("grant detail, list and action line; review story, queue and tier-2 opening", () => {
    fc.assert(
      fc.property(grantView, hostile, (g, why) => {
        const story = {
          grant: g,
          timeline: [{ seq: 1, at: g.requestedAt, type: why, actor: why, data: {} }],
          alarms: g.alarms ?? [],
          recording: {
            gatewaySessions: 0,
            statements: 0,
            blocked: [{ at: g.requestedAt, statement: why, error: null }],
            errors: 0,
            terminalSessions: 0,
          },
          sweptSidePermissions: [{ what: why }],
          timing: { timeToApprovalS: null, timeToAccessS: null, heldS: null, reviewDueAt: null },
          canReview: false,
          why,
        };
        const opening = {
          opening: {
            id: why,
            envelope: { id: why, name: why },
            record: { seq: 1, hash: why },
            openedAt: g.requestedAt,
            custodians: [{ name: why, fingerprint: why }],
            reason: why,
            incident: why,
            importedAt: g.requestedAt,
            reviewDueAt: g.requestedAt,
            review: null,
          },
          overdue: true,
          canReview: false,
          why,
        };
        const out = printed((io) => {
          io.out(grantDetail(g));
          io.out(grantsTable([g, g]));
          io.out(actionSummary(g));
          io.out(storyText(story as never));
          io.out(
            reviewQueueText(
              [{ grant: g, dueAt: null, overdue: true, emergency: true, canReview: false, why }],
              [opening as never],
            ),
          );
          io.out(openingText(opening as never));
        });
        expect(out).not.toMatch(RAW_UNSAFE);
      }),
      { numRuns: 300 },
    );
  });

  it("someone's text cannot start a line of its own in a table or a grant's details", () => {
    // The same grant with every text replaced by a plain word: the lines the program itself makes.
    const plain = (v: unknown): unknown =>
      typeof v === "string"
        ? v === "" ||
          /^\d{4}-\d\d-\d\dT/.test(v) ||
          [
            "requested",
            "approved",
            "active",
            "ended",
            "reviewed",
            "denied",
            "revoked",
            "none",
            "granted",
            "revoking",
            "queued",
            "delivered",
            "failed",
            "justified",
            "unjustified",
          ].includes(v)
          ? v
          : "x"
        : Array.isArray(v)
          ? v.map(plain)
          : v !== null && typeof v === "object"
            ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x)]))
            : v;
    const own = (text: string) => text.split("\n").filter((l) => !/^ {3,}│ /.test(l)).length;
    fc.assert(
      fc.property(grantView, (g) => {
        expect(grantsTable([g, g]).split("\n")).toHaveLength(3);
        // Only marked continuation lines (`│`) may come from someone's text.
        expect(own(grantDetail(g))).toBe(own(grantDetail(plain(g) as GrantView)));
      }),
      { numRuns: 300 },
    );
  });

  it("error messages that echo the input (an unknown command, a bad option)", async () => {
    await fc.assert(
      fc.asyncProperty(hostile, async (word) => {
        const lines: string[] = [];
        const io: CliIo = {
          out: (t) => lines.push(t),
          err: (t) => lines.push(t),
          stdout: process.stdout,
          env: {},
          cwd: "/",
          waitForStop: () => new Promise(() => {}),
          ask: async () => "",
        };
        await main([`x${word}`], io);
        await main(["show", `--x${word}`], io);
        expect(lines.join("\n")).not.toMatch(RAW_UNSAFE);
      }),
      { numRuns: 200 },
    );
  });
});
