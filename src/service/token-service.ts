/**
 * API tokens: `<id>.<secret>`, shown once at creation. Only SHA-256 of the secret is stored
 * (the secret is 256 random bits, so a slow hash adds nothing); lookup is by id and the hash is
 * compared in constant time.
 */
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import type { AuditAppender, AuditTx } from "../audit/audit-journal.js";
import { stamp } from "../audit/audit-journal.js";
import { nonGrantEvent } from "../core/audit-event.js";
import { isSignedIn, mayManageTokensOf, requireTokenCreation, tokenListOwner } from "../core/authorization.js";
import { BreakglassError } from "../core/errors.js";
import type { Policy } from "../core/model.js";
import type { TokenReads, TokenWrites } from "../core/ports/auth.js";
import type { Clock, IdGenerator } from "../core/ports/runtime.js";
import type { Transactions } from "../core/ports/transactions.js";
import type { TokenRecord } from "../core/records.js";
import { Redacted } from "../core/redacted.js";
import type { RequestContext } from "../core/request-context.js";

export interface CreatedToken {
  readonly record: TokenRecord;
  /** The bearer token; printed once, never stored. */
  readonly token: Redacted<string>;
}

/** What a token may do. `*` is all of them (tokens made before scopes existed have it). */
export const TOKEN_SCOPES = ["read", "request", "approve", "review", "admin"] as const;
export type TokenScope = (typeof TOKEN_SCOPES)[number];

/** The longest a token made over the API lives (a local command may make a longer one). */
export const MAX_TOKEN_TTL_S = 365 * 86_400;

export interface TokenService {
  /**
   * A token for `input.user`: a person signed in makes their own, an admin anyone's
   * (core/authorization.ts); over the API it lives at most {@link MAX_TOKEN_TTL_S}.
   * @throws ERR_FORBIDDEN for someone else's token when not an admin
   * @throws ERR_VALIDATION when the ttl is too long, the user is not configured or a scope is unknown
   */
  create(
    ctx: RequestContext,
    input: { user: string; description: string; ttlS?: number | undefined; scopes?: readonly string[] | undefined },
  ): Promise<CreatedToken>;
  /** The user a bearer token belongs to, and its scopes. @throws ERR_UNAUTHENTICATED */
  authenticate(bearer: string): Promise<{ user: string; scopes: readonly string[] }>;
  /** The caller's tokens; an admin's list has everyone's. */
  list(ctx: RequestContext): Promise<TokenRecord[]>;
  /** Revoke the caller's own token; an admin any. @throws ERR_NOT_FOUND (unknown, or another's token and not an admin) */
  revoke(ctx: RequestContext, id: string): Promise<TokenRecord>;
}

const hashSecret = (secret: string): string => createHash("sha256").update(secret).digest("hex");

const unauthenticated = () =>
  new BreakglassError(
    "ERR_UNAUTHENTICATED",
    "missing, unknown, expired or revoked token; create one with `breakglass token create`",
  );

export function createTokenService(deps: {
  policy: Policy;
  store: Transactions<TokenWrites & AuditTx> & TokenReads;
  audit: AuditAppender;
  clock: Clock;
  ids: IdGenerator;
}): TokenService {
  const { policy, store, audit, clock, ids } = deps;
  return {
    async create(ctx, input) {
      requireTokenCreation(policy, ctx, input.user);
      if (isSignedIn(ctx) && input.ttlS !== undefined && input.ttlS > MAX_TOKEN_TTL_S) {
        throw new BreakglassError("ERR_VALIDATION", "a token lives at most 365d; rotate it instead", { field: "ttl" });
      }
      if (!policy.users.has(input.user)) {
        throw new BreakglassError("ERR_VALIDATION", `"${input.user}" is not a configured user`, { user: input.user });
      }
      const scopes = [...new Set(input.scopes ?? ["*"])].sort();
      const unknown = scopes.filter((x) => x !== "*" && !(TOKEN_SCOPES as readonly string[]).includes(x));
      if (unknown.length > 0 || scopes.length === 0) {
        throw new BreakglassError(
          "ERR_VALIDATION",
          `unknown token scope ${unknown.join(", ") || "(none given)"}; scopes are ${TOKEN_SCOPES.join(", ")} (or * for all)`,
          { field: "scopes" },
        );
      }
      const now = clock.now();
      const secret = randomBytes(32).toString("base64url");
      const record: TokenRecord = {
        id: ids.next("t"),
        user: input.user,
        secretHash: hashSecret(secret),
        createdAt: now,
        expiresAt: input.ttlS === undefined ? null : now + input.ttlS * 1000,
        revokedAt: null,
        description: input.description,
        scopes,
      };
      await store.transaction(async (tx) => {
        await tx.insertToken(record);
        await audit.append(tx, [
          stamp(
            nonGrantEvent("token.created", ctx.actor, now, {
              tokenId: record.id,
              user: record.user,
              description: record.description,
              expiresAt: record.expiresAt,
              scopes,
            }),
            ctx,
          ),
        ]);
      });
      return { record, token: new Redacted(`${record.id}.${secret}`) };
    },

    async authenticate(bearer) {
      const dot = bearer.indexOf(".");
      if (dot <= 0) throw unauthenticated();
      const record = await store.findToken(bearer.slice(0, dot));
      // Hash and compare even when the id is unknown, so timing does not reveal which ids exist.
      const presented = Buffer.from(hashSecret(bearer.slice(dot + 1)), "hex");
      const expected = Buffer.from(record?.secretHash ?? "0".repeat(64), "hex");
      const match = presented.length === expected.length && timingSafeEqual(presented, expected);
      if (!record || !match) throw unauthenticated();
      if (record.revokedAt !== null || (record.expiresAt !== null && record.expiresAt <= clock.now())) {
        throw unauthenticated();
      }
      if (!policy.users.has(record.user)) throw unauthenticated();
      return { user: record.user, scopes: record.scopes };
    },

    list: (ctx) => store.listTokens(tokenListOwner(policy, ctx.actor)),

    async revoke(ctx, id) {
      const record = await store.findToken(id);
      if (!record || !mayManageTokensOf(policy, ctx.actor, record.user)) {
        throw new BreakglassError("ERR_NOT_FOUND", `no token ${id} of yours`, { tokenId: id });
      }
      if (record.revokedAt !== null) return record;
      const now = clock.now();
      await store.transaction(async (tx) => {
        await tx.revokeToken(id, now);
        await audit.append(tx, [
          stamp(nonGrantEvent("token.revoked", ctx.actor, now, { tokenId: id, user: record.user }), ctx),
        ]);
      });
      return { ...record, revokedAt: now };
    },
  };
}
