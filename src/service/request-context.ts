/** Who is acting and from where; stamped on every audit event an action writes. */
export interface RequestContext {
  /** The authenticated user name (or `system`). */
  readonly actor: string;
  readonly requestId: string | null;
  readonly sourceAddress: string | null;
}

export const SYSTEM_CONTEXT: RequestContext = { actor: "system", requestId: null, sourceAddress: null };
