/**
 * Who is in which group right now: the configured people and groups, plus what the IdP said at
 * each user's last login (mapped through `auth.oidc.group_map`), as long as that is younger than
 * `auth.fallback.max_membership_age`.
 *
 * The broker's services hold one live {@link Policy} whose `users` and `groups` maps this
 * directory updates in place — so every check (requesters, approvers, reviewers, admins) sees
 * the same membership without each service having to ask. Configured members always count;
 * IdP-derived ones are added on top and dropped when they grow too old.
 */
import type { Policy, UserDef } from "../core/model.js";
import type { Identity } from "../core/records.js";

export interface Directory {
  /** The live policy: configured roles and targets, configured + IdP-derived people and groups. */
  readonly policy: Policy;
  /** Record what the IdP said about a user (a login) and apply it at once. */
  apply(identity: Identity, now: number): void;
  /** Replace every IdP-derived membership with these identities (start-up, periodic refresh). */
  load(identities: readonly Identity[], now: number): void;
  /** The last-known identity of a user, if the IdP ever described them. */
  identity(user: string): Identity | null;
}

export function createDirectory(base: Policy, maxMembershipAgeMs: number): Directory {
  const users = new Map<string, UserDef>(base.users);
  const groups = new Map<string, Set<string>>([...base.groups].map(([g, members]) => [g, new Set(members)]));
  const policy: Policy = { ...base, users, groups };
  const identities = new Map<string, Identity>();

  const rebuild = (now: number) => {
    users.clear();
    for (const [name, def] of base.users) users.set(name, def);
    for (const [g, members] of base.groups) groups.set(g, new Set(members));
    for (const id of identities.values()) {
      if (!users.has(id.user)) {
        users.set(id.user, {
          name: id.user,
          displayName: id.name ?? id.user,
          email: id.email,
          managerGroup: null,
        });
      }
      // Too old to trust: the person is known, their IdP groups no longer count.
      if (now - id.refreshedAt > maxMembershipAgeMs) continue;
      for (const g of id.groups) groups.get(g)?.add(id.user);
    }
  };

  return {
    policy,
    apply(identity, now) {
      identities.set(identity.user, identity);
      rebuild(now);
    },
    load(list, now) {
      identities.clear();
      for (const i of list) identities.set(i.user, i);
      rebuild(now);
    },
    identity(user) {
      return identities.get(user) ?? null;
    },
  };
}
