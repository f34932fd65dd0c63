/**
 * The client's byte stream, framed in place: each chunk read is walked message by message (type
 * byte and length) with no object or copy per message, the messages the gateway must see are
 * handed to an inspector as views of the chunk, and the chunk is forwarded — in one write when
 * nothing in it was replaced (the common case), else the pieces around each replacement, corked
 * into one write. A message split across chunks waits for its rest.
 * @see https://www.postgresql.org/docs/current/protocol-message-formats.html
 */
import { MAX_CLIENT_MESSAGE } from "./pg-wire.js";

/**
 * Client messages the gateway inspects: Query, Parse, Bind, Execute, Close, FunctionCall and
 * Terminate. The rest — Describe, Sync, Flush, CopyData… — pass as they are.
 */
export const INSPECTED: ReadonlySet<number> = new Set([0x51, 0x50, 0x42, 0x45, 0x43, 0x46, 0x58]);

/**
 * Look at one client message before it is forwarded: true to forward it as it is, a buffer to
 * forward instead (a refused statement's replacement), false when the session must stop (nothing
 * more of the chunk is forwarded).
 */
export type Inspect = (type: number, body: Buffer) => boolean | Buffer;

/** Where framed bytes go (the target's socket). */
export interface FramedOut {
  write(chunk: Buffer): unknown;
  cork(): void;
  uncork(): void;
}

export class ClientFramer {
  /** Client bytes of a message not yet whole (null: none). */
  private partial: Buffer | null = null;

  constructor(private readonly inspect: Inspect) {}

  /**
   * Frame `chunk` (after whatever was left of the last one), inspect and forward its whole
   * messages; keep an incomplete last one for the next chunk.
   * @returns false when the inspector stopped the session
   * @throws Error on a message whose length is out of bounds (a protocol error)
   */
  push(chunk: Buffer, out: FramedOut): boolean {
    let buf = chunk;
    if (this.partial !== null) {
      buf = Buffer.concat([this.partial, chunk]);
      this.partial = null;
    }
    const len = buf.length;
    let pos = 0;
    let sent = 0;
    let corked = false;
    while (len - pos >= 5) {
      const size = buf.readInt32BE(pos + 1);
      if (size < 4 || size > MAX_CLIENT_MESSAGE) throw new Error(`invalid message length ${size}`);
      const end = pos + 1 + size;
      if (end > len) break;
      const type = buf[pos] as number;
      if (INSPECTED.has(type)) {
        const r = this.inspect(type, buf.subarray(pos + 5, end));
        // The session is closing: what was corked goes with the socket's end.
        if (r === false) return false;
        if (r !== true) {
          if (!corked) {
            out.cork();
            corked = true;
          }
          if (pos > sent) out.write(buf.subarray(sent, pos));
          out.write(r);
          sent = end;
        }
      }
      pos = end;
    }
    if (pos < len) this.partial = buf.subarray(pos);
    if (pos > sent) out.write(sent === 0 && pos === len ? buf : buf.subarray(sent, pos));
    if (corked) out.uncork();
    return true;
  }
}
