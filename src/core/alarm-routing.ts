/**
 * Which audit events raise which alarms. Pure: sealed events in, outbox rows out — written in the
 * same transaction as the events (the outbox), so an action and its alarms commit together.
 *
 * Activation of any role always alarms the security channels; routing cannot take that away (the
 * configuration checker refuses an empty `security_channels`).
 */
import type { AuditEventType, SealedAuditEvent } from "./audit-event.js";
import type { AlarmSeverity } from "./model.js";
import type { AlarmRecord, Checkpoint } from "./records.js";

export const ACTIVATION_EVENTS: readonly AuditEventType[] = ["grant.activated", "grant.emergency_activated"];
/** Events that always reach the security channels, whatever the routes say. */
export const ALWAYS_SECURITY_EVENTS: readonly AuditEventType[] = [
  ...ACTIVATION_EVENTS,
  "target.unauthorized_login",
  // Something the holder did outlives the window and could only be contained, or not even that (ADR 0009).
  "target.containment_drift",
  // Someone recorded what was done about it: the review may now be `justified`.
  "grant.containment_resolved",
  // A destructive statement refused in a break-glass session: someone tried.
  "gateway.statement_blocked",
  // Who may break which glass changed: a change cannot route itself away from security.
  "config.changed",
  // Someone is in without the IdP, or is trying to get in, or changed how they prove who they are.
  "auth.fallback_login",
  "auth.login_refused",
  "auth.locked_out",
  "auth.factor_enrolled",
  "auth.factor_removed",
  "auth.recovery_code_used",
  "auth.idp_declared",
  // A rehearsal's result: a failed drill is a break-glass path that would fail for real.
  "drill.finished",
  // A tier-2 envelope was opened offline (imported from its opening record).
  "vault.opened",
  // A break-glass credential past its rotation date, or the broker's own rotation of one failed.
  "credential.rotation_overdue",
  "credential.rotation_failed",
  // A use nobody reviewed in time: overdue reviews escalate (also to the escalation channels).
  "grant.review_overdue",
  "vault.review_overdue",
];
/**
 * Events whose alarms' deliveries are recorded in the chain (`alarm.delivered`, written with the
 * delivery's result): the evidence report and the story show when security was told of an
 * activation, and `audit verify` holds the alarm rows to it. Other deliveries are bookkeeping.
 */
export const SEALED_DELIVERY_EVENTS: readonly AuditEventType[] = ACTIVATION_EVENTS;
/** The alarm outbox's own records: they describe alarms and raise none. */
const OUTBOX_EVENTS: readonly AuditEventType[] = ["alarm.delivered", "alarm.deliveries_sealed"];
/** Events that also go to the escalation channels: nobody acted on what they were told. */
export const ESCALATION_EVENTS: readonly AuditEventType[] = [
  "alarm.escalated",
  "grant.review_overdue",
  "vault.review_overdue",
];
/** Alarms about the alarm system itself: they go to every channel but the one they are about. */
export const CHANNEL_HEALTH_EVENTS: readonly AuditEventType[] = ["alarm.channel_failing", "alarm.channel_recovered"];

export interface AlarmRoute {
  /** Event types or globs (`grant.*`, `*`). */
  readonly events: readonly string[];
  readonly channels: readonly string[];
  /** Only events of grants in these domains; null = every event. */
  readonly domains: readonly string[] | null;
}

export interface AlarmRouting {
  /** Always get activation alarms. Never empty. */
  readonly securityChannels: readonly string[];
  /** Get `alarm.escalated` (unacknowledged activations) and overdue reviews; may be empty. */
  readonly escalationChannels?: readonly string[];
  readonly routes: readonly AlarmRoute[];
  /** Severity of a normal activation, by role id (default `warning`); emergencies are always critical. */
  readonly roleSeverity?: ReadonlyMap<string, AlarmSeverity>;
}

export const eventMatches = (pattern: string, type: string): boolean =>
  pattern === "*" || pattern === type || (pattern.endsWith(".*") && type.startsWith(pattern.slice(0, -1)));

/**
 * The message a channel sends for an event: the idempotency key, how loud, one line for people,
 * and the audit event itself (its canonical fields: `type`, `at`, `actor`, `grant`, `role`,
 * `domain`, `target`, `incident`, `data`…, plus its `seq` and chain `hash`).
 */
export interface AlarmMessage {
  readonly idempotencyKey: string;
  readonly severity: AlarmSeverity;
  readonly summary: string;
  readonly event: Readonly<Record<string, unknown>>;
}

