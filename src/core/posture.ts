/**
 * Posture: is every break-glass role ready, rehearsed and accounted for? Pure: facts in (roles,
 * drills and their last runs, grants, alarm state), a verdict out — per role, a list of red and
 * amber items, each with the exact fix; overall, the worst of them.
 *
 * Red: no drill configured for a role, or none passed within 90 days (or the drill's own
 * `every`); the last drill failed; a review overdue; an active grant whose activation alarm no
 * security channel has delivered. Amber: reviews open but not yet due; a drill due within 7 days.
 */
import { type AlarmRouting, isUnalarmed } from "./alarm-routing.js";
import { awaitsReview } from "./grant-machine.js";
import type { Grant, RoleDef, VaultOpening } from "./model.js";
import type { AlarmRecord, DrillRun } from "./records.js";

export type PostureLevel = "green" | "amber" | "red";

export interface PostureItem {
  readonly level: "amber" | "red";
  readonly what: string;
  /** The exact thing to do about it. */
  readonly fix: string;
}

export interface RolePosture {
  readonly role: string;
  readonly status: PostureLevel;
  /** Last real (non-drill) activation. */
  readonly lastUse: number | null;
  readonly lastDrill: { readonly name: string; readonly at: number; readonly result: DrillRun["result"] } | null;
  readonly openReviews: number;
  readonly overdueReviews: number;
  readonly activeGrants: number;
  readonly items: readonly PostureItem[];
}

export interface Posture {
  readonly status: PostureLevel;
  readonly roles: readonly RolePosture[];
}

export interface PostureInput {
  readonly roles: readonly RoleDef[];
  /** Drills by role id: each configured drill with its interval and last finished run. */
  readonly drills: readonly {
    readonly name: string;
    readonly scenario: string;
    readonly roleId: string;
    readonly everyS: number;
    readonly lastRun: DrillRun | null;
  }[];
  /** Active grants and ended ones (a drill's ended grant awaits no review), plus each role's last use. */
  readonly grants: readonly Grant[];
  readonly lastUseByRole: ReadonlyMap<string, number>;
  readonly alarmsByGrant: ReadonlyMap<string, readonly AlarmRecord[]>;
  readonly routing: AlarmRouting;
  readonly unalarmedAfterMs: number;
}

const DAY_MS = 86_400_000;
/** A role not rehearsed within this long is red, whatever its drill's own interval. */
export const MAX_DRILL_AGE_MS = 90 * DAY_MS;
const DUE_SOON_MS = 7 * DAY_MS;

export const worstOf = (levels: readonly PostureLevel[]): PostureLevel =>
  levels.includes("red") ? "red" : levels.includes("amber") ? "amber" : "green";

