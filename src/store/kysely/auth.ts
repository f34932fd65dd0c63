/** What sign-in keeps, over Kysely: API tokens, sessions and identities, local factors, throttles. */
import { type Selectable, sql } from "kysely";
import { BreakglassError } from "../../core/errors.js";
import type {
  FactorReads,
  FactorWrites,
  SessionReads,
  SessionWrites,
  ThrottleReads,
  ThrottleWrites,
  TokenReads,
  TokenWrites,
} from "../../core/ports/auth.js";
import type {
  AuthThrottle,
  FactorKind,
  Identity,
  LocalFactor,
  LoginMethod,
  TokenRecord,
  WebSession,
} from "../../core/records.js";
import type { Database, TokensTable } from "../schema.js";
import { changedOne, guard, later, type StoreScope, upsert } from "./plumbing.js";

/** The first key of the transaction advisory lock on one user's factors ("BGFA"). */
const FACTOR_LOCK_CLASS = 1111967297;

export function tokenReads({ run }: StoreScope): TokenReads {
  return {
    findToken: (id) =>
      run("findToken", async (db) => {
        const row = await db.selectFrom("tokens").selectAll().where("id", "=", id).executeTakeFirst();
        return row === undefined ? null : tokenFromRow(row);
      }),

    listTokens: (user) =>
      run("listTokens", async (db) => {
        const rows = await db
          .selectFrom("tokens")
          .selectAll()
          .$if(user !== null, (q) => q.where("user_name", "=", user as string))
          .orderBy("created_at", "desc")
          .orderBy("id")
          .execute();
        return rows.map(tokenFromRow);
      }),
  };
}

export function tokenWrites({ run }: StoreScope): TokenWrites {
  return {
    insertToken: (token) =>
      run("insertToken", async (db) => {
        await guard(
          () =>
            db
              .insertInto("tokens")
              .values({
                id: token.id,
                user_name: token.user,
                secret_hash: token.secretHash,
                created_at: token.createdAt,
                expires_at: token.expiresAt,
                revoked_at: token.revokedAt,
                description: token.description,
                scopes: JSON.stringify(token.scopes),
              })
              .execute(),
          (kind) =>
            kind === "primary"
              ? new BreakglassError("ERR_CONFLICT", "a token with this id exists", { id: token.id })
              : null,
        );
      }),

    revokeToken: (id, at) =>
      run("revokeToken", async (db) =>
        changedOne(
          await db
            .updateTable("tokens")
            .set({ revoked_at: at })
            .where("id", "=", id)
            .where("revoked_at", "is", null)
            .executeTakeFirst(),
        ),
      ),
  };
}

export function sessionReads({ run }: StoreScope): SessionReads {
  return {
    findWebSession: (id) =>
      run("findWebSession", async (db) => {
        const row = await db.selectFrom("web_sessions").selectAll().where("id", "=", id).executeTakeFirst();
        return row === undefined ? null : webSessionFromRow(row);
      }),

    findIdentity: (user) =>
      run("findIdentity", async (db) => {
        const row = await db.selectFrom("identities").selectAll().where("user_name", "=", user).executeTakeFirst();
        return row === undefined ? null : identityFromRow(row);
      }),

    listIdentities: () =>
      run("listIdentities", async (db) => {
        const rows = await db.selectFrom("identities").selectAll().orderBy("user_name").execute();
        return rows.map(identityFromRow);
      }),
  };
}

