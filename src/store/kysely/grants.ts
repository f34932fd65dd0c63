/** Grants (with their approvals and due times) and the holders' sealed credentials, over Kysely. */
import { type Selectable, sql } from "kysely";
import { BreakglassError } from "../../core/errors.js";
import type {
  AccessState,
  ActivationFailure,
  Approval,
  EndReason,
  Grant,
  GrantReview,
  GrantState,
} from "../../core/model.js";
import { OPEN_STATES } from "../../core/model.js";
import type {
  CredentialReads,
  CredentialWrites,
  GrantFilter,
  GrantReads,
  GrantWrites,
} from "../../core/ports/grants.js";
import type { GrantsTable } from "../schema.js";
import {
  bulkValues,
  CHUNK,
  type Db,
  flag,
  guard,
  isSet,
  type StoreDialect,
  type StoreScope,
  upsert,
} from "./plumbing.js";

type GrantRow = Selectable<GrantsTable> & { approvals: string | null };

/** Accesses whose `access_next_at` is a lease held by the broker working on them. */
export const LEASED_ACCESS = ["granting", "revoking"] as const;

export function grantReads({ run, dialect }: StoreScope): GrantReads {
  return {
    getGrant: (id) =>
      run("getGrant", async (db) => {
        const row = await selectGrants(db, dialect).where("id", "=", id).executeTakeFirst();
        return row === undefined ? null : grantFromRow(row);
      }),

    listGrants: (filter: GrantFilter) =>
      run("listGrants", async (db) => {
        if (filter.states !== undefined && filter.states.length === 0) return [];
        if (filter.limit !== undefined && filter.limit <= 0) return [];
        let q = selectGrants(db, dialect);
        if (filter.states !== undefined) q = q.where("state", "in", [...filter.states]);
        if (filter.requester !== undefined) q = q.where("requester", "=", filter.requester);
        if (filter.roleId !== undefined) q = q.where("role_id", "=", filter.roleId);
        if (filter.endedAfter !== undefined) q = q.where("ended_at", ">=", filter.endedAfter);
        if (filter.incident !== undefined) q = q.where("incident", "=", filter.incident);
        const after = filter.after;
        if (after !== undefined) {
          q = q.where((eb) =>
            eb.or([
              eb("requested_at", "<", after.requestedAt),
              eb.and([eb("requested_at", "=", after.requestedAt), eb("id", "<", after.id)]),
            ]),
          );
        }
        q = q.orderBy("requested_at", "desc").orderBy("id", "desc");
        if (filter.limit !== undefined) q = q.limit(filter.limit);
        return (await q.execute()).map(grantFromRow);
      }),

    nextDueAt: () =>
      run("nextDueAt", async (db) => {
        const row = await db
          .selectFrom("grants")
          .select((eb) => eb.fn.min("due_at").as("next"))
          .executeTakeFirst();
        return row?.next ?? null;
      }),
  };
}

