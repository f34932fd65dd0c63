/**
 * Reconciliation: every `intervalMs`, compare each target's real state with the broker's records.
 *
 * 1. Leftovers: principals a connector created (its `inventory`) whose grant no longer holds
 *    access (`none`/`revoked`) are revoked again — a `bg_` role someone re-created, a drop that
 *    was undone by a restore. Grants whose access is being granted or revoked are left to the
 *    activation and the expiry worker.
 * 2. Recently ended grants (younger than `lookbackMs`) are verified at their target; access still
 *    there (a certificate missing from the KRL, a deny policy removed) is revoked again.
 * 3. Standing privilege made outside Breakglass (e.g. a permanent member of a recovery role) is
 *    reported, never changed; each item once per broker run while it persists.
 * Everything found is an audit event: `target.drift_fixed` or `target.drift_reported`.
 */

import type { AuditAppender, AuditTx } from "../audit/audit-journal.js";
import { type AuditEventDraft, nonGrantEvent } from "../core/audit-event.js";
import { requireAdmin } from "../core/authorization.js";
import { grantEvent } from "../core/grant-machine.js";
import type { Grant, Policy } from "../core/model.js";
import type { Connector, DriftItem } from "../core/ports/connector.js";
import type { GrantReads } from "../core/ports/grants.js";
import type { Clock } from "../core/ports/runtime.js";
import type { Transactions } from "../core/ports/transactions.js";
import type { RequestContext } from "../core/request-context.js";
import type { TargetAccess } from "../service/target-access.js";
import { createLoop } from "./loop.js";

export interface ReconcileWorkerDeps {
  /** Who is an admin (only admins ask for a pass: {@link ReconcileWorker.runNow}). */
  readonly policy: Pick<Policy, "groups" | "adminGroups">;
  readonly store: Transactions<AuditTx> & Pick<GrantReads, "getGrant" | "listGrants">;
  readonly audit: AuditAppender;
  readonly access: TargetAccess;
  readonly connectors: ReadonlyMap<string, Connector>;
  readonly clock: Clock;
  readonly intervalMs: number;
  readonly lookbackMs: number;
  readonly log: (msg: string, fields?: Record<string, unknown>) => void;
}

export interface ReconcileReport {
  /** Access found and removed again. */
  readonly fixed: readonly { readonly target: string; readonly grantId: string; readonly kind: string }[];
  /** Drift reported (standing privilege, principals of unknown grants). */
  readonly reported: readonly ({ readonly target: string } & DriftItem)[];
  /** Targets or grants that could not be checked, with why. */
  readonly errors: readonly { readonly target: string; readonly grantId: string | null; readonly error: string }[];
  readonly checkedGrants: number;
}

export interface ReconcileWorker {
  /** One full pass over every target; never throws for a target's failure (it is in `errors`). */
  runOnce(): Promise<ReconcileReport>;
  /**
   * A pass asked for by someone (`POST /reconcile`): admins only; otherwise as {@link runOnce}.
   * @throws ERR_FORBIDDEN when `ctx.actor` is not an admin
   */
  runNow(ctx: RequestContext): Promise<ReconcileReport>;
  start(): void;
  stop(): Promise<void>;
}

const LIVE_ACCESS = new Set(["granting", "granted", "revoking"]);

export function createReconcileWorker(deps: ReconcileWorkerDeps): ReconcileWorker {
  const { store, audit, access, connectors, clock } = deps;
  /** Drift already reported in this broker run, so a standing grant is not an event every 5 minutes. */
  const reportedBefore = new Set<string>();

  const record = (drafts: AuditEventDraft[]) =>
    drafts.length === 0 ? Promise.resolve() : store.transaction((tx) => audit.append(tx, drafts)).then(() => {});

  const targetEvent = (target: string, data: Record<string, unknown>): AuditEventDraft =>
    nonGrantEvent("target.drift_reported", "system", clock.now(), data, target);

  const errorText = (e: unknown) => (e instanceof Error ? e.message : String(e));

  const pass = async (): Promise<ReconcileReport> => {
    const fixed: { target: string; grantId: string; kind: string }[] = [];
    const reported: ({ target: string } & DriftItem)[] = [];
    const errors: { target: string; grantId: string | null; error: string }[] = [];
    const events: AuditEventDraft[] = [];
    let checkedGrants = 0;

    const fix = async (grant: Grant, kind: string, handle?: Readonly<Record<string, unknown>>) => {
      checkedGrants++;
      try {
        const outcome = await access.recheck(grant, handle);
        if (!outcome.present) return;
        fixed.push({ target: grant.target, grantId: grant.id, kind });
        events.push(
          grantEvent(grant, "target.drift_fixed", "system", clock.now(), {
            kind,
            found: outcome.found,
            revoke: outcome.revoke,
          }),
        );
      } catch (e) {
        errors.push({ target: grant.target, grantId: grant.id, error: errorText(e) });
      }
    };

    // 1 and 3: what each target holds.
    const checked = new Set<string>();
    for (const [target, connector] of connectors) {
      if (!connector.inventory) continue;
      let inventory: Awaited<ReturnType<NonNullable<Connector["inventory"]>>>;
      try {
        inventory = await connector.inventory();
      } catch (e) {
        errors.push({ target, grantId: null, error: errorText(e) });
        continue;
      }
      for (const item of inventory.managed) {
        const grant = await store.getGrant(item.grantId);
        if (!grant || grant.target !== target) {
          reported.push({
            target,
            kind: "unknown_managed_principal",
            principal: String(item.handle.principal ?? item.grantId),
            description: `${String(item.handle.principal ?? item.grantId)} on ${target} looks like a Breakglass principal, but no grant ${item.grantId} of this target exists; remove it by hand if nobody knows it`,
          });
          continue;
        }
        if (LIVE_ACCESS.has(grant.access)) continue;
        checked.add(grant.id);
        await fix(grant, "leftover_principal", item.handle);
      }
      for (const item of inventory.drift) reported.push({ target, ...item });
    }

    // 2: recently ended grants, verified at their target.
    const ended = await store.listGrants({
      states: ["ended", "reviewed"],
      endedAfter: clock.now() - deps.lookbackMs,
      limit: 10_000,
    });
    for (const grant of ended) {
      if (grant.access !== "revoked" || checked.has(grant.id) || !connectors.has(grant.target)) continue;
      await fix(grant, "access_not_revoked");
    }

    const current = new Set<string>();
    for (const r of reported) {
      const key = `${r.target}\u0000${r.kind}\u0000${r.principal}`;
      current.add(key);
      if (!reportedBefore.has(key))
        events.push(targetEvent(r.target, { kind: r.kind, principal: r.principal, description: r.description }));
    }
    reportedBefore.clear();
    for (const k of current) reportedBefore.add(k);

    await record(events);
    for (const e of errors) deps.log("reconciliation could not check", e);
    return { fixed, reported, errors, checkedGrants };
  };

  // One pass at a time; a caller during a pass gets that pass's report.
  const loop = createLoop({ name: "reconciliation", run: pass, intervalMs: deps.intervalMs, log: deps.log });

  return {
    runOnce: loop.runOnce,
    runNow: async (ctx) => {
      requireAdmin(deps.policy, ctx.actor, "reconciliation");
      return loop.runOnce();
    },
    start: loop.start,
    stop: loop.stop,
  };
}
