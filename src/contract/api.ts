/**
 * The HTTP API contract, shared by the server (src/http) and the CLI (src/cli): a zod schema for
 * every request body, query and response, and the TypeScript types inferred from them. The
 * OpenAPI document (`GET /api/v1/openapi.json`) is generated from these same schemas.
 *
 * Requests are strict (unknown fields are rejected, so a typo never silently drops a field);
 * responses are open (a newer broker may add fields without breaking an older CLI). Times are
 * ISO-8601 UTC strings. Nothing here carries a secret: no token, no credential, no access handle.
 */
import { z } from "zod";
import { durationProblem, isDuration } from "../core/duration.js";
import type { ErrorCode } from "../core/errors.js";
import { plainText, UserNameSchema } from "./text-schemas.js";

/** Schemas published under `components.schemas` of the OpenAPI document, by id. */
export { plainText, UserNameSchema };

export const apiSchemas = z.registry<{ id: string; description?: string }>();

export const API_PREFIX = "/api/v1";

// ---------------------------------------------------------------------------------------------
// Building blocks

const IsoTime = z.iso.datetime().describe("ISO-8601 UTC time");
const Name = z.string().min(1).max(200);
/** One line of text: no control characters at all. */
const Line = (max: number) => plainText("line", max);
/** Prose: tab and newline allowed, no other control character. */
const Prose = (max: number) => plainText("prose", max);

export const GRANT_STATES = [
  "requested",
  "approved",
  "active",
  "ended",
  "reviewed",
  "denied",
  "cancelled",
  "approval_expired",
] as const;
export const GrantStateSchema = z.enum(GRANT_STATES);
export const END_REASONS = ["expired", "revoked", "released"] as const;
export const ACCESS_STATES = ["none", "granting", "granted", "revoking", "revoked"] as const;
export const REVIEW_OUTCOMES = ["justified", "justified_with_findings", "unjustified"] as const;
export const ReviewOutcomeSchema = z.enum(REVIEW_OUTCOMES);

/**
 * A duration as text with its unit (`30m`, `1h30m`, `2d`, `45s`). A bare number is refused, saying
 * so: `30` is never taken as 30 seconds silently.
 */
export const DurationInputSchema = z
  .string({ error: (iss) => (typeof iss.input === "number" ? durationProblem(iss.input) : undefined) })
  .check((ctx) => {
    if (!isDuration(ctx.value))
      ctx.issues.push({ code: "custom", input: ctx.value, message: durationProblem(ctx.value) });
  })
  .describe("Duration with its unit: 30m, 1h30m, 2d, 45s (a bare number is refused)");

// ---------------------------------------------------------------------------------------------
// Requests

export const CreateGrantBodySchema = z
  .strictObject({
    role: Name.describe("Role id, `DOMAIN/ROLE`"),
    justification: Prose(4000).describe(
      "Why the access is needed (tab and newline allowed, no other control character)",
    ),
    incident: Line(200).describe("Incident id, e.g. INC-1234"),
    duration: DurationInputSchema.optional().describe("Grant length; defaults to the role's default duration"),
    emergency: z
      .boolean()
      .optional()
      .describe("Self-activate without approval (roles that allow it); pages louder and must be reviewed"),
  })
  .register(apiSchemas, { id: "CreateGrantRequest" });

export const ApproveBodySchema = z
  .strictObject({ comment: Prose(2000).optional() })
  .register(apiSchemas, { id: "ApproveRequest" });

/** Deny, cancel and revoke need a reason. */
export const ReasonBodySchema = z
  .strictObject({ reason: Prose(2000).min(1).describe("Why; recorded in the audit log") })
  .register(apiSchemas, { id: "ReasonRequest" });

export const ResolveBodySchema = z
  .strictObject({
    note: Prose(8000)
      .min(1)
      .describe("What was done about the containment drift (who fixed what at the target, or why it stays)"),
  })
  .register(apiSchemas, { id: "ResolveRequest" });

/** Activate and release take no fields; an empty object (or no body) is accepted. */
export const EmptyBodySchema = z.strictObject({}).register(apiSchemas, { id: "EmptyRequest" });

export const FollowUpSchema = z
  .strictObject({
    action: Line(2000).min(1).describe("What must be done (rotate the credential, fix the runbook…)"),
    owner: UserNameSchema.describe("Who does it: a user name"),
    due: z.iso.date().optional().describe("By when (YYYY-MM-DD)"),
  })
  .register(apiSchemas, { id: "FollowUp" });

export const ReviewBodySchema = z
  .strictObject({
    outcome: ReviewOutcomeSchema,
    notes: Prose(8000).min(1).describe("What was done, findings and follow-ups"),
    followUps: z.array(FollowUpSchema).max(20).optional().describe("Follow-up actions with owners"),
  })
  .register(apiSchemas, { id: "ReviewRequest" });

export const ExtendBodySchema = z
  .strictObject({
    by: DurationInputSchema.describe("How much longer; the total stays within the role's max_duration"),
    reason: Prose(2000).min(1).describe("Why; recorded in the audit log"),
  })
  .register(apiSchemas, { id: "ExtendRequest" });

const QueryBool = z.enum(["true", "false", "1", "0"]).describe("true/false");

/** The largest page of `GET /grants`: a page costs the broker what its rows do, so it is kept small. */
export const GRANT_PAGE_MAX = 100;