export function grantWrites({ run, dialect, owner }: StoreScope): GrantWrites {
  return {
    lockGrant: (id) =>
      run("lockGrant", async (db) => {
        if (dialect === "postgres") {
          // Lock first, read after, in two statements. Under READ COMMITTED a statement that waits
          // for a row lock gets the row as the other transaction committed it, but its subqueries
          // (the approvals) from the snapshot taken before the wait: one statement would pair the
          // new row with the old approvals. The next statement takes a fresh snapshot, and nobody
          // can change the grant or its approvals while the lock is held.
          const locked = await db.selectFrom("grants").select("id").where("id", "=", id).forUpdate().executeTakeFirst();
          if (locked === undefined) return null;
        }
        const row = await selectGrants(db, dialect).where("id", "=", id).executeTakeFirst();
        return row === undefined ? null : grantFromRow(row);
      }),

    findOpenGrant: (requester, roleId) =>
      run("findOpenGrant", async (db) => {
        const row = await selectGrants(db, dialect)
          .where("requester", "=", requester)
          .where("role_id", "=", roleId)
          .where("state", "in", [...OPEN_STATES])
          .executeTakeFirst();
        return row === undefined ? null : grantFromRow(row);
      }),

    saveGrant: (grant, dueAt) =>
      run("saveGrant", async (db) => {
        const values = grantToRow(grant, dueAt, dialect, owner);
        const insert = () =>
          guard(
            () => db.insertInto("grants").values(values).execute(),
            (kind) => (kind === "primary" ? conflict(grant, null) : kind === "unique" ? openGrantExists(grant) : null),
          );
        let inserted = false;
        if (grant.version <= 1) {
          // A new grant; if the id exists, someone else created it first.
          await insert();
          inserted = true;
        } else {
          const { id: _id, ...changes } = values;
          const updated = await guard(
            () =>
              db
                .updateTable("grants")
                .set(changes)
                .where("id", "=", grant.id)
                .where("version", "=", grant.version - 1)
                .executeTakeFirst(),
            (kind) => (kind === "unique" ? openGrantExists(grant) : null),
          );
          if (updated.numUpdatedRows === 0n) {
            const existing = await db
              .selectFrom("grants")
              .select("version")
              .where("id", "=", grant.id)
              .executeTakeFirst();
            if (existing !== undefined) throw conflict(grant, existing.version);
            await insert();
            inserted = true;
          }
        }
        await saveApprovals(db, grant, inserted);
      }),

    updateGrants: (items) =>
      run("updateGrants", async (db) => {
        for (let i = 0; i < items.length; i += CHUNK) {
          const chunk = items.slice(i, i + CHUNK);
          const rows = chunk.map(({ grant, dueAt }) => grantToRow(grant, dueAt, dialect, owner));
          const { set, source } = bulkValues(dialect, BULK_COLUMNS, rows);
          const result =
            await sql`UPDATE grants SET ${set} FROM ${source} WHERE grants.id = v.id AND grants.version = v.version - 1`.execute(
              db,
            );
          if (Number(result.numAffectedRows ?? 0) !== chunk.length) {
            throw new BreakglassError(
              "ERR_CONFLICT",
              "some grants were changed by another writer; reload them and try again",
              {
                expected: chunk.length,
                updated: Number(result.numAffectedRows ?? 0),
              },
            );
          }
        }
      }),

    claimDue: (now, limit) =>
      run("claimDue", async (db) => {
        if (limit <= 0) return [];
        if (dialect === "sqlite") {
          const rows = await selectGrants(db, dialect)
            .where("due_at", "is not", null)
            .where("due_at", "<=", now)
            .orderBy("due_at")
            .orderBy("id")
            .limit(limit)
            .execute();
          return rows.map(grantFromRow);
        }
        // Claim, then read in a later statement with a fresh snapshot (see lockGrant): a row whose
        // newer version the claim locked would otherwise come with its approvals from before.
        const claimed = await db
          .selectFrom("grants")
          .select("id")
          .where("due_at", "is not", null)
          .where("due_at", "<=", now)
          .orderBy("due_at")
          .orderBy("id")
          .limit(limit)
          .forUpdate()
          .skipLocked()
          .execute();
        if (claimed.length === 0) return [];
        const rows = await selectGrants(db, dialect)
          .where(
            "id",
            "in",
            claimed.map((r) => r.id),
          )
          .orderBy("due_at")
          .orderBy("id")
          .execute();
        return rows.map(grantFromRow);
      }),
  };
}

export function credentialReads(scope: StoreScope): CredentialReads {
  return { readCredential: readCredential(scope) };
}

export function credentialWrites(scope: StoreScope): CredentialWrites {
  const { run } = scope;
  return {
    readCredential: readCredential(scope),

    saveCredential: (grantId, box, at) =>
      run("saveCredential", (db) =>
        upsert(
          db,
          "grant_credentials",
          { grant_id: grantId, box, updated_at: at },
          { key: "grant_id", update: { box, updated_at: at } },
        ),
      ),

    deleteCredentials: (grantIds) =>
      run("deleteCredentials", async (db) => {
        if (grantIds.length === 0) return;
        await db
          .deleteFrom("grant_credentials")
          .where("grant_id", "in", [...grantIds])
          .execute();
        await db
          .deleteFrom("gateway_logins")
          .where("grant_id", "in", [...grantIds])
          .execute();
      }),
  };
}

/** The same read inside and outside a transaction. */
function readCredential({ run }: StoreScope): (grantId: string) => Promise<string | null> {
  return (grantId) =>
    run("readCredential", async (db) => {
      const row = await db
        .selectFrom("grant_credentials")
        .select("box")
        .where("grant_id", "=", grantId)
        .executeTakeFirst();
      return row?.box ?? null;
    });
}

