/** `breakglass guardrail aws` and `guardrail simulate`, run as the built CLI. */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { runCli } from "./support/broker-process.js";

const dir = mkdtempSync(join(tmpdir(), "bg-cli-guardrail-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("breakglass guardrail", () => {
  it("writes the SCP and the role's policies, and the simulator allows only the break-glass role", async () => {
    const made = await runCli(["guardrail", "aws", "--role", "BreakGlassEmergency", "--out", dir]);
    expect(made.code, made.stderr).toBe(0);
    const scp = JSON.parse(readFileSync(join(dir, "scp.json"), "utf8"));
    expect(scp.Statement[0].Condition.ArnNotLike["aws:PrincipalArn"]).toBe("arn:aws:iam::*:role/BreakGlassEmergency");
    JSON.parse(readFileSync(join(dir, "role-trust.json"), "utf8"));

    const sim = (principal: string) =>
      runCli([
        "guardrail",
        "simulate",
        join(dir, "scp.json"),
        "--scp",
        "--principal",
        principal,
        "--action",
        "cloudtrail:StopLogging",
      ]);
    const allowed = await sim("arn:aws:sts::123456789012:assumed-role/BreakGlassEmergency/alice");
    expect(allowed.code, allowed.stderr).toBe(0);
    expect(allowed.stdout).toMatch(/^ALLOWED \(allow\): cloudtrail:StopLogging/);
    const denied = await sim("arn:aws:iam::123456789012:role/Admin");
    expect(denied.code).toBe(6);
    expect(denied.stdout).toContain("DENY: explicitly denied by");
    expect(denied.stdout).toContain("ArnNotLike aws:PrincipalArn=arn:aws:iam::123456789012:role/Admin");
  });

  it("explains an identity-policy decision as JSON, and exits 3 on an invalid policy file", async () => {
    writeFileSync(
      join(dir, "p.json"),
      JSON.stringify({ Version: "2012-10-17", Statement: { Effect: "Allow", Action: "s3:Get*", Resource: "*" } }),
    );
    const r = await runCli([
      "guardrail",
      "simulate",
      join(dir, "p.json"),
      "--principal",
      "arn:aws:iam::1:user/a",
      "--action",
      "s3:GetObject",
      "--json",
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ decision: "allow", action: "s3:GetObject" });
    writeFileSync(join(dir, "bad.json"), '{"Statement": [{"Effect": "Permit", "Action": "*"}]}');
    const bad = await runCli([
      "guardrail",
      "simulate",
      join(dir, "bad.json"),
      "--principal",
      "arn:aws:iam::1:user/a",
      "--action",
      "s3:GetObject",
    ]);
    expect(bad.code).toBe(3);
    expect(bad.stderr).toContain('$.Statement[0].Effect: must be "Allow" or "Deny"');
    writeFileSync(join(dir, "broken.json"), "{");
    const broken = await runCli([
      "guardrail",
      "simulate",
      join(dir, "broken.json"),
      "--principal",
      "x",
      "--action",
      "y",
    ]);
    expect(broken.code).toBe(3);
    expect(broken.stderr).toContain("is not valid JSON");
    const usage = await runCli(["guardrail", "aws", "--role", "bad name"]);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain("not a valid IAM role name");
  });
});