export const ListGrantsQuerySchema = z.strictObject({
  state: z
    .string()
    .regex(/^[a-z_]+(,[a-z_]+)*$/)
    .optional()
    .describe(`Comma-separated states: ${GRANT_STATES.join(", ")}`),
  requester: Name.optional().describe("Only grants of this user"),
  role: Name.optional().describe("Only grants of this role id"),
  mine: QueryBool.optional().describe("Only the caller's grants"),
  limit: z.coerce
    .number()
    .int()
    .min(1)
    .max(1000)
    .optional()
    .describe(
      `At most this many (default 100; more than ${GRANT_PAGE_MAX} is served as ${GRANT_PAGE_MAX}: follow \`next\`)`,
    ),
  cursor: z
    .string()
    .regex(/^[A-Za-z0-9_-]{1,200}$/)
    .optional()
    .describe("Where the page starts: the `next` of the page before"),
});

export const AuditEventsQuerySchema = z.strictObject({
  from: z.coerce.number().int().min(1).optional().describe("First sequence number (default 1)"),
  limit: z.coerce.number().int().min(1).max(1000).optional().describe("At most this many (default 100)"),
});

export const GrantIdParamsSchema = z.strictObject({ id: Name.describe("Grant id") });
export const IncidentParamsSchema = z.strictObject({
  id: Line(200).min(1).describe("Incident id, e.g. INC-4711"),
});

// ---------------------------------------------------------------------------------------------
// Responses

export const HealthSchema = z
  .object({ status: z.literal("ok"), store: z.literal("ok") })
  .register(apiSchemas, { id: "Health" });

export const ReadySchema = z
  .object({
    status: z.literal("ready"),
    store: z.literal("ok"),
    workers: z.literal("running").describe("Expiry, alarms, reconciliation and the other background work"),
  })
  .register(apiSchemas, { id: "Ready" });

export const MeSchema = z
  .object({
    user: z.string(),
    displayName: z.string(),
    email: z.string().nullable(),
    groups: z.array(z.string()),
    admin: z.boolean().describe("Member of an admin group (may revoke any grant)"),
  })
  .register(apiSchemas, { id: "Me" });

// --- Who is asking (auth) -----------------------------------------------------------------

export const IdpHealthSchema = z
  .object({
    configured: z.boolean().describe("An IdP (auth.oidc) is configured"),
    reachable: z.boolean().describe("Reachable and not declared down: sign in through it"),
    declaredDown: z
      .object({ by: z.string(), at: z.string(), reason: z.string() })
      .nullable()
      .describe("Set when an admin declared the IdP down"),
    lastCheckAt: z.string().nullable(),
    fallbackOpen: z.boolean().describe("Local fallback login is possible right now"),
  })
  .register(apiSchemas, { id: "IdpHealth" });

export const SessionViewSchema = z
  .object({
    user: z.string(),
    method: z.enum(["token", "oidc", "fallback"]),
    sessionId: z.string().nullable(),
    expiresAt: z.string().nullable(),
    factorAt: z.string().nullable().describe("When a second factor was last verified in this session"),
    csrfToken: z.string().nullable().describe("Send as `x-csrf-token` on every POST made with the session cookie"),
    features: z
      .object({
        idpLogin: z.boolean().describe("Sign-in through the IdP (`auth.oidc`)"),
        localFactors: z
          .boolean()
          .describe(
            "Sessions' local factors: authenticator apps, security keys, recovery codes, step-up (needs `secrets.key_file`; without it the factor routes answer ERR_NOT_CONFIGURED)",
          ),
        fallbackLogin: z.boolean().describe("The local fallback login exists (it opens only while the IdP is down)"),
      })
      .describe("What this broker offers for signing in and second factors"),
  })
  .register(apiSchemas, { id: "SessionView" });

export const LoginResultSchema = z
  .object({
    user: z.string(),
    method: z.enum(["oidc", "fallback"]),
    token: z.string().describe("Session token (`Authorization: Bearer`); also set as the `bg_session` cookie"),
    csrfToken: z.string(),
    expiresAt: z.string(),
  })
  .register(apiSchemas, { id: "LoginResult" });

const proofFields = {
  code: z.string().min(6).max(64).optional().describe("A 6-digit authenticator code, or a recovery code"),
  webauthn: z
    .record(z.string(), z.unknown())
    .optional()
    .describe("A WebAuthn answer (PublicKeyCredential JSON) to the options of /auth/webauthn/challenge"),
};
const oneProof = (v: { code?: string | undefined; webauthn?: unknown }) =>
  (v.code === undefined) !== (v.webauthn === undefined);
const ONE_PROOF = { error: "give exactly one of `code` and `webauthn`" };

export const FallbackLoginBodySchema = z
  .strictObject({ user: UserNameSchema, ...proofFields })
  .refine(oneProof, ONE_PROOF)
  .register(apiSchemas, { id: "FallbackLoginRequest" });

export const ProofBodySchema = z
  .strictObject(proofFields)
  .refine(oneProof, ONE_PROOF)
  .register(apiSchemas, { id: "FactorProof" });

export const WebauthnChallengeBodySchema = z
  .strictObject({ user: UserNameSchema })
  .register(apiSchemas, { id: "WebauthnChallengeRequest" });

export const WebauthnOptionsSchema = z
  .record(z.string(), z.unknown())
  .describe("PublicKeyCredentialRequestOptionsJSON / CreationOptionsJSON, for navigator.credentials")
  .register(apiSchemas, { id: "WebauthnOptions" });

export const WebauthnEnrollViewSchema = z
  .object({ factorId: z.string(), options: WebauthnOptionsSchema })
  .register(apiSchemas, { id: "WebauthnEnrollment" });

