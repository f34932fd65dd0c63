/**
 * One `breakglass server` per SQLite file. The embedded store is made for a single broker
 * process (replicas need PostgreSQL): two servers on one file would both run the workers, and
 * each would take the other's leases over as those of a process that is gone. A started broker
 * therefore holds `<file>.server.lock` with its process id; a second server on the same file
 * refuses to start, naming the first. A lock left by a process that no longer runs (killed -9, a
 * crash) is taken over. Brokers in one process (tests) share the lock.
 */
import { readFileSync, unlinkSync, writeFileSync } from "node:fs";
import { BreakglassError } from "../core/errors.js";

const held = new Map<string, number>();

/** Is `pid` a live process that looks like a broker (a zombie or a recycled pid is not)? */
function brokerAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "EPERM") return false;
  }
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").includes("breakglass");
  } catch {
    return true; // no /proc to look at: believe the lock
  }
}

/**
 * Take the server lock of the SQLite file at `dbPath`.
 * @throws ERR_STORAGE when another live server process holds it
 */
export function acquireServerLock(dbPath: string): { release(): void } {
  const lockPath = `${dbPath}.server.lock`;
  const count = held.get(lockPath) ?? 0;
  if (count === 0) {
    let holder: number | null = null;
    try {
      writeFileSync(lockPath, `${process.pid}\n`, { flag: "wx", mode: 0o600 });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
      holder = Number.parseInt(readFileSync(lockPath, "utf8"), 10);
    }
    if (holder !== null && holder !== process.pid) {
      if (Number.isInteger(holder) && brokerAlive(holder)) {
        throw new BreakglassError(
          "ERR_STORAGE",
          `another Breakglass server (pid ${holder}) is running on ${dbPath}: the embedded SQLite store takes one server process. Stop that one first, or use PostgreSQL for several replicas (docs/deployment.md). If no such server runs, delete ${lockPath}.`,
          { operation: "lock", pid: holder },
        );
      }
      writeFileSync(lockPath, `${process.pid}\n`, { mode: 0o600 }); // left by a process that is gone
    }
  }
  held.set(lockPath, count + 1);
  let released = false;
  return {
    release() {
      if (released) return;
      released = true;
      const left = (held.get(lockPath) ?? 1) - 1;
      if (left > 0) {
        held.set(lockPath, left);
        return;
      }
      held.delete(lockPath);
      try {
        if (Number.parseInt(readFileSync(lockPath, "utf8"), 10) === process.pid) unlinkSync(lockPath);
      } catch {
        // already gone
      }
    },
  };
}
