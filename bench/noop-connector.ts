import type { Connector } from "../src/core/ports/connector.js";

/**
 * A target that does nothing and answers at once: benchmarks that use it measure the broker
 * (claiming, transitions, audit, bookkeeping), not a target.
 */
export const noopConnector: Connector = {
  plan: (facts) => ({ principal: `bg_${facts.grantId}` }),
  grant: async () => ({ credential: null, detail: {} }),
  revoke: async () => ({ credential: null, detail: {} }),
  verify: async () => ({ revoked: true, detail: {} }),
};
