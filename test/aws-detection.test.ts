/**
 * Use detection for AWS from CloudTrail, end to end: the broker's own AssumeRole (made through the
 * real SDK against the local STS, which records it in CloudTrail's record shape) is explained by
 * its grant even when the log file arrives after the grant ended; an AssumeRole into the
 * break-glass role by a standing IAM user is alarmed by the detector's own pass (every second)
 * once the file lands, the delay reported as a figure; root sign-in pushed through the webhook
 * (EventBridge's event shape) is alarmed before the answer; the webhook refuses a wrong key
 * without saying which targets exist.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { AssumeRoleCommand, STSClient } from "@aws-sdk/client-sts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Broker } from "../src/app.js";
import { AWS_ENV, AWS_ROLE, awsTargetSettings } from "./support/aws-case.js";
import { ctx } from "./support/ctx.js";
import { ACCOUNT, type FakeAws, OTHER_KEY, startFakeAws } from "./support/fake-aws.js";
import { readJsonLines } from "./support/json-lines.js";
import { SECRET_KEY, startTestBroker, type TestBroker } from "./support/test-broker.js";
import { until } from "./support/wait.js";

const WEBHOOK_KEY = "cloudtrail-webhook-key-for-tests";
let fake: FakeAws;
let t: TestBroker;
let dir: string;
let trailDir: string;
let broker: Broker;
let roleArn: string;

beforeAll(async () => {
  fake = await startFakeAws();
  roleArn = fake.addRole(AWS_ROLE, 3600);
  dir = mkdtempSync(join(tmpdir(), "bg-aws-detect-"));
  trailDir = join(dir, "cloudtrail");
  mkdirSync(join(trailDir, "AWSLogs", ACCOUNT), { recursive: true });
  // History: present before the broker starts, never reported.
  writeTrail([rootLogin("0000history")]);
  t = await startTestBroker({
    base: "minimal",
    dir,
    env: { ...AWS_ENV, TRAIL_KEY: WEBHOOK_KEY },
    config: {
      ...SECRET_KEY,
      alarms: {
        channels: { security: { type: "file", path: "./security.jsonl" } },
        security_channels: ["security"],
        routes: [],
      },
      users: { alice: { name: "Alice" }, bob: { name: "Bob" } },
      groups: { oncall: ["alice"], leads: ["bob"] },
      admin_groups: ["leads"],
      domains: {
        cloud: {
          roles: {
            "aws-breakglass": {
              target: "aws-prod",
              grants: { role_arn: roleArn, max_session: "1h" },
              max_duration: "1h",
              approval: "1 of leads",
              requesters: ["oncall"],
            },
          },
        },
      },
      targets: {
        "aws-prod": {
          connector: "aws",
          settings: awsTargetSettings(fake, {
            cloudtrail: {
              dir: "./cloudtrail",
              webhook_key: { env: "TRAIL_KEY" },
              watch_role_arns: [roleArn],
              watch_users: ["breakglass-admin"],
            },
          }),
        },
      },
    },
  });
  broker = t.broker;
  // The first pass notes the files already there (history); later files are new.
  await broker.detector.runOnce();
});
afterAll(async () => {
  await t?.stop();
  await fake?.stop();
  rmSync(dir, { recursive: true, force: true });
});

let fileNo = 0;
/** Deliver records as CloudTrail does: one gzipped `{"Records": [...]}` file per batch. */
function writeTrail(records: readonly Record<string, unknown>[]): void {
  fileNo += 1;
  const name = `${ACCOUNT}_CloudTrail_eu-central-1_20261130T0${fileNo}00Z_${fileNo}.json.gz`;
  writeFileSync(join(trailDir, "AWSLogs", ACCOUNT, name), gzipSync(JSON.stringify({ Records: records })));
}

function rootLogin(eventID: string): Record<string, unknown> {
  return {
    eventVersion: "1.08",
    userIdentity: { type: "Root", principalId: ACCOUNT, arn: `arn:aws:iam::${ACCOUNT}:root`, accountId: ACCOUNT },
    eventTime: new Date().toISOString().replace(/\.\d{3}Z$/, "Z"),
    eventSource: "signin.amazonaws.com",
    eventName: "ConsoleLogin",
    awsRegion: "us-east-1",
    sourceIPAddress: "203.0.113.9",
    userAgent: "Mozilla/5.0",
    requestParameters: null,
    responseElements: { ConsoleLogin: "Success" },
    additionalEventData: { MFAUsed: "Yes" },
    eventID,
    eventType: "AwsConsoleSignIn",
    recipientAccountId: ACCOUNT,
  };
}

interface Alarm {
  event: { type: string; target: string; data: { principal: string; from: string | null; grant: string | null } };
}
const alarms = (): Alarm[] =>
  readJsonLines<Alarm>(join(dir, "security.jsonl")).filter((a) => a.event.type === "target.unauthorized_login");
