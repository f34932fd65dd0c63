/**
 * Every query service the API reads through, built at once over one store (by the composition
 * root, which alone holds the whole store): each takes only the read ports it declares.
 */
import type { SigningKey } from "../audit/signing-key.js";
import type { AppConfig } from "../config/app-config.js";
import type { Policy } from "../core/model.js";
import type { Clock, Sha256 } from "../core/ports/runtime.js";
import { type AuditQueries, type AuditQueriesDeps, createAuditQueries } from "./audit-queries.js";
import { type BrokerQueries, createBrokerQueries } from "./broker-queries.js";
import { createDrillQueries, type DrillQueries, type DrillQueriesDeps } from "./drill-queries.js";
import { createGrantQueries, type GrantQueries, type GrantQueriesDeps } from "./grant-queries.js";
import { createReviewQueries, type ReviewQueries, type ReviewQueriesDeps } from "./review-queries.js";

export interface ApiQueries {
  readonly grants: GrantQueries;
  readonly reviews: ReviewQueries;
  readonly audit: AuditQueries;
  readonly drills: DrillQueries;
  readonly broker: BrokerQueries;
}

export function createApiQueries(deps: {
  readonly config: AppConfig;
  /** The live policy (configured + IdP-derived membership). */
  readonly policy: Policy;
  readonly clock: Clock;
  readonly sha256: Sha256;
  readonly signingKey: Pick<SigningKey, "keyId" | "publicKeyPem">;
  readonly vault?: ReviewQueriesDeps["vault"];
  readonly store: GrantQueriesDeps["store"] &
    ReviewQueriesDeps["store"] &
    AuditQueriesDeps["store"] &
    DrillQueriesDeps["store"] &
    Parameters<typeof createBrokerQueries>[0]["store"];
}): ApiQueries {
  const { config, policy, clock, store } = deps;
  return {
    grants: createGrantQueries({ policy, alarms: config.alarms, clock, store }),
    reviews: createReviewQueries({ policy, clock, sha256: deps.sha256, store, vault: deps.vault }),
    audit: createAuditQueries({ policy, signingKey: deps.signingKey, store }),
    drills: createDrillQueries({ config, policy, drills: config.drills, alarms: config.alarms, clock, store }),
    broker: createBrokerQueries({ store }),
  };
}
