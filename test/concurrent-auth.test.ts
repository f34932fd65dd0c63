import * as OTPAuth from "otpauth";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Broker } from "../src/app.js";
import { ctx as actorCtx } from "./support/ctx.js";
import { freePort } from "./support/free-port.js";
import { type PostgresCluster, startPostgres } from "./support/postgres-cluster.js";
import { RECORDED_ALARMS, SECRET_KEY, startTestBroker, type TestBroker } from "./support/test-broker.js";
import { until } from "./support/wait.js";

const MODES = [
  { name: "SQLite", postgres: false },
  { name: "PostgreSQL", postgres: true },
] as const;
const MAX_FAILURES = 5;
const ROUNDS = 4; // users, each attacked by one volley

for (const mode of MODES) {
  describe(`sign-in protections under concurrent requests: ${mode.name}`, () => {
    let cluster: PostgresCluster | null = null;
    let t: TestBroker;
    let broker: Broker;
    let url = "";

    beforeAll(async () => {
      if (mode.postgres) cluster = await startPostgres();
      const deadIdp = await freePort(); // nothing listens: the IdP is unreachable
      const users = Array.from({ length: ROUNDS }, (_, i) => `u${i}`);
      t = await startTestBroker({
        base: "minimal",
        storage: cluster ? { driver: "postgres", url: cluster.url } : { driver: "sqlite" },
        env: { IDP_SECRET: "not-used" },
        config: {
          ...(cluster ? { storage: { pool_size: 8 } } : {}),
          ...SECRET_KEY,
          ...RECORDED_ALARMS,
          auth: {
            oidc: {
              issuer: `http://127.0.0.1:${deadIdp}`,
              client_id: "breakglass",
              client_secret: { env: "IDP_SECRET" },
              allow_insecure_http: true,
              health_interval: "1s",
            },
            lockout: { max_failures: MAX_FAILURES, window: "15m", duration: "15m" },
          },
          admin_groups: ["leads"],
          users: Object.fromEntries([...users, ...users.map((_, i) => `f${i}`), "bob"].map((u) => [u, {}])),
          groups: { oncall: users, leads: ["bob"] },
          domains: {
            production: {
              roles: {
                db: {
                  target: "box",
                  max_duration: "1h",
                  approval: "1 of leads",
                  requesters: ["oncall"],
                  emergency: true,
                  fallback: true,
                },
              },
            },
          },
          targets: { box: { connector: "exec", settings: { grant: ["true"], revoke: ["true"], timeout: "10s" } } },
        },
      });
      ({ broker, url } = t);
    }, 120_000);

    afterAll(async () => {
      await t?.stop();
      await cluster?.stop();
    });

    const guess = async (user: string) => {
      const res = await fetch(`${url}/api/v1/auth/fallback/login`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ user, code: "000000" }),
      });
      return { status: res.status, code: ((await res.json()) as { code?: string }).code ?? null };
    };

    it(`${MAX_FAILURES} wrong codes sent at once lock the user out`, async () => {
      // The fallback is open once the broker has seen the IdP unreachable.
      await until("the IdP to count as unreachable", async () => {
        const health = (await (await fetch(`${url}/api/v1/auth/idp`)).json()) as { reachable?: boolean };
        return health.reachable === false;
      });
      const outcomes: string[] = [];
      for (let round = 0; round < ROUNDS; round++) {
        const user = `u${round}`;
        // Failures also count against the caller's address, the same for every volley here: each
        // volley starts from a clean address so that it is judged on its own.
        await broker.store.transaction(async (tx) => {
          for (const key of ["ip:127.0.0.1", "ip:::ffff:127.0.0.1"]) {
            await tx.saveThrottle({ key, failures: 0, windowStart: 0, lockedUntil: null });
          }
        });
        const volley = await Promise.all(Array.from({ length: MAX_FAILURES }, () => guess(user)));
        const next = await guess(user);
        const stored = await broker.store.findThrottle(`user:${user}`);
        outcomes.push(
          `${user}: volley ${volley.map((v) => v.status).join(",")}, then ${next.status} ${next.code}; stored ${JSON.stringify(stored)}`,
        );
      }
      console.log(`lockout under concurrent guesses (${mode.name}):\n  ${outcomes.join("\n  ")}`);
      for (const o of outcomes) expect(o).toMatch(/then 429 ERR_LOCKED_OUT/);
    }, 120_000);

    it("replacing recovery codes twice at once leaves one set of ten", async () => {
      const auth = broker.auth;
      if (!auth) throw new Error("the broker has no sign-in service");
      const counts: number[] = [];
      for (let round = 0; round < ROUNDS; round++) {
        const user = `u${round}`;
        const ctx = actorCtx(user);
        await auth.newRecoveryCodes(ctx);
        const [a, b] = await Promise.all([auth.newRecoveryCodes(ctx), auth.newRecoveryCodes(ctx)]);
        const active = (await broker.store.listFactors(user)).filter((f) => f.kind === "recovery" && f.usedAt === null);
        counts.push(active.length);
        expect(a).toHaveLength(10);
        expect(b).toHaveLength(10);
      }
      console.log(`recovery codes after two replacements at once (${mode.name}): ${counts.join(", ")} active`);
      expect(counts).toEqual(counts.map(() => 10));
    }, 120_000);

    it("confirming a new factor twice at once enrols it once: one auth.factor_enrolled", async () => {
      const auth = broker.auth;
      if (!auth) throw new Error("the broker has no sign-in service");
      const counts: number[] = [];
      for (let round = 0; round < ROUNDS; round++) {
        // Users never locked out by the test above.
        const ctx = actorCtx(`f${round}`);
        const { factorId, secret } = await auth.enrollTotp(ctx, "second phone");
        const code = new OTPAuth.TOTP({ secret: OTPAuth.Secret.fromBase32(secret), period: 30, digits: 6 }).generate();
        const both = await Promise.all([
          auth.confirmFactor(ctx, factorId, { code }),
          auth.confirmFactor(ctx, factorId, { code }),
        ]);
        expect(both.map((v) => v.confirmed)).toEqual([true, true]);
        const events = (await broker.store.readAudit(1, 100_000)).filter(
          (e) => e.type === "auth.factor_enrolled" && e.payload.includes(factorId),
        );
        counts.push(events.length);
      }
      console.log(`a factor confirmed twice at once (${mode.name}): ${counts.join(", ")} enrolment event(s)`);
      expect(counts).toEqual(counts.map(() => 1));
    }, 120_000);

    it("removing a factor twice at once removes it once: one auth.factor_removed, the other call refused", async () => {
      const auth = broker.auth;
      if (!auth) throw new Error("the broker has no sign-in service");
      const outcomes: string[] = [];
      for (let round = 0; round < ROUNDS; round++) {
        const ctx = actorCtx(`u${round}`);
        const { factorId } = await auth.enrollTotp(ctx, "phone");
        const both = await Promise.allSettled([auth.removeFactor(ctx, factorId), auth.removeFactor(ctx, factorId)]);
        const events = (await broker.store.readAudit(1, 100_000)).filter(
          (e) => e.type === "auth.factor_removed" && e.payload.includes(factorId),
        );
        const refused = both.flatMap((r) => (r.status === "rejected" ? [(r.reason as { code?: string }).code] : []));
        outcomes.push(`${events.length} event(s), refused: ${refused.join(",") || "none"}`);
      }
      console.log(`a factor removed twice at once (${mode.name}): ${outcomes.join("; ")}`);
      expect(outcomes).toEqual(outcomes.map(() => "1 event(s), refused: ERR_NOT_FOUND"));
    }, 120_000);

    it("two logouts of one session at once end it once: one auth.logout", async () => {
      const auth = broker.auth;
      if (!auth) throw new Error("the broker has no sign-in service");
      const counts: number[] = [];
      for (let round = 0; round < ROUNDS; round++) {
        const user = `f${round}`;
        const ctx = actorCtx(user);
        const issued = await auth.loginWithIdp(
          ctx,
          {
            issuer: "http://idp.test",
            subject: `sub-${user}`,
            username: user,
            idpGroups: [],
            email: null,
            name: null,
            idToken: "not-used",
            refreshToken: null,
          },
          [],
        );
        const sessionId = issued.session.id;
        await Promise.all([auth.logout(ctx, sessionId), auth.logout(ctx, sessionId)]);
        const events = (await broker.store.readAudit(1, 100_000)).filter(
          (e) => e.type === "auth.logout" && e.payload.includes(sessionId),
        );
        counts.push(events.length);
        expect((await broker.store.findWebSession(sessionId))?.revokedAt).not.toBeNull();
      }
      console.log(`a session logged out twice at once (${mode.name}): ${counts.join(", ")} logout event(s)`);
      expect(counts).toEqual(counts.map(() => 1));
    }, 120_000);
  });
}
