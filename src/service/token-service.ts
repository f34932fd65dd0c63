/**
 * API tokens: `<id>.<secret>`, shown once at creation. Only SHA-256 of the secret is stored
 * (the secret is 256 random bits, so a slow hash adds nothing); lookup is by id and the hash is
 * compared in constant time.
 */
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { nonGrantEvent } from "../core/audit-event.js";
import { BreakglassError } from "../core/errors.js";
import type { Policy } from "../core/model.js";
import type { Clock, IdGenerator, Store, TokenRecord } from "../core/ports.js";
import { Redacted } from "../core/redacted.js";
import type { AuditAppender } from "./grant-writer.js";
import { stamp } from "./grant-writer.js";
import type { RequestContext } from "./request-context.js";

export interface CreatedToken {
  readonly record: TokenRecord;
  /** The bearer token; printed once, never stored. */
  readonly token: Redacted<string>;
}

export interface TokenService {
  /** @throws ERR_VALIDATION when the user is not configured */
  create(
    ctx: RequestContext,
    input: { user: string; description: string; ttlS?: number | undefined },
  ): Promise<CreatedToken>;
  /** The user a bearer token belongs to. @throws ERR_UNAUTHENTICATED */
  authenticate(bearer: string): Promise<string>;
}

const hashSecret = (secret: string): string => createHash("sha256").update(secret).digest("hex");

const unauthenticated = () =>
  new BreakglassError(
    "ERR_UNAUTHENTICATED",
    "missing, unknown, expired or revoked token; create one with `breakglass token create`",
  );

export function createTokenService(deps: {
  policy: Policy;
  store: Store;
  audit: AuditAppender;
  clock: Clock;
  ids: IdGenerator;
}): TokenService {
  const { policy, store, audit, clock, ids } = deps;
  return {
    async create(ctx, input) {
      if (!policy.users.has(input.user)) {
        throw new BreakglassError("ERR_VALIDATION", `"${input.user}" is not a configured user`, { user: input.user });
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
      return record.user;
    },
  };
}
