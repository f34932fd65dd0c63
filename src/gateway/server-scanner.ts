/**
 * The target's byte stream, scanned in place as it is relayed (the chunks themselves are forwarded
 * untouched): message headers, a count of DataRows, and the bodies of the few messages whose
 * content the recording needs. A body whole in its chunk is handed over as a view of it; one split
 * across chunks is gathered. Nothing else is allocated per message.
 * @see https://www.postgresql.org/docs/current/protocol-message-formats.html
 */

const EMPTY = Buffer.alloc(0);

/**
 * Target messages whose bodies are read: CommandComplete, ErrorResponse, ReadyForQuery,
 * PortalSuspended, EmptyQueryResponse, ParseComplete.
 */
export const WANTED: ReadonlySet<number> = new Set([0x43, 0x45, 0x5a, 0x73, 0x49, 0x31]);

export interface ScanSink {
  /** A DataRow's header was read (its body is skipped). */
  dataRow(): void;
  /** A wanted message, whole: its type and its body (a view valid during the call). */
  message(type: number, body: Buffer): void;
}

export class ServerScanner {
  private readonly header = Buffer.alloc(5);
  private headerLen = 0;
  /** Bytes of the current message's body not yet seen. */
  private remaining = 0;
  private type = 0;
  /** The current message's body is wanted (see {@link WANTED}). */
  private want = false;
  /** Pieces of a wanted body split across chunks. */
  private pieces: Buffer[] | null = null;

  constructor(private readonly sink: ScanSink) {}

  scan(chunk: Buffer): void {
    let pos = 0;
    const len = chunk.length;
    while (pos < len) {
      if (this.remaining === 0) {
        let t: number;
        if (this.headerLen === 0 && len - pos >= 5) {
          t = chunk[pos] as number;
          this.remaining = chunk.readInt32BE(pos + 1) - 4;
          pos += 5;
        } else {
          const take = Math.min(5 - this.headerLen, len - pos);
          chunk.copy(this.header, this.headerLen, pos, pos + take);
          this.headerLen += take;
          pos += take;
          if (this.headerLen < 5) break;
          this.headerLen = 0;
          t = this.header[0] as number;
          this.remaining = this.header.readInt32BE(1) - 4;
        }
        this.type = t;
        if (t === 0x44) {
          // D: DataRow
          this.sink.dataRow();
          this.want = false;
        } else {
          this.want = WANTED.has(t);
          if (this.want && this.remaining === 0) {
            this.want = false;
            this.sink.message(t, EMPTY);
          }
        }
        continue;
      }
      const take = Math.min(this.remaining, len - pos);
      if (this.want) {
        if (take === this.remaining && this.pieces === null) {
          this.want = false;
          this.remaining = 0;
          this.sink.message(this.type, chunk.subarray(pos, pos + take));
          pos += take;
          continue;
        }
        if (this.pieces === null) this.pieces = [];
        this.pieces.push(chunk.subarray(pos, pos + take));
      }
      pos += take;
      this.remaining -= take;
      if (this.remaining === 0 && this.want && this.pieces) {
        const body = Buffer.concat(this.pieces);
        this.pieces = null;
        this.want = false;
        this.sink.message(this.type, body);
      }
    }
  }
}
