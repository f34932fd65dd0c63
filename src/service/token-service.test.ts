import { afterEach, beforeEach, describe, expect, test } from "vitest";
import { makePolicy, T0 } from "../../test/support/core-fixtures.js";
import { ctx } from "../../test/support/ctx.js";
import { type MemoryStore, openMemoryStore } from "../../test/support/memory-store.js";
import { createIdGenerator } from "../adapters/system-clock.js";
import type { RequestContext } from "../core/request-context.js";
import { SYSTEM_CONTEXT } from "../core/request-context.js";
import { createTokenService, MAX_TOKEN_TTL_S, type TokenService } from "./token-service.js";

// erin is the fixture's only admin (platform-admins).
const policy = makePolicy();
const clock = { now: () => T0 };
let db: MemoryStore;
let tokens: TokenService;

/** `user` signed in with an API token (as the server makes the context). */
const signedIn = (user: string): RequestContext => ({
  actor: user,
  requestId: "req",
  sourceAddress: "127.0.0.1",
  auth: { method: "token", sessionId: null, factorAt: null, scopes: ["*"] },
});
/** A local command: `breakglass token create` on the broker's host. */
const local: RequestContext = ctx("local:root", { sourceAddress: "local" });

beforeEach(async () => {
  db = await openMemoryStore();
  tokens = createTokenService({ policy, store: db.store, audit: db.journal, clock, ids: createIdGenerator(clock) });
});
afterEach(() => db.close());

const make = (ctx: RequestContext, user: string, ttlS?: number) =>
  tokens.create(ctx, { user, description: "test", ttlS });

describe("creating a token", () => {
  test("a person signed in makes their own", async () => {
    expect((await make(signedIn("alice"), "alice")).record.user).toBe("alice");
  });

  test("someone else's needs an admin: refused to a signed-in non-admin, and nothing is stored", async () => {
    await expect(make(signedIn("alice"), "bob")).rejects.toMatchObject({
      code: "ERR_FORBIDDEN",
      message: "creating a token for someone else needs membership of platform-admins",
    });
    expect(await db.store.listTokens(null)).toEqual([]);
    expect((await make(signedIn("erin"), "bob")).record.user).toBe("bob");
  });

  test("a local command and the broker's own work make anyone's (they hold the configuration and the database)", async () => {
    expect((await make(local, "bob")).record.user).toBe("bob");
    expect((await make(SYSTEM_CONTEXT, "alice")).record.user).toBe("alice");
  });

  test("over the API a token lives at most 365 days; a local command may make a longer one", async () => {
    await expect(make(signedIn("alice"), "alice", MAX_TOKEN_TTL_S + 1)).rejects.toMatchObject({
      code: "ERR_VALIDATION",
      detail: { field: "ttl" },
    });
    expect((await make(signedIn("alice"), "alice", MAX_TOKEN_TTL_S)).record.expiresAt).toBe(
      T0 + MAX_TOKEN_TTL_S * 1000,
    );
    expect((await make(local, "alice", 2 * MAX_TOKEN_TTL_S)).record.expiresAt).toBe(T0 + 2 * MAX_TOKEN_TTL_S * 1000);
  });

  test("who may comes before whether the user exists: a non-admin learns nothing of other names", async () => {
    await expect(make(signedIn("alice"), "nobody")).rejects.toMatchObject({ code: "ERR_FORBIDDEN" });
    await expect(make(signedIn("erin"), "nobody")).rejects.toMatchObject({ code: "ERR_VALIDATION" });
  });
});

describe("listing and revoking tokens", () => {
  beforeEach(async () => {
    await make(local, "alice");
    await make(local, "bob");
  });

  test("a person lists their own; an admin everyone's", async () => {
    expect((await tokens.list(signedIn("alice"))).map((t) => t.user)).toEqual(["alice"]);
    expect((await tokens.list(signedIn("dave"))).map((t) => t.user)).toEqual([]);
    expect((await tokens.list(signedIn("erin"))).map((t) => t.user).sort()).toEqual(["alice", "bob"]);
  });

  test("a person revokes their own; another's is not found to them; an admin revokes anyone's", async () => {
    const [alices] = await tokens.list(signedIn("alice"));
    const [bobs] = await tokens.list(signedIn("bob"));
    if (!alices || !bobs) throw new Error("fixture tokens missing");
    await expect(tokens.revoke(signedIn("alice"), bobs.id)).rejects.toMatchObject({ code: "ERR_NOT_FOUND" });
    expect((await db.store.findToken(bobs.id))?.revokedAt).toBeNull();
    expect((await tokens.revoke(signedIn("alice"), alices.id)).revokedAt).toBe(T0);
    expect((await tokens.revoke(signedIn("erin"), bobs.id)).revokedAt).toBe(T0);
  });
});
