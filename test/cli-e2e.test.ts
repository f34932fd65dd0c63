/**
 * The CLI end to end, as people use it: a real `breakglass server` process on a temp SQLite
 * database with exec targets, and every command run as its own process from the build
 * (`node bin/breakglass.js`). Run `npm run build` first; `npm test` does.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GrantListSchema, GrantViewSchema, MeSchema, RolesResponseSchema } from "../src/contract/api.js";
import { type BrokerProcess, requireBuild, runCli, startBrokerProcess } from "./support/broker-process.js";
import { type ConfigOverride, mergeConfig, writeTestConfig } from "./support/test-broker.js";

/** The standard world, checkpointing on a short interval instead of every 50 events. */
const CONFIG: ConfigOverride = { audit: { checkpoint_every_events: undefined, checkpoint_interval: "200ms" } };

const USERS = ["alice", "bob", "carol", "erin"] as const;
type User = (typeof USERS)[number];

let dir: string;
let configFile: string;
let broker: BrokerProcess;
const tokens = new Map<User, string>();

beforeAll(async () => {
  requireBuild();
  dir = mkdtempSync(join(tmpdir(), "bg-cli-"));
  configFile = writeTestConfig({ dir, config: CONFIG }).file;
  broker = await startBrokerProcess(configFile);
  // Tokens are created offline, straight in the database the running server uses.
  for (const user of USERS) {
    const res = await runCli(["token", "create", "--user", user, "--description", "e2e", "--config", configFile]);
    expect(res.code, res.stderr).toBe(0);
    expect(res.stderr).toMatch(/shown only once/);
    tokens.set(user, res.stdout.trim());
  }
});

