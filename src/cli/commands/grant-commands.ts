/**
 * Commands that talk to a running broker over the HTTP API: request, approve, deny, cancel,
 * activate, revoke, release, review, grants, show, roles, whoami.
 * They read `BREAKGLASS_URL` (default http://127.0.0.1:8080) and `BREAKGLASS_TOKEN`.
 */

import { GRANT_PAGE_MAX, type GrantList, type GrantView, REVIEW_OUTCOMES } from "../../contract/api.js";
import { durationProblem, isDuration } from "../../core/duration.js";
import { type ApiClient, apiBase, createApiClient, DEFAULT_BROKER_URL } from "../api-client.js";
import { CliError, type CliIo, UsageError } from "../cli-io.js";
import type { Command, CommandInput, OptionSpec } from "../command.js";
import { EXIT } from "../exit-codes.js";
import { actionSummary, cell, grantDetail, grantsTable, meText, rolesTable, shortTime } from "../format.js";
import { openingText, reviewQueueText, storyText } from "../review-format.js";
import { readSession } from "../session-file.js";

export const API_ENV_NOTES = [
  "Environment:",
  `  BREAKGLASS_URL    the broker (default ${DEFAULT_BROKER_URL}, or the one you logged in to)`,
  "  BREAKGLASS_TOKEN  an API token (from `breakglass token create`); else the session of `breakglass login`",
];

const JSON_OPTION: OptionSpec = { type: "boolean", description: "Print the API's JSON instead of text" };
const ID_ARG = { name: "ID", required: true, description: "Grant id (g_…)" } as const;

export function clientFrom(io: CliIo): ApiClient {
  const token = io.env.BREAKGLASS_TOKEN?.trim();
  const url = io.env.BREAKGLASS_URL?.trim();
  if (token) return createApiClient({ url: url || DEFAULT_BROKER_URL, token });
  const session = readSession(io);
  if (session && (!url || apiBase(url) === apiBase(session.url))) {
    return createApiClient({ url: session.url, token: session.token });
  }
  throw new UsageError(
    "not signed in: run `breakglass login` (or set BREAKGLASS_TOKEN to an API token from `breakglass token create`)",
  );
}

const printJson = (io: CliIo, value: unknown) => io.out(JSON.stringify(value, null, 2));

function printGrant(io: CliIo, input: CommandInput, grant: GrantView): number {
  if (input.flag("json")) printJson(io, grant);
  else io.out(actionSummary(grant));
  return EXIT.OK;
}

/** `--duration 30m`; a bare number (`--duration 30`) is refused with the unit it lacks, never taken as seconds. */
function durationValue(text: string | undefined, option: string, command: string): string | undefined {
  if (text === undefined) return undefined;
  if (!isDuration(text)) throw new UsageError(`--${option} ${durationProblem(text)}`, command);
  return text.trim();
}

/** An action on one grant that takes a reason. */
function reasonAction(name: "deny" | "cancel" | "revoke", summary: string): Command {
  return {
    name,
    summary,
    args: [ID_ARG],
    options: {
      reason: { type: "string", value: "TEXT", required: true, description: "Why (recorded in the audit log)" },
      json: JSON_OPTION,
    },
    notes: API_ENV_NOTES,
    async run(input, io) {
      const grant = await clientFrom(io).act(input.arg(0), name, { reason: input.requireString("reason") });
      return printGrant(io, input, grant);
    },
  };
}

/** An action on one grant without fields. */
function plainAction(name: "activate" | "release", summary: string): Command {
  return {
    name,
    summary,
    args: [ID_ARG],
    options: { json: JSON_OPTION },
    notes: API_ENV_NOTES,
    async run(input, io) {
      return printGrant(io, input, await clientFrom(io).act(input.arg(0), name, {}));
    },
  };
}

