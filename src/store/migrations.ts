/**
 * The schema as versioned code. Migrations are portable across SQLite and PostgreSQL (Kysely's
 * schema builder, raw `sql` only where both dialects accept the same text) and are never edited
 * once released: a change is a new entry (`0002_…`). Callers serialise runs themselves —
 * `BEGIN IMMEDIATE` on SQLite, an advisory lock on PostgreSQL — see the two store factories.
 */
import { type Kysely, type Migration, type MigrationProvider, Migrator, SqliteAdapter, sql } from "kysely";
import { GENESIS_HASH } from "../core/audit-chain.js";
import { BreakglassError } from "../core/errors.js";

const initial: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema
      .createTable("grants")
      .addColumn("id", "text", (c) => c.primaryKey())
      .addColumn("role_id", "text", (c) => c.notNull())
      .addColumn("domain", "text", (c) => c.notNull())
      .addColumn("target", "text", (c) => c.notNull())
      .addColumn("requester", "text", (c) => c.notNull())
      .addColumn("state", "text", (c) => c.notNull())
      .addColumn("end_reason", "text")
      .addColumn("justification", "text", (c) => c.notNull())
      .addColumn("incident", "text", (c) => c.notNull())
      .addColumn("duration_s", "integer", (c) => c.notNull())
      .addColumn("emergency", "boolean", (c) => c.notNull())
      .addColumn("requested_at", "bigint", (c) => c.notNull())
      .addColumn("approved_at", "bigint")
      .addColumn("activated_at", "bigint")
      .addColumn("ends_at", "bigint")
      .addColumn("ended_at", "bigint")
      .addColumn("lapse_at", "bigint")
      .addColumn("review_due_at", "bigint")
      .addColumn("closed_by", "text")
      .addColumn("close_reason", "text")
      .addColumn("access", "text", (c) => c.notNull())
      .addColumn("access_handle", "text")
      .addColumn("access_attempts", "integer", (c) => c.notNull())
      .addColumn("access_last_error", "text")
      .addColumn("access_next_at", "bigint")
      .addColumn("review", "text")
      .addColumn("version", "integer", (c) => c.notNull())
      .addColumn("due_at", "bigint")
      .execute();
    await db.schema.createIndex("grants_due_at").on("grants").column("due_at").execute();
    await db.schema.createIndex("grants_requested_at").on("grants").columns(["requested_at", "id"]).execute();
    await db.schema.createIndex("grants_requester").on("grants").columns(["requester", "requested_at"]).execute();
    // "Who holds what right now" (state = active, newest first) must stay cheap when most grants have ended.
    await db.schema.createIndex("grants_state").on("grants").columns(["state", "requested_at", "id"]).execute();
    // At most one open grant per requester and role: the race between two requests is settled
    // by the database, not by a read-then-write in the service.
    await sql`CREATE UNIQUE INDEX grants_one_open ON grants (requester, role_id) WHERE state IN ('requested', 'approved', 'active')`.execute(
      db,
    );

    await db.schema
      .createTable("grant_approvals")
      .addColumn("grant_id", "text", (c) => c.notNull())
      .addColumn("approver", "text", (c) => c.notNull())
      .addColumn("position", "integer", (c) => c.notNull())
      .addColumn("at", "bigint", (c) => c.notNull())
      .addColumn("comment", "text")
      // The database itself refuses a second approval by the same person.
      .addPrimaryKeyConstraint("grant_approvals_pkey", ["grant_id", "approver"])
      .addForeignKeyConstraint("grant_approvals_grant_fk", ["grant_id"], "grants", ["id"], (c) => c.onDelete("cascade"))
      .execute();

    await db.schema
      .createTable("audit_events")
      .addColumn("seq", "bigint", (c) => c.primaryKey())
      .addColumn("at", "bigint", (c) => c.notNull())
      .addColumn("type", "text", (c) => c.notNull())
      .addColumn("actor", "text", (c) => c.notNull())
      .addColumn("grant_id", "text")
      .addColumn("payload", "text", (c) => c.notNull())
      .addColumn("hash", "text", (c) => c.notNull())
      .execute();
    await db.schema.createIndex("audit_events_grant_id").on("audit_events").column("grant_id").execute();

    await db.schema
      .createTable("audit_head")
      .addColumn("id", "integer", (c) => c.primaryKey())
      .addColumn("seq", "bigint", (c) => c.notNull())
      .addColumn("hash", "text", (c) => c.notNull())
      .addCheckConstraint("audit_head_single_row", sql`id = 1`)
      .execute();
    await sql`INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, ${GENESIS_HASH})`.execute(db);

    await db.schema
      .createTable("audit_checkpoints")
      .addColumn("seq", "bigint", (c) => c.primaryKey())
      .addColumn("hash", "text", (c) => c.notNull())
      .addColumn("at", "bigint", (c) => c.notNull())
      .addColumn("key_id", "text", (c) => c.notNull())
      .addColumn("signature", "text", (c) => c.notNull())
      .execute();

    await db.schema
      .createTable("tokens")
      .addColumn("id", "text", (c) => c.primaryKey())
      .addColumn("user_name", "text", (c) => c.notNull())
      .addColumn("secret_hash", "text", (c) => c.notNull())
      .addColumn("created_at", "bigint", (c) => c.notNull())
      .addColumn("expires_at", "bigint")
      .addColumn("revoked_at", "bigint")
      .addColumn("description", "text", (c) => c.notNull())
      .execute();
    await db.schema.createIndex("tokens_user_name").on("tokens").column("user_name").execute();
  },
};

