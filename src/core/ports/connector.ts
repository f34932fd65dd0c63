/**
 * The connector port: how the broker grants, revokes and verifies access at one kind of target.
 * Implementations live in src/connectors/.
 */
import type { RoleDef, TargetDef } from "../model.js";
import type { Redacted } from "../redacted.js";

/** Facts a connector gets about a grant. Never includes secrets of other grants. */
export interface ConnectorGrantFacts {
  readonly grantId: string;
  readonly requester: string;
  readonly role: RoleDef;
  readonly target: TargetDef;
  readonly incident: string;
  readonly justification: string;
  /** Epoch ms; the credential minted at the target must stop working by then. */
  readonly endsAt: number;
}

export interface ConnectorResult {
  /**
   * What the holder uses to get in (a connection string, a certificate, temporary keys). Kept
   * encrypted at rest and readable only by the holder while the grant is active.
   */
  readonly credential: Redacted<string> | null;
  /** Non-secret facts for the audit trail (e.g. command output, created role name). */
  readonly detail: Readonly<Record<string, unknown>>;
  /**
   * Non-secret state `revoke`/`verify` need later (e.g. a snapshot taken at grant time), merged
   * into the saved handle when activation completes. Only `grant` returns it.
   */
  readonly handle?: Readonly<Record<string, unknown>>;
}

/** Something at a target that is not explained by the broker's records. */
export interface DriftItem {
  /** Short stable kind, e.g. `standing_superuser`, `leftover_role`. */
  readonly kind: string;
  /** The principal at the target (role name, certificate key id, IAM role ARN). */
  readonly principal: string;
  readonly description: string;
}

/** A live session at a target of a watched break-glass identity (use detection). */
export interface WatchedSession {
  /** The identity: a role name, a certificate key id, a principal ARN. */
  readonly principal: string;
  /** Stable for the session's life, e.g. `pid:backend_start`. */
  readonly sessionId: string;
  /** The grant the principal belongs to, when it is one of the broker's own; else null. */
  readonly grantId: string | null;
  readonly startedAt: number | null;
  readonly from: string | null;
  /**
   * A past event (a CloudTrail record) rather than a live session: the grant must have covered
   * `startedAt`, not be active now — such events arrive minutes late.
   */
  readonly pointInTime?: boolean;
}

/** What a target holds now, as far as break-glass access goes. */
export interface TargetInventory {
  /** Principals this connector created, with the grant each belongs to and the handle to revoke it. */
  readonly managed: readonly { readonly grantId: string; readonly handle: Readonly<Record<string, unknown>> }[];
  /** Standing privilege made outside Breakglass: reported, never changed by the broker. */
  readonly drift: readonly DriftItem[];
}

export interface VerifyResult {
  readonly revoked: boolean;
  readonly detail: Readonly<Record<string, unknown>>;
}

/**
 * Grants and revokes access on one kind of target. Every method is idempotent and safe to
 * retry: `grant` twice for the same handle must not create two principals; `grant` again with a
 * later `endsAt` moves the target-side expiry (that is how a grant is extended); `revoke` of
 * something already gone succeeds. Overlapping grants get separate principals, so revoking
 * one never ends another.
 */
export interface Connector {
  /** The longest one call may take; activation leases are sized from it. */
  readonly timeoutMs?: number;
  /** The handle naming what `grant` will create; pure, saved before the target is called. */
  plan(facts: ConnectorGrantFacts): Record<string, unknown>;
  /** @throws ERR_CONNECTOR_FAILED */
  grant(facts: ConnectorGrantFacts, handle: Readonly<Record<string, unknown>>): Promise<ConnectorResult>;
  /**
   * Optional: move the end of access already granted to `facts.endsAt`, keeping the holder's
   * credential (returns `credential: null`). Without it an extension calls `grant` again, which
   * may hand over a fresh credential. The broker also calls it to put the old end back when it
   * cannot record an extension the target already took. @throws ERR_CONNECTOR_FAILED
   */
  extend?(facts: ConnectorGrantFacts, handle: Readonly<Record<string, unknown>>): Promise<ConnectorResult>;
  /** @throws ERR_CONNECTOR_FAILED */
  revoke(facts: ConnectorGrantFacts, handle: Readonly<Record<string, unknown>>): Promise<ConnectorResult>;
  /** Is access really gone at the target? @throws ERR_CONNECTOR_FAILED */
  verify(facts: ConnectorGrantFacts, handle: Readonly<Record<string, unknown>>): Promise<VerifyResult>;
  /**
   * Optional: cut access at once for grants whose revocation was just claimed — no new sessions,
   * open ones ended — ahead of their `revoke`, which does it again (idempotent) and then the
   * slower work (containment, cleanup). Many grants ending together then lose access within one
   * call instead of one revocation after another. Best effort: the caller logs a failure and
   * `revoke` decides. @throws ERR_CONNECTOR_FAILED
   */
  cutAccess?(
    grants: readonly { readonly facts: ConnectorGrantFacts; readonly handle: Readonly<Record<string, unknown>> }[],
  ): Promise<void>;
  /**
   * Optional: `revoke` then `verify` for many grants together, in fewer round trips than one by
   * one (grants ending together). Each grant's result is what `revoke` and `verify` would give it,
   * or the error either would throw; one grant's failure does not fail the others.
   * @throws ERR_CONNECTOR_FAILED when nothing could be done (e.g. the target is unreachable)
   */
  revokeMany?(
    grants: readonly { readonly facts: ConnectorGrantFacts; readonly handle: Readonly<Record<string, unknown>> }[],
  ): Promise<({ readonly revoke: ConnectorResult; readonly verify: VerifyResult } | { readonly error: unknown })[]>;
  /**
   * Optional, for reconciliation: the principals this connector created that still exist, and
   * standing privilege made outside Breakglass. @throws ERR_CONNECTOR_FAILED
   */
  inventory?(): Promise<TargetInventory>;
  /**
   * Optional, for `breakglass config check --targets`: what containment at the end of a window
   * can and cannot do for each role on this target, read from the target itself.
   * @throws ERR_CONNECTOR_FAILED when the target cannot be read
   */
  assess?(): Promise<readonly ContainmentAssessment[]>;
  /** Optional, for use detection: live sessions of watched break-glass identities. */
  watchSessions?(): Promise<readonly WatchedSession[]>;
  /** Optional: end a session `watchSessions` found (when configured to). */
  endSession?(session: WatchedSession): Promise<boolean>;
  /**
   * Optional: uses of watched identities pushed to the broker (the CloudTrail webhook), read
   * from `payload`. `key` is what the sender presented; compared in constant time.
   * @throws ERR_UNAUTHENTICATED when the key is wrong or the target takes no pushed events;
   *   ERR_VALIDATION when the payload is not in a known shape
   */
  pushedSessions?(payload: unknown, key: string): readonly WatchedSession[];
  /** Release connections and timers; the broker calls it on shutdown. */
  close?(): Promise<void>;
}

/** One role's containment limits on its target (ADR 0009). */
export interface ContainmentAssessment {
  readonly roleId: string;
  /** The target-side role (e.g. a PostgreSQL recovery role) assessed. */
  readonly principal: string;
  /** What the holder can reach and how the end of the window handles it, in words. */
  readonly limits: readonly string[];
  /** Why containment cannot work for it (empty: it can). */
  readonly impossible: readonly string[];
  /** The reason the configuration gives for accepting it anyway; null: not accepted. */
  readonly acceptedBecause: string | null;
  /** The target-side role does not exist (activation would fail). */
  readonly missing: boolean;
}
