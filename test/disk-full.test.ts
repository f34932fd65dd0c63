/**
 * A full disk under the recordings — a real one. The broker process (`breakglass server`, the
 * embedded SQLite store with its statement recordings) runs in its own mount namespace
 * (`unshare -rm`) where its data folder is a 16 MB tmpfs; the test fills that tmpfs through
 * /proc/<pid>/root until the kernel says ENOSPC, while a session runs through the gateway.
 *
 * Promised: the gateway stops running statements it cannot record (SQLSTATE 57P03, the session
 * closed, new sessions refused); every statement that did run is in the recording once space is
 * back — no silent gap —; API actions that must be audited are refused with a problem, not done
 * half (the grant stays as it was); and when space is freed everything works again without a
 * restart.
 */
import { closeSync, mkdirSync, mkdtempSync, openSync, rmSync, unlinkSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type BrokerProcess, startBrokerProcess } from "./support/broker-process.js";
import { freePort } from "./support/free-port.js";
import { type PostgresTarget, startPostgresTarget, TARGET_ENV } from "./support/postgres-target.js";
import { type ConfigOverride, SECRET_KEY, startTestBroker, writeTestConfig } from "./support/test-broker.js";
import { sleep, until } from "./support/wait.js";

let target: PostgresTarget;
let dir: string;
let broker: BrokerProcess;
let gatewayPort: number;
const tokens = new Map<string, string>();

/** The configuration with its SQLite database at `dbPath`. */
function configAt(dbPath: string): ConfigOverride {
  return {
    ...SECRET_KEY,
    storage: { driver: "sqlite", path: dbPath },
    gateway: { host: "127.0.0.1", port: gatewayPort, targets: ["pg-app"], record_flush: "50ms" },
    admin_groups: ["security"],
    users: { alice: {}, bob: {}, erin: {} },
    groups: { oncall: ["alice"], leads: ["bob"], security: ["erin"] },
    domains: {
      production: {
        roles: {
          db: {
            target: "pg-app",
            grants: { roles: ["recovery_rw"] },
            default_duration: "30m",
            max_duration: "2h",
            approval: "1 of leads",
            requesters: ["oncall"],
          },
        },
      },
    },
    targets: { "pg-app": { connector: "postgres", settings: { admin_url: { env: TARGET_ENV }, timeout: "5s" } } },
  };
}

beforeAll(async () => {
  target = await startPostgresTarget();
  dir = mkdtempSync(join(tmpdir(), "bg-disk-full-"));
  gatewayPort = await freePort();
  const env = { [TARGET_ENV]: target.adminUrl };
  // The store is made (migrations, tokens) on the real disk, then copied into the tmpfs the
  // broker process mounts over ./data in its own namespace.
  mkdirSync(join(dir, "seed"));
  mkdirSync(join(dir, "data"));
  const seed = await startTestBroker({
    base: "minimal",
    dir,
    file: "seed.yaml",
    env,
    config: configAt("./seed/breakglass.db"),
    start: false,
  });
  for (const user of ["alice", "bob", "erin"]) tokens.set(user, await seed.token(user));
  await seed.stop();
  const written = writeTestConfig({ base: "minimal", dir, env, config: configAt("./data/breakglass.db") });
  const mountAndRun = 'mount -t tmpfs -o size=16m bgdisk ./data && cp ./seed/breakglass.db ./data/ && exec "$@"';
  broker = await startBrokerProcess(written.file, {
    env: written.env,
    wrap: ["unshare", "-rm", "sh", "-c", mountAndRun, "sh"],
  });
});

