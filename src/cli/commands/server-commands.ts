/**
 * Commands that run the broker: `server` (from a configuration file) and `demo` (a throwaway
 * broker with the example configuration and a token per demo user).
 */
import { chmodSync, copyFileSync, existsSync, mkdirSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { join, resolve } from "node:path";
import { createLogger, type Logger, type LogLevel } from "../../adapters/logger.js";
import { packageRoot } from "../../adapters/package-root.js";
import type { Broker } from "../../app.js";
import { type SpawnedBackgroundThread, spawnBackgroundThread } from "../../background/thread-client.js";
import type { AppConfig } from "../../config/app-config.js";
import { SYSTEM_CONTEXT } from "../../core/request-context.js";
import { CliError, type CliIo, UsageError } from "../cli-io.js";
import type { Command } from "../command.js";
import { loadConfig, resolveConfigPath } from "../config-file.js";
import { EXIT } from "../exit-codes.js";

const LEVELS: readonly LogLevel[] = ["info", "warn", "error", "silent"];

/** `BREAKGLASS_LOG_LEVEL` (info, warn, error, silent), else `fallback`. */
export function logLevelFrom(io: CliIo, fallback: LogLevel): LogLevel {
  const wanted = io.env.BREAKGLASS_LOG_LEVEL?.trim().toLowerCase();
  return LEVELS.find((l) => l === wanted) ?? fallback;
}

export function loggerFrom(io: CliIo, fallback: LogLevel): Logger {
  return createLogger(logLevelFrom(io, fallback), (line) => io.err(line));
}

export const CONFIG_OPTION = {
  type: "string",
  value: "FILE",
  description: "Configuration file (default: $BREAKGLASS_CONFIG, else ./breakglass.yaml)",
} as const;

/** Start the broker; a port in use is a configuration problem, said plainly. */
async function startBroker(broker: Broker, config: AppConfig, portHint: string): Promise<string> {
  try {
    return await broker.start();
  } catch (e) {
    await broker.stop().catch(() => undefined);
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "EADDRINUSE" || code === "EACCES") {
      throw new CliError(
        EXIT.CONFIG,
        `cannot listen on ${config.server.host}:${config.server.port} (${code}); ${portHint}`,
      );
    }
    throw e;
  }
}

export const serverCommand: Command = {
  name: "server",
  summary: "Run the broker: HTTP API and background workers",
  description:
    "Load the configuration, start the broker and serve the HTTP API until SIGINT or SIGTERM, then stop gracefully: finish in-flight work and sign a last audit checkpoint.",
  args: [],
  options: { config: CONFIG_OPTION },
  notes: [
    "Environment:",
    "  BREAKGLASS_CONFIG     configuration file when --config is not given",
    "  BREAKGLASS_LOG_LEVEL  info (default), warn, error or silent; logs are JSON lines on stderr",
  ],
  async run(input, io) {
    const path = resolveConfigPath(input.string("config"), io);
    const log = loggerFrom(io, "info");
    const { config, broker } = await withBackgroundThread(async (thread) => {
      const config = await loadConfig(path, io);
      const { createBroker } = await import("../../app.js");
      const broker = await createBroker(config, {
        log,
        env: io.env,
        backgroundThread: thread,
        gatewayThread: true,
        logLevel: logLevelFrom(io, "info"),
      });
      return { config, broker };
    });
    const url = await startBroker(broker, config, "change server.port (0 picks a free port)");
    log.info("broker started", { url, config: path });
    io.out(`Breakglass listening on ${url}`);
    const signal = await io.waitForStop();
    log.info("stopping", { signal });
    await broker.stop();
    log.info("stopped");
    return EXIT.OK;
  },
};

/**
 * Build a broker whose expiry, revocation and alarms run on a thread of their own (requests
 * cannot hold them up; docs/adr/0008). The thread is spawned first, so that it loads its modules
 * while this thread loads the configuration and the broker's; it ends if the broker is not built.
 */
async function withBackgroundThread<T>(build: (thread: SpawnedBackgroundThread) => Promise<T>): Promise<T> {
  const thread = spawnBackgroundThread();
  try {
    return await build(thread);
  } catch (e) {
    await thread.terminate();
    throw e;
  }
}

function parsePort(text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  const port = Number(text);
  if (!/^\d+$/.test(text) || port > 65535) throw new UsageError("--port must be a number from 0 to 65535", "demo");
  return port;
}

/** The demo's server settings: its host and port (0: a port that is free now), and their URL. */
export async function demoServer(
  server: AppConfig["server"],
  host: string,
  port: number,
): Promise<AppConfig["server"]> {
  const real = port === 0 ? await freePortOn(host) : port;
  return { ...server, host, port: real, publicUrl: `http://${host}:${real}` };
}

