/**
 * The messages between the broker's request thread and its background thread (see
 * background-thread.ts and thread-client.ts). Plain data only: they cross a MessagePort.
 */

import type { ServerConfig } from "../config/app-config.js";
import type { ChannelHealth } from "../workers/alarm-worker.js";

/** What the background thread needs to build itself. */
export interface BackgroundThreadInput {
  /** The configuration file the broker loaded, loaded again by the thread. */
  readonly configFile: string;
  readonly env: Readonly<Record<string, string | undefined>>;
  /** The broker's `server` settings (the demo changes them after loading the file). */
  readonly server: ServerConfig;
  /** The fingerprint of the broker's configuration: the thread refuses to run another. */
  readonly fingerprint: string;
  /** The broker process's lease owner: the thread writes its leases under the same name. */
  readonly owner: string;
  readonly logLevel: "info" | "warn" | "error" | "silent";
}

/** Calls the request thread makes and waits for. */
export type BackgroundCall = "expiry.tick" | "expiry.drain" | "alarms.tick" | "alarms.drain" | "stop";

export type ToBackground =
  /** What to build (the first message: the thread is spawned before the broker knows it). */
  | { readonly type: "init"; readonly input: BackgroundThreadInput }
  /** Begin: end what fell due while the broker was down, then run the workers. */
  | { readonly type: "start" }
  | { readonly type: "call"; readonly id: number; readonly op: BackgroundCall }
  /** Something may be due sooner than the worker thinks: look now. */
  | { readonly type: "kick"; readonly worker: "expiry" | "alarms" };

export type FromBackground =
  /** Started: what fell due while the broker was down has been ended, the workers run. */
  | { readonly type: "ready" }
  | { readonly type: "failed"; readonly error: string }
  | {
      readonly type: "result";
      readonly id: number;
      readonly ok: boolean;
      readonly value?: unknown;
      readonly error?: string;
    }
  | {
      readonly type: "metric";
      readonly name: "expiryLag" | "alarmDelivery";
      readonly seconds: number;
      readonly label: string;
    }
  | { readonly type: "channels"; readonly health: readonly ChannelHealth[] }
  /** A grant's access is about to be revoked: close its gateway sessions first. */
  | { readonly type: "cut"; readonly grantId: string; readonly reason: string };
