/**
 * Drills from the terminal: `drill run NAME` starts one on the broker and follows it step by step
 * (exit 0 passed, 6 failed); `drill list` shows each drill's last result.
 */
import type { z } from "zod";
import type { DrillRunViewSchema } from "../../contract/api.js";
import type { Command } from "../command.js";
import { EXIT } from "../exit-codes.js";
import { shortTime, table } from "../format.js";
import { API_ENV_NOTES, clientFrom } from "./grant-commands.js";

type Run = z.output<typeof DrillRunViewSchema>;

function runText(r: Run): string {
  const head = `Drill ${r.name} (${r.scenario}), run ${r.id}: ${r.result.toUpperCase()}${r.timeToAccessMs === null ? "" : `, time to access ${(r.timeToAccessMs / 1000).toFixed(1)} s`}${r.grantId ? `, grant ${r.grantId}` : ""}`;
  const rows = r.steps.map((s) => [s.ok ? "ok" : "FAIL", `${s.ms} ms`, s.name, s.detail]);
  return `${head}\n${table(["", "TIME", "STEP", "DETAIL"], rows)}`;
}

export const drillCommands: readonly Command[] = [
  {
    name: "posture",
    summary:
      "Is every break-glass role ready: last use, last drill, reviews, unalarmed grants — with the fix for each red item",
    description:
      "Exit 0 when green or amber, 6 when anything is red (for monitoring; 1 only when the broker refuses, e.g. a token without the `read` scope).",
    args: [],
    options: { json: { type: "boolean", description: "Print the API's JSON" } },
    notes: API_ENV_NOTES,
    async run(input, io) {
      const p = await clientFrom(io).posture();
      if (input.flag("json")) io.out(JSON.stringify(p, null, 2));
      else {
        const lines = [`Posture: ${p.status.toUpperCase()} (checked ${shortTime(p.checkedAt)})`, ""];
        lines.push(
          table(
            ["ROLE", "STATUS", "LAST USE", "LAST DRILL", "REVIEWS OPEN/OVERDUE", "ACTIVE"],
            p.roles.map((r) => [
              r.role,
              r.status.toUpperCase(),
              shortTime(r.lastUse),
              r.lastDrill ? `${r.lastDrill.name} ${r.lastDrill.result} ${shortTime(r.lastDrill.at)}` : "never",
              `${r.openReviews}/${r.overdueReviews}`,
              String(r.activeGrants),
            ]),
          ),
        );
        for (const r of p.roles) {
          for (const i of r.items) lines.push(`${i.level.toUpperCase()} ${r.role}: ${i.what}\n    fix: ${i.fix}`);
        }
        for (const i of p.vault) lines.push(`${i.level.toUpperCase()} ${i.what}\n    fix: ${i.fix}`);
        for (const c of p.credentials.filter((x) => x.overdue)) {
          lines.push(
            `RED ${c.credential}: ${c.rotatedAt === null ? "never rotated by Breakglass" : `${c.ageDays} days old`}\n    fix: ${c.fix}`,
          );
        }
        io.out(lines.join("\n"));
      }
      return p.status === "red" ? EXIT.CHECK_FAILED : EXIT.OK;
    },
  },
  {
    name: "drill run",
    summary: "Run a drill now: the real break-glass path in drill mode, each step timed (admins)",
    description:
      "Starts the drill on the broker and follows it until it ends. Events are tagged `drill` and alarms start with [DRILL]. Exit 0 when it passed, 6 when a step failed (the step and why are printed).",
    args: [{ name: "NAME", required: true, description: "A drill under `drills` in the configuration" }],
    options: { json: { type: "boolean", description: "Print the run's JSON" } },
    notes: API_ENV_NOTES,
    async run(input, io) {
      const client = clientFrom(io);
      let run = await client.runDrill(input.arg(0));
      let shown = 0;
      while (run.result === "running") {
        await new Promise((r) => setTimeout(r, 500));
        run = await client.drillRun(run.id);
        if (!input.flag("json")) {
          for (const s of run.steps.slice(shown)) io.err(`  ${s.ok ? "ok  " : "FAIL"} ${s.name} (${s.ms} ms)`);
          shown = run.steps.length;
        }
      }
      if (input.flag("json")) io.out(JSON.stringify(run, null, 2));
      else io.out(runText(run));
      return run.result === "passed" ? EXIT.OK : EXIT.CHECK_FAILED;
    },
  },
  {
    name: "drill list",
    summary: "The configured drills and each one's last result",
    args: [],
    options: { json: { type: "boolean", description: "Print the API's JSON" } },
    notes: API_ENV_NOTES,
    async run(input, io) {
      const list = await clientFrom(io).drills();
      if (input.flag("json")) io.out(JSON.stringify(list, null, 2));
      else {
        io.out(
          table(
            ["DRILL", "SCENARIO", "ROLE", "EVERY", "LAST RUN", "RESULT"],
            list.drills.map((d) => [
              d.name,
              d.scenario,
              d.role,
              d.every,
              d.lastRun ? shortTime(d.lastRun.startedAt) : "never",
              d.lastRun?.result ?? "-",
            ]),
          ),
        );
      }
      return EXIT.OK;
    },
  },
];
