/**
 * One way for a test to start a broker: `startTestBroker({ config, storage })`.
 *
 * `config` is typed from the configuration schema's input (what a YAML file may say), so a key
 * that does not exist is a compile error, and it is merged over a base: objects key by key,
 * anything else (arrays, strings, numbers) replaced; `undefined` removes the base's key. It is then
 * written as YAML into a fresh folder and read back through the real loader, so the broker a test
 * gets is one a user's file could produce. A test that runs the broker as a process, or hands the
 * file to the CLI, writes it with `writeTestConfig` — the same types, the same merge.
 *
 * Bases: `standard` is the usual test world (alice and dave on call, bob and carol leads, erin
 * security; production/db-admin (2 of leads, emergency) and production/db-reader on the exec
 * target `box`, whose access is a file under `targets/` and whose revoke fails while `target-down`
 * is in the folder); `minimal` is only what every file needs (server, storage, audit), for tests
 * that declare their own people, roles and targets. SECRET_KEY and RECORDED_ALARMS are fragments
 * many such tests add.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { FastifyInstance } from "fastify";
import { stringify } from "yaml";
import type { z } from "zod";
import { silentLogger } from "../../src/adapters/logger.js";
import { type Broker, type BrokerOptions, createBroker } from "../../src/app.js";
import type { AppConfig } from "../../src/config/app-config.js";
import { type LoadOptions, loadConfigFile } from "../../src/config/load-config.js";
import { connectorConfigChecks } from "../../src/connectors/registry.js";
import type { ConfigFileSchema } from "../../src/contract/config-schema.js";
import { SYSTEM_CONTEXT } from "../../src/core/request-context.js";

export type TestStorage = { driver: "sqlite" } | { driver: "postgres"; url: string };

/** A configuration file's content, as the schema accepts it. */
export type ConfigInput = z.input<typeof ConfigFileSchema>;

type Override<T> = T extends readonly (infer E)[]
  ? readonly E[]
  : T extends object
    ? { [K in keyof T]?: Override<T[K]> | undefined }
    : T;

/** What a test says about the configuration: merged over the base. */
export type ConfigOverride = Override<ConfigInput>;

type Defined<T> = Exclude<T, undefined>;
/** One role as a test writes it (`domains.<d>.roles.<r>`). */
export type RoleOverride = Defined<Defined<Defined<Defined<ConfigOverride["domains"]>[string]>["roles"]>[string]>;
/** One target as a test writes it (`targets.<t>`). */
export type TargetOverride = Defined<Defined<ConfigOverride["targets"]>[string]>;

const TARGET_SCRIPTS = {
  grant: [
    "sh",
    "-c",
    'mkdir -p targets && echo "$BREAKGLASS_USER until $BREAKGLASS_ENDS_AT" > "targets/$BREAKGLASS_PRINCIPAL"',
  ],
  revoke: [
    "sh",
    "-c",
    'if [ -e target-down ]; then echo "target unreachable" >&2; exit 7; fi; rm -f "targets/$BREAKGLASS_PRINCIPAL"',
  ],
  verify: ["sh", "-c", 'test ! -e "targets/$BREAKGLASS_PRINCIPAL"'],
  timeout: "10s",
};

/** What every file needs; storage is filled in by `storage`. */
export const MINIMAL_CONFIG: ConfigOverride = {
  version: 1,
  server: { host: "127.0.0.1", port: 0 },
  audit: { signing_key_file: "./audit-signing.pem", generate_key_if_missing: true },
};

/** The broker's secret key, generated in the folder (for local factors, vault, credentials). */
export const SECRET_KEY: ConfigOverride = {
  secrets: { key_file: "./secrets.key", generate_key_if_missing: true },
};

/** Every alarm recorded to `alarms.jsonl` in the folder, which is also the security channel. */
export const RECORDED_ALARMS: ConfigOverride = {
  alarms: { channels: { record: { type: "file", path: "./alarms.jsonl" } }, security_channels: ["record"], routes: [] },
};

/**
 * One role, `production/db` (2 s by default, one lead approves, `oncall` requests), on an exec
 * target `box` that runs the folder's own `./grant.sh` and `./revoke.sh` (the test writes them)
 * with `timeoutS` to answer.
 */
export function scriptedBoxRole(timeoutS: number): ConfigOverride {
  return {
    domains: {
      production: {
        roles: {
          db: {
            target: "box",
            default_duration: "2s",
            max_duration: "1h",
            approval: "1 of leads",
            requesters: ["oncall"],
          },
        },
      },
    },
    targets: {
      box: {
        connector: "exec",
        settings: { grant: ["./grant.sh"], revoke: ["./revoke.sh"], timeout: `${timeoutS}s` },
      },
    },
  };
}

/** The standard test world, as data. */
export const STANDARD_CONFIG: ConfigOverride = {
  ...MINIMAL_CONFIG,
  audit: { signing_key_file: "./audit-signing.pem", generate_key_if_missing: true, checkpoint_every_events: 50 },
  workers: { expiry_poll: "100ms" },
  admin_groups: ["security"],
  users: {
    alice: { name: "Alice Adams", email: "alice@example.com" },
    dave: { name: "Dave" },
    bob: { name: "Bob" },
    carol: { name: "Carol" },
    erin: { name: "Erin" },
  },
  groups: { oncall: ["alice", "dave"], leads: ["bob", "carol"], security: ["erin"] },
  domains: {
    production: {
      description: "Production databases",
      roles: {
        "db-admin": {
          description: "Recovery DBA",
          target: "box",
          grants: { roles: ["recovery_rw"] },
          default_duration: "30m",
          max_duration: "2h",
          approval: "2 of leads",
          requesters: ["oncall"],
          emergency: true,
          incident_pattern: "INC-[0-9]+",
          approval_timeout: "1h",
          activation_timeout: "15m",
        },
        "db-reader": {
          description: "Read-only",
          target: "box",
          max_duration: "1h",
          approval: "1 of leads",
          requesters: ["oncall"],
        },
      },
    },
  },
  targets: { box: { connector: "exec", settings: TARGET_SCRIPTS } },
};