export const FactorViewSchema = z
  .object({
    id: z.string(),
    kind: z.enum(["totp", "recovery", "webauthn"]),
    label: z.string(),
    createdAt: z.string(),
    confirmed: z.boolean(),
    lastUsedAt: z.string().nullable(),
  })
  .register(apiSchemas, { id: "Factor" });

export const FactorListSchema = z
  .object({
    factors: z.array(FactorViewSchema),
    recoveryCodesLeft: z.int(),
  })
  .register(apiSchemas, { id: "FactorList" });

export const TotpEnrollBodySchema = z
  .strictObject({ label: Line(100).default("authenticator app") })
  .register(apiSchemas, { id: "TotpEnrollRequest" });

export const TotpEnrollViewSchema = z
  .object({
    factorId: z.string(),
    secret: z.string().describe("Base32 shared secret: shown once"),
    uri: z.string().describe("otpauth:// URI for authenticator apps (the QR code encodes it)"),
    qrSvg: z.string().describe("The URI as an SVG QR code"),
  })
  .register(apiSchemas, { id: "TotpEnrollment" });

export const RecoveryCodesViewSchema = z
  .object({ codes: z.array(z.string()).describe("One-time codes: shown once, stored hashed") })
  .register(apiSchemas, { id: "RecoveryCodes" });

export const FactorParamsSchema = z.strictObject({ factor: z.string().min(1).max(100) });

export const StepUpViewSchema = z.object({ factorAt: z.string() }).register(apiSchemas, { id: "StepUpResult" });

export const IdpDeclareBodySchema = z
  .strictObject({
    down: z.boolean(),
    reason: Prose(500).min(3).describe("Why: what an auditor will read"),
  })
  .register(apiSchemas, { id: "IdpDeclareRequest" });

// --- Service tokens ----------------------------------------------------------------------

export const TOKEN_SCOPE_NAMES = ["read", "request", "approve", "review", "admin", "*"] as const;

export const CreateTokenBodySchema = z
  .strictObject({
    description: Line(200).min(1).describe("What the token is for (shown in lists and the audit log)"),
    scopes: z
      .array(z.enum(TOKEN_SCOPE_NAMES))
      .min(1)
      .describe("read (GET), request, approve, review, admin; `*` for all"),
    ttl: z
      .string()
      .regex(/^(\d+[smhd])+$/)
      .default("30d")
      .describe("Lifetime, at most 365d, e.g. 12h or 30d"),
    user: UserNameSchema.optional().describe("Another configured user (a service account): admins only"),
  })
  .register(apiSchemas, { id: "CreateTokenRequest" });

export const TokenViewSchema = z
  .object({
    id: z.string(),
    user: z.string(),
    description: z.string(),
    scopes: z.array(z.string()),
    createdAt: z.string(),
    expiresAt: z.string().nullable(),
    revokedAt: z.string().nullable(),
  })
  .register(apiSchemas, { id: "Token" });

export const CreatedTokenViewSchema = TokenViewSchema.extend({
  token: z.string().describe("The bearer token: shown once, only its hash is stored"),
}).register(apiSchemas, { id: "CreatedToken" });

export const TokenListSchema = z.object({ tokens: z.array(TokenViewSchema) }).register(apiSchemas, { id: "TokenList" });

export const TokenParamsSchema = z.strictObject({ token: z.string().min(1).max(100) });

export const RoleViewSchema = z
  .object({
    id: z.string().describe("`DOMAIN/ROLE`"),
    domain: z.string(),
    name: z.string(),
    description: z.string(),
    target: z.string(),
    defaultDurationS: z.int(),
    maxDurationS: z.int(),
    approval: z.string().describe('The approval rule, e.g. "2 of sre-leads"'),
    emergencyAllowed: z.boolean(),
    requesters: z.array(z.string()).describe("Groups whose members may request the role"),
    canRequest: z.boolean().describe("The caller may request this role"),
    autoActivate: z.boolean(),
  })
  .register(apiSchemas, { id: "Role" });

export const DomainViewSchema = z
  .object({ name: z.string(), description: z.string(), roles: z.array(RoleViewSchema) })
  .register(apiSchemas, { id: "Domain" });

export const RolesResponseSchema = z
  .object({ domains: z.array(DomainViewSchema) })
  .register(apiSchemas, { id: "RolesResponse" });

export const ApprovalViewSchema = z
  .object({ approver: z.string(), at: IsoTime, comment: z.string().nullable() })
  .register(apiSchemas, { id: "Approval" });

export const AccessViewSchema = z
  .object({
    state: z.enum(ACCESS_STATES).describe("What the broker believes exists at the target"),
    attempts: z.int().describe("Failed attempts of the current access operation"),
    lastError: z.string().nullable().describe("The target's last error, if any"),
    nextAttemptAt: IsoTime.nullable(),
    revocationFailing: z
      .boolean()
      .describe("Revoking at the target has failed at least once and is being retried (never given up)"),
    activationFailure: z
      .object({
        attempts: z.int().describe("Failed activation attempts so far"),
        lastError: z.string().describe("The target's last error (secrets redacted)"),
        lastAttemptAt: IsoTime,
        nextAttemptAt: IsoTime.nullable().describe(
          "When the broker tries again by itself; null when it will not (the grant lapses first, or lapsed)",
        ),
      })
      .nullable()
      .describe(
        "The target refused or failed this grant's activation: the broker retries with backoff (2 s, 4 s … 1 min) until the grant lapses (activation_timeout); the holder may activate again at any time. Null when no attempt failed, or once one succeeded",
      ),
  })
  .register(apiSchemas, { id: "Access" });

