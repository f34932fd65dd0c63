/**
 * The compliance evidence report: for a period, every break-glass access (approvals, alarms and
 * when they were delivered, what the session did, the review), the drills run, the audit chain's
 * verification with its signed checkpoints, and which control each section is evidence for
 * (SOC 2, ISO/IEC 27001:2022, HIPAA). Built from the store alone; rendered as JSON, CSV, or a
 * self-contained printable HTML document (which `breakglass report --format pdf` prints with
 * Chromium).
 */
import type { ChainVerdict } from "../core/audit-chain.js";
import type { Grant, VaultOpening } from "../core/model.js";
import type { AlarmReads } from "../core/ports/alarms.js";
import type { AuditReads } from "../core/ports/audit.js";
import type { EvidenceReads } from "../core/ports/evidence.js";
import type { GrantReads } from "../core/ports/grants.js";
import type { GatewayReads, TerminalReads } from "../core/ports/recordings.js";
import type { AlarmRecord, Checkpoint, DrillRun, StatementRecord, TerminalSession } from "../core/records.js";
import type { RotationRow } from "../core/rotation-row.js";
import { terminalText } from "../core/text.js";
import { csvCell } from "./audit-export.js";
import {
  alarmIntegrity,
  alarmsAsRecorded,
  drillRunIntegrity,
  type RowIntegrity,
  terminalSessionIntegrity,
  vaultOpeningIntegrity,
} from "./evidence-rows.js";
import { grantDifference } from "./grant-verify.js";

export interface ReportAccess {
  readonly grant: Grant;
  /** Its alarms, each delivery the chain records as the chain records it (alarmsAsRecorded). */
  readonly alarms: readonly AlarmRecord[];
  /** Which alarms' delivery the chain covers (activation alarms): the others' state is the outbox's. */
  readonly coveredAlarms: ReadonlySet<string>;
  /**
   * What the access's rows state differently from the events that recorded them — the grant, its
   * alarms, its terminal sessions (each message names the column and the event); empty when none.
   */
  readonly integrity: readonly string[];
  readonly statements: number;
  readonly blocked: readonly StatementRecord[];
  readonly terminalSessions: number;
  readonly swept: number;
}

/** A row of the report, with what its events say about it (see ReportAccess.integrity). */
export interface Checked<T> {
  readonly row: T;
  readonly integrity: readonly string[];
}

export interface EvidenceReport {
  readonly from: number;
  readonly to: number;
  readonly generatedAt: number;
  readonly accesses: readonly ReportAccess[];
  readonly drills: readonly Checked<DrillRun>[];
  readonly chain: ChainVerdict;
  readonly checkpoints: readonly Checkpoint[];
  /** Tier-2 envelope openings in the period (imported from their records), with their reviews. */
  readonly vaultOpenings: readonly Checked<VaultOpening>[];
  /** Every break-glass credential's age at the time of the report. */
  readonly credentials: readonly RotationRow[];
  /** Rotations, overdue alarms and failed rotations in the period, from the audit log. */
  readonly rotationEvents: readonly RotationEvent[];
}

export interface RotationEvent {
  readonly at: number;
  readonly type: "credential.rotated" | "credential.rotation_overdue" | "credential.rotation_failed";
  readonly actor: string;
  readonly credential: string;
  readonly detail: string;
}

const ROTATION_EVENTS: ReadonlySet<string> = new Set([
  "credential.rotated",
  "credential.rotation_overdue",
  "credential.rotation_failed",
]);