/**
 * Approvals are only ever added. Those the grant lists that are not stored are inserted — a
 * plain INSERT, so the database itself refuses a second approval by the same person — and a
 * stored approval is never deleted or rewritten: a grant that does not list every stored
 * approval was read before that approval was given, and saving it would erase a confirmed
 * approval (ERR_CONFLICT).
 */
async function saveApprovals(db: Db, grant: Grant, inserted: boolean): Promise<void> {
  const stored = inserted
    ? []
    : await db
        .selectFrom("grant_approvals")
        .select(["approver", "at", "comment"])
        .where("grant_id", "=", grant.id)
        .orderBy("position")
        .execute();
  const same = (a: Approval, s: { approver: string; at: number; comment: string | null }) =>
    a.approver === s.approver && a.at === Number(s.at) && a.comment === s.comment;
  const fresh = grant.approvals
    .map((a, position) => ({ grant_id: grant.id, approver: a.approver, position, at: a.at, comment: a.comment }))
    .filter((r) => !stored.some((s) => same(r, s)));
  if (fresh.length > 0) {
    const storedApprovers = new Set(stored.map((s) => s.approver));
    const again = fresh.find((r) => storedApprovers.has(r.approver))?.approver;
    await guard(
      () => db.insertInto("grant_approvals").values(fresh).execute(),
      (kind) =>
        kind === "primary" || kind === "unique"
          ? new BreakglassError(
              "ERR_DUPLICATE_APPROVAL",
              again === undefined
                ? `grant ${grant.id} lists the same approver twice`
                : `${again} has already approved grant ${grant.id}`,
              { grantId: grant.id, ...(again === undefined ? {} : { user: again }) },
            )
          : null,
    );
  }
  const missing = stored.filter((s) => !grant.approvals.some((a) => same(a, s)));
  if (missing.length > 0) {
    throw new BreakglassError(
      "ERR_CONFLICT",
      `grant ${grant.id} was read before ${missing.map((m) => m.approver).join(", ")} approved it; reload it and try again`,
      { grantId: grant.id, approvers: missing.map((m) => m.approver) },
    );
  }
}

/**
 * Grants with their approvals in one statement — one snapshot, so a grant is never paired with
 * approvals from another commit — as a JSON array in approval order. Never add a row lock to
 * this statement: a locking read that waits returns the row as committed after the wait with
 * its subqueries from before it (lock in a statement of its own, then read; see lockGrant).
 */
function selectGrants(db: Db, dialect: StoreDialect) {
  const approvals =
    dialect === "postgres"
      ? sql<
          string | null
        >`(SELECT json_agg(json_build_object('approver', a.approver, 'at', a.at, 'comment', a.comment) ORDER BY a.position)::text FROM grant_approvals a WHERE a.grant_id = grants.id)`
      : sql<
          string | null
        >`(SELECT json_group_array(json_object('approver', a.approver, 'at', a.at, 'comment', a.comment) ORDER BY a.position) FROM grant_approvals a WHERE a.grant_id = grants.id)`;
  return db.selectFrom("grants").selectAll("grants").select(approvals.as("approvals"));
}

/** The columns bookkeeping may change (`updateGrants`), with their PostgreSQL types for `jsonb_to_recordset`. */
const BULK_COLUMNS: readonly (readonly [keyof GrantsTable, string])[] = [
  ["id", "text"],
  ["state", "text"],
  ["end_reason", "text"],
  ["approved_at", "bigint"],
  ["activated_at", "bigint"],
  ["ends_at", "bigint"],
  ["ended_at", "bigint"],
  ["lapse_at", "bigint"],
  ["review_due_at", "bigint"],
  ["warn_at", "bigint"],
  ["review_overdue_at", "bigint"],
  ["closed_by", "text"],
  ["close_reason", "text"],
  ["access", "text"],
  ["access_handle", "text"],
  ["access_attempts", "integer"],
  ["access_last_error", "text"],
  ["access_next_at", "bigint"],
  ["activation_failure", "text"],
  ["review", "text"],
  ["version", "integer"],
  ["due_at", "bigint"],
  ["lease_owner", "text"],
];

