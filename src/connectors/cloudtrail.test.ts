import { describe, expect, it } from "vitest";
import { type CloudTrailWatch, cloudTrailRecords, watchedUse } from "./cloudtrail.js";

const ROLE = "arn:aws:iam::123456789012:role/BreakGlassEmergency";
const watch: CloudTrailWatch = { roleArns: new Set([ROLE]), users: new Set(["breakglass-admin"]), root: true };

const assume = (sessionName: string, extra: Record<string, unknown> = {}) => ({
  eventID: `e-${sessionName}`,
  eventTime: "2026-11-30T01:02:03Z",
  eventSource: "sts.amazonaws.com",
  eventName: "AssumeRole",
  sourceIPAddress: "198.51.100.7",
  userIdentity: { type: "IAMUser", userName: "ci", accessKeyId: "AKIACI" },
  requestParameters: { roleArn: ROLE, roleSessionName: sessionName },
  ...extra,
});

describe("CloudTrail records", () => {
  it("reads log files, EventBridge events and arrays of them; names what it cannot read", () => {
    const r = assume("x");
    expect(cloudTrailRecords({ Records: [r, 5] })).toEqual([r]);
    expect(cloudTrailRecords({ "detail-type": "AWS API Call via CloudTrail", detail: r })).toEqual([r]);
    expect(cloudTrailRecords([{ "detail-type": "x", detail: r }, { Records: [r] }])).toEqual([r, r]);
    expect(cloudTrailRecords({ detail: r })).toMatch(/^expected a CloudTrail file/);
    expect(cloudTrailRecords([{}, "x"])).toMatch(/^item 0: expected a CloudTrail file/);
    expect(cloudTrailRecords("x")).toBe("expected a JSON object or array");
  });
});

describe("watched uses", () => {
  it("matches an AssumeRole into a watched role to the grant in its session name", () => {
    expect(watchedUse(assume("bg-g_abc123"), watch)).toEqual({
      principal: `${ROLE} (session bg-g_abc123)`,
      sessionId: "e-bg-g_abc123",
      grantId: "g_abc123",
      startedAt: Date.parse("2026-11-30T01:02:03Z"),
      from: "198.51.100.7",
      pointInTime: true,
    });
    expect(watchedUse(assume("mallory"), watch)?.grantId).toBeNull();
  });

  it("ignores other roles, refused calls and other STS actions", () => {
    expect(
      watchedUse(assume("x", { requestParameters: { roleArn: `${ROLE}2`, roleSessionName: "x" } }), watch),
    ).toBeNull();
    expect(watchedUse(assume("x", { errorCode: "AccessDenied" }), watch)).toBeNull();
    expect(watchedUse(assume("x", { eventName: "GetCallerIdentity" }), watch)).toBeNull();
  });

  it("reports root use — a sign-in per event, API calls once per access key — unless AWS acted for root", () => {
    const root = { type: "Root", accountId: "123456789012", accessKeyId: "ASIAROOT" };
    const login = {
      eventID: "l1",
      eventName: "ConsoleLogin",
      userIdentity: root,
      responseElements: { ConsoleLogin: "Success" },
    };
    expect(watchedUse(login, watch)).toMatchObject({ principal: "root (account 123456789012)", sessionId: "l1" });
    expect(watchedUse({ ...login, responseElements: { ConsoleLogin: "Failure" } }, watch)).toBeNull();
    const call = { eventID: "c1", eventName: "PutBucketPolicy", userIdentity: root };
    expect(watchedUse(call, watch)).toMatchObject({ sessionId: "ASIAROOT" });
    expect(
      watchedUse({ ...call, userIdentity: { ...root, invokedBy: "cloudformation.amazonaws.com" } }, watch),
    ).toBeNull();
    expect(watchedUse(call, { ...watch, root: false })).toBeNull();
  });

  it("reports a watched IAM user's sign-in and API calls, not other users'", () => {
    const user = (userName: string) => ({
      eventID: "u1",
      eventName: "ListUsers",
      userIdentity: { type: "IAMUser", userName, accessKeyId: "AKIAUSER" },
    });
    expect(watchedUse(user("breakglass-admin"), watch)).toMatchObject({
      principal: "iam user breakglass-admin",
      sessionId: "AKIAUSER",
      grantId: null,
    });
    expect(watchedUse(user("alice"), watch)).toBeNull();
  });
});