export function sessionWrites({ run }: StoreScope): SessionWrites {
  return {
    saveWebSession: (w) =>
      run("saveWebSession", async (db) => {
        const row = {
          id: w.id,
          secret_hash: w.secretHash,
          user_name: w.user,
          method: w.method,
          created_at: w.createdAt,
          expires_at: w.expiresAt,
          factor_at: w.factorAt,
          revoked_at: w.revokedAt,
          idp: w.idp,
        };
        // Saved whole from a copy read earlier (a step-up, an IdP refresh): an end recorded
        // meanwhile stays, and the factor time only moves forward.
        await upsert(db, "web_sessions", row, {
          key: "id",
          update: {
            ...row,
            revoked_at: sql`COALESCE(web_sessions.revoked_at, excluded.revoked_at)`,
            factor_at: later("web_sessions", "factor_at"),
          },
        });
      }),

    endWebSession: (sessionId, at) =>
      run("endWebSession", async (db) =>
        changedOne(
          await db
            .updateTable("web_sessions")
            .set({ revoked_at: at })
            .where("id", "=", sessionId)
            .where("revoked_at", "is", null)
            .executeTakeFirst(),
        ),
      ),

    saveIdentity: (i) =>
      run("saveIdentity", (db) =>
        upsert(
          db,
          "identities",
          {
            user_name: i.user,
            issuer: i.issuer,
            subject: i.subject,
            groups: JSON.stringify(i.groups),
            email: i.email,
            display_name: i.name,
            refreshed_at: i.refreshedAt,
          },
          { key: "user_name" },
        ),
      ),
  };
}

export function factorReads({ run }: StoreScope): FactorReads {
  return {
    listFactors: (user) =>
      run("listFactors", async (db) => {
        const rows = await db
          .selectFrom("local_factors")
          .selectAll()
          .where("user_name", "=", user)
          .where("removed_at", "is", null)
          .orderBy("created_at")
          .orderBy("id")
          .execute();
        return rows.map(factorFromRow);
      }),
  };
}

export function factorWrites({ run, dialect }: StoreScope): FactorWrites {
  return {
    saveFactor: (f) =>
      run("saveFactor", async (db) => {
        const row = {
          id: f.id,
          user_name: f.user,
          kind: f.kind,
          label: f.label,
          secret: f.secret,
          created_at: f.createdAt,
          confirmed_at: f.confirmedAt,
          last_step: f.lastStep,
          used_at: f.usedAt,
          removed_at: f.removedAt,
        };
        // Saved whole from a copy read earlier (a confirmation, a sign-in, a removal): a removal
        // or confirmation recorded meanwhile stays, the secret changes only before confirmation,
        // and the accepted step and the last use only move forward (a replayed code stays refused).
        await upsert(db, "local_factors", row, {
          key: "id",
          update: {
            ...row,
            removed_at: sql`COALESCE(local_factors.removed_at, excluded.removed_at)`,
            confirmed_at: sql`COALESCE(local_factors.confirmed_at, excluded.confirmed_at)`,
            secret: sql`CASE WHEN local_factors.confirmed_at IS NULL THEN excluded.secret ELSE local_factors.secret END`,
            last_step: later("local_factors", "last_step"),
            used_at: later("local_factors", "used_at"),
          },
        });
      }),

    advanceFactorStep: (factorId, step, at) =>
      run("advanceFactorStep", async (db) =>
        // One conditional update: two requests with the same code cannot both see "unused".
        changedOne(
          await db
            .updateTable("local_factors")
            .set({ last_step: step, used_at: at })
            .where("id", "=", factorId)
            .where((eb) => eb.or([eb("last_step", "is", null), eb("last_step", "<", step)]))
            .executeTakeFirst(),
        ),
      ),

    confirmFactor: (f) =>
      run("confirmFactor", async (db) =>
        // One conditional update: two confirmations at once cannot both see "unconfirmed".
        changedOne(
          await db
            .updateTable("local_factors")
            .set({ secret: f.secret, confirmed_at: f.confirmedAt, last_step: f.lastStep, used_at: f.usedAt })
            .where("id", "=", f.id)
            .where("confirmed_at", "is", null)
            .where("removed_at", "is", null)
            .executeTakeFirst(),
        ),
      ),

    removeFactors: (user, which, at) =>
      run("removeFactors", async (db) => {
        if (dialect === "postgres") {
          // The user's lock in a statement of its own; the next statement sees what the holder
          // before us committed (a concurrent replacement's new codes included).
          await sql`SELECT pg_advisory_xact_lock(${FACTOR_LOCK_CLASS}, hashtext(${user}))`.execute(db);
        }
        const rows = await db
          .updateTable("local_factors")
          .set({ removed_at: at })
          .where("user_name", "=", user)
          .$if("kind" in which, (q) => q.where("kind", "=", (which as { kind: FactorKind }).kind))
          .$if("id" in which, (q) => q.where("id", "=", (which as { id: string }).id))
          .where("removed_at", "is", null)
          .returningAll()
          .execute();
        return rows.map(factorFromRow).sort((a, b) => a.createdAt - b.createdAt || a.id.localeCompare(b.id));
      }),

    useRecoveryCode: (factorId, at) =>
      run("useRecoveryCode", async (db) =>
        changedOne(
          await db
            .updateTable("local_factors")
            .set({ used_at: at })
            .where("id", "=", factorId)
            .where("used_at", "is", null)
            .executeTakeFirst(),
        ),
      ),
  };
}

