/**
 * Regression (issue 19, item 3): a flood of API calls from one caller delayed expiry by seconds —
 * 500 concurrent `GET /grants?limit=1000` from one read-only token kept `/health` waiting 9.5 s and
 * let a 4-second emergency grant on an `exec` target (which only the broker revokes) stay open
 * 7–11 s too long: the expiry worker ran on the event loop the requests held.
 *
 * A real `breakglass server` process, on SQLite and on PostgreSQL. While one token keeps far more
 * requests in flight than a caller may, and another flood comes from one address with tokens that
 * do not exist: the excess is refused with 429 `ERR_RATE_LIMITED` (problem+json, `Retry-After`),
 * `/health` answers throughout, and an emergency grant that ends during the flood ends and is
 * revoked at the target (its file gone) while the flood still runs. No timing bound: the test
 * waits for states with generous deadlines; how long the expiry took is the benchmark's business
 * (`npm run bench -- --only flood`).
 */
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SYSTEM_CONTEXT } from "../src/core/request-context.js";
import { type BrokerProcess, requireBuild, startBrokerProcess } from "./support/broker-process.js";
import {
  APP_ROLE,
  createDatabase,
  type PostgresCluster,
  startPostgres,
  withDatabase,
} from "./support/postgres-cluster.js";
import { startTestBroker, type TestStorage } from "./support/test-broker.js";
import { settle, sleep } from "./support/wait.js";

const BACKENDS = ["sqlite", "postgres"] as const;
/** Requests one caller keeps in flight: far beyond what a caller may. */
const FLOOD = 300;

interface Answer {
  readonly status: number;
  readonly contentType: string | null;
  readonly retryAfter: string | null;
  readonly code: string | null;
}

/**
 * Keep `concurrency` requests in flight, each sent as soon as the one before it answered (a flood
 * does not honour Retry-After), until `stop()`.
 */
function flood(url: string, bearer: () => string, concurrency: number) {
  let stopped = false;
  const answers: Answer[] = [];
  const loops = Array.from({ length: concurrency }, async () => {
    while (!stopped) {
      try {
        const res = await fetch(`${url}/api/v1/grants?limit=1000`, {
          headers: { authorization: `Bearer ${bearer()}` },
        });
        const text = await res.text();
        let code: string | null = null;
        if (res.status !== 200) code = (JSON.parse(text) as { code?: string }).code ?? null;
        answers.push({
          status: res.status,
          contentType: res.headers.get("content-type"),
          retryAfter: res.headers.get("retry-after"),
          code,
        });
      } catch (e) {
        answers.push({ status: -1, contentType: null, retryAfter: null, code: String(e) });
      }
    }
  });
  return {
    answers,
    async stop() {
      stopped = true;
      await Promise.all(loops);
    },
  };
}

/** GET /health one after another until stopped; every answer's status. */
function probeHealth(url: string) {
  let stopped = false;
  const statuses: number[] = [];
  const loop = (async () => {
    while (!stopped) {
      try {
        const res = await fetch(`${url}/api/v1/health`);
        await res.arrayBuffer();
        statuses.push(res.status);
      } catch {
        statuses.push(-1);
      }
      await sleep(50);
    }
  })();
  return {
    statuses,
    async stop() {
      stopped = true;
      await loop;
    },
  };
}