/** Credentials handed to grant holders, sealed with the broker's secret key; deleted when access ends. */
const grantCredentials: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema
      .createTable("grant_credentials")
      .addColumn("grant_id", "text", (c) => c.primaryKey().references("grants.id"))
      .addColumn("box", "text", (c) => c.notNull())
      .addColumn("updated_at", "bigint", (c) => c.notNull())
      .execute();
    await db.schema.createIndex("grants_ended_at").on("grants").column("ended_at").execute();
  },
};

/** The alarm outbox: rows written with the audit events that cause them, delivered after commit. */
const alarms: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema
      .createTable("alarms")
      .addColumn("id", "text", (c) => c.primaryKey())
      .addColumn("channel", "text", (c) => c.notNull())
      .addColumn("event_seq", "bigint", (c) => c.notNull())
      .addColumn("event_type", "text", (c) => c.notNull())
      .addColumn("grant_id", "text")
      .addColumn("payload", "text", (c) => c.notNull())
      .addColumn("state", "text", (c) => c.notNull())
      .addColumn("attempts", "integer", (c) => c.notNull())
      .addColumn("last_error", "text")
      .addColumn("created_at", "bigint", (c) => c.notNull())
      .addColumn("next_at", "bigint", (c) => c.notNull())
      .addColumn("delivered_at", "bigint")
      .execute();
    await db.schema.createIndex("alarms_due").on("alarms").columns(["state", "next_at"]).execute();
    await db.schema.createIndex("alarms_grant").on("alarms").column("grant_id").execute();
  },
};

/**
 * Notices on the grant: when to warn the holder of the end, and when an overdue review was
 * reported (existing grants get no warning, and report an overdue review once). And the broker's
 * own small state (the configuration's fingerprint, to alarm on a change).
 */
const grantNotices: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema.alterTable("grants").addColumn("warn_at", "bigint").execute();
    await db.schema.alterTable("grants").addColumn("review_overdue_at", "bigint").execute();
    await db.schema
      .createTable("broker_state")
      .addColumn("key", "text", (c) => c.primaryKey())
      .addColumn("value", "text", (c) => c.notNull())
      .addColumn("updated_at", "bigint", (c) => c.notNull())
      .execute();
  },
};

