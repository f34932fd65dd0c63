/**
 * How a channel's HTTP POST decides between "retry later" and "give up": against a real HTTP
 * server on loopback that answers what the test asks for.
 */
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort } from "../../test/support/free-port.js";
import { DeliveryError, post } from "./alarm-channel.js";

let server: Server;
let base: string;
const seen: { headers: IncomingHttpHeaders; body: string }[] = [];

beforeAll(async () => {
  // /status/<code> answers that code; /hang never answers; /moved redirects.
  server = createServer((req, res) => {
    let body = "";
    req.on("data", (c: Buffer) => {
      body += c.toString("utf8");
    });
    req.on("end", () => {
      seen.push({ headers: req.headers, body });
      const url = req.url ?? "";
      if (url === "/hang") return;
      if (url === "/moved") {
        res.writeHead(302, { location: "/status/200" }).end();
        return;
      }
      res.writeHead(Number(url.split("/")[2] ?? 200)).end("answer body");
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

const attempt = (path: string, timeoutMs = 5_000) =>
  post(`${base}${path}`, '{"a":1}', { "x-extra": "yes" }, timeoutMs, "webhook").then(
    () => "delivered" as const,
    (e: unknown) => e,
  );

describe("an alarm POST", () => {
  it("sends the body as JSON with the channel's headers", async () => {
    expect(await attempt("/status/204")).toBe("delivered");
    expect(seen.at(-1)).toMatchObject({
      body: '{"a":1}',
      headers: { "content-type": "application/json", "user-agent": "breakglass-alarms", "x-extra": "yes" },
    });
  });

  it("gives up on a 4xx (the receiver refuses this message), except 408 and 429", async () => {
    for (const status of [400, 401, 403, 404, 410, 413, 422]) {
      const e = await attempt(`/status/${status}`);
      expect(e, String(status)).toBeInstanceOf(DeliveryError);
      expect(e).toMatchObject({ permanent: true, message: `webhook answered HTTP ${status}` });
    }
  });

  it("retries a timeout or rate limit (408, 429) and every 5xx", async () => {
    for (const status of [408, 429, 500, 502, 503, 504]) {
      expect(await attempt(`/status/${status}`), String(status)).toMatchObject({
        permanent: false,
        message: `webhook answered HTTP ${status}`,
      });
    }
  });

  it("retries a receiver that cannot be reached, or does not answer in time", async () => {
    const closed = await post(`http://127.0.0.1:${await freePort()}/`, "{}", {}, 5_000, "slack").catch((e) => e);
    expect(closed).toMatchObject({ permanent: false, message: "slack unreachable: ECONNREFUSED" });
    expect(await attempt("/hang", 200)).toMatchObject({
      permanent: false,
      message: "webhook unreachable: no answer within 200 ms",
    });
  });

  it("does not follow a redirect (an alarm goes where it was configured to, or is retried)", async () => {
    const before = seen.length;
    const e = await attempt("/moved");
    expect(e).toMatchObject({ permanent: false });
    expect(String((e as Error).message)).toMatch(/^webhook unreachable/);
    expect(seen.slice(before).map((s) => s.body)).toEqual(['{"a":1}']);
  });
});
