/** The configured store, SQLite or PostgreSQL. */
import type { StorageConfig } from "../config/app-config.js";
import type { Store } from "../core/ports/store.js";
import { createPostgresStore } from "./postgres-store.js";
import { createSqliteStore } from "./sqlite-store.js";

/**
 * Open the configured store. `owner`: the broker process's lease owner (its background thread
 * passes the broker's); `migrate: false` when the broker has migrated already.
 * @throws ERR_STORAGE when it cannot be opened or migrated
 */
export function openStore(storage: StorageConfig, opts: { owner?: string; migrate?: boolean } = {}): Promise<Store> {
  const extra = { ...(opts.owner === undefined ? {} : { owner: opts.owner }), migrate: opts.migrate ?? true };
  return storage.driver === "sqlite"
    ? createSqliteStore({ path: storage.path, ...extra })
    : createPostgresStore({ url: storage.url.reveal(), poolSize: storage.poolSize, ...extra });
}
