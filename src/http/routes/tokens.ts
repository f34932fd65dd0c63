/** Service tokens: made by people (not by other tokens), shown once, listed, revocable. */
import type { z } from "zod";
import {
  CreatedTokenViewSchema,
  CreateTokenBodySchema,
  EmptyBodySchema,
  TokenListSchema,
  TokenParamsSchema,
  TokenViewSchema,
} from "../../contract/api.js";
import { parseDuration } from "../../core/duration.js";
import type { TokenRecord } from "../../core/records.js";
import { type AnyRoute, defineRoute } from "../route-table.js";
import type { RouteDeps } from "./route-deps.js";

function tokenView(t: TokenRecord): z.input<typeof TokenViewSchema> {
  const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());
  return {
    id: t.id,
    user: t.user,
    description: t.description,
    scopes: [...t.scopes],
    createdAt: new Date(t.createdAt).toISOString(),
    expiresAt: iso(t.expiresAt),
    revokedAt: iso(t.revokedAt),
  };
}

export function tokenRoutes(deps: Pick<RouteDeps, "tokens">): AnyRoute[] {
  const { tokens } = deps;
  return [
    defineRoute({
      method: "POST",
      path: "/tokens",
      operationId: "createToken",
      summary: "Create a service token with scopes and an expiry (shown once); admins may create one for another user",
      tag: "tokens",
      auth: true,
      scope: "session",
      body: CreateTokenBodySchema,
      status: 201,
      response: CreatedTokenViewSchema,
      problems: ["ERR_FORBIDDEN"],
      handler: async ({ ctx, body }) => {
        const created = await tokens.create(ctx, {
          user: body.user ?? ctx.actor,
          description: body.description,
          ttlS: parseDuration(body.ttl),
          scopes: body.scopes,
        });
        return { body: { ...tokenView(created.record), token: created.token.reveal() } };
      },
    }),
    defineRoute({
      method: "GET",
      path: "/tokens",
      operationId: "listTokens",
      summary: "Your tokens (admins: everyone's), without their secrets",
      tag: "tokens",
      auth: true,
      status: 200,
      response: TokenListSchema,
      problems: [],
      handler: async ({ ctx }) => ({
        body: { tokens: (await tokens.list(ctx)).map(tokenView) },
      }),
    }),
    defineRoute({
      method: "POST",
      path: "/tokens/:token/revoke",
      operationId: "revokeToken",
      summary: "Revoke a token now (your own; admins: any)",
      tag: "tokens",
      auth: true,
      params: TokenParamsSchema,
      body: EmptyBodySchema,
      status: 200,
      response: TokenViewSchema,
      problems: ["ERR_NOT_FOUND"],
      handler: async ({ ctx, params }) => ({
        body: tokenView(await tokens.revoke(ctx, params.token)),
      }),
    }),
  ];
}
