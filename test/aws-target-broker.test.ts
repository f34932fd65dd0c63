import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Broker } from "../src/app.js";
import { CredentialViewSchema } from "../src/contract/api.js";
import { Redacted } from "../src/core/redacted.js";
import { SYSTEM_CONTEXT } from "../src/core/request-context.js";
import { AWS_ENV, AWS_ROLE, awsCanUse, awsTargetSettings } from "./support/aws-case.js";
import { ctx } from "./support/ctx.js";
import { type FakeAws, startFakeAws } from "./support/fake-aws.js";
import { SECRET_KEY, startTestBroker, type TestBroker } from "./support/test-broker.js";

let fake: FakeAws;
let t: TestBroker;
let broker: Broker;

beforeAll(async () => {
  fake = await startFakeAws();
  const roleArn = fake.addRole(AWS_ROLE, 3600);
  t = await startTestBroker({
    base: "minimal",
    env: AWS_ENV,
    config: {
      ...SECRET_KEY,
      users: { alice: { name: "Alice" }, bob: { name: "Bob" } },
      groups: { oncall: ["alice"], leads: ["bob"] },
      admin_groups: ["leads"],
      domains: {
        cloud: {
          description: "AWS accounts",
          roles: {
            "aws-breakglass": {
              description: "The break-glass role in production",
              target: "aws-prod",
              grants: { role_arn: roleArn, max_session: "1h" },
              max_duration: "1h",
              approval: "1 of leads",
              requesters: ["oncall"],
            },
          },
        },
      },
      targets: { "aws-prod": { connector: "aws", settings: awsTargetSettings(fake) } },
    },
  });
  broker = t.broker;
});
afterAll(async () => {
  await t?.stop();
  await fake?.stop();
});

describe("broker with the aws connector", () => {
  it("hands out working keys, kills them at revoke, and reconciliation restores a removed deny", async () => {
    const g = await broker.service.request(ctx("alice"), {
      roleId: "cloud/aws-breakglass",
      justification: "CloudTrail stopped in prod",
      incident: "INC-8",
      durationS: 1800,
    });
    expect(await broker.service.approve(ctx("bob"), g.id, null)).toMatchObject({ state: "active", access: "granted" });
    const { token } = await broker.tokens.create(SYSTEM_CONTEXT, { user: "alice", description: "t" });
    const res = await broker.http.inject({
      method: "GET",
      url: `/api/v1/grants/${g.id}/credential`,
      headers: { authorization: `Bearer ${token.reveal()}` },
    });
    const credential = CredentialViewSchema.parse(res.json()).credential;
    expect(credential).toMatch(/^export AWS_SESSION_TOKEN=/m);
    const granted = { credential: new Redacted(credential), detail: {} };
    expect(await awsCanUse(fake, granted)).toBe(true);

    await broker.service.revoke(ctx("bob"), g.id, "trail restored");
    expect(await awsCanUse(fake, granted)).toBe(false);

    // Someone deletes the deny: the keys (valid for 30 minutes) would work again.
    fake.rolePolicies.get(AWS_ROLE)?.clear();
    expect(await awsCanUse(fake, granted)).toBe(true);
    const report = await broker.reconcile.runOnce();
    expect(report.fixed).toEqual([{ target: "aws-prod", grantId: g.id, kind: "access_not_revoked" }]);
    expect(await awsCanUse(fake, granted)).toBe(false);
  });
});