/** What each section proves, for whom. */
export const CONTROLS: readonly {
  readonly section: string;
  readonly controls: readonly string[];
  readonly proves: string;
}[] = [
  {
    section: "Break-glass accesses",
    controls: [
      "SOC 2 CC6.1",
      "SOC 2 CC6.2",
      "SOC 2 CC6.3",
      "ISO 27001 A.5.15",
      "ISO 27001 A.5.18",
      "ISO 27001 A.8.2",
      "HIPAA §164.312(a)(2)(ii)",
    ],
    proves:
      "Privileged access is granted only per request, for a named incident, approved by other people (or recorded as an emergency bypass), time-boxed, and removed at the end.",
  },
  {
    section: "Alarms",
    controls: ["SOC 2 CC7.2", "ISO 27001 A.8.15"],
    proves: "Every activation was announced to the security channels, and when each delivery happened.",
  },
  {
    section: "Reviews",
    controls: ["SOC 2 CC6.2", "SOC 2 CC6.3", "ISO 27001 A.5.18"],
    proves: "Every use was reviewed afterwards by someone independent, with findings and follow-ups.",
  },
  {
    section: "Tier-2 openings",
    controls: ["SOC 2 CC6.1", "SOC 2 CC7.2", "ISO 27001 A.5.18", "HIPAA §164.312(a)(2)(ii)"],
    proves:
      "Every opening of a sealed last-resort credential took a threshold of custodians, was recorded and signed, announced, and reviewed afterwards by someone who did not open it.",
  },
  {
    section: "Credential rotation",
    controls: ["SOC 2 CC6.1", "ISO 27001 A.5.17", "ISO 27001 A.8.5"],
    proves:
      "Break-glass credentials (target admin passwords, CA and signing keys, sealed envelopes) are rotated within their maximum age, and after every use.",
  },
  {
    section: "Drills",
    controls: ["HIPAA §164.312(a)(2)(ii)", "ISO 27001 A.5.15"],
    proves: "The emergency access procedure is rehearsed on the real systems and works.",
  },
  {
    section: "Audit log integrity",
    controls: ["SOC 2 CC7.2", "ISO 27001 A.8.15", "HIPAA §164.312(b)"],
    proves: "The audit log is complete and unaltered: hash chain verified, signed checkpoints checked.",
  },
];

/** What the report reads: grants with their alarms, recordings and events; drills, openings, the chain. */
export type EvidenceReportReads = Pick<GrantReads, "listGrants"> &
  Pick<AlarmReads, "listAlarms"> &
  Pick<GatewayReads, "listStatements"> &
  Pick<TerminalReads, "listTerminalSessions"> &
  Pick<AuditReads, "readGrantAudit" | "readNonGrantAudit" | "readCheckpoints" | "readAudit"> &
  Pick<EvidenceReads, "listDrillRuns" | "listVaultOpenings">;

export async function buildEvidenceReport(
  store: EvidenceReportReads,
  opts: { from: number; to: number; now: number; chain: ChainVerdict; credentials?: readonly RotationRow[] },
): Promise<EvidenceReport> {
  const grants = (await store.listGrants({ limit: 100_000 }))
    .filter((g) => g.activatedAt !== null && g.activatedAt >= opts.from && g.activatedAt < opts.to)
    .sort((a, b) => (a.activatedAt ?? 0) - (b.activatedAt ?? 0));
  const accesses: ReportAccess[] = [];
  for (const grant of grants) {
    const [alarms, statements, terminals, events] = await Promise.all([
      store.listAlarms(grant.id),
      store.listStatements(grant.id),
      store.listTerminalSessions(grant.id),
      store.readGrantAudit([grant.id]),
    ]);
    const checks = await alarmIntegrity(store, alarms, events);
    const sessions = terminalSessionIntegrity(terminals, events);
    const d = grantDifference(grant, events);
    const integrity = [
      ...(d === null
        ? []
        : [
            `the grant's ${d.column} column says ${JSON.stringify(d.stored)} but event ${d.event.seq} (${d.event.type}) says ${JSON.stringify(d.chain)}`,
          ]),
      ...[...checks.values(), ...sessions.values()].flatMap((c) =>
        c === null ? [] : "message" in c ? [c.message] : c.integrity === null ? [] : [c.integrity.message],
      ),
    ];
    accesses.push({
      grant,
      alarms: alarmsAsRecorded(alarms, checks),
      coveredAlarms: new Set([...checks].filter(([, c]) => c.deliveredAt !== undefined).map(([id]) => id)),
      integrity,
      statements: statements.length,
      blocked: statements.filter((s) => s.kind === "blocked"),
      terminalSessions: (terminals as TerminalSession[]).length,
      swept: events.filter((e) => e.type === "target.side_permission_swept").length,
    });
  }
  const runs = (await store.listDrillRuns(null, 10_000)).filter(
    (d) => d.startedAt >= opts.from && d.startedAt < opts.to,
  );
  runs.reverse();
  const runIntegrity = await drillRunIntegrity(store, runs);
  const drills = runs.map((row) => ({ row, integrity: messages(runIntegrity.get(row.id)) }));
  const checkpoints = (await store.readCheckpoints()).filter((c) => c.at >= opts.from && c.at < opts.to);
  const openings = (await store.listVaultOpenings(false)).filter(
    (o) => o.openedAt >= opts.from && o.openedAt < opts.to,
  );
  const openingIntegrity = await vaultOpeningIntegrity(store, openings);
  const vaultOpenings = openings.map((row) => ({ row, integrity: messages(openingIntegrity.get(row.id)) }));
  const rotationEvents: RotationEvent[] = [];
  for (let from = 1; ; ) {
    const batch = await store.readAudit(from, 5000);
    for (const e of batch) {
      if (!ROTATION_EVENTS.has(e.type) || e.at < opts.from || e.at >= opts.to) continue;
      const p = JSON.parse(e.payload) as { target?: string; data?: Record<string, unknown> };
      const d = p.data ?? {};
      rotationEvents.push({
        at: e.at,
        type: e.type as RotationEvent["type"],
        actor: e.actor,
        credential: String(d.credential ?? "") + (p.target && e.type === "credential.rotated" ? ` on ${p.target}` : ""),
        detail: String(d.error ?? d.fix ?? d.verifiedBy ?? ""),
      });
    }
    if (batch.length < 5000) break;
    from = (batch.at(-1)?.seq ?? from) + 1;
  }
  return {
    from: opts.from,
    to: opts.to,
    generatedAt: opts.now,
    accesses,
    drills,
    chain: opts.chain,
    checkpoints,
    vaultOpenings,
    credentials: opts.credentials ?? [],
    rotationEvents,
  };
}

