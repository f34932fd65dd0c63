import net from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Broker } from "../src/app.js";
import type { CliIo } from "../src/cli/cli-io.js";
import { main } from "../src/cli/main.js";
import { ProblemSchema } from "../src/contract/api.js";
import { ConfigError } from "../src/core/errors.js";
import {
  type ConfigOverride,
  loadTestConfig,
  startTestBroker,
  type TestBroker,
  writeTestConfig,
} from "./support/test-broker.js";

let t: TestBroker;
let dir: string;
let broker: Broker;
let url: string;
let token: string;

beforeAll(async () => {
  t = await startTestBroker();
  ({ dir, broker, url } = t);
  token = await t.token("alice");
});

afterAll(async () => {
  await t?.stop();
});

/** Send raw bytes; the whole answer the server wrote before closing (or 10 s). */
function raw(bytes: string): Promise<{ status: number; headers: string; body: string }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(port), hostname, () => socket.write(bytes));
    let text = "";
    socket.setEncoding("utf8");
    socket.on("data", (d) => {
      text += d;
    });
    socket.setTimeout(10_000, () => socket.destroy());
    socket.on("error", reject);
    socket.on("close", () => {
      const [head = "", ...rest] = text.split("\r\n\r\n");
      resolve({
        status: Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0),
        headers: head,
        body: rest.join("\r\n\r\n"),
      });
    });
  });
}

function problem(status: number, contentType: string | null, body: string, expectStatus: number, code: string) {
  expect(status, body).toBe(expectStatus);
  expect(contentType).toMatch(/^application\/problem\+json/);
  const p = ProblemSchema.parse(JSON.parse(body));
  expect(p.code).toBe(code);
  expect(p.status).toBe(expectStatus);
  return p;
}

describe("framework-level refusals are problem+json", () => {
  it("431: headers too large (Node's parser answers before fastify)", async () => {
    const r = await raw(`GET /api/v1/health HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(20_000)}\r\n\r\n`);
    problem(r.status, /content-type: ([^\r\n]+)/i.exec(r.headers)?.[1] ?? null, r.body, 431, "ERR_HEADERS_TOO_LARGE");
  });

  it("400: a malformed request line or header", async () => {
    for (const bad of [
      "GARBAGE\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
      "GET /\x01 HTTP/1.1\r\n\r\n",
    ]) {
      const r = await raw(bad);
      problem(r.status, /content-type: ([^\r\n]+)/i.exec(r.headers)?.[1] ?? null, r.body, 400, "ERR_VALIDATION");
    }
  });

  it("400: a URL with a broken % escape; 404: an unknown route; 405: a path asked with a method it does not take", async () => {
    const bad = await raw("GET /api/v1/grants/%E0%A4%A HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    problem(bad.status, /content-type: ([^\r\n]+)/i.exec(bad.headers)?.[1] ?? null, bad.body, 400, "ERR_VALIDATION");
    const missing = await fetch(`${url}/api/v1/nope`);
    problem(missing.status, missing.headers.get("content-type"), await missing.text(), 404, "ERR_NOT_FOUND");
    const method = await fetch(`${url}/api/v1/grants`, {
      method: "DELETE",
      headers: { authorization: `Bearer ${token}` },
    });
    const body = problem(
      method.status,
      method.headers.get("content-type"),
      await method.text(),
      405,
      "ERR_METHOD_NOT_ALLOWED",
    );
    expect(method.headers.get("allow")).toBe("GET, HEAD, POST");
    expect(body).toMatchObject({ allowed: ["GET", "HEAD", "POST"] });
    const get = await fetch(`${url}/api/v1/grants/g_nope/approve`, { headers: { authorization: `Bearer ${token}` } });
    problem(get.status, get.headers.get("content-type"), await get.text(), 405, "ERR_METHOD_NOT_ALLOWED");
    expect(get.headers.get("allow")).toBe("POST");
    // A path the API does not have stays 404 whatever the method, and so does one segment more.
    const nowhere = await fetch(`${url}/api/v1/grants/g_nope/approve/again`, { method: "POST" });
    problem(nowhere.status, nowhere.headers.get("content-type"), await nowhere.text(), 404, "ERR_NOT_FOUND");
  });

  it("400 bad JSON, 413 too large, 415 not JSON", async () => {
    const post = (body: string, type = "application/json") =>
      fetch(`${url}/api/v1/grants`, {
        method: "POST",
        headers: { authorization: `Bearer ${token}`, "content-type": type },
        body,
      });
    const json = await post("{not json");
    problem(json.status, json.headers.get("content-type"), await json.text(), 400, "ERR_VALIDATION");
    const big = await post(JSON.stringify({ justification: "x".repeat(70_000) }));
    problem(big.status, big.headers.get("content-type"), await big.text(), 413, "ERR_PAYLOAD_TOO_LARGE");
    const text = await post("role=x", "text/plain");
    problem(text.status, text.headers.get("content-type"), await text.text(), 415, "ERR_UNSUPPORTED_MEDIA_TYPE");
  });
});

describe("a duration needs its unit", () => {
  const request = (duration: unknown) =>
    fetch(`${url}/api/v1/grants`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify({
        role: "production/db-reader",
        justification: "the primary is down",
        incident: "INC-1",
        duration,
      }),
    });

  it('the API refuses 30 and "30", saying the unit is missing', async () => {
    for (const duration of [30, "30"]) {
      const res = await request(duration);
      const p = problem(res.status, res.headers.get("content-type"), await res.text(), 400, "ERR_VALIDATION");
      expect(p.detail).toMatch(/"30" has no unit: write 30s, 30m/);
    }
  });

  it("the CLI refuses --duration 30 and --by 30 before asking the broker", async () => {
    const lines: string[] = [];
    const io: CliIo = {
      out: (t) => lines.push(t),
      err: (t) => lines.push(t),
      stdout: process.stdout,
      env: { BREAKGLASS_URL: url, BREAKGLASS_TOKEN: token },
      cwd: dir,
      waitForStop: () => new Promise(() => {}),
      ask: async () => "",
    };
    const code = await main(
      ["request", "production/db-reader", "--reason", "db down now", "--incident", "INC-1", "--duration", "30"],
      io,
    );
    expect(code).toBe(2);
    expect(lines.join("\n")).toMatch(/--duration "30" has no unit: write 30s, 30m, 30h or 30d \(ERR_USAGE\)/);
    expect(await main(["extend", "g_x", "--by", "15", "--reason", "more"], io)).toBe(2);
    expect(lines.join("\n")).toMatch(/--by "15" has no unit/);
    // Nothing was requested.
    expect((await broker.store.listGrants({})).length).toBe(0);
  });

  it('the configuration refuses max_duration: 30 (a YAML number) and "30", saying the unit is missing', () => {
    const bad: ConfigOverride[] = [
      // @ts-expect-error: the file says `max_duration: 30`, a YAML number, which is what is refused
      { domains: { production: { roles: { "db-reader": { max_duration: 30 } } } } },
      { domains: { production: { roles: { "db-reader": { max_duration: "30" } } } } },
    ];
    for (const [i, config] of bad.entries()) {
      const written = writeTestConfig({ dir, file: `bad-${i}.yaml`, config });
      let error: unknown;
      try {
        loadTestConfig(written);
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(ConfigError);
      expect(String((error as Error).message)).toMatch(/"30" has no unit: write 30s, 30m/);
    }
  });
});