export const ReviewViewSchema = z
  .object({
    reviewer: z.string(),
    at: IsoTime,
    outcome: ReviewOutcomeSchema,
    notes: z.string(),
    followUps: z.array(z.object({ action: z.string(), owner: z.string(), due: z.string().nullable() })),
  })
  .register(apiSchemas, { id: "Review" });

/**
 * Why a row shown (a terminal session, a tier-2 opening, a drill run, an alarm) is not plain
 * evidence: it states something else than the audit events that recorded it. Null when it agrees.
 */
export const RowIntegritySchema = z
  .object({
    columns: z.array(z.string()).describe("`table.column` of each fact that differs"),
    seq: z.int().nullable().describe("The event that says otherwise; null for a row the chain never recorded"),
    message: z.string(),
  })
  .nullable()
  .register(apiSchemas, { id: "RowIntegrity" });

export const AlarmViewSchema = z
  .object({
    id: z.string().describe("Also the idempotency key receivers see"),
    channel: z.string(),
    event: z.string().describe("The audit event that raised it"),
    state: z.enum(["queued", "delivered", "failed"]),
    attempts: z.int(),
    lastError: z.string().nullable(),
    createdAt: z.string(),
    deliveredAt: z.string().nullable(),
    latencyMs: z.int().nullable().describe("From the event to the receiver's answer"),
    nextAttemptAt: z.string().nullable(),
    deliveryCovered: z
      .boolean()
      .describe(
        "Whether the audit chain records this delivery (activation alarms: alarm.delivered), so `state` and `deliveredAt` are the chain's; false: they are the outbox's bookkeeping, which `audit verify` does not cover",
      ),
    integrity: RowIntegritySchema,
  })
  .register(apiSchemas, { id: "Alarm" });

export const GrantPermissionsSchema = z
  .object({
    approve: z.boolean(),
    deny: z.boolean(),
    cancel: z.boolean(),
    activate: z.boolean(),
    revoke: z.boolean(),
    release: z.boolean(),
    extend: z.boolean().describe("By any amount within the role's maximum"),
    review: z.boolean(),
    ack: z.boolean().describe("Acknowledge the activation's alarm"),
    resolve: z
      .boolean()
      .describe("Record what was done about containment drift (whether any is open: the grant's story)"),
    credential: z.boolean().describe("Read the credential (the holder, while active, on a target that hands one out)"),
    recording: z.boolean().describe("Read what the grant's sessions did"),
  })
  .describe(
    "Whether each action would be accepted from the caller now: the grant machine's own checks, dry-run, and the caller's sign-in (a token's scopes, a fallback login). A fresh second factor (step-up) is not counted: the action asks for it.",
  )
  .register(apiSchemas, { id: "GrantPermissions" });

export const GrantViewSchema = z
  .object({
    id: z.string(),
    role: z.string().describe("Role id, `DOMAIN/ROLE`"),
    domain: z.string(),
    target: z.string(),
    requester: z.string(),
    state: GrantStateSchema,
    endReason: z.enum(END_REASONS).nullable(),
    emergency: z.boolean(),
    viaFallback: z.boolean().describe("Requested from a login via local fallback (IdP down): flagged for review"),
    drill: z
      .boolean()
      .describe("A drill's grant (`breakglass drill run`): a rehearsal of the real path, never queued for review"),
    justification: z.string(),
    incident: z.string(),
    durationS: z.int(),
    approvalRule: z.string().nullable().describe("The role's approval rule (null if the role is gone)"),
    approvals: z.array(ApprovalViewSchema),
    requestedAt: IsoTime,
    approvedAt: IsoTime.nullable(),
    activatedAt: IsoTime.nullable(),
    endsAt: IsoTime.nullable(),
    endedAt: IsoTime.nullable(),
    lapseAt: IsoTime.nullable().describe("When an open request lapses if nothing happens"),
    reviewDueAt: IsoTime.nullable(),
    remainingS: z.int().nullable().describe("Seconds left of an active grant; null otherwise"),
    closedBy: z.string().nullable(),
    closeReason: z.string().nullable(),
    access: AccessViewSchema,
    alarms: z.array(AlarmViewSchema).optional().describe("The grant's alarms and their delivery (on GET /grants/{id})"),
    extensions: z
      .array(
        z.object({
          at: IsoTime,
          by: z.string(),
          extraS: z.int(),
          endsAt: IsoTime.describe("The end after this extension"),
          reason: z.string(),
        }),
      )
      .optional()
      .describe(
        "Every extension, oldest first (on GET /grants/{id}); `durationS` is the requested duration plus their `extraS`",
      ),
    unalarmed: z
      .boolean()
      .optional()
      .describe(
        "No security channel has delivered the activation alarm in time (active grants, on GET /grants and /grants/{id}); the grant still works",
      ),
    canApprove: z
      .boolean()
      .optional()
      .describe("Requests: whether the caller's approval would count now (not the requester, eligible, not yet given)"),
    can: GrantPermissionsSchema.optional().describe(
      "What the caller may do with this grant now (on GET /grants, GET /grants/{id} and the actions' answers)",
    ),
    review: ReviewViewSchema.nullable(),
    version: z.int(),
  })
  .register(apiSchemas, { id: "Grant" });

