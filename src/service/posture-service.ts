/**
 * Gathers the facts posture is judged on (src/core/posture.ts): active grants and ended ones
 * awaiting review, each role's last real use, each drill's last finished run, and the alarms of
 * active grants — plus the break-glass credentials' rotation (src/service/rotation.ts), which
 * turn the overall status red when any is overdue.
 */
import type { AlarmsConfig, DrillDef } from "../config/app-config.js";
import type { Policy } from "../core/model.js";
import type { AlarmReads } from "../core/ports/alarms.js";
import type { EvidenceReads } from "../core/ports/evidence.js";
import type { GrantReads } from "../core/ports/grants.js";
import {
  assessPosture,
  assessVaultAlarms,
  assessVaultReviews,
  type Posture,
  type PostureItem,
  worstOf,
} from "../core/posture.js";
import type { AlarmRecord } from "../core/records.js";
import type { RotationRow } from "./rotation.js";

/** What posture reads: grants, drill runs and tier-2 openings, the alarms of active grants. */
export type PostureReads = Pick<GrantReads, "listGrants"> &
  Pick<EvidenceReads, "listDrillRuns" | "listVaultOpenings"> &
  Pick<AlarmReads, "listAlarms">;

export async function collectPosture(
  store: PostureReads,
  policy: Policy,
  drills: readonly DrillDef[],
  alarms: Pick<AlarmsConfig, "routing" | "unalarmedAfterMs">,
  now: number,
  credentials: readonly RotationRow[] = [],
): Promise<Posture & { readonly credentials: readonly RotationRow[]; readonly vault: readonly PostureItem[] }> {
  const roles = [...policy.roles.values()];
  const grants = await store.listGrants({ states: ["active", "ended"], limit: 5000 });
  const lastUseByRole = new Map<string, number>();
  for (const role of roles) {
    const recent = await store.listGrants({ roleId: role.id, states: ["active", "ended", "reviewed"], limit: 50 });
    const used = recent.find((g) => g.activatedAt !== null && g.drill !== true);
    if (used?.activatedAt != null) lastUseByRole.set(role.id, used.activatedAt);
  }
  const drillFacts = await Promise.all(
    drills.map(async (d) => ({
      name: d.name,
      scenario: d.scenario,
      roleId: d.roleId,
      everyS: d.everyS,
      lastRun: (await store.listDrillRuns(d.name, 10)).find((r) => r.result !== "running") ?? null,
    })),
  );
  const alarmsByGrant = new Map<string, readonly AlarmRecord[]>();
  for (const g of grants.filter((x) => x.state === "active")) alarmsByGrant.set(g.id, await store.listAlarms(g.id));
  const posture = assessPosture(
    {
      roles,
      drills: drillFacts,
      grants,
      lastUseByRole,
      alarmsByGrant,
      routing: alarms.routing,
      unalarmedAfterMs: alarms.unalarmedAfterMs,
    },
    now,
  );
  const vault = [
    ...assessVaultAlarms(await store.listVaultOpenings(false)),
    ...assessVaultReviews(await store.listVaultOpenings(true), now),
  ];
  const status = worstOf([
    posture.status,
    credentials.some((c) => c.overdue) ? "red" : "green",
    ...vault.map((i) => i.level),
  ]);
  return { ...posture, status, credentials, vault };
}
