/**
 * Human output: compact tables and a detailed grant view. Machine output is `--json`, which
 * prints the API's own JSON unchanged.
 *
 * Much of what is shown was written by someone else (a justification, a reason, a note). Control
 * and bidi characters never reach the terminal — the CLI's one output path escapes them (safeIo
 * in cli-io.ts) — and the layout helpers here keep such text from forging a line of its own: a
 * table cell or a one-line field shows a newline as `\n` ({@link cell}), and prose keeps its
 * lines but each is marked as a continuation of its field ({@link prose}).
 */
import type { AlarmView, DomainView, GrantView, Me } from "../contract/api.js";
import { formatDuration } from "../core/duration.js";
import { lineText } from "../core/text.js";

/** Someone's text in a one-line place (a cell, a timeline entry): newline, tab and controls escaped. */
export const cell = (text: string): string => lineText(text);

/**
 * Someone's multi-line text after a label: the first line as is, the others indented by `indent`
 * and marked `│`, so no line of it can pass for one of the program's own.
 */
export function prose(text: string, indent: string): string {
  const [first = "", ...rest] = text.split("\n");
  return [lineText(first), ...rest.map((l) => `${indent}│ ${lineText(l)}`)].join("\n");
}

/** `2026-11-22T04:37:02.123Z` → `2026-11-22 04:37:02Z`. */
export function shortTime(iso: string | null): string {
  if (iso === null) return "-";
  return iso.replace("T", " ").replace(/\.\d+Z$/, "Z");
}

/** Left-aligned columns separated by two spaces; the last column is not padded. */
export function table(header: readonly string[], given: readonly (readonly string[])[]): string {
  const rows = given.map((r) => r.map(cell));
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join("  ")
      .trimEnd();
  return [line(header), ...rows.map(line)].join("\n");
}

/** The state, and `[DRILL]` on a drill's grant: wherever grants are listed, a rehearsal says so. */
export function stateText(grant: Pick<GrantView, "state" | "endReason" | "drill">): string {
  const state = grant.state === "ended" && grant.endReason ? `ended (${grant.endReason})` : grant.state;
  return grant.drill ? `${state} [DRILL]` : state;
}

/** The "what now" column: time left, approvals so far, or nothing. */
export function statusText(grant: GrantView): string {
  switch (grant.state) {
    case "active":
      return `${formatDuration(grant.remainingS ?? 0)} left${grant.emergency ? " (emergency)" : ""}`;
    case "requested":
      return `${grant.approvals.length} approval${grant.approvals.length === 1 ? "" : "s"} (${grant.approvalRule ?? "?"})`;
    case "approved":
      return "approved, not activated";
    case "ended":
      if (grant.drill) return "drill: not reviewed";
      return grant.reviewDueAt ? `review due ${shortTime(grant.reviewDueAt)}` : "";
    case "reviewed":
      return grant.review ? grant.review.outcome : "";
    default:
      return "";
  }
}

export function grantsTable(grants: readonly GrantView[]): string {
  if (grants.length === 0) return "No grants.";
  return table(
    ["ID", "ROLE", "STATE", "REQUESTER", "STATUS", "INCIDENT"],
    grants.map((g) => [g.id, g.role, stateText(g), g.requester, statusText(g), g.incident]),
  );
}