/** The PostgreSQL gateway: how holders log in to it, and what their sessions ran. */
const gateway: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema
      .createTable("gateway_logins")
      .addColumn("grant_id", "text", (c) => c.primaryKey())
      .addColumn("user_name", "text", (c) => c.notNull().unique())
      .addColumn("verifier", "text", (c) => c.notNull())
      .addColumn("upstream", "text", (c) => c.notNull())
      .addColumn("updated_at", "bigint", (c) => c.notNull())
      .execute();
    await db.schema
      .createTable("session_statements")
      .addColumn("grant_id", "text", (c) => c.notNull())
      .addColumn("session_id", "text", (c) => c.notNull())
      .addColumn("seq", "integer", (c) => c.notNull())
      .addColumn("started_at", "bigint", (c) => c.notNull())
      .addColumn("ended_at", "bigint")
      .addColumn("kind", "text", (c) => c.notNull())
      .addColumn("text", "text", (c) => c.notNull())
      .addColumn("params", "text")
      .addColumn("rows", "bigint", (c) => c.notNull())
      .addColumn("tag", "text")
      .addColumn("error", "text")
      .addColumn("bytes", "bigint", (c) => c.notNull())
      .addPrimaryKeyConstraint("session_statements_pkey", ["session_id", "seq"])
      .execute();
    await db.schema
      .createIndex("session_statements_grant")
      .on("session_statements")
      .columns(["grant_id", "started_at"])
      .execute();
  },
};

/** Recorded terminal sessions (`breakglass shell`): asciicast events streamed as they happen. */
const terminal: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema
      .createTable("terminal_sessions")
      .addColumn("id", "text", (c) => c.primaryKey())
      .addColumn("grant_id", "text", (c) => c.notNull())
      .addColumn("command", "text", (c) => c.notNull())
      .addColumn("width", "integer", (c) => c.notNull())
      .addColumn("height", "integer", (c) => c.notNull())
      .addColumn("record_input", "boolean", (c) => c.notNull())
      .addColumn("started_at", "bigint", (c) => c.notNull())
      .addColumn("ended_at", "bigint")
      .addColumn("end_reason", "text")
      .execute();
    await db.schema.createIndex("terminal_sessions_grant").on("terminal_sessions").column("grant_id").execute();
    await db.schema
      .createTable("terminal_events")
      .addColumn("session_id", "text", (c) => c.notNull())
      .addColumn("seq", "integer", (c) => c.notNull())
      .addColumn("t_ms", "bigint", (c) => c.notNull())
      .addColumn("kind", "text", (c) => c.notNull())
      .addColumn("data", "text", (c) => c.notNull())
      .addPrimaryKeyConstraint("terminal_events_pkey", ["session_id", "seq"])
      .execute();
  },
};

/** Who is asking: web/CLI sessions, IdP identities, local factors, brute-force counters. */
const identity: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema
      .createTable("web_sessions")
      .addColumn("id", "text", (c) => c.primaryKey())
      .addColumn("secret_hash", "text", (c) => c.notNull())
      .addColumn("user_name", "text", (c) => c.notNull())
      .addColumn("method", "text", (c) => c.notNull())
      .addColumn("created_at", "bigint", (c) => c.notNull())
      .addColumn("expires_at", "bigint", (c) => c.notNull())
      .addColumn("factor_at", "bigint")
      .addColumn("revoked_at", "bigint")
      .addColumn("idp", "text")
      .execute();
    await db.schema.createIndex("web_sessions_user").on("web_sessions").column("user_name").execute();
    await db.schema
      .createTable("identities")
      .addColumn("user_name", "text", (c) => c.primaryKey())
      .addColumn("issuer", "text", (c) => c.notNull())
      .addColumn("subject", "text", (c) => c.notNull())
      .addColumn("groups", "text", (c) => c.notNull())
      .addColumn("email", "text")
      .addColumn("display_name", "text")
      .addColumn("refreshed_at", "bigint", (c) => c.notNull())
      .execute();
    await db.schema
      .createTable("local_factors")
      .addColumn("id", "text", (c) => c.primaryKey())
      .addColumn("user_name", "text", (c) => c.notNull())
      .addColumn("kind", "text", (c) => c.notNull())
      .addColumn("label", "text", (c) => c.notNull())
      .addColumn("secret", "text", (c) => c.notNull())
      .addColumn("created_at", "bigint", (c) => c.notNull())
      .addColumn("confirmed_at", "bigint")
      .addColumn("last_step", "bigint")
      .addColumn("used_at", "bigint")
      .addColumn("removed_at", "bigint")
      .execute();
    await db.schema.createIndex("local_factors_user").on("local_factors").column("user_name").execute();
    await db.schema
      .createTable("auth_throttle")
      .addColumn("key", "text", (c) => c.primaryKey())
      .addColumn("failures", "integer", (c) => c.notNull())
      .addColumn("window_start", "bigint", (c) => c.notNull())
      .addColumn("locked_until", "bigint")
      .execute();
    await db.schema
      .alterTable("grants")
      .addColumn("via_fallback", "boolean", (c) => c.notNull().defaultTo(false))
      .execute();
    // Tokens made before scopes existed keep doing everything they did.
    await db.schema
      .alterTable("tokens")
      .addColumn("scopes", "text", (c) => c.notNull().defaultTo('["*"]'))
      .execute();
  },
};

