/**
 * Drills: the real break-glass path, rehearsed on the real components, in drill mode. A drill
 * requests the configured role as its requester, has it approved by its approvers (or
 * self-activates it, for the emergency scenario), proves the access works at the target with
 * the grant's own credential, waits for the window to close (or releases), and proves the
 * access is gone at the target. Every step is timed and pass/fail; the run is stored; the grant
 * and its events are tagged `drill` and their alarms start with [DRILL].
 *
 * A drill acts as configured people through the grant service directly (it is started by an
 * admin); it does not sign in as them, so roles' `step_up` is not exercised by a drill.
 */
import { spawn } from "node:child_process";
import * as OTPAuth from "otpauth";
import pg from "pg";
import type { AuditAppender, AuditTx } from "../audit/audit-journal.js";
import { stamp } from "../audit/audit-journal.js";
import type { AuthService } from "../auth/auth-service.js";
import type { DrillDef } from "../config/app-config.js";
import { nonGrantEvent } from "../core/audit-event.js";
import { requireAdmin } from "../core/authorization.js";
import { BreakglassError } from "../core/errors.js";
import type { Grant, Policy } from "../core/model.js";
import type { EvidenceReads, EvidenceWrites } from "../core/ports/evidence.js";
import type { GrantReads } from "../core/ports/grants.js";
import type { Clock, IdGenerator } from "../core/ports/runtime.js";
import type { Transactions } from "../core/ports/transactions.js";
import type { DrillRun, DrillStep } from "../core/records.js";
import type { Redacted } from "../core/redacted.js";
import type { RequestContext } from "../core/request-context.js";
import type { SecretResolver } from "../secrets/secret-ref.js";
import type { GrantService } from "./grant-service.js";

export interface DrillService {
  /**
   * Start a drill (admins); it runs in the background. The run as started (result `running`).
   * @throws ERR_FORBIDDEN when `ctx.actor` is not an admin
   * @throws ERR_NOT_FOUND when no drill has that name
   */
  start(ctx: RequestContext, name: string): Promise<DrillRun>;
  /** Wait for a run started by this process to finish (tests, the CLI's server side). */
  finished(runId: string): Promise<DrillRun>;
  readonly drills: readonly DrillDef[];
}

const PROBE_TIMEOUT_MS = 15_000;
/** After the window, how long the end may take to show at the target before the drill fails. */
const END_GRACE_MS = 30_000;

class StepFailed extends Error {}