afterAll(async () => {
  await broker?.stop();
  await target?.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function api(user: string, method: "GET" | "POST", path: string, body?: unknown) {
  const res = await fetch(`${broker.url}/api/v1${path}`, {
    method,
    headers: {
      authorization: `Bearer ${tokens.get(user)}`,
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return {
    status: res.status,
    type: res.headers.get("content-type"),
    json: (await res.json()) as Record<string, unknown>,
  };
}

/** The broker's data folder as its own namespace sees it: the tmpfs. */
const dataDir = () => join(`/proc/${broker.child.pid}/root`, dir, "data");

/** Write to the tmpfs until the kernel refuses: ENOSPC. @returns the bytes written */
function fillDisk(): number {
  const fd = openSync(join(dataDir(), "filler"), "w");
  let written = 0;
  try {
    const chunk = Buffer.alloc(64 * 1024, 1);
    for (;;) {
      try {
        written += writeSync(fd, chunk);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === "ENOSPC") break;
        throw e;
      }
    }
    // The last pages, to the byte.
    const small = Buffer.alloc(512, 1);
    for (;;) {
      try {
        written += writeSync(fd, small);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === "ENOSPC") return written;
        throw e;
      }
    }
  } finally {
    closeSync(fd);
  }
}

describe("disk full under the recordings (a real ENOSPC)", () => {
  it("the gateway refuses statements it cannot record, nothing runs unrecorded, audited actions are refused whole, and all recovers when space is back", async () => {
    const req = await api("alice", "POST", "/grants", {
      role: "production/db",
      justification: "disk full test: repairing the orders table",
      incident: "INC-404",
    });
    expect(req.status).toBe(201);
    const id = req.json.id as string;
    expect((await api("bob", "POST", `/grants/${id}/approve`, {})).status).toBe(200);
    await until("the grant active", async () =>
      (await api("alice", "GET", `/grants/${id}`)).json.state === "active" ? true : null,
    );
    const dsn = (await api("alice", "GET", `/grants/${id}/credential`)).json.credential as string;
    const before = (await api("alice", "GET", `/grants/${id}`)).json;
    const session = new pg.Client({ connectionString: dsn });
    session.on("error", () => {}); // it is closed under the client
    await session.connect();
    const ran: string[] = ["SELECT 'before the disk filled' AS x"];
    await session.query(ran[0] as string);

    const filled = fillDisk();
    expect(filled).toBeGreaterThan(1024 * 1024);
    // Statements go on until the recorder's next write hits ENOSPC; from then on none runs.
    // (A write may still fit in space SQLite already holds — its WAL — so keep going: 16 kB each.)
    let refusal: (Error & { code?: string }) | null = null;
    for (let i = 0; i < 1000 && refusal === null; i++) {
      const text = `SELECT ${i} AS n, '${"x".repeat(16_000)}' AS pad`;
      try {
        await session.query(text);
        ran.push(text);
      } catch (e) {
        refusal = e as Error & { code?: string };
      }
      await sleep(10);
    }
    expect(refusal).toMatchObject({
      code: "57P03",
      message: expect.stringMatching(/cannot record statements right now .* nothing was run unrecorded/),
    });
    expect(ran.length).toBeGreaterThan(1);
    // New sessions are refused at login, with the reason.
    const other = new pg.Client({ connectionString: dsn });
    await expect(other.connect()).rejects.toMatchObject({
      code: "57P03",
      message: expect.stringMatching(/cannot record sessions right now/),
    });
    // An action that must be audited is refused as a problem, and nothing of it is done.
    const extend = await api("alice", "POST", `/grants/${id}/extend`, { by: "10m", reason: "still repairing" });
    expect(extend.status, JSON.stringify(extend.json)).toBeGreaterThanOrEqual(500);
    expect(extend.type).toMatch(/application\/problem\+json/);
    expect(["ERR_STORAGE", "ERR_AUDIT_WRITE_FAILED"]).toContain(extend.json.code);
    const during = (await api("alice", "GET", `/grants/${id}`)).json;
    expect(during).toMatchObject({ state: "active", endsAt: before.endsAt, version: before.version });
    // …not at the target either: the extension it took was put back (and the password kept).
    const [role] = await target.sql<{ t: Date }>("SELECT rolvaliduntil AS t FROM pg_roles WHERE rolname = $1", [
      `bg_${id}`,
    ]);
    expect(role?.t.toISOString()).toBe(before.endsAt);

    // Space back: the held statements are written, in order, and everything works again.
    unlinkSync(join(dataDir(), "filler"));
    const recorded = await until("the held statements written", async () => {
      const r = await api("alice", "GET", `/grants/${id}/recording`);
      if (r.status !== 200) return null;
      const texts = (r.json.statements as { text: string }[]).map((s) => s.text);
      return texts.length >= ran.length ? texts : null;
    });
    expect(recorded).toEqual(ran); // every statement that ran, and nothing that did not
    console.log(
      `disk full: ${(filled / 1048576).toFixed(1)} MB filled; ${ran.length - 1} statement(s) ran before the refusal, all recorded once space was back`,
    );
    const again = new pg.Client({ connectionString: dsn });
    await again.connect();
    expect((await again.query("SELECT 'after' AS x")).rows).toEqual([{ x: "after" }]);
    await again.end();
    const released = await api("alice", "POST", `/grants/${id}/release`, {});
    expect(released.status).toBe(200);
    const verified = (await api("erin", "GET", "/audit/verify")).json;
    expect(verified, JSON.stringify(verified)).toMatchObject({ ok: true });
    await session.end().catch(() => {});
  });
});
