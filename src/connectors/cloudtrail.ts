/**
 * Use detection for AWS from CloudTrail (seed 001: "any authentication as any break-glass
 * identity … pages the security team immediately"). CloudTrail reaches the broker two ways:
 *
 * - **log files** in a folder (an `aws s3 sync` of the trail's bucket, or a Lambda writing them):
 *   `{"Records": [...]}`, plain or gzipped, as CloudTrail writes them;
 * - **a webhook** (EventBridge API destination): one EventBridge event (`detail` = the record),
 *   an array of them, or a `{"Records": [...]}` document.
 *
 * What counts as use of a break-glass identity:
 * - anything done as the account's **root** user (console sign-in or API call);
 * - **AssumeRole into a watched role** — a grant's own AssumeRole carries the session name
 *   `bg-<grant id>`, so it is matched to the grant; any other session name is unexplained;
 * - a console sign-in or API call by a watched **IAM user** (a standing break-glass user).
 *
 * Each use becomes a {@link WatchedSession} at the event's time (`pointInTime`): the detector
 * checks the grant covered that instant, since CloudTrail delivers minutes late.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { readdir, readFile } from "node:fs/promises";
import { isAbsolute, join } from "node:path";
import { gunzipSync } from "node:zlib";
import { z } from "zod";
import { BreakglassError } from "../core/errors.js";
import type { WatchedSession } from "../core/ports/connector.js";
import { secretRefSchema } from "../secrets/secret-ref.js";
import type { ConnectorContext } from "./connector-context.js";

export const cloudTrailSettingsSchema = z
  .strictObject({
    dir: z
      .string()
      .min(1)
      .optional()
      .describe(
        "Folder CloudTrail log files land in (`*.json`, `*.json.gz`, searched recursively; e.g. an `aws s3 sync` of the trail's bucket), relative to the config file. Files present at start are history and not reported.",
      ),
    webhook_key: secretRefSchema
      .optional()
      .describe(
        "Enables POST /api/v1/targets/{target}/cloudtrail (EventBridge API destination); the sender presents it in the `x-breakglass-key` header",
      ),
    watch_role_arns: z
      .array(z.string().startsWith("arn:"))
      .default([])
      .describe("Break-glass IAM roles: an AssumeRole into one that no grant explains alarms"),
    watch_users: z
      .array(z.string().min(1))
      .default([])
      .describe("Standing break-glass IAM users: any console sign-in or API call by one alarms"),
    root: z.boolean().default(true).describe("Alarm on anything done as the account's root user"),
  })
  .describe("Use detection from CloudTrail: root use, AssumeRole into watched roles, watched IAM users.");

export type CloudTrailSettings = z.infer<typeof cloudTrailSettingsSchema>;

export interface CloudTrailWatch {
  readonly roleArns: ReadonlySet<string>;
  readonly users: ReadonlySet<string>;
  readonly root: boolean;
}

/** The fields of a CloudTrail record this module reads. */
interface TrailRecord {
  eventID?: unknown;
  eventTime?: unknown;
  eventSource?: unknown;
  eventName?: unknown;
  errorCode?: unknown;
  sourceIPAddress?: unknown;
  recipientAccountId?: unknown;
  userIdentity?: {
    type?: unknown;
    userName?: unknown;
    accountId?: unknown;
    accessKeyId?: unknown;
    invokedBy?: unknown;
  };
  requestParameters?: { roleArn?: unknown; roleSessionName?: unknown } | null;
  responseElements?: { ConsoleLogin?: unknown } | null;
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
const str = (v: unknown): string | null => (typeof v === "string" && v !== "" ? v : null);

/**
 * The CloudTrail records in a payload: a log file's `{"Records": [...]}`, an EventBridge event
 * (`detail`), or an array of either.
 * @returns the records, or why the payload holds none in a known shape
 */
export function cloudTrailRecords(payload: unknown): TrailRecord[] | string {
  if (Array.isArray(payload)) {
    const out: TrailRecord[] = [];
    for (const [i, item] of payload.entries()) {
      const r = cloudTrailRecords(item);
      if (typeof r === "string") return `item ${i}: ${r}`;
      out.push(...r);
    }
    return out;
  }
  if (!isRecord(payload)) return "expected a JSON object or array";
  if (Array.isArray(payload.Records)) return payload.Records.filter(isRecord) as TrailRecord[];
  if (isRecord(payload.detail) && typeof payload["detail-type"] === "string") return [payload.detail as TrailRecord];
  return 'expected a CloudTrail file ({"Records": [...]}) or an EventBridge event ({"detail-type", "detail"})';
}

const GRANT_SESSION = /^bg-(.+)$/;
const ASSUME = new Set(["AssumeRole", "AssumeRoleWithSAML", "AssumeRoleWithWebIdentity"]);

/** The use of a watched identity in one record, or null when the record is not one. */
export function watchedUse(r: TrailRecord, watch: CloudTrailWatch): WatchedSession | null {
  if (str(r.errorCode)) return null; // a refused call is not a use (AWS alarms on those itself)
  const at = str(r.eventTime);
  const startedAt = at === null ? null : Date.parse(at);
  const base = {
    startedAt: startedAt !== null && Number.isFinite(startedAt) ? startedAt : null,
    from: str(r.sourceIPAddress),
    pointInTime: true,
  };
  const eventId = str(r.eventID) ?? `${String(r.eventName)}@${at}`;
  const id = r.userIdentity ?? {};
  const login = r.eventName === "ConsoleLogin";
  if (login && r.responseElements?.ConsoleLogin === "Failure") return null;
  // A session's calls share an access key: one report per key, one per console sign-in.
  const session = login ? eventId : (str(id.accessKeyId) ?? eventId);

  if (watch.root && id.type === "Root" && !str(id.invokedBy)) {
    const account = str(id.accountId) ?? str(r.recipientAccountId) ?? "?";
    return { ...base, principal: `root (account ${account})`, sessionId: session, grantId: null };
  }
  if (id.type === "IAMUser" && watch.users.has(String(id.userName))) {
    return { ...base, principal: `iam user ${String(id.userName)}`, sessionId: session, grantId: null };
  }
  const roleArn = str(r.requestParameters?.roleArn);
  if (
    r.eventSource === "sts.amazonaws.com" &&
    ASSUME.has(String(r.eventName)) &&
    roleArn &&
    watch.roleArns.has(roleArn)
  ) {
    const sessionName = str(r.requestParameters?.roleSessionName) ?? "";
    return {
      ...base,
      principal: `${roleArn} (session ${sessionName || "?"})`,
      sessionId: eventId,
      grantId: GRANT_SESSION.exec(sessionName)?.[1] ?? null,
    };
  }
  return null;
}

const digest = (s: string) => createHash("sha256").update(s, "utf8").digest();

/**
 * The CloudTrail side of an aws target: new log files in `dir` on every pass, and records pushed
 * to the webhook.
 */
export function createCloudTrailWatcher(
  settings: CloudTrailSettings,
  ctx: ConnectorContext & { readonly targetName: string },
): {
  watchSessions(): Promise<WatchedSession[]>;
  pushedSessions(payload: unknown, key: string): WatchedSession[];
} {
  const watch: CloudTrailWatch = {
    roleArns: new Set(settings.watch_role_arns),
    users: new Set(settings.watch_users),
    root: settings.root,
  };
  const dir = settings.dir ? (isAbsolute(settings.dir) ? settings.dir : join(ctx.baseDir, settings.dir)) : null;
  const key = settings.webhook_key
    ? digest(
        ctx.resolveSecret(settings.webhook_key, `targets.${ctx.targetName}.settings.cloudtrail.webhook_key`).reveal(),
      )
    : null;
  // CloudTrail never rewrites a delivered file: each is read once. The first pass only notes
  // what is there (history is not replayed as new alarms).
  let seen: Set<string> | null = null;

  const uses = (records: readonly TrailRecord[]) =>
    records.map((r) => watchedUse(r, watch)).filter((u): u is WatchedSession => u !== null);

  return {
    async watchSessions() {
      if (!dir) return [];
      let names: string[];
      try {
        names = (await readdir(dir, { recursive: true })).filter((n) => /\.json(\.gz)?$/.test(n)).sort();
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === "ENOENT") return [];
        throw e;
      }
      if (seen === null) {
        seen = new Set(names);
        return [];
      }
      const out: WatchedSession[] = [];
      for (const name of names) {
        if (seen.has(name)) continue;
        // Taken before reading, so an overlapping pass does not read it too.
        seen.add(name);
        let payload: unknown;
        try {
          const raw = await readFile(join(dir, name));
          payload = JSON.parse((name.endsWith(".gz") ? gunzipSync(raw) : raw).toString("utf8"));
        } catch (e) {
          // Half-written (an upload in progress): try again next pass; anything else is logged once.
          if (e instanceof SyntaxError || (e as { code?: string }).code === "Z_BUF_ERROR") seen.delete(name);
          else ctx.log("cloudtrail file unreadable", { target: ctx.targetName, file: name, error: String(e) });
          continue;
        }
        const records = cloudTrailRecords(payload);
        if (typeof records === "string") {
          ctx.log("not a cloudtrail file", { target: ctx.targetName, file: name, error: records });
          continue;
        }
        out.push(...uses(records));
      }
      return out;
    },

    pushedSessions(payload, presented) {
      const given = digest(presented);
      if (key === null || !timingSafeEqual(given, key)) {
        throw new BreakglassError(
          "ERR_UNAUTHENTICATED",
          `target ${ctx.targetName} does not accept CloudTrail events with this key`,
          { target: ctx.targetName },
        );
      }
      const records = cloudTrailRecords(payload);
      if (typeof records === "string") throw new BreakglassError("ERR_VALIDATION", records, { target: ctx.targetName });
      return uses(records);
    },
  };
}