const incidentCommand: Command = {
  name: "incident",
  summary: "An incident's record: its grants, their timeline, and every alarm with its delivery",
  args: [{ name: "ID", required: true, description: "Incident id, e.g. INC-4711" }],
  options: { json: JSON_OPTION },
  notes: API_ENV_NOTES,
  async run(input, io) {
    const r = await clientFrom(io).incident(input.arg(0));
    if (input.flag("json")) {
      printJson(io, r);
      return EXIT.OK;
    }
    io.out(`Incident ${r.incident}: ${r.grants.length} grant(s)`);
    io.out(grantsTable(r.grants));
    io.out("");
    io.out("Timeline");
    for (const e of r.timeline)
      io.out(`  ${shortTime(e.at)}  ${e.type.padEnd(28)} ${e.actor.padEnd(10)} ${e.grantId ?? ""}`);
    io.out("");
    io.out("Alarms");
    for (const a of r.alarms) {
      // Worded as `show` words it: an alarm not delivered says why.
      const tries = `${a.attempts} attempt${a.attempts === 1 ? "" : "s"}`;
      const state =
        a.state === "delivered"
          ? `delivered in ${a.latencyMs ?? "?"} ms`
          : a.state === "failed"
            ? `FAILED for good after ${tries}: ${a.lastError ?? ""}`
            : a.attempts > 0
              ? `NOT DELIVERED yet (${tries}; last error: ${a.lastError ?? ""})`
              : "QUEUED";
      io.out(`  ${a.channel.padEnd(14)} ${a.event.padEnd(28)} ${state}`);
    }
    return EXIT.OK;
  },
};

const reconcileCommand: Command = {
  name: "reconcile",
  summary: "Compare every target with the broker's records now (admins): leftovers removed, drift reported",
  args: [],
  options: { json: JSON_OPTION },
  notes: ["Exit code 6 when anything was fixed, reported or could not be checked.", "", ...API_ENV_NOTES],
  async run(input, io) {
    const r = await clientFrom(io).reconcile();
    if (input.flag("json")) printJson(io, r);
    else {
      io.out(`checked ${r.checkedGrants} grant(s) at their targets`);
      for (const f of r.fixed)
        io.out(`FIXED     ${f.target}: ${f.kind} of grant ${f.grantId} (access was still there; revoked again)`);
      for (const d of r.reported) io.out(cell(`DRIFT     ${d.target}: ${d.description}`));
      for (const e of r.errors) io.out(cell(`UNCHECKED ${e.target}${e.grantId ? ` (${e.grantId})` : ""}: ${e.error}`));
      if (r.fixed.length + r.reported.length + r.errors.length === 0) io.out("no drift");
    }
    return r.fixed.length + r.reported.length + r.errors.length === 0 ? EXIT.OK : EXIT.CHECK_FAILED;
  },
};

