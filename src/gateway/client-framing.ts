/**
 * The client's byte stream, framed in place: each chunk read is walked message by message (type
 * byte and length) with no object or copy per message, the messages the gateway must see are
 * handed to an inspector as views of the chunk, and the chunk is forwarded — in one write when
 * nothing in it was replaced (the common case), else the pieces around each replacement, corked
 * into one write.
 *
 * A message split across chunks: one the gateway inspects waits for its rest (its pieces are
 * joined once, when it is whole — a large Bind or Query costs one copy, not one per chunk); one it
 * does not inspect (CopyData above all) is forwarded as its bytes arrive, never held.
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
  /** Bytes of a message that is not inspected still to come: forwarded as they arrive. */
  private passing = 0;
  /** The start of a message not yet whole and not yet forwarded: a header under 5 bytes, or an inspected message's pieces. */
  private held: Buffer[] = [];
  private heldBytes = 0;
  /** The held message's whole size, header included (0 while its header is incomplete). */
  private heldNeed = 0;

  constructor(private readonly inspect: Inspect) {}

  /**
   * Frame `chunk` (after whatever was held of the last one), inspect and forward its whole
   * messages; hold an incomplete inspected one (or header) for the next chunk.
   * @returns false when the inspector stopped the session
   * @throws Error on a message whose length is out of bounds (a protocol error)
   */
  push(chunk: Buffer, out: FramedOut): boolean {
    let buf = chunk;
    let pos = 0;
    if (this.passing > 0) {
      pos = Math.min(this.passing, chunk.length);
      this.passing -= pos;
    } else if (this.heldBytes > 0) {
      this.held.push(chunk);
      this.heldBytes += chunk.length;
      if (this.heldBytes < (this.heldNeed === 0 ? 5 : this.heldNeed)) return true;
      buf = Buffer.concat(this.held, this.heldBytes);
      this.held = [];
      this.heldBytes = 0;
      this.heldNeed = 0;
    }
    const len = buf.length;
    let sent = 0;
    let corked = false;
    while (len - pos >= 5) {
      const size = buf.readInt32BE(pos + 1);
      if (size < 4 || size > MAX_CLIENT_MESSAGE) throw new Error(`invalid message length ${size}`);
      const end = pos + 1 + size;
      const type = buf[pos] as number;
      if (!INSPECTED.has(type)) {
        if (end > len) {
          this.passing = end - len;
          pos = len;
        } else pos = end;
        continue;
      }
      if (end > len) {
        this.heldNeed = end - pos;
        break;
      }
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
      pos = end;
    }
    if (pos < len) {
      this.held.push(buf.subarray(pos));
      this.heldBytes = len - pos;
    }
    if (pos > sent) out.write(sent === 0 && pos === len ? buf : buf.subarray(sent, pos));
    if (corked) out.uncork();
    return true;
  }
}
