/**
 * Concurrent approvals lose confirmed approvals (issue 19, item 1). Ten approvers each send two
 * approvals at once — real parallel HTTP requests to real broker processes — to one "2 of leads"
 * request: on SQLite, on one PostgreSQL replica, and split across two PostgreSQL replicas. For
 * every grant:
 * - every 200 is exactly one approval that persists (no one gets two), and there are exactly two;
 * - an approver whose approval counted gets ERR_DUPLICATE_APPROVAL for the other call; everyone
 *   else gets ERR_INVALID_TRANSITION (the request was already approved) — nothing else;
 * - the audit log's approval events are the grant's approvals, in order, counting 1 and 2;
 * - it is activated exactly once (one `target.grant_started`, one `grant.activated`, one grant
 *   at the target).
 * On PostgreSQL the grant was locked with `SELECT … FOR UPDATE` while its approvals were read by a
 * subquery of the same statement: a caller that waited for the lock got the row as committed by
 * the transaction it waited for, but the approvals as they were before it — and saving
 * approvals deleted the ones it had not seen.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type BrokerProcess, requireBuild, startBrokerProcess } from "./support/broker-process.js";
import { type PostgresCluster, startPostgres } from "./support/postgres-cluster.js";
import { type ConfigOverride, startTestBroker } from "./support/test-broker.js";
import { PATIENCE_MS, settle } from "./support/wait.js";

const MODES = [
  { name: "one broker on SQLite", replicas: 1, postgres: false },
  { name: "one replica on PostgreSQL", replicas: 1, postgres: true },
  { name: "two replicas on PostgreSQL", replicas: 2, postgres: true },
] as const;
const APPROVERS = Array.from({ length: 10 }, (_, i) => `ap${String(i + 1).padStart(2, "0")}`);
const CALLS_EACH = 2;
const ROUNDS = 6; // grants per mode, each approved by the same stampede

interface Answer {
  readonly approver: string;
  readonly status: number;
  readonly code: string | null;
}

interface AuditEvent {
  readonly seq: number;
  readonly type: string;
  readonly grantId: string | null;
  readonly payload: string;
}

for (const mode of MODES) {
  describe(`concurrent approvals: ${mode.name}`, () => {
    let cluster: PostgresCluster | null = null;
    let dir = "";
    const brokers: BrokerProcess[] = [];
    const tokens = new Map<string, string>();

    const requesters = Array.from({ length: ROUNDS }, (_, i) => `req${i}`);
    const config: ConfigOverride = {
      workers: { expiry_poll: "100ms" },
      admin_groups: ["security"],
      users: Object.fromEntries([...APPROVERS, ...requesters, "erin"].map((u) => [u, {}])),
      groups: { oncall: requesters, leads: APPROVERS, security: ["erin"] },
      domains: {
        production: {
          roles: { db: { target: "box", max_duration: "1h", approval: "2 of leads", requesters: ["oncall"] } },
        },
      },
      targets: {
        box: { connector: "exec", settings: { grant: ["./grant.sh"], revoke: ["./revoke.sh"], timeout: "10s" } },
      },
    };

    beforeAll(async () => {
      requireBuild();
      if (mode.postgres) cluster = await startPostgres();
      dir = mkdtempSync(join(tmpdir(), "bg-approvals-"));
      // The target logs every grant it makes: exactly one per grant.
      writeFileSync(
        join(dir, "grant.sh"),
        `#!/bin/sh\necho "grant $BREAKGLASS_GRANT_ID" >> ${join(dir, "target.log")}\n`,
        {
          mode: 0o755,
        },
      );
      writeFileSync(join(dir, "revoke.sh"), "#!/bin/sh\n", { mode: 0o755 });
      // Tokens, made in the store by a broker that is not started.
      const setup = await startTestBroker({
        base: "minimal",
        dir,
        file: "broker.yaml",
        storage: cluster ? { driver: "postgres", url: cluster.url } : { driver: "sqlite" },
        config,
        start: false,
      });
      for (const user of [...APPROVERS, ...requesters, "erin"]) tokens.set(user, await setup.token(user));
      await setup.stop();
      for (let i = 0; i < mode.replicas; i++) {
        brokers.push(await startBrokerProcess(setup.file, { env: { ...setup.env, BREAKGLASS_LOG_LEVEL: "silent" } }));
      }
    }, 120_000);

    afterAll(async () => {
      for (const b of brokers) await b.stop();
      await cluster?.stop();
      if (dir !== "") rmSync(dir, { recursive: true, force: true });
    });

    const call = async (replica: number, user: string, method: "GET" | "POST", path: string, body?: unknown) => {
      const res = await fetch(`${brokers[replica % brokers.length]?.url}/api/v1${path}`, {
        method,
        headers: {
          authorization: `Bearer ${tokens.get(user)}`,
          ...(body === undefined ? {} : { "content-type": "application/json" }),
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
      return { status: res.status, json: (await res.json()) as Record<string, unknown> };
    };

    const auditOf = async (grantId: string): Promise<AuditEvent[]> => {
      const events: AuditEvent[] = [];
      for (let from: number | null = 1; from !== null; ) {
        const page = await call(0, "erin", "GET", `/audit/events?from=${from}&limit=1000`);
        expect(page.status).toBe(200);
        events.push(...(page.json.events as AuditEvent[]));
        from = page.json.next as number | null;
      }
      return events.filter((e) => e.grantId === grantId);
    };

    it(`${APPROVERS.length} approvers × ${CALLS_EACH} simultaneous calls: every 200 is one approval that stays, and the audit log agrees with the grant`, async () => {
      const summary: string[] = [];
      const failures: string[] = [];
      for (let round = 0; round < ROUNDS; round++) {
        const requester = `req${round}`;
        const made = await call(round, requester, "POST", "/grants", {
          role: "production/db",
          justification: "approval stampede test",
          incident: `INC-${round + 1}`,
        });
        expect(made.status, JSON.stringify(made.json)).toBe(201);
        const id = made.json.id as string;

        // Every call at once; an approver's calls go to different replicas when there are two.
        const answers: Answer[] = await Promise.all(
          APPROVERS.flatMap((approver, i) =>
            Array.from({ length: CALLS_EACH }, async (_, j) => {
              const r = await call(i + j, approver, "POST", `/grants/${id}/approve`, {});
              return { approver, status: r.status, code: r.status === 200 ? null : ((r.json.code as string) ?? null) };
            }),
          ),
        );

        // Let the activation finish, then read the grant and its audit trail.
        const grant = await settle(
          async () => (await call(0, requester, "GET", `/grants/${id}`)).json,
          (g) => g.state === "active",
          PATIENCE_MS,
          100,
        );
        const kept = (grant.approvals as { approver: string }[]).map((a) => a.approver);
        const ok = answers.filter((a) => a.status === 200).map((a) => a.approver);
        const events = await auditOf(id);
        const approvalEvents = events
          .filter((e) => e.type === "grant.approval_added" || e.type === "grant.approved")
          .map((e) => JSON.parse(e.payload) as { data?: { approver?: string; approvals?: number } });
        const audited = approvalEvents.map((e) => e.data?.approver);
        const counts = approvalEvents.map((e) => e.data?.approvals);
        const started = events.filter((e) => e.type === "target.grant_started").length;
        const activated = events.filter((e) => e.type === "grant.activated").length;
        const atTarget = readFileSync(join(dir, "target.log"), "utf8")
          .split("\n")
          .filter((l) => l === `grant ${id}`).length;
        const codes = answers
          .filter((a) => a.status !== 200)
          .map((a) => `${a.status} ${a.code}`)
          .sort();
        summary.push(
          `${id}: ${ok.length} × 200 (${ok.join(" ")}), grant holds ${kept.join(" ")}, audit lists ${audited.map((a, i) => `${a}:${counts[i]}`).join(" ")}, ${started} activation(s) started, ${atTarget} at the target; refusals ${[...new Set(codes)].map((c) => `${codes.filter((x) => x === c).length}× ${c}`).join(", ")}`,
        );

        const problems: string[] = [];
        if (grant.state !== "active") problems.push(`state ${String(grant.state)}, not active`);
        if (ok.length !== 2) problems.push(`${ok.length} callers got 200, not 2`);
        if (JSON.stringify([...ok].sort()) !== JSON.stringify([...kept].sort()))
          problems.push(`the 200s (${ok.join(" ")}) are not the grant's approvals (${kept.join(" ")})`);
        if (JSON.stringify(audited) !== JSON.stringify(kept))
          problems.push(`the audit log's approvals (${audited.join(" ")}) are not the grant's (${kept.join(" ")})`);
        if (JSON.stringify(counts) !== JSON.stringify(kept.map((_, i) => i + 1)))
          problems.push(`the audited approval counts are ${counts.join(",")}`);
        for (const a of answers) {
          if (a.status === 200) continue;
          const expected = kept.includes(a.approver) ? "ERR_DUPLICATE_APPROVAL" : "ERR_INVALID_TRANSITION";
          if (a.status !== 409 || a.code !== expected)
            problems.push(`${a.approver} got ${a.status} ${a.code}, not 409 ${expected}`);
        }
        if (started !== 1 || activated !== 1 || atTarget !== 1)
          problems.push(
            `activation: ${started} started, ${activated} completed, ${atTarget} at the target (not 1 each)`,
          );
        if (problems.length > 0) failures.push(`${id}: ${[...new Set(problems)].join("; ")}`);
      }
      console.log(`concurrent approvals (${mode.name}):\n  ${summary.join("\n  ")}`);
      expect(failures).toEqual([]);
    }, 300_000);
  });
}