export const grantCommands: readonly Command[] = [
  {
    name: "request",
    summary: "Request a recovery role (or break the glass with --emergency)",
    description:
      "Request ROLE (DOMAIN/ROLE, see `breakglass roles`) for an incident. Approvers then approve it; with --emergency a role that allows it is activated at once, and the use must be reviewed.",
    args: [{ name: "ROLE", required: true, description: "Role id, DOMAIN/ROLE" }],
    options: {
      reason: { type: "string", value: "TEXT", required: true, description: "Justification: why you need access" },
      incident: { type: "string", value: "ID", required: true, description: "Incident id, e.g. INC-1234" },
      duration: { type: "string", value: "30m", description: "How long (default: the role's default)" },
      emergency: { type: "boolean", description: "Self-activate without approval (roles that allow it)" },
      json: JSON_OPTION,
    },
    notes: [
      "Example:",
      '  breakglass request production/db-admin --reason "primary database is down" --incident INC-1234',
      "",
      ...API_ENV_NOTES,
    ],
    async run(input, io) {
      const duration = durationValue(input.string("duration"), "duration", "request");
      const grant = await clientFrom(io).requestGrant({
        role: input.arg(0),
        justification: input.requireString("reason"),
        incident: input.requireString("incident"),
        ...(duration === undefined ? {} : { duration }),
        ...(input.flag("emergency") ? { emergency: true } : {}),
      });
      return printGrant(io, input, grant);
    },
  },
  {
    name: "approve",
    summary: "Approve a requested grant (never your own)",
    args: [ID_ARG],
    options: { comment: { type: "string", value: "TEXT", description: "A note for the record" }, json: JSON_OPTION },
    notes: API_ENV_NOTES,
    async run(input, io) {
      const comment = input.string("comment");
      const grant = await clientFrom(io).act(input.arg(0), "approve", comment === undefined ? {} : { comment });
      return printGrant(io, input, grant);
    },
  },
  reasonAction("deny", "Deny a requested grant"),
  reasonAction("cancel", "Withdraw your own request before it is active"),
  plainAction("activate", "Activate your approved grant (roles that do not auto-activate)"),
  reasonAction("revoke", "End a grant early and take its access away (approvers and admins)"),
  plainAction("release", "Give your active grant back early"),
  reconcileCommand,
  incidentCommand,
  {
    name: "ack",
    summary: "Acknowledge an activation's alarm, so it does not escalate (approvers of the role, admins)",
    args: [ID_ARG],
    options: { comment: { type: "string", value: "TEXT", description: "A note for the record" }, json: JSON_OPTION },
    notes: API_ENV_NOTES,
    async run(input, io) {
      const comment = input.string("comment");
      const grant = await clientFrom(io).act(input.arg(0), "ack", comment === undefined ? {} : { comment });
      return printGrant(io, input, grant);
    },
  },
  {
    name: "containment resolve",
    summary:
      "Record what was done about what a grant's end could only contain or had to leave at the target (its containment drift); until then its review cannot be `justified`",
    description:
      "The drift items are in the grant's story (`breakglass review ID`, events target.containment_drift); one resolution closes every open item and pages security like the drift did. Never by the grant's holder or an approver.",
    args: [ID_ARG],
    options: {
      note: {
        type: "string",
        value: "TEXT",
        description: "What was done (who fixed what at the target, or why it stays)",
      },
      json: JSON_OPTION,
    },
    notes: [
      "Example:",
      '  breakglass containment resolve g_… --note "dropped public.audit_copy; new password for reporting set by the app team"',
      "",
      ...API_ENV_NOTES,
    ],
    async run(input, io) {
      const grant = await clientFrom(io).act(input.arg(0), "resolve", { note: input.requireString("note") });
      return printGrant(io, input, grant);
    },
  },
  {
    name: "extend",
    summary: "Extend your active grant (within the role's maximum); the target's expiry moves too",
    args: [ID_ARG],
    options: {
      by: { type: "string", value: "15m", required: true, description: "How much longer" },
      reason: { type: "string", value: "TEXT", required: true, description: "Why (recorded in the audit log)" },
      json: JSON_OPTION,
    },
    notes: API_ENV_NOTES,
    async run(input, io) {
      const by = durationValue(input.requireString("by"), "by", "extend") ?? "";
      const grant = await clientFrom(io).act(input.arg(0), "extend", { by, reason: input.requireString("reason") });
      return printGrant(io, input, grant);
    },
  },
  {
    name: "credential",
    summary: "Print the credential of your active grant (connection string, certificate, keys)",
    description:
      "Prints what gets you in at the target, for as long as the grant is active. Only the holder can read it, and every read is recorded in the audit log. It is printed to stdout alone, so it can be captured: `export DATABASE_URL=$(breakglass credential g_…)`.",
    args: [ID_ARG],
    options: { json: JSON_OPTION },
    notes: API_ENV_NOTES,
    async run(input, io) {
      const view = await clientFrom(io).credential(input.arg(0));
      if (input.flag("json")) printJson(io, view);
      else io.out(view.credential);
      return EXIT.OK;
    },
  },
  {
    name: "recording",
    summary: "Show every statement a grant's gateway sessions ran, in order",
    description:
      "The holder, approvers of the role and admins can read it; every read is recorded in the audit log. Blocked statements (refused by the role's guard) are marked BLOCKED; failed ones show their SQLSTATE.",
    args: [ID_ARG],
    options: { json: JSON_OPTION },
    notes: API_ENV_NOTES,
    async run(input, io) {
      const view = await clientFrom(io).recording(input.arg(0));
      if (input.flag("json")) {
        printJson(io, view);
        return EXIT.OK;
      }
      if (view.statements.length === 0) {
        io.out(`grant ${view.grantId}: no statements recorded (no gateway session, or none ran a statement)`);
        return EXIT.OK;
      }
      let session = "";
      for (const s of view.statements) {
        if (s.session !== session) {
          session = s.session;
          io.out(`session ${session}`);
        }
        const ms = s.endedAt ? `${Date.parse(s.endedAt) - Date.parse(s.startedAt)} ms` : "unfinished";
        const outcome =
          s.kind === "blocked"
            ? "BLOCKED"
            : s.error
              ? `ERROR ${s.error}`
              : s.kind === "prepare"
                ? "PREPARED"
                : (s.tag ?? "");
        const text = s.text.replace(/\s+/g, " ").trim();
        io.out(
          `  ${String(s.seq).padStart(4)}  ${s.startedAt.slice(11, 23)}  ${ms.padStart(9)}  ${outcome}  ${text.length > 160 ? `${text.slice(0, 157)}…` : text}${s.params ? `  [${s.params.map((p) => (p === null ? "NULL" : JSON.stringify(p))).join(", ")}]` : ""}`,
        );
      }
      return EXIT.OK;
    },
  },
  {
    name: "review",
    summary:
      "Show an ended grant's whole story (or a tier-2 opening, vo_…) for its review, or record the review (--outcome, --notes)",
    description:
      "Without --outcome: the whole story of the grant — justification, approvals, every event, alarms and their delivery, what the gateway recorded, side permissions swept, timing — and the command to record the verdict. With --outcome and --notes: records the review (never by the holder or an approver; emergency activations by the reviewer group). `unjustified` pages security.",
    args: [{ name: "ID", required: true, description: "Grant id (g_…) or tier-2 opening id (vo_…)" }],
    options: {
      outcome: { type: "string", value: REVIEW_OUTCOMES.join("|"), description: "The verdict" },
      notes: { type: "string", value: "TEXT", description: "What was done, findings" },
      "follow-up": {
        type: "string",
        value: "ACTION@OWNER[@YYYY-MM-DD]",
        multiple: true,
        description: "A follow-up action and who owns it",
      },
      json: JSON_OPTION,
    },
    notes: [
      "Example:",
      '  breakglass review g_… --outcome justified_with_findings --notes "left a temp table" \\',
      '    --follow-up "drop temp table tmp_fix@bob@2026-12-05"',
      "",
      ...API_ENV_NOTES,
    ],
    async run(input, io) {
      const client = clientFrom(io);
      const outcome = input.string("outcome");
      if (outcome === undefined && input.arg(0).startsWith("vo_")) {
        const found = (await client.reviews({})).vaultOpenings.find((o) => o.opening.id === input.arg(0));
        if (!found) {
          throw new CliError(
            EXIT.REFUSED,
            `no tier-2 opening ${input.arg(0)} is waiting for a review`,
            undefined,
            "ERR_NOT_FOUND",
          );
        }
        if (input.flag("json")) printJson(io, found);
        else io.out(openingText(found));
        return EXIT.OK;
      }
      if (outcome === undefined) {
        const story = await client.story(input.arg(0));
        if (input.flag("json")) printJson(io, story);
        else io.out(storyText(story));
        return EXIT.OK;
      }
      const valid = REVIEW_OUTCOMES.find((o) => o === outcome);
      if (!valid) throw new UsageError(`--outcome must be one of ${REVIEW_OUTCOMES.join(", ")}`, "review");
      const followUps = input.strings("follow-up").map((text) => {
        // ACTION@OWNER[@YYYY-MM-DD]; an owner may be an e-mail address (alice@example.com).
        const parts = text.split("@").map((x) => x.trim());
        const action = parts.shift();
        const due = /^\d{4}-\d\d-\d\d$/.test(parts.at(-1) ?? "") && parts.length > 1 ? parts.pop() : undefined;
        const owner = parts.join("@");
        if (!action || !owner)
          throw new UsageError(`--follow-up "${text}": write it as ACTION@OWNER[@YYYY-MM-DD]`, "review");
        return { action, owner, ...(due ? { due } : {}) };
      });
      const body = {
        outcome: valid,
        notes: input.requireString("notes"),
        ...(followUps.length > 0 ? { followUps } : {}),
      };
      if (input.arg(0).startsWith("vo_")) {
        // A tier-2 envelope opening (from `breakglass reviews`).
        const opening = await client.reviewVaultOpening(input.arg(0), body);
        if (input.flag("json")) printJson(io, opening);
        else io.out(`Tier-2 opening ${opening.id} of ${opening.envelope.name} reviewed: ${opening.review?.outcome}`);
        return EXIT.OK;
      }
      const grant = await client.act(input.arg(0), "review", body);
      return printGrant(io, input, grant);
    },
  },
  {
    name: "reviews",
    summary: "The review queue: tier-2 openings and ended grants waiting for a review, oldest deadline first",
    args: [],
    options: {
      overdue: { type: "boolean", description: "Only those past their deadline" },
      mine: { type: "boolean", description: "Only those you may review" },
      json: JSON_OPTION,
    },
    notes: API_ENV_NOTES,
    async run(input, io) {
      const q = await clientFrom(io).reviews({ overdue: input.flag("overdue"), mine: input.flag("mine") });
      if (input.flag("json")) printJson(io, q);
      else io.out(reviewQueueText(q.reviews, q.vaultOpenings));
      return EXIT.OK;
    },
  },
  {
    name: "grants",
    summary: "List grants (newest first)",
    args: [],
    options: {
      state: { type: "string", value: "S[,S…]", description: "Only these states (e.g. active or requested,approved)" },
      mine: { type: "boolean", description: "Only your own grants" },
      requester: { type: "string", value: "USER", description: "Only grants of this user" },
      role: { type: "string", value: "ROLE", description: "Only grants of this role" },
      limit: {
        type: "string",
        value: "N",
        description: "At most N grants (default 100; fetched a page at a time)",
      },
      json: JSON_OPTION,
    },
    notes: API_ENV_NOTES,
    async run(input, io) {
      const limitText = input.string("limit");
      if (limitText !== undefined && !/^\d+$/.test(limitText))
        throw new UsageError("--limit must be a number", "grants");
      const wanted = limitText === undefined ? 100 : Number(limitText);
      if (wanted < 1) throw new UsageError("--limit must be at least 1", "grants");
      const client = clientFrom(io);
      // The API serves a page at a time: follow `next` until N grants or the last page.
      const grants: GrantList["grants"] = [];
      let next: string | null = null;
      do {
        const page: GrantList = await client.listGrants({
          state: input.string("state"),
          requester: input.string("requester"),
          role: input.string("role"),
          mine: input.flag("mine") ? "true" : undefined,
          limit: Math.min(wanted - grants.length, GRANT_PAGE_MAX),
          cursor: next ?? undefined,
        });
        grants.push(...page.grants);
        next = page.next;
      } while (next !== null && grants.length < wanted);
      const list: GrantList = { grants, next };
      if (input.flag("json")) printJson(io, list);
      else io.out(grantsTable(list.grants));
      return EXIT.OK;
    },
  },
  {
    name: "show",
    summary: "Show one grant: approvals, access at the target, timeline",
    args: [ID_ARG],
    options: { json: JSON_OPTION },
    notes: API_ENV_NOTES,
    async run(input, io) {
      const grant = await clientFrom(io).getGrant(input.arg(0));
      if (input.flag("json")) printJson(io, grant);
      else io.out(grantDetail(grant));
      return EXIT.OK;
    },
  },
  {
    name: "roles",
    summary: "List domains and recovery roles you can request",
    args: [],
    options: { json: JSON_OPTION },
    notes: API_ENV_NOTES,
    async run(input, io) {
      const roles = await clientFrom(io).roles();
      if (input.flag("json")) printJson(io, roles);
      else io.out(rolesTable(roles.domains));
      return EXIT.OK;
    },
  },
  {
    name: "whoami",
    summary: "Show who your token belongs to, and your groups",
    args: [],
    options: { json: JSON_OPTION },
    notes: API_ENV_NOTES,
    async run(input, io) {
      const me = await clientFrom(io).me();
      if (input.flag("json")) printJson(io, me);
      else io.out(meText(me));
      return EXIT.OK;
    },
  },
];
