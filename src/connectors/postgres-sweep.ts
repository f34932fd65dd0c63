/**
 * The postgres connector's end of a window (ADR 0009): what the holder opened is found and undone.
 *
 * At activation a snapshot of the whole cluster (every database) is kept in the grant's handle,
 * after refusing recovery roles whose reach makes containment impossible (unless accepted with a
 * reason). At revocation, once the holder's sessions are gone: the prepared transactions the role
 * left are rolled back, the cluster is compared with the snapshot (src/core/pg-containment.ts) and
 * each difference reverted, kept or contained, in order, each in its own transaction; then the
 * grant role is dropped, what it still owns given to the configured owner first (data is never
 * dropped). Verification compares again, unless this process's revocation just found nothing.
 *
 * Catalog reads are shared: when many grants end together, one read of the cluster and of each
 * database serves every revocation whose access was cut before it began (see `sharedRead`).
 */
import type pg from "pg";
import { BreakglassError } from "../core/errors.js";
import {
  assessReach,
  type CatalogSnapshot,
  type ClusterFacts,
  compareCatalogs,
  type DatabaseFacts,
  type Finding,
  type Outcome,
} from "../core/pg-containment.js";
import type { ConnectorGrantFacts, ConnectorResult } from "../core/ports/connector.js";
import type { Clock } from "../core/ports/runtime.js";
import type { PostgresAdmin } from "./postgres-admin.js";
import { readCluster, readDatabase } from "./postgres-catalog.js";
import { type PostgresSettings, postgresRoleGrants } from "./postgres-settings.js";
import { awaitExit, ident, literal, terminate } from "./postgres-sql.js";

/** One item of the comparison at the end, as the broker records it. */
export interface SweepItem {
  readonly id: string;
  readonly kind: string;
  readonly outcome: Outcome;
  readonly description: string;
  /** What was done, or null when only reported (`sweep: report`). */
  readonly fix: string | null;
}

/** A prepared transaction (`PREPARE TRANSACTION`), as pg_prepared_xacts shows it. */
export interface Prepared {
  readonly gid: string;
  readonly db: string;
  readonly owner: string;
  readonly prepared: Date;
}

/** A read of the cluster and its databases; `began` is its place in this process's order of events. */
export interface CatalogRead {
  readonly snapshot: CatalogSnapshot;
  /** Databases that could not be read, each with why. */
  readonly unreadable: string[];
  readonly began: number;
}

/** A revocation's cut, as the sweep needs it. */
export interface RevocationCut {
  readonly role: string;
  /** When the revocation began (a mark). */
  readonly started: number;
  /** Whether the role existed at the cut. */
  readonly exists: boolean;
  /** Sessions ended by the cut. */
  readonly terminated: number;
  /** The mark from which the holder's sessions were known gone. */
  readonly goneAt: number;
}

