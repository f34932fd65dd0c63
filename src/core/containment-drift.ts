/**
 * Containment drift of a grant (ADR 0009): what a revocation could only contain, or had to leave,
 * stays open until someone records what was done about it. Read from the grant's own audit
 * events — `target.containment_drift` opens an item (by the connector's stable item id),
 * `grant.containment_resolved` closes the items it lists — so no other record can disagree.
 */

/** One item still open. */
export interface DriftItem {
  readonly id: string;
  readonly outcome: string;
  readonly description: string;
}

/** The drift items of a grant not resolved yet, in the order they were found. */
export function openContainmentDrift(
  events: readonly { readonly type: string; readonly data?: unknown }[],
): DriftItem[] {
  const open = new Map<string, DriftItem>();
  for (const e of events) {
    if (e.type === "target.containment_drift") {
      const item = ((e.data ?? {}) as { item?: { id?: unknown; outcome?: unknown; description?: unknown } }).item;
      if (typeof item?.id !== "string") continue;
      open.set(item.id, { id: item.id, outcome: String(item.outcome), description: String(item.description) });
    } else if (e.type === "grant.containment_resolved") {
      const items = ((e.data ?? {}) as { items?: unknown }).items;
      if (Array.isArray(items)) for (const id of items) if (typeof id === "string") open.delete(id);
    }
  }
  return [...open.values()];
}
