/**
 * A configuration's fingerprint, section by section (each role, target, user, group, alarm
 * channel, and the broker's own settings), so a restart with a changed configuration can say
 * what changed — "roles changed: production/db-admin; targets added: orders-db" — without
 * keeping the configuration itself (it may hold inline URLs with tokens) in the database.
 */
import { sha256 } from "../adapters/node-crypto.js";
import { canonicalJson } from "../core/canonical-json.js";
import type { AppConfig } from "./app-config.js";

export interface ConfigFingerprint {
  /** Hash over every section's hash. */
  readonly fingerprint: string;
  /** Section key (`role:production/db-admin`, `target:orders-db`, `settings:server`…) → short hash. */
  readonly sections: Readonly<Record<string, string>>;
}

export interface ConfigDiff {
  readonly added: readonly string[];
  readonly removed: readonly string[];
  readonly changed: readonly string[];
}

/** Maps and Sets as plain JSON (sets sorted), so equal configurations hash equally. */
function plain(value: unknown): unknown {
  return JSON.parse(
    JSON.stringify(value, (_k, v: unknown) => {
      if (v instanceof Map) return Object.fromEntries(v);
      if (v instanceof Set) return [...v].map(String).sort();
      return v;
    }),
  );
}

const hashOf = (value: unknown): string => sha256(canonicalJson(plain(value) ?? null)).slice(0, 16);

export function fingerprintConfig(config: AppConfig): ConfigFingerprint {
  const { policy, alarms } = config;
  const sections: Record<string, string> = {};
  for (const [id, role] of policy.roles) sections[`role:${id}`] = hashOf(role);
  for (const [name, target] of policy.targets) sections[`target:${name}`] = hashOf(target);
  for (const [name, user] of policy.users) sections[`user:${name}`] = hashOf(user);
  for (const [name, members] of policy.groups) sections[`group:${name}`] = hashOf(members);
  for (const channel of alarms.channels) sections[`alarm_channel:${channel.name}`] = hashOf(channel);
  const { roleSeverity: _derived, ...routing } = alarms.routing;
  sections["settings:admin_groups"] = hashOf(policy.adminGroups);
  sections["settings:alarm_routing"] = hashOf({
    routing,
    leaseMs: alarms.leaseMs,
    unalarmedAfterMs: alarms.unalarmedAfterMs,
    escalation: alarms.escalation,
  });
  sections["settings:server"] = hashOf(config.server);
  sections["settings:audit"] = hashOf(config.audit);
  sections["settings:storage"] = hashOf(config.storage);
  sections["settings:secrets"] = hashOf(config.secrets);
  sections["settings:workers"] = hashOf(config.workers);
  const sorted = Object.fromEntries(Object.entries(sections).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  return { fingerprint: sha256(canonicalJson(sorted)), sections: sorted };
}

export function diffConfig(before: ConfigFingerprint, after: ConfigFingerprint): ConfigDiff {
  const keys = (f: ConfigFingerprint) => Object.keys(f.sections);
  return {
    added: keys(after).filter((k) => !(k in before.sections)),
    removed: keys(before).filter((k) => !(k in after.sections)),
    changed: keys(after).filter((k) => k in before.sections && before.sections[k] !== after.sections[k]),
  };
}

/** One line for people: `roles changed: a, b; targets added: c`. */
export function describeDiff(diff: ConfigDiff): string {
  const parts: string[] = [];
  for (const [what, keys] of [
    ["added", diff.added],
    ["removed", diff.removed],
    ["changed", diff.changed],
  ] as const) {
    const byKind = new Map<string, string[]>();
    for (const k of keys) {
      const [kind = "", name = ""] = k.split(/:(.*)/s);
      byKind.set(kind, [...(byKind.get(kind) ?? []), name]);
    }
    for (const [kind, names] of byKind) {
      const shown =
        names.length > 5 ? `${names.slice(0, 5).join(", ")} and ${names.length - 5} more` : names.join(", ");
      parts.push(`${kind.replace(/_/g, " ")}${kind === "settings" ? "" : "s"} ${what}: ${shown}`);
    }
  }
  return parts.length === 0 ? "no section changed" : parts.join("; ");
}

/** Parse a stored fingerprint; null when it is not one (then every section counts as added). */
export function parseFingerprint(text: string | null): ConfigFingerprint | null {
  if (text === null) return null;
  try {
    const v = JSON.parse(text) as Partial<ConfigFingerprint>;
    return typeof v.fingerprint === "string" && typeof v.sections === "object" && v.sections !== null
      ? { fingerprint: v.fingerprint, sections: v.sections }
      : null;
  } catch {
    return null;
  }
}
