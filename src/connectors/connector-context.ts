/** What a connector gets from the composition root besides its own settings. */
import type { SecretResolver } from "../secrets/secret-ref.js";

export interface ConnectorContext {
  /** The configuration file's folder: relative paths in settings resolve against it. */
  readonly baseDir: string;
  /** Opens `{env}`, `{file}` and `{sealed}` secret references from the settings. */
  readonly resolveSecret: SecretResolver;
  readonly log: (msg: string, fields?: Record<string, unknown>) => void;
}
