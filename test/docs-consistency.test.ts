/**
 * The reference pages that list things the code defines — every API route with its scope, every
 * error code with its status, every configuration section and alarm channel type, every CLI
 * command, every event that always reaches the security channels — checked against the code, so a
 * new route, code, channel or command cannot ship undocumented and a renamed one cannot leave a
 * stale row behind. Also: no page promises work "for issue N" any more.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Broker } from "../src/app.js";
import { COMMANDS } from "../src/cli/main.js";
import { AlarmChannelSchema, ConfigFileSchema } from "../src/contract/config-schema.js";
import { ALWAYS_SECURITY_EVENTS } from "../src/core/alarm-routing.js";
import { STATUS_BY_CODE } from "../src/http/problem.js";
import { ROOT } from "./support/broker-process.js";
import { RECORDED_ALARMS, SECRET_KEY, startTestBroker, type TestBroker } from "./support/test-broker.js";

const doc = (name: string): string => readFileSync(join(ROOT, name), "utf8");

/** Every Markdown file under docs/, and the README. */
function allDocs(): string[] {
  const out = ["README.md"];
  const walk = (dir: string) => {
    for (const e of readdirSync(join(ROOT, dir), { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(dir, e.name));
      else if (e.name.endsWith(".md")) out.push(join(dir, e.name));
    }
  };
  walk("docs");
  return out;
}

/** What a route needs, as the route table of docs/api.md writes it: `no`, a scope, `session`, `key`; `*` for fallback. */
interface DocRoute {
  readonly auth: string;
}

/** The rows of the Routes table of docs/api.md, by `METHOD /path` (query strings dropped). */
function documentedRoutes(): Map<string, DocRoute> {
  const text = doc("docs/api.md");
  const table = text.slice(text.indexOf("## Routes"), text.indexOf("### `GET /grants` filters"));
  const rows = new Map<string, DocRoute>();
  for (const line of table.split("\n")) {
    const m = /^\| (GET|POST)\s+\| `([^`]+)`[^|]*\|\s*(\S+)\s*\|/.exec(line);
    if (!m?.[1] || !m[2] || !m[3]) continue;
    rows.set(`${m[1]} ${m[2].replace(/\?.*$/, "")}`, { auth: m[3] });
  }
  return rows;
}

let t: TestBroker;
let broker: Broker;
let operations: Map<string, DocRoute>;

beforeAll(async () => {
  // A broker with a data key, so the /auth routes exist too; the operations come from its own
  // OpenAPI document, which is generated from the route table.
  t = await startTestBroker({
    base: "minimal",
    start: false,
    config: {
      ...SECRET_KEY,
      ...RECORDED_ALARMS,
      admin_groups: ["security"],
      users: { alice: {}, erin: {} },
      groups: { oncall: ["alice"], security: ["erin"] },
      domains: {
        production: {
          roles: { db: { target: "box", max_duration: "1h", approval: "1 of security", requesters: ["oncall"] } },
        },
      },
      targets: { box: { connector: "exec", settings: { grant: ["true"], revoke: ["true"] } } },
    },
  });
  broker = t.broker;
  const openapi = (await broker.http.inject({ method: "GET", url: "/api/v1/openapi.json" })).json() as {
    paths: Record<
      string,
      Record<string, { security?: unknown[]; "x-token-scope"?: string; "x-fallback-login"?: boolean }>
    >;
  };
  operations = new Map();
  for (const [path, ops] of Object.entries(openapi.paths)) {
    for (const [method, op] of Object.entries(ops)) {
      const route = path.replace(/^\/api\/v1/, "");
      const open = Array.isArray(op.security) && op.security.length === 0;
      // The CloudTrail webhook authenticates with its target's key, not a token.
      const auth = route.endsWith("/cloudtrail") ? "key" : open ? "no" : (op["x-token-scope"] ?? "?");
      operations.set(`${method.toUpperCase()} ${route}`, { auth: `${auth}${op["x-fallback-login"] ? "*" : ""}` });
    }
  }
});

afterAll(async () => {
  await t?.stop();
});

describe("docs/api.md", () => {
  it("lists every route of the API with the scope and fallback access the route table gives it", () => {
    const documented = documentedRoutes();
    expect(operations.size).toBeGreaterThan(40);
    for (const [route, op] of operations) {
      expect(documented.get(route), `${route} in the Routes table of docs/api.md`).toEqual(op);
    }
  });

  it("lists no route the API does not have", () => {
    const stale = [...documentedRoutes().keys()].filter((r) => r !== "GET /metrics" && !operations.has(r));
    expect(stale).toEqual([]);
  });

  it("lists every error code with the status it is answered with", () => {
    const text = doc("docs/api.md");
    for (const [code, status] of Object.entries(STATUS_BY_CODE)) {
      const row = text.split("\n").find((l) => new RegExp(`^\\| ${status}\\s+\\|[^|]*\`${code}\``).test(l));
      expect(row, `${code} (${status}) in the error table of docs/api.md`).toBeDefined();
    }
  });
});

describe("docs/configuration.md and docs/alarms.md", () => {
  it("name every top-level key of the configuration file in the top-level table", () => {
    const text = doc("docs/configuration.md");
    const table = text.slice(text.indexOf("## Top level"), text.indexOf("## `server`"));
    for (const key of Object.keys(ConfigFileSchema.shape)) {
      expect(table, `top-level key \`${key}\``).toContain(`| \`${key}\``);
    }
  });

  it("name every alarm channel type", () => {
    const types = AlarmChannelSchema.options.map((o) => o.shape.type.value);
    expect(types.length).toBeGreaterThanOrEqual(6);
    const configuration = doc("docs/configuration.md");
    const alarms = doc("docs/alarms.md");
    for (const type of types) {
      expect(configuration, `channel type \`${type}\` in docs/configuration.md`).toContain(`\`${type}\``);
      expect(alarms, `channel type \`${type}\` in docs/alarms.md`).toMatch(new RegExp(`type: ${type}\\b`));
    }
  });

  it("docs/alarms.md lists every event that always reaches the security channels", () => {
    const alarms = doc("docs/alarms.md");
    const table = alarms.slice(alarms.indexOf("## What alarms"), alarms.indexOf("## Checkpoints as external anchors"));
    for (const type of ALWAYS_SECURITY_EVENTS) {
      expect(table, `\`${type}\` in the "What alarms" table`).toContain(`\`${type}\``);
    }
  });
});

describe("docs/cli.md", () => {
  it("names every command", () => {
    const text = doc("docs/cli.md");
    for (const c of COMMANDS) {
      // `vault seal`, `audit verify`…: the command's words in a code span, possibly with arguments.
      expect(text, `\`${c.name}\` in docs/cli.md`).toMatch(new RegExp(`\`(breakglass )?${c.name}[ \`]`));
    }
  });
});

describe("every page", () => {
  it("promises no work for a later issue", () => {
    const promise = /comes with issue \d+|arrives? with issue \d+|\(issue \d+\) will\b|until issue \d+/i;
    const found = allDocs().flatMap((file) =>
      doc(file)
        .split("\n")
        .map((line, i) => ({ file, line: i + 1, text: line }))
        .filter((l) => promise.test(l.text)),
    );
    expect(found).toEqual([]);
  });
});
