/**
 * The broker's notices, end to end on a real (SQLite) broker with exec targets and a file
 * channel: the holder is told before the end, an unreviewed grant is reported when its review is
 * overdue, and a restart with a changed configuration is an audited alarm naming what changed.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Broker } from "../src/app.js";
import { ctx } from "./support/ctx.js";
import { type ConfigOverride, startTestBroker, type TestBroker } from "./support/test-broker.js";
import { sleep, until } from "./support/wait.js";

const ROLE_EXTRA = {
  reader: { target: "box", max_duration: "1h", approval: "1 of leads", requesters: ["oncall"] },
} satisfies Roles;

type Roles = NonNullable<NonNullable<NonNullable<ConfigOverride["domains"]>[string]>["roles"]>;

const config = (maxDuration: string, extraRoles: Roles = {}): ConfigOverride => ({
  alarms: {
    channels: {
      security: { type: "file", path: "./security.jsonl" },
      record: { type: "file", path: "./alarms.jsonl" },
    },
    security_channels: ["security"],
    routes: [{ events: ["grant.*"], channels: ["record"] }],
  },
  users: { alice: { name: "Alice" }, bob: { name: "Bob" }, carol: { name: "Carol" } },
  groups: { oncall: ["alice"], leads: ["bob"], security: ["carol"] },
  admin_groups: ["security"],
  domains: {
    production: {
      roles: {
        "db-admin": {
          target: "box",
          max_duration: maxDuration,
          approval: "1 of leads",
          requesters: ["oncall"],
          review_deadline: "1s",
          ending_warning: "1s",
        },
        ...extraRoles,
      },
    },
  },
  targets: { box: { connector: "exec", settings: { grant: ["true"], revoke: ["true"] } } },
});

let dir: string;
let running: TestBroker | null = null;

/** A broker on this test's folder (and database), after stopping the one before. */
async function startBroker(c: ConfigOverride): Promise<Broker> {
  await running?.stop();
  running = await startTestBroker({ base: "minimal", dir, config: c });
  return running.broker;
}

interface Line {
  event: { type: string; grant?: string; data?: Record<string, unknown> };
  summary: string;
}
const lines = (file: string): Line[] =>
  existsSync(join(dir, file))
    ? readFileSync(join(dir, file), "utf8")
        .split("\n")
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Line)
    : [];

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "bg-notices-"));
});
afterAll(async () => {
  await running?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("configuration changes", () => {
  const changes = () => lines("security.jsonl").filter((l) => l.event.type === "config.changed");

  it("records the first start, nothing on a restart with the same file, and what changed on a changed one", async () => {
    await startBroker(config("1h"));
    const first = await until("first config.changed", () => changes()[0]);
    expect(first.summary).toBe(
      "Breakglass configuration changed: first start with this database: 1 role, 1 target, 2 alarm channels",
    );

    // The restart's start() has returned: a change would be committed (and queued) by now.
    const b = await startBroker(config("1h"));
    await b.alarms.drain();
    expect(changes()).toHaveLength(1);

    await startBroker(config("2h", ROLE_EXTRA));
    const second = await until("second config.changed", () => changes()[1]);
    expect(second.summary).toBe(
      "Breakglass configuration changed: roles added: production/reader; roles changed: production/db-admin",
    );
    expect(second.event.data).toMatchObject({
      added: ["role:production/reader"],
      removed: [],
      changed: ["role:production/db-admin"],
      previous: (first.event.data as { fingerprint: string }).fingerprint,
    });
  });
});

describe("ending warning and overdue review", () => {
  it("tells the holder before the end, then reports the review when it is overdue, once", async () => {
    const b = await startBroker(config("1h"));
    const g = await b.service.request(ctx("alice"), {
      roleId: "production/db-admin",
      justification: "replica lag, resync needed",
      incident: "INC-77",
      durationS: 3,
    });
    await b.service.approve(ctx("bob"), g.id, null);
    const forGrant = (type: string) => () =>
      lines("alarms.jsonl").find((l) => l.event.type === type && l.event.grant === g.id);
    const warned = await until("grant.ending_soon", forGrant("grant.ending_soon"));
    expect(warned.event.data).toMatchObject({ holder: "alice" });
    expect(Number(warned.event.data?.remainingS)).toBeLessThanOrEqual(2);
    await until("grant.expired", forGrant("grant.expired"));
    const overdue = await until("grant.review_overdue", forGrant("grant.review_overdue"));
    expect(overdue.summary).toMatch(
      new RegExp(`^Review overdue: break-glass grant ${g.id} .* \`breakglass review ${g.id}\`$`),
    );
    const stored = await b.store.getGrant(g.id);
    expect(stored?.reviewOverdueAt).not.toBeNull();
    // Reported once: a few more worker ticks add nothing.
    await sleep(700);
    const count = (type: string) =>
      lines("alarms.jsonl").filter((l) => l.event.type === type && l.event.grant === g.id).length;
    expect(count("grant.review_overdue")).toBe(1);
    expect(count("grant.ending_soon")).toBe(1);
  });
});