const messages = (i: RowIntegrity | null | undefined): string[] => (i === null || i === undefined ? [] : [i.message]);

const iso = (ms: number | null): string => (ms === null ? "" : new Date(ms).toISOString().replace(".000Z", "Z"));

/** The activation alarm deliveries of an access: channel → delivered at (or not). */
function activationDeliveries(
  a: ReportAccess,
): { channel: string; deliveredAt: number | null; state: string; coveredByVerification: boolean }[] {
  return a.alarms
    .filter((x) => x.eventType === "grant.activated" || x.eventType === "grant.emergency_activated")
    .map((x) => ({
      channel: x.channel,
      deliveredAt: x.deliveredAt,
      state: x.state,
      coveredByVerification: a.coveredAlarms.has(x.id),
    }));
}

export function reportJson(r: EvidenceReport): Record<string, unknown> {
  return {
    period: { from: iso(r.from), to: iso(r.to) },
    generatedAt: iso(r.generatedAt),
    summary: summary(r),
    accesses: r.accesses.map((a) => ({
      grant: a.grant.id,
      role: a.grant.roleId,
      target: a.grant.target,
      holder: a.grant.requester,
      incident: a.grant.incident,
      justification: a.grant.justification,
      emergency: a.grant.emergency,
      viaFallback: a.grant.viaFallback === true,
      drill: a.grant.drill === true,
      requestedAt: iso(a.grant.requestedAt),
      approvals: a.grant.approvals.map((x) => ({ approver: x.approver, at: iso(x.at) })),
      activatedAt: iso(a.grant.activatedAt),
      endedAt: iso(a.grant.endedAt),
      endReason: a.grant.endReason,
      access: a.grant.access,
      activationAlarms: activationDeliveries(a).map((d) => ({ ...d, deliveredAt: iso(d.deliveredAt) || null })),
      session: {
        statements: a.statements,
        blocked: a.blocked.length,
        terminalSessions: a.terminalSessions,
        sweptSidePermissions: a.swept,
      },
      review: a.grant.review
        ? {
            outcome: a.grant.review.outcome,
            reviewer: a.grant.review.reviewer,
            at: iso(a.grant.review.at),
            notes: a.grant.review.notes,
          }
        : null,
      reviewDueAt: iso(a.grant.reviewDueAt) || null,
      integrity: [...a.integrity],
    })),
    drills: r.drills.map(({ row: d, integrity }) => ({
      run: d.id,
      name: d.name,
      scenario: d.scenario,
      at: iso(d.startedAt),
      result: d.result,
      timeToAccessMs: d.timeToAccessMs,
      failedStep: d.steps.find((s) => !s.ok)?.name ?? null,
      integrity: [...integrity],
    })),
    vaultOpenings: r.vaultOpenings.map(({ row: o, integrity }) => ({
      opening: o.id,
      envelope: o.envelopeName,
      envelopeId: o.envelopeId,
      openedAt: iso(o.openedAt),
      custodians: o.custodians.map((c) => c.name),
      reason: o.reason,
      incident: o.incident,
      review: o.review
        ? { outcome: o.review.outcome, reviewer: o.review.reviewer, at: iso(o.review.at), notes: o.review.notes }
        : null,
      reviewDueAt: iso(o.reviewDueAt),
      integrity: [...integrity],
    })),
    rotation: {
      credentials: r.credentials.map((c) => ({
        credential: c.credential,
        rotatedAt: iso(c.rotatedAt) || null,
        ageDays: c.ageDays,
        dueAt: iso(c.dueAt) || null,
        overdue: c.overdue,
      })),
      events: r.rotationEvents.map((e) => ({ ...e, at: iso(e.at) })),
    },
    auditChain: r.chain,
    checkpoints: r.checkpoints.map((c) => ({
      seq: c.seq,
      hash: c.hash,
      at: iso(c.at),
      keyId: c.keyId,
      signature: c.signature,
    })),
    controls: CONTROLS,
  };
}

