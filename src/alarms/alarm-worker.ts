/**
 * The alarm worker moved to src/workers/alarm-worker.ts (issue 21); this keeps http/routes.ts, which
 * another branch is changing, building until it imports ChannelHealth from alarm-channel.ts.
 */
export type { ChannelHealth } from "./alarm-channel.js";
