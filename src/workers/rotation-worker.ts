/**
 * Rotation, run by the broker: every `intervalMs`, every break-glass credential's age is checked
 * against `rotation.max_age` (src/service/rotation.ts).
 *
 * 1. Targets under `rotation.auto` that are due are rotated (a postgres admin password: new
 *    verifier, proven by a new login, then saved). One replica at a time: a lease in the broker's
 *    state, taken under the row's lock, so two replicas never change the same password at once.
 *    A failed rotation is `credential.rotation_failed` (critical; the old password still works).
 * 2. Every credential still overdue raises `credential.rotation_overdue` — once a day per
 *    credential across all replicas (a marker in the broker's state, swapped under lock), always
 *    to the security channels, with the command that fixes it. Not one that another replica is
 *    rotating at that moment (it holds the lease): its outcome is that replica's to report.
 */

import type { AuditAppender, AuditTx } from "../audit/audit-journal.js";
import { nonGrantEvent } from "../core/audit-event.js";
import type { StateWrites } from "../core/ports/broker-state.js";
import type { Clock } from "../core/ports/runtime.js";
import type { Transactions } from "../core/ports/transactions.js";
import type { RotationRow } from "../service/rotation.js";
import { createLoop } from "./loop.js";

const DAY_MS = 86_400_000;

export interface RotationWorkerDeps {
  /** Leases and alarm markers are named state, swapped under their row's lock. */
  readonly store: Transactions<StateWrites & AuditTx>;
  readonly audit: AuditAppender;
  readonly clock: Clock;
  readonly intervalMs: number;
  /** Targets the broker rotates itself when due. */
  readonly auto: readonly string[];
  readonly status: (now: number) => Promise<RotationRow[]>;
  readonly rotate: (target: string) => Promise<unknown>;
  /** This broker process (the lease holder's name). */
  readonly replicaId: string;
  /** How long a rotation may hold its lease (ms). */
  readonly leaseMs?: number;
  readonly log: (msg: string, fields?: Record<string, unknown>) => void;
}

export interface RotationReport {
  readonly rotated: readonly string[];
  readonly failed: readonly { readonly target: string; readonly error: string }[];
  /** Credentials an overdue alarm was raised for in this pass. */
  readonly alarmed: readonly string[];
  /** Credentials overdue after this pass. */
  readonly overdue: readonly string[];
}

export interface RotationWorker {
  runOnce(): Promise<RotationReport>;
  start(): void;
  stop(): Promise<void>;
}

export function createRotationWorker(deps: RotationWorkerDeps): RotationWorker {
  const { store, audit, clock } = deps;
  const leaseMs = deps.leaseMs ?? 10 * 60_000;

  /** Take the lease on rotating `key`; false while another replica holds it. */
  const takeLease = (key: string, now: number): Promise<boolean> =>
    store.transaction(async (tx) => {
      const mine = JSON.stringify({ holder: deps.replicaId, until: now + leaseMs });
      const before = await tx.swapState(`rotation-lease:${key}`, mine, now);
      const held = before === null ? null : (JSON.parse(before) as { holder: string; until: number });
      if (held && held.holder !== deps.replicaId && held.until > now) {
        await tx.swapState(`rotation-lease:${key}`, before as string, now);
        return false;
      }
      return true;
    });

  const pass = async (): Promise<RotationReport> => {
    const now = clock.now();
    let rows = await deps.status(now);
    const rotated: string[] = [];
    const failed: { target: string; error: string }[] = [];
    /** Due credentials another replica is rotating right now (it holds their lease). */
    const rotatingElsewhere = new Set<string>();
    for (const target of deps.auto) {
      const row = rows.find((r) => r.key === `target:${target}`);
      if (!row?.overdue) continue;
      if (!(await takeLease(row.key, now))) {
        rotatingElsewhere.add(row.key);
        continue;
      }
      try {
        await deps.rotate(target);
        rotated.push(target);
      } catch (e) {
        const error = e instanceof Error ? e.message : String(e);
        failed.push({ target, error });
        deps.log("automatic rotation failed", { target, error });
        await store.transaction((tx) =>
          audit.append(tx, [
            nonGrantEvent(
              "credential.rotation_failed",
              "system",
              clock.now(),
              { credential: row.credential, error, fix: row.how },
              target,
            ),
          ]),
        );
      }
    }
    if (rotated.length > 0) rows = await deps.status(clock.now());

    const alarmed: string[] = [];
    const overdue = rows.filter((r) => r.overdue);
    for (const row of overdue) {
      if (failed.some((f) => row.key === `target:${f.target}`)) continue; // just alarmed, louder
      // Being rotated by the replica that holds its lease: that one alarms a failure, and a lease
      // left by a replica that died runs out, after which the next pass rotates or alarms it.
      if (rotatingElsewhere.has(row.key)) continue;
      // Once a day per credential, across replicas: the marker is swapped under the row's lock.
      const marker = `${row.dueAt ?? "never"}@${Math.floor(now / DAY_MS)}`;
      const raised = await store.transaction(async (tx) => {
        if ((await tx.swapState(`rotation-alarmed:${row.key}`, marker, now)) === marker) return false;
        await audit.append(tx, [
          nonGrantEvent("credential.rotation_overdue", "system", now, {
            credential: row.credential,
            key: row.key,
            rotatedAt: row.rotatedAt === null ? null : new Date(row.rotatedAt).toISOString(),
            dueAt: row.dueAt === null ? null : new Date(row.dueAt).toISOString(),
            ageDays: row.ageDays,
            fix: row.how,
          }),
        ]);
        return true;
      });
      if (raised) alarmed.push(row.key);
    }
    return { rotated, failed, alarmed, overdue: overdue.map((r) => r.key) };
  };

  const loop = createLoop({
    name: "rotation check",
    run: pass,
    intervalMs: deps.intervalMs,
    // The first check soon after start (a broker that was down past a due date catches up).
    firstDelayMs: Math.min(deps.intervalMs, 5_000),
    log: deps.log,
  });

  return { runOnce: loop.runOnce, start: loop.start, stop: loop.stop };
}
