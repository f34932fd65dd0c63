/**
 * The broker's own state as the API reads it: whether the store answers (the probes), the counts
 * the metrics endpoint exports, and a web session by id (how the caller is signed in).
 */
import type { SessionReads } from "../core/ports/auth.js";
import type { StoreStats } from "../core/ports/broker-state.js";
import type { GrantReads } from "../core/ports/grants.js";
import type { WebSession } from "../core/records.js";

export interface BrokerQueries {
  /** Resolves when the store answers a cheap read. @throws ERR_STORAGE */
  ping(): Promise<void>;
  /** Counts for monitoring: active grants by role, alarms by channel and state, failing revocations. */
  stats: StoreStats["stats"];
  webSession(id: string): Promise<WebSession | null>;
}

export function createBrokerQueries(deps: {
  readonly store: Pick<GrantReads, "nextDueAt"> & StoreStats & Pick<SessionReads, "findWebSession">;
}): BrokerQueries {
  const { store } = deps;
  return {
    async ping() {
      await store.nextDueAt();
    },
    stats: () => store.stats(),
    webSession: (id) => store.findWebSession(id),
  };
}
