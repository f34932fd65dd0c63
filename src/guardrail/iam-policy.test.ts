import { describe, expect, it } from "vitest";
import {
  arnLike,
  contextFor,
  evaluate,
  type PolicyDocument,
  PolicyError,
  parsePolicy,
  wildcardMatch,
} from "./iam-policy.js";

const doc = (statement: unknown, name = "p.json"): PolicyDocument =>
  parsePolicy({ Version: "2012-10-17", Statement: statement }, name);
const identity = (d: PolicyDocument, ctx: ReturnType<typeof contextFor>) =>
  evaluate({ identity: [d], scps: null }, ctx).decision;
const ALICE = "arn:aws:iam::123456789012:user/alice";

describe("matching", () => {
  it("wildcards: * any run, ? one character; actions case-insensitive", () => {
    expect(wildcardMatch("s3:Get*", "s3:GetObject")).toBe(true);
    expect(wildcardMatch("s3:Get?bject", "s3:GetObject")).toBe(true);
    expect(wildcardMatch("s3:Get?", "s3:GetObject")).toBe(false);
    expect(wildcardMatch("S3:getobject", "s3:GetObject", true)).toBe(true);
    expect(wildcardMatch("a*b*c", "aXXbYYc")).toBe(true);
    expect(wildcardMatch("a*b*c", "aXXbYY")).toBe(false);
  });

  it("ARNs part by part: a wildcard never crosses a colon, the resource part is case-sensitive", () => {
    expect(arnLike("arn:aws:iam::*:role/BreakGlass", "arn:aws:iam::123456789012:role/BreakGlass")).toBe(true);
    expect(arnLike("arn:aws:iam::*:role/BreakGlass", "arn:aws:iam::123456789012:role/breakglass")).toBe(false);
    expect(arnLike("arn:aws:iam::*:role/*", "arn:aws:iam::123456789012:role/ops/x")).toBe(true);
    expect(arnLike("arn:aws:*:role/x", "arn:aws:iam::1:role/x")).toBe(false); // fewer than 6 parts
    expect(arnLike("arn:aws:s3:::bucket/*", "arn:aws:s3:::bucket/a:b")).toBe(true);
  });
});