/** Why an audit event shown is not plain evidence (null when it is exactly what was written). */
export const AuditIntegritySchema = z
  .object({
    problem: z
      .enum(["column_mismatch", "modified", "unreadable"])
      .describe(
        "column_mismatch: index columns of the row (named) were edited; the values shown are the hashed payload's. modified / unreadable (log browser only): the payload or hash does not chain, so the values are not evidence",
      ),
    columns: z.array(z.string()).describe("The audit table's columns found changed"),
    message: z.string(),
  })
  .nullable()
  .register(apiSchemas, { id: "AuditIntegrity" });

export const IncidentViewSchema = z
  .object({
    incident: z.string(),
    grants: z.array(GrantViewSchema).describe("Every grant requested for this incident, newest first"),
    timeline: z
      .array(
        z.object({
          seq: z.int(),
          at: IsoTime,
          type: z.string(),
          actor: z.string(),
          grantId: z.string().nullable(),
          integrity: AuditIntegritySchema,
        }),
      )
      .describe(
        "Their audit events in order: requests, approvals, activations, ends, sweeps, reviews — every value from the hashed payload",
      ),
    alarms: z
      .array(AlarmViewSchema.extend({ grantId: z.string().nullable() }))
      .describe("Every alarm their events raised, with its delivery"),
  })
  .register(apiSchemas, { id: "Incident" });

export const VaultOpeningViewSchema = z
  .object({
    id: z.string().describe("vo_<envelope id>_<record seq>"),
    envelope: z.object({ id: z.string(), name: z.string() }),
    record: z.object({ seq: z.int(), hash: z.string() }),
    openedAt: IsoTime,
    custodians: z.array(z.object({ name: z.string(), fingerprint: z.string() })).describe("Who opened it"),
    reason: z.string(),
    incident: z.string(),
    importedAt: IsoTime,
    reviewDueAt: IsoTime,
    review: ReviewViewSchema.nullable(),
    alarm: z
      .object({ pending: z.boolean(), deliveredAt: IsoTime.nullable() })
      .describe(
        "The envelope's own alarm (told by the offline CLI): pending while no endpoint took it (posture is red); delivered at the opening or later by vault flush-alarms (null while pending, or unknown for an opening imported before this was recorded)",
      ),
    integrity: RowIntegritySchema,
  })
  .register(apiSchemas, { id: "VaultOpening" });

export const VaultOpeningIdParamsSchema = z.strictObject({
  id: z
    .string()
    .regex(/^vo_[0-9a-f]+_\d+$/, "not a tier-2 opening id (vo_…)")
    .describe("Tier-2 opening id"),
});

export const ReviewQueueSchema = z
  .object({
    vaultOpenings: z
      .array(
        z.object({
          opening: VaultOpeningViewSchema,
          overdue: z.boolean(),
          canReview: z.boolean(),
          why: z.string().nullable().describe("Why not, when canReview is false"),
        }),
      )
      .describe("Tier-2 envelope openings waiting for their review, oldest deadline first"),
    reviews: z.array(
      z.object({
        grant: GrantViewSchema,
        dueAt: IsoTime.nullable(),
        overdue: z.boolean(),
        emergency: z
          .boolean()
          .describe("An emergency activation or a fallback-login grant: reviewed by the reviewer group"),
        canReview: z.boolean().describe("Whether the caller may review it"),
        why: z.string().nullable().describe("Why not, when canReview is false"),
      }),
    ),
  })
  .register(apiSchemas, { id: "ReviewQueue" });

export const ReviewQueueQuerySchema = z.strictObject({
  overdue: z
    .enum(["true", "false"])
    .optional()
    .transform((v) => v === "true")
    .describe("Only reviews past their deadline"),
  mine: z
    .enum(["true", "false"])
    .optional()
    .transform((v) => v === "true")
    .describe("Only reviews the caller may do"),
});

export const GrantStorySchema = z
  .object({
    grant: GrantViewSchema,
    grantIntegrity: z
      .object({ column: z.string(), seq: z.int(), message: z.string() })
      .nullable()
      .describe(
        "Null when the grant's row says what its audit events say; else the first fact that differs (the row was edited behind the broker's back; `audit verify` fails on it too)",
      ),
    timeline: z
      .array(
        z.object({
          seq: z.int(),
          at: IsoTime,
          type: z.string(),
          actor: z.string(),
          data: z.record(z.string(), z.unknown()),
          integrity: AuditIntegritySchema,
        }),
      )
      .describe("Every audit event of the grant in order, with its facts — every value from the hashed payload"),
    alarms: z.array(AlarmViewSchema).describe("Every alarm its events raised, with delivery"),
    recording: z.object({
      gatewaySessions: z.int(),
      statements: z.int(),
      blocked: z.array(z.object({ at: IsoTime, statement: z.string(), error: z.string().nullable() })),
      errors: z.int(),
      terminalSessions: z.int(),
      sessions: z
        .array(
          z.object({
            kind: z.enum(["terminal", "gateway"]),
            session: z.string(),
            entries: z.int().describe("Events (terminal) or statements (gateway) stored now"),
            sealedBy: z
              .int()
              .nullable()
              .describe(
                "Seq of the audit event that sealed the recording's digest; null while open (or closed before seals)",
              ),
            digest: z.string().nullable().describe("The sealed digest (core/recording-digest.ts)"),
            matches: z
              .boolean()
              .nullable()
              .describe(
                "Whether the stored entries still hash to the sealed digest; false: the recording changed after it closed",
              ),
            integrity: RowIntegritySchema.describe(
              "A terminal session's row against grant.terminal_started/ended (null for gateway sessions)",
            ),
          }),
        )
        .describe("Each recording of the grant against the digest sealed in the audit chain"),
    }),
    sweptSidePermissions: z
      .array(z.record(z.string(), z.unknown()))
      .describe("What the connector found left behind at the end and undid (target.side_permission_swept)"),
    timing: z.object({
      timeToApprovalS: z.number().nullable(),
      timeToAccessS: z.number().nullable().describe("Request to activation"),
      heldS: z.number().nullable().describe("Activation to end"),
      reviewDueAt: IsoTime.nullable(),
    }),
    canReview: z.boolean().describe("Whether the caller may record the verdict now"),
    why: z
      .string()
      .nullable()
      .describe("Why not, when canReview is false (already reviewed, not ended yet, a drill's grant, the holder …)"),
  })
  .register(apiSchemas, { id: "GrantStory" });

