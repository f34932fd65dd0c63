/**
 * Delivers the alarm outbox. Each tick claims due alarms in one transaction (SKIP LOCKED on
 * PostgreSQL, so replicas share the work) and saves them with a lease, then delivers outside any
 * transaction and records each result: delivered (with its latency from the event), a retry with
 * capped backoff, or failed for good when the receiver refuses the message itself. The lease
 * names this broker process: when it dies mid-delivery, another replica (or the restarted broker)
 * takes the delivery over as soon as the process is seen gone (`Leases.reclaimLeases`, run by the
 * expiry worker four times a second) and delivers again with the same idempotency key — at least
 * once. A result is recorded only while this process still holds the lease.
 *
 * Channel health (failing after `failureThreshold` failures in a row, recovered at the next
 * delivery) is kept in the store (`broker_state`), not only in memory: a channel reported failing
 * by any replica, or before a restart, gets its `alarm.channel_recovered` from whichever process
 * delivers to it next, and is reported failing once, not once per replica.
 *
 * Deliveries run independently: the worker does not wait for a batch to finish before claiming
 * the next alarms, so a receiver that takes 30 s to answer holds only its own deliveries — at
 * most `channelConcurrency` of them at a time — and every other channel goes on at once. Results
 * that finish together are recorded in one transaction.
 */

import { type AlarmChannel, type ChannelHealth, DeliveryError } from "../alarms/alarm-channel.js";
import type { AuditAppender, AuditTx } from "../audit/audit-journal.js";
import { alarmBackoffMs, SEALED_DELIVERY_EVENTS } from "../core/alarm-routing.js";
import { type AuditEventDraft, type AuditEventType, nonGrantEvent } from "../core/audit-event.js";
import type { AlarmWrites } from "../core/ports/alarms.js";
import type { StateReads, StateWrites } from "../core/ports/broker-state.js";
import type { Clock } from "../core/ports/runtime.js";
import type { Transactions } from "../core/ports/transactions.js";
import type { AlarmRecord } from "../core/records.js";
import type { Metrics } from "../metrics/metrics.js";
import { createLoop } from "./loop.js";

export type { ChannelHealth };

import { groupWrites } from "../alarms/group-writes.js";

export interface AlarmWorkerDeps {
  /**
   * Claims, leases and records deliveries; channel health and where sealed deliveries start are
   * named state, with their audit events.
   */
  readonly store: Transactions<AlarmWrites & StateWrites & AuditTx> & Pick<StateReads, "readState">;
  readonly channels: ReadonlyMap<string, AlarmChannel>;
  readonly clock: Clock;
  readonly leaseMs: number;
  readonly pollMs: number;
  readonly batchSize: number;
  readonly log: (msg: string, fields?: Record<string, unknown>) => void;
  /** Observes each delivery's latency from its event. */
  readonly metrics?: Pick<Metrics, "alarmDelivery">;
  /** Records `alarm.channel_failing` / `alarm.channel_recovered` (which alarm the other channels). */
  readonly audit?: AuditAppender;
  /** Consecutive failed deliveries after which a channel is reported as failing. */
  readonly failureThreshold?: number;
  /** Most deliveries in flight to one channel (default 64): a slow channel holds only its own slots. */
  readonly channelConcurrency?: number;
}

export interface AlarmWorker {
  /** Claim one batch, deliver it and record the results; returns how many were attempted. */
  tick(): Promise<number>;
  /** Tick until nothing is due now. For tests and shutdown. */
  drain(): Promise<void>;
  start(): void;
  kick(): void;
  stop(): Promise<void>;
  /** Each channel's health as this replica sees it: failing after `failureThreshold` failures in a row. */
  channels(): ChannelHealth[];
}

/** `broker_state` key: set once `alarm.deliveries_sealed` is in the chain. */
export const DELIVERIES_SEALED_STATE = "alarm-deliveries-sealed";

/**
 * Put `alarm.deliveries_sealed` in the chain, once per database: from it on, every activation
 * alarm's delivery is in the chain too, and `audit verify` holds activation alarms to it (earlier
 * ones were delivered by an older broker). The broker calls it when it starts, before it serves a
 * request, so no activation this code records can come before the mark; the worker calls it again
 * before its first delivery for callers that build a worker alone.
 */
export async function sealAlarmDeliveries(
  store: Transactions<StateWrites & AuditTx> & Pick<StateReads, "readState">,
  audit: AuditAppender,
  now: number,
): Promise<void> {
  if ((await store.readState(DELIVERIES_SEALED_STATE)) !== null) return;
  await store.transaction(async (tx) => {
    const before = await tx.swapState(DELIVERIES_SEALED_STATE, "1", now);
    if (before !== null && before !== "") return;
    await audit.append(tx, [
      nonGrantEvent("alarm.deliveries_sealed", "system", now, { events: [...SEALED_DELIVERY_EVENTS] }),
    ]);
  });
}

