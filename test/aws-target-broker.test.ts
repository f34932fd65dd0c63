/**
 * The broker with the aws connector, end to end against the local STS/IAM endpoint (AWS itself
 * is unreachable here; see README): temporary keys through the API, revoked at once by the
 * per-grant deny, and a deny removed by someone is written again by reconciliation.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { silentLogger } from "../src/adapters/logger.js";
import { type Broker, createBroker } from "../src/app.js";
import { loadConfigFile } from "../src/config/load-config.js";
import { connectorConfigChecks } from "../src/connectors/registry.js";
import { CredentialViewSchema } from "../src/contract/api.js";
import { Redacted } from "../src/core/redacted.js";
import { SYSTEM_CONTEXT } from "../src/core/request-context.js";
import { AWS_ROLE, awsCanUse } from "./support/aws-case.js";
import { ctx } from "./support/ctx.js";
import { BROKER_KEY, type FakeAws, startFakeAws } from "./support/fake-aws.js";

let fake: FakeAws;
let dir: string;
let broker: Broker;

beforeAll(async () => {
  fake = await startFakeAws();
  const roleArn = fake.addRole(AWS_ROLE, 3600);
  dir = mkdtempSync(join(tmpdir(), "bg-aws-broker-"));
  writeFileSync(
    join(dir, "breakglass.yaml"),
    `version: 1
server: { host: 127.0.0.1, port: 0 }
storage: { driver: sqlite, path: ./breakglass.db }
audit: { signing_key_file: ./audit-signing.pem, generate_key_if_missing: true }
secrets: { key_file: ./secrets.key, generate_key_if_missing: true }
users: { alice: { name: Alice }, bob: { name: Bob } }
groups: { oncall: [alice], leads: [bob] }
admin_groups: [leads]
domains:
  cloud:
    description: AWS accounts
    roles:
      aws-breakglass:
        description: The break-glass role in production
        target: aws-prod
        grants: { role_arn: "${roleArn}", max_session: 1h }
        max_duration: 1h
        approval: "1 of leads"
        requesters: [oncall]
targets:
  aws-prod:
    connector: aws
    settings:
      region: eu-central-1
      credentials: { access_key_id: { env: AK }, secret_access_key: { env: SK } }
      sts_endpoint: ${fake.stsEndpoint}
      iam_endpoint: ${fake.iamEndpoint}
      federation_endpoint: ${fake.federationEndpoint}
`,
  );
  const env = { AK: BROKER_KEY.accessKeyId, SK: BROKER_KEY.secretAccessKey };
  const config = loadConfigFile(join(dir, "breakglass.yaml"), { ...connectorConfigChecks, env });
  broker = await createBroker(config, { log: silentLogger, env });
  await broker.start();
});
afterAll(async () => {
  await broker?.stop();
  await fake?.stop();
  rmSync(dir, { recursive: true, force: true });
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