function summary(r: EvidenceReport) {
  const real = r.accesses.filter((a) => a.grant.drill !== true);
  return {
    accesses: real.length,
    emergency: real.filter((a) => a.grant.emergency).length,
    viaFallback: real.filter((a) => a.grant.viaFallback === true).length,
    reviewed: real.filter((a) => a.grant.review !== null).length,
    unjustified: real.filter((a) => a.grant.review?.outcome === "unjustified").length,
    unreviewed: real.filter((a) => a.grant.review === null).length,
    activationAlarmsDelivered: real.filter((a) => activationDeliveries(a).some((d) => d.deliveredAt !== null)).length,
    drills: r.drills.length,
    drillsPassed: r.drills.filter((d) => d.row.result === "passed").length,
    vaultOpenings: r.vaultOpenings.length,
    vaultOpeningsReviewed: r.vaultOpenings.filter((o) => o.row.review !== null).length,
    editedRows:
      r.accesses.filter((a) => a.integrity.length > 0).length +
      r.drills.filter((d) => d.integrity.length > 0).length +
      r.vaultOpenings.filter((o) => o.integrity.length > 0).length,
    credentials: r.credentials.length,
    credentialsOverdue: r.credentials.filter((c) => c.overdue).length,
    rotations: r.rotationEvents.filter((e) => e.type === "credential.rotated").length,
    auditChainOk: r.chain.ok,
  };
}

export const REPORT_CSV_COLUMNS = [
  "grant",
  "role",
  "holder",
  "incident",
  "emergency",
  "drill",
  "requested_at",
  "approvers",
  "activated_at",
  "ended_at",
  "end_reason",
  "activation_alarm_delivered_at",
  "statements",
  "blocked",
  "review_outcome",
  "reviewer",
  "reviewed_at",
  "integrity",
] as const;

export function reportCsv(r: EvidenceReport): string {
  const rows = r.accesses.map((a) => {
    const delivered = activationDeliveries(a)
      .map((d) => (d.deliveredAt === null ? `${d.channel}: not delivered` : `${d.channel}: ${iso(d.deliveredAt)}`))
      .join("; ");
    return [
      a.grant.id,
      a.grant.roleId,
      a.grant.requester,
      a.grant.incident,
      a.grant.emergency,
      a.grant.drill === true,
      iso(a.grant.requestedAt),
      a.grant.approvals.map((x) => x.approver).join(" "),
      iso(a.grant.activatedAt),
      iso(a.grant.endedAt),
      a.grant.endReason ?? "",
      delivered,
      a.statements,
      a.blocked.length,
      a.grant.review?.outcome ?? "",
      a.grant.review?.reviewer ?? "",
      iso(a.grant.review?.at ?? null),
      a.integrity.join("; "),
    ]
      .map(csvCell)
      .join(",");
  });
  return `${[REPORT_CSV_COLUMNS.join(","), ...rows].join("\r\n")}\r\n`;
}