for (const backend of BACKENDS) {
  describe(`a flood of API calls (${backend})`, () => {
    let cluster: PostgresCluster | null = null;
    let dir: string;
    let broker: BrokerProcess;
    const tokens = { alice: "", reader: "", erin: "" };

    /** An API call that waits out 429s (the test's own calls share the flood's address). */
    const api = async (path: string, token: string, init: RequestInit = {}): Promise<Response> => {
      for (;;) {
        const res = await fetch(`${broker.url}/api/v1${path}`, {
          ...init,
          headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        });
        if (res.status !== 429) return res;
        await res.arrayBuffer();
        await sleep(Number(res.headers.get("retry-after") ?? "1") * 1000);
      }
    };

    beforeAll(async () => {
      requireBuild();
      dir = mkdtempSync(join(tmpdir(), `bg-flood-${backend}-`));
      let storage: TestStorage = { driver: "sqlite" };
      if (backend === "postgres") {
        cluster = await startPostgres();
        await createDatabase(cluster.adminUrl, "flood", { owner: APP_ROLE });
        storage = { driver: "postgres", url: withDatabase(cluster.url, "flood") };
      }
      // Tokens written straight into the store before the server starts.
      const setup = await startTestBroker({ dir, storage, start: false });
      const make = async (user: string, scopes: string[]) =>
        (await setup.broker.tokens.create(SYSTEM_CONTEXT, { user, description: "flood test", scopes })).token.reveal();
      tokens.alice = await make("alice", ["*"]);
      tokens.reader = await make("bob", ["read"]);
      tokens.erin = await make("erin", ["*"]);
      await setup.stop();
      broker = await startBrokerProcess(setup.file, { env: setup.env });
    }, 120_000);

    afterAll(async () => {
      await broker?.stop();
      await cluster?.stop();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    it("refuses one caller's excess with 429 and Retry-After, keeps /health answering, and an emergency grant ending during the flood ends and is revoked at the target", async () => {
      const requested = await api("/grants", tokens.alice, {
        method: "POST",
        body: JSON.stringify({
          role: "production/db-admin",
          justification: "primary database is down",
          incident: "INC-4711",
          duration: "3s",
          emergency: true,
        }),
      });
      expect(requested.status).toBe(201);
      const grant = (await requested.json()) as { id: string; state: string };
      expect(grant.state).toBe("active");
      const targets = join(dir, "targets");
      const files = readdirSync(targets);
      expect(files).toHaveLength(1);
      const access = join(targets, files[0] as string);

      const health = probeHealth(broker.url);
      const caller = flood(broker.url, () => tokens.reader, FLOOD);
      // The grant's window closes while the flood runs: wait (generously) for its file to go.
      const goneDuringFlood = !(await settle(
        () => existsSync(access),
        (present) => !present,
        180_000,
        100,
      ));
      // Let the flood run on a moment after the revocation, then stop it.
      await sleep(500);
      await caller.stop();
      await health.stop();

      expect(goneDuringFlood, "the grant's access at the target was not removed during the flood").toBe(true);
      const refused = caller.answers.filter((a) => a.status === 429);
      expect(refused.length, `statuses: ${summary(caller.answers)}`).toBeGreaterThan(0);
      for (const a of refused) {
        expect(a.contentType).toMatch(/^application\/problem\+json/);
        expect(a.code).toBe("ERR_RATE_LIMITED");
        expect(a.retryAfter).toMatch(/^[1-9][0-9]*$/);
      }
      // Throttled, not shut out: the caller's requests within its limits were served.
      expect(caller.answers.some((a) => a.status === 200)).toBe(true);
      expect(
        caller.answers.every((a) => a.status === 200 || a.status === 429),
        summary(caller.answers),
      ).toBe(true);
      // /health answered all along (it is not behind the limits).
      expect(health.statuses.length).toBeGreaterThan(0);
      expect(health.statuses.every((s) => s === 200)).toBe(true);

      const ended = (await (await api(`/grants/${grant.id}`, tokens.erin)).json()) as {
        state: string;
        endReason: string;
        access: { state: string };
      };
      expect(ended).toMatchObject({ state: "ended", endReason: "expired", access: { state: "revoked" } });
      const story = (await (await api("/audit/events?limit=200", tokens.erin)).json()) as {
        events: { type: string; grantId: string | null }[];
      };
      const types = story.events.filter((e) => e.grantId === grant.id).map((e) => e.type);
      expect(types).toEqual(expect.arrayContaining(["grant.expired", "target.revoked"]));
    }, 300_000);

    it("refuses a flood from one address with tokens that do not exist with 429 too, and /health still answers", async () => {
      let n = 0;
      const health = probeHealth(broker.url);
      const caller = flood(broker.url, () => `bg_nosuchtoken${n++}_x`, FLOOD);
      // Until the address is refused (generous deadline), then stop.
      await settle(
        () => caller.answers.some((a) => a.status === 429),
        (refused) => refused,
        120_000,
        100,
      );
      await caller.stop();
      await health.stop();
      const refused = caller.answers.filter((a) => a.status === 429);
      expect(refused.length, summary(caller.answers)).toBeGreaterThan(0);
      for (const a of refused) {
        expect(a.code).toBe("ERR_RATE_LIMITED");
        expect(a.retryAfter).toMatch(/^[1-9][0-9]*$/);
      }
      expect(
        caller.answers.every((a) => a.status === 401 || a.status === 429),
        summary(caller.answers),
      ).toBe(true);
      expect(health.statuses.every((s) => s === 200)).toBe(true);
    }, 300_000);
  });
}

function summary(answers: readonly Answer[]): string {
  const by = new Map<string, number>();
  for (const a of answers) by.set(String(a.status), (by.get(String(a.status)) ?? 0) + 1);
  return [...by].map(([s, n]) => `${s}: ${n}`).join(", ");
}
