/**
 * An SMTP server on loopback (smtp-server, no TLS, no auth) that keeps every mail it accepts —
 * its envelope recipients, sorted, and the message parsed with postal-mime — and can be told to
 * refuse the next DATA with a given SMTP code.
 */
import type { AddressInfo } from "node:net";
import PostalMime, { type Email } from "postal-mime";
import { SMTPServer } from "smtp-server";

export interface ReceivedMail {
  readonly rcpt: string[];
  readonly mail: Email;
}

export class SmtpReceiver {
  readonly received: ReceivedMail[] = [];
  /** The SMTP code the server answers every DATA with while set (null: accept). */
  refuseWith: number | null = null;
  port = 0;
  private readonly server = new SMTPServer({
    authOptional: true,
    disabledCommands: ["STARTTLS"],
    logger: false,
    onData: (stream, session, callback) => {
      const chunks: Buffer[] = [];
      stream.on("data", (c: Buffer) => chunks.push(c));
      stream.on("end", () => {
        if (this.refuseWith !== null) {
          callback(Object.assign(new Error("refused by the test"), { responseCode: this.refuseWith }));
          return;
        }
        void PostalMime.parse(Buffer.concat(chunks)).then((mail) => {
          this.received.push({ rcpt: session.envelope.rcptTo.map((r) => r.address).sort(), mail });
          callback();
        });
      });
    },
  });

  async start(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, "127.0.0.1", () => resolve()));
    this.port = (this.server.server.address() as AddressInfo).port;
  }

  stop(): Promise<void> {
    return new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
