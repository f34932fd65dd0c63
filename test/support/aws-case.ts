/** The aws connector in the contract suite, against the local AWS endpoint (test/support/fake-aws.ts). */

import { GetRoleCommand, IAMClient } from "@aws-sdk/client-iam";
import { systemClock } from "../../src/adapters/system-clock.js";
import { awsSettingsSchema, createAwsConnector } from "../../src/connectors/aws-connector.js";
import type { Connector, ConnectorResult } from "../../src/core/ports/connector.js";
import { createSecretResolver } from "../../src/secrets/secret-ref.js";
import { type ConnectorCase, contractRole, trackIssued } from "./connector-case.js";
import { BROKER_KEY, type FakeAws, startFakeAws } from "./fake-aws.js";

export const AWS_ROLE = "BreakGlassEmergency";

/** The keys in a credential text. */
export function parseAwsCredential(text: string): {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken: string;
} {
  const get = (name: string) => new RegExp(`^export ${name}=(.+)$`, "m").exec(text)?.[1] ?? "";
  return {
    accessKeyId: get("AWS_ACCESS_KEY_ID"),
    secretAccessKey: get("AWS_SECRET_ACCESS_KEY"),
    sessionToken: get("AWS_SESSION_TOKEN"),
  };
}

/** The environment the settings' credentials name: the broker's own keys at the local endpoint. */
export const AWS_ENV = { AK: BROKER_KEY.accessKeyId, SK: BROKER_KEY.secretAccessKey };

/** An aws target's settings against the local endpoint (credentials from {@link AWS_ENV}). */
export function awsTargetSettings(fake: FakeAws, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    region: "eu-central-1",
    credentials: { access_key_id: { env: "AK" }, secret_access_key: { env: "SK" } },
    sts_endpoint: fake.stsEndpoint,
    iam_endpoint: fake.iamEndpoint,
    federation_endpoint: fake.federationEndpoint,
    ...extra,
  };
}

export function awsConnector(fake: FakeAws, extra: Record<string, unknown> = {}): Connector {
  return createAwsConnector(awsSettingsSchema.parse(awsTargetSettings(fake, { timeout: "5s", ...extra })), {
    baseDir: "/",
    clock: systemClock,
    resolveSecret: createSecretResolver({ baseDir: "/", env: AWS_ENV, box: null }),
    log: () => {},
    targetName: "aws-prod",
  });
}

/** A real SDK call with the temporary keys, subject to the role's policies: does it get through? */
export async function awsCanUse(fake: FakeAws, granted: ConnectorResult): Promise<boolean> {
  const keys = parseAwsCredential(granted.credential?.reveal() ?? "");
  const client = new IAMClient({
    region: "eu-central-1",
    endpoint: fake.iamEndpoint,
    credentials: keys,
    maxAttempts: 1,
  });
  try {
    await client.send(new GetRoleCommand({ RoleName: AWS_ROLE }));
    return true;
  } catch (e) {
    if (["AccessDenied", "AccessDeniedException", "ExpiredToken", "ExpiredTokenException"].includes((e as Error).name))
      return false;
    throw e;
  } finally {
    client.destroy();
  }
}

let fake: FakeAws | null = null;

export const awsConnectorCase: ConnectorCase = {
  name: "aws (real SDK against a local STS/IAM endpoint)",
  async start() {
    fake = await startFakeAws();
  },
  async stop() {
    await fake?.stop();
    fake = null;
  },
  async setUp() {
    if (!fake) throw new Error("fake AWS not started");
    const f = fake;
    f.rolePolicies.clear();
    f.sessions.clear();
    const roleArn = f.addRole(AWS_ROLE, 3600);
    const connector = awsConnector(f);
    const tracked = trackIssued(connector, (g) => awsCanUse(f, g));
    return {
      connector: tracked.connector,
      role: contractRole("aws-prod", { role_arn: roleArn }),
      target: { name: "aws-prod", connector: "aws", settings: {} },
      principals: tracked.principals,
      canUse: (_facts, granted) => awsCanUse(f, granted),
      tearDown: async () => connector.close?.(),
    };
  },
};