/** Drills: grants tagged as drills, and every drill run with its timed steps. */
const drills: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema
      .alterTable("grants")
      .addColumn("drill", "boolean", (c) => c.notNull().defaultTo(false))
      .execute();
    await db.schema
      .createTable("drill_runs")
      .addColumn("id", "text", (c) => c.primaryKey())
      .addColumn("name", "text", (c) => c.notNull())
      .addColumn("scenario", "text", (c) => c.notNull())
      .addColumn("started_by", "text", (c) => c.notNull())
      .addColumn("started_at", "bigint", (c) => c.notNull())
      .addColumn("ended_at", "bigint")
      .addColumn("result", "text", (c) => c.notNull())
      .addColumn("grant_id", "text")
      .addColumn("time_to_access_ms", "bigint")
      .addColumn("steps", "text", (c) => c.notNull())
      .execute();
    await db.schema.createIndex("drill_runs_name").on("drill_runs").columns(["name", "started_at"]).execute();
  },
};

/** Tier-2 openings imported from their records, each waiting for (or holding) its review. */
const vaultOpenings: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema
      .createTable("vault_openings")
      .addColumn("id", "text", (c) => c.primaryKey())
      .addColumn("envelope_id", "text", (c) => c.notNull())
      .addColumn("envelope_name", "text", (c) => c.notNull())
      .addColumn("record_seq", "integer", (c) => c.notNull())
      .addColumn("record_hash", "text", (c) => c.notNull())
      .addColumn("opened_at", "bigint", (c) => c.notNull())
      .addColumn("custodians", "text", (c) => c.notNull())
      .addColumn("reason", "text", (c) => c.notNull())
      .addColumn("incident", "text", (c) => c.notNull())
      .addColumn("imported_at", "bigint", (c) => c.notNull())
      .addColumn("review_due_at", "bigint", (c) => c.notNull())
      .addColumn("review", "text")
      .execute();
    await db.schema.createIndex("vault_openings_due").on("vault_openings").columns(["review_due_at"]).execute();
  },
};

/**
 * Who holds a grant's activation or revocation lease: a lease whose broker process is gone is
 * taken over at once instead of when it runs out.
 */
const leaseOwner: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema.alterTable("grants").addColumn("lease_owner", "text").execute();
  },
};

/**
 * Whether a tier-2 opening's own alarm (told by the offline CLI) is still undelivered, and when it
 * was delivered: posture is red for an opening nobody was alarmed about. Openings imported before
 * are reconciled from their records and receipts at the next `vault import-record`.
 */
const vaultOpeningAlarm: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema
      .alterTable("vault_openings")
      .addColumn("alarm_pending", "integer", (c) => c.notNull().defaultTo(0))
      .execute();
    await db.schema.alterTable("vault_openings").addColumn("alarm_delivered_at", "bigint").execute();
  },
};