export function createDrillService(deps: {
  drills: readonly DrillDef[];
  /** Who is an admin (only admins start a drill). */
  policy: Pick<Policy, "groups" | "adminGroups">;
  service: GrantService;
  /** For the idp-outage scenario (its fallback login); null without the broker's secret key. */
  auth?: AuthService | null;
  /** Reads a drill's `factor_secret`. */
  resolveSecret?: SecretResolver;
  /** A run's row commits with its audit event; runs and their grants are read outside. */
  store: Transactions<EvidenceWrites & AuditTx> & Pick<EvidenceReads, "getDrillRun"> & Pick<GrantReads, "getGrant">;
  audit: AuditAppender;
  clock: Clock;
  ids: IdGenerator;
  log: (msg: string, fields?: Record<string, unknown>) => void;
}): DrillService {
  const { drills, service, store, audit, clock, ids, log } = deps;
  const running = new Map<string, Promise<DrillRun>>();

  const execute = async (ctx: RequestContext, def: DrillDef, run: DrillRun): Promise<DrillRun> => {
    const steps: DrillStep[] = [];
    let grant: Grant | null = null;
    let credential: Redacted<string> | null = null;
    let timeToAccessMs: number | null = null;
    const as = (actor: string): RequestContext => ({
      actor,
      requestId: `drill:${run.id}`,
      sourceAddress: null,
      drillRun: run.id,
    });
    const step = async <T>(name: string, fn: () => Promise<{ value: T; detail: string }>): Promise<T> => {
      const startedAt = clock.now();
      try {
        const { value, detail } = await fn();
        steps.push({ name, startedAt, ms: clock.now() - startedAt, ok: true, detail });
        await store.transaction((tx) => tx.saveDrillRun({ ...run, steps: [...steps] }));
        return value;
      } catch (e) {
        const detail = e instanceof Error ? e.message : String(e);
        steps.push({ name, startedAt, ms: clock.now() - startedAt, ok: false, detail });
        throw new StepFailed(detail);
      }
    };
    const current = async (): Promise<Grant> => {
      const g = grant ? await store.getGrant(grant.id) : null;
      if (!g) throw new Error("the drill's grant is gone");
      return g;
    };
    const active = (g: Grant) => {
      if (g.state !== "active") {
        throw new Error(
          `grant ${g.id} is ${g.state}${g.access === "none" ? "" : ` (access ${g.access}${g.accessLastError ? `: ${g.accessLastError}` : ""})`}, not active`,
        );
      }
      return g;
    };
    let requester: RequestContext = as(def.requester);
    let sessionId: string | null = null;
    const requestedAt = clock.now();
    try {
      if (def.scenario === "idp-outage") {
        const issued = await step("fallback login with TOTP (IdP treated as down for this drill)", async () => {
          const auth = deps.auth;
          if (!auth)
            throw new Error("the broker has no secret key (secrets.key_file): no local factors, no fallback login");
          if (!def.factorSecret || !deps.resolveSecret) throw new Error("drills.factor_secret is not set");
          const secret = deps.resolveSecret(def.factorSecret, `drills.${def.name}.factor_secret`).reveal();
          const code = new OTPAuth.TOTP({ secret: OTPAuth.Secret.fromBase32(secret), period: 30, digits: 6 }).generate({
            timestamp: clock.now(),
          });
          // Only this drill sees the IdP as down: the fallback stays closed for everyone else.
          const i = await auth.loginWithFallback(
            as(def.requester),
            def.requester,
            { code },
            {
              reachable: false,
              lastCheckAt: clock.now(),
              lastError: "treated as down by a drill",
              declaredDown: { by: ctx.actor, at: clock.now(), reason: `[DRILL] ${def.name}` },
            },
            { drill: true },
          );
          return { value: i, detail: `session ${i.session.id} (method fallback); security paged with [DRILL]` };
        });
        sessionId = issued.session.id;
        requester = {
          ...as(def.requester),
          auth: { method: "fallback", sessionId, factorAt: issued.session.factorAt },
        };
      }
      grant = await step("request", async () => {
        const g = await service.request(requester, {
          roleId: def.roleId,
          justification: `[DRILL] ${def.name}: rehearsal of the break-glass path`,
          incident: def.incident ?? `DRILL-${Math.floor(requestedAt / 1000)}`,
          durationS: def.durationS,
          emergency: def.scenario === "emergency" || def.scenario === "idp-outage",
          drill: true,
        });
        return { value: g, detail: `grant ${g.id} ${g.state} (as ${def.requester})` };
      });
      if (def.scenario === "approval-path" || def.scenario === "policy-rollback") {
        for (const approver of def.approvers) {
          if (grant.state !== "requested") break;
          grant = await step(`approval by ${approver}`, async () => {
            const g = await service.approve(as(approver), (grant as Grant).id, "[DRILL]");
            return { value: g, detail: `${g.state}, ${g.approvals.length} approval(s)` };
          });
        }
        // Roles that do not auto-activate are activated by their holder; an auto-activation that
        // failed at the target is reported by the next step, with the target's error.
        if (grant.state === "approved" && grant.access === "none") {
          grant = await step("activate", async () => {
            const g = await service.activate(as(def.requester), (grant as Grant).id);
            return { value: g, detail: g.state };
          });
        }
      }
      await step("access granted at the target", async () => {
        const g = active(await current());
        return { value: g, detail: `until ${new Date(g.endsAt ?? 0).toISOString()}` };
      });
      // Only what will be probed needs the credential (exec targets may issue none).
      if (def.probe || def.checks.length > 0 || def.guardProbe !== null) {
        credential = await step("credential for the holder", async () => {
          const c = await service.credential(requester, (grant as Grant).id);
          return { value: c.credential, detail: "read (audited)" };
        });
      }
      if (def.probe) {
        await step("access works (probe)", async () => {
          const detail = await probe(def, credential as Redacted<string>);
          return { value: null, detail };
        });
      }
      timeToAccessMs = clock.now() - requestedAt;
      for (const check of def.checks) {
        await step(check.name, async () => ({
          value: null,
          detail: await probe({ ...def, probe: { exec: check.exec } }, credential as Redacted<string>),
        }));
      }
      if (def.guardProbe !== null) {
        await step("guard refuses the forbidden statement", async () => {
          const detail = await guardRefuses(def.guardProbe as string, credential as Redacted<string>);
          return { value: null, detail };
        });
      }
      if (def.scenario === "emergency" || def.scenario === "idp-outage") {
        await step("release", async () => {
          const g = await service.release(requester, (grant as Grant).id);
          return { value: g, detail: `${g.state} (${g.endReason ?? ""})` };
        });
      }
      await step("window closed at the target", async () => {
        const deadline = Math.max(clock.now(), (await current()).endsAt ?? 0) + END_GRACE_MS;
        for (;;) {
          const g = await current();
          if (g.state === "ended" && g.access === "revoked") {
            return { value: g, detail: `ended (${g.endReason}); access revoked and verified by the connector` };
          }
          if (clock.now() > deadline) {
            throw new Error(
              `grant ${g.id} is ${g.state}, access ${g.access}${g.accessLastError ? ` (${g.accessLastError})` : ""} ${END_GRACE_MS / 1000} s after its end`,
            );
          }
          await new Promise((r) => setTimeout(r, 200));
        }
      });
      if (def.probe) {
        await step("access gone (probe fails)", async () => {
          try {
            await probe(def, credential as Redacted<string>);
          } catch (e) {
            return { value: null, detail: `refused as it should be: ${e instanceof Error ? e.message : String(e)}` };
          }
          throw new Error("the probe still works with the ended grant's credential: access outlived the grant");
        });
      }
    } catch (e) {
      if (!(e instanceof StepFailed)) {
        steps.push({ name: "drill", startedAt: clock.now(), ms: 0, ok: false, detail: String(e) });
      }
      // Leave nothing behind: a failed drill's grant is ended now.
      const g = grant ? await store.getGrant(grant.id) : null;
      if (g && (g.state === "active" || g.state === "requested" || g.state === "approved")) {
        await (g.state === "active"
          ? service.release(as(def.requester), g.id)
          : service.cancel(as(def.requester), g.id, "[DRILL] failed; cleaning up")
        ).catch((err: unknown) => log("drill cleanup failed", { run: run.id, error: String(err) }));
      }
    }
    if (sessionId !== null && deps.auth) {
      await deps.auth
        .logout(as(def.requester), sessionId)
        .catch((err: unknown) => log("drill logout failed", { run: run.id, error: String(err) }));
    }
    const failed = steps.find((s) => !s.ok);
    const done: DrillRun = {
      ...run,
      endedAt: clock.now(),
      result: failed ? "failed" : "passed",
      grantId: grant?.id ?? null,
      timeToAccessMs: failed ? null : timeToAccessMs,
      steps,
    };
    // The run's row and the event stating every fact of it commit together (`audit verify`
    // compares them): a run whose end cannot be audited stays `running`.
    await store
      .transaction(async (tx) => {
        await tx.saveDrillRun(done);
        await audit.append(tx, [
          stamp(
            nonGrantEvent("drill.finished", ctx.actor, done.endedAt ?? clock.now(), {
              run: run.id,
              name: def.name,
              scenario: def.scenario,
              result: done.result,
              grantId: done.grantId,
              timeToAccessMs: done.timeToAccessMs,
              ...(failed ? { failedStep: failed.name, detail: failed.detail } : {}),
              steps: done.steps,
            }),
            ctx,
          ),
        ]);
      })
      .catch((err: unknown) => log("could not record the end of a drill", { run: run.id, error: String(err) }));
    return done;
  };

  return {
    drills,
    async start(ctx, name) {
      requireAdmin(deps.policy, ctx.actor, "running a drill");
      const def = drills.find((d) => d.name === name);
      if (!def) {
        throw new BreakglassError(
          "ERR_NOT_FOUND",
          `no drill "${name}" is configured${drills.length > 0 ? ` (drills: ${drills.map((d) => d.name).join(", ")})` : " (add one under `drills`)"}`,
          { drill: name },
        );
      }
      const run: DrillRun = {
        id: ids.next("d"),
        name,
        scenario: def.scenario,
        startedBy: ctx.actor,
        startedAt: clock.now(),
        endedAt: null,
        result: "running",
        grantId: null,
        timeToAccessMs: null,
        steps: [],
      };
      await store.transaction(async (tx) => {
        await tx.saveDrillRun(run);
        await audit.append(tx, [
          stamp(
            nonGrantEvent("drill.started", ctx.actor, run.startedAt, { run: run.id, name, scenario: def.scenario }),
            ctx,
          ),
        ]);
      });
      const p = execute(ctx, def, run).finally(() => running.delete(run.id));
      running.set(run.id, p);
      p.catch((e: unknown) => log("drill crashed", { run: run.id, error: String(e) }));
      return run;
    },
    async finished(runId) {
      const p = running.get(runId);
      if (p) return p;
      const run = await store.getDrillRun(runId);
      if (!run) throw new BreakglassError("ERR_NOT_FOUND", `no drill run ${runId}`);
      return run;
    },
  };
}

