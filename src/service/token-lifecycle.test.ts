import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { makePolicy } from "../../test/support/core-fixtures.js";
import { ctx } from "../../test/support/ctx.js";
import { openUnitStore, type UnitStore } from "../../test/support/unit-store.js";
import { createTokenService, type TokenService } from "./token-service.js";

let u: UnitStore;
let tokens: TokenService;

beforeEach(async () => {
  u = await openUnitStore();
  tokens = createTokenService({ policy: makePolicy(), store: u.store, audit: u.audit, clock: u.clock, ids: u.ids });
});
afterEach(() => u.close());

const erin = ctx("erin", { requestId: "r-7" });

describe("API tokens", () => {
  it("are <id>.<secret>, shown once: only the secret's hash is stored, and the creation is audited", async () => {
    const { record, token } = await tokens.create(erin, { user: "alice", description: "ci" });
    const [id, secret] = token.reveal().split(".") as [string, string];
    expect(id).toBe(record.id);
    expect(String(token)).toBe("[redacted]");
    const stored = await u.store.findToken(id);
    expect(JSON.stringify(stored)).not.toContain(secret);
    expect(await tokens.authenticate(token.reveal())).toEqual({ user: "alice", scopes: ["*"] });
    expect((await u.events("token.created"))[0]).toMatchObject({
      actor: "erin",
      requestId: "r-7",
      data: { tokenId: id, user: "alice", description: "ci", expiresAt: null, scopes: ["*"] },
    });
  });

  it("carry only known scopes, deduplicated and sorted", async () => {
    const { record } = await tokens.create(erin, {
      user: "alice",
      description: "",
      scopes: ["request", "read", "read"],
    });
    expect(record.scopes).toEqual(["read", "request"]);
    for (const scopes of [["read", "delete"], []]) {
      await expect(tokens.create(erin, { user: "alice", description: "", scopes })).rejects.toMatchObject({
        code: "ERR_VALIDATION",
        detail: { field: "scopes" },
      });
    }
    await expect(tokens.create(erin, { user: "zed", description: "" })).rejects.toMatchObject({
      code: "ERR_VALIDATION",
    });
  });

  it("stop working at their end, when revoked, and when their user leaves the configuration", async () => {
    const short = await tokens.create(erin, { user: "alice", description: "", ttlS: 60 });
    expect(short.record.expiresAt).toBe(u.clock.now() + 60_000);
    u.clock.advance(59_999);
    await tokens.authenticate(short.token.reveal());
    u.clock.advance(1);
    await expect(tokens.authenticate(short.token.reveal())).rejects.toMatchObject({ code: "ERR_UNAUTHENTICATED" });

    const revoked = await tokens.create(erin, { user: "alice", description: "" });
    await tokens.revoke(ctx("alice"), revoked.record.id);
    await expect(tokens.authenticate(revoked.token.reveal())).rejects.toMatchObject({ code: "ERR_UNAUTHENTICATED" });

    const leaver = await tokens.create(erin, { user: "bob", description: "" });
    const policy = makePolicy();
    const users = new Map(policy.users);
    users.delete("bob");
    const after = createTokenService({
      policy: { ...policy, users },
      store: u.store,
      audit: u.audit,
      clock: u.clock,
      ids: u.ids,
    });
    await expect(after.authenticate(leaver.token.reveal())).rejects.toMatchObject({ code: "ERR_UNAUTHENTICATED" });
  });

  it("refuse a wrong secret, an unknown id and a malformed bearer alike", async () => {
    const { token } = await tokens.create(erin, { user: "alice", description: "" });
    const [id, secret] = token.reveal().split(".") as [string, string];
    for (const bearer of [`${id}.${secret}x`, `t_unknown.${secret}`, secret, `.${secret}`, ""]) {
      await expect(tokens.authenticate(bearer), bearer).rejects.toMatchObject({ code: "ERR_UNAUTHENTICATED" });
    }
  });

  it("are revoked by their user or an admin, once; another's token reads as not found", async () => {
    const { record } = await tokens.create(erin, { user: "alice", description: "" });
    await expect(tokens.revoke(ctx("bob"), record.id)).rejects.toMatchObject({ code: "ERR_NOT_FOUND" });
    const revoked = await tokens.revoke(ctx("erin"), record.id);
    expect(revoked.revokedAt).toBe(u.clock.now());
    u.clock.advance(1000);
    expect((await tokens.revoke(ctx("alice"), record.id)).revokedAt).toBe(revoked.revokedAt);
    expect((await u.events("token.revoked")).map((e) => e.data)).toEqual([{ tokenId: record.id, user: "alice" }]);
  });
});
