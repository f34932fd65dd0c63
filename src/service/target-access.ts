/**
 * Talks to targets through connectors, outside any database transaction: activation (handle
 * saved first, then the target called, then the state flipped) and revocation (claimed, revoked,
 * verified, recorded). Failures are recorded as audit events; revocation retries forever.
 */

import { type AuditAppender, stamp } from "../audit/audit-journal.js";
import type { GatewayConfig } from "../config/app-config.js";
import type { AuditEventDraft } from "../core/audit-event.js";
import { BreakglassError, isBreakglassError } from "../core/errors.js";
import {
  ACTIVATION_LEASE_MS,
  beginRevocation,
  completeActivation,
  dueAt,
  extendGrant,
  failActivation,
  grantEvent,
  REVOCATION_LEASE_MS,
  revocationFailed,
  revocationSucceeded,
  startActivation,
  type Transition,
} from "../core/grant-machine.js";
import type { Grant, Policy } from "../core/model.js";
import type { Connector, ConnectorGrantFacts, ConnectorResult } from "../core/ports/connector.js";
import type { GrantReads } from "../core/ports/grants.js";
import type { Clock } from "../core/ports/runtime.js";
import type { Transactions } from "../core/ports/transactions.js";
import type { GatewayLogin } from "../core/records.js";
import { type RequestContext, SYSTEM_CONTEXT } from "../core/request-context.js";
import { sanitizeTargetError } from "../core/target-error.js";
import { issueGatewayLogin } from "../gateway/gateway-login.js";
import type { SecretBox } from "../secrets/secret-box.js";
import type { GrantWriter, GrantWriterTx } from "./grant-transitions.js";

/** Events that record one item of a revocation's comparison (deduplicated by the item's id). */
const ITEM_EVENTS: ReadonlySet<string> = new Set(["target.side_permission_swept", "target.containment_drift"]);

export interface TargetAccessDeps {
  readonly policy: Policy;
  readonly writer: GrantWriter;
  /** Claims and records revocations in transactions of the writer's kind; reads a grant outside. */
  readonly store: Transactions<GrantWriterTx> & Pick<GrantReads, "getGrant">;
  readonly audit: AuditAppender;
  readonly connectors: ReadonlyMap<string, Connector>;
  readonly clock: Clock;
  /** Seals the credentials connectors hand out; null when no secret key is configured. */
  readonly box: SecretBox | null;
  /** Gateway-only roles (and every role of a target behind the gateway) get a gateway login instead of the target's credential. */
  readonly gateway?: GatewayConfig | null;
  /** Called before a grant's access is revoked at the target (the gateway closes its sessions first). */
  readonly beforeRevoke?: (grant: Grant) => void;
  readonly log: (msg: string, fields?: Record<string, unknown>) => void;
}

/** What activation keeps: the holder's sealed credential, and a gateway login when the target is behind the gateway. */
interface Issued {
  readonly sealed: string | null;
  readonly login: GatewayLogin | null;
}

/** Additional authenticated data binding a sealed credential to its grant. */
export const credentialAad = (grantId: string): string => `breakglass:grant-credential:${grantId}`;

