/**
 * Regression (issue 19, item 11): when the target's grant command failed, approve answered 200
 * with the grant `approved` and `access: {state: "revoked", lastError: null}` — nobody could see
 * why, nothing tried again, and an emergency that could not get in paged nobody. Now the grant
 * says why (the target's error, secrets redacted) to the holder and the approvers in the API, in
 * `breakglass show` and in the console; the broker retries with backoff while the grant can still
 * be activated (its next attempt is shown); an emergency activation that fails pages security;
 * an activation that keeps failing lapses saying why. The exec target fails while `grant-down`
 * exists, then succeeds.
 */
import { rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { type GrantView, GrantViewSchema } from "../src/contract/api.js";
import { runCli } from "./support/broker-process.js";
import { readJsonLines } from "./support/json-lines.js";
import { RECORDED_ALARMS, SECRET_KEY, startTestBroker, type TestBroker } from "./support/test-broker.js";
import { until } from "./support/wait.js";

let t: TestBroker;

/** A broker whose target `box` fails to grant while `grant-down` exists in its folder. */
async function start(activationTimeout = "15m"): Promise<void> {
  t = await startTestBroker({
    base: "minimal",
    config: {
      ...SECRET_KEY,
      ...RECORDED_ALARMS,
      workers: { expiry_poll: "100ms" },
      admin_groups: ["security"],
      users: { alice: { name: "Alice" }, bob: { name: "Bob" }, erin: { name: "Erin" } },
      groups: { oncall: ["alice"], leads: ["bob"], security: ["erin"] },
      domains: {
        production: {
          description: "Production",
          roles: {
            "db-admin": {
              description: "Recovery DBA",
              target: "box",
              approval: "1 of leads",
              requesters: ["oncall"],
              emergency: true,
              max_duration: "1h",
              activation_timeout: activationTimeout,
            },
          },
        },
      },
      targets: {
        box: {
          connector: "exec",
          settings: {
            grant: [
              "sh",
              "-c",
              'if [ -e grant-down ]; then echo "connect to db-1 failed: login refused for admin password=hunter2" >&2; exit 4; fi; mkdir -p targets && echo "$BREAKGLASS_USER" > "targets/$BREAKGLASS_PRINCIPAL"',
            ],
            revoke: ["sh", "-c", 'rm -f "targets/$BREAKGLASS_PRINCIPAL"'],
            verify: ["sh", "-c", 'test ! -e "targets/$BREAKGLASS_PRINCIPAL"'],
            timeout: "10s",
          },
        },
      },
    },
  });
}

async function call(user: string, method: "GET" | "POST", path: string, payload?: unknown) {
  const res = await t.http.inject({
    method,
    url: `/api/v1${path}`,
    headers: { authorization: `Bearer ${await t.token(user)}` },
    ...(payload === undefined ? {} : { payload: payload as Record<string, unknown> }),
  });
  return { status: res.statusCode, json: res.json() as GrantView };
}

const alarmLines = () =>
  readJsonLines<{ severity: string; summary: string; event: { type: string; grant?: string } }>(
    join(t.dir, "alarms.jsonl"),
  );

afterEach(async () => {
  await t?.stop();
});

describe("a failed activation says why, and is tried again (issue 19, item 11)", () => {
  it("approve answers with the target's error (redacted) and the next attempt; show says so; the broker retries until it works", async () => {
    await start();
    writeFileSync(join(t.dir, "grant-down"), "");
    const requested = await call("alice", "POST", "/grants", {
      role: "production/db-admin",
      justification: "the primary is down",
      incident: "INC-1",
    });
    expect(requested.status).toBe(201);
    const id = requested.json.id;
    const approved = await call("bob", "POST", `/grants/${id}/approve`, {});
    expect(approved.status).toBe(200);
    const g = GrantViewSchema.parse(approved.json);
    expect(g.state).toBe("approved");
    // Why: the target's own words, with the password it echoed redacted.
    expect(g.access.lastError).toMatch(/grant command exited with 4: connect to db-1 failed: login refused/);
    expect(g.access.lastError).toContain("password=[redacted]");
    expect(JSON.stringify(approved.json)).not.toContain("hunter2");
    expect(g.access.activationFailure).toMatchObject({ attempts: 1, lastError: g.access.lastError });
    const next = g.access.activationFailure?.nextAttemptAt;
    expect(next).toEqual(expect.any(String));
    expect(g.access.nextAttemptAt).toBe(next);
    expect(Date.parse(String(next))).toBeGreaterThan(Date.parse(g.access.activationFailure?.lastAttemptAt ?? ""));

    // The holder and the approver see the same in `breakglass show`.
    for (const user of ["alice", "bob"]) {
      const shown = await runCli(["show", id], { BREAKGLASS_URL: t.url, BREAKGLASS_TOKEN: await t.token(user) });
      expect(shown.code, shown.stderr).toBe(0);
      expect(shown.stdout).toMatch(/ACTIVATION FAILED \(\d+ attempts?\); the broker tries again at /);
      expect(shown.stdout).toContain(`breakglass activate ${id}`);
      expect(shown.stdout).toMatch(/last target error\s+grant command exited with 4: connect to db-1 failed/);
      expect(shown.stdout).not.toContain("hunter2");
    }

    // Retried by the broker on its own (the failures count up), and active once the target works.
    await until("a second failed attempt", async () => {
      const r = await call("alice", "GET", `/grants/${id}`);
      return (r.json.access.activationFailure?.attempts ?? 0) >= 2;
    });
    rmSync(join(t.dir, "grant-down"));
    const active = await until("the retry to succeed", async () => {
      const r = await call("alice", "GET", `/grants/${id}`);
      return r.json.state === "active" ? r.json : null;
    });
    expect(active.access).toMatchObject({ state: "granted", lastError: null, activationFailure: null });
    const events = (await t.broker.store.readGrantAudit([id])).map((e) => JSON.parse(e.payload));
    const failures = events.filter((e) => e.type === "target.grant_failed");
    expect(failures.length).toBeGreaterThanOrEqual(2);
    expect(failures.map((e) => e.data.attempt)).toEqual(failures.map((_, i) => i + 1));
    expect(events.find((e) => e.type === "grant.activated")?.data).toMatchObject({
      afterFailedAttempts: failures.length,
    });
    for (const e of events) expect(JSON.stringify(e)).not.toContain("hunter2");
  });

  it("an emergency activation that fails pages security at once; one that keeps failing lapses saying why", async () => {
    await start("5s");
    writeFileSync(join(t.dir, "grant-down"), "");
    const requested = await call("alice", "POST", "/grants", {
      role: "production/db-admin",
      justification: "everything is on fire",
      incident: "INC-2",
      emergency: true,
    });
    expect(requested.status).toBe(201);
    const g = GrantViewSchema.parse(requested.json);
    expect(g).toMatchObject({ state: "requested", emergency: true });
    expect(g.access.activationFailure?.lastError).toMatch(/connect to db-1 failed/);

    await t.broker.alarms.drain();
    const paged = alarmLines().filter((a) => a.event.grant === g.id && a.event.type === "target.grant_failed");
    expect(paged[0]).toMatchObject({
      severity: "critical",
      summary: expect.stringMatching(
        /^EMERGENCY ACTIVATION FAILED at box for grant g_\S+ .* of alice \(attempt 1\): .*connect to db-1 failed/,
      ),
    });
    expect(paged).toHaveLength(1); // the retries are on the grant and in the audit log, not paged again

    // Never gets in: it lapses when its activation window ends, and says why.
    const lapsed = await until("the grant to lapse", async () => {
      const r = await call("alice", "GET", `/grants/${g.id}`);
      return r.json.state === "approval_expired" ? r.json : null;
    });
    expect(lapsed.access.lastError).toMatch(/connect to db-1 failed/);
    expect(lapsed.access.activationFailure).toMatchObject({ nextAttemptAt: null });
    expect((lapsed.access.activationFailure?.attempts ?? 0) >= 2).toBe(true);
    await t.broker.alarms.drain();
    expect(alarmLines().filter((a) => a.event.grant === g.id && a.event.type === "grant.approval_expired")).toEqual([
      expect.objectContaining({
        severity: "critical",
        summary: expect.stringMatching(/^EMERGENCY ACTIVATION GAVE UP: grant g_\S+ .* lapsed after \d+ failed attempt/),
      }),
    ]);
  });
});