/** The timeline of a grant, oldest first, from its recorded times and its extensions. */
function timeline(g: GrantView): [string, string][] {
  const events: [string, string][] = [];
  const extensions = g.extensions ?? [];
  // `durationS` includes every extension; the request asked for what was left before them.
  const requestedS = g.durationS - extensions.reduce((sum, x) => sum + x.extraS, 0);
  events.push([
    g.requestedAt,
    `${g.emergency ? "emergency activation requested" : "requested"} by ${g.requester} for ${formatDuration(requestedS)}${g.drill ? " (a drill)" : ""}`,
  ]);
  for (const a of g.approvals) {
    events.push([a.at, `approved by ${a.approver}${a.comment ? ` — "${a.comment}"` : ""}`]);
  }
  if (g.approvedAt) events.push([g.approvedAt, `approval rule satisfied (${g.approvalRule ?? "?"})`]);
  if (g.activatedAt) {
    const firstEnd = extensions[0] ? Date.parse(extensions[0].endsAt) - extensions[0].extraS * 1000 : null;
    const until = firstEnd === null ? g.endsAt : new Date(firstEnd).toISOString();
    events.push([g.activatedAt, `activated at target ${g.target}, until ${shortTime(until)}`]);
  }
  for (const x of extensions) {
    events.push([
      x.at,
      `extended by ${x.by} by ${formatDuration(x.extraS)}, until ${shortTime(x.endsAt)} — "${x.reason}"`,
    ]);
  }
  if (g.endedAt) {
    const who = g.closedBy ? ` by ${g.closedBy}` : "";
    const why = g.closeReason ? ` — "${g.closeReason}"` : "";
    const what = g.state === "ended" || g.state === "reviewed" ? `ended (${g.endReason ?? "?"})` : g.state;
    events.push([g.endedAt, `${what}${who}${why}`]);
  }
  if (g.review)
    events.push([g.review.at, `reviewed by ${g.review.reviewer}: ${g.review.outcome} — "${g.review.notes}"`]);
  // A stable sort: events at the same second keep the order they happened in.
  return events.sort((a, b) => a[0].localeCompare(b[0]));
}

export function grantDetail(g: GrantView): string {
  const rows: [string, string][] = [
    ["role", `${g.role} (domain ${g.domain}, target ${g.target})`],
    [
      "state",
      `${stateText(g)}${g.drill ? "  (a drill's grant: a rehearsal of the real path, not reviewed)" : g.emergency ? "  (emergency: must be reviewed)" : ""}`,
    ],
    ["requester", g.requester],
    ["incident", g.incident],
    ["justification", g.justification],
    ["duration", formatDuration(g.durationS)],
    ["approval rule", g.approvalRule ?? "(role no longer configured)"],
  ];
  if (g.state === "active" && g.remainingS !== null) {
    rows.push(["ends", `${shortTime(g.endsAt)} (${formatDuration(g.remainingS)} left)`]);
  } else if (g.endsAt) {
    rows.push(["ends", shortTime(g.endsAt)]);
  }
  if (g.lapseAt && (g.state === "requested" || g.state === "approved")) rows.push(["lapses", shortTime(g.lapseAt)]);
  const failed = `${g.access.attempts} failed attempt${g.access.attempts === 1 ? "" : "s"}`;
  const af = g.access.activationFailure;
  const activatable = g.state === "approved" || g.state === "requested";
  rows.push([
    "access",
    g.access.revocationFailing
      ? `REVOCATION FAILING (${failed}; retried until it succeeds)`
      : af && activatable
        ? `ACTIVATION FAILED (${af.attempts} attempt${af.attempts === 1 ? "" : "s"}); ${af.nextAttemptAt ? `the broker tries again at ${shortTime(af.nextAttemptAt)}` : "no more automatic attempts before it lapses"} — or \`breakglass activate ${g.id}\` now`
        : `${g.access.state}${g.access.attempts > 0 ? ` (${failed})` : ""}`,
  ]);
  if (g.access.lastError) rows.push(["last target error", g.access.lastError]);
  if (g.access.nextAttemptAt) rows.push(["next attempt", shortTime(g.access.nextAttemptAt)]);
  if (g.reviewDueAt && g.state === "ended") rows.push(["review due", shortTime(g.reviewDueAt)]);
  const width = Math.max(...rows.map(([k]) => k.length));
  return [
    `Grant ${cell(g.id)}`,
    ...rows.map(([k, v]) => `  ${k.padEnd(width)}  ${prose(v, " ".repeat(width + 4))}`),
    "",
    "Timeline",
    ...timeline(g).map(([at, text]) => `  ${shortTime(at)}  ${cell(text)}`),
    ...(g.alarms && g.alarms.length > 0
      ? [
          "",
          g.unalarmed ? "Alarms — UNALARMED: no security channel has delivered the activation alarm" : "Alarms",
          ...g.alarms.map(alarmLine),
        ]
      : []),
  ].join("\n");
}

