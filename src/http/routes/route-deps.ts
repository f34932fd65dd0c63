/** What the route modules are built from: services, the query services, the live policy and clock. */
import type { ChannelHealth } from "../../alarms/alarm-channel.js";
import type { Policy } from "../../core/model.js";
import type { Clock } from "../../core/ports/runtime.js";
import type { ApiQueries } from "../../service/api-queries.js";
import type { DrillService } from "../../service/drill-service.js";
import type { GrantService } from "../../service/grant-service.js";
import type { TerminalService } from "../../service/terminal-service.js";
import type { TokenService } from "../../service/token-service.js";
import type { VaultService } from "../../service/vault-service.js";
import type { DetectorWorker } from "../../workers/detector-worker.js";
import type { ReconcileWorker } from "../../workers/reconcile-worker.js";
import type { AuthRouteDeps } from "./auth.js";

export interface RouteDeps {
  readonly service: GrantService;
  /** The read side: grants, reviews, the audit log, drills, the broker's own state. */
  readonly queries: ApiQueries;
  readonly tokens: TokenService;
  readonly clock: Clock;
  /** The live policy (configured + IdP-derived membership). */
  readonly policy: Policy;
  readonly reconcile?: ReconcileWorker | undefined;
  readonly detector?: DetectorWorker | undefined;
  readonly terminal?: TerminalService | undefined;
  readonly drills?: DrillService | undefined;
  /** Tier-2 openings' reviews (`/vault-openings`). */
  readonly vault?: VaultService | undefined;
  /** The OpenAPI document of the whole table (built by the server, which holds the table). */
  readonly openapi: () => Record<string, unknown>;
  /** Whether this broker's background work runs: `starting`, `running` or `stopping`. */
  readonly readiness?: (() => "starting" | "running" | "stopping") | undefined;
  /** The alarm channels' health (the alarm worker's view). */
  readonly alarmChannels?: (() => readonly ChannelHealth[]) | undefined;
  /** Sessions, factors, the IdP and the fallback login; their routes are not registered without. */
  readonly auth?: AuthRouteDeps | undefined;
}
