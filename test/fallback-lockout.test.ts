import * as OTPAuth from "otpauth";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Broker } from "../src/app.js";
import { MIN_ALLOWED_CREDENTIALS } from "../src/auth/webauthn.js";
import { SYSTEM_CONTEXT } from "../src/core/request-context.js";
import { freePort } from "./support/free-port.js";
import { shiftedClock } from "./support/manual-clock.js";
import { SECRET_KEY, startTestBroker, type TestBroker } from "./support/test-broker.js";

let t: TestBroker;
let broker: Broker;
const clock = shiftedClock();
let bobSecret: string;

beforeAll(async () => {
  // Nothing listens on the IdP's port: the IdP is down, the fallback login is open.
  t = await startTestBroker({
    base: "minimal",
    clock,
    start: false,
    config: {
      ...SECRET_KEY,
      auth: {
        oidc: { issuer: `http://127.0.0.1:${await freePort()}`, client_id: "breakglass", allow_insecure_http: true },
        lockout: { max_failures: 5, window: "15m", duration: "15m" },
      },
      users: { bob: { name: "Bob" }, carol: { name: "Carol" } },
      groups: { leads: ["bob", "carol"] },
      admin_groups: ["leads"],
      domains: {
        production: {
          roles: {
            restart: {
              target: "box",
              max_duration: "1h",
              approval: "1 of leads",
              requesters: ["leads"],
              fallback: true,
            },
          },
        },
      },
      targets: { box: { connector: "exec", settings: { grant: ["true"], revoke: ["true"] } } },
    },
  });
  broker = t.broker;
  bobSecret = (await broker.auth?.provisionTotp(SYSTEM_CONTEXT, "bob", "phone"))?.secret ?? "";
  expect(bobSecret).not.toBe("");
});

afterAll(async () => {
  await t?.stop();
});

const codeOf = (secret: string, at = clock.now()) =>
  new OTPAuth.TOTP({ secret: OTPAuth.Secret.fromBase32(secret), digits: 6, period: 30 }).generate({ timestamp: at });

async function fallback(user: string, code: string, from: string) {
  const res = await broker.http.inject({
    method: "POST",
    url: "/api/v1/auth/fallback/login",
    remoteAddress: from,
    payload: { user, code },
  });
  return { status: res.statusCode, body: res.json() as Record<string, unknown> };
}

/** An answer with what differs by nature (request id, times) taken out. */
const shape = (a: { status: number; body: Record<string, unknown> }) => {
  const { instance: _i, lockedUntil: _l, ...rest } = a.body;
  return { status: a.status, ...rest, detail: String(rest.detail ?? "").replace(/\d{4}-\d\d-\d\dT[\d:.]+Z/g, "T") };
};

describe("the fallback login under guessing", () => {
  it("five failures from one address do not lock the person out from elsewhere, even for 15 minutes", async () => {
    for (let i = 0; i < 5; i++) expect((await fallback("bob", "000000", "198.51.100.7")).status).toBe(401);
    // That address is done for bob (and for everyone): it is locked, even with the right code.
    const there = await fallback("bob", codeOf(bobSecret), "198.51.100.7");
    expect([there.status, there.body.code]).toEqual([429, "ERR_LOCKED_OUT"]);
    // Bob, from his own address, gets in after a short wait at most — not 15 minutes.
    clock.offsetMs += 61_000;
    const bob = await fallback("bob", codeOf(bobSecret), "203.0.113.20");
    expect(bob.status, JSON.stringify(bob.body)).toBe(200);
    expect(bob.body.user).toBe("bob");
    // The lockout paged security.
    const events = await broker.store.readAudit(1, 10_000);
    expect(events.some((e) => e.type === "auth.locked_out")).toBe(true);
  });

  it("guessing one person's code from many addresses only slows it down (a growing wait, capped)", async () => {
    clock.offsetMs += 20 * 60_000; // a fresh window
    const answers = [];
    for (let i = 0; i < 8; i++) answers.push(await fallback("carol", "000000", `198.51.100.${20 + i}`));
    // After max_failures anywhere, each try must wait: refused until the wait is over.
    expect(answers.slice(0, 5).map((a) => a.status)).toEqual([401, 401, 401, 401, 401]);
    expect(answers.slice(5).every((a) => a.status === 429)).toBe(true);
    clock.offsetMs += 61_000;
    expect((await fallback("carol", "000000", "198.51.100.40")).status).toBe(401);
  });

  it("answers a name that does not exist exactly as one that does, attempt for attempt", async () => {
    clock.offsetMs += 20 * 60_000;
    const run = async (user: string, net: string) => {
      const out = [];
      for (let i = 0; i < 7; i++) out.push(shape(await fallback(user, "000000", `${net}.${i % 6}`)));
      out.push(shape(await fallback(user, "000000", `${net}.1`)));
      return out;
    };
    const known = await run("bob", "192.0.2");
    clock.offsetMs += 20 * 60_000;
    const unknown = await run("nobody-here", "198.18.0");
    clock.offsetMs += 20 * 60_000;
    const noFactor = await run("carol", "198.18.1");
    expect(unknown).toEqual(known);
    expect(noFactor).toEqual(known);
    expect(JSON.stringify(known)).not.toMatch(/bob|nobody|carol/);
  });

  it("asking for a security-key challenge says nothing about whether a name exists", async () => {
    // Bob has a security key (stored as a registration leaves it); nobody-here does not exist.
    const id = Buffer.alloc(32, 7).toString("base64url");
    await broker.store.transaction((tx) =>
      tx.saveFactor({
        id: "f_bobkey",
        user: "bob",
        kind: "webauthn",
        label: "key",
        secret: JSON.stringify({
          id,
          publicKey: Buffer.alloc(65, 4).toString("base64url"),
          transports: ["usb", "nfc"],
        }),
        createdAt: clock.now(),
        confirmedAt: clock.now(),
        lastStep: 0,
        usedAt: null,
        removedAt: null,
      }),
    );
    const ask = async (user: string) => {
      const res = await broker.http.inject({
        method: "POST",
        url: "/api/v1/auth/webauthn/challenge",
        remoteAddress: "192.0.2.99",
        payload: { user },
      });
      const body = res.json() as { allowCredentials?: { id: string; transports?: string[] }[]; challenge?: string };
      const allow = body.allowCredentials ?? [];
      return {
        status: res.statusCode,
        keys: Object.keys(body).sort(),
        allow: allow.map((c) => ({ idLength: c.id.length, transports: c.transports?.length ?? 0 })),
      };
    };
    const [bob, nobody, carol] = [await ask("bob"), await ask("nobody-here"), await ask("carol")];
    // bob has one key; every answer lists as many ids, of the same shape.
    expect(bob.allow).toHaveLength(MIN_ALLOWED_CREDENTIALS);
    expect(nobody.keys).toEqual(bob.keys);
    expect(nobody.allow).toEqual(bob.allow);
    expect(carol).toEqual(nobody);
    // The decoy is stable: asking twice does not give a name without a key away.
    expect(await ask("nobody-here")).toEqual(nobody);
  });
});
