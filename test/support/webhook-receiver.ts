/**
 * A webhook receiver on loopback that checks Breakglass's alarm signature the way docs/alarms.md
 * tells receivers to (HMAC over "<t>.<raw body>", timestamp within 5 minutes), and can be told to
 * fail or never answer the next requests.
 */
import { createHmac, timingSafeEqual } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";

export const WEBHOOK_SECRET = "webhook-test-secret";

export interface Received {
  readonly key: string;
  readonly body: Record<string, unknown>;
}

/** A receiver that checks the signature as docs/alarms.md tells receivers to. */
export class Receiver {
  readonly received: Received[] = [];
  readonly rejected: string[] = [];
  /** Answer this status to the next N requests (then 200). */
  failNext = 0;
  failStatus = 500;
  /** Never answer the next N requests about `hangGrant` (all requests when null); the sender's timeout must cut them. */
  hangNext = 0;
  hangGrant: string | null = null;
  /** The requests left unanswered. */
  readonly hung: Received[] = [];
  /** Answer every request only once this settles (a slow receiver the test lets go); received on arrival. */
  holdUntil: Promise<unknown> | null = null;
  /** The receiver's clock for the timestamp check (a test that moves the broker's clock moves this too). */
  now: () => number = Date.now;
  #server: Server | null = null;
  port = 0;

  async start(port = 0): Promise<void> {
    this.#server = createServer((req, res) => {
      let body = "";
      req.on("data", (c: Buffer) => {
        body += c.toString("utf8");
      });
      req.on("end", () => {
        const sig = String(req.headers["breakglass-signature"] ?? "");
        const m = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(sig);
        const expected = m ? createHmac("sha256", WEBHOOK_SECRET).update(`${m[1]}.${body}`).digest() : Buffer.alloc(32);
        const fresh = m !== null && Math.abs(this.now() / 1000 - Number(m[1])) < 300;
        if (!m || !fresh || !timingSafeEqual(expected, Buffer.from(m[2] ?? "", "hex"))) {
          this.rejected.push(sig);
          res.writeHead(401).end();
          return;
        }
        const parsed = JSON.parse(body) as Record<string, unknown>;
        const grant = (parsed.event as { grant?: unknown } | undefined)?.grant;
        if (this.hangNext > 0 && (this.hangGrant === null || grant === this.hangGrant)) {
          this.hangNext--;
          this.hung.push({ key: String(req.headers["breakglass-idempotency-key"]), body: parsed });
          return; // no answer at all; closed by stop()
        }
        if (this.failNext > 0) {
          this.failNext--;
          res.writeHead(this.failStatus).end();
          return;
        }
        this.received.push({ key: String(req.headers["breakglass-idempotency-key"]), body: parsed });
        if (this.holdUntil) void this.holdUntil.finally(() => res.writeHead(204).end());
        else res.writeHead(204).end();
      });
    });
    await new Promise<void>((resolve) => this.#server?.listen(port, "127.0.0.1", resolve));
    this.port = (this.#server.address() as AddressInfo).port;
  }

  async stop(): Promise<void> {
    await new Promise<void>((resolve) => {
      this.#server?.closeAllConnections();
      this.#server?.close(() => resolve());
    });
  }
}
