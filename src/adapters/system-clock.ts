import { randomBytes } from "node:crypto";
import type { Clock, IdGenerator } from "../core/ports/runtime.js";

/**
 * The wall clock, injected wherever time is a fact the broker records or judges by (grants,
 * credentials, audit, connectors). Deadlines of waits and file locks, and the offline CLI, read
 * Date.now() themselves.
 */
export const systemClock: Clock = { now: () => Date.now() };

const ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"; // Crockford base32, lower case

/**
 * Ids are a prefix, 8 base32 characters of time (sortable) and 16 of randomness (80 bits):
 * `g_01hx3k9z…`. Unguessable, so a grant id in a URL grants nothing by itself.
 */
export function createIdGenerator(clock: Clock = systemClock): IdGenerator {
  return {
    next(prefix: string): string {
      let t = Math.floor(clock.now() / 1000);
      let time = "";
      for (let i = 0; i < 7; i++) {
        time = ALPHABET[t % 32] + time;
        t = Math.floor(t / 32);
      }
      const bytes = randomBytes(16);
      let rand = "";
      for (const b of bytes) rand += ALPHABET[b % 32];
      return `${prefix}_${time}${rand}`;
    },
  };
}
