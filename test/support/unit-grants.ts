/**
 * The grant services over a real in-memory store, for unit tests of services and workers: the
 * fixture policy (core-fixtures.ts), the real grant writer and target access, and an `exec`
 * connector per target whose access is a file `<dir>/bg_<grant>.access` (a target is down — its
 * grant and revoke fail — while `<dir>/down` exists).
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createExecConnector, execSettingsSchema } from "../../src/connectors/exec-connector.js";
import type { Policy } from "../../src/core/model.js";
import type { Connector } from "../../src/core/ports/connector.js";
import { createGrantService, type GrantService } from "../../src/service/grant-service.js";
import { createGrantWriter, type GrantWriter } from "../../src/service/grant-transitions.js";
import { createTargetAccess, type TargetAccess } from "../../src/service/target-access.js";
import { makePolicy } from "./core-fixtures.js";
import { openUnitStore, type UnitStore } from "./unit-store.js";

export interface GrantKit extends UnitStore {
  readonly policy: Policy;
  readonly dir: string;
  readonly writer: GrantWriter;
  readonly access: TargetAccess;
  readonly grants: GrantService;
  /** Whether the target holds access for this grant now. */
  hasAccess(grantId: string): boolean;
  /** Take every target down (grant and revoke fail) or bring them back. */
  targetsDown(down: boolean): void;
  /** What the broker logged. */
  readonly logged: { msg: string; fields?: Record<string, unknown> }[];
}

export async function openGrantKit(opts: { policy?: Policy; now?: number } = {}): Promise<GrantKit> {
  const u = await openUnitStore({ ...(opts.now === undefined ? {} : { now: opts.now }) });
  const policy = opts.policy ?? makePolicy();
  const dir = mkdtempSync(join(tmpdir(), "bg-unit-grants-"));
  const settings = execSettingsSchema.parse({
    grant: ["sh", "-c", 'test ! -e down && touch "$BREAKGLASS_PRINCIPAL.access"'],
    revoke: ["sh", "-c", 'test ! -e down && rm -f "$BREAKGLASS_PRINCIPAL.access"'],
  });
  const connectors = new Map<string, Connector>(
    [...policy.targets.keys()].map((name) => [name, createExecConnector(settings, { cwd: dir })]),
  );
  const logged: { msg: string; fields?: Record<string, unknown> }[] = [];
  const log = (msg: string, fields?: Record<string, unknown>) => {
    logged.push({ msg, ...(fields === undefined ? {} : { fields }) });
  };
  const writer = createGrantWriter(u.store, u.audit);
  const access = createTargetAccess({
    policy,
    writer,
    store: u.store,
    audit: u.audit,
    connectors,
    clock: u.clock,
    box: u.box,
    log,
  });
  const grants = createGrantService({
    policy,
    store: u.store,
    audit: u.audit,
    writer,
    access,
    clock: u.clock,
    ids: u.ids,
    box: u.box,
  });
  return {
    ...u,
    policy,
    dir,
    writer,
    access,
    grants,
    logged,
    hasAccess: (grantId) => existsSync(join(dir, `bg_${grantId}.access`)),
    targetsDown(down) {
      if (down) writeFileSync(join(dir, "down"), "");
      else rmSync(join(dir, "down"), { force: true });
    },
    async close() {
      await u.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