function severityOf(type: string, role: unknown, routing: AlarmRouting, data?: unknown): AlarmSeverity {
  if (type === "vault.opened" && (data as { drill?: unknown } | undefined)?.drill === true) return "info";
  if (type === "drill.finished")
    return (data as { result?: unknown } | undefined)?.result === "passed" ? "info" : "warning";
  if (type === "grant.activated" && typeof role === "string") return routing.roleSeverity?.get(role) ?? "warning";
  if (
    type === "grant.emergency_activated" ||
    type === "target.revoke_failed" ||
    type.startsWith("target.drift") ||
    type === "target.containment_drift" ||
    type === "alarm.channel_failing" ||
    type === "target.unauthorized_login" ||
    type === "alarm.escalated" ||
    type === "gateway.statement_blocked" ||
    type === "auth.fallback_login" ||
    type === "auth.login_refused" ||
    type === "auth.locked_out" ||
    type === "auth.idp_declared" ||
    type === "vault.opened" ||
    type === "credential.rotation_failed"
  ) {
    return "critical";
  }
  if (
    type === "grant.activated" ||
    type === "target.side_permission_swept" ||
    type === "grant.containment_resolved" ||
    type === "target.grant_failed" ||
    type === "grant.review_overdue" ||
    type === "vault.review_overdue" ||
    type === "config.changed" ||
    type === "auth.factor_enrolled" ||
    type === "auth.factor_removed" ||
    type === "auth.recovery_code_used" ||
    type === "credential.rotation_overdue"
  ) {
    return "warning";
  }
  return "info";
}

