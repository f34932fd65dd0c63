/** The request context a test acts with: who, and (by default) no request id or address. */
import type { RequestContext } from "../../src/core/request-context.js";

export const ctx = (actor: string, over: Omit<Partial<RequestContext>, "actor"> = {}): RequestContext => ({
  actor,
  requestId: null,
  sourceAddress: null,
  ...over,
});