afterAll(async () => {
  await broker?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Run a CLI command as `user` against the broker. */
const as = (user: User, ...args: string[]) =>
  runCli(args, { BREAKGLASS_URL: broker.url, BREAKGLASS_TOKEN: tokens.get(user) });

const REQUEST = ["--reason", "primary database is down", "--incident", "INC-4711"];

describe("the tour", () => {
  let id: string;

  it("alice requests, bob and carol approve, the grant goes active at the target", async () => {
    const requested = await as("alice", "request", "production/db-admin", ...REQUEST, "--json");
    expect(requested.code, requested.stderr).toBe(0);
    const grant = GrantViewSchema.parse(JSON.parse(requested.stdout));
    expect(grant.state).toBe("requested");
    id = grant.id;

    const bob = await as("bob", "approve", id, "--comment", "go");
    expect(bob.code, bob.stderr).toBe(0);
    expect(bob.stdout).toMatch(/requested .*1 approval so far; needs 2 of leads/);

    const carol = await as("carol", "approve", id);
    expect(carol.code, carol.stderr).toBe(0);
    expect(carol.stdout).toContain(id);
    expect(carol.stdout).toMatch(/active .*left\)/);
    expect(existsSync(join(dir, "targets", `bg_${id}`))).toBe(true);
  });

  it("`grants` shows the active grant with its remaining time", async () => {
    const res = await as("alice", "grants", "--mine");
    expect(res.code, res.stderr).toBe(0);
    const row = res.stdout.split("\n").find((l) => l.startsWith(id));
    expect(row).toMatch(/production\/db-admin\s+active\s+alice\s+(29m\d+s|30m) left\s+INC-4711/);
    expect(res.stdout.split("\n")[0]).toMatch(/^ID\s+ROLE\s+STATE\s+REQUESTER/);

    const json = await as("bob", "grants", "--state", "active", "--json");
    expect(GrantListSchema.parse(JSON.parse(json.stdout)).grants.map((g) => g.id)).toContain(id);
  });

  it("`show --json` prints the grant with approvals and access state", async () => {
    const res = await as("alice", "show", id, "--json");
    expect(res.code, res.stderr).toBe(0);
    const grant = GrantViewSchema.parse(JSON.parse(res.stdout));
    expect(grant.approvals.map((a) => a.approver)).toEqual(["bob", "carol"]);
    expect(grant.access.state).toBe("granted");
    expect(grant.remainingS).toBeGreaterThan(1700);

    const text = await as("alice", "show", id);
    expect(text.stdout).toContain("Timeline");
    expect(text.stdout).toMatch(/approved by bob — "go"/);
  });

  it("carol revokes: ended(revoked), access gone at the target", async () => {
    const res = await as("carol", "revoke", id, "--reason", "incident resolved");
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toMatch(/ended \(revoked\).*revoked/);
    expect(existsSync(join(dir, "targets", `bg_${id}`))).toBe(false);
  });

  it("`audit verify --config` checks the live database offline", async () => {
    const res = await runCli(["audit", "verify", "--config", configFile]);
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toMatch(/^OK: \d+ events/);
    const json = await runCli(["audit", "verify", "--config", configFile, "--json"]);
    expect(JSON.parse(json.stdout)).toMatchObject({ ok: true, failure: null });
  });

  it("a JSONL export verifies with the public key alone, and an edit is caught (exit 4)", async () => {
    const file = join(dir, "audit.jsonl");
    const exported = await runCli(["audit", "export", "--format", "jsonl", "--out", file, "--config", configFile]);
    expect(exported.code, exported.stderr).toBe(0);
    expect(exported.stderr).toMatch(/Exported \d+ events/);
    const publicKey = join(dir, "audit-signing.pem.pub");

    const good = await runCli(["audit", "verify", "--file", file, "--public-key", publicKey]);
    expect(good.code, good.stderr).toBe(0);
    expect(good.stdout).toMatch(/^OK/);

    const text = readFileSync(file, "utf8");
    expect(text).toContain("incident resolved");
    writeFileSync(file, text.replace("incident resolved", "nothing to see here"));
    const bad = await runCli(["audit", "verify", "--file", file, "--public-key", publicKey]);
    expect(bad.code).toBe(4);
    expect(bad.stderr).toMatch(/FAILED at seq \d+: modified/);

    const csv = await runCli(["audit", "export", "--format", "csv", "--config", configFile]);
    expect(csv.code, csv.stderr).toBe(0);
    expect(csv.stdout.split("\r\n")[0]).toMatch(/^seq,at,type,actor/);
  });
});

describe("refusals and failures", () => {
  it("self-approval exits 1 with ERR_SELF_APPROVAL on stderr", async () => {
    const requested = await as("alice", "request", "production/db-reader", ...REQUEST, "--json");
    expect(requested.code, requested.stderr).toBe(0);
    const { id } = GrantViewSchema.parse(JSON.parse(requested.stdout));
    const res = await as("alice", "approve", id);
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(/^error: .*cannot approve it \(ERR_SELF_APPROVAL\)$/m);
    expect((await as("alice", "cancel", id, "--reason", "wrong role")).code).toBe(0);
  });

  it("an unknown token exits 1 with ERR_UNAUTHENTICATED", async () => {
    const res = await runCli(["whoami"], { BREAKGLASS_URL: broker.url, BREAKGLASS_TOKEN: "t_nope.secret" });
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(/\(ERR_UNAUTHENTICATED\)/);
  });

  it("`config check` on a broken config exits 3 and names the YAML path", async () => {
    const broken = writeTestConfig({
      dir,
      file: "broken.yaml",
      config: mergeConfig(CONFIG, { domains: { production: { roles: { "db-admin": { max_duration: "2 hours" } } } } }),
    }).file;
    const res = await runCli(["config", "check", broken]);
    expect(res.code).toBe(3);
    expect(res.stderr).toContain("domains.production.roles.db-admin.max_duration");
    expect(res.stderr).toMatch(/ERR_CONFIG_INVALID/);

    const good = await runCli(["config", "check", configFile]);
    expect(good.code, good.stderr).toBe(0);
    expect(good.stdout).toMatch(/OK/);
  });

  it("missing arguments and unknown options exit 2 with the usage", async () => {
    for (const args of [["approve"], ["request", "production/db-admin"], ["grants", "--colour"], ["frobnicate"]]) {
      const res = await as("alice", ...args);
      expect(res.code, `${args.join(" ")}: ${res.stderr}`).toBe(2);
      expect(res.stderr).toMatch(/^error: /);
    }
    const noToken = await runCli(["grants"], { BREAKGLASS_URL: broker.url });
    expect(noToken.code).toBe(2);
    expect(noToken.stderr).toMatch(/BREAKGLASS_TOKEN/);
  });

  it("an unreachable broker exits 5", async () => {
    const port = await closedPort();
    const res = await runCli(["grants"], { BREAKGLASS_URL: `http://127.0.0.1:${port}`, BREAKGLASS_TOKEN: "t_x.y" });
    expect(res.code).toBe(5);
    expect(res.stderr).toMatch(/cannot reach the broker/);
  });
});

describe("more commands", () => {
  it("`request --emergency` goes active at once", async () => {
    const res = await as("alice", "request", "production/db-admin", ...REQUEST, "--emergency", "--duration", "10m");
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toMatch(/active .*(10m|9m\d+s) left\); emergency use/);
    const id = res.stdout.split(/\s+/)[0] ?? "";
    expect(existsSync(join(dir, "targets", `bg_${id}`))).toBe(true);
    const released = await as("alice", "release", id);
    expect(released.code, released.stderr).toBe(0);
    const reviewed = await as("erin", "review", id, "--outcome", "justified", "--notes", "restored the replica");
    expect(reviewed.code, reviewed.stderr).toBe(0);
    const bad = await as("erin", "review", id, "--outcome", "fine", "--notes", "x");
    expect(bad.code).toBe(2);
  });

  it("`whoami` and `roles` read the broker", async () => {
    const me = await as("bob", "whoami", "--json");
    expect(MeSchema.parse(JSON.parse(me.stdout))).toMatchObject({ user: "bob", groups: ["leads"] });
    const roles = await as("alice", "roles", "--json");
    const ids = RolesResponseSchema.parse(JSON.parse(roles.stdout)).domains.flatMap((d) => d.roles.map((r) => r.id));
    expect(ids).toEqual(["production/db-admin", "production/db-reader"]);
    const table = await as("alice", "roles");
    expect(table.stdout).toMatch(/production\/db-admin\s+30m\s+2h\s+2 of leads\s+yes\s+yes/);
  });

  it("`help`, `--help` and `config schema` work without a broker", async () => {
    const help = await runCli(["help"]);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain("audit verify");
    const requestHelp = await runCli(["request", "--help"]);
    expect(requestHelp.stdout).toMatch(/^Usage: breakglass request ROLE --reason TEXT --incident ID/);
    const schema = await runCli(["config", "schema"]);
    expect(JSON.parse(schema.stdout)).toHaveProperty("properties.domains");
  });

  it("the server stops gracefully on SIGTERM", async () => {
    expect(await broker.stop()).toBe(0);
  });
});