function grantToRow(grant: Grant, dueAt: number | null, dialect: StoreDialect, owner: string | null): GrantsTable {
  return {
    id: grant.id,
    role_id: grant.roleId,
    domain: grant.domain,
    target: grant.target,
    requester: grant.requester,
    state: grant.state,
    end_reason: grant.endReason,
    justification: grant.justification,
    incident: grant.incident,
    duration_s: grant.durationS,
    emergency: flag(dialect, grant.emergency),
    via_fallback: flag(dialect, grant.viaFallback === true),
    drill: flag(dialect, grant.drill === true),
    requested_at: grant.requestedAt,
    approved_at: grant.approvedAt,
    activated_at: grant.activatedAt,
    ends_at: grant.endsAt,
    ended_at: grant.endedAt,
    lapse_at: grant.lapseAt,
    review_due_at: grant.reviewDueAt,
    warn_at: grant.warnAt,
    review_overdue_at: grant.reviewOverdueAt,
    closed_by: grant.closedBy,
    close_reason: grant.closeReason,
    access: grant.access,
    access_handle: grant.accessHandle === null ? null : JSON.stringify(grant.accessHandle),
    access_attempts: grant.accessAttempts,
    access_last_error: grant.accessLastError,
    access_next_at: grant.accessNextAt,
    activation_failure: grant.activationFailure === null ? null : JSON.stringify(grant.activationFailure),
    review:
      grant.review === null
        ? null
        : JSON.stringify({
            reviewer: grant.review.reviewer,
            at: grant.review.at,
            outcome: grant.review.outcome,
            notes: grant.review.notes,
          }),
    version: grant.version,
    due_at: dueAt,
    lease_owner: (LEASED_ACCESS as readonly string[]).includes(grant.access) ? owner : null,
  };
}

function grantFromRow(r: GrantRow): Grant {
  return {
    id: r.id,
    roleId: r.role_id,
    domain: r.domain,
    target: r.target,
    requester: r.requester,
    state: r.state as GrantState,
    endReason: r.end_reason as EndReason | null,
    justification: r.justification,
    incident: r.incident,
    durationS: r.duration_s,
    emergency: isSet(r.emergency),
    ...(isSet(r.via_fallback) ? { viaFallback: true } : {}),
    ...(isSet(r.drill) ? { drill: true } : {}),
    requestedAt: r.requested_at,
    approvedAt: r.approved_at,
    activatedAt: r.activated_at,
    endsAt: r.ends_at,
    endedAt: r.ended_at,
    lapseAt: r.lapse_at,
    reviewDueAt: r.review_due_at,
    warnAt: r.warn_at,
    reviewOverdueAt: r.review_overdue_at,
    approvals: r.approvals === null ? [] : parseApprovals(r.approvals, r.id),
    closedBy: r.closed_by,
    closeReason: r.close_reason,
    access: r.access as AccessState,
    accessHandle: r.access_handle === null ? null : parseObject(r.access_handle, r.id, "access_handle"),
    accessAttempts: r.access_attempts,
    accessLastError: r.access_last_error,
    accessNextAt: r.access_next_at,
    activationFailure:
      r.activation_failure === null
        ? null
        : (parseObject(r.activation_failure, r.id, "activation_failure") as unknown as ActivationFailure),
    review: r.review === null ? null : (parseObject(r.review, r.id, "review") as unknown as GrantReview),
    version: r.version,
  };
}

function parseApprovals(text: string, grantId: string): Approval[] {
  const list: unknown = JSON.parse(text);
  if (!Array.isArray(list)) throw unreadable(grantId, "approvals");
  return list.map((a: { approver: string; at: number; comment: string | null }) => ({
    approver: a.approver,
    at: a.at,
    comment: a.comment,
  }));
}

function unreadable(grantId: string, column: string): BreakglassError {
  return new BreakglassError("ERR_STORAGE", `stored grant ${grantId} has an unreadable ${column}`, { grantId, column });
}

function parseObject(text: string, grantId: string, column: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    value = undefined;
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw unreadable(grantId, column);
  }
  return value as Record<string, unknown>;
}

function conflict(grant: Grant, storedVersion: number | null): BreakglassError {
  return new BreakglassError(
    "ERR_CONFLICT",
    `grant ${grant.id} was changed by another writer; reload it and try again`,
    { grantId: grant.id, expectedVersion: grant.version - 1, storedVersion },
  );
}

function openGrantExists(grant: Grant): BreakglassError {
  return new BreakglassError(
    "ERR_OPEN_GRANT_EXISTS",
    `${grant.requester} already has an open grant for ${grant.roleId}; release or cancel it first`,
    { grantId: grant.id, roleId: grant.roleId },
  );
}
