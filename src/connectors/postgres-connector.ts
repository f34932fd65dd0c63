/**
 * The `postgres` connector: one login role per grant, whose password stops working at the grant's
 * end by itself (`VALID UNTIL`), so new logins end on time even when the broker is down.
 *
 * Grant: `CREATE ROLE bg_<grant> LOGIN … VALID UNTIL <end> IN ROLE <recovery roles>` with a random
 * password sent as a SCRAM verifier (the plaintext never reaches the server or its logs), a
 * connection limit and per-role settings. Before, at the first grant, a snapshot of the whole
 * cluster (every database) is kept in the grant's handle, and recovery roles whose reach makes
 * containment impossible are refused unless accepted (ADR 0009).
 * Cut access (at expiry, for every grant a tick ends at once): `NOLOGIN`, terminate the roles'
 * backends and await their exit.
 * Revoke: the same cut for this role (the `NOLOGIN` skipped when just done), then the sweep
 * (postgres-sweep.ts): roll back the prepared transactions it left, compare the cluster with the
 * snapshot and revert, keep or contain each difference, then drop the role.
 * Verify: the role is gone, no backend remains, and the comparison finds nothing left to do.
 *
 * Its parts: postgres-settings.ts (the settings' schema), postgres-admin.ts (the admin
 * connections, carrying on after the admin password is rotated), postgres-sweep.ts (the end of a
 * window), postgres-catalog.ts (what the comparison reads), postgres-sql.ts (shared SQL).
 */
import { randomBytes } from "node:crypto";
import type pg from "pg";
import { parseDuration } from "../core/duration.js";
import { BreakglassError } from "../core/errors.js";
import type { RoleDef } from "../core/model.js";
import { assessReach } from "../core/pg-containment.js";
import type {
  Connector,
  ConnectorGrantFacts,
  ConnectorResult,
  DriftItem,
  TargetInventory,
  VerifyResult,
  WatchedSession,
} from "../core/ports/connector.js";
import { Redacted } from "../core/redacted.js";
import { formatVerifier, scramVerifier } from "../secrets/scram.js";
import type { ConnectorContext } from "./connector-context.js";
import { createPostgresAdmin } from "./postgres-admin.js";
import { readCluster } from "./postgres-catalog.js";
import { type PostgresSettings, postgresRoleGrants, postgresRoleGrantsSchema } from "./postgres-settings.js";
import { awaitExit, ident, literal, terminate } from "./postgres-sql.js";
import { createPostgresSweep, type Prepared, type RevocationCut } from "./postgres-sweep.js";

export {
  type PostgresRoleGrants,
  type PostgresSettings,
  postgresRoleGrantsSchema,
  postgresSettingsSchema,
} from "./postgres-settings.js";
export type { SweepItem } from "./postgres-sweep.js";

