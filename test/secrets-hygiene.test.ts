/**
 * Secrets hygiene: a scenario that touches every kind of secret Breakglass handles — API tokens,
 * a PostgreSQL grant's password, the target's admin password before and after the broker rotates
 * it, the webhook signing secret, a TOTP secret and a fallback session, the data key and the audit
 * signing key, a tier-2 envelope's secret and its custodians' identities — with every log line,
 * every API response, the audit log (JSONL and OCSF), every alarm delivered (webhook and file), the
 * CLI's output, and the database file itself captured. Then every secret is looked for in all of
 * it, in the forms it could leak in (as is, URL-encoded, base64): zero hits, except where handing
 * the secret over is the point (the holder's credential read, a token's one-time creation answer,
 * `vault open` printing the secret), which are named.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Secret, TOTP } from "otpauth";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "../src/adapters/logger.js";
import type { Broker } from "../src/app.js";
import { SYSTEM_CONTEXT } from "../src/core/request-context.js";
import { requireBuild, runCli } from "./support/broker-process.js";
import { freePort } from "./support/free-port.js";
import { type PostgresTarget, startPostgresTarget } from "./support/postgres-target.js";
import { SECRET_KEY, startTestBroker, type TestBroker } from "./support/test-broker.js";
import { Receiver, WEBHOOK_SECRET } from "./support/webhook-receiver.js";

let fixture: TestBroker;
let dir: string;
let target: PostgresTarget;
let broker: Broker;
const receiver = new Receiver();
const logs: string[] = [];
/** Everything that must not hold a secret, by where it came from. */
const corpus: { where: string; text: string }[] = [];
/** Every secret the scenario created or used, by name. */
const secrets = new Map<string, string>();

const record = (where: string, text: string) => corpus.push({ where, text });
const cliEnv = { HOOK_SECRET: WEBHOOK_SECRET };

beforeAll(async () => {
  requireBuild();
  target = await startPostgresTarget();
  await target.sql("CREATE ROLE bg_hygiene LOGIN SUPERUSER PASSWORD 'hygiene-admin-password-1'");
  secrets.set("target admin password (first)", "hygiene-admin-password-1");
  const admin = new URL(target.adminUrl);
  admin.username = "bg_hygiene";
  admin.password = "hygiene-admin-password-1";
  await receiver.start();
  dir = mkdtempSync(join(tmpdir(), "bg-hygiene-"));
  writeFileSync(join(dir, "pg-admin.url"), `${admin.href}\n`, { mode: 0o600 });
  const closed = await freePort();
  secrets.set("webhook signing secret", WEBHOOK_SECRET);
  fixture = await startTestBroker({
    base: "minimal",
    dir,
    env: { HOOK_SECRET: WEBHOOK_SECRET },
    // Everything the broker logs, at its most talkative.
    log: createLogger("info", (line) => logs.push(line)),
    config: {
      ...SECRET_KEY,
      audit: { checkpoint_every_events: 5 },
      alarms: {
        channels: {
          record: { type: "file", path: "./alarms.jsonl" },
          hook: { type: "webhook", url: `http://127.0.0.1:${receiver.port}/hook`, secret: { env: "HOOK_SECRET" } },
        },
        security_channels: ["record", "hook"],
        routes: [{ events: ["*"], channels: ["record", "hook"] }],
      },
      auth: { oidc: { issuer: `http://127.0.0.1:${closed}`, client_id: "breakglass", allow_insecure_http: true } },
      admin_groups: ["security"],
      users: { alice: {}, bob: {}, erin: {}, frank: {} },
      groups: { oncall: ["alice", "frank"], leads: ["bob"], security: ["erin"] },
      domains: {
        production: {
          roles: {
            db: {
              target: "pg",
              grants: { roles: ["recovery_rw"] },
              max_duration: "2h",
              approval: "1 of leads",
              requesters: ["oncall"],
              fallback: true,
            },
          },
        },
      },
      targets: { pg: { connector: "postgres", settings: { admin_url: { file: "./pg-admin.url" } } } },
    },
  });
  broker = fixture.broker;
});