/** The `storage:` section for a test's storage (postgres: its URL from BG_TEST_DATABASE_URL). */
export function storageSection(storage: TestStorage): ConfigOverride {
  return storage.driver === "sqlite"
    ? { storage: { driver: "sqlite", path: "./breakglass.db" } }
    : { storage: { driver: "postgres", url_env: "BG_TEST_DATABASE_URL", pool_size: 4 } };
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

/** `over` merged into `base`: objects key by key, anything else replaced, `undefined` removes. */
export function mergeConfig(base: ConfigOverride, over: ConfigOverride): ConfigOverride {
  const merge = (b: unknown, o: unknown): unknown => {
    if (!isObject(b) || !isObject(o)) return o;
    const out: Record<string, unknown> = { ...b };
    for (const [k, v] of Object.entries(o)) {
      if (v === undefined) delete out[k];
      else out[k] = merge(out[k], v);
    }
    return out;
  };
  return merge(base, over) as ConfigOverride;
}

export interface TestConfigOptions {
  readonly config?: ConfigOverride;
  /** Default `standard`. */
  readonly base?: "standard" | "minimal";
  /** Default SQLite in the test's folder. */
  readonly storage?: TestStorage;
  /** Environment for `{env: …}` references (the postgres URL is added); default none. */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** A folder to use instead of a fresh one (e.g. files the config refers to are already there). */
  readonly dir?: string;
  /** The configuration file's name in the folder; default `breakglass.yaml`. */
  readonly file?: string;
}

/** A configuration file a test wrote: where, and the environment its references need. */
export interface TestConfigFile {
  /** The folder holding the configuration file, the database and any files the test writes. */
  readonly dir: string;
  /** Absolute path of the file. */
  readonly file: string;
  /** The variables `{env: …}` references and `url_env` name (to pass to a broker process too). */
  readonly env: Readonly<Record<string, string>>;
}

/**
 * Write the configuration (`config` merged over the base and the storage) as YAML, for a test
 * that starts the broker another way: as a process (`breakglass server --config`), or by the CLI.
 */
export function writeTestConfig(opts: TestConfigOptions = {}): TestConfigFile {
  const { config: override = {}, base = "standard", storage = { driver: "sqlite" } } = opts;
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), "bg-test-"));
  const content = mergeConfig(
    mergeConfig(base === "standard" ? STANDARD_CONFIG : MINIMAL_CONFIG, storageSection(storage)),
    override,
  );
  const file = join(dir, opts.file ?? "breakglass.yaml");
  // Plain YAML: a fragment a test uses twice is written out twice, not as an anchor and alias.
  writeFileSync(file, stringify(content, { aliasDuplicateObjects: false }));
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(opts.env ?? {})) if (v !== undefined) env[k] = v;
  if (storage.driver === "postgres") env.BG_TEST_DATABASE_URL = storage.url;
  return { dir, file, env };
}

/**
 * Read a written configuration back through the real loader (with the connectors' checks);
 * `opts` as the loader takes them (e.g. `resolveSecrets: false`, as `config check` reads a file).
 */
export function loadTestConfig(written: TestConfigFile, opts: Partial<LoadOptions> = {}): AppConfig {
  return loadConfigFile(written.file, { ...connectorConfigChecks, env: written.env, ...opts });
}

export interface TestBrokerOptions extends TestConfigOptions, Omit<BrokerOptions, "env"> {
  /** Call `broker.start()` (workers, listening server); default true. */
  readonly start?: boolean;
}

export interface TestBroker extends TestConfigFile {
  readonly broker: Broker;
  readonly config: AppConfig;
  readonly http: FastifyInstance;
  /** The API's base URL (`http://127.0.0.1:PORT`); only after a start (`start: false` has none). */
  readonly url: string;
  /** An API token for `user` (all scopes). */
  token(user: string): Promise<string>;
  /** Stop the broker and remove the folder (unless the test passed its own); once, however often called. */
  stop(): Promise<void>;
}

export async function startTestBroker(opts: TestBrokerOptions = {}): Promise<TestBroker> {
  const { start = true } = opts;
  const ownDir = opts.dir === undefined;
  const written = writeTestConfig(opts);
  const { dir, file, env } = written;
  const config = loadTestConfig(written);
  const { config: _c, base: _b, storage: _s, dir: _d, file: _f, start: _st, ...brokerOptions } = opts;
  const broker = await createBroker(config, { log: silentLogger, ...brokerOptions, env });
  let url: string | null = null;
  let stopped: Promise<void> | undefined;
  try {
    if (start) url = await broker.start();
    else await broker.http.ready();
  } catch (e) {
    await broker.stop();
    throw e;
  }
  return {
    broker,
    config,
    http: broker.http,
    get url() {
      if (url === null) throw new Error("this test broker was not started (start: false): it has no URL");
      return url;
    },
    dir,
    file,
    env,
    async token(user) {
      return (await broker.tokens.create(SYSTEM_CONTEXT, { user, description: "test" })).token.reveal();
    },
    stop() {
      stopped ??= (async () => {
        await broker.stop();
        if (ownDir) rmSync(dir, { recursive: true, force: true });
      })();
      return stopped;
    },
  };
}