function summaryOf(e: Readonly<Record<string, unknown>>): string {
  const who = String(e.actor ?? "?");
  const grant = e.grant ? ` ${String(e.grant)}` : "";
  const role = e.role ? ` (${String(e.role)}${e.incident ? `, ${String(e.incident)}` : ""})` : "";
  switch (e.type) {
    case "grant.emergency_activated":
      return `EMERGENCY break-glass activation${grant}${role} by ${who}, without approval`;
    case "grant.activated":
      return `Break-glass grant${grant}${role} is active`;
    case "grant.requested":
      return `${who} requests break-glass access${grant}${role}: approval needed`;
    case "target.unauthorized_login": {
      const d = (e.data ?? {}) as { principal?: unknown; from?: unknown; terminated?: unknown };
      return `LOGIN AS BREAK-GLASS IDENTITY ${String(d.principal)} on ${String(e.target)} outside any active grant${d.from ? ` from ${String(d.from)}` : ""}${d.terminated ? "; session terminated" : ""}`;
    }
    case "alarm.escalated":
      return `ESCALATED: nobody acknowledged break-glass grant${grant}${role} — acknowledge with \`breakglass ack${grant}\``;
    case "grant.ending_soon": {
      const d = (e.data ?? {}) as { remainingS?: unknown; holder?: unknown };
      const s = Number(d.remainingS);
      const left = s < 90 ? `${s} s` : `${Math.round(s / 60)} min`;
      return `Break-glass grant${grant}${role} of ${String(d.holder)} ends in ${left}: finish up, or \`breakglass extend${grant}\` if the role allows`;
    }
    case "grant.review_overdue": {
      const d = (e.data ?? {}) as { overdueS?: unknown; emergency?: unknown };
      const hours = Math.floor(Number(d.overdueS) / 3600);
      return `Review overdue${hours > 0 ? ` by ${hours} h` : ""}: ${d.emergency ? "emergency " : ""}break-glass grant${grant}${role} has not been reviewed — \`breakglass review${grant}\``;
    }
    case "target.containment_drift": {
      const d = (e.data ?? {}) as { item?: { outcome?: unknown; description?: unknown; fix?: unknown } };
      const how = d.item?.outcome === "contained" ? "CONTAINED, NOT REVERTED" : "LEFT IN PLACE";
      return `${how} after break-glass grant${grant}${role} at ${String(e.target)}: ${String(d.item?.description)} — ${String(d.item?.fix)}; record what was done: \`breakglass containment resolve${grant}\``;
    }
    case "grant.containment_resolved": {
      const d = (e.data ?? {}) as { note?: unknown; items?: unknown };
      return `${who} recorded what was done about what grant${grant}${role} left behind (${Array.isArray(d.items) ? d.items.length : 0} item(s)): ${String(d.note)}`;
    }
    case "gateway.statement_blocked": {
      const d = (e.data ?? {}) as { reason?: unknown; statement?: unknown };
      return `BLOCKED in break-glass session of grant${grant}${role}: ${String(d.reason)} — ${String(d.statement).slice(0, 200)}`;
    }
    case "config.changed": {
      const d = (e.data ?? {}) as { summary?: unknown };
      return `Breakglass configuration changed: ${String(d.summary)}`;
    }
    case "grant.reviewed": {
      const d = (e.data ?? {}) as { outcome?: unknown; emergency?: unknown };
      return d.outcome === "unjustified"
        ? `UNJUSTIFIED break-glass use: ${d.emergency ? "emergency " : ""}grant${grant}${role} reviewed by ${who} as unjustified — follow up`
        : `Break-glass grant${grant}${role} reviewed by ${who}: ${String(d.outcome)}`;
    }
    case "target.grant_failed": {
      const d = (e.data ?? {}) as {
        error?: unknown;
        attempt?: unknown;
        nextAttemptAt?: unknown;
        emergency?: unknown;
        holder?: unknown;
      };
      const next =
        typeof d.nextAttemptAt === "number"
          ? `retrying at ${new Date(d.nextAttemptAt).toISOString()}`
          : "no more automatic attempts before it lapses";
      return `${d.emergency ? "EMERGENCY " : ""}ACTIVATION FAILED at ${String(e.target)} for grant${grant}${role} of ${String(d.holder ?? "?")} (attempt ${String(d.attempt ?? 1)}): ${String(d.error)} — ${next}`;
    }
    case "grant.approval_expired": {
      const d = (e.data ?? {}) as {
        activationFailed?: { attempts?: unknown; lastError?: unknown };
        emergency?: unknown;
      };
      if (d.activationFailed)
        return `${d.emergency ? "EMERGENCY " : ""}ACTIVATION GAVE UP: grant${grant}${role} lapsed after ${String(d.activationFailed.attempts)} failed attempt(s) at ${String(e.target)}: ${String(d.activationFailed.lastError)}`;
      return `Grant${grant}${role} lapsed unused (approval expired)`;
    }
    case "vault.opened": {
      const d = (e.data ?? {}) as { name?: unknown; custodians?: unknown; incident?: unknown; openedAt?: unknown };
      const who = Array.isArray(d.custodians)
        ? d.custodians.map((c: { name?: unknown }) => String(c.name)).join(" and ")
        : "?";
      if ((e.data as { drill?: unknown } | undefined)?.drill === true)
        return `tier-2 envelope ${String(d.name)} opened by ${who} as a rehearsal at ${String(d.openedAt)} (the secret was not shown)`;
      const quiet =
        (e.data as { alarmPending?: unknown } | undefined)?.alarmPending === true
          ? " — ITS OWN ALARM WAS NEVER DELIVERED (no endpoint answered at the opening)"
          : "";
      return `TIER-2 ENVELOPE ${String(d.name)} WAS OPENED at ${String(d.openedAt)} by ${who} (${String(d.incident)})${quiet} — review it; rotate the secret`;
    }
    case "vault.alarm_delivered": {
      const d = (e.data ?? {}) as { name?: unknown; incident?: unknown; openedAt?: unknown; deliveredAt?: unknown };
      return `Late alarm delivered: tier-2 envelope ${String(d.name)} opened at ${String(d.openedAt)} (${String(d.incident)}) was announced at ${String(d.deliveredAt)}`;
    }
    case "vault.opening_reviewed": {
      const d = (e.data ?? {}) as { outcome?: unknown; name?: unknown; incident?: unknown };
      return d.outcome === "unjustified"
        ? `UNJUSTIFIED tier-2 opening: envelope ${String(d.name)} (${String(d.incident)}) reviewed by ${who} as unjustified — follow up`
        : `Tier-2 opening of envelope ${String(d.name)} (${String(d.incident)}) reviewed by ${who}: ${String(d.outcome)}`;
    }
    case "vault.review_overdue": {
      const d = (e.data ?? {}) as {
        name?: unknown;
        incident?: unknown;
        openedAt?: unknown;
        reviewDueAt?: unknown;
        fix?: unknown;
      };
      return `REVIEW OVERDUE: the tier-2 opening of envelope ${String(d.name)} (${String(d.incident)}, opened ${String(d.openedAt)}) was due for review at ${String(d.reviewDueAt)} — ${String(d.fix)}`;
    }
    case "credential.rotation_overdue": {
      const d = (e.data ?? {}) as { credential?: unknown; ageDays?: unknown; fix?: unknown };
      return `Break-glass credential overdue for rotation: ${String(d.credential)} (${d.ageDays === null ? "never rotated" : `${String(d.ageDays)} days old`}) — ${String(d.fix)}`;
    }
    case "credential.rotation_failed": {
      const d = (e.data ?? {}) as { credential?: unknown; error?: unknown };
      return `AUTOMATIC ROTATION FAILED: ${String(d.credential)}: ${String(d.error)} — the old credential still works; rotate it by hand`;
    }
    case "drill.finished": {
      const d = (e.data ?? {}) as {
        name?: unknown;
        result?: unknown;
        failedStep?: unknown;
        detail?: unknown;
        timeToAccessMs?: unknown;
      };
      return d.result === "passed"
        ? `[DRILL] ${String(d.name)} passed: access in ${(Number(d.timeToAccessMs) / 1000).toFixed(1)} s, gone at the end`
        : `[DRILL] ${String(d.name)} FAILED at "${String(d.failedStep)}": ${String(d.detail)} — the break-glass path would fail for real`;
    }
    case "auth.fallback_login": {
      const d = (e.data ?? {}) as { factor?: unknown; idp?: unknown; membershipStale?: unknown };
      return `LOGIN VIA LOCAL FALLBACK: ${who} signed in without the IdP (${String(d.factor)} factor; IdP ${String(d.idp)})${d.membershipStale ? "; last-known group membership too old to count" : ""} — their grants are flagged for review`;
    }
    case "auth.login_refused": {
      const d = (e.data ?? {}) as { claimed?: unknown; subject?: unknown; why?: unknown };
      return `IdP login REFUSED for "${String(d.claimed)}" (subject ${String(d.subject)}): ${String(d.why)}`;
    }
    case "auth.locked_out": {
      const d = (e.data ?? {}) as { keys?: unknown; what?: unknown };
      return `Locked out after repeated failures (${String(d.what)}): ${Array.isArray(d.keys) ? d.keys.join(", ") : "?"}`;
    }
    case "auth.factor_enrolled":
    case "auth.factor_removed": {
      const d = (e.data ?? {}) as { user?: unknown; kind?: unknown };
      return `${String(d.user)} ${e.type === "auth.factor_enrolled" ? "enrolled" : "removed"} a local ${String(d.kind)} factor`;
    }
    case "auth.recovery_code_used": {
      const d = (e.data ?? {}) as { user?: unknown; left?: unknown };
      return `${String(d.user)} used a recovery code (${String(d.left)} left)`;
    }
    case "auth.idp_declared": {
      const d = (e.data ?? {}) as { down?: unknown; reason?: unknown };
      return `${who} declared the identity provider ${d.down ? "DOWN: local fallback login is open" : "up again"} (${String(d.reason)})`;
    }
    case "alarm.channel_failing": {
      const d = (e.data ?? {}) as { channel?: unknown; failures?: unknown; lastError?: unknown };
      return `Alarm channel ${String(d.channel)} is failing: ${String(d.failures)} deliveries in a row (${String(d.lastError)})`;
    }
    default:
      return `${String(e.type)}${grant}${role} by ${who}`;
  }
}

