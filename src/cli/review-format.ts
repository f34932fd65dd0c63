/**
 * Text for reviewers: the review queue, and a grant's whole story (what the reviewer reads before
 * recording a verdict). Plain text, one fact per line, times in UTC.
 */
import type { z } from "zod";
import type { GrantStorySchema, ReviewQueueSchema } from "../contract/api.js";
import { shortTime, stateText, table } from "./format.js";

type Story = z.output<typeof GrantStorySchema>;
type QueueRow = z.output<typeof ReviewQueueSchema>["reviews"][number];

const duration = (s: number | null): string => {
  if (s === null) return "-";
  if (s < 120) return `${s} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  return `${(s / 3600).toFixed(1)} h`;
};

export function reviewQueueText(rows: readonly QueueRow[]): string {
  if (rows.length === 0) return "No grant is waiting for a review.";
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
    `Grant ${g.id} — ${g.role} on ${g.target} for ${g.requester}, incident ${g.incident}`,
    `state: ${stateText(g)}${g.emergency ? " — EMERGENCY activation (policy bypass)" : ""}${g.viaFallback ? " — requested from a LOGIN VIA LOCAL FALLBACK" : ""}`,
    `justification: ${g.justification}`,
    `approvals: ${g.approvals.length === 0 ? "none" : g.approvals.map((a) => `${a.approver} at ${shortTime(a.at)}`).join(", ")}`,
    `timing: approved after ${duration(s.timing.timeToApprovalS)}, access after ${duration(s.timing.timeToAccessS)}, held ${duration(s.timing.heldS)}; review due ${shortTime(s.timing.reviewDueAt)}`,
    "",
    "Timeline:",
    ...s.timeline.map((e) => `  ${shortTime(e.at)}  #${e.seq}  ${e.type}  by ${e.actor}`),
    "",
    `Alarms (${s.alarms.length}):`,
    ...s.alarms.map(
      (a) =>
        `  ${a.event} → ${a.channel}: ${a.state}${a.deliveredAt ? ` at ${shortTime(a.deliveredAt)}` : ""}${a.lastError ? ` (${a.lastError})` : ""}`,
    ),
    "",
    `Recording: ${s.recording.gatewaySessions} gateway session(s), ${s.recording.statements} statement(s), ${s.recording.errors} with errors, ${s.recording.blocked.length} blocked; ${s.recording.terminalSessions} terminal session(s)`,
    ...s.recording.blocked.map((b) => `  BLOCKED ${shortTime(b.at)}: ${b.statement.slice(0, 200)}`),
    `Side permissions swept at the end: ${s.sweptSidePermissions.length === 0 ? "none" : ""}`,
    ...s.sweptSidePermissions.map((d) => `  ${JSON.stringify(d)}`),
  ];
  if (g.review) {
    lines.push(
      "",
      `Reviewed by ${g.review.reviewer} at ${shortTime(g.review.at)}: ${g.review.outcome} — ${g.review.notes}`,
    );
    for (const f of g.review.followUps)
      lines.push(`  follow-up: ${f.action} (owner ${f.owner}${f.due ? `, due ${f.due}` : ""})`);
  } else if (g.state === "ended") {
    lines.push(
      "",
      `Record the verdict: breakglass review ${g.id} --outcome justified|justified_with_findings|unjustified --notes "…" [--follow-up "ACTION@OWNER[@YYYY-MM-DD]"]`,
    );
  }
  return lines.join("\n");
}
