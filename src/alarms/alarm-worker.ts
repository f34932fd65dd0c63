/**
 * Delivers the alarm outbox. Each tick claims due alarms in one transaction (SKIP LOCKED on
 * PostgreSQL, so replicas share the work) and saves them with a lease, then delivers outside any
 * transaction and records each result: delivered (with its latency from the event), a retry with
 * capped backoff, or failed for good when the receiver refuses the message itself. A replica that
 * dies mid-delivery leaves the lease to run out; another replica delivers again with the same
 * idempotency key — at least once.
 */
import { alarmBackoffMs } from "../core/alarm-routing.js";
import { type AuditEventDraft, nonGrantEvent } from "../core/audit-event.js";
import type { AlarmRecord, Clock, Store } from "../core/ports.js";
import type { Metrics } from "../metrics/metrics.js";
import type { AuditAppender } from "../service/grant-writer.js";
import { type AlarmChannel, DeliveryError } from "./channels.js";

export interface AlarmWorkerDeps {
  readonly store: Store;
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
}

export interface AlarmWorker {
  /** Claim and deliver one batch; returns how many were attempted. */
  tick(): Promise<number>;
  /** Tick until nothing is due now. For tests and shutdown. */
  drain(): Promise<void>;
  start(): void;
  kick(): void;
  stop(): Promise<void>;
  /** Each channel's health as this replica sees it: failing after `failureThreshold` failures in a row. */
  channels(): ChannelHealth[];
}

export interface ChannelHealth {
  readonly channel: string;
  readonly failing: boolean;
  readonly consecutiveFailures: number;
  readonly lastError: string | null;
}

export function createAlarmWorker(deps: AlarmWorkerDeps): AlarmWorker {
  const { store, channels, clock } = deps;
  let timer: NodeJS.Timeout | null = null;
  let running = false;
  let kicked = false;
  let current: Promise<number> | null = null;

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

  /** Consecutive failures per channel (this replica), and which channels are reported failing. */
  const streak = new Map<string, { failures: number; lastError: string }>();
  const reported = new Set<string>();

  const health = async (results: readonly AlarmRecord[]): Promise<void> => {
    if (!deps.audit) return;
    const threshold = deps.failureThreshold ?? 3;
    const drafts: AuditEventDraft[] = [];
    const now = clock.now();
    const draft = (type: AuditEventDraft["type"], data: Record<string, unknown>): AuditEventDraft =>
      nonGrantEvent(type, "system", now, data);
    for (const r of results) {
      if (r.state === "delivered") {
        streak.delete(r.channel);
        if (reported.delete(r.channel)) drafts.push(draft("alarm.channel_recovered", { channel: r.channel }));
        continue;
      }
      const s = streak.get(r.channel) ?? { failures: 0, lastError: "" };
      s.failures += 1;
      s.lastError = r.lastError ?? "";
      streak.set(r.channel, s);
      if (s.failures >= threshold && !reported.has(r.channel)) {
        reported.add(r.channel);
        drafts.push(
          draft("alarm.channel_failing", { channel: r.channel, failures: s.failures, lastError: s.lastError }),
        );
      }
    }
    if (drafts.length === 0) return;
    const { audit } = deps;
    await store.transaction((tx) => audit.append(tx, drafts));
  };

  const tick = async (): Promise<number> => {
    const now = clock.now();
    const claimed = await store.transaction(async (tx) => {
      const due = await tx.claimAlarms(now, deps.batchSize);
      for (const a of due) await tx.saveAlarm({ ...a, nextAt: now + deps.leaseMs });
      return due;
    });
    if (claimed.length === 0) return 0;
    const results = await Promise.all(claimed.map(deliverOne));
    await store.transaction(async (tx) => {
      for (const r of results) await tx.saveAlarm(r);
    });
    await health(results).catch((e: unknown) => deps.log("recording channel health failed", { error: String(e) }));
    return claimed.length;
  };

  const runTick = (): Promise<number> => {
    current ??= tick().finally(() => {
      current = null;
    });
    return current;
  };

  // One chain of ticks: a tick schedules the next when it ends; kick() shortens the wait.
  const loop = () => {
    timer = null;
    if (!running) return;
    runTick()
      .catch((e: unknown) => deps.log("alarm worker tick failed", { error: String(e) }))
      .finally(() => {
        if (running && timer === null) timer = setTimeout(loop, kicked ? 0 : deps.pollMs);
        kicked = false;
      });
  };

  const channelHealth = (): ChannelHealth[] =>
    [...channels.keys()].sort().map((channel) => ({
      channel,
      failing: reported.has(channel),
      consecutiveFailures: streak.get(channel)?.failures ?? 0,
      lastError: streak.get(channel)?.lastError || null,
    }));

  return {
    channels: channelHealth,
    tick: runTick,
    async drain() {
      while ((await runTick()) > 0) {
        /* until nothing is due */
      }
    },
    start() {
      if (running) return;
      running = true;
      loop();
    },
    kick() {
      if (!running) return;
      if (current) {
        kicked = true;
        return;
      }
      if (timer) clearTimeout(timer);
      loop();
    },
    async stop() {
      running = false;
      if (timer) clearTimeout(timer);
      timer = null;
      await current?.catch(() => {});
    },
  };
}