describe("evaluation", () => {
  it("explicit deny beats allow; nothing allowing is an implicit deny", () => {
    const d = doc([
      { Effect: "Allow", Action: "*", Resource: "*" },
      { Sid: "NoStop", Effect: "Deny", Action: "cloudtrail:StopLogging", Resource: "*" },
    ]);
    expect(identity(d, contextFor(ALICE, "cloudtrail:StopLogging"))).toBe("explicit_deny");
    expect(identity(d, contextFor(ALICE, "s3:ListBucket"))).toBe("allow");
    expect(
      identity(doc({ Effect: "Allow", Action: "s3:*", Resource: "*" }), contextFor(ALICE, "ec2:RunInstances")),
    ).toBe("implicit_deny");
    const e = evaluate({ identity: [d], scps: null }, contextFor(ALICE, "cloudtrail:StopLogging"));
    expect(e.explanation.at(-1)).toBe("DENY: explicitly denied by p.json Statement[1] (NoStop)");
  });

  it("NotAction and NotResource invert the match", () => {
    const d = doc({ Effect: "Allow", NotAction: "iam:*", NotResource: "arn:aws:s3:::secret/*" });
    expect(identity(d, contextFor(ALICE, "s3:GetObject", { resource: "arn:aws:s3:::public/a" }))).toBe("allow");
    expect(identity(d, contextFor(ALICE, "s3:GetObject", { resource: "arn:aws:s3:::secret/a" }))).toBe("implicit_deny");
    expect(identity(d, contextFor(ALICE, "iam:CreateUser", { resource: "arn:aws:s3:::public/a" }))).toBe(
      "implicit_deny",
    );
  });

  it("conditions: keys AND, values OR, operators with and without IfExists, missing keys as AWS documents", () => {
    const allowIf = (condition: unknown) => doc({ Effect: "Allow", Action: "*", Resource: "*", Condition: condition });
    const ctx = (keys: Record<string, string>) => contextFor(ALICE, "s3:GetObject", { keys });
    const two = allowIf({
      StringEquals: { "aws:RequestedRegion": ["eu-west-1", "eu-central-1"], "aws:PrincipalTag/team": "sre" },
    });
    expect(identity(two, ctx({ "aws:RequestedRegion": "eu-central-1", "aws:PrincipalTag/team": "sre" }))).toBe("allow");
    expect(identity(two, ctx({ "aws:RequestedRegion": "us-east-1", "aws:PrincipalTag/team": "sre" }))).toBe(
      "implicit_deny",
    );
    expect(identity(two, ctx({ "aws:RequestedRegion": "eu-west-1" }))).toBe("implicit_deny"); // missing key: false
    // A negated operator on a missing key is true; …IfExists on a missing key is true.
    expect(identity(allowIf({ StringNotEquals: { "aws:PrincipalTag/team": "x" } }), ctx({}))).toBe("allow");
    expect(identity(allowIf({ StringEqualsIfExists: { "aws:PrincipalTag/team": "x" } }), ctx({}))).toBe("allow");
    expect(
      identity(
        allowIf({ StringEqualsIfExists: { "aws:PrincipalTag/team": "x" } }),
        ctx({ "aws:PrincipalTag/team": "y" }),
      ),
    ).toBe("implicit_deny");
    expect(
      identity(
        allowIf({ StringLike: { "aws:PrincipalTag/team": "s?e*" } }),
        ctx({ "aws:PrincipalTag/team": "sre-eu" }),
      ),
    ).toBe("allow");
    expect(
      identity(
        allowIf({ StringEqualsIgnoreCase: { "aws:PrincipalTag/team": "SRE" } }),
        ctx({ "aws:PrincipalTag/team": "sre" }),
      ),
    ).toBe("allow");
    expect(
      identity(
        allowIf({ Bool: { "aws:MultiFactorAuthPresent": "true" } }),
        ctx({ "aws:MultiFactorAuthPresent": "true" }),
      ),
    ).toBe("allow");
    const dated = allowIf({ DateLessThan: { "aws:CurrentTime": "2030-01-01T00:00:00Z" } });
    expect(evaluate({ identity: [dated], scps: null }, { ...ctx({}), now: Date.UTC(2029, 0, 1) }).decision).toBe(
      "allow",
    );
    expect(evaluate({ identity: [dated], scps: null }, { ...ctx({}), now: Date.UTC(2031, 0, 1) }).decision).toBe(
      "implicit_deny",
    );
  });

  it("an SCP is a ceiling: its deny wins over the identity policy; without a modelled default allow it must allow too", () => {
    const scp = doc({ Effect: "Deny", Action: "ec2:*", Resource: "*" }, "scp.json");
    const admin = doc({ Effect: "Allow", Action: "*", Resource: "*" }, "admin.json");
    expect(evaluate({ identity: [admin], scps: [scp] }, contextFor(ALICE, "ec2:RunInstances")).decision).toBe(
      "explicit_deny",
    );
    expect(evaluate({ identity: [admin], scps: [scp] }, contextFor(ALICE, "s3:GetObject")).decision).toBe("allow");
    expect(
      evaluate({ identity: [admin], scps: [scp], scpDefaultAllow: false }, contextFor(ALICE, "s3:GetObject")).decision,
    ).toBe("implicit_deny");
  });

  it("names the JSON path of what is wrong in a document", () => {
    const bad = (statement: unknown) => () => parsePolicy({ Version: "2012-10-17", Statement: statement }, "x");
    expect(
      bad([
        { Effect: "Allow", Action: "*" },
        { Effect: "Maybe", Action: "*" },
      ]),
    ).toThrow("$.Statement[1].Effect");
    expect(bad({ Effect: "Allow", Action: "*", NotAction: "x" })).toThrow("exactly one of Action or NotAction");
    expect(bad({ Effect: "Allow", Action: "*", Condition: { StringMaybe: {} } })).toThrow(
      "$.Statement.Condition.StringMaybe: unknown or unsupported condition operator",
    );
    expect(bad({ Effect: "Allow", Action: [1, {}] })).toThrow("$.Statement.Action[1]");
    expect(() => parsePolicy({ Version: "2012-10-17", Statment: [] }, "x")).toThrow(PolicyError);
    expect(() => parsePolicy([], "x")).toThrow("a policy document is a JSON object");
  });
});
