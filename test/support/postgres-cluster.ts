/**
 * A throwaway PostgreSQL cluster for tests, started by the test itself (see TESTING.md):
 * a private data directory, a free loopback port, its own socket directory, stopped with
 * `-m immediate` and deleted afterwards. Two test files may start clusters at the same time.
 * Missing binaries fail loudly — tests never skip because PostgreSQL is absent.
 */
import { execFile, execFileSync, spawnSync } from "node:child_process";
import { existsSync, readdirSync, rmSync } from "node:fs";
import { chmod, chown, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { freePort } from "./free-port.js";
import { selfSignedCert } from "./self-signed.js";

export interface PostgresCluster {
  /** The application role `breakglass` (password login, scram-sha-256) on database `breakglass`. */
  readonly url: string;
  /** The superuser `postgres` (trust) on database `postgres`. */
  readonly adminUrl: string;
  readonly port: number;
  /** Holds `data/`, `log` and the Unix socket. */
  readonly dir: string;
  /** With `tls`: the server's self-signed certificate, to verify it with (`sslrootcert`). */
  readonly caFile: string | null;
  /** Stop the server but keep its data (a target outage); `resume` starts it again on the same port. */
  halt(): Promise<void>;
  resume(): Promise<void>;
  /** Idempotent. */
  stop(): Promise<void>;
}

export const APP_ROLE = "breakglass";
export const APP_PASSWORD = "breakglass-test-password";

const PG_ROOT = "/usr/lib/postgresql";
const START_ATTEMPTS = 5;

/** The newest installed server's bin directory (`PG_BINDIR` overrides). */
export function findPostgresBinDir(): string {
  const override = process.env.PG_BINDIR;
  if (override !== undefined && override !== "") {
    if (!existsSync(join(override, "initdb"))) throw new Error(`PG_BINDIR=${override} has no initdb`);
    return override;
  }
  const versions = existsSync(PG_ROOT)
    ? readdirSync(PG_ROOT)
        .filter((v) => /^\d+(\.\d+)?$/.test(v))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  for (const v of versions) {
    const bin = join(PG_ROOT, v, "bin");
    if (existsSync(join(bin, "initdb")) && existsSync(join(bin, "pg_ctl"))) return bin;
  }
  throw new Error(
    `PostgreSQL server binaries not found (no ${PG_ROOT}/*/bin/initdb). ` +
      "Install them with .ci/install-packages.sh (apt-get install -y postgresql), or set PG_BINDIR.",
  );
}

const running = new Set<{ pgCtl: string; data: string; dir: string; asRoot: boolean }>();
let exitHookInstalled = false;

/** A test run that dies without afterAll must not leave postmasters behind. */
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once("exit", () => {
    for (const c of running) {
      const args = ["-D", c.data, "-m", "immediate", "-w", "stop"];
      const [file, argv] = c.asRoot ? ["runuser", ["-u", "postgres", "--", c.pgCtl, ...args]] : [c.pgCtl, args];
      spawnSync(file, argv, { stdio: "ignore", timeout: 10_000 });
      rmSync(c.dir, { recursive: true, force: true });
    }
  });
}

export interface StartPostgresOptions {
  /**
   * Keep PostgreSQL's durability settings (fsync, synchronous_commit, full_page_writes) on, as
   * in production. Benchmarks that claim "durable" use this; tests run faster without it.
   */
  readonly durable?: boolean;
  /** max_connections (default 60). */
  readonly maxConnections?: number;
  /** max_prepared_transactions (default 0, PostgreSQL's: `PREPARE TRANSACTION` refused). */
  readonly maxPreparedTransactions?: number;
  /** Serve TLS with a fresh self-signed certificate for 127.0.0.1 (see `PostgresCluster.caFile`). */
  readonly tls?: boolean;
}