export function createPostgresConnector(
  settings: PostgresSettings,
  ctx: ConnectorContext & { readonly targetName: string; readonly roles?: readonly RoleDef[] },
): Connector {
  const timeoutMs = parseDuration(settings.timeout) * 1000;
  const admin = createPostgresAdmin(settings, ctx, timeoutMs);
  const { database, adminUser, withClient, fail } = admin;
  const sweep = createPostgresSweep({ settings, targetName: ctx.targetName, clock: ctx.clock, timeoutMs, admin });
  const { mark, sharedRead, snapshotOf } = sweep;

  const principalOf = (handle: Readonly<Record<string, unknown>>): string => {
    const p = handle.principal;
    if (typeof p !== "string" || !p.startsWith(settings.role_prefix)) {
      throw new BreakglassError(
        "ERR_CONNECTOR_FAILED",
        `handle has no ${settings.role_prefix} role: ${JSON.stringify(handle)}`,
      );
    }
    return p;
  };

  /** Roles `cutAccess` cut (when, and how many sessions it ended), until their revocation reports them. */
  const cutKilled = new Map<string, { at: number; mark: number; killed: number }>();
  /** A cut older than one revocation's lease is not trusted: someone may have changed the role since. */
  const fresh = (entry: { at: number } | undefined): boolean =>
    entry !== undefined && ctx.clock.now() - entry.at < timeoutMs * 4;

  const connectionString = (role: string, password: string): string => {
    const host = settings.connect_host ?? admin.host;
    const port = settings.connect_port ?? admin.port;
    const hostPart = host.includes(":") ? `[${host}]` : host;
    const query = settings.connect_options ? `?${settings.connect_options.replace(/^\?/, "")}` : "";
    return `postgresql://${encodeURIComponent(role)}:${encodeURIComponent(password)}@${hostPart}:${port}/${encodeURIComponent(database)}${query}`;
  };

  interface RoleState {
    readonly exists: boolean;
    readonly open: number;
    readonly prepared: number;
  }
  /** Does each role still exist, with how many backends and prepared transactions (one statement for all; literals, so it can follow another in one round trip). */
  const statesSql = (roles: readonly string[]): string =>
    `SELECT r AS role, EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) AS exists,
            (SELECT count(*)::int FROM pg_stat_activity WHERE usename = r) AS open,
            (SELECT count(*)::int FROM pg_prepared_xacts WHERE owner = r) AS prepared
       FROM unnest(ARRAY[${roles.map(literal).join(", ")}]::text[]) AS r`;
  const roleStates = async (c: pg.ClientBase, roles: readonly string[]): Promise<Map<string, RoleState>> => {
    const { rows } = await c.query<{ role: string } & RoleState>(statesSql(roles));
    return new Map(rows.map((r) => [r.role, { exists: r.exists, open: r.open, prepared: r.prepared }]));
  };

  /** Verify one grant; `known` is its role's state when already read (a batch reads all at once). */
  const verifyOn = async (
    c: pg.ClientBase,
    facts: ConnectorGrantFacts,
    handle: Readonly<Record<string, unknown>>,
    known: RoleState | null,
  ): Promise<VerifyResult> => {
    const role = principalOf(handle);
    const state = known ?? (await roleStates(c, [role])).get(role);
    const exists = state?.exists ?? false;
    const open = state?.open ?? 0;
    const prepared = state?.prepared ?? 0;
    const { left, compared } = await sweep.leftOver(c, facts, handle, role);
    return {
      revoked: !exists && open === 0 && prepared === 0 && left.length === 0,
      detail: {
        role,
        roleExists: exists,
        backends: open,
        preparedTransactions: prepared,
        sweepLeft: left,
        ...(compared === null ? {} : { compared }),
      },
    };
  };

  type BatchItem = { readonly facts: ConnectorGrantFacts; readonly handle: Readonly<Record<string, unknown>> };
  type BatchOutcome = { readonly revoke: ConnectorResult; readonly verify: VerifyResult } | { readonly error: unknown };

  /**
   * Revoke and verify many grants together, with the round trips of one (revokeMany): the cut
   * (`NOLOGIN` for roles not cut just before, sessions terminated and awaited), the prepared
   * transactions, the catalog read and the verification are one statement for all roles; every
   * role whose comparison finds nothing to do is dropped in one `DROP ROLE a, b, …`. A role with
   * anything to do (a finding, a prepared transaction, a database not read, a legacy handle)
   * takes the single revocation's path, one after another; a failed batched drop is retried
   * role by role. Each grant gets the same result and items as from `revoke` and `verify`.
   */
  const revokeBatch = (items: readonly BatchItem[]): Promise<BatchOutcome[]> =>
    withClient("revoke", async (c): Promise<BatchOutcome[]> => {
      const started = mark();
      const out: (BatchOutcome | undefined)[] = items.map(() => undefined);
      const roleOf: (string | null)[] = items.map((it, i) => {
        try {
          return principalOf(it.handle);
        } catch (e) {
          out[i] = { error: e };
          return null;
        }
      });
      const roles = [...new Set(roleOf.filter((r): r is string => r !== null))];
      for (const r of roles) sweep.forget(r);
      // 1. No new sessions: NOLOGIN for roles `cutAccess` did not cut moments ago.
      const cuts = new Map<string, { mark: number; killed: number } | undefined>();
      for (const r of roles) {
        const entry = cutKilled.get(r);
        cutKilled.delete(r);
        cuts.set(r, fresh(entry) ? entry : undefined);
      }
      // Roles not cut just before: NOLOGIN first (the existence check is then read again below).
      if (roles.some((r) => cuts.get(r) === undefined)) {
        const present = new Set(
          (
            await c.query<{ rolname: string }>("SELECT rolname FROM pg_roles WHERE rolname = ANY($1)", [roles])
          ).rows.map((r) => r.rolname),
        );
        const toCut = roles.filter((r) => present.has(r) && cuts.get(r) === undefined);
        if (toCut.length > 0) {
          await c.query(toCut.map((r) => `ALTER ROLE ${ident(r)} NOLOGIN VALID UNTIL '-infinity';`).join("\n"));
        }
      }
      // 2. The open sessions ended (and awaited); in the same round trip, which roles exist and the
      //    prepared transactions (2b). When no session was left to end, none of these roles has a
      //    backend, so none can prepare anything later: the read is final. Otherwise it is read
      //    again once the ended sessions are gone.
      const snapshots = items.map((it) => snapshotOf(it.handle));
      const since = Math.min(...snapshots.map((sn) => sn?.cluster.at ?? Number.POSITIVE_INFINITY));
      const [state] = (
        await c.query<{
          existing: string[];
          killed: { pid: number; role: string }[];
          prepared: (Omit<Prepared, "prepared"> & { prepared: string })[];
        }>(
          `WITH victims AS MATERIALIZED (SELECT pid, usename FROM pg_stat_activity
              WHERE usename = ANY($1) AND pid <> pg_backend_pid()),
                killed AS MATERIALIZED (SELECT pid, usename AS role FROM victims WHERE pg_terminate_backend(victims.pid))
           SELECT (SELECT coalesce(json_agg(rolname), '[]') FROM pg_roles WHERE rolname = ANY($1)) AS existing,
                  (SELECT coalesce(json_agg(json_build_object('pid', pid, 'role', role)), '[]') FROM killed) AS killed,
                  (SELECT coalesce(json_agg(json_build_object('gid', gid, 'db', database, 'owner', owner, 'prepared', prepared)
                            ORDER BY prepared), '[]')
                     FROM pg_prepared_xacts WHERE owner = ANY($1) OR prepared >= to_timestamp($2::float8 / 1000)) AS prepared`,
          [roles, Number.isFinite(since) ? since : null],
        )
      ).rows;
      const existing = new Set(state?.existing ?? []);
      const killed = state?.killed ?? [];
      let prepared: Prepared[] = (state?.prepared ?? []).map((p) => ({ ...p, prepared: new Date(p.prepared) }));
      if (killed.length > 0) {
        await awaitExit(
          c,
          killed.map((k) => k.pid),
          roles.join(", "),
          ctx.targetName,
        );
        prepared = await sweep.readPrepared(c, roles, snapshots);
      }
      const afterKill = mark();
      // 3. Each role compared with its window's snapshot, against a read shared by all.
      const quick: { i: number; role: string; result: ConnectorResult }[] = [];
      const slow: { i: number; role: string; cut: RevocationCut }[] = [];
      for (const [i, it] of items.entries()) {
        const role = roleOf[i];
        if (role === null || role === undefined) continue;
        const cutEntry = cuts.get(role);
        const ownKilled = killed.filter((k) => k.role === role).length;
        const exists = existing.has(role);
        const terminated = ownKilled + (cutEntry?.killed ?? 0);
        const goneAt = cutEntry !== undefined && ownKilled === 0 ? cutEntry.mark : afterKill;
        const cut = { role, started, exists, terminated, goneAt };
        const snapshot = snapshotOf(it.handle);
        const pending = prepared.length > 0 ? sweep.classifyPrepared(prepared, role, snapshot, it.facts) : null;
        if (
          !snapshot ||
          settings.sweep !== "revoke" ||
          (pending !== null && pending.own.length + pending.inReach.length > 0)
        ) {
          slow.push({ i, role, cut });
          continue;
        }
        try {
          const read = await sharedRead(c, goneAt);
          const owner = sweep.ownerFor(it.facts);
          const findings = sweep.compare(snapshot, read, role, owner);
          if (findings.length > 0 || read.unreadable.length > 0) {
            slow.push({ i, role, cut });
            continue;
          }
          quick.push({
            i,
            role,
            result: {
              credential: null,
              detail: {
                role,
                existed: exists,
                terminated,
                reassignedTo: exists ? owner : null,
                swept: [],
                reported: [],
              },
            },
          });
        } catch (e) {
          out[i] = { error: e };
        }
      }
      // 4. Roles with nothing left to do, dropped together and their state read for verification
      //    in the same round trip; one by one (and read again) if the drop fails.
      const drop = quick.filter((q) => existing.has(q.role));
      const states = new Map<string, RoleState>();
      if (quick.length > 0) {
        const quickRoles = quick.map((q) => q.role);
        try {
          const results = (await c.query(
            `${drop.length > 0 ? `DROP ROLE ${drop.map((q) => ident(q.role)).join(", ")}; ` : ""}${statesSql(quickRoles)}`,
          )) as unknown as
            | pg.QueryResult<{ role: string } & RoleState>
            | pg.QueryResult<{ role: string } & RoleState>[];
          const rows = Array.isArray(results) ? (results.at(-1)?.rows ?? []) : results.rows;
          for (const r of rows) states.set(r.role, { exists: r.exists, open: r.open, prepared: r.prepared });
        } catch {
          for (const q of drop) {
            try {
              await sweep.dropRole(c, q.role, sweep.ownerFor((items[q.i] as BatchItem).facts));
            } catch (e) {
              out[q.i] = { error: e };
            }
          }
          for (const [r, st] of await roleStates(c, quickRoles)) states.set(r, st);
        }
      }
      for (const q of quick) if (out[q.i] === undefined) sweep.settled(q.role);
      const revoked = new Map<number, ConnectorResult>(
        quick.filter((q) => out[q.i] === undefined).map((q) => [q.i, q.result]),
      );
      // The others: the single revocation's path, one after another, then one read of their state.
      for (const s of slow) {
        try {
          const it = items[s.i] as BatchItem;
          revoked.set(s.i, await sweep.finish(c, it.facts, it.handle, s.cut));
        } catch (e) {
          out[s.i] = { error: e };
        }
      }
      const slowRoles = slow.filter((s) => revoked.has(s.i)).map((s) => s.role);
      if (slowRoles.length > 0) for (const [r, st] of await roleStates(c, slowRoles)) states.set(r, st);
      // 5. Verified from those reads.
      for (const [i, result] of revoked) {
        const it = items[i] as BatchItem;
        try {
          out[i] = {
            revoke: result,
            verify: await verifyOn(c, it.facts, it.handle, states.get(roleOf[i] as string) ?? null),
          };
        } catch (e) {
          out[i] = { error: e };
        }
      }
      return out.map((o) => o ?? { error: new Error("not revoked") });
    });

  return {
    timeoutMs: timeoutMs * 4,
    plan: (facts) => ({
      principal: `${settings.role_prefix}${facts.grantId.toLowerCase().replace(/[^a-z0-9_]/g, "_")}`.slice(0, 63),
    }),

    grant: (facts, handle) =>
      withClient("grant", async (c): Promise<ConnectorResult> => {
        const g = postgresRoleGrants(facts.role);
        const role = principalOf(handle);
        const password = randomBytes(24).toString("base64url");
        const validUntil = new Date(facts.endsAt).toISOString();
        // The baseline of the window (ADR 0009), before the role exists; an extension keeps the first.
        const taken = snapshotOf(handle) ? null : await sharedRead(c, mark());
        const accepted = sweep.checkReach(taken?.snapshot.cluster ?? (await readCluster(c)), g.roles);
        if (taken && taken.unreadable.length > 0) {
          ctx.log("postgres target: databases not readable at activation are not compared at the end", {
            target: ctx.targetName,
            grantId: facts.grantId,
            unreadable: taken.unreadable,
          });
        }
        await c.query("BEGIN");
        const exists = (await c.query("SELECT 1 FROM pg_roles WHERE rolname = $1", [role])).rowCount === 1;
        const common = `LOGIN CONNECTION LIMIT ${g.connection_limit} PASSWORD ${literal(formatVerifier(scramVerifier(password)))} VALID UNTIL ${literal(validUntil)}`;
        if (!exists) {
          await c.query(
            `CREATE ROLE ${ident(role)} INHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS ${common}`,
          );
        } else {
          await c.query(`ALTER ROLE ${ident(role)} ${common}`);
        }
        await c.query(`GRANT ${g.roles.map(ident).join(", ")} TO ${ident(role)}`);
        await c.query(
          `COMMENT ON ROLE ${ident(role)} IS ${literal(`breakglass grant ${facts.grantId} for ${facts.requester} until ${validUntil}`)}`,
        );
        for (const [name, value] of [
          ["statement_timeout", g.statement_timeout],
          ["search_path", g.search_path],
        ] as const) {
          await c.query(
            value === undefined
              ? `ALTER ROLE ${ident(role)} RESET ${name}`
              : `ALTER ROLE ${ident(role)} SET ${name} = ${name === "search_path" ? value : literal(value)}`,
          );
        }
        await c.query("COMMIT");
        return {
          credential: new Redacted(connectionString(role, password)),
          detail: {
            role,
            validUntil,
            memberOf: g.roles,
            connectionLimit: g.connection_limit,
            database,
            reissued: exists,
            ...(Object.keys(accepted).length > 0 ? { containmentAccepted: accepted } : {}),
            ...(taken && taken.unreadable.length > 0 ? { notCompared: taken.unreadable } : {}),
          },
          ...(taken ? { handle: { containment: taken.snapshot } } : {}),
        };
      }),

    // Only the end moves: the password, memberships and settings stay, so the holder's
    // connection string keeps working. A role that can no longer log in (revoked) is not revived.
    extend: (facts, handle) =>
      withClient("extend", async (c): Promise<ConnectorResult> => {
        const role = principalOf(handle);
        const validUntil = new Date(facts.endsAt).toISOString();
        await c.query("BEGIN");
        const { rows } = await c.query<{ login: boolean }>(
          "SELECT rolcanlogin AS login FROM pg_roles WHERE rolname = $1",
          [role],
        );
        if (rows[0]?.login !== true) {
          throw new Error(`role ${role} ${rows.length === 0 ? "does not exist" : "can no longer log in (revoked)"}`);
        }
        await c.query(`ALTER ROLE ${ident(role)} VALID UNTIL ${literal(validUntil)}`);
        await c.query(
          `COMMENT ON ROLE ${ident(role)} IS ${literal(`breakglass grant ${facts.grantId} for ${facts.requester} until ${validUntil}`)}`,
        );
        await c.query("COMMIT");
        return { credential: null, detail: { role, validUntil } };
      }),

    revoke: (facts, handle) =>
      withClient("revoke", async (c): Promise<ConnectorResult> => {
        const started = mark();
        const role = principalOf(handle);
        sweep.forget(role);
        // 1. No new sessions (first, so nobody slips in), 2. end the open ones and wait until
        //    they are gone — access is cut here, and the comparison below sees everything they
        //    did (a transaction still committing is either in or aborted). A role that is
        //    already gone is not an error.
        let exists = true;
        const cutEntry = cutKilled.get(role);
        cutKilled.delete(role);
        const cut = fresh(cutEntry) ? cutEntry?.killed : undefined;
        if (cut === undefined) {
          try {
            await c.query(`ALTER ROLE ${ident(role)} NOLOGIN VALID UNTIL '-infinity'`);
          } catch (e) {
            if ((e as { code?: string }).code !== "42704") throw e; // undefined_object
            exists = false;
          }
        } // else `cutAccess` set NOLOGIN moments ago (and nothing can log in as the role to undo it)
        const killed = await terminate(c, role, null);
        const terminated = killed.length + (cut ?? 0);
        await awaitExit(c, killed, role, ctx.targetName);
        // When the holder could no longer change anything: the cut, unless sessions were still ended here.
        const goneAt = cutEntry !== undefined && cut !== undefined && killed.length === 0 ? cutEntry.mark : mark();
        return sweep.finish(c, facts, handle, { role, started, exists, terminated, goneAt });
      }),

    async cutAccess(grants) {
      // A handle without a grant role is its revocation's to report; the others are cut.
      const roles = [
        ...new Set(
          grants.flatMap((g) => {
            try {
              return [principalOf(g.handle)];
            } catch {
              return [];
            }
          }),
        ),
      ];
      if (roles.length === 0) return;
      const c = await admin.cutClient();
      try {
        // The same first two steps as revoke, for every role in three round trips.
        const existing = (
          await c.query<{ rolname: string }>("SELECT rolname FROM pg_roles WHERE rolname = ANY($1)", [roles])
        ).rows.map((r) => r.rolname);
        if (existing.length > 0) {
          await c.query(existing.map((r) => `ALTER ROLE ${ident(r)} NOLOGIN VALID UNTIL '-infinity';`).join("\n"));
        }
        const killed = (
          await c.query<{ pid: number; role: string }>(
            `WITH victims AS MATERIALIZED (SELECT pid, usename FROM pg_stat_activity
                WHERE usename = ANY($1) AND pid <> pg_backend_pid())
             SELECT pid, usename AS role FROM victims WHERE pg_terminate_backend(victims.pid)`,
            [roles],
          )
        ).rows;

        await awaitExit(
          c,
          killed.map((k) => k.pid),
          roles.join(", "),
          ctx.targetName,
        );
        // From here none of these holders can change anything: a catalog read begun later serves their revocations.
        const at = ctx.clock.now();
        const gone = mark();
        for (const r of existing)
          cutKilled.set(r, { at, mark: gone, killed: killed.filter((k) => k.role === r).length });
        c.release();
      } catch (e) {
        c.release(e as Error);
        fail("cut access", e, { roles });
      }
    },

    verify: (facts, handle) => withClient("verify", async (c) => verifyOn(c, facts, handle, null)),

    async revokeMany(items) {
      return revokeBatch(items);
    },

    watchSessions: () =>
      withClient("watch", async (c): Promise<WatchedSession[]> => {
        const rows = await c.query<{ pid: number; usename: string; started: Date | null; addr: string | null }>(
          `SELECT pid, usename, backend_start AS started, host(client_addr) AS addr FROM pg_stat_activity
            WHERE usename = ANY($1) OR starts_with(usename, $2)`,
          [settings.watch_roles, settings.role_prefix],
        );
        return rows.rows.map((r) => ({
          principal: r.usename,
          sessionId: `${r.pid}:${r.started?.getTime() ?? 0}`,
          grantId: r.usename.startsWith(settings.role_prefix) ? r.usename.slice(settings.role_prefix.length) : null,
          startedAt: r.started?.getTime() ?? null,
          from: r.addr,
        }));
      }),

    endSession: (session) =>
      withClient("terminate", async (c): Promise<boolean> => {
        if (!settings.terminate_unauthorized) return false;
        const [pid, started] = session.sessionId.split(":");
        // Only that backend, and only if it is still the same session (pids are reused).
        const r = await c.query(
          `WITH v AS MATERIALIZED (SELECT pid FROM pg_stat_activity
              WHERE pid = $1 AND usename = $2 AND floor(extract(epoch FROM backend_start) * 1000)::bigint = $3)
           SELECT pid FROM v WHERE pg_terminate_backend(v.pid)`,
          [Number(pid), session.principal, Number(started)],
        );
        return (r.rowCount ?? 0) > 0;
      }),

    close: () => admin.close(),

    assess: () =>
      withClient("assess", async (c) => {
        const cluster = await readCluster(c);
        return (ctx.roles ?? []).flatMap((r) =>
          (postgresRoleGrantsSchema.safeParse(r.grants).data?.roles ?? []).map((principal) => {
            const a = assessReach(cluster, [principal]);
            return {
              roleId: r.id,
              principal,
              limits: a.limits,
              impossible: a.impossible,
              acceptedBecause: settings.containment.accept[principal] ?? null,
              missing: a.missing.length > 0,
            };
          }),
        );
      }),

    inventory: () =>
      withClient("inventory", async (c): Promise<TargetInventory> => {
        const ours = await c.query<{ rolname: string }>(
          "SELECT rolname FROM pg_roles WHERE starts_with(rolname, $1) ORDER BY rolname",
          [settings.role_prefix],
        );
        const recovery = new Set(
          (ctx.roles ?? []).flatMap((r) => postgresRoleGrantsSchema.safeParse(r.grants).data?.roles ?? []),
        );
        const allowed = new Set([adminUser, ...settings.standing_allowed]);
        const standing = await c.query<{ rolname: string; super: boolean; via: string | null }>(
          `SELECT m.rolname, m.rolsuper AS super, string_agg(r.rolname, ',' ORDER BY r.rolname) AS via
             FROM pg_roles m
             LEFT JOIN pg_auth_members am ON am.member = m.oid
             LEFT JOIN pg_roles r ON r.oid = am.roleid AND r.rolname = ANY($1)
            WHERE m.rolcanlogin AND NOT starts_with(m.rolname, $2)
            GROUP BY m.rolname, m.rolsuper
           HAVING m.rolsuper OR count(r.rolname) > 0`,
          [[...recovery], settings.role_prefix],
        );
        const drift: DriftItem[] = standing.rows
          .filter((r) => !allowed.has(r.rolname))
          .map((r) => ({
            kind: r.super ? "standing_superuser" : "standing_recovery_member",
            principal: r.rolname,
            description: r.super
              ? `login role ${r.rolname} is a standing superuser on ${ctx.targetName}`
              : `login role ${r.rolname} holds recovery role(s) ${r.via} permanently on ${ctx.targetName}`,
          }));
        return {
          managed: ours.rows.map((r) => ({
            grantId: r.rolname.slice(settings.role_prefix.length),
            handle: { principal: r.rolname },
          })),
          drift,
        };
      }),
  };
}