export const DrillRunViewSchema = z
  .object({
    id: z.string(),
    name: z.string(),
    scenario: z.string(),
    startedBy: z.string(),
    startedAt: IsoTime,
    endedAt: IsoTime.nullable(),
    result: z.enum(["running", "passed", "failed"]),
    grantId: z.string().nullable(),
    timeToAccessMs: z.number().nullable().describe("From the request to access proven at the target"),
    steps: z.array(
      z.object({ name: z.string(), startedAt: IsoTime, ms: z.number(), ok: z.boolean(), detail: z.string() }),
    ),
    sealed: z
      .boolean()
      .describe(
        "Whether the run's result and steps are in the audit chain (drill.finished); false while it runs, and for a run whose broker died mid-run",
      ),
    integrity: RowIntegritySchema,
  })
  .register(apiSchemas, { id: "DrillRun" });

export const DrillListSchema = z
  .object({
    drills: z.array(
      z.object({
        name: z.string(),
        scenario: z.string(),
        role: z.string(),
        every: z.string().describe("How often it must pass"),
        lastRun: DrillRunViewSchema.nullable(),
      }),
    ),
  })
  .register(apiSchemas, { id: "DrillList" });

export const DrillRunListSchema = z
  .object({ runs: z.array(DrillRunViewSchema) })
  .register(apiSchemas, { id: "DrillRunList" });

export const DrillParamsSchema = z.strictObject({ name: z.string().min(1).max(100) });
export const DrillRunParamsSchema = z.strictObject({ run: z.string().min(1).max(100) });

const PostureLevelSchema = z.enum(["green", "amber", "red"]);

export const PostureSchema = z
  .object({
    status: PostureLevelSchema.describe("The worst of the roles and credentials"),
    checkedAt: IsoTime,
    credentials: z
      .array(
        z.object({
          credential: z.string(),
          rotatedAt: IsoTime.nullable(),
          ageDays: z.int().nullable(),
          overdue: z.boolean(),
          fix: z.string(),
        }),
      )
      .describe("Break-glass credentials against the rotation policy (rotation.max_age; red when overdue)"),
    vault: z
      .array(z.object({ level: z.enum(["amber", "red"]), what: z.string(), fix: z.string() }))
      .describe("Tier-2 openings awaiting review: amber, red once overdue"),
    roles: z.array(
      z.object({
        role: z.string(),
        status: PostureLevelSchema,
        lastUse: IsoTime.nullable().describe("Last real (non-drill) activation"),
        lastDrill: z.object({ name: z.string(), at: IsoTime, result: z.string() }).nullable(),
        openReviews: z.int(),
        overdueReviews: z.int(),
        activeGrants: z.int(),
        items: z.array(
          z.object({
            level: z.enum(["amber", "red"]),
            what: z.string(),
            fix: z.string().describe("The exact thing to do"),
          }),
        ),
      }),
    ),
  })
  .register(apiSchemas, { id: "Posture" });

export const ChannelHealthListSchema = z
  .object({
    channels: z.array(
      z.object({
        channel: z.string(),
        failing: z.boolean().describe("Failed several deliveries in a row (alarm.channel_failing was raised)"),
        consecutiveFailures: z.int(),
        lastError: z.string().nullable(),
      }),
    ),
  })
  .describe("Each alarm channel's health as the answering replica sees it")
  .register(apiSchemas, { id: "ChannelHealthList" });

export const GrantListSchema = z
  .object({
    grants: z.array(GrantViewSchema),
    next: z.string().nullable().describe("Pass as `cursor` for the next page; null on the last page"),
  })
  .register(apiSchemas, { id: "GrantList" });

export const AuditEventViewSchema = z
  .object({
    seq: z.int(),
    at: IsoTime,
    type: z.string(),
    actor: z.string(),
    grantId: z.string().nullable(),
    payload: z.string().describe("RFC 8785 canonical JSON of the event: the exact bytes the hash covers"),
    hash: z.string().describe("Hex SHA-256 chaining this event to the previous one"),
    integrity: AuditIntegritySchema,
  })
  .describe("at, type, actor and grantId are the payload's; integrity says whether the stored row checks out")
  .register(apiSchemas, { id: "AuditEvent" });

export const AuditEventListSchema = z
  .object({
    events: z.array(AuditEventViewSchema),
    next: z.int().nullable().describe("`from` of the next page, null at the end"),
  })
  .register(apiSchemas, { id: "AuditEventList" });

export const CheckpointViewSchema = z
  .object({ seq: z.int(), hash: z.string(), at: IsoTime, keyId: z.string(), signature: z.string() })
  .register(apiSchemas, { id: "Checkpoint" });