afterAll(async () => {
  await fixture?.stop();
  await receiver.stop();
  await target?.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function api(bearer: string | null, method: string, path: string, payload?: unknown, handsOver?: string) {
  const res = await broker.http.inject({
    method: method as "GET",
    url: `/api/v1${path}`,
    headers: bearer ? { authorization: `Bearer ${bearer}` } : {},
    ...(payload === undefined ? {} : { payload: payload as Record<string, unknown> }),
  });
  // A response whose purpose is to hand a secret to its owner is named and kept out of the scan.
  if (!handsOver) record(`${method} ${path} → ${res.statusCode}`, res.body);
  return res;
}

/** The forms a secret could leak in. */
function forms(secret: string): string[] {
  return [
    secret,
    encodeURIComponent(secret),
    Buffer.from(secret).toString("base64"),
    Buffer.from(secret).toString("base64url"),
  ].filter((f) => f.length >= 8);
}

describe("secrets hygiene", () => {
  it("runs a scenario through every kind of secret", async () => {
    const token = async (user: string) => {
      const t = await broker.tokens.create(SYSTEM_CONTEXT, { user, description: "hygiene" });
      secrets.set(`API token of ${user}`, t.token.reveal());
      secrets.set(`API token secret of ${user}`, t.token.reveal().split(".")[1] as string);
      return t.token.reveal();
    };
    const [alice, bob, erin] = [await token("alice"), await token("bob"), await token("erin")];
    // A token created over the API: its answer is the one place it is shown.
    const created = await api(erin, "POST", "/tokens", { description: "automation" }, "the new token, once");
    if (created.statusCode === 201)
      secrets.set("API token made over the API", (created.json() as { token: string }).token);

    // A grant on PostgreSQL: request, approve, read the credential, extend, revoke.
    const g = (
      await api(alice, "POST", "/grants", {
        role: "production/db",
        justification: "hygiene scenario",
        incident: "INC-1",
      })
    ).json() as { id: string };
    await api(alice, "POST", `/grants/${g.id}/approve`, {}); // refused: self-approval (an error message)
    await api(bob, "POST", `/grants/${g.id}/approve`, { comment: "ok" });
    const cred = await api(alice, "GET", `/grants/${g.id}/credential`, undefined, "the holder's credential");
    const url = new URL((cred.json() as { credential: string }).credential);
    secrets.set("grant password", decodeURIComponent(url.password));
    await api(bob, "GET", `/grants/${g.id}/credential`); // refused: not the holder
    await api(alice, "GET", `/grants/${g.id}`);
    await api(alice, "GET", `/grants/${g.id}/story`);
    await api(alice, "POST", `/grants/${g.id}/extend`, { by: "10m", reason: "still restoring" });
    await api(bob, "POST", `/grants/${g.id}/revoke`, { reason: "done" });
    await api(null, "GET", "/grants"); // refused: no token
    await api(`${alice}x`, "GET", "/me"); // refused: a wrong token (its message must not echo it)

    // A TOTP factor and a login via local fallback (the IdP is unreachable).
    const auth = broker.auth as NonNullable<Broker["auth"]>;
    const { secret: totp } = await auth.provisionTotp(SYSTEM_CONTEXT, "frank", "phone");
    secrets.set("TOTP secret", totp);
    await api(null, "POST", "/auth/fallback/login", { user: "frank", code: "000000" }); // a wrong code
    const login = await api(
      null,
      "POST",
      "/auth/fallback/login",
      { user: "frank", code: new TOTP({ secret: Secret.fromBase32(totp) }).generate() },
      "the session token, to the person who signed in",
    );
    const session = (login.json() as { token: string }).token;
    secrets.set("fallback session", session);
    await api(session, "GET", "/auth/session");
    await api(session, "GET", "/me");

    // The broker rotates the target's admin password (CLI, reading the same files).
    const rotated = await runCli(["rotation", "rotate-target", "pg", "--config", join(dir, "breakglass.yaml")], cliEnv);
    expect(rotated.code).toBe(0);
    record("rotation rotate-target (stdout+stderr)", rotated.stdout + rotated.stderr);
    secrets.set(
      "target admin password (rotated)",
      decodeURIComponent(new URL(readFileSync(join(dir, "pg-admin.url"), "utf8").trim()).password),
    );

    // A tier-2 envelope: custodians, seal, open (its stdout is the secret: that is the point).
    const bg = (args: string[]) => runCli(args, cliEnv, { cwd: dir });
    for (const c of ["ann", "ben"]) {
      const k = await bg(["vault", "custodian-keygen", "--out", `${c}.key`]);
      record(`vault custodian-keygen ${c}`, k.stdout + k.stderr);
      writeFileSync(join(dir, `${c}.pub`), k.stdout);
      const identity = readFileSync(join(dir, `${c}.key`), "utf8")
        .split("\n")
        .find((l) => l.startsWith("AGE-SECRET-KEY-"));
      secrets.set(`custodian identity of ${c}`, identity as string);
    }
    writeFileSync(join(dir, "root.txt"), "cloud-root-password-for-hygiene");
    secrets.set("envelope secret", "cloud-root-password-for-hygiene");
    const sealed = await bg([
      ...["vault", "seal", "--name", "root", "--secret-file", "root.txt", "--threshold", "2"],
      ...["--custodians", "ann.pub,ben.pub", "--out", "root.envelope", "--alarm-webhook", "http://127.0.0.1:9/x"],
    ]);
    record("vault seal", sealed.stdout + sealed.stderr);
    rmSync(join(dir, "root.txt"));
    const opened = await bg([
      ...["vault", "open", "root.envelope", "--reason", "hygiene", "--incident", "INC-2"],
      ...["--identity", "ann.key", "--identity", "ben.key"],
    ]);
    expect(opened.stdout).toBe("cloud-root-password-for-hygiene"); // handed over: the point of opening
    record("vault open (stderr)", opened.stderr);
    const imported = await bg(["vault", "import-record", "root.envelope", "--config", "breakglass.yaml"]);
    record("vault import-record", imported.stdout + imported.stderr);
    const pendingAlarms = readdirSync(dir).filter((f) => f.startsWith("root.envelope.pending-alarm."));
    expect(pendingAlarms).toHaveLength(1);
    for (const f of ["root.envelope", "root.envelope.openings.jsonl", ...pendingAlarms]) {
      record(f, readFileSync(join(dir, f), "utf8"));
    }

    // The broker's own keys.
    secrets.set("data key", readFileSync(join(dir, "secrets.key"), "utf8").trim());
    const signing = readFileSync(join(dir, "audit-signing.pem"), "utf8");
    secrets.set(
      "audit signing key",
      signing
        .split("\n")
        .filter((l) => l && !l.startsWith("-----"))
        .join(""),
    );

    // Alarms delivered, the audit log in both export formats.
    await broker.alarms.drain();
    await broker.checkpoints.checkpointNow();
    for (const r of receiver.received) record(`webhook alarm ${r.key}`, JSON.stringify(r.body));
    record("alarms.jsonl", readFileSync(join(dir, "alarms.jsonl"), "utf8"));
    for (const format of ["jsonl", "ocsf"]) {
      const exported = await runCli(
        ["audit", "export", "--format", format, "--config", join(dir, "breakglass.yaml")],
        cliEnv,
      );
      expect(exported.code).toBe(0);
      record(`audit export ${format}`, exported.stdout);
    }
    await api(erin, "GET", "/audit/events?limit=1000");
    await api(erin, "GET", "/audit/checkpoints");
    await api(erin, "GET", "/posture");
    await api(erin, "GET", "/reviews");
  });

  it("finds none of them in logs, responses, the audit log, alarms, CLI output or the database file", async () => {
    await broker.stop(); // flush the database
    record("broker log", logs.join(""));
    for (const f of ["breakglass.db", "breakglass.db-wal"]) {
      try {
        record(f, readFileSync(join(dir, f)).toString("latin1"));
      } catch {
        // no WAL left after a clean stop
      }
    }
    expect([...secrets.keys()]).toEqual(
      expect.arrayContaining(["grant password", "envelope secret", "fallback session"]),
    );
    expect(secrets.size).toBeGreaterThanOrEqual(17);
    expect(logs.length).toBeGreaterThan(5);
    expect(corpus.length).toBeGreaterThan(40);
    const hits: string[] = [];
    for (const [name, secret] of secrets) {
      for (const form of forms(secret)) {
        for (const { where, text } of corpus) if (text.includes(form)) hits.push(`${name} in ${where}`);
      }
    }
    expect(hits).toEqual([]);
  });
});