function alarmLine(a: AlarmView): string {
  const tries = `${a.attempts} attempt${a.attempts === 1 ? "" : "s"}`;
  const state =
    a.state === "delivered"
      ? `delivered in ${a.latencyMs ?? "?"} ms (${tries})`
      : a.state === "failed"
        ? `FAILED for good after ${tries}: ${a.lastError ?? ""}`
        : a.attempts > 0
          ? `NOT DELIVERED yet (${tries}; last error: ${a.lastError ?? ""}); next try ${a.nextAttemptAt ? shortTime(a.nextAttemptAt) : "soon"}`
          : "queued";
  return `  ${cell(a.channel).padEnd(14)} ${cell(a.event).padEnd(26)} ${cell(state)}`;
}

/** One line after an action: what happened and what comes next. */
export function actionSummary(g: GrantView): string {
  return cell(actionLine(g));
}

function actionLine(g: GrantView): string {
  const head = `${g.id}  ${g.role}  ${stateText(g)}`;
  switch (g.state) {
    case "requested":
      if (g.emergency && g.access.activationFailure)
        return `${head}  — EMERGENCY ACTIVATION FAILED at ${g.target}: ${g.access.activationFailure.lastError}; ${g.access.activationFailure.nextAttemptAt ? `the broker tries again at ${shortTime(g.access.activationFailure.nextAttemptAt)}` : "no more automatic attempts"} (or \`breakglass activate ${g.id}\`); security is paged`;
      return `${head}  — ${g.approvals.length} approval${g.approvals.length === 1 ? "" : "s"} so far; needs ${g.approvalRule ?? "?"}`;
    case "approved":
      return g.access.activationFailure
        ? `${head}  — approved, but ACTIVATION FAILED at ${g.target}: ${g.access.activationFailure.lastError}; ${g.access.activationFailure.nextAttemptAt ? `the broker tries again at ${shortTime(g.access.activationFailure.nextAttemptAt)}` : "no more automatic attempts"} (or \`breakglass activate ${g.id}\`)`
        : `${head}  — approved; the requester activates it with \`breakglass activate ${g.id}\``;
    case "active":
      return `${head}  — until ${shortTime(g.endsAt)} (${formatDuration(g.remainingS ?? 0)} left)${g.emergency && !g.drill ? "; emergency use: it will be reviewed" : ""}`;
    case "ended":
      return `${head}  — access at ${g.target}: ${g.access.state}${g.access.lastError ? ` (last error: ${g.access.lastError})` : ""}`;
    default:
      return head;
  }
}

export function rolesTable(domains: readonly DomainView[]): string {
  const rows = domains.flatMap((d) =>
    d.roles.map((r) => [
      r.id,
      formatDuration(r.defaultDurationS),
      formatDuration(r.maxDurationS),
      r.approval,
      r.emergencyAllowed ? "yes" : "no",
      r.canRequest ? "yes" : "no",
      r.description,
    ]),
  );
  if (rows.length === 0) return "No roles are configured.";
  return table(["ROLE", "DEFAULT", "MAX", "APPROVAL", "EMERGENCY", "YOU", "DESCRIPTION"], rows);
}

export function meText(me: Me): string {
  const lines = [
    cell(`${me.user} (${me.displayName})${me.email ? ` <${me.email}>` : ""}`),
    cell(`groups: ${me.groups.length > 0 ? me.groups.join(", ") : "(none)"}`),
  ];
  if (me.admin) lines.push("admin: may revoke any grant");
  return lines.join("\n");
}