/** Someone's text in the report: control and bidi characters shown as escapes (`\u202e`), then HTML-escaped. */
const esc = (v: unknown): string =>
  terminalText(String(v ?? "")).replace(
    /[&<>"']/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c] ?? c,
  );

/** Under a table: the rows whose values differ from the audit log (each message names the column and the event). */
function edited(rows: readonly Checked<unknown>[]): string {
  const flagged = rows.flatMap((r) => r.integrity);
  return flagged.length === 0
    ? ""
    : `<p class="bad">EDITED ROWS — these values differ from the audit log, which is the evidence: ${flagged.map(esc).join("; ")}</p>`;
}

/** A self-contained printable document: cover, summary, controls, one page per access, drills, integrity. */
export function reportHtml(r: EvidenceReport): string {
  const s = summary(r);
  const badge = (ok: boolean, yes: string, no: string) =>
    `<span class="${ok ? "ok" : "bad"}">${esc(ok ? yes : no)}</span>`;
  const accessPages = r.accesses
    .map((a) => {
      const g = a.grant;
      const deliveries = activationDeliveries(a);
      return `<section class="page">
<h2>${esc(g.id)} — ${esc(g.roleId)}${g.drill ? " <small>[DRILL]</small>" : ""}</h2>
<table class="kv">
<tr><th>Holder</th><td>${esc(g.requester)}</td><th>Target</th><td>${esc(g.target)}</td></tr>
<tr><th>Incident</th><td>${esc(g.incident)}</td><th>Kind</th><td>${g.emergency ? '<span class="bad">EMERGENCY self-activation (policy bypass)</span>' : "approved request"}${g.viaFallback ? ' · <span class="bad">login via local fallback</span>' : ""}</td></tr>
<tr><th>Justification</th><td colspan="3">${esc(g.justification)}</td></tr>
<tr><th>Requested</th><td>${esc(iso(g.requestedAt))}</td><th>Approvals</th><td>${g.approvals.length === 0 ? "none" : g.approvals.map((x) => `${esc(x.approver)} (${esc(iso(x.at))})`).join("<br>")}</td></tr>
<tr><th>Active</th><td>${esc(iso(g.activatedAt))} → ${esc(iso(g.endedAt))}</td><th>Ended</th><td>${esc(g.endReason ?? "")}; access ${esc(g.access)}</td></tr>
</table>
${a.integrity.length > 0 ? `<p class="bad">EDITED ROWS — these values differ from the audit log, which is the evidence: ${a.integrity.map(esc).join("; ")}</p>` : ""}
<h3>Activation alarms</h3>
<table><tr><th>Channel</th><th>State</th><th>Delivered</th><th>In the audit log</th></tr>
${deliveries.map((d) => `<tr><td>${esc(d.channel)}</td><td>${esc(d.state)}</td><td>${d.deliveredAt === null ? '<span class="bad">not delivered</span>' : esc(iso(d.deliveredAt))}</td><td>${d.coveredByVerification ? "yes (alarm.delivered)" : "no: delivered before deliveries were recorded; not covered by verification"}</td></tr>`).join("\n") || '<tr><td colspan="4" class="bad">no activation alarm</td></tr>'}
</table>
<h3>Session</h3>
<p>${a.statements} recorded statement(s), ${a.blocked.length} blocked, ${a.terminalSessions} recorded terminal session(s), ${a.swept} side permission(s) swept at the end.</p>
${a.blocked.map((b) => `<p class="mono bad">BLOCKED ${esc(iso(b.startedAt))}: ${esc(b.text.slice(0, 300))}</p>`).join("\n")}
<h3>Review</h3>
${
  g.review
    ? `<p>${badge(g.review.outcome !== "unjustified", g.review.outcome, g.review.outcome)} by ${esc(g.review.reviewer)} at ${esc(iso(g.review.at))}</p><p>${esc(g.review.notes)}</p>${(g.review.followUps ?? []).map((f) => `<p>Follow-up: ${esc(f.action)} — owner ${esc(f.owner)}${f.due === null ? "" : `, due ${esc(iso(f.due).slice(0, 10))}`}</p>`).join("")}`
    : g.drill
      ? "<p>A drill's grant: a rehearsal of the real path, not reviewed — its run is listed under Drills.</p>"
      : `<p class="bad">Not reviewed${g.reviewDueAt !== null ? ` (due ${esc(iso(g.reviewDueAt))})` : ""}</p>`
}
</section>`;
    })
    .join("\n");
  const chain = r.chain.ok
    ? `<p>${badge(true, "VERIFIED", "")} ${r.chain.eventsChecked} events, head seq ${r.chain.headSeq} (${esc(r.chain.headHash.slice(0, 16))}…), ${r.chain.checkpointsChecked} signed checkpoint(s) checked, ${r.chain.unanchoredEvents} event(s) after the last checkpoint.</p>`
    : `<p>${badge(false, "", "FAILED")} at seq ${r.chain.seq}: ${esc(r.chain.problem)} — ${esc(r.chain.message)}</p>`;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Break-glass access evidence ${esc(iso(r.from).slice(0, 10))} – ${esc(iso(r.to).slice(0, 10))}</title>
<style>
@page { size: A4; margin: 18mm 16mm; }
body { font-family: "DejaVu Sans", Arial, sans-serif; font-size: 10pt; color: #111; }
h1 { font-size: 22pt; margin: 0 0 6mm; } h2 { font-size: 14pt; border-bottom: 1px solid #999; padding-bottom: 2mm; } h3 { font-size: 11pt; margin: 5mm 0 2mm; }
.page { page-break-before: always; }
/* The cover fills the first printed page; on screen it is just the top of the document. */
@media print { .cover { height: 240mm; display: flex; flex-direction: column; justify-content: center; } }
table { border-collapse: collapse; width: 100%; margin: 2mm 0; } th, td { border: 1px solid #bbb; padding: 1.5mm 2mm; text-align: left; vertical-align: top; }
th { background: #eee; } .kv th { width: 18%; } .ok { color: #0a6b0a; font-weight: bold; } .bad { color: #b00020; font-weight: bold; }
tr.edited td { background: #fde8e8; } .mono { font-family: "DejaVu Sans Mono", monospace; font-size: 8.5pt; } small { color: #555; }
tr { page-break-inside: avoid; } td.controls { white-space: nowrap; width: 30%; }
</style></head><body>
<section class="cover">
<h1>Break-glass access evidence</h1>
<p style="font-size:14pt">Period ${esc(iso(r.from))} to ${esc(iso(r.to))}</p>
<p>Generated ${esc(iso(r.generatedAt))} by Breakglass from its audit log and grant records.</p>
<p>Audit log: ${r.chain.ok ? badge(true, "chain verified", "") : badge(false, "", "chain verification FAILED")}</p>
</section>
<section class="page">
<h2>Summary</h2>
<table>
<tr><th>Break-glass accesses (excluding drills)</th><td>${s.accesses}</td></tr>
<tr><th>of which emergency self-activations</th><td>${s.emergency}</td></tr>
<tr><th>of which from a login via local fallback</th><td>${s.viaFallback}</td></tr>
<tr><th>Activation alarm delivered to a security channel</th><td>${s.activationAlarmsDelivered} of ${s.accesses}</td></tr>
<tr><th>Reviewed</th><td>${s.reviewed} of ${s.accesses}${s.unreviewed > 0 ? ` — <span class="bad">${s.unreviewed} not reviewed</span>` : ""}</td></tr>
<tr><th>Found unjustified</th><td>${s.unjustified}</td></tr>
${s.editedRows > 0 ? `<tr><th>Rows that differ from the audit log</th><td class="bad">${s.editedRows} (flagged on their pages)</td></tr>` : ""}
<tr><th>Drills run / passed</th><td>${s.drills} / ${s.drillsPassed}</td></tr>
<tr><th>Tier-2 envelope openings / reviewed</th><td>${s.vaultOpenings} / ${s.vaultOpeningsReviewed}${s.vaultOpenings > s.vaultOpeningsReviewed ? ` — <span class="bad">${s.vaultOpenings - s.vaultOpeningsReviewed} not reviewed</span>` : ""}</td></tr>
<tr><th>Break-glass credentials within their rotation age</th><td>${s.credentials - s.credentialsOverdue} of ${s.credentials}${s.credentialsOverdue > 0 ? ` — <span class="bad">${s.credentialsOverdue} overdue</span>` : ""}; ${s.rotations} rotation(s) in the period</td></tr>
</table>
<h2>Controls</h2>
<table><tr><th>Section</th><th>Controls</th><th>What it proves</th></tr>
${CONTROLS.map((c) => `<tr><td>${esc(c.section)}</td><td class="controls">${c.controls.map(esc).join("<br>")}</td><td>${esc(c.proves)}</td></tr>`).join("\n")}
</table>
<h2>All accesses</h2>
<table><tr><th>Grant</th><th>Role</th><th>Holder</th><th>Incident</th><th>Active</th><th>Review</th></tr>
${r.accesses.map((a) => `<tr><td class="mono">${esc(a.grant.id)}</td><td>${esc(a.grant.roleId)}${a.grant.emergency ? " (emergency)" : ""}${a.grant.drill ? " [DRILL]" : ""}</td><td>${esc(a.grant.requester)}</td><td>${esc(a.grant.incident)}</td><td>${esc(iso(a.grant.activatedAt))}</td><td>${esc(a.grant.review?.outcome ?? (a.grant.drill ? "drill (not reviewed)" : "not reviewed"))}</td></tr>`).join("\n")}
</table>
</section>
${accessPages}
<section class="page">
<h2>Drills</h2>
<table><tr><th>Drill</th><th>Scenario</th><th>Run at</th><th>Result</th><th>Time to access</th><th>Failed step</th></tr>
${r.drills.map(({ row: d, integrity }) => `<tr${integrity.length > 0 ? ` title="${esc(integrity.join("; "))}" class="edited"` : ""}><td>${esc(d.name)}</td><td>${esc(d.scenario)}</td><td>${esc(iso(d.startedAt))}</td><td>${badge(d.result === "passed", d.result, d.result)}</td><td>${d.timeToAccessMs === null ? "" : `${(d.timeToAccessMs / 1000).toFixed(1)} s`}</td><td>${esc(d.steps.find((x) => !x.ok)?.name ?? "")}</td></tr>`).join("\n") || '<tr><td colspan="6">No drill ran in this period.</td></tr>'}
</table>
${edited(r.drills)}
<h2>Tier-2 openings</h2>
<table><tr><th>Envelope</th><th>Opened</th><th>By (custodians)</th><th>Incident</th><th>Reason</th><th>Review</th></tr>
${r.vaultOpenings.map(({ row: o, integrity }) => `<tr${integrity.length > 0 ? ` title="${esc(integrity.join("; "))}" class="edited"` : ""}><td>${esc(o.envelopeName)}</td><td>${esc(iso(o.openedAt))}</td><td>${o.custodians.map((c) => esc(c.name)).join(", ")}</td><td>${esc(o.incident)}</td><td>${esc(o.reason)}</td><td>${o.review ? `${badge(o.review.outcome !== "unjustified", o.review.outcome, o.review.outcome)} by ${esc(o.review.reviewer)}` : `<span class="bad">not reviewed</span> (due ${esc(iso(o.reviewDueAt))})`}</td></tr>`).join("\n") || '<tr><td colspan="6">No sealed envelope was opened in this period.</td></tr>'}
</table>
${edited(r.vaultOpenings)}
<h2>Credential rotation</h2>
<table><tr><th>Credential</th><th>Last rotated</th><th>Age</th><th>Due</th><th>State</th></tr>
${r.credentials.map((c) => `<tr><td>${esc(c.credential)}</td><td>${esc(iso(c.rotatedAt)) || "never by Breakglass"}</td><td>${c.ageDays === null ? "" : `${c.ageDays} d`}</td><td>${esc(iso(c.dueAt).slice(0, 10))}</td><td>${badge(!c.overdue, "ok", "OVERDUE")}</td></tr>`).join("\n") || '<tr><td colspan="5">No credential listed.</td></tr>'}
</table>
<table><tr><th>When</th><th>Event</th><th>Credential</th><th>By</th><th>Detail</th></tr>
${r.rotationEvents.map((e) => `<tr><td>${esc(iso(e.at))}</td><td>${esc(e.type.replace("credential.", ""))}</td><td>${esc(e.credential)}</td><td>${esc(e.actor)}</td><td>${esc(e.detail)}</td></tr>`).join("\n") || '<tr><td colspan="5">No rotation event in this period.</td></tr>'}
</table>
<h2>Audit log integrity</h2>
${chain}
<table><tr><th>Checkpoint seq</th><th>Signed at</th><th>Key</th><th>Chain hash</th><th>Signature (Ed25519)</th></tr>
${r.checkpoints.map((c) => `<tr><td>${c.seq}</td><td>${esc(iso(c.at))}</td><td class="mono">${esc(c.keyId)}</td><td class="mono">${esc(c.hash.slice(0, 16))}…</td><td class="mono">${esc(c.signature.slice(0, 16))}…</td></tr>`).join("\n") || '<tr><td colspan="5">No checkpoint was signed in this period.</td></tr>'}
</table>
<p><small>Anyone can re-check: <span class="mono">breakglass audit export --format jsonl</span>, then <span class="mono">breakglass audit verify --file audit.jsonl --public-key audit-signing.pem.pub</span>.</small></p>
</section>
</body></html>
`;
}
