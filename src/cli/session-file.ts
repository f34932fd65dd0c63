/**
 * The CLI's own session, written by `breakglass login`: the broker's URL and a session token,
 * in `$BREAKGLASS_SESSION_FILE`, else `$XDG_CONFIG_HOME/breakglass/session.json`, else
 * `~/.config/breakglass/session.json` — created 0600 in a 0700 folder, removed by `logout`.
 * `BREAKGLASS_TOKEN` (an API token, for automation) always wins over it.
 */
import { chmodSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import type { CliIo } from "./cli-io.js";

export interface CliSession {
  readonly url: string;
  readonly token: string;
  readonly user: string;
  readonly method: string;
  readonly expiresAt: string;
}

export function sessionFilePath(io: Pick<CliIo, "env">): string {
  if (io.env.BREAKGLASS_SESSION_FILE) return io.env.BREAKGLASS_SESSION_FILE;
  const base = io.env.XDG_CONFIG_HOME || join(io.env.HOME || homedir(), ".config");
  return join(base, "breakglass", "session.json");
}

/** The saved session, if there is one that has not expired. */
export function readSession(io: Pick<CliIo, "env">): CliSession | null {
  try {
    const s = JSON.parse(readFileSync(sessionFilePath(io), "utf8")) as CliSession;
    if (typeof s.token !== "string" || typeof s.url !== "string") return null;
    return Date.parse(s.expiresAt) > Date.now() ? s : null;
  } catch {
    return null;
  }
}

export function writeSession(io: Pick<CliIo, "env">, session: CliSession): string {
  const file = sessionFilePath(io);
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  writeFileSync(file, `${JSON.stringify(session, null, 2)}\n`, { mode: 0o600 });
  chmodSync(file, 0o600);
  return file;
}

export function removeSession(io: Pick<CliIo, "env">): void {
  rmSync(sessionFilePath(io), { force: true });
}