export interface PostgresSweep {
  /** A point in this process's order of events: later marks are greater. */
  mark(): number;
  /** A catalog read that began after `after` (a mark), shared with other callers; see the implementation. */
  sharedRead(c: pg.ClientBase, after: number): Promise<CatalogRead>;
  /** The window's snapshot kept in a grant's handle; null for a handle without one. */
  snapshotOf(handle: Readonly<Record<string, unknown>>): CatalogSnapshot | null;
  /** Who receives what a window made and must keep: the configured owner, else the grant's first recovery role. */
  ownerFor(facts: ConnectorGrantFacts): string;
  /** The differences of `read` from the window's snapshot, for `role` (what to do with each). */
  compare(baseline: CatalogSnapshot, read: CatalogRead, role: string, owner: string): Finding[];
  /**
   * Refuse recovery roles whose reach makes containment impossible, unless the target accepts
   * them with a reason; the accepted ones with their reasons.
   * @throws ERR_CONNECTOR_FAILED naming the role, why, and the fix
   */
  checkReach(cluster: ClusterFacts, roles: readonly string[]): Record<string, string>;
  /** Prepared transactions of `roles`, and all prepared since the earliest of the windows began. */
  readPrepared(
    c: pg.ClientBase,
    roles: readonly string[],
    snapshots: readonly (CatalogSnapshot | null)[],
  ): Promise<Prepared[]>;
  /**
   * Of `rows`, `role`'s own prepared transactions, and those prepared during its window by
   * another role the holder could act as (`inReach`: in the recovery roles' reach at activation,
   * or created since), except the broker's admin, ignored roles and grant roles.
   */
  classifyPrepared(
    rows: readonly Prepared[],
    role: string,
    snapshot: CatalogSnapshot | null,
    facts: ConnectorGrantFacts,
  ): { own: Prepared[]; inReach: Prepared[] };
  /** Give what `role` still owns to `owner` and drop the rest of it in every database, then the role. */
  dropRole(c: pg.ClientBase, role: string, owner: string): Promise<void>;
  /**
   * A revocation after its cut: prepared transactions, the comparison with the window's snapshot
   * and what it finds, then the grant role dropped.
   * @throws ERR_CONNECTOR_FAILED when some change could not be compared or undone (the role is gone)
   */
  finish(
    c: pg.ClientBase,
    facts: ConnectorGrantFacts,
    handle: Readonly<Record<string, unknown>>,
    cut: RevocationCut,
  ): Promise<ConnectorResult>;
  /** This process's revocation of `role` compared the cluster and found nothing to change, now. */
  settled(role: string): void;
  /** Forget a settled comparison of `role` (a new revocation begins). */
  forget(role: string): void;
  /**
   * For verification: what the comparison still finds undone, and how it was compared — reusing
   * this process's revocation's comparison when it found nothing moments ago (null: not compared,
   * no snapshot or `sweep: report`).
   */
  leftOver(
    c: pg.ClientBase,
    facts: ConnectorGrantFacts,
    handle: Readonly<Record<string, unknown>>,
    role: string,
  ): Promise<{ left: string[]; compared: "at revocation" | "again" | null }>;
}

/** Passes over drops that failed because another dropped object still depended on them. */
const DROP_PASSES = 4;

