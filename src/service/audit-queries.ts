/**
 * The audit log as the API reads it: a page of events (each with its neighbours, so each row is
 * checked on its own), the signed checkpoints with the broker's public key, and a verification of
 * the whole chain. Admins only: the log holds every justification, source address and target
 * output (core/authorization.ts).
 */
import { linkPage } from "../audit/audit-evidence.js";
import { type EvidenceStore, formatVerdict, verifyStoreChain } from "../audit/audit-verify.js";
import { loadPublicKeys, type SigningKey } from "../audit/signing-key.js";
import type { ChainVerdict } from "../core/audit-chain.js";
import type { LinkedAuditEvent } from "../core/audit-event.js";
import { requireAdmin } from "../core/authorization.js";
import type { Policy } from "../core/model.js";
import type { Checkpoint } from "../core/records.js";
import { DEFAULT_PAGE } from "./grant-queries.js";

export interface AuditQueries {
  /**
   * Events from `from` (default 1), at most `limit` (default 100); `next` is where the following
   * page starts, null when the page was not full.
   * @throws ERR_FORBIDDEN (not an admin), ERR_STORAGE
   */
  events(
    actor: string,
    page: { readonly from?: number | undefined; readonly limit?: number | undefined },
  ): Promise<{ readonly events: readonly LinkedAuditEvent[]; readonly next: number | null }>;
  /** The signed checkpoints, oldest first, and the key that signs them. @throws ERR_FORBIDDEN */
  checkpoints(actor: string): Promise<{
    readonly checkpoints: readonly Checkpoint[];
    readonly signingKey: Pick<SigningKey, "keyId" | "publicKeyPem">;
  }>;
  /** Verify the whole chain against the broker's public key. @throws ERR_FORBIDDEN */
  verify(actor: string): Promise<{ readonly verdict: ChainVerdict; readonly summary: string }>;
}

export interface AuditQueriesDeps {
  readonly policy: Policy;
  readonly signingKey: Pick<SigningKey, "keyId" | "publicKeyPem">;
  /** The chain and every table verification holds to it. */
  readonly store: EvidenceStore;
}

export function createAuditQueries(deps: AuditQueriesDeps): AuditQueries {
  const { policy, signingKey, store } = deps;
  const keys = loadPublicKeys([signingKey.publicKeyPem]);
  return {
    async events(actor, page) {
      requireAdmin(policy, actor, "reading the audit log");
      const limit = page.limit ?? DEFAULT_PAGE;
      const from = page.from ?? 1;
      // One row either side, so each row of the page is checked against its neighbours.
      const events = linkPage(await store.readAudit(Math.max(1, from - 1), limit + 2), from, limit);
      const last = events.at(-1);
      return { events, next: last && events.length === limit ? last.seq + 1 : null };
    },

    async checkpoints(actor) {
      // Admins, like the log itself (a token needs the admin scope for it too).
      requireAdmin(policy, actor, "reading the audit checkpoints");
      const checkpoints = (await store.readCheckpoints()).sort((a, b) => a.seq - b.seq);
      return { checkpoints, signingKey: { keyId: signingKey.keyId, publicKeyPem: signingKey.publicKeyPem } };
    },

    async verify(actor) {
      requireAdmin(policy, actor, "reading the audit log");
      const verdict = await verifyStoreChain(store, keys.verifySignature);
      return { verdict, summary: formatVerdict(verdict) };
    },
  };
}
