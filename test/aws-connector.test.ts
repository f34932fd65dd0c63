/**
 * The aws connector's request/response contract, with the real AWS SDK against the local endpoint
 * (AWS itself is unreachable here): the exact AssumeRole parameters, the credential and console
 * link, revocation that kills issued credentials at once but only the revoked grant's, the deny
 * document's size and pruning, error mapping, and signatures that are really checked.
 */
import { GetCallerIdentityCommand, STSClient } from "@aws-sdk/client-sts";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { addRevocation, isRevokedIn } from "../src/connectors/aws-connector.js";
import type { Connector, ConnectorGrantFacts } from "../src/core/ports/connector.js";
import { AWS_ROLE, awsCanUse, awsConnector, parseAwsCredential } from "./support/aws-case.js";
import { contractRole } from "./support/connector-case.js";
import { ACCOUNT, BROKER_KEY, type FakeAws, startFakeAws } from "./support/fake-aws.js";

let fake: FakeAws;
let connector: Connector;
let roleArn: string;
beforeAll(async () => {
  fake = await startFakeAws();
});
afterAll(async () => fake?.stop());
beforeEach(() => {
  fake.requests.length = 0;
  fake.rolePolicies.clear();
  roleArn = fake.addRole(AWS_ROLE, 4 * 3600);
  connector = awsConnector(fake);
});

const facts = (grantId: string, endsInS = 1800, grants: Record<string, unknown> = {}): ConnectorGrantFacts => ({
  grantId,
  requester: "alice@example.com",
  role: contractRole("aws-prod", { role_arn: roleArn, max_session: "4h", ...grants }),
  target: { name: "aws-prod", connector: "aws", settings: {} },
  incident: "INC-77 <db>",
  justification: "restore the trail",
  endsAt: Date.now() + endsInS * 1000,
});

const assumeCalls = () => fake.requests.filter((r) => r.action === "AssumeRole");

