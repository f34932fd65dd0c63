/**
 * One server per SQLite file: a second `breakglass server` on the same file refuses to start and
 * names the first; a lock left by a server that was killed (-9) is taken over; a clean stop
 * removes it. Real processes.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { type BrokerProcess, startBrokerProcess } from "./support/broker-process.js";
import { writeTestConfig } from "./support/test-broker.js";

const dir = mkdtempSync(join(tmpdir(), "bg-sqlite-lock-"));
const started: BrokerProcess[] = [];
afterAll(async () => {
  for (const b of started) await b.stop(2_000);
  rmSync(dir, { recursive: true, force: true });
});

describe("one server per SQLite file", () => {
  it("refuses a second server on the same file, takes over a killed one's lock, and removes it on a clean stop", async () => {
    const config = writeTestConfig({ dir }).file;
    const lock = join(dir, "breakglass.db.server.lock");
    const first = await startBrokerProcess(config);
    started.push(first);
    expect(readFileSync(lock, "utf8").trim()).toBe(String(first.child.pid));

    await expect(startBrokerProcess(config)).rejects.toThrow(
      new RegExp(`another Breakglass server \\(pid ${first.child.pid}\\) is running on .*breakglass\\.db`),
    );

    // Killed: its lock stays behind, and the next server takes it over.
    first.child.kill("SIGKILL");
    await first.stop();
    const second = await startBrokerProcess(config);
    started.push(second);
    expect(readFileSync(lock, "utf8").trim()).toBe(String(second.child.pid));
    expect(await second.stop()).toBe(0);
    expect(existsSync(lock)).toBe(false);
  });
});
