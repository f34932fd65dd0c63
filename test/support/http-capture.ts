/**
 * A plain HTTP receiver on loopback for channels without a signature (Slack, PagerDuty): records
 * each request and answers `status` (default 202).
 */
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";

export interface Captured {
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

export interface HttpCapture {
  readonly url: string;
  readonly requests: Captured[];
  status: number;
  stop(): Promise<void>;
}

export async function startHttpCapture(): Promise<HttpCapture> {
  const requests: Captured[] = [];
  const capture: { status: number } = { status: 202 };
  const server: Server = createServer((req, res) => {
    let body = "";
    req.on("data", (c: Buffer) => {
      body += c.toString("utf8");
    });
    req.on("end", () => {
      requests.push({ path: req.url ?? "", headers: req.headers, body });
      res.writeHead(capture.status).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return Object.assign(capture, {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    stop: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  });
}