/** The chain's record of one sealed delivery (see SEALED_DELIVERY_EVENTS), in its grant's story. */
function deliveredEvent(a: AlarmRecord): AuditEventDraft {
  // A drill's events are all tagged, this one too.
  let drill = false;
  try {
    drill = (JSON.parse(a.payload) as { event?: { data?: { drill?: unknown } } }).event?.data?.drill === true;
  } catch {}
  return {
    ...nonGrantEvent("alarm.delivered", "system", a.deliveredAt ?? a.createdAt, {
      alarm: a.id,
      channel: a.channel,
      event: a.eventSeq,
      eventType: a.eventType,
      attempts: a.attempts,
      latencyMs: (a.deliveredAt ?? a.createdAt) - a.createdAt,
      ...(drill ? { drill: true } : {}),
    }),
    grantId: a.grantId,
  };
}

/** `broker_state` key: the channels reported failing (`alarm.channel_failing`) and not recovered since, as a JSON array. */
export const FAILING_CHANNELS_STATE = "alarm-channels-failing";

function parseChannels(text: string | null): string[] {
  if (text === null) return [];
  try {
    const v: unknown = JSON.parse(text);
    return Array.isArray(v) ? v.filter((c): c is string => typeof c === "string") : [];
  } catch {
    return [];
  }
}

