/**
 * Prometheus metrics, text exposition format 0.0.4, written by hand (a handful of series, no
 * client library). Histograms are kept in-process by the workers that observe them; gauges are
 * read from the store at scrape time, so every replica reports the same database-wide values.
 *
 * @see https://prometheus.io/docs/instrumenting/exposition_formats/
 */

const BUCKETS_S = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60] as const;

export class Histogram {
  readonly #counts = new Map<string, { buckets: number[]; sum: number; count: number }>();
  constructor(
    readonly name: string,
    readonly help: string,
    readonly labelName: string | null = null,
  ) {}

  observe(seconds: number, label = ""): void {
    let h = this.#counts.get(label);
    if (!h) {
      h = { buckets: BUCKETS_S.map(() => 0), sum: 0, count: 0 };
      this.#counts.set(label, h);
    }
    BUCKETS_S.forEach((b, i) => {
      if (seconds <= b && h) h.buckets[i] = (h.buckets[i] ?? 0) + 1;
    });
    h.sum += seconds;
    h.count += 1;
  }

  render(): string[] {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} histogram`];
    for (const [label, h] of this.#counts) {
      const l = this.labelName ? `${this.labelName}="${escapeLabel(label)}",` : "";
      for (const [i, b] of BUCKETS_S.entries()) lines.push(`${this.name}_bucket{${l}le="${b}"} ${h.buckets[i]}`);
      lines.push(`${this.name}_bucket{${l}le="+Inf"} ${h.count}`);
      const plain = this.labelName ? `{${l.slice(0, -1)}}` : "";
      lines.push(`${this.name}_sum${plain} ${h.sum}`, `${this.name}_count${plain} ${h.count}`);
    }
    return lines;
  }
}

export const escapeLabel = (v: string): string => v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");

/** The broker's in-process observations. */
export interface Metrics {
  readonly alarmDelivery: Histogram;
  readonly expiryLag: Histogram;
}

export function createMetrics(): Metrics {
  return {
    alarmDelivery: new Histogram(
      "breakglass_alarm_delivery_seconds",
      "From the audit event to the channel's acceptance of its alarm.",
      "channel",
    ),
    expiryLag: new Histogram("breakglass_expiry_lag_seconds", "From a grant's end to the broker ending it."),
  };
}

export interface StoreStats {
  readonly activeByRole: readonly { readonly role: string; readonly count: number }[];
  readonly alarms: readonly { readonly channel: string; readonly state: string; readonly count: number }[];
  readonly revocationsFailing: number;
}

export function renderMetrics(stats: StoreStats, metrics: Metrics): string {
  const lines: string[] = [
    "# HELP breakglass_active_grants Grants active now, by role.",
    "# TYPE breakglass_active_grants gauge",
    ...stats.activeByRole.map((r) => `breakglass_active_grants{role="${escapeLabel(r.role)}"} ${r.count}`),
    "# HELP breakglass_alarms Alarms by channel and delivery state (queued = the outbox).",
    "# TYPE breakglass_alarms gauge",
    ...stats.alarms.map(
      (a) => `breakglass_alarms{channel="${escapeLabel(a.channel)}",state="${escapeLabel(a.state)}"} ${a.count}`,
    ),
    "# HELP breakglass_outbox_depth Alarms not delivered yet.",
    "# TYPE breakglass_outbox_depth gauge",
    `breakglass_outbox_depth ${stats.alarms.filter((a) => a.state === "queued").reduce((n, a) => n + a.count, 0)}`,
    "# HELP breakglass_revocations_failing Grants whose revocation at the target keeps failing (being retried).",
    "# TYPE breakglass_revocations_failing gauge",
    `breakglass_revocations_failing ${stats.revocationsFailing}`,
    ...metrics.alarmDelivery.render(),
    ...metrics.expiryLag.render(),
  ];
  return `${lines.join("\n")}\n`;
}
