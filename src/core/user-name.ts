/**
 * What a user name may be, wherever it comes from: the configuration's `users` and `groups`, an
 * IdP's claim, the fallback login's form, a token's `user`, a review follow-up's owner. One rule,
 * so a name the configuration could never hold cannot arrive through another door either.
 *
 * - Lowercase letters, digits, `_`, `.`, `-`, and `@` and `+` for IdPs that name people by e-mail
 *   address; starting with a letter or digit; at most 200 characters (no spaces, no controls).
 * - Reserved: the names the broker writes as the actor of its own actions. A person named
 *   `system` would read, in the audit log and every export, as the broker itself.
 * - From outside (IdP, login form), a name is NFKC-normalised and lower-cased first, so
 *   `ＳＹＳＴＥＭ` or `ſystem` are `system` — and refused — rather than look-alikes of it.
 */

export const USER_NAME_PATTERN = /^[a-z0-9][a-z0-9_.@+-]*$/;
export const USER_NAME_MAX = 200;
export const USER_NAME_HINT =
  "use lowercase letters, digits, `_`, `.`, `-`, `@` and `+`, starting with a letter or digit (pattern ^[a-z0-9][a-z0-9_.@+-]*$)";

/** Actor names the broker writes itself (the audit log's `actor` of its own actions). */
export const RESERVED_USER_NAMES: ReadonlySet<string> = new Set(["system", "anonymous", "vault", "breakglass"]);

/** A name as it arrives from an IdP claim or a login form, in the form it is compared in. */
export function normalizeUserName(raw: string): string {
  return raw.normalize("NFKC").trim().toLowerCase().normalize("NFKC");
}

/** Why `name` (already normalised) cannot be a user name, or null when it can. */
export function userNameProblem(name: string): string | null {
  if (name.length === 0) return "the user name is empty";
  if (name.length > USER_NAME_MAX) return `the user name is longer than ${USER_NAME_MAX} characters`;
  if (!USER_NAME_PATTERN.test(name)) return `the user name is not valid: ${USER_NAME_HINT}`;
  if (RESERVED_USER_NAMES.has(name)) {
    return `the user name "${name}" is reserved: the audit log uses it for the broker's own actions`;
  }
  return null;
}