export function createAlarmWorker(deps: AlarmWorkerDeps): AlarmWorker {
  const { store, channels, clock } = deps;

  const deliverOne = async (a: AlarmRecord): Promise<AlarmRecord> => {
    const channel = channels.get(a.channel);
    const attempts = a.attempts + 1;
    try {
      if (!channel) throw new DeliveryError(`channel ${a.channel} is no longer configured`, false);
      await channel.deliver(a);
      const at = clock.now();
      deps.metrics?.alarmDelivery.observe(Math.max(0, at - a.createdAt) / 1000, a.channel);
      return { ...a, state: "delivered", attempts, lastError: null, deliveredAt: at };
    } catch (e) {
      const err = e instanceof DeliveryError ? e : new DeliveryError((e as Error).message, false);
      deps.log("alarm delivery failed", { alarm: a.id, channel: a.channel, attempt: attempts, error: err.message });
      return {
        ...a,
        state: err.permanent ? "failed" : "queued",
        attempts,
        lastError: err.message,
        nextAt: clock.now() + alarmBackoffMs(attempts),
      };
    }
  };

  /** Consecutive failures per channel (this replica), and the channels reported failing (as last read from the store). */
  const streak = new Map<string, { failures: number; lastError: string }>();
  let reported = new Set<string>();

  const health = async (results: readonly AlarmRecord[]): Promise<void> => {
    if (!deps.audit) return;
    const threshold = deps.failureThreshold ?? 3;
    const delivered = new Set<string>();
    const crossing = new Set<string>();
    for (const r of results) {
      if (r.state === "delivered") {
        streak.delete(r.channel);
        crossing.delete(r.channel);
        delivered.add(r.channel);
        continue;
      }
      const s = streak.get(r.channel) ?? { failures: 0, lastError: "" };
      s.failures += 1;
      s.lastError = r.lastError ?? "";
      streak.set(r.channel, s);
      if (s.failures >= threshold) crossing.add(r.channel);
    }
    // Which channels are reported failing is the store's to say: another replica, or this broker
    // before a restart, may have reported one this process has never seen fail.
    if (delivered.size > 0 || [...crossing].some((c) => !reported.has(c))) {
      reported = new Set(parseChannels(await store.readState(FAILING_CHANNELS_STATE)));
    }
    const recovering = [...delivered].filter((c) => reported.has(c));
    const failing = [...crossing].filter((c) => !reported.has(c));
    if (recovering.length === 0 && failing.length === 0) return;
    const { audit } = deps;
    const now = clock.now();
    reported = await store.transaction(async (tx) => {
      // Read and written under the row's lock: two replicas cannot both report the same change.
      const set = new Set(parseChannels(await tx.swapState(FAILING_CHANNELS_STATE, "[]", now)));
      const drafts: AuditEventDraft[] = [];
      for (const channel of recovering) {
        if (set.delete(channel)) drafts.push(nonGrantEvent("alarm.channel_recovered", "system", now, { channel }));
      }
      for (const channel of failing) {
        if (set.has(channel)) continue;
        set.add(channel);
        const s = streak.get(channel);
        drafts.push(
          nonGrantEvent("alarm.channel_failing", "system", now, {
            channel,
            failures: s?.failures ?? threshold,
            lastError: s?.lastError ?? "",
          }),
        );
      }
      await tx.swapState(FAILING_CHANNELS_STATE, JSON.stringify([...set].sort()), now);
      if (drafts.length > 0) await audit.append(tx, drafts);
      return set;
    });
  };

  // Results that finish together are saved in one transaction (group commit). A delivered
  // activation alarm is recorded in the chain with it (`alarm.delivered`): what the evidence report
  // and the story say about when security was told is then covered by `audit verify`. Only for the
  // results this process still leases: one saved by another process's delivery is theirs to record.
  const record = groupWrites<AlarmRecord>(async (results) => {
    const audit = deps.audit;
    const sealed = audit
      ? results.filter((r) => r.state === "delivered" && SEALED_DELIVERY_EVENTS.includes(r.eventType as AuditEventType))
      : [];
    const rest = sealed.length === 0 ? results : results.filter((r) => !sealed.includes(r));
    await store.transaction(async (tx) => {
      if (rest.length > 0) await tx.saveAlarms(rest);
      if (audit === undefined || sealed.length === 0) return;
      const drafts: AuditEventDraft[] = [];
      for (const r of sealed) if ((await tx.saveAlarms([r])) === 1) drafts.push(deliveredEvent(r));
      await audit.append(tx, drafts);
    });
    await health(results).catch((e: unknown) => deps.log("recording channel health failed", { error: String(e) }));
  });

  /**
   * Once per database, before the first delivery this code makes: the chain says from where on
   * activation alarms' deliveries are in it (`audit verify` does not hold earlier ones to it).
   */
  let sealing: Promise<void> | null = null;
  const markSealing = (): Promise<void> => {
    const audit = deps.audit;
    if (audit === undefined) return Promise.resolve();
    sealing ??= sealAlarmDeliveries(store, audit, clock.now()).catch((e: unknown) => {
      sealing = null;
      throw e;
    });
    return sealing;
  };

  const cap = deps.channelConcurrency ?? 64;
  const inFlight = new Set<Promise<void>>();
  const perChannel = new Map<string, number>();
  /** The last claim was cut short (no room, or a channel at its cap): claim again when a slot frees. */
  let backlog = false;

  const start = (a: AlarmRecord): Promise<void> => {
    perChannel.set(a.channel, (perChannel.get(a.channel) ?? 0) + 1);
    const p = deliverOne(a)
      .then(record)
      .finally(() => {
        inFlight.delete(p);
        const left = (perChannel.get(a.channel) ?? 1) - 1;
        if (left === 0) perChannel.delete(a.channel);
        else perChannel.set(a.channel, left);
        if (backlog) worker.kick();
      });
    inFlight.add(p);
    return p;
  };

  /** Claim up to a batch of what is due and fits its channel's free slots, and start delivering it. */
  const claim = async (): Promise<Promise<void>[]> => {
    // Not a reason to hold alarms back: without the mark, verification holds fewer rows to the chain.
    await markSealing().catch((e: unknown) =>
      deps.log("recording where sealed deliveries start failed", { error: String(e) }),
    );
    const busy = [...perChannel].filter(([, n]) => n >= cap).map(([c]) => c);
    // No more than the channels have free slots: rows claimed and not taken would be read for nothing.
    let free = 0;
    for (const c of channels.keys()) free += Math.max(0, cap - (perChannel.get(c) ?? 0));
    const limit = Math.max(1, Math.min(deps.batchSize, free));
    const now = clock.now();
    const { take, skipped } = await store.transaction(async (tx) => {
      const due = await tx.claimAlarms(now, limit, busy);
      const counts = new Map(perChannel);
      const fits = due.filter((a) => {
        const n = counts.get(a.channel) ?? 0;
        if (n >= cap) return false;
        counts.set(a.channel, n + 1);
        return true;
      });
      await tx.leaseAlarms(
        fits.map((a) => a.id),
        now + deps.leaseMs,
      );
      return { take: fits, skipped: due.length - fits.length };
    });
    backlog = take.length + skipped === limit || busy.length > 0;
    return take.map(start);
  };

  const tick = async (): Promise<number> => {
    const started = await claim();
    await Promise.all(started);
    return started.length;
  };

  // The loop's pass claims and returns; deliveries finish on their own. kick() shortens the wait.
  const loop = createLoop({
    name: "alarm worker tick",
    run: async () => {
      const started = await claim();
      for (const p of started) {
        p.catch((e: unknown) => deps.log("recording an alarm delivery failed", { error: String(e) }));
      }
      return started.length;
    },
    intervalMs: deps.pollMs,
    firstDelayMs: 0,
    holdsProcess: true,
    log: deps.log,
  });

  const channelHealth = (): ChannelHealth[] =>
    [...channels.keys()].sort().map((channel) => ({
      channel,
      failing: reported.has(channel),
      consecutiveFailures: streak.get(channel)?.failures ?? 0,
      lastError: streak.get(channel)?.lastError || null,
    }));

  const worker: AlarmWorker = {
    channels: channelHealth,
    tick,
    async drain() {
      for (;;) {
        const n = await tick();
        if (n === 0 && inFlight.size === 0) return;
        await Promise.allSettled([...inFlight]);
      }
    },
    start: loop.start,
    kick: loop.kick,
    async stop() {
      await loop.stop();
      await Promise.allSettled([...inFlight]);
    },
  };
  return worker;
}
