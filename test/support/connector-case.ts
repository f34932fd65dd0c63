/**
 * One connector under the contract suite (test/connector-contract.test.ts): how to start its
 * real target, make a connector against it, count the principals that exist there, and check that
 * a credential really gets in.
 */
import type { RoleDef, TargetDef } from "../../src/core/model.js";
import type { Connector, ConnectorGrantFacts, ConnectorResult } from "../../src/core/ports/connector.js";

/**
 * For targets where principals cannot be listed (certificates, STS sessions): remember every
 * credential `grant` hands out (the latest per grant) and count how many still get in, for real.
 */
export function trackIssued(
  connector: Connector,
  canUse: (granted: ConnectorResult) => Promise<boolean>,
): { connector: Connector; principals(): Promise<number> } {
  const issued = new Map<string, ConnectorResult>();
  return {
    connector: {
      ...connector,
      async grant(facts, handle) {
        const granted = await connector.grant(facts, handle);
        issued.set(facts.grantId, granted);
        return granted;
      },
    },
    async principals() {
      let n = 0;
      for (const g of issued.values()) if (await canUse(g)) n++;
      return n;
    },
  };
}

export interface ConnectorEnv {
  readonly connector: Connector;
  /** The role the grants in the suite are for (its `grants` are connector-specific). */
  readonly role: RoleDef;
  readonly target: TargetDef;
  /** How many principals made by this connector exist at the target now. */
  principals(): Promise<number>;
  /** Does the access `grant` returned actually work at the target right now? */
  canUse(facts: ConnectorGrantFacts, granted: ConnectorResult): Promise<boolean>;
  tearDown(): Promise<void>;
}

export interface ConnectorCase {
  readonly name: string;
  /** Start shared servers once for the suite (PostgreSQL, sshd, the fake AWS endpoint). */
  start?(): Promise<void>;
  stop?(): Promise<void>;
  /** A connector against a clean target. */
  setUp(): Promise<ConnectorEnv>;
}

export const contractRole = (target: string, grants: Readonly<Record<string, unknown>>): RoleDef => ({
  id: "production/recovery",
  domain: "production",
  name: "recovery",
  description: "",
  target,
  grants,
  defaultDurationS: 1800,
  maxDurationS: 3600,
  approval: { anyOf: [[{ group: "leads", count: 2 }]] },
  requesters: ["oncall"],
  emergencyAllowed: false,
  reviewDeadlineS: 86_400,
  endingWarningS: 600,
  alarmSeverity: "warning",
  justificationMinLength: 10,
  incidentPattern: "INC-[0-9]+",
  approvalTimeoutS: 3600,
  activationTimeoutS: 900,
  autoActivate: true,
});
