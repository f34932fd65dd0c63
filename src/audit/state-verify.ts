/**
 * Tokens and the broker's own state against the chain.
 *
 * - `tokens`: what `GET /tokens` and the console list — whose token, its description, scopes,
 *   when it was made, when it expires, when it was revoked — is stated by `token.created` and
 *   `token.revoked`. The secret's hash is a verifier, not something anyone reads: not compared.
 * - `broker_state`: three keys hold facts people read or rely on, each written with the event
 *   that states it: `config` (the configuration's fingerprint: a change must alarm as
 *   `config.changed`, so the stored one must be the last one the chain announced),
 *   `idp_declared` (an admin's declaration that the IdP is down, which opens the fallback login:
 *   `auth.idp_declared`), `rotation:target:<name>` (a target's admin password last rotated, shown by
 *   posture and the evidence report: `credential.rotated`). The other keys are bookkeeping (leases,
 *   import counters, review markers, challenges) and not compared.
 */
import { type AuditRecord, parseAuditPayload } from "../core/audit-columns.js";
import type { StoredAuditEvent } from "../core/audit-event.js";
import type { TokenReads } from "../core/ports/auth.js";
import type { StateReads } from "../core/ports/broker-state.js";
import type { TokenRecord } from "../core/records.js";
import { gone, type RowDifference, RowFacts, renamedRows, unaccounted } from "./row-check.js";

export type TokenStore = Pick<TokenReads, "listTokens">;
export type BrokerStateStore = Pick<StateReads, "listState">;

export class TokenLedger {
  readonly #tokens = new Map<string, { created: AuditRecord; revoked: AuditRecord | null }>();

  note(event: StoredAuditEvent): void {
    if (event.type !== "token.created" && event.type !== "token.revoked") return;
    const e = parseAuditPayload(event.payload, event.hash);
    const id = e?.data.tokenId;
    if (e === null || typeof id !== "string") return;
    if (e.type === "token.created") {
      this.#tokens.set(id, { created: e, revoked: null });
      return;
    }
    const t = this.#tokens.get(id);
    if (t !== undefined && t.revoked === null) t.revoked = e;
  }

  differences(row: TokenRecord): RowDifference[] {
    const t = this.#tokens.get(row.id);
    if (t === undefined) return [unaccounted("tokens", row.id)];
    const c = new RowFacts("tokens", row.id);
    const e = t.created;
    c.same("user_name", row.user, e.data.user, e);
    c.same("description", row.description, e.data.description, e);
    // Tokens made before scopes existed do everything; their event names none.
    if (Array.isArray(e.data.scopes)) c.same("scopes", [...row.scopes].sort(), [...e.data.scopes].sort(), e);
    c.same("created_at", row.createdAt, e.at, e);
    c.same("expires_at", row.expiresAt, e.data.expiresAt ?? null, e);
    c.same("revoked_at", row.revokedAt, t.revoked?.at ?? null, t.revoked ?? e);
    return c.list;
  }

  async check(store: TokenStore): Promise<RowDifference[]> {
    const rows = await store.listTokens(null);
    const out = rows.flatMap((row) => this.differences(row));
    const seen = new Set(rows.map((r) => r.id));
    for (const [id, t] of this.#tokens) if (!seen.has(id)) out.push(gone("tokens", id, t.created));
    return renamedRows("tokens", rows, out, (row) => this.differences(row));
  }
}

/** The keys of `broker_state` checked against the chain (as src/service/idp-declaration.ts and src/service/rotation.ts name them). */
export const STATE_KEYS = {
  config: "config",
  idpDeclared: "idp_declared",
  rotationPrefix: "rotation:target:",
} as const;

const ROTATED_PASSWORD = "postgres admin password";

export class BrokerStateLedger {
  #config: AuditRecord | null = null;
  #idp: AuditRecord | null = null;
  readonly #rotations = new Map<string, AuditRecord>();

  note(event: StoredAuditEvent): void {
    const t = event.type;
    if (t !== "config.changed" && t !== "auth.idp_declared" && t !== "credential.rotated") return;
    const e = parseAuditPayload(event.payload, event.hash);
    if (e === null) return;
    if (t === "config.changed") this.#config = e;
    else if (t === "auth.idp_declared") this.#idp = e;
    else if (e.target !== null && e.data.credential === ROTATED_PASSWORD) this.#rotations.set(e.target, e);
  }

  /** Each checked key's value against the last event that set it. */
  differences(rows: readonly { key: string; value: string }[]): RowDifference[] {
    const out: RowDifference[] = [];
    const byKey = new Map(rows.map((r) => [r.key, r.value]));
    const check = (key: string, stored: string | undefined, event: AuditRecord | null, chain: unknown) => {
      if (event === null) {
        // Nothing in the chain set it: a value that means something was put there by hand.
        if (stored !== undefined && stored !== "") out.push(unaccounted("broker_state", key));
        return;
      }
      if (stored === undefined) {
        out.push(gone("broker_state", key, event));
        return;
      }
      const c = new RowFacts("broker_state", key);
      c.same("value", describeState(key, stored), chain, event);
      out.push(...c.list);
    };
    const config = this.#config;
    check(STATE_KEYS.config, byKey.get(STATE_KEYS.config), config, config?.data.fingerprint ?? null);
    const idp = this.#idp;
    check(
      STATE_KEYS.idpDeclared,
      byKey.get(STATE_KEYS.idpDeclared),
      idp,
      idp === null || idp.data.down !== true ? "" : { by: idp.actor, at: idp.at, reason: idp.data.reason },
    );
    const targets = new Set([
      ...this.#rotations.keys(),
      ...rows
        .filter((r) => r.key.startsWith(STATE_KEYS.rotationPrefix))
        .map((r) => r.key.slice(STATE_KEYS.rotationPrefix.length)),
    ]);
    for (const target of [...targets].sort()) {
      const key = `${STATE_KEYS.rotationPrefix}${target}`;
      const e = this.#rotations.get(target) ?? null;
      check(key, byKey.get(key), e, e === null ? null : new Date(e.at).toISOString());
    }
    return out;
  }

  async check(store: BrokerStateStore): Promise<RowDifference[]> {
    return this.differences(await store.listState(""));
  }
}

/** What a checked key's stored value says, in the terms its event uses. */
function describeState(key: string, value: string): unknown {
  if (key === STATE_KEYS.config) {
    try {
      const v = JSON.parse(value) as { fingerprint?: unknown };
      return typeof v.fingerprint === "string" ? v.fingerprint : value;
    } catch {
      return value;
    }
  }
  if (key === STATE_KEYS.idpDeclared) {
    if (value === "") return "";
    try {
      const v = JSON.parse(value) as Record<string, unknown>;
      return { by: v.by, at: v.at, reason: v.reason };
    } catch {
      return value;
    }
  }
  return value;
}