export interface TargetAccess {
  /** Activate an approved (or emergency) grant at its target. Never throws for target failures: they are recorded on the grant. */
  activate(grant: Grant, ctx: RequestContext): Promise<Grant>;
  /**
   * Extend an active grant: move the expiry at the target first (a fresh credential may come
   * back), then record it. If the target refuses, nothing changes.
   * @throws ERR_CONNECTOR_FAILED and the errors of {@link extendGrant}
   */
  extend(grant: Grant, ctx: RequestContext, extraS: number, reason: string): Promise<Grant>;
  /**
   * For reconciliation: is the access of this (ended) grant really gone at the target? If not,
   * revoke it again and verify — with the planned handle, never the window's saved state. No database work; the caller records what was found.
   * @throws ERR_CONNECTOR_FAILED when the target cannot be checked or the second revoke fails
   */
  recheck(grant: Grant, handle?: Readonly<Record<string, unknown>>): Promise<RecheckOutcome>;
  /**
   * How long an activation or a revocation attempt on this grant's target may hold its claim:
   * the connector's own limit on one call (it stops the call by then) and 10 s, so a replica
   * killed mid-call delays the work by that, not minutes; the default lease when the connector
   * names no limit.
   */
  leaseFor(grant: Grant): number;
  /** Revoke and verify a grant whose access is `revoking`; records success or schedules a retry. */
  revoke(grant: Grant): Promise<Grant>;
  /** Claim a revocation (lease) so no other worker runs it concurrently; null if someone else holds it. */
  claimRevocation(grantId: string): Promise<Grant | null>;
  /** Call the target's revoke and verify for a claimed grant; no database work. */
  attemptRevocation(grant: Grant): Promise<RevocationOutcome>;
  /**
   * The same for several claimed grants, in order: those whose connector revokes many at once
   * (`Connector.revokeMany`) in one call per connector, the others one after another.
   */
  attemptRevocations(grants: readonly Grant[]): Promise<RevocationOutcome[]>;
  /**
   * Cut access at once, where the target's connector can (`Connector.cutAccess`), for grants
   * whose revocation was just claimed; their revocations follow. No database work; never
   * throws (a failure is logged: the revocation cuts access itself).
   */
  cutAccess(grants: readonly Grant[]): Promise<void>;
  /** Record many outcomes in one transaction (one audit event each); falls back to one by one on conflict. */
  recordRevocations(results: readonly RevocationResult[]): Promise<Grant[]>;
}

export type RecheckOutcome =
  | { readonly present: false }
  | { readonly present: true; readonly found: Record<string, unknown>; readonly revoke: Record<string, unknown> };

/**
 * A revocation attempt's result. A failed attempt may still have undone or contained things at
 * the target (`swept`): they are recorded with the failure, so nothing done is done silently.
 */
export type RevocationOutcome =
  | { ok: true; detail: Record<string, unknown> }
  | { ok: false; error: string; swept?: readonly unknown[] };

export interface RevocationResult {
  /** The grant as claimed (access `revoking`), at the version the claim saved. */
  readonly grant: Grant;
  readonly outcome: RevocationOutcome;
}

function rawErrorText(e: unknown): string {
  if (isBreakglassError(e)) return e.message;
  return e instanceof Error ? e.message : String(e);
}

/** A target's error as the grant, the audit log and the alarms keep it: secrets redacted, cut short. */
const errorText = (e: unknown): string => sanitizeTargetError(rawErrorText(e));

function sanitizeDetail(detail: Readonly<Record<string, unknown>> | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(detail ?? {})) out[k] = typeof v === "string" ? sanitizeTargetError(v) : v;
  return out;
}

