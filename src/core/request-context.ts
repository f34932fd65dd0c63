/** Who is acting and from where; stamped on every audit event an action writes. */
export interface RequestContext {
  /** The authenticated user name (or `system`). */
  readonly actor: string;
  readonly requestId: string | null;
  readonly sourceAddress: string | null;
  /** How the actor signed in; absent for the broker's own work and local (offline) commands. */
  readonly auth?: AuthInfo;
  /** Set by the drill runner only: the run acting as the drill's configured people. */
  readonly drillRun?: string;
}

export interface AuthInfo {
  /** `token`: an API token; `oidc`: an IdP login; `fallback`: a local-factor login with the IdP down. */
  readonly method: "token" | "oidc" | "fallback";
  readonly sessionId: string | null;
  /** When a second factor was last verified in this session (step-up); null if never. */
  readonly factorAt: number | null;
  /** An API token's scopes (`*`: all); absent for people signed in, who are not limited by scope. */
  readonly scopes?: readonly string[];
}

export const SYSTEM_CONTEXT: RequestContext = { actor: "system", requestId: null, sourceAddress: null };