export async function startPostgres(opts: StartPostgresOptions = {}): Promise<PostgresCluster> {
  const bin = findPostgresBinDir();
  const asRoot = process.getuid?.() === 0;
  const dir = await mkdtemp(join(tmpdir(), "bg-pg-"));
  const data = join(dir, "data");
  const run = (cmd: string, args: readonly string[], timeout = 60_000): Promise<string> => {
    const [file, argv] = asRoot ? ["runuser", ["-u", "postgres", "--", cmd, ...args]] : [cmd, [...args]];
    return new Promise((resolve, reject) => {
      execFile(file, argv, { cwd: dir, timeout, encoding: "utf8" }, (error, stdout, stderr) => {
        if (error) reject(new Error(`${cmd} ${args.join(" ")} failed: ${error.message}\n${stdout}\n${stderr}`));
        else resolve(stdout);
      });
    });
  };

  try {
    if (asRoot) {
      // initdb refuses to run as root; the cluster belongs to the postgres user.
      const ids = postgresUser();
      await chown(dir, ids.uid, ids.gid);
    }
    await run(join(bin, "initdb"), [
      "-D",
      data,
      "-U",
      "postgres",
      "-A",
      "trust",
      "-E",
      "UTF8",
      "--locale=C",
      "--no-sync",
      "--no-instructions",
    ]);
    const hba = join(data, "pg_hba.conf");
    await writeFile(
      hba,
      [
        "local all all trust",
        "host all postgres 127.0.0.1/32 trust",
        // Everyone else logs in with a password, so VALID UNTIL and failed logins behave as in production.
        "host all all 127.0.0.1/32 scram-sha-256",
        "",
      ].join("\n"),
    );
    if (asRoot) {
      const ids = postgresUser();
      await chown(hba, ids.uid, ids.gid);
    }

    let caFile: string | null = null;
    const tlsOptions: string[] = [];
    if (opts.tls) {
      const cert = join(dir, "server.crt");
      const key = join(dir, "server.key");
      await selfSignedCert({ certFile: cert, keyFile: key, cn: "127.0.0.1", san: "IP:127.0.0.1" });
      if (asRoot) {
        const ids = postgresUser();
        await chown(cert, ids.uid, ids.gid);
        await chown(key, ids.uid, ids.gid);
      }
      await chmod(key, 0o600);
      caFile = cert;
      tlsOptions.push("-c ssl=on", `-c ssl_cert_file=${cert}`, `-c ssl_key_file=${key}`);
    }

    const pgCtl = join(bin, "pg_ctl");
    const log = join(dir, "log");
    let port = 0;
    let options = "";
    for (let attempt = 1; ; attempt++) {
      port = await freePort();
      options = [
        `-p ${port}`,
        `-k ${dir}`,
        "-c listen_addresses=127.0.0.1",
        ...(opts.durable ? [] : ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]),
        "-c shared_buffers=32MB",
        `-c max_connections=${opts.maxConnections ?? 60}`,
        ...(opts.maxPreparedTransactions ? [`-c max_prepared_transactions=${opts.maxPreparedTransactions}`] : []),
        ...tlsOptions,
      ].join(" ");
      try {
        await run(pgCtl, ["-D", data, "-l", log, "-w", "-t", "60", "-o", options, "start"], 90_000);
        break;
      } catch (e) {
        const tail = await readFile(log, "utf8").catch(() => "");
        // Another process took the port between our probe and the postmaster's bind: try another.
        if (attempt < START_ATTEMPTS && /could not bind|Address already in use|could not create listen/i.test(tail)) {
          continue;
        }
        throw new Error(`PostgreSQL did not start on port ${port}: ${(e as Error).message}\n--- log ---\n${tail}`);
      }
    }
    const handle = { pgCtl, data, dir, asRoot };
    running.add(handle);
    installExitHook();

    const adminUrl = `postgres://postgres@127.0.0.1:${port}/postgres`;
    const admin = new pg.Client({ connectionString: adminUrl });
    await admin.connect();
    try {
      await admin.query(`CREATE ROLE ${APP_ROLE} LOGIN PASSWORD '${APP_PASSWORD}'`);
      await admin.query(`CREATE DATABASE ${APP_ROLE} OWNER ${APP_ROLE}`);
    } finally {
      await admin.end();
    }

    let stopped = false;
    return {
      url: `postgres://${APP_ROLE}:${APP_PASSWORD}@127.0.0.1:${port}/${APP_ROLE}`,
      adminUrl,
      port,
      dir,
      caFile,
      async halt() {
        await run(pgCtl, ["-D", data, "-m", "fast", "-w", "stop"], 90_000);
      },
      async resume() {
        await run(pgCtl, ["-D", data, "-l", log, "-w", "-t", "60", "-o", options, "start"], 90_000);
      },
      async stop() {
        if (stopped) return;
        stopped = true;
        running.delete(handle);
        try {
          await run(pgCtl, ["-D", data, "-m", "immediate", "-w", "stop"], 90_000);
        } finally {
          await rm(dir, { recursive: true, force: true });
        }
      },
    };
  } catch (e) {
    // A half-started cluster: stop whatever runs there, then remove the directory.
    await run(join(bin, "pg_ctl"), ["-D", data, "-m", "immediate", "stop"], 30_000).catch(() => {});
    await rm(dir, { recursive: true, force: true });
    throw e;
  }
}

/**
 * `CREATE DATABASE name` (optionally owned by `owner`) through the superuser connection.
 * @returns `adminUrl` pointing at the new database.
 */
export async function createDatabase(
  adminUrl: string,
  name: string,
  options: { owner?: string } = {},
): Promise<string> {
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(name)) throw new Error(`not a plain database name: ${name}`);
  if (options.owner !== undefined && !/^[a-z_][a-z0-9_]{0,62}$/.test(options.owner)) {
    throw new Error(`not a plain role name: ${options.owner}`);
  }
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    const { rows } = await admin.query<{ v: string }>("SELECT current_setting('server_version_num') AS v");
    // FILE_COPY (PostgreSQL 15+) copies the small template directly instead of through the WAL:
    // about twice as fast with fsync off, and tests create a database each.
    const strategy = Number(rows[0]?.v) >= 150000 ? " STRATEGY FILE_COPY" : "";
    const owner = options.owner === undefined ? "" : ` OWNER ${options.owner}`;
    await admin.query(`CREATE DATABASE ${name}${owner}${strategy}`);
  } finally {
    await admin.end();
  }
  return withDatabase(adminUrl, name);
}

/** The same connection string, pointing at another database. */
export function withDatabase(url: string, name: string): string {
  const u = new URL(url);
  u.pathname = `/${name}`;
  return u.toString();
}

function postgresUser(): { uid: number; gid: number } {
  try {
    const uid = Number(execFileSync("id", ["-u", "postgres"], { encoding: "utf8" }).trim());
    const gid = Number(execFileSync("id", ["-g", "postgres"], { encoding: "utf8" }).trim());
    return { uid, gid };
  } catch {
    throw new Error("running as root but there is no `postgres` user to own the cluster; run .ci/install-packages.sh");
  }
}