export function assessPosture(input: PostureInput, now: number): Posture {
  const roles = input.roles.map((role): RolePosture => {
    const items: PostureItem[] = [];
    const drills = input.drills.filter((d) => d.roleId === role.id);
    const runs = drills
      .filter((d) => d.lastRun !== null && d.lastRun.result !== "running")
      .map((d) => ({ drill: d, run: d.lastRun as DrillRun }))
      .sort((a, b) => b.run.startedAt - a.run.startedAt);
    const last = runs[0] ?? null;
    if (drills.length === 0) {
      items.push({
        level: "red",
        what: "no drill rehearses this role",
        fix: `add a drill for ${role.id} under \`drills\` (see docs/drills.md) and run it: breakglass drill run NAME`,
      });
    } else {
      for (const d of drills) {
        const maxAge = Math.min(d.everyS * 1000, MAX_DRILL_AGE_MS);
        const run = d.lastRun && d.lastRun.result !== "running" ? d.lastRun : null;
        if (run === null) {
          items.push({ level: "red", what: `drill ${d.name} has never run`, fix: `breakglass drill run ${d.name}` });
        } else if (run.result === "failed") {
          const step = run.steps.find((s) => !s.ok);
          items.push({
            level: "red",
            what: `drill ${d.name} failed on ${new Date(run.startedAt).toISOString().slice(0, 10)} at "${step?.name ?? "?"}": ${step?.detail ?? ""}`,
            fix: `fix what the step names (docs/runbooks/drill-${d.scenario}.md), then breakglass drill run ${d.name}`,
          });
        } else if (now - run.startedAt > maxAge) {
          items.push({
            level: "red",
            what: `drill ${d.name} last passed ${Math.floor((now - run.startedAt) / DAY_MS)} days ago (due every ${Math.round(maxAge / DAY_MS)} days)`,
            fix: `breakglass drill run ${d.name}`,
          });
        } else if (now - run.startedAt > maxAge - DUE_SOON_MS) {
          items.push({
            level: "amber",
            what: `drill ${d.name} is due within ${Math.ceil((maxAge - (now - run.startedAt)) / DAY_MS)} days`,
            fix: `breakglass drill run ${d.name}`,
          });
        }
      }
    }

    const mine = input.grants.filter((g) => g.roleId === role.id);
    const awaiting = mine.filter(awaitsReview);
    const overdue = awaiting.filter((g) => g.reviewDueAt !== null && g.reviewDueAt < now);
    if (overdue.length > 0) {
      items.push({
        level: "red",
        what: `${overdue.length} review${overdue.length === 1 ? "" : "s"} overdue (${overdue.map((g) => g.id).join(", ")})`,
        fix: `breakglass reviews --overdue, then breakglass review GRANT for each`,
      });
    } else if (awaiting.length > 0) {
      items.push({
        level: "amber",
        what: `${awaiting.length} review${awaiting.length === 1 ? "" : "s"} open, not yet due`,
        fix: "breakglass reviews",
      });
    }
    const active = mine.filter((g) => g.state === "active");
    for (const g of active) {
      const alarms = input.alarmsByGrant.get(g.id) ?? [];
      if (isUnalarmed(alarms, input.routing, g.activatedAt, now, input.unalarmedAfterMs)) {
        items.push({
          level: "red",
          what: `grant ${g.id} is active and no security channel has delivered its activation alarm`,
          fix: `check the alarm channels (breakglass show ${g.id} lists each delivery and its error); revoke it if nobody knows of it: breakglass revoke ${g.id} --reason …`,
        });
      }
    }
    return {
      role: role.id,
      status: worstOf(items.map((i) => i.level)),
      lastUse: input.lastUseByRole.get(role.id) ?? null,
      lastDrill: last ? { name: last.drill.name, at: last.run.startedAt, result: last.run.result } : null,
      openReviews: awaiting.length,
      overdueReviews: overdue.length,
      activeGrants: active.length,
      items,
    };
  });
  return { status: worstOf(roles.map((r) => r.status)), roles };
}

/**
 * Tier-2 openings whose own alarm (told by the offline CLI) no endpoint has taken: red, whether
 * reviewed or not — an opening security was never told about is the quiet path tier 2 must not
 * have. Cleared by delivering it (`vault flush-alarms`) and importing the records again.
 */
export function assessVaultAlarms(openings: readonly VaultOpening[]): PostureItem[] {
  return openings
    .filter((o) => o.alarmPending)
    .map((o) => ({
      level: "red" as const,
      what: `tier-2 opening of envelope ${o.envelopeName} (${o.incident}) at ${new Date(o.openedAt).toISOString()}: its alarm was never delivered (no endpoint answered)`,
      fix: `tell security now; then breakglass vault flush-alarms <the ${o.envelopeName} envelope file> and vault import-record it again`,
    }));
}

/**
 * Tier-2 openings awaiting review: red once past their deadline, amber before — an envelope
 * opening nobody looked at is a break-glass use nobody reviewed.
 */
export function assessVaultReviews(openings: readonly VaultOpening[], now: number): PostureItem[] {
  return openings
    .filter((o) => o.review === null)
    .map((o) => ({
      level: o.reviewDueAt < now ? ("red" as const) : ("amber" as const),
      what: `tier-2 opening of envelope ${o.envelopeName} (${o.incident}) ${o.reviewDueAt < now ? "is overdue for its review" : "awaits its review"}`,
      fix: `breakglass review ${o.id} --outcome … --notes …`,
    }));
}
