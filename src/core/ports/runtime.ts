/** Runtime ports: what core and the services get instead of the wall clock, randomness and hashing. */

/** Milliseconds since the epoch. Injected so tests and core never read the wall clock. */
export interface Clock {
  now(): number;
}

/** Unique, unguessable ids (`g_…` grants, `t_…` tokens, request ids). */
export interface IdGenerator {
  next(prefix: string): string;
}

/** Hex SHA-256 over the concatenation of `parts`. */
export type Sha256 = (...parts: (string | Uint8Array)[]) => string;