export const CheckpointListSchema = z
  .object({
    checkpoints: z.array(CheckpointViewSchema),
    signingKey: z.object({ keyId: z.string(), publicKeyPem: z.string() }).describe("The broker's current signing key"),
  })
  .register(apiSchemas, { id: "CheckpointList" });

export const StatementViewSchema = z
  .object({
    session: z.string().describe("Gateway session id (`s_…`)"),
    seq: z.number().int().describe("Order within the session, from 1"),
    startedAt: z.string().describe("ISO-8601"),
    endedAt: z.string().nullable().describe("ISO-8601; null when the session ended before the statement finished"),
    kind: z
      .enum(["simple", "extended", "blocked", "function", "prepare"])
      .describe(
        "`blocked`: refused by the role's guard, not run; `prepare`: prepared (or refused by the target) and not executed in its pipeline",
      ),
    text: z.string(),
    params: z
      .array(z.string().nullable())
      .nullable()
      .describe("Parameter values of a prepared statement (as text; `<redacted>` per role)"),
    rows: z.number().int().describe("Rows returned or affected"),
    tag: z.string().nullable().describe("Command tag(s), e.g. `UPDATE 3`"),
    error: z.string().nullable().describe("SQLSTATE and message when it failed"),
    bytes: z.number().int().describe("Bytes sent to the client for it"),
  })
  .meta({ id: "Statement" });

export const TerminalSessionViewSchema = z
  .object({
    id: z.string().describe("`t_…`"),
    grantId: z.string(),
    command: z.string(),
    width: z.number().int(),
    height: z.number().int(),
    recordInput: z.boolean().describe("Keystrokes are recorded too (the role's recording.terminal_input)"),
    startedAt: z.string(),
    endedAt: z.string().nullable(),
    endReason: z.string().nullable(),
    integrity: RowIntegritySchema,
  })
  .meta({ id: "TerminalSession" });
export type TerminalSessionView = z.infer<typeof TerminalSessionViewSchema>;

export const RecordingViewSchema = z
  .object({
    grantId: z.string(),
    statements: z.array(StatementViewSchema),
    terminalSessions: z
      .array(TerminalSessionViewSchema)
      .describe("Recorded `breakglass shell` sessions; read each with GET /terminal/{id}"),
  })
  .describe("Every statement the grant's gateway sessions ran, in order, and its recorded terminal sessions");

export const TerminalStartBodySchema = z.strictObject({
  command: Line(4000).min(1).describe("What runs, as typed (for the record)"),
  width: z.int().min(1).max(1000).default(80),
  height: z.int().min(1).max(1000).default(24),
});
export const TerminalStartViewSchema = z.object({
  session: TerminalSessionViewSchema,
  endsAt: z.string().describe("The grant's end: the shell is closed then"),
});
export type TerminalStartView = z.infer<typeof TerminalStartViewSchema>;
const TerminalEventSchema = z.strictObject({
  seq: z.int().min(1).describe("From 1, per session; a repeated seq is ignored (retries are safe)"),
  t: z.number().min(0).describe("Seconds since the session started"),
  kind: z.enum(["o", "i"]).describe("o: output, i: input"),
  data: z.string().max(1024 * 1024),
});
export const TerminalEventsBodySchema = z.strictObject({ events: z.array(TerminalEventSchema).max(10_000) });
export const TerminalAppendViewSchema = z.object({
  active: z.boolean().describe("false: the grant ended; close the command now"),
  endsAt: z.string().nullable(),
});
export const TerminalEndBodySchema = z.strictObject({ reason: Line(200).min(1) });
export const TerminalParamsSchema = z.strictObject({ session: Name.describe("Terminal session id (`t_…`)") });
export const TerminalRecordingViewSchema = z
  .object({
    session: TerminalSessionViewSchema,
    events: z
      .array(z.tuple([z.number(), z.enum(["o", "i"]), z.string()]))
      .describe("asciicast v2 events: [t, kind, data]"),
  })
  .describe("A terminal session and its events, ready to write as an asciicast v2 file");
export type TerminalRecordingView = z.infer<typeof TerminalRecordingViewSchema>;
export type RecordingView = z.infer<typeof RecordingViewSchema>;

export const TargetParamsSchema = z.strictObject({ target: z.string().min(1).max(128) });

export const DetectorReportSchema = z
  .object({
    received: z.number().int().describe("Uses of watched identities in the payload"),
    reported: z
      .number()
      .int()
      .describe("Of those, unexplained by any grant and reported now (target.unauthorized_login)"),
  })
  .describe("What the broker made of pushed CloudTrail events");

export const ReconcileReportSchema = z
  .object({
    fixed: z
      .array(z.object({ target: z.string(), grantId: z.string(), kind: z.string() }))
      .describe("Access found at a target after its grant ended, and removed again"),
    reported: z
      .array(z.object({ target: z.string(), kind: z.string(), principal: z.string(), description: z.string() }))
      .describe("Standing privilege made outside Breakglass (reported, not changed)"),
    errors: z
      .array(z.object({ target: z.string(), grantId: z.string().nullable(), error: z.string() }))
      .describe("What could not be checked this time"),
    checkedGrants: z.int(),
  })
  .register(apiSchemas, { id: "ReconcileReport" });