describe("aws connector", () => {
  it("assumes the role with the window as duration, the user as source identity and the grant as tags", async () => {
    const f = facts("g_one", 1800);
    const granted = await connector.grant(f, connector.plan(f));
    const [call] = assumeCalls();
    expect(call?.accessKeyId).toBe(BROKER_KEY.accessKeyId);
    expect(call?.params).toMatchObject({
      RoleArn: roleArn,
      RoleSessionName: "bg-g_one",
      SourceIdentity: "alice@example.com",
      "Tags.member.1.Key": "breakglass-grant",
      "Tags.member.1.Value": "g_one",
      "Tags.member.2.Key": "breakglass-incident",
      "Tags.member.2.Value": "INC-77 _db_",
    });
    expect(Number(call?.params.DurationSeconds)).toBeGreaterThanOrEqual(1799);
    expect(Number(call?.params.DurationSeconds)).toBeLessThanOrEqual(1800);
    expect(granted.detail).toMatchObject({
      roleArn,
      sessionName: "bg-g_one",
      assumedRoleArn: `arn:aws:sts::${ACCOUNT}:assumed-role/${AWS_ROLE}/bg-g_one`,
      sourceIdentity: "alice@example.com",
      outlivesGrant: false,
    });
    // The credential works with the real SDK, and its secret parts are in the credential only.
    const keys = parseAwsCredential(granted.credential?.reveal() ?? "");
    expect(keys.accessKeyId).toMatch(/^ASIA/);
    expect(await awsCanUse(fake, granted)).toBe(true);
    const detail = JSON.stringify(granted.detail);
    expect(detail).not.toContain(keys.secretAccessKey);
    expect(detail).not.toContain(keys.sessionToken);
  });

  it("clamps the duration to STS's 15 minutes and the role's maximum, and says when the keys outlive the grant", async () => {
    const short = facts("g_short", 120);
    const s = await connector.grant(short, connector.plan(short));
    expect(assumeCalls().at(-1)?.params.DurationSeconds).toBe("900");
    expect(s.detail).toMatchObject({ durationS: 900, outlivesGrant: true });
    const long = facts("g_long", 10 * 3600);
    await connector.grant(long, connector.plan(long));
    expect(assumeCalls().at(-1)?.params.DurationSeconds).toBe(String(4 * 3600));
  });

  it("builds a console sign-in link from the federation endpoint's token", async () => {
    const f = facts("g_console");
    const granted = await connector.grant(f, connector.plan(f));
    const text = granted.credential?.reveal() ?? "";
    const url = new URL(/^# console: (.+)$/m.exec(text)?.[1] ?? "");
    expect(url.searchParams.get("Action")).toBe("login");
    expect(url.searchParams.get("Destination")).toBe("https://console.aws.amazon.com/");
    expect(url.searchParams.get("SigninToken")).toMatch(/^token-/);
    const federation = fake.requests.find((r) => r.service === "federation");
    expect(federation?.action).toBe("getSigninToken");
  });

  it("revokes at once: issued keys are denied, another grant's keys on the same role keep working", async () => {
    const [a, b] = [facts("g_a"), facts("g_b")];
    const ga = await connector.grant(a, connector.plan(a));
    const gb = await connector.grant(b, connector.plan(b));
    await connector.revoke(a, connector.plan(a));
    expect(await awsCanUse(fake, ga)).toBe(false);
    expect(await awsCanUse(fake, gb)).toBe(true);
    const doc = JSON.parse(fake.rolePolicies.get(AWS_ROLE)?.get("BreakglassRevokedGrants") ?? "{}");
    expect(doc.Statement[0]).toMatchObject({
      Effect: "Deny",
      Action: "*",
      Resource: "*",
      Condition: { StringEquals: { "aws:PrincipalTag/breakglass-grant": ["g_a"] }, DateLessThan: {} },
    });
    expect((await connector.verify(a, connector.plan(a))).revoked).toBe(true);
    expect((await connector.verify(b, connector.plan(b))).revoked).toBe(false);
    const again = await connector.revoke(a, connector.plan(a));
    expect(again.detail).toMatchObject({ alreadyRevoked: true });
  });

  it("keeps the deny document under IAM's limit for 300 revoked grants, and prunes what no credential can outlive", () => {
    let doc: ReturnType<typeof addRevocation> | null = null;
    const t0 = Date.UTC(2026, 10, 22, 10, 0, 0);
    for (let i = 0; i < 300; i++) doc = addRevocation(doc, `g_${"x".repeat(20)}${i}`, new Date(t0 + i * 60_000));
    expect(JSON.stringify(doc).length).toBeLessThan(10_240);
    expect(doc?.Statement).toHaveLength(5); // five hour buckets
    expect(isRevokedIn(doc, `g_${"x".repeat(20)}0`)).toBe(true);
    const later = addRevocation(doc, "g_new", new Date(t0 + 20 * 3600_000));
    expect(isRevokedIn(later, `g_${"x".repeat(20)}0`)).toBe(false);
    expect(later.Statement).toHaveLength(1);
  });

  it("maps AWS errors to ERR_CONNECTOR_FAILED with the AWS code and what to check", async () => {
    fake.failNext("AssumeRole", "AccessDenied", 403);
    const f = facts("g_err");
    await expect(connector.grant(f, connector.plan(f))).rejects.toMatchObject({
      code: "ERR_CONNECTOR_FAILED",
      message: expect.stringMatching(/sts:AssumeRole\) failed: AccessDenied: .*check the role's trust policy/),
    });
    fake.failNext("PutRolePolicy", "Throttling", 400, 5);
    await expect(connector.revoke(f, connector.plan(f))).rejects.toThrow(
      /Throttling.*AWS is throttling, the broker retries/,
    );
    const unknownRole = facts("g_nr", 1800, { role_arn: `arn:aws:iam::${ACCOUNT}:role/Nope` });
    await expect(connector.grant(unknownRole, connector.plan(unknownRole))).rejects.toThrow(/AccessDenied/);
  });

  it("really checks signatures: a wrong secret key is refused", async () => {
    const client = new STSClient({
      region: "eu-central-1",
      endpoint: fake.stsEndpoint,
      credentials: { accessKeyId: BROKER_KEY.accessKeyId, secretAccessKey: "wrong" },
      maxAttempts: 1,
    });
    await expect(client.send(new GetCallerIdentityCommand({}))).rejects.toMatchObject({
      name: "SignatureDoesNotMatch",
    });
    client.destroy();
    const wrong = awsConnector(fake, {
      credentials: { access_key_id: { env: "AK" }, secret_access_key: { env: "AK" } },
    });
    const f = facts("g_sig");
    await expect(wrong.grant(f, wrong.plan(f))).rejects.toThrow(/SignatureDoesNotMatch/);
  });

  it("rejects role grants that are not for aws, naming the role", async () => {
    const f = { ...facts("g_bad"), role: contractRole("aws-prod", { role_arn: "BreakGlass" }) };
    expect(() => connector.plan(f)).toThrow(/grants for an aws target must be like/);
  });
});