/** The role's statement guard must refuse `sql` (SQLSTATE 42501, "Breakglass guard: …"). */
async function guardRefuses(sql: string, credential: Redacted<string>): Promise<string> {
  const client = new pg.Client({ connectionString: credential.reveal(), connectionTimeoutMillis: 5000 });
  try {
    await client.connect();
  } catch (e) {
    throw new Error(`could not connect to try the guard: ${e instanceof Error ? e.message : String(e)}`);
  }
  try {
    // In a transaction that is rolled back: if the guard fails to refuse it, it still changes nothing
    // (statements that cannot run in a transaction then fail, and the drill with them).
    await client.query("BEGIN");
    await client.query(sql);
  } catch (e) {
    const err = e as { code?: string; message?: string };
    if (err.code === "42501" && err.message?.startsWith("Breakglass guard:")) return `refused: ${err.message}`;
    throw new Error(`"${sql}" failed, but not by the guard: ${err.code ?? ""} ${err.message ?? String(e)}`);
  } finally {
    await client.query("ROLLBACK").catch(() => {});
    await client.end().catch(() => {});
  }
  throw new Error(
    `the guard let "${sql}" run: the role's guard does not deny it (or the target is not behind the gateway)`,
  );
}

/** Prove the credential works: a query (postgres targets) or a command; the detail, or a throw. */
async function probe(def: DrillDef, credential: Redacted<string>): Promise<string> {
  if (!def.probe) return "no probe";
  const secret = credential.reveal();
  const scrub = (text: string) => text.split(secret).join("<credential>");
  if ("sql" in def.probe) {
    const client = new pg.Client({
      connectionString: secret,
      connectionTimeoutMillis: 5000,
      query_timeout: PROBE_TIMEOUT_MS,
    });
    try {
      await client.connect();
      const r = await client.query(def.probe.sql);
      return `${r.command} ${r.rowCount ?? 0}`;
    } catch (e) {
      throw new Error(scrub(e instanceof Error ? e.message : String(e)));
    } finally {
      await client.end().catch(() => {});
    }
  }
  const [cmd, ...args] = def.probe.exec;
  return new Promise((resolve, reject) => {
    const child = spawn(cmd as string, args, {
      env: { ...process.env, BREAKGLASS_CREDENTIAL: secret },
      stdio: ["ignore", "ignore", "pipe"],
      timeout: PROBE_TIMEOUT_MS,
    });
    let stderr = "";
    child.stderr?.on("data", (c: Buffer) => {
      stderr = (stderr + c.toString("utf8")).slice(-2000);
    });
    child.on("error", (e) => reject(new Error(`probe ${cmd} could not start: ${e.message}`)));
    child.on("close", (code, signal) => {
      const tail = scrub(stderr.trim()).slice(-300);
      if (code === 0) resolve("probe exited 0");
      else reject(new Error(`probe ${cmd} exited ${code ?? signal}${tail ? `: ${tail}` : ""}`));
    });
  });
}
