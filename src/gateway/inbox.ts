/**
 * Reading a socket as a sequence of awaited pieces, for the gateway's handshakes (startup, TLS
 * negotiation, authentication). Once a session relays, the inbox is detached and the socket is
 * read by the relay directly; `detach` hands over whatever was read but not taken.
 */
import type { Duplex } from "node:stream";
import { MAX_CLIENT_MESSAGE } from "./pg-wire.js";

export class Inbox {
  #buf: Buffer = Buffer.alloc(0);
  #wake: (() => void) | null = null;
  #closed: Error | null = null;
  readonly #onData = (chunk: Buffer) => {
    this.#buf = this.#buf.length === 0 ? chunk : Buffer.concat([this.#buf, chunk]);
    this.#wake?.();
  };
  readonly #onEnd = () => {
    this.#closed ??= new Error("the connection closed");
    this.#wake?.();
  };
  readonly #onError = (e: Error) => {
    this.#closed = e;
    this.#wake?.();
  };

  constructor(private readonly socket: Duplex) {
    socket.on("data", this.#onData);
    socket.on("end", this.#onEnd);
    socket.on("close", this.#onEnd);
    socket.on("error", this.#onError);
    socket.resume(); // a previous reader may have paused it
  }

  /**
   * Wait until `parse` can take something from the front of the buffer.
   * @param parse returns [value, bytes consumed], or null when more bytes are needed
   * @throws when the connection closes or `timeoutMs` passes first
   */
  async take<T>(parse: (buf: Buffer) => [T, number] | null, timeoutMs: number): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const got = parse(this.#buf);
      if (got) {
        this.#buf = this.#buf.subarray(got[1]);
        return got[0];
      }
      if (this.#closed) throw this.#closed;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error("timed out waiting for the peer");
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.#wake = null;
    }
  }

  /** One typed message (type byte, length, body). */
  message(timeoutMs: number): Promise<{ type: number; body: Buffer; raw: Buffer }> {
    return this.take((b) => {
      if (b.length < 5) return null;
      const len = b.readInt32BE(1);
      if (len < 4 || len > MAX_CLIENT_MESSAGE) throw new Error(`invalid message length ${len}`);
      if (b.length < len + 1) return null;
      return [{ type: b[0] as number, body: b.subarray(5, len + 1), raw: b.subarray(0, len + 1) }, len + 1];
    }, timeoutMs);
  }

  /** Stop reading (the socket is paused until its next reader resumes it); returns the bytes read but not taken. */
  detach(): Buffer {
    this.socket.pause();
    this.socket.off("data", this.#onData);
    this.socket.off("end", this.#onEnd);
    this.socket.off("close", this.#onEnd);
    this.socket.off("error", this.#onError);
    const rest = this.#buf;
    this.#buf = Buffer.alloc(0);
    return rest;
  }
}