export function throttleReads({ run }: StoreScope): ThrottleReads {
  return {
    findThrottle: (key) =>
      run("findThrottle", async (db) => {
        const row = await db.selectFrom("auth_throttle").selectAll().where("key", "=", key).executeTakeFirst();
        return row === undefined ? null : throttleFromRow(row);
      }),
  };
}

export function throttleWrites({ run, dialect }: StoreScope): ThrottleWrites {
  return {
    lockThrottle: (key) =>
      run("lockThrottle", async (db) => {
        // Insert-if-missing first, so a first failure has a row to wait on; then lock and read in
        // statements of their own (see lockGrant).
        await upsert(
          db,
          "auth_throttle",
          { key, failures: 0, window_start: 0, locked_until: null },
          { key: "key", update: "nothing" },
        );
        if (dialect === "postgres") {
          await db.selectFrom("auth_throttle").select("key").where("key", "=", key).forUpdate().execute();
        }
        const row = await db.selectFrom("auth_throttle").selectAll().where("key", "=", key).executeTakeFirstOrThrow();
        return throttleFromRow(row);
      }),

    saveThrottle: (t) =>
      run("saveThrottle", (db) =>
        upsert(
          db,
          "auth_throttle",
          { key: t.key, failures: t.failures, window_start: t.windowStart, locked_until: t.lockedUntil },
          { key: "key" },
        ),
      ),
  };
}

function tokenFromRow(r: Selectable<TokensTable>): TokenRecord {
  return {
    id: r.id,
    user: r.user_name,
    secretHash: r.secret_hash,
    createdAt: r.created_at,
    expiresAt: r.expires_at,
    revokedAt: r.revoked_at,
    description: r.description,
    scopes: parseScopes(r.scopes),
  };
}

function parseScopes(text: string): string[] {
  try {
    const v: unknown = JSON.parse(text);
    return Array.isArray(v) ? v.filter((x): x is string => typeof x === "string") : [];
  } catch {
    return []; // unreadable: no scope at all (fail closed)
  }
}

function webSessionFromRow(r: Selectable<Database["web_sessions"]>): WebSession {
  return {
    id: r.id,
    secretHash: r.secret_hash,
    user: r.user_name,
    method: r.method as LoginMethod,
    createdAt: r.created_at,
    expiresAt: r.expires_at,
    factorAt: r.factor_at,
    revokedAt: r.revoked_at,
    idp: r.idp,
  };
}

function identityFromRow(r: Selectable<Database["identities"]>): Identity {
  let groups: string[] = [];
  try {
    const parsed: unknown = JSON.parse(r.groups);
    if (Array.isArray(parsed)) groups = parsed.filter((g): g is string => typeof g === "string");
  } catch {
    // An unreadable row counts as no groups (fail closed).
  }
  return {
    user: r.user_name,
    issuer: r.issuer,
    subject: r.subject,
    groups,
    email: r.email,
    name: r.display_name,
    refreshedAt: r.refreshed_at,
  };
}

function factorFromRow(r: Selectable<Database["local_factors"]>): LocalFactor {
  return {
    id: r.id,
    user: r.user_name,
    kind: r.kind as FactorKind,
    label: r.label,
    secret: r.secret,
    createdAt: r.created_at,
    confirmedAt: r.confirmed_at,
    lastStep: r.last_step,
    usedAt: r.used_at,
    removedAt: r.removed_at,
  };
}

function throttleFromRow(r: Selectable<Database["auth_throttle"]>): AuthThrottle {
  return { key: r.key, failures: r.failures, windowStart: r.window_start, lockedUntil: r.locked_until };
}