/** An event of a drill: its alarms say so first, so nobody panics and nobody learns to ignore real ones. */
function isDrill(event: Readonly<Record<string, unknown>>): boolean {
  return (event.data as { drill?: unknown } | undefined)?.drill === true;
}

/**
 * An emergency activation that failed at its target (its first failure: the retries that follow
 * are in the audit log and on the grant), or that kept failing until the grant lapsed: someone is
 * breaking the glass and cannot get in — security is paged, whatever the routes say.
 */
export function isFailedEmergencyActivation(event: Readonly<Record<string, unknown>>): boolean {
  const d = (event.data ?? {}) as { emergency?: unknown; attempt?: unknown; activationFailed?: unknown };
  if (d.emergency !== true) return false;
  if (event.type === "target.grant_failed") return d.attempt === 1 || d.attempt === undefined;
  return event.type === "grant.approval_expired" && d.activationFailed !== undefined;
}

/** A review that found the use unjustified: security hears of it like of an activation. */
function isUnjustified(event: Readonly<Record<string, unknown>>): boolean {
  return (
    (event.type === "grant.reviewed" || event.type === "vault.opening_reviewed") &&
    (event.data as { outcome?: unknown } | undefined)?.outcome === "unjustified"
  );
}

/** The one line an alarm's message carries for an event (its payload's fields): derived from the event alone. */
export function alarmSummary(event: Readonly<Record<string, unknown>>): string {
  return `${isDrill(event) ? "[DRILL] " : ""}${summaryOf(event)}`;
}

