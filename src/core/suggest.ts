/**
 * Finding what a person meant by a name they typed (a role, an option, a configuration key):
 * "did you mean" by edit distance, and the `DOMAIN/ROLE` hint for a role named without its
 * domain. One place, so every surface that resolves a role name (requests, the grant list's
 * filter, the configuration's drills) answers a near miss the same way.
 */

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      cur[j] = Math.min((prev[j] ?? 0) + 1, (cur[j - 1] ?? 0) + 1, (prev[j - 1] ?? 0) + cost);
    }
    prev = cur;
  }
  return prev[b.length] ?? 0;
}

/** The candidate `word` was most likely meant to be, if any is close enough. */
export function closest(word: string, candidates: Iterable<string>): string | undefined {
  const norm = (s: string) => s.toLowerCase().replace(/[-_.\s]/g, "");
  let best: string | undefined;
  let bestDistance = Number.POSITIVE_INFINITY;
  for (const candidate of candidates) {
    if (norm(candidate) === norm(word)) return candidate;
    const d = editDistance(word.toLowerCase(), candidate.toLowerCase());
    if (d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  return bestDistance <= Math.max(1, Math.floor(word.length / 3)) ? best : undefined;
}

/**
 * What to tell someone who named role `given`, which is not one of `roleIds` (`DOMAIN/ROLE`):
 * the roles it could be when the domain is missing (`db-admin` → `production/db-admin`), else
 * the closest role id, else the list of roles.
 */
export function unknownRoleHint(given: string, roleIds: Iterable<string>): string {
  const ids = [...roleIds].sort();
  if (ids.length === 0) return "no roles are configured";
  const name = given.trim();
  if (!name.includes("/")) {
    const sameName = ids.filter((id) => id.slice(id.indexOf("/") + 1) === name);
    const near = sameName.length > 0 ? sameName : ids.filter((id) => closest(name, [id.slice(id.indexOf("/") + 1)]));
    if (near.length > 0) {
      return `roles are named DOMAIN/ROLE: did you mean ${near.map((id) => `\`${id}\``).join(" or ")}?`;
    }
    return `roles are named DOMAIN/ROLE; configured roles: ${ids.join(", ")}`;
  }
  const near = closest(name, ids);
  if (near !== undefined) return `did you mean \`${near}\`?`;
  return `configured roles: ${ids.join(", ")}`;
}
