import { describe, expect, it } from "vitest";
import { ClientFramer, type FramedOut, type Inspect } from "./client-framing.js";
import { message } from "./pg-wire.js";

/** A target socket's stand-in: the writes as they would reach the socket (corked writes as one). */
function sink(): FramedOut & { writes: Buffer[]; corks: number } {
  let corked: Buffer[] | null = null;
  const out = {
    writes: [] as Buffer[],
    corks: 0,
    write(chunk: Buffer) {
      if (corked) corked.push(chunk);
      else out.writes.push(chunk);
    },
    cork() {
      out.corks += 1;
      corked = [];
    },
    uncork() {
      if (corked) out.writes.push(Buffer.concat(corked));
      corked = null;
    },
  };
  return out;
}

const q = (sql: string) => message("Q", Buffer.from(`${sql}\0`));
const sync = message("S");
const copyData = message("d", Buffer.from("1\tacme\n"));

describe("ClientFramer", () => {
  it("forwards a chunk of whole messages as it is, in one write, after inspecting the ones it must", () => {
    const seen: string[] = [];
    const framer = new ClientFramer((type, body) => {
      seen.push(`${String.fromCharCode(type)} ${body.toString("latin1")}`);
      return true;
    });
    const chunk = Buffer.concat([q("SELECT 1"), copyData, sync, q("SELECT 2")]);
    const out = sink();
    expect(framer.push(chunk, out)).toBe(true);
    expect(out.writes).toHaveLength(1);
    expect(out.writes[0]).toBe(chunk); // the chunk itself, not a copy
    expect(seen).toEqual(["Q SELECT 1\0", "Q SELECT 2\0"]); // CopyData and Sync are not inspected
  });

  it("keeps a message split across chunks until its rest arrives, then inspects it once", () => {
    const stream = Buffer.concat([q("SELECT 1"), q("SELECT 'a longer statement'"), sync]);
    for (let cut = 1; cut < stream.length; cut++) {
      const seen: string[] = [];
      const framer = new ClientFramer((_t, body) => {
        seen.push(body.toString("latin1"));
        return true;
      });
      const out = sink();
      framer.push(stream.subarray(0, cut), out);
      framer.push(stream.subarray(cut), out);
      expect(Buffer.concat(out.writes).equals(stream), `cut at ${cut}`).toBe(true);
      expect(seen).toEqual(["SELECT 1\0", "SELECT 'a longer statement'\0"]);
    }
  });

  it("frames a stream cut anywhere, twice: every byte forwarded in order, every inspected message seen once", () => {
    const bind = message(
      "B",
      Buffer.concat([
        Buffer.from("p1\0s1\0"),
        Buffer.alloc(2),
        Buffer.from([0, 1, 0, 0, 0, 3]),
        Buffer.from("abc"),
        Buffer.alloc(2),
      ]),
    );
    const stream = Buffer.concat([
      q("SELECT 1"),
      copyData,
      copyData,
      bind,
      message("E", Buffer.from("p1\0\0\0\0\0")),
      sync,
    ]);
    for (let a = 1; a < stream.length; a++) {
      for (let b = a; b < stream.length; b++) {
        const seen: string[] = [];
        const framer = new ClientFramer((type, body) => {
          seen.push(`${String.fromCharCode(type)}${body.length}`);
          return true;
        });
        const out = sink();
        for (const piece of [stream.subarray(0, a), stream.subarray(a, b), stream.subarray(b)]) framer.push(piece, out);
        expect(Buffer.concat(out.writes).equals(stream), `cuts at ${a}, ${b}`).toBe(true);
        expect(seen, `cuts at ${a}, ${b}`).toEqual(["Q9", `B${bind.length - 5}`, "E7"]);
      }
    }
  });

  it("forwards a message it does not inspect as its bytes arrive (a large CopyData is never held)", () => {
    const big = message("d", Buffer.alloc(1024 * 1024, 0x78));
    const framer = new ClientFramer(() => {
      throw new Error("CopyData is not inspected");
    });
    const out = sink();
    let pushed = 0;
    for (let at = 0; at < big.length; at += 65536) {
      const piece = big.subarray(at, at + 65536);
      framer.push(piece, out);
      pushed += piece.length;
      expect(out.writes.reduce((n, w) => n + w.length, 0)).toBe(pushed);
      expect(out.writes.at(-1)).toBe(piece); // the chunk itself, not a copy
    }
    // The next message is framed as usual.
    const seen: string[] = [];
    const after = new ClientFramer((_t, body) => {
      seen.push(body.toString("latin1"));
      return true;
    });
    after.push(Buffer.concat([big.subarray(0, 10)]), sink());
    after.push(Buffer.concat([big.subarray(10), q("SELECT 2")]), sink());
    expect(seen).toEqual(["SELECT 2\0"]);
  });

  it("holds an inspected message split over many chunks and joins its pieces once, when it is whole", () => {
    const text = `SELECT '${"y".repeat(1024 * 1024)}'`;
    const stream = Buffer.concat([q(text), sync]);
    const seen: number[] = [];
    const framer = new ClientFramer((_t, body) => {
      seen.push(body.length);
      return true;
    });
    const out = sink();
    const concat = Buffer.concat;
    let joined = 0;
    Buffer.concat = (list: readonly Uint8Array[], total?: number) => {
      joined += 1;
      return concat(list, total);
    };
    try {
      for (let at = 0; at < stream.length; at += 65536) {
        framer.push(stream.subarray(at, at + 65536), out);
        if (at + 65536 < stream.length - sync.length) expect(out.writes).toEqual([]);
      }
    } finally {
      Buffer.concat = concat;
    }
    expect(joined).toBe(1);
    expect(seen).toEqual([text.length + 1]);
    expect(Buffer.concat(out.writes).equals(stream)).toBe(true);
  });

  it("replaces a refused message in place, the bytes around it in one corked write", () => {
    const replacement = q("SELECT 'refused'");
    const inspect: Inspect = (_t, body) => (body.toString("latin1").startsWith("DROP") ? replacement : true);
    const framer = new ClientFramer(inspect);
    const out = sink();
    framer.push(Buffer.concat([q("SELECT 1"), q("DROP TABLE t"), sync]), out);
    expect(out.corks).toBe(1);
    expect(out.writes).toHaveLength(1);
    expect(out.writes[0]?.equals(Buffer.concat([q("SELECT 1"), replacement, sync]))).toBe(true);
  });

  it("stops forwarding when the inspector stops the session", () => {
    const framer = new ClientFramer((_t, body) => !body.toString("latin1").startsWith("STOP"));
    const out = sink();
    expect(framer.push(Buffer.concat([q("SELECT 1"), q("STOP"), q("SELECT 2")]), out)).toBe(false);
    expect(out.writes).toEqual([]);
  });

  it("refuses a message whose length is out of bounds", () => {
    const framer = new ClientFramer(() => true);
    const bad = Buffer.from([0x51, 0, 0, 0, 2]);
    expect(() => framer.push(bad, sink())).toThrow(/invalid message length 2/);
  });
});