const push = (body: unknown, key = WEBHOOK_KEY, target = "aws-prod") =>
  broker.http.inject({
    method: "POST",
    url: `/api/v1/targets/${target}/cloudtrail`,
    headers: { "x-breakglass-key": key, "content-type": "application/json" },
    payload: JSON.stringify(body),
  });

describe("aws use detection (CloudTrail)", () => {
  it("explains the broker's own AssumeRole by its grant, even when the file lands after the grant ended", async () => {
    const g = await broker.service.request(ctx("alice"), {
      roleId: "cloud/aws-breakglass",
      justification: "KMS key policy locked everyone out",
      incident: "INC-51",
      durationS: 1800,
    });
    expect(await broker.service.approve(ctx("bob"), g.id, null)).toMatchObject({ state: "active" });
    await broker.service.revoke(ctx("bob"), g.id, "fixed");
    const records = fake.takeTrail();
    expect(records).toHaveLength(1);
    expect(records[0]).toMatchObject({ requestParameters: { roleArn, roleSessionName: `bg-${g.id}` } });
    await broker.detector.stop(); // no timer pass in between: this pass is the one that reads the file
    writeTrail(records);
    // The pass reads the new file and finds nothing unexplained (what it reports is recorded before it returns).
    expect(await broker.detector.runOnce()).toEqual([]);
    const audit = await broker.store.readAudit(1, 10_000);
    expect(audit.filter((e) => e.type === "target.unauthorized_login")).toEqual([]);
    broker.detector.start();
  });

  it("alarms, by its own pass, on an AssumeRole into the break-glass role that no grant explains", async () => {
    const sts = new STSClient({
      region: "eu-central-1",
      endpoint: fake.stsEndpoint,
      credentials: OTHER_KEY,
      maxAttempts: 1,
    });
    await sts.send(new AssumeRoleCommand({ RoleArn: roleArn, RoleSessionName: "mallory-debug", DurationSeconds: 900 }));
    sts.destroy();
    const landed = Date.now();
    writeTrail(fake.takeTrail());
    // Nothing here runs a pass: the detector's timer finds the new file.
    const alarm = await until("the unauthorized AssumeRole alarm", () =>
      alarms().find((a) => a.event.data.principal.includes("mallory-debug")),
    );
    console.log(`aws detection: alarm in the security channel ${Date.now() - landed} ms after the file landed`);
    expect(alarm.event).toMatchObject({
      target: "aws-prod",
      data: { principal: `${roleArn} (session mallory-debug)`, from: "127.0.0.1", grant: null },
    });
    // The history file written before the start was not replayed.
    expect(alarms().filter((a) => a.event.data.principal.startsWith("root"))).toEqual([]);
  });

  it("takes a root sign-in pushed as an EventBridge event, records it before answering, once", async () => {
    const event = {
      version: "0",
      id: "6f87d04b-9f74-4f04-a780-7acf4b0a9b38",
      "detail-type": "AWS Console Sign In via CloudTrail",
      source: "aws.signin",
      account: ACCOUNT,
      time: new Date().toISOString(),
      region: "us-east-1",
      resources: [],
      detail: rootLogin("root-login-1"),
    };
    const res = await push(event);
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json()).toEqual({ received: 1, reported: 1 });
    // Recorded before the answer: the audit log has it now.
    const events = await broker.store.readAudit(1, 10_000);
    expect(events.some((e) => e.type === "target.unauthorized_login" && e.payload.includes("root (account"))).toBe(
      true,
    );
    await until("root alarm", () => alarms().find((a) => a.event.data.principal === `root (account ${ACCOUNT})`));
    // EventBridge retries: the same event again is not a second alarm.
    expect((await push([event])).json()).toEqual({ received: 1, reported: 0 });
  });

  it("refuses a wrong key or an unknown target alike, and a payload of unknown shape", async () => {
    for (const res of [await push({ Records: [] }, "wrong-key"), await push({ Records: [] }, WEBHOOK_KEY, "nope")]) {
      expect(res.statusCode).toBe(401);
      expect(res.headers["content-type"]).toContain("application/problem+json");
      expect(res.json()).toMatchObject({ code: "ERR_UNAUTHENTICATED" });
    }
    const missing = await broker.http.inject({
      method: "POST",
      url: "/api/v1/targets/aws-prod/cloudtrail",
      headers: { "content-type": "application/json" },
      payload: "{}",
    });
    expect(missing.statusCode).toBe(401);
    const bad = await push({ hello: "world" });
    expect(bad.statusCode).toBe(400);
    expect(bad.json()).toMatchObject({ code: "ERR_VALIDATION" });
  });
});