export function createTargetAccess(deps: TargetAccessDeps): TargetAccess {
  const { policy, writer, connectors, clock, store, audit } = deps;

  const leaseOf = (connector: Connector | undefined, fallback: number): number =>
    connector?.timeoutMs === undefined ? fallback : connector.timeoutMs + 10_000;
  const leaseFor = (grant: Grant): number => leaseOf(connectors.get(grant.target), REVOCATION_LEASE_MS);

  const resolve = (grant: Grant): { connector: Connector; facts: ConnectorGrantFacts } => {
    const role = policy.roles.get(grant.roleId);
    const target = policy.targets.get(grant.target);
    const connector = connectors.get(grant.target);
    if (!role || !target || !connector) {
      throw new BreakglassError(
        "ERR_CONNECTOR_FAILED",
        `role ${grant.roleId} or target ${grant.target} is no longer configured; restore it so the broker can revoke grant ${grant.id}`,
        { grantId: grant.id },
      );
    }
    return {
      connector,
      facts: {
        grantId: grant.id,
        requester: grant.requester,
        role,
        target,
        incident: grant.incident,
        justification: grant.justification,
        endsAt: grant.endsAt ?? clock.now(),
      },
    };
  };

  const activate = async (grant: Grant, ctx: RequestContext): Promise<Grant> => {
    const { connector, facts } = resolve(grant);
    const handle = connector.plan({ ...facts, endsAt: clock.now() + grant.durationS * 1000 });
    // The worker must not take the activation over while the connector may still be running.
    const leaseMs = leaseOf(connector, ACTIVATION_LEASE_MS);
    // 1. Save the handle and the end, with an audit event, before touching the target.
    const begun = await writer.transition(grant.id, ctx, (g) =>
      startActivation(g, ctx.actor, handle, clock.now(), leaseMs),
    );
    const endsAt = begun.endsAt ?? clock.now();
    // 2. The target, outside any transaction.
    let granted: ConnectorResult;
    let sealed: Issued;
    try {
      granted = await connector.grant({ ...facts, endsAt }, handle);
      sealed = sealCredential(grant, granted);
    } catch (e) {
      deps.log("activation failed at target", { grantId: grant.id, error: errorText(e) });
      // The connector's detail (e.g. a command's stdout and stderr) goes to the audit log: redacted too.
      const detail = isBreakglassError(e) ? sanitizeDetail(e.detail) : {};
      return cleanUp(grant.id, errorText(e), detail);
    }
    // 3. The window is open — unless the grant moved on meanwhile (lease ran out, lapsed): then
    //    what the target just created must go again.
    try {
      return await writer.transition(
        grant.id,
        ctx,
        (g) => completeActivation(g, ctx.actor, clock.now(), policy, granted.detail, granted.handle ?? {}),
        saveCredential(sealed),
      );
    } catch (e) {
      if (!isBreakglassError(e) || !["ERR_CONFLICT", "ERR_INVALID_TRANSITION"].includes(e.code)) throw e;
      deps.log("activation finished after it was abandoned; revoking", { grantId: grant.id, error: errorText(e) });
      return cleanUp(
        grant.id,
        `activation finished after it was abandoned (${errorText(e)}); revoking`,
        granted.detail,
      );
    }
  };

  /**
   * Seal what the holder gets. For a target behind the gateway that is a gateway login: the
   * target's own credential is sealed for the gateway only.
   */
  const sealCredential = (grant: Grant, granted: ConnectorResult): Issued => {
    if (granted.credential === null) return { sealed: null, login: null };
    if (!deps.box) {
      throw new BreakglassError(
        "ERR_CONNECTOR_FAILED",
        "the target issued a credential but the broker has no secret key to keep it encrypted; set `secrets.key_file`",
      );
    }
    const gatewayOnly =
      policy.roles.get(grant.roleId)?.gatewayOnly === true || deps.gateway?.targets.includes(grant.target) === true;
    if (gatewayOnly && !deps.gateway) {
      // The configuration check refuses this; never fall back to handing out the target's credential.
      throw new BreakglassError(
        "ERR_CONNECTOR_FAILED",
        `role ${grant.roleId} is gateway-only, but no gateway is configured; the target's credential is not handed out`,
      );
    }
    const viaGateway =
      gatewayOnly && deps.gateway ? issueGatewayLogin(deps.gateway, grant.id, granted.credential, deps.box) : null;
    const holder = viaGateway?.holder ?? granted.credential;
    return { sealed: deps.box.seal(holder.reveal(), credentialAad(grant.id)), login: viaGateway?.login ?? null };
  };

  const saveCredential =
    (issued: Issued) =>
    async (tx: GrantWriterTx, next: Grant): Promise<void> => {
      if (issued.sealed !== null) await tx.saveCredential(next.id, issued.sealed, clock.now());
      if (issued.login !== null) await tx.saveGatewayLogin(issued.login, clock.now());
    };

  const extend = async (grant: Grant, ctx: RequestContext, extraS: number, reason: string): Promise<Grant> => {
    // Check first on the current row, so a refused extension never touches the target.
    const planned = extendGrant(policy, grant, ctx.actor, extraS, reason, clock.now()).grant;
    const { connector, facts } = resolve(planned);
    const handle = grant.accessHandle ?? connector.plan(facts);
    // A connector that can move the end alone keeps the holder's credential; others grant again.
    const moveEnd = connector.extend?.bind(connector) ?? connector.grant.bind(connector);
    let granted: ConnectorResult;
    try {
      granted = await moveEnd({ ...facts, endsAt: planned.endsAt ?? facts.endsAt }, handle);
    } catch (e) {
      throw new BreakglassError("ERR_CONNECTOR_FAILED", `the target refused the extension: ${errorText(e)}`, {
        grantId: grant.id,
      });
    }
    const sealed = sealCredential(grant, granted);
    try {
      return await writer.transition(
        grant.id,
        ctx,
        (g): Transition => {
          if (g.endsAt !== grant.endsAt) {
            throw new BreakglassError("ERR_CONFLICT", `grant ${g.id} changed while it was being extended; try again`);
          }
          const t = extendGrant(policy, g, ctx.actor, extraS, reason, clock.now());
          return { ...t, event: { ...t.event, data: { ...t.event.data, target: granted.detail } } };
        },
        saveCredential(sealed),
      );
    } catch (e) {
      // Not recorded (the store failed, or the grant changed meanwhile): the target must not keep
      // the longer window. Put back the end the store has — re-read, since another extension may
      // have been recorded meanwhile; the last one known when the store cannot answer — where the
      // connector can move it alone. A grant that is no longer active is revoked by its own
      // revocation. Where the connector cannot, the broker still ends the grant at its recorded
      // end, and says so.
      const restore = connector.extend;
      const current = await store.getGrant(grant.id).catch(() => grant);
      const recordedEnd = current?.state === "active" && current.access === "granted" ? current.endsAt : null;
      if (restore && recordedEnd !== null) {
        await restore.call(connector, { ...facts, endsAt: recordedEnd }, handle).catch((undo: unknown) =>
          deps.log("an extension that was not recorded could not be undone at the target", {
            grantId: grant.id,
            error: errorText(undo),
          }),
        );
      } else {
        deps.log(
          "an extension was not recorded; the target may allow access past the grant's end until it is revoked",
          {
            grantId: grant.id,
            error: errorText(e),
          },
        );
      }
      throw e;
    }
  };

  /** Record a failed activation and revoke whatever may exist at the target now; the worker retries. */
  const cleanUp = async (grantId: string, error: string, detail: Record<string, unknown>): Promise<Grant> => {
    const failed = await writer.transition(grantId, SYSTEM_CONTEXT, (g) =>
      failActivation(g, error, clock.now(), detail),
    );
    const claimed = await claimRevocation(failed.id);
    return claimed ? revoke(claimed) : failed;
  };

  /** Claim a revocation for this caller, unless a worker holds a live claim on it (then it is theirs). */
  const claimRevocation = (grantId: string): Promise<Grant | null> =>
    store.transaction(async (tx) => {
      const g = await tx.lockGrant(grantId);
      if (g?.access !== "revoking") return null;
      const now = clock.now();
      // Due later: a worker's lease or a scheduled retry; the worker will run it then.
      if (g.accessNextAt !== null && g.accessNextAt > now) return null;
      const claimed = beginRevocation(g, now, leaseFor(g));
      await tx.saveGrant(claimed, dueAt(claimed));
      return claimed;
    });

  const attemptRevocation = async (grant: Grant): Promise<RevocationOutcome> => {
    try {
      deps.beforeRevoke?.(grant);
      const { connector, facts } = resolve(grant);
      const handle = grant.accessHandle ?? connector.plan(facts);
      const revoked = await connector.revoke(facts, handle);
      const verified = await connector.verify(facts, handle);
      return verified.revoked
        ? { ok: true, detail: { revoke: revoked.detail, verify: verified.detail } }
        : { ok: false, error: "verify reports access still present at the target" };
    } catch (e) {
      const swept = isBreakglassError(e) ? (e.detail as { swept?: unknown } | undefined)?.swept : undefined;
      return { ok: false, error: errorText(e), ...(Array.isArray(swept) && swept.length > 0 ? { swept } : {}) };
    }
  };

  const failedOutcome = (e: unknown): RevocationOutcome => {
    const swept = isBreakglassError(e) ? (e.detail as { swept?: unknown } | undefined)?.swept : undefined;
    return { ok: false, error: errorText(e), ...(Array.isArray(swept) && swept.length > 0 ? { swept } : {}) };
  };

  const attemptRevocations = async (grants: readonly Grant[]): Promise<RevocationOutcome[]> => {
    const out: (RevocationOutcome | undefined)[] = grants.map(() => undefined);
    const batches = new Map<
      Connector,
      { i: number; facts: ConnectorGrantFacts; handle: Readonly<Record<string, unknown>> }[]
    >();
    for (const [i, grant] of grants.entries()) {
      try {
        const { connector, facts } = resolve(grant);
        if (!connector.revokeMany || grants.length === 1) continue;
        const list = batches.get(connector) ?? [];
        list.push({ i, facts, handle: grant.accessHandle ?? connector.plan(facts) });
        batches.set(connector, list);
      } catch {
        // Unknown role or target: attemptRevocation reports it.
      }
    }
    for (const [connector, list] of batches) {
      try {
        for (const { i } of list) deps.beforeRevoke?.(grants[i] as Grant);
        const results = await (connector.revokeMany as NonNullable<Connector["revokeMany"]>)(list);
        for (const [k, { i }] of list.entries()) {
          const r = results[k];
          out[i] =
            r === undefined
              ? failedOutcome(new Error("the connector returned no result for this grant"))
              : "error" in r
                ? failedOutcome(r.error)
                : r.verify.revoked
                  ? { ok: true, detail: { revoke: r.revoke.detail, verify: r.verify.detail } }
                  : { ok: false, error: "verify reports access still present at the target" };
        }
      } catch (e) {
        for (const { i } of list) out[i] = failedOutcome(e);
      }
    }
    // The rest one after another: a batch runs in one of the caller's slots.
    for (const [i, grant] of grants.entries()) {
      if (out[i] === undefined) out[i] = await attemptRevocation(grant);
    }
    return out as RevocationOutcome[];
  };

  const cutAccess = async (grants: readonly Grant[]): Promise<void> => {
    const byConnector = new Map<
      Connector,
      { facts: ConnectorGrantFacts; handle: Readonly<Record<string, unknown>> }[]
    >();
    for (const grant of grants) {
      try {
        const { connector, facts } = resolve(grant);
        if (!connector.cutAccess) continue;
        const list = byConnector.get(connector) ?? [];
        list.push({ facts, handle: grant.accessHandle ?? connector.plan(facts) });
        byConnector.set(connector, list);
      } catch {
        // Unknown role or target: the revocation reports it.
      }
    }
    await Promise.all(
      [...byConnector].map(([connector, list]) =>
        connector.cutAccess?.(list).catch((e: unknown) =>
          deps.log("cutting access ahead of revocation failed; each revocation cuts it itself", {
            grants: list.length,
            error: errorText(e),
          }),
        ),
      ),
    );
  };

  const outcomeTransition = (g: Grant, outcome: RevocationOutcome) => {
    if (g.access !== "revoking") {
      throw new BreakglassError("ERR_CONFLICT", `grant ${g.id} revocation was settled elsewhere`, { grantId: g.id });
    }
    return outcome.ok
      ? revocationSucceeded(g, clock.now(), outcome.detail)
      : revocationFailed(g, clock.now(), outcome.error);
  };

  const recordRevocations = async (results: readonly RevocationResult[]): Promise<Grant[]> => {
    for (const r of results) {
      if (!r.outcome.ok) deps.log("revocation failed", { grantId: r.grant.id, error: r.outcome.error });
    }
    try {
      // Fast path: the claimed grants are unchanged since the claim; one statement for all.
      return await store.transaction(async (tx) => {
        const ts = results.map((r) => outcomeTransition(r.grant, r.outcome));
        await tx.updateGrants(ts.map((t) => ({ grant: t.grant, dueAt: dueAt(t.grant) })));
        const recorded = await recordedItems(
          tx,
          results.filter((r) => sweptItems(r.outcome).length > 0).map((r) => r.grant.id),
        );
        await audit.append(
          tx,
          ts.flatMap((t, i) =>
            [t.event, ...sweptEvents(t.grant, results[i]?.outcome, recorded)].map((e) => stamp(e, SYSTEM_CONTEXT)),
          ),
        );
        await tx.deleteCredentials(ts.filter((t) => t.grant.access === "revoked").map((t) => t.grant.id));
        return ts.map((t) => t.grant);
      });
    } catch (e) {
      if (!(isBreakglassError(e) && e.code === "ERR_CONFLICT")) throw e;
      // Someone changed one of them meanwhile (e.g. a review): settle each against its current row.
      const out: Grant[] = [];
      for (const r of results) {
        try {
          out.push(
            await writer.transition(
              r.grant.id,
              SYSTEM_CONTEXT,
              (g) => outcomeTransition(g, r.outcome),
              async (tx, next) => {
                const swept = sweptEvents(next, r.outcome, await recordedItems(tx, [next.id]));
                if (swept.length > 0) await audit.append(tx, swept);
                if (next.access === "revoked") await tx.deleteCredentials([next.id]);
              },
            ),
          );
        } catch (inner) {
          deps.log("revocation result not recorded", { grantId: r.grant.id, error: errorText(inner) });
        }
      }
      return out;
    }
  };

  const recheck = async (grant: Grant, extra?: Readonly<Record<string, unknown>>): Promise<RecheckOutcome> => {
    const { connector, facts } = resolve(grant);
    // The planned handle only: state kept from the window (e.g. a sweep snapshot) must not be
    // used hours later, or legitimate changes made since would be "swept" too.
    const handle = { ...connector.plan(facts), ...extra };
    const seen = await connector.verify(facts, handle);
    if (seen.revoked) return { present: false };
    const revoked = await connector.revoke(facts, handle);
    const after = await connector.verify(facts, handle);
    if (!after.revoked) {
      throw new BreakglassError(
        "ERR_CONNECTOR_FAILED",
        `access of grant ${grant.id} is still present after a second revoke`,
        {
          grantId: grant.id,
          verify: after.detail,
        },
      );
    }
    return { present: true, found: { ...seen.detail }, revoke: { ...revoked.detail } };
  };

  /** What a revocation attempt undid or contained at the target (also when the attempt failed). */
  const sweptItems = (outcome: RevocationOutcome | undefined): readonly unknown[] => {
    if (!outcome) return [];
    const swept = outcome.ok ? (outcome.detail.revoke as { swept?: unknown } | undefined)?.swept : outcome.swept;
    return Array.isArray(swept) ? swept : [];
  };

  /** Items of these grants already recorded by earlier attempts (by the connector's item id). */
  const recordedItems = async (
    tx: Pick<GrantWriterTx, "readGrantAudit">,
    grantIds: readonly string[],
  ): Promise<ReadonlySet<string>> => {
    if (grantIds.length === 0) return new Set();
    const out = new Set<string>();
    for (const e of await tx.readGrantAudit(grantIds)) {
      if (!ITEM_EVENTS.has(e.type)) continue;
      const id = (JSON.parse(e.payload) as { data?: { item?: { id?: unknown } } }).data?.item?.id;
      if (typeof id === "string") out.add(`${e.grantId}\u0000${id}`);
    }
    return out;
  };

  /**
   * One event per item the connector handled while revoking, once per grant: reverted and kept
   * items are `target.side_permission_swept`; contained and left ones `target.containment_drift`,
   * which pages security and blocks a `justified` review until resolved (ADR 0009).
   */
  const sweptEvents = (
    g: Grant,
    outcome: RevocationOutcome | undefined,
    recorded: ReadonlySet<string>,
  ): AuditEventDraft[] => {
    const now = clock.now();
    return sweptItems(outcome).flatMap((item) => {
      const { id, outcome: result } = (item ?? {}) as { id?: unknown; outcome?: unknown };
      if (typeof id === "string" && recorded.has(`${g.id}\u0000${id}`)) return [];
      const type =
        result === "contained" || result === "left" ? "target.containment_drift" : "target.side_permission_swept";
      return [grantEvent(g, type, "system", now, { item })];
    });
  };

  const revoke = async (grant: Grant): Promise<Grant> => {
    if (grant.access !== "revoking") return grant;
    const [settled] = await recordRevocations([{ grant, outcome: await attemptRevocation(grant) }]);
    return settled ?? grant;
  };

  return {
    activate,
    extend,
    recheck,
    revoke,
    claimRevocation,
    attemptRevocation,
    attemptRevocations,
    cutAccess,
    recordRevocations,
    leaseFor,
  };
}