export function createPostgresSweep(deps: {
  readonly settings: PostgresSettings;
  readonly targetName: string;
  readonly clock: Clock;
  readonly timeoutMs: number;
  readonly admin: Pick<PostgresAdmin, "database" | "adminUser" | "fail" | "onDb" | "setTemplates">;
}): PostgresSweep {
  const { settings, targetName, clock, timeoutMs, admin } = deps;
  const { database, adminUser, onDb } = admin;
  const ignored = new Set([adminUser, ...settings.sweep_ignore_roles]);

  /** The cluster and every database that allows connections; databases that cannot be read are named. */
  const readSnapshot = async (c: pg.ClientBase): Promise<{ snapshot: CatalogSnapshot; unreadable: string[] }> => {
    const cluster = await readCluster(c);
    admin.setTemplates(new Set(Object.values(cluster.databases).flatMap((d) => (d.template ? [d.name] : []))));
    const databases: Record<string, DatabaseFacts> = {};
    const unreadable: string[] = [];
    await Promise.all(
      Object.entries(cluster.databases)
        .filter(([, d]) => d.allowConn)
        .map(async ([oid, d]) => {
          try {
            databases[oid] = await onDb(c, d.name, (dc) => readDatabase(dc, cluster.version));
          } catch (e) {
            unreadable.push(`${d.name}: ${(e as Error).message}`);
          }
        }),
    );
    return { snapshot: { cluster, databases }, unreadable };
  };

  /**
   * Catalog reads shared between callers. A caller names a moment (`after`, a {@link mark}) and
   * gets a read that *began after it*: the last completed read or the one in flight when either
   * began later, else the read queued behind the one in flight (started when that one ends). A
   * revocation's moment is when its holder's sessions were known gone (by `cutAccess` or by
   * itself): from then on the holder can change nothing, so any read begun later sees all it did —
   * exactly what a read of its own would. When many grants end together, one read of the cluster
   * and of each database then serves every revocation whose access was cut before it began,
   * instead of one read each. The read runs on the connection of the caller that queued it (that
   * caller waits for it, so the connection is idle): waiting callers may hold every pooled
   * connection, and a read needing another one would wait forever.
   */
  let seq = 0;
  const mark = (): number => ++seq;
  let lastRead: CatalogRead | null = null;
  let inFlight: { began: number; promise: Promise<CatalogRead> } | null = null;
  let queued: Promise<CatalogRead> | null = null;
  const startRead = async (c: pg.ClientBase): Promise<CatalogRead> => {
    const began = mark();
    const read = { ...(await readSnapshot(c)), began };
    if (lastRead === null || lastRead.began < began) lastRead = read;
    return read;
  };
  /** A joiner's copy of a shared read: its failure is not a failure of the joiner's own connection (which is not discarded). */
  const joined = (p: Promise<CatalogRead>): Promise<CatalogRead> =>
    p.catch((e: unknown) => admin.fail("reading the catalogs (a read shared with other revocations)", e));
  const sharedRead = (c: pg.ClientBase, after: number): Promise<CatalogRead> => {
    if (lastRead !== null && lastRead.began > after) return Promise.resolve(lastRead);
    if (inFlight !== null && inFlight.began > after) return joined(inFlight.promise);
    if (queued) return joined(queued);
    if (!inFlight) {
      const began = seq + 1; // startRead marks it synchronously
      const promise: Promise<CatalogRead> = startRead(c).finally(() => {
        if (inFlight?.promise === promise) inFlight = null;
      });
      inFlight = { began, promise };
      return promise;
    }
    const before = inFlight.promise;
    const promise: Promise<CatalogRead> = before
      .then(
        () => {},
        () => {},
      )
      .then(() => {
        queued = null;
        const read = startRead(c);
        inFlight = { began: seq, promise };
        return read;
      })
      .finally(() => {
        if (inFlight?.promise === promise) inFlight = null;
      });
    queued = promise;
    return promise;
  };

  const ownerFor = (facts: ConnectorGrantFacts): string =>
    settings.reassign_owned_to ?? postgresRoleGrants(facts.role).roles[0] ?? adminUser;

  const snapshotOf = (handle: Readonly<Record<string, unknown>>): CatalogSnapshot | null => {
    const s = handle.containment as CatalogSnapshot | undefined;
    return s && typeof s === "object" && typeof s.cluster === "object" && typeof s.databases === "object" ? s : null;
  };

  const compare = (baseline: CatalogSnapshot, read: CatalogRead, role: string, owner: string): Finding[] => {
    const adminOid = Number(
      Object.entries(read.snapshot.cluster.roles).find(([, r]) => r.name === adminUser)?.[0] ?? -1,
    );
    return compareCatalogs(baseline, read.snapshot, {
      ownRole: role,
      rolePrefix: settings.role_prefix,
      owner,
      ignored,
      adminOid,
    });
  };

  /** Databases where `role` still owns something or holds a privilege (pg_shdepend), for REASSIGN/DROP OWNED. */
  const dependentDatabases = async (c: pg.ClientBase, role: string): Promise<string[]> =>
    (
      await c.query<{ datname: string }>(
        `SELECT DISTINCT coalesce(d.datname, current_database()) AS datname FROM pg_shdepend s
           LEFT JOIN pg_database d ON d.oid = s.dbid
          WHERE s.refclassid = 'pg_authid'::regclass AND s.refobjid = (SELECT oid FROM pg_roles WHERE rolname = $1)`,
        [role],
      )
    ).rows.map((r) => r.datname);

  const dropRole = async (c: pg.ClientBase, role: string, owner: string): Promise<void> => {
    // Most grant roles own nothing by now (containment gave it away): try the drop first.
    try {
      await c.query(`DROP ROLE ${ident(role)}`);
      return;
    } catch (e) {
      if ((e as { code?: string }).code !== "2BP01") throw e; // dependent_objects_still_exist
    }
    for (const db of await dependentDatabases(c, role)) {
      await onDb(c, db, (dc) =>
        dc.query(`REASSIGN OWNED BY ${ident(role)} TO ${ident(owner)}; DROP OWNED BY ${ident(role)}`),
      );
    }
    await c.query(`DROP ROLE ${ident(role)}`);
  };

  /** Roles whose revocation in this process compared the cluster and found nothing to change: when (verify reuses it once). */
  const settledAt = new Map<string, number>();

  const readPrepared = async (
    c: pg.ClientBase,
    roles: readonly string[],
    snapshots: readonly (CatalogSnapshot | null)[],
  ): Promise<Prepared[]> => {
    const since = Math.min(...snapshots.map((s) => s?.cluster.at ?? Number.POSITIVE_INFINITY));
    return (
      await c.query<Prepared>(
        `SELECT gid, database AS db, owner, prepared FROM pg_prepared_xacts
          WHERE owner = ANY($1) OR prepared >= to_timestamp($2::float8 / 1000) ORDER BY prepared`,
        [roles, Number.isFinite(since) ? since : null],
      )
    ).rows;
  };
  const classifyPrepared = (
    rows: readonly Prepared[],
    role: string,
    snapshot: CatalogSnapshot | null,
    facts: ConnectorGrantFacts,
  ): { own: Prepared[]; inReach: Prepared[] } => {
    const own = rows.filter((p) => p.owner === role);
    const since = snapshot?.cluster.at;
    const others = rows.filter((p) => p.owner !== role && since !== undefined && p.prepared.getTime() >= since);
    if (!snapshot || others.length === 0) return { own, inReach: [] };
    const known = new Set(Object.values(snapshot.cluster.roles).map((r) => r.name));
    const reach = new Set(assessReach(snapshot.cluster, postgresRoleGrants(facts.role).roles).reach);
    const inReach = others.filter(
      (p) =>
        !ignored.has(p.owner) &&
        !p.owner.startsWith(settings.role_prefix) &&
        (reach.has(p.owner) || !known.has(p.owner)),
    );
    return { own, inReach };
  };
  const preparedItem = (p: Prepared): Omit<SweepItem, "outcome" | "fix"> => ({
    id: `prepared_xact:${p.db}:${p.gid}`,
    kind: "prepared_transaction",
    description: `prepared transaction ${literal(p.gid)} of ${p.owner} in database ${p.db} (prepared ${p.prepared.toISOString()}) was left open`,
  });
  /**
   * Roll back these prepared transactions; `ROLLBACK PREPARED` must run in the
   * transaction's own database. One already finished (committed or rolled back by someone else
   * meanwhile: 42704) is not an error — what it wrote is then the incident's, like any row.
   */
  const rollbackPrepared = async (
    c: pg.ClientBase,
    prepared: readonly Prepared[],
  ): Promise<{ done: SweepItem[]; failures: string[] }> => {
    const done: SweepItem[] = [];
    const failures: string[] = [];
    for (const p of prepared) {
      const fix = `ROLLBACK PREPARED ${literal(p.gid)}`;
      try {
        await onDb(c, p.db, (dc) => dc.query(fix));
        done.push({ ...preparedItem(p), outcome: "reverted", fix });
      } catch (e) {
        if ((e as { code?: string }).code === "42704") continue;
        failures.push(`${preparedItem(p).description}: ${(e as Error).message}`);
      }
    }
    return { done, failures };
  };

  /** One finding's statements in one transaction; the error (rolled back) when they fail, else null. */
  const tryRun = async (c: pg.ClientBase, sql: readonly string[]): Promise<string | null> => {
    if (sql.length === 0) return null;
    try {
      await c.query("BEGIN");
      for (const q of sql) await c.query(q);
      await c.query("COMMIT");
      return null;
    } catch (e) {
      await c.query("ROLLBACK").catch(() => {});
      return (e as Error).message;
    }
  };

  const fixText = (sql: readonly string[], fallback: string) =>
    sql.length === 0 ? fallback : sql.filter((q) => !q.startsWith("SET LOCAL ROLE")).join("; ");

  /**
   * Undo what the comparison found, in order (ADR 0009): roles contained first, then per
   * database hooks, owners, privileges, definitions, code, data; then databases; then created
   * roles dropped. Each item in its own transaction, so one failure does not hide the rest.
   */
  const applyFindings = async (
    c: pg.ClientBase,
    findings: readonly Finding[],
    owner: string,
  ): Promise<{ done: SweepItem[]; failures: string[]; killed: number[] }> => {
    const done: SweepItem[] = [];
    const failures: string[] = [];
    const killed: number[] = [];
    const record = (f: Finding, outcome: Outcome, fix: string) =>
      done.push({ id: f.id, kind: f.kind, outcome, description: f.description, fix });
    const runOne = async (dc: pg.ClientBase, f: Finding): Promise<void> => {
      const error = await tryRun(dc, f.sql);
      if (error === null) {
        if (!f.dropRole) record(f, f.outcome, fixText(f.sql, f.fix));
        return;
      }
      if (f.fallback) {
        const second = await tryRun(dc, f.fallback.sql);
        if (second === null) {
          record(f, f.fallback.outcome, `${f.fallback.fix} (${error})`);
          return;
        }
        failures.push(`${f.description}: ${error}; then ${second}`);
        return;
      }
      if (f.settled) {
        record(f, "contained", f.fix);
        return;
      }
      failures.push(`${f.description}: ${error}`);
    };
    const active = findings.filter((f) => f.outcome !== "reported");
    for (const f of active.filter((x) => x.outcome === "left")) record(f, "left", f.fix);
    const work = active.filter((f) => f.outcome !== "left");
    // 0: roles — contained at once, their sessions cut.
    for (const f of work.filter((x) => x.step === 0)) {
      await runOne(c, f);
      if (f.terminate) killed.push(...(await terminate(c, f.terminate.role, f.terminate.since)));
    }
    // 1–4: per database, all databases at once.
    const byDb = new Map<string, Finding[]>();
    for (const f of work.filter((x) => x.step >= 1 && x.step <= 4)) {
      const db = f.db ?? database;
      byDb.set(db, [...(byDb.get(db) ?? []), f]);
    }
    await Promise.all(
      [...byDb].map(async ([db, list]) => {
        try {
          await onDb(c, db, async (dc) => {
            for (const step of [1, 2]) for (const f of list.filter((x) => x.step === step)) await runOne(dc, f);
            // Code: drop in passes (a view on a view), then make inert what still cannot be dropped.
            let pending = list.filter((x) => x.step === 3);
            for (let pass = 0; pass < DROP_PASSES && pending.length > 0; pass++) {
              const next: Finding[] = [];
              for (const f of pending) {
                if ((await tryRun(dc, f.sql)) === null) record(f, f.outcome, fixText(f.sql, f.fix));
                else next.push(f);
              }
              if (next.length === pending.length) break;
              pending = next;
            }
            for (const f of pending) {
              const error = await tryRun(dc, f.fallback?.sql ?? []);
              if (error === null && f.fallback) record(f, f.fallback.outcome, f.fallback.fix);
              else if (error === null && f.settled) record(f, "contained", f.fix);
              else
                failures.push(
                  `${f.description}: cannot be dropped${error === null ? "" : ` nor made inert: ${error}`}`,
                );
            }
            for (const f of list.filter((x) => x.step === 4)) await runOne(dc, f);
          });
        } catch (e) {
          failures.push(`database ${db}: ${(e as Error).message}`);
        }
      }),
    );
    // 5: databases; 6: roles created in the window, dropped now that their objects are handled.
    for (const f of work.filter((x) => x.step === 5)) await runOne(c, f);
    for (const f of work.filter((x) => x.dropRole !== undefined)) {
      try {
        await dropRole(c, f.dropRole as string, owner);
        record(f, "reverted", `contained at once (${f.fix.split(";")[0]}), then dropped`);
      } catch (e) {
        record(
          f,
          "contained",
          `no login, no password, no memberships, sessions ended; not dropped: ${(e as Error).message}`,
        );
      }
    }
    return { done, failures, killed };
  };

  return {
    mark,
    sharedRead,
    snapshotOf,
    ownerFor,
    compare,
    readPrepared,
    classifyPrepared,
    dropRole,

    checkReach(cluster, roles) {
      const accepted: Record<string, string> = {};
      for (const role of roles) {
        const { impossible } = assessReach(cluster, [role]);
        if (impossible.length === 0) continue;
        const reason = settings.containment.accept[role];
        if (reason === undefined) {
          throw new BreakglassError(
            "ERR_CONNECTOR_FAILED",
            `postgres target ${targetName}: recovery role ${role} cannot be contained: ${impossible.join("; ")}. Remove that power from it, or accept it with a reason under targets.${targetName}.settings.containment.accept.${role} (see docs/connectors/postgres.md)`,
            { role, impossible },
          );
        }
        accepted[role] = reason;
      }
      return accepted;
    },

    async finish(c, facts, handle, cut) {
      const { role, started, exists, terminated, goneAt } = cut;
      const swept: SweepItem[] = [];
      const reported: string[] = [];
      const failures: string[] = [];
      // 2b. Prepared transactions the role left (`PREPARE TRANSACTION`) outlive its sessions: they
      //     hold their locks and can be committed later by anyone allowed to. Rolled back, each in
      //     its own database, before the comparison (their changes are not visible to it anyway).
      //     Those prepared in the window as another role in reach (after `SET ROLE`) are left and
      //     page: they may be the application's own two-phase commits.
      const snapshot = snapshotOf(handle);
      const pending = classifyPrepared(await readPrepared(c, [role], [snapshot]), role, snapshot, facts);
      if (settings.sweep === "revoke") {
        const rolledBack = await rollbackPrepared(c, pending.own);
        swept.push(...rolledBack.done);
        failures.push(...rolledBack.failures);
      } else {
        for (const p of pending.own) swept.push({ ...preparedItem(p), outcome: "left", fix: null });
      }
      for (const p of pending.inReach) {
        swept.push({
          ...preparedItem(p),
          outcome: "left",
          fix: `not rolled back (it may be another session's two-phase commit): check it, then COMMIT PREPARED or ROLLBACK PREPARED ${literal(p.gid)} in database ${p.db}`,
        });
      }
      // 3. Containment (ADR 0009): every difference from the window's snapshot, in every database.
      const owner = ownerFor(facts);
      /** Something was changed at the target: verify must compare again, not trust the comparison above. */
      let changed = false;
      if (snapshot) {
        // A read begun after the holder's sessions were gone (see sharedRead); when it shows
        // anything, a read begun after this revocation started is what is acted on.
        let read = await sharedRead(c, goneAt);
        let findings = compare(snapshot, read, role, owner);
        if ((findings.length > 0 || read.unreadable.length > 0) && read.began < started) {
          read = await sharedRead(c, started);
          findings = compare(snapshot, read, role, owner);
        }
        const { unreadable } = read;
        failures.push(...unreadable.map((u) => `database ${u} (cannot be compared)`));
        reported.push(...findings.filter((f) => f.outcome === "reported").map((f) => f.description));
        if (settings.sweep === "report") {
          // Nothing is changed: whatever would have been undone is left, and pages.
          for (const f of findings) {
            if (f.outcome !== "reported" && (f.sql.length > 0 || f.outcome === "left")) {
              swept.push({ id: f.id, kind: f.kind, outcome: "left", description: f.description, fix: null });
            }
          }
        } else {
          changed = findings.some((f) => f.sql.length > 0 || f.dropRole !== undefined);
          const applied = await applyFindings(c, findings, owner);
          swept.push(...applied.done);
          failures.push(...applied.failures);
          await awaitExit(c, applied.killed, role, targetName);
        }
      }
      // 4. The grant role itself: what it still owns goes to the owner (data is never dropped), then it goes.
      let reassignedTo: string | null = null;
      if (exists) {
        await dropRole(c, role, owner);
        reassignedTo = owner;
      }
      if (failures.length > 0) {
        throw new BreakglassError(
          "ERR_CONNECTOR_FAILED",
          `postgres target ${targetName}: role ${role} is gone, but ${failures.length} change(s) of the window could not be compared or undone: ${failures.join("; ")}`,
          { role, swept, reported, failures },
        );
      }
      // The comparison found nothing to do, read after the holder's sessions were gone: it is
      // the verification too (see leftOver). After changes, verify reads again.
      if (snapshot && settings.sweep === "revoke" && !changed) settledAt.set(role, clock.now());
      return { credential: null, detail: { role, existed: exists, terminated, reassignedTo, swept, reported } };
    },

    settled(role) {
      settledAt.set(role, clock.now());
    },

    forget(role) {
      settledAt.delete(role);
    },

    async leftOver(c, facts, handle, role) {
      const snapshot = snapshotOf(handle);
      const left: string[] = [];
      // This process's revocation of the role just compared the cluster, after its sessions
      // had ended, and found nothing to change: reading it again would find the same.
      const settled = settledAt.get(role);
      settledAt.delete(role);
      const reused = snapshot !== null && settled !== undefined && clock.now() - settled < timeoutMs;
      if (snapshot && settings.sweep === "revoke" && !reused) {
        const read = await sharedRead(c, mark());
        left.push(...read.unreadable.map((u) => `database ${u} (cannot be compared)`));
        for (const f of compare(snapshot, read, role, ownerFor(facts))) {
          if (
            f.sql.length > 0 &&
            f.settled === undefined &&
            f.outcome !== "left" &&
            f.outcome !== "reported" &&
            !f.dropRole
          ) {
            left.push(f.description);
          }
        }
      }
      const compared = snapshot && settings.sweep === "revoke" ? (reused ? "at revocation" : "again") : null;
      return { left, compared };
    },
  };
}
