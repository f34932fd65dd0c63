import { describe, expect, it } from "vitest";
import { awsGuardrail, DEFAULT_PROTECTED_ACTIONS } from "./aws-guardrail.js";
import { contextFor, evaluate, parsePolicy } from "./iam-policy.js";

const ROLE = "BreakGlassEmergency";
const docs = awsGuardrail({ roleName: ROLE });
const scp = parsePolicy(JSON.parse(JSON.stringify(docs.scp)), "scp.json");
const decide = (principal: string, action: string) =>
  evaluate({ identity: null, scps: [scp] }, contextFor(principal, action)).decision;

describe("the generated SCP", () => {
  it("has the seed's shape: one Deny of the tamper actions on *, except the break-glass role via ArnNotLike", () => {
    expect(JSON.parse(JSON.stringify(docs.scp))).toEqual({
      Version: "2012-10-17",
      Statement: [
        {
          Sid: "DenyGuardrailTamperingExceptBreakGlass",
          Effect: "Deny",
          Action: [...DEFAULT_PROTECTED_ACTIONS],
          Resource: "*",
          Condition: { ArnNotLike: { "aws:PrincipalArn": `arn:aws:iam::*:role/${ROLE}` } },
        },
      ],
    });
  });

  const accounts = ["123456789012", "000000000001", "999999999999"];
  const nearMisses = (account: string) => [
    `arn:aws:iam::${account}:role/BreakGlassEmergency2`,
    `arn:aws:iam::${account}:role/xBreakGlassEmergency`,
    `arn:aws:iam::${account}:role/breakglassemergency`,
    `arn:aws:iam::${account}:role/BREAKGLASSEMERGENCY`,
    `arn:aws:iam::${account}:role/ops/BreakGlassEmergency`, // a path: role/* does not cross "/"… and is not the name
    `arn:aws:iam::${account}:role/Admin`,
    `arn:aws:iam::${account}:user/BreakGlassEmergency`,
    `arn:aws:iam::${account}:root`,
    `arn:aws:sts::${account}:assumed-role/Admin/BreakGlassEmergency`,
    `arn:aws:sts::${account}:assumed-role/OrganizationAccountAccessRole/x`,
  ];

  it("allows every protected action only to the break-glass role (and its sessions), in any account", () => {
    for (const action of DEFAULT_PROTECTED_ACTIONS) {
      for (const account of accounts) {
        expect(decide(`arn:aws:iam::${account}:role/${ROLE}`, action)).toBe("allow");
        expect(decide(`arn:aws:sts::${account}:assumed-role/${ROLE}/alice-INC-1`, action)).toBe("allow");
        for (const other of nearMisses(account)) {
          expect(decide(other, action), `${other} ${action}`).toBe("explicit_deny");
        }
      }
    }
  });

  it("matches actions case-insensitively (as AWS does) and leaves other actions alone", () => {
    expect(decide("arn:aws:iam::123456789012:role/Admin", "CloudTrail:stoplogging")).toBe("explicit_deny");
    for (const action of ["cloudtrail:DescribeTrails", "s3:GetObject", "kms:Decrypt", "iam:CreateRole"]) {
      expect(decide("arn:aws:iam::123456789012:role/Admin", action)).toBe("allow");
    }
  });

  it("protects a configured list instead of the default", () => {
    const custom = parsePolicy(awsGuardrail({ roleName: ROLE, actions: ["s3:DeleteBucket"] }).scp, "c.json");
    expect(
      evaluate({ identity: null, scps: [custom] }, contextFor("arn:aws:iam::1:role/Admin", "s3:DeleteBucket")).decision,
    ).toBe("implicit_deny".replace("implicit", "explicit"));
    expect(
      evaluate({ identity: null, scps: [custom] }, contextFor("arn:aws:iam::1:role/Admin", "cloudtrail:StopLogging"))
        .decision,
    ).toBe("allow");
  });

  it("gives the role exactly those actions, and a trust policy for the broker with the grant tag", () => {
    const perms = parsePolicy(docs.rolePermissions, "perm.json");
    const role = contextFor(`arn:aws:iam::123456789012:role/${ROLE}`, "cloudtrail:StopLogging");
    expect(evaluate({ identity: [perms], scps: [scp] }, role).decision).toBe("allow");
    expect(evaluate({ identity: [perms], scps: [scp] }, { ...role, action: "s3:GetObject" }).decision).toBe(
      "implicit_deny",
    );
    expect(docs.roleTrust).toMatchObject({
      Statement: [
        {
          Action: ["sts:AssumeRole", "sts:SetSourceIdentity", "sts:TagSession"],
          Condition: { StringLike: { "aws:RequestTag/breakglass-grant": "g_*" } },
        },
      ],
    });
  });

  it("rejects invalid role names and actions with a fix", () => {
    expect(() => awsGuardrail({ roleName: "bad name" })).toThrow("not a valid IAM role name");
    expect(() => awsGuardrail({ roleName: "x".repeat(65) })).toThrow("not a valid IAM role name");
    expect(() => awsGuardrail({ roleName: ROLE, actions: ["StopLogging"] })).toThrow(
      "write it like cloudtrail:StopLogging",
    );
  });
});