/** Why a grant's activation failed at its target, and when the broker tries again (issue 19). */
const activationFailure: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema.alterTable("grants").addColumn("activation_failure", "text").execute();
  },
};

/**
 * Who is delivering an alarm: a delivery whose broker process is gone is taken over at once
 * (like grants' leases) instead of when its lease runs out.
 */
const alarmLeaseOwner: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema.alterTable("alarms").addColumn("lease_owner", "text").execute();
  },
};

/**
 * A gateway session's statements are stored a batch to a row (core/statement-batch.ts, ADR 0010):
 * a row and two index entries per statement cost more to write than relaying the statement. The
 * statements recorded so far move over, a thousand of a session's to a row.
 */
const statementBatches: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema
      .createTable("statement_batches")
      .addColumn("grant_id", "text", (c) => c.notNull())
      .addColumn("session_id", "text", (c) => c.notNull())
      .addColumn("first_seq", "integer", (c) => c.notNull())
      .addColumn("last_seq", "integer", (c) => c.notNull())
      .addColumn("started_at", "bigint", (c) => c.notNull())
      .addColumn("entries", "text", (c) => c.notNull())
      .addPrimaryKeyConstraint("statement_batches_pkey", ["session_id", "first_seq"])
      .execute();
    await db.schema.createIndex("statement_batches_grant").on("statement_batches").column("grant_id").execute();
    const sqlite = db.getExecutor().adapter instanceof SqliteAdapter;
    const entry = sqlite
      ? sql`json_array(seq, started_at, ended_at, kind, text, json(params), rows, tag, error, bytes)`
      : sql`json_build_array(seq, started_at, ended_at, kind, text, params::json, rows, tag, error, bytes)`;
    const entries = sqlite ? sql`json_group_array(${entry} ORDER BY seq)` : sql`json_agg(${entry} ORDER BY seq)::text`;
    await sql`INSERT INTO statement_batches (grant_id, session_id, first_seq, last_seq, started_at, entries)
      SELECT min(grant_id), session_id, min(seq), max(seq), min(started_at), ${entries}
      FROM session_statements GROUP BY session_id, (seq - 1) / 1000`.execute(db);
    await db.schema.dropTable("session_statements").execute();
  },
};

/** Every migration, by name; applied in name order. */
export const MIGRATIONS: Readonly<Record<string, Migration>> = Object.freeze({
  "0001_initial": initial,
  "0002_grant_credentials": grantCredentials,
  "0003_alarms": alarms,
  "0004_grant_notices": grantNotices,
  "0005_gateway": gateway,
  "0006_terminal": terminal,
  "0007_identity": identity,
  "0008_drills": drills,
  "0009_vault_openings": vaultOpenings,
  "0010_lease_owner": leaseOwner,
  "0011_vault_opening_alarm": vaultOpeningAlarm,
  "0012_grant_activation_failure": activationFailure,
  "0013_alarm_lease_owner": alarmLeaseOwner,
  "0014_statement_batches": statementBatches,
});

const provider: MigrationProvider = {
  getMigrations: async () => ({ ...MIGRATIONS }),
};

/**
 * Apply every pending migration. Idempotent. The caller holds the dialect's migration lock.
 * @returns the names of the migrations applied by this call.
 * @throws ERR_STORAGE naming the migration that failed (the database error is the `cause`).
 */
export async function migrateToLatest<DB>(db: Kysely<DB>): Promise<string[]> {
  const migrator = new Migrator({ db, provider });
  const { error, results } = await migrator.migrateToLatest();
  if (error !== undefined) {
    const failed = results?.find((r) => r.status === "Error")?.migrationName ?? null;
    const err = new BreakglassError(
      "ERR_STORAGE",
      failed === null ? "storage migration failed" : `storage migration ${failed} failed`,
      { operation: "migrate", migration: failed },
    );
    err.cause = error;
    throw err;
  }
  return (results ?? []).filter((r) => r.status === "Success").map((r) => r.migrationName);
}