export const AuditVerdictSchema = z
  .object({
    ok: z.boolean(),
    summary: z.string().describe("One line a person can read"),
    eventsChecked: z.int(),
    headSeq: z.int().nullable(),
    headHash: z.string().nullable(),
    checkpointsChecked: z.int().nullable(),
    unanchoredEvents: z.int().nullable().describe("Events after the last signed checkpoint"),
    recordings: z
      .object({
        matched: z.int().describe("Recordings whose stored entries hash to the digest their end event sealed"),
        unsealed: z.int().describe("Recordings not sealed yet: open, or closed before seals existed"),
      })
      .nullable()
      .describe("Terminal and gateway recordings against the chain (null when the verdict is a failure)"),
    failure: z
      .object({
        seq: z.int(),
        problem: z.string(),
        column: z.string().nullable().describe("The audit table's column found changed, when one explains it"),
        message: z.string(),
      })
      .nullable()
      .describe("Where and how the log stops being what was written"),
  })
  .register(apiSchemas, { id: "AuditVerdict" });

/** Codes only the HTTP layer produces (the framework refused the request before our code ran). */
export type HttpOnlyCode =
  | "ERR_PAYLOAD_TOO_LARGE"
  | "ERR_UNSUPPORTED_MEDIA_TYPE"
  | "ERR_METHOD_NOT_ALLOWED"
  | "ERR_HEADERS_TOO_LARGE"
  | "ERR_REQUEST_TIMEOUT";
export type ProblemCode = ErrorCode | HttpOnlyCode;

/** RFC 9457 problem details, plus our stable `code` and the request id as `instance`. */
export const ProblemSchema = z
  .looseObject({
    type: z.string().optional().describe("`urn:breakglass:problem:<code>`"),
    title: z.string().optional(),
    status: z.int().optional(),
    detail: z.string().optional().describe("What went wrong, for a person"),
    code: z.string().describe("Stable `ERR_…` code"),
    instance: z.string().describe("The request id (also in the `x-request-id` header)"),
  })
  .register(apiSchemas, {
    id: "Problem",
    description:
      "RFC 9457 problem details; 5xx problems carry no detail, and ERR_INTERNAL carries only `code` and `instance`",
  });

// ---------------------------------------------------------------------------------------------
// Types

export type CreateGrantBody = z.input<typeof CreateGrantBodySchema>;
export type ApproveBody = z.input<typeof ApproveBodySchema>;
export type ReasonBody = z.input<typeof ReasonBodySchema>;
export type ReviewBody = z.input<typeof ReviewBodySchema>;
export type ListGrantsQuery = z.input<typeof ListGrantsQuerySchema>;
export type AuditEventsQuery = z.input<typeof AuditEventsQuerySchema>;
export type Health = z.infer<typeof HealthSchema>;
export type Me = z.infer<typeof MeSchema>;
export type DrillList = z.infer<typeof DrillListSchema>;
export type DrillRunView = z.infer<typeof DrillRunViewSchema>;
export type RoleView = z.infer<typeof RoleViewSchema>;
export type DomainView = z.infer<typeof DomainViewSchema>;
export type RolesResponse = z.infer<typeof RolesResponseSchema>;
export type ApprovalView = z.infer<typeof ApprovalViewSchema>;
export type GrantView = z.infer<typeof GrantViewSchema>;
export type GrantList = z.infer<typeof GrantListSchema>;
export type AuditEventView = z.infer<typeof AuditEventViewSchema>;
export type AuditEventList = z.infer<typeof AuditEventListSchema>;
export type CheckpointView = z.infer<typeof CheckpointViewSchema>;
export type CheckpointList = z.infer<typeof CheckpointListSchema>;
export type AuditVerdictView = z.infer<typeof AuditVerdictSchema>;
export type Problem = z.infer<typeof ProblemSchema>;
export type AlarmView = z.infer<typeof AlarmViewSchema>;
export type IncidentView = z.infer<typeof IncidentViewSchema>;
export type ReconcileReportView = z.infer<typeof ReconcileReportSchema>;
export type CredentialView = z.infer<typeof CredentialViewSchema>;
export type SessionView = z.infer<typeof SessionViewSchema>;
export type LoginResult = z.infer<typeof LoginResultSchema>;
export type FactorView = z.infer<typeof FactorViewSchema>;
export type FactorList = z.infer<typeof FactorListSchema>;
export type TotpEnrollView = z.infer<typeof TotpEnrollViewSchema>;
export type WebauthnEnrollView = z.infer<typeof WebauthnEnrollViewSchema>;
export type GrantPermissions = z.infer<typeof GrantPermissionsSchema>;
/** A second factor as the API takes it: a code (authenticator app, recovery code) or a security key's answer. */
export type FactorProof = { code: string } | { webauthn: Record<string, unknown> };

export const CredentialViewSchema = z
  .object({
    grantId: z.string(),
    credential: z
      .string()
      .describe(
        "What gets the holder in (connection string, certificate and key, temporary keys). Never logged; every read is audited",
      ),
    endsAt: z.string().describe("ISO-8601; the credential stops working at the target by then"),
  })
  .register(apiSchemas, { id: "Credential" });

/** The actions `POST /grants/:id/<action>` accepts, with their bodies. */
export const GRANT_ACTIONS = {
  approve: ApproveBodySchema,
  deny: ReasonBodySchema,
  cancel: ReasonBodySchema,
  activate: EmptyBodySchema,
  revoke: ReasonBodySchema,
  release: EmptyBodySchema,
  review: ReviewBodySchema,
  extend: ExtendBodySchema,
  ack: ApproveBodySchema,
  resolve: ResolveBodySchema,
} as const;
export type GrantAction = keyof typeof GRANT_ACTIONS;
export type GrantActionBody<A extends GrantAction> = z.input<(typeof GRANT_ACTIONS)[A]>;