/** A port nothing listens on: bind one, then close it. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  await new Promise((resolve) => server.close(resolve));
  if (address === null || typeof address === "string") throw new Error("no port");
  return address.port;
}

describe("the demo", () => {
  it("`demo` runs the example config on SQLite and writes a sourceable token file whose tokens work", async () => {
    const dir = mkdtempSync(join(tmpdir(), "bg-demo-"));
    const state = join(dir, "state");
    const demo = await startBrokerProcess(join(dir, "unused.yaml"), { args: ["demo", "--dir", state, "--port", "0"] });
    try {
      const envFile = join(state, "demo-tokens.env");
      const vars = new Map(
        [...readFileSync(envFile, "utf8").matchAll(/^export (\w+)=(\S+)/gm)].map((m) => [m[1], m[2]] as const),
      );
      expect(vars.get("BREAKGLASS_URL")).toBe(demo.url);
      const token = (name: string) => vars.get(name) ?? "";
      const request = await runCli(["request", "production/db-admin", ...REQUEST], {
        BREAKGLASS_URL: demo.url,
        BREAKGLASS_TOKEN: token("ALICE_TOKEN"),
      });
      expect(request.code).toBe(0);
      const grantId = /(g_\w+)/.exec(request.stdout)?.[1] ?? "";
      for (const approver of ["BOB_TOKEN", "CAROL_TOKEN"]) {
        const approved = await runCli(["approve", grantId], {
          BREAKGLASS_URL: demo.url,
          BREAKGLASS_TOKEN: token(approver),
        });
        expect(approved.code).toBe(0);
      }
      expect(existsSync(join(state, "targets", "pg-main", `bg_${grantId}.access`))).toBe(true);
      const verify = await runCli(["audit", "verify", "--config", join(state, "breakglass.yaml")], {});
      expect(verify.code).toBe(0);
      expect(verify.stdout).toContain("OK");
    } finally {
      await demo.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
