import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { settle } from "../../test/support/wait.js";
import { BreakglassError } from "../core/errors.js";
import type { RoleDef, TargetDef } from "../core/model.js";
import type { ConnectorGrantFacts } from "../core/ports/connector.js";
import { createExecConnector, execSettingsSchema } from "./exec-connector.js";

const role: RoleDef = {
  id: "production/db-admin",
  domain: "production",
  name: "db-admin",
  description: "",
  target: "box",
  grants: { roles: ["recovery_rw"] },
  defaultDurationS: 1800,
  maxDurationS: 7200,
  approval: { anyOf: [[{ group: "leads", count: 2 }]] },
  requesters: ["oncall"],
  emergencyAllowed: true,
  reviewDeadlineS: 86400,
  endingWarningS: 600,
  alarmSeverity: "warning",
  justificationMinLength: 10,
  incidentPattern: "INC-[0-9]+",
  approvalTimeoutS: 3600,
  activationTimeoutS: 900,
  autoActivate: true,
};
const target: TargetDef = { name: "box", connector: "exec", settings: {} };
/** Is process `pid` running (a zombie waiting for its reaper is not)? */
const alive = (pid: number): boolean => {
  try {
    return !/^\d+ \(.*\) Z /.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return false;
  }
};
const facts: ConnectorGrantFacts = {
  grantId: "g_test1",
  requester: "alice",
  role,
  target,
  incident: "INC-42",
  justification: "database is down",
  endsAt: Date.UTC(2030, 0, 1, 12, 0, 0),
};

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "bg-exec-"));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const fileConnector = (extra: Record<string, unknown> = {}) =>
  createExecConnector(
    execSettingsSchema.parse({
      grant: ["sh", "-c", 'env | grep ^BREAKGLASS_ | sort > "$BREAKGLASS_PRINCIPAL.access"'],
      revoke: ["sh", "-c", 'rm -f "$BREAKGLASS_PRINCIPAL.access"'],
      verify: ["sh", "-c", 'test ! -e "$BREAKGLASS_PRINCIPAL.access"'],
      ...extra,
    }),
    { cwd: dir },
  );

describe("exec connector", () => {
  it("grants, verifies presence, revokes and verifies absence with real commands", async () => {
    const c = fileConnector();
    const handle = c.plan(facts);
    expect(handle).toEqual({ principal: "bg_g_test1" });
    await c.grant(facts, handle);
    const file = join(dir, "bg_g_test1.access");
    expect(existsSync(file)).toBe(true);
    expect((await c.verify(facts, handle)).revoked).toBe(false);
    await c.revoke(facts, handle);
    expect(existsSync(file)).toBe(false);
    expect((await c.verify(facts, handle)).revoked).toBe(true);
  });

  it("passes the grant's facts in environment variables", async () => {
    const c = fileConnector();
    await c.grant(facts, c.plan(facts));
    const env = readFileSync(join(dir, "bg_g_test1.access"), "utf8");
    expect(env).toContain("BREAKGLASS_GRANT_ID=g_test1");
    expect(env).toContain("BREAKGLASS_USER=alice");
    expect(env).toContain("BREAKGLASS_ROLE=production/db-admin");
    expect(env).toContain("BREAKGLASS_INCIDENT=INC-42");
    expect(env).toContain("BREAKGLASS_ENDS_AT=2030-01-01T12:00:00.000Z");
    expect(env).toContain(`BREAKGLASS_ENDS_AT_EPOCH=${Date.UTC(2030, 0, 1, 12) / 1000}`);
    expect(env).toContain('BREAKGLASS_GRANTS_JSON={"roles":["recovery_rw"]}');
  });

  it("revoking something already gone succeeds (idempotent)", async () => {
    const c = fileConnector();
    const handle = c.plan(facts);
    await c.revoke(facts, handle);
    await c.revoke(facts, handle);
    expect((await c.verify(facts, handle)).revoked).toBe(true);
  });

  it("treats a non-zero exit as failure and reports the exit code and stderr", async () => {
    const c = fileConnector({ grant: ["sh", "-c", "echo 'permission denied for role' >&2; exit 3"] });
    const err = await c.grant(facts, c.plan(facts)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BreakglassError);
    expect((err as BreakglassError).code).toBe("ERR_CONNECTOR_FAILED");
    expect((err as BreakglassError).message).toContain("exited with 3");
    expect((err as BreakglassError).message).toContain("permission denied for role");
    expect((err as BreakglassError).detail.exitCode).toBe(3);
  });

  it("kills a command that outlives its timeout, with its children", async () => {
    // A child in the background that holds the output open: were it left running, the call would
    // wait for it (300 s, past the test's timeout) instead of returning at the command's timeout.
    const pidFile = join(dir, "child.pid");
    const c = fileConnector({ timeout: "1s", revoke: ["sh", "-c", `sleep 300 & echo $! > ${pidFile}; sleep 300`] });
    const err = await c.revoke(facts, c.plan(facts)).catch((e: unknown) => e);
    expect((err as BreakglassError).code).toBe("ERR_CONNECTOR_FAILED");
    expect((err as BreakglassError).message).toContain("timed out");
    const child = Number(readFileSync(pidFile, "utf8"));
    expect(child).toBeGreaterThan(0);
    expect(
      await settle(
        () => alive(child),
        (running) => !running,
      ),
    ).toBe(false);
  });

  it("reports a command that cannot be started", async () => {
    const c = fileConnector({ grant: ["/nonexistent/breakglass-helper"] });
    const err = await c.grant(facts, c.plan(facts)).catch((e: unknown) => e);
    expect((err as BreakglassError).code).toBe("ERR_CONNECTOR_FAILED");
    expect((err as BreakglassError).message).toContain("cannot run /nonexistent/breakglass-helper");
  });

  it("captures output for the audit trail, bounded", async () => {
    const c = fileConnector({ grant: ["sh", "-c", "head -c 100000 /dev/zero | tr '\\0' x; echo; echo done >&2"] });
    const r = await c.grant(facts, c.plan(facts));
    expect(String(r.detail.stdout).length).toBeLessThan(20_000);
    expect(String(r.detail.stdout)).toContain("[truncated]");
    expect(r.detail.stderr).toBe("done\n");
  });

  it("without a verify command reports revoked but unverified", async () => {
    const c = createExecConnector(execSettingsSchema.parse({ grant: ["true"], revoke: ["true"] }), { cwd: dir });
    const v = await c.verify(facts, c.plan(facts));
    expect(v).toEqual({ revoked: true, detail: { verified: false, note: "no verify command configured" } });
  });

  it("rejects settings with unknown keys or bad timeouts", () => {
    expect(execSettingsSchema.safeParse({ grant: ["true"], revoke: ["true"], grnat: [] }).success).toBe(false);
    expect(execSettingsSchema.safeParse({ grant: ["true"], revoke: ["true"], timeout: "90x" }).success).toBe(false);
    expect(execSettingsSchema.safeParse({ grant: [], revoke: ["true"] }).success).toBe(false);
  });
});