/** The outbox rows for `events`: one per event and channel, delivery due at once. */
export function routeAlarms(events: readonly SealedAuditEvent[], routing: AlarmRouting): AlarmRecord[] {
  const out: AlarmRecord[] = [];
  for (const e of events) {
    if (OUTBOX_EVENTS.includes(e.type)) continue;
    const event = JSON.parse(e.payload) as Record<string, unknown>;
    const domain = typeof event.domain === "string" ? event.domain : null;
    const channels = new Set<string>();
    if (ALWAYS_SECURITY_EVENTS.includes(e.type) || isUnjustified(event) || isFailedEmergencyActivation(event)) {
      for (const c of routing.securityChannels) channels.add(c);
    }
    if (ESCALATION_EVENTS.includes(e.type)) for (const c of routing.escalationChannels ?? []) channels.add(c);
    if (CHANNEL_HEALTH_EVENTS.includes(e.type)) {
      // A channel in trouble is reported on every other channel there is.
      const failing = (event.data as { channel?: unknown } | undefined)?.channel;
      for (const c of [...routing.securityChannels, ...routing.routes.flatMap((r) => r.channels)]) {
        if (c !== failing) channels.add(c);
      }
    }
    for (const r of routing.routes) {
      if (r.domains !== null && (domain === null || !r.domains.includes(domain))) continue;
      if (r.events.some((p) => eventMatches(p, e.type))) for (const c of r.channels) channels.add(c);
    }
    for (const channel of [...channels].sort()) {
      const id = `a_${e.seq}_${channel}`;
      const message: AlarmMessage = {
        idempotencyKey: id,
        severity:
          isUnjustified(event) || isFailedEmergencyActivation(event)
            ? "critical"
            : severityOf(e.type, event.role, routing, event.data),
        summary: alarmSummary(event),
        event: { seq: e.seq, hash: e.hash, ...event },
      };
      out.push({
        id,
        channel,
        eventSeq: e.seq,
        eventType: e.type,
        grantId: e.grantId,
        payload: JSON.stringify(message),
        state: "queued",
        attempts: 0,
        lastError: null,
        createdAt: e.at,
        nextAt: e.at,
        deliveredAt: null,
      });
    }
  }
  return out;
}

/** Retry schedule for a failed delivery: 1 s, 2 s, 4 s … capped at 5 minutes, forever. */
export function alarmBackoffMs(attempts: number): number {
  return Math.min(1000 * 2 ** Math.max(0, attempts - 1), 300_000);
}

/**
 * Is this activation unalarmed: its activation alarms to the security channels exist, none was
 * delivered, and `afterMs` has passed since the activation? The grant keeps working — an
 * emergency must not be blocked by a dead channel — but it is flagged everywhere.
 */
export function isUnalarmed(
  alarms: readonly AlarmRecord[],
  routing: AlarmRouting,
  activatedAt: number | null,
  now: number,
  afterMs: number,
): boolean {
  if (activatedAt === null || now - activatedAt < afterMs) return false;
  const activation = alarms.filter(
    (a) => ACTIVATION_EVENTS.includes(a.eventType as AuditEventType) && routing.securityChannels.includes(a.channel),
  );
  return activation.length > 0 && !activation.some((a) => a.state === "delivered");
}

/**
 * Alarms carrying a signed checkpoint to the channels routed `audit.checkpoint`: a copy of the
 * chain's head outside the broker, so a log cut after its last local checkpoint is still caught
 * against the receiver's copy.
 */
export function checkpointAlarms(cp: Checkpoint, routing: AlarmRouting): AlarmRecord[] {
  const channels = new Set<string>();
  for (const r of routing.routes) {
    if (r.domains === null && r.events.some((p) => eventMatches(p, "audit.checkpoint"))) {
      for (const c of r.channels) channels.add(c);
    }
  }
  return [...channels].sort().map((channel) => {
    const id = `a_cp${cp.seq}_${channel}`;
    return {
      id,
      channel,
      eventSeq: cp.seq,
      eventType: "audit.checkpoint",
      grantId: null,
      payload: JSON.stringify({
        idempotencyKey: id,
        severity: "info",
        summary: `Audit checkpoint: the chain had ${cp.seq} events, head ${cp.hash.slice(0, 16)}…, signed by key ${cp.keyId}`,
        event: { type: "audit.checkpoint", at: new Date(cp.at).toISOString() },
        checkpoint: cp,
      }),
      state: "queued",
      attempts: 0,
      lastError: null,
      createdAt: cp.at,
      nextAt: cp.at,
      deliveredAt: null,
    };
  });
}