function freePortOn(host: string): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const probe = createServer();
    probe.once("error", reject);
    probe.listen(0, host, () => {
      const address = probe.address();
      const free = typeof address === "object" && address !== null ? address.port : 0;
      probe.close(() => (free > 0 ? resolvePort(free) : reject(new Error(`no free port on ${host}`))));
    });
  });
}

export const demoCommand: Command = {
  name: "demo",
  summary: "Run a demo broker with example roles and a token per demo user",
  description:
    "Create a state folder (copying the example configuration into it on first run), start a broker from it, create an API token for each demo user and print how to use them. Stop it with Ctrl-C; the state folder keeps the database and audit log for the next run.",
  args: [],
  options: {
    dir: { type: "string", value: "DIR", description: "State folder (default ./.breakglass/demo)" },
    port: { type: "string", value: "N", description: "Port (default 8080; 0 picks a free one)" },
    host: { type: "string", value: "HOST", description: "Address to listen on (default from the configuration)" },
  },
  async run(input, io) {
    const dir = resolve(io.cwd, input.string("dir") ?? ".breakglass/demo");
    const port = parsePort(input.string("port"), 8080);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const file = join(dir, "breakglass.yaml");
    if (!existsSync(file)) {
      copyFileSync(join(packageRoot(), "examples", "demo", "breakglass.yaml"), file);
      io.err(`Created ${file} from the example configuration.`);
    }
    const log = loggerFrom(io, "warn");
    const { config, broker } = await withBackgroundThread(async (thread) => {
      const loaded = await loadConfig(file, io);
      const host = input.string("host") ?? loaded.server.host;
      // The demo's own flags win over the file (a copy of the frozen config with another server).
      // `--port 0` is resolved first: links the broker sends (alarms, WebAuthn's origin) carry the
      // public URL, which must name the port it really listens on, not `:0`.
      const config: AppConfig = {
        ...loaded,
        server: await demoServer(loaded.server, host, port),
      };
      const { createBroker } = await import("../../app.js");
      const broker = await createBroker(config, {
        log,
        env: io.env,
        backgroundThread: thread,
        gatewayThread: true,
        logLevel: logLevelFrom(io, "warn"),
      });
      return { config, broker };
    });
    const url = await startBroker(broker, config, "pick another with --port (0 picks a free one)");

    const lines: string[] = [`export BREAKGLASS_URL=${url}`];
    for (const user of config.policy.users.values()) {
      const created = await broker.tokens.create(SYSTEM_CONTEXT, {
        user: user.name,
        description: "demo token",
        ttlS: 7 * 86_400,
      });
      const variable = `${user.name.toUpperCase().replace(/[^A-Z0-9]/g, "_")}_TOKEN`;
      lines.push(`export ${variable}=${created.token.reveal()}   # ${user.displayName}`);
    }
    const envFile = join(dir, "demo-tokens.env");
    writeFileSync(envFile, `# Breakglass demo tokens (valid 7 days): source this file.\n${lines.join("\n")}\n`, {
      mode: 0o600,
    });
    chmodSync(envFile, 0o600); // `mode` only applies when the file is created

    io.out(`Breakglass demo listening on ${url}  (state: ${dir})`);
    io.out(
      `Web console: ${url}/ — sign in with one of the tokens below (ALICE_TOKEN is on call; BOB and CAROL approve).`,
    );
    io.out("");
    io.out(lines.join("\n"));
    io.out("");
    io.out(`These lines are also in ${envFile} (mode 0600). In another terminal:`);
    io.out("");
    io.out(`  source ${envFile}; alias breakglass="node ${join(packageRoot(), "bin", "breakglass.js")}"`);
    io.out(
      '  1. BREAKGLASS_TOKEN=$ALICE_TOKEN breakglass request production/db-admin --reason "primary database is down" --incident INC-1234',
    );
    io.out(
      "  2. BREAKGLASS_TOKEN=$BOB_TOKEN breakglass approve <grant id>; the same with $CAROL_TOKEN (the grant goes active)",
    );
    io.out("  3. BREAKGLASS_TOKEN=$ALICE_TOKEN breakglass grants --mine      (active, with the time left)");
    io.out(
      `  4. BREAKGLASS_TOKEN=$CAROL_TOKEN breakglass revoke <grant id> --reason done; breakglass audit verify --config ${file}`,
    );
    io.out("Stop with Ctrl-C (the demo also stops when the process that started it, e.g. npm, exits).");

    // A demo belongs to its terminal: when whatever started it goes away (npm killed, not just
    // interrupted), it stops too rather than keep the port and the database.
    const reason = await io.waitForStop({ withParent: true });
    if (reason === "parent exited") io.err("The process that started the demo has exited: stopping the demo.");
    await broker.stop();
    return EXIT.OK;
  },
};
