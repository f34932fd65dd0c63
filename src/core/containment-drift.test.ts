// biome-ignore-all lint/style/noRestrictedImports: tests import vitest; the purity rule guards shipped core code
import { describe, expect, it } from "vitest";
import { openContainmentDrift } from "./containment-drift.js";

const drift = (id: string, outcome = "contained") => ({
  type: "target.containment_drift",
  data: { item: { id, outcome, description: `item ${id}`, fix: "x" } },
});

describe("openContainmentDrift", () => {
  it("is empty for a grant whose revocation undid everything", () => {
    expect(openContainmentDrift([{ type: "target.side_permission_swept", data: { item: { id: "a" } } }])).toEqual([]);
  });

  it("keeps every contained or left item until a resolution lists it", () => {
    const events = [
      drift("a"),
      drift("b", "left"),
      { type: "grant.containment_resolved", data: { note: "fixed a", items: ["a"] } },
    ];
    expect(openContainmentDrift(events)).toEqual([{ id: "b", outcome: "left", description: "item b" }]);
  });

  it("an item found again after its resolution is open again", () => {
    const events = [drift("a"), { type: "grant.containment_resolved", data: { items: ["a"] } }, drift("a")];
    expect(openContainmentDrift(events).map((i) => i.id)).toEqual(["a"]);
  });
});
