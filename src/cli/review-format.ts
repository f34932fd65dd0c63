/**
 * Text for reviewers: the review queue, and a grant's whole story (what the reviewer reads before
 * recording a verdict). Plain text, one fact per line, times in UTC.
 */
import type { z } from "zod";
import type { GrantStorySchema, ReviewQueueSchema } from "../contract/api.js";
import { cell, prose, shortTime, stateText, table } from "./format.js";

type Story = z.output<typeof GrantStorySchema>;
type QueueRow = z.output<typeof ReviewQueueSchema>["reviews"][number];

const duration = (s: number | null): string => {
  if (s === null) return "-";
  if (s < 120) return `${s} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  return `${(s / 3600).toFixed(1)} h`;
};

type OpeningRow = z.output<typeof ReviewQueueSchema>["vaultOpenings"][number];

export function reviewQueueText(rows: readonly QueueRow[], openings: readonly OpeningRow[] = []): string {
  const tier2 =
    openings.length === 0
      ? []
      : [
          "TIER-2 ENVELOPE OPENINGS (breakglass review vo_… --outcome … --notes …):",
          table(
            ["OPENING", "ENVELOPE", "OPENED BY", "INCIDENT", "DUE", "", "YOU"],
            openings.map((o) => [
              o.opening.id,
              o.opening.envelope.name,
              o.opening.custodians.map((c) => c.name).join(", "),
              o.opening.incident,
              shortTime(o.opening.reviewDueAt),
              o.overdue ? "OVERDUE" : "",
              o.canReview ? "may review" : `no: ${o.why ?? ""}`,
            ]),
          ),
          "",
        ];
  if (rows.length === 0) return [...tier2, "No grant is waiting for a review."].join("\n");
  return [...tier2, grantQueue(rows)].join("\n");
}

function grantQueue(rows: readonly QueueRow[]): string {
  return table(
    ["GRANT", "ROLE", "HOLDER", "INCIDENT", "DUE", "", "YOU"],
    rows.map((r) => [
      r.grant.id,
      r.grant.role,
      r.grant.requester,
      r.grant.incident,
      shortTime(r.dueAt),
      `${r.overdue ? "OVERDUE " : ""}${r.emergency ? "emergency" : ""}`.trim(),
      r.canReview ? "may review" : `no: ${r.why ?? ""}`,
    ]),
  );
}

export function storyText(s: Story): string {
  const g = s.grant;
  const lines: string[] = [
    cell(`Grant ${g.id} — ${g.role} on ${g.target} for ${g.requester}, incident ${g.incident}`),
    `state: ${stateText(g)}${g.drill ? " — a drill's grant (rehearsal; not reviewed)" : ""}${g.emergency ? " — EMERGENCY activation (policy bypass)" : ""}${g.viaFallback ? " — requested from a LOGIN VIA LOCAL FALLBACK" : ""}`,
    `justification: ${prose(g.justification, "  ")}`,
    cell(
      `approvals: ${g.approvals.length === 0 ? "none" : g.approvals.map((a) => `${a.approver} at ${shortTime(a.at)}`).join(", ")}`,
    ),
    `timing: approved after ${duration(s.timing.timeToApprovalS)}, access after ${duration(s.timing.timeToAccessS)}, held ${duration(s.timing.heldS)}; review due ${shortTime(s.timing.reviewDueAt)}`,
    "",
    "Timeline:",
    ...s.timeline.map((e) => cell(`  ${shortTime(e.at)}  #${e.seq}  ${e.type}  by ${e.actor}`)),
    "",
    `Alarms (${s.alarms.length}):`,
    ...s.alarms.map(
      (a) =>
        `  ${a.event} → ${a.channel}: ${a.state}${a.deliveredAt ? ` at ${shortTime(a.deliveredAt)}` : ""}${a.lastError ? ` (${cell(a.lastError)})` : ""}`,
    ),
    "",
    `Recording: ${s.recording.gatewaySessions} gateway session(s), ${s.recording.statements} statement(s), ${s.recording.errors} with errors, ${s.recording.blocked.length} blocked; ${s.recording.terminalSessions} terminal session(s)`,
    ...s.recording.blocked.map((b) => `  BLOCKED ${shortTime(b.at)}: ${cell(b.statement.slice(0, 200))}`),
    `Side permissions swept at the end: ${s.sweptSidePermissions.length === 0 ? "none" : ""}`,
    ...s.sweptSidePermissions.map((d) => `  ${cell(JSON.stringify(d))}`),
  ];
  if (g.review) {
    lines.push(
      "",
      `Reviewed by ${cell(g.review.reviewer)} at ${shortTime(g.review.at)}: ${g.review.outcome} — ${prose(g.review.notes, "  ")}`,
    );
    for (const f of g.review.followUps)
      lines.push(cell(`  follow-up: ${f.action} (owner ${f.owner}${f.due ? `, due ${f.due}` : ""})`));
  } else if (s.canReview) {
    lines.push(
      "",
      `Record the verdict: breakglass review ${g.id} --outcome justified|justified_with_findings|unjustified --notes "…" [--follow-up "ACTION@OWNER[@YYYY-MM-DD]"]`,
    );
  } else if (s.why !== null) {
    // Only someone who may record the verdict is told how; everyone else is told why not.
    lines.push("", `You cannot record its verdict: ${cell(s.why)}`);
  }
  return lines.join("\n");
}

/** A tier-2 opening as its reviewer reads it. */
export function openingText(o: OpeningRow): string {
  const v = o.opening;
  return [
    cell(`Tier-2 opening ${v.id}: envelope ${v.envelope.name} (${v.envelope.id}), record ${v.record.seq}`),
    cell(`opened ${shortTime(v.openedAt)} by ${v.custodians.map((c) => `${c.name} (${c.fingerprint})`).join(" and ")}`),
    `reason: ${prose(v.reason, "  ")}`,
    cell(`incident: ${v.incident}`),
    `imported ${shortTime(v.importedAt)}; review due ${shortTime(v.reviewDueAt)}${o.overdue ? " — OVERDUE" : ""}`,
    o.canReview
      ? `Record the verdict: breakglass review ${v.id} --outcome justified|justified_with_findings|unjustified --notes "…"`
      : cell(`You may not review it: ${o.why ?? ""}`),
  ].join("\n");
}
