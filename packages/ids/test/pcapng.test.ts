// The pcapng reader (draft-ietf-opsawg-pcapng: section header, interface description, enhanced and simple
// packet blocks; other blocks skipped) and the capture readers' answer to damaged input: a CaptureError
// naming the byte offset, never another exception.
import { PassThrough, Readable } from 'node:stream';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CaptureError, encodePcap, PcapWriter, readCapture, TruncatedCaptureError } from '../src/index.js';

interface Frame {
  iface: number;
  /** In the interface's units (if_tsresol). */
  ts: bigint;
  data: Uint8Array;
  orig: number;
}

/** A pcapng block: type, total length, body padded to 4 bytes, total length again. */
function block(be: boolean, type: number, body: Uint8Array): Buffer {
  const pad = (4 - (body.length % 4)) % 4;
  const len = 12 + body.length + pad;
  const b = Buffer.alloc(len);
  const w = (v: number, o: number) => (be ? b.writeUInt32BE(v, o) : b.writeUInt32LE(v, o));
  w(type, 0);
  w(len, 4);
  b.set(body, 8);
  w(len, len - 4);
  return b;
}

/** A section of one capture: its header, interfaces (link type, if_tsresol byte or none), then blocks. */
function section(be: boolean, ifaces: [number, number?][], frames: Frame[], extra = true): Buffer {
  const u16 = (v: number) => {
    const b = Buffer.alloc(2);
    be ? b.writeUInt16BE(v) : b.writeUInt16LE(v);
    return b;
  };
  const u32 = (v: number) => {
    const b = Buffer.alloc(4);
    be ? b.writeUInt32BE(v) : b.writeUInt32LE(v);
    return b;
  };
  const shb = Buffer.concat([u32(0x1a2b3c4d), u16(1), u16(0), Buffer.alloc(8, 0xff)]);
  const parts = [block(be, 0x0a0d0d0a, shb)];
  for (const [link, res] of ifaces) {
    const opts =
      res === undefined
        ? Buffer.alloc(0)
        : Buffer.concat([u16(9), u16(1), Buffer.from([res, 0, 0, 0]), u16(0), u16(0)]);
    parts.push(block(be, 1, Buffer.concat([u16(link), u16(0), u32(65535), opts])));
  }
  // blocks a reader skips: name resolution (4) and interface statistics (5)
  if (extra) parts.push(block(be, 4, Buffer.alloc(8)), block(be, 5, Buffer.alloc(12)));
  for (const f of frames) {
    const hi = Number(f.ts >> 32n);
    const lo = Number(f.ts & 0xffffffffn);
    const head = Buffer.concat([u32(f.iface), u32(hi), u32(lo), u32(f.data.length), u32(f.orig)]);
    parts.push(block(be, 6, Buffer.concat([head, f.data])));
  }
  return Buffer.concat(parts);
}

async function readAll(chunks: Uint8Array[]) {
  const out = [];
  for await (const p of readCapture(Readable.from(chunks.map((c) => Buffer.from(c)))))
    out.push({
      tsUs: p.tsUs,
      linkType: p.linkType,
      data: Buffer.from(p.data).toString('hex'),
      origLength: p.origLength,
    });
  return out;
}

/** The input cut at `cuts` (offsets, any order). */
function cut(b: Buffer, cuts: number[]): Buffer[] {
  const at = [...new Set(cuts.filter((c) => c > 0 && c < b.length))].sort((x, y) => x - y);
  return [0, ...at].map((x, i) => b.subarray(x, at[i] ?? b.length));
}

/** Awaits the rejection of `p` and checks the error's class and message. */
async function expectFailure(p: Promise<unknown>, cls: abstract new (...a: never[]) => Error, why: RegExp) {
  const e = await p.then(
    () => undefined,
    (x: unknown) => x,
  );
  expect(e, String(why)).toBeInstanceOf(cls);
  expect((e as Error).message).toMatch(why);
}

describe('pcapng', () => {
  const frames = (n: number) =>
    Array.from({ length: n }, (_, i) => new Uint8Array(i * 7 + 1).map((_, j) => (i * 31 + j) & 0xff));

  it('reads packets, link types and times of interfaces in us, ns and 2^-20 s, in both byte orders, however cut', async () => {
    // interface 0: microseconds (no if_tsresol); 1: nanoseconds (9); 2: 2^-20 s (0x80 | 20)
    const t = 1_700_000_000;
    const data = frames(6);
    const fs: Frame[] = data.map((d, i) => {
      const iface = i % 3;
      const ts =
        iface === 0
          ? BigInt(t + i) * 1_000_000n + 123_456n
          : iface === 1
            ? BigInt(t + i) * 1_000_000_000n + 123_456_789n
            : BigInt(t + i) * 1_048_576n + 524_288n;
      return { iface, ts, data: d, orig: d.length + 5 };
    });
    const want = data.map((d, i) => ({
      tsUs: (t + i) * 1e6 + [123_456, 123_456, 500_000][i % 3]!,
      linkType: [1, 101, 228][i % 3]!,
      data: Buffer.from(d).toString('hex'),
      origLength: d.length + 5,
    }));
    await fc.assert(
      fc.asyncProperty(fc.boolean(), fc.array(fc.nat(2_000), { maxLength: 10 }), async (be, cuts) => {
        const b = section(be, [[1], [101, 9], [228, 0x80 | 20]], fs);
        expect(await readAll(cut(b, cuts))).toEqual(want);
      }),
      { numRuns: 150 },
    );
  });

  it('a new section starts without interfaces and may change the byte order; simple packet blocks use interface 0', async () => {
    const [a, b] = frames(2) as [Uint8Array, Uint8Array];
    const first = section(false, [[1]], [{ iface: 0, ts: 5_000_000n, data: a, orig: a.length }]);
    const second = section(true, [[101]], [{ iface: 0, ts: 7_000_000n, data: b, orig: b.length }]);
    const spbBody = Buffer.alloc(4 + 3);
    spbBody.writeUInt32BE(3);
    spbBody.set([9, 8, 7], 4);
    const got = await readAll([first, second, block(true, 3, spbBody)]);
    expect(got.map((p) => [p.linkType, p.tsUs, p.data])).toEqual([
      [1, 5_000_000, Buffer.from(a).toString('hex')],
      [101, 7_000_000, Buffer.from(b).toString('hex')],
      [101, 0, '090807'],
    ]);
    // interface 1 of the first section is not one of the second's
    const stale = Buffer.concat([
      section(false, [[1], [1]], []),
      section(false, [[1]], [{ iface: 1, ts: 0n, data: a, orig: 1 }], false),
    ]);
    await expect(readAll([stale])).rejects.toThrow(/capture byte \d+: packet for undeclared interface 1/);
  });

  it('damaged blocks are capture errors at their byte offset', async () => {
    const d = frames(1)[0]!;
    const ok = section(false, [[1]], [{ iface: 0, ts: 1n, data: d, orig: 1 }], false);
    const epbAt = ok.length - block(false, 6, Buffer.alloc(20 + d.length)).length;
    const cases: [Buffer, RegExp][] = [];
    // the byte-order magic
    const bom = Buffer.from(ok);
    bom.writeUInt32LE(0x12345678, 8);
    cases.push([bom, /^capture byte 8: bad byte-order magic/]);
    // a block length that is not a multiple of 4, or below 12
    for (const len of [13, 8]) {
      const b = Buffer.from(ok);
      b.writeUInt32LE(len, epbAt + 4);
      cases.push([b, new RegExp(`^capture byte ${epbAt}: bad block length ${len}`)]);
    }
    // an enhanced packet block too short for its fixed fields (was a RangeError reading past the body)
    cases.push([
      Buffer.concat([section(false, [[1]], [], false), block(false, 6, Buffer.alloc(4))]),
      /enhanced packet block of 16 bytes: its fixed fields need 32/,
    ]);
    cases.push([
      Buffer.concat([section(false, [], [], false), block(false, 1, Buffer.alloc(0))]),
      /interface description block of 12 bytes: its fixed fields need 20/,
    ]);
    // packet data longer than its block
    const over = Buffer.from(ok);
    over.writeUInt32LE(4096, epbAt + 8 + 12);
    cases.push([over, new RegExp(`^capture byte ${epbAt}: packet data \\(4096 bytes\\) overruns its block`)]);
    // a timestamp past what a Date holds: printing an alert of it threw "Invalid time value"
    cases.push([
      section(false, [[1]], [{ iface: 0, ts: 0xffffffffffffffffn, data: d, orig: 1 }], false),
      /packet timestamp 18446744073709552000 \(1000000 units a second\) is past the year 275760/,
    ]);
    cases.push([
      section(false, [[1, 0]], [{ iface: 0, ts: 10n ** 13n, data: d, orig: 1 }], false),
      /\(1 units a second\) is past the year 275760/,
    ]);
    for (const [b, why] of cases) await expectFailure(readAll([b]), CaptureError, why);
    // cut inside a block: truncated, at the block's offset
    await expect(readAll([ok.subarray(0, ok.length - 6)])).rejects.toThrow(TruncatedCaptureError);
  });

  it('a capture cut where a header ends is truncated: the magic alone, a record header without its data, a section header after its magic', async () => {
    const d = frames(1)[0]!;
    const classic = Buffer.concat([
      Buffer.from('d4c3b2a1020004000000000000000000ffff000001000000', 'hex'),
      Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, d.length, 0, 0, 0, d.length, 0, 0, 0]),
      d,
    ]);
    const ng = section(false, [[1]], [], false);
    const cases: [Buffer, RegExp][] = [
      // was a TypeError ("Cannot read properties of undefined")
      [classic.subarray(0, 4), /^capture byte 4: truncated file header/],
      // was an empty packet, and the capture read as whole
      [classic.subarray(0, 40), new RegExp(`^capture byte 40: truncated: ${d.length} bytes needed, 0 left`)],
      // was the end of a capture of no packets
      [ng.subarray(0, 12), /^capture byte 0: truncated section header/],
    ];
    for (const [b, why] of cases) await expectFailure(readAll([b]), TruncatedCaptureError, why);
    // a header with no record after it is a capture of no packets; no bytes at all is no capture (it read
    // as one of no packets)
    await expect(readAll([classic.subarray(0, 24)])).resolves.toEqual([]);
    await expect(readAll([])).rejects.toThrow(/^capture byte 0: empty input: no pcap or pcapng header/);
    await expect(readAll([Buffer.alloc(0)])).rejects.toThrow(TruncatedCaptureError);
  });

  it('a block whose length at its end differs from its start is a capture error (it was read on silently)', async () => {
    const d = frames(1)[0]!;
    const ok = section(false, [[1]], [{ iface: 0, ts: 1n, data: d, orig: d.length }], false);
    const epbLen = block(false, 6, Buffer.alloc(20 + d.length)).length;
    const epb = Buffer.from(ok);
    epb.writeUInt32LE(epbLen + 4, ok.length - 4);
    await expect(readAll([epb])).rejects.toThrow(
      new RegExp(
        `^capture byte ${ok.length - epbLen}: block length ${epbLen} at its start, ${epbLen + 4} at its end`,
      ),
    );
    const shb = Buffer.from(ok);
    shb.writeUInt32LE(32, 24);
    await expect(readAll([shb])).rejects.toThrow(
      /^capture byte 0: section header length 28 at its start, 32 at its end/,
    );
  });

  it('damaged captures, pcap and pcapng, end in a CaptureError or read to the end, never another exception (fuzz)', async () => {
    const d = frames(4);
    const ng = section(
      false,
      [[1], [101, 9]],
      d.map((x, i) => ({ iface: i % 2, ts: BigInt(i) * 1000n, data: x, orig: x.length })),
    );
    const classic = Buffer.concat([
      Buffer.from('d4c3b2a1020004000000000000000000ffff000001000000', 'hex'),
      ...d.map((x) => {
        const h = Buffer.alloc(16);
        h.writeUInt32LE(x.length, 8);
        h.writeUInt32LE(x.length, 12);
        return Buffer.concat([h, x]);
      }),
    ]);
    await fc.assert(
      fc.asyncProperty(
        fc.boolean(),
        fc.array(fc.tuple(fc.nat(400), fc.nat(255)), { minLength: 1, maxLength: 6 }),
        fc.nat(400),
        async (useNg, edits, keep) => {
          const b = Buffer.from(useNg ? ng : classic);
          for (const [at, v] of edits) b[at % b.length] = v;
          const input = b.subarray(0, Math.max(4, b.length - (keep % 64)));
          const e = await readAll([input]).then(
            () => undefined,
            (x: unknown) => x,
          );
          if (e !== undefined) expect(e).toBeInstanceOf(CaptureError);
        },
      ),
      { numRuns: 3000 },
    );
  });

  it('the pcap writer refuses a time or length a classic pcap cannot hold, saying so (Node\'s "out of range", or 1970 for NaN)', async () => {
    const out = new PassThrough();
    out.resume();
    const w = new PcapWriter(out);
    const data = new Uint8Array(60);
    // a pcapng's time past 2106 (the reader takes up to the year 275760), passed on by an IPS run
    for (const tsUs of [2 ** 32 * 1e6, -1, Number.NaN])
      await expect(w.write({ tsUs, linkType: 1, data })).rejects.toThrow(
        /^pcap output: packet time .* us is outside what a classic pcap holds/,
      );
    await expect(w.write({ tsUs: 0, linkType: 1, data, origLength: 2 ** 32 })).rejects.toThrow(
      /^pcap output: original length 4294967296 is not a 32-bit byte count/,
    );
    await w.write({ tsUs: 2 ** 32 * 1e6 - 1, linkType: 1, data });
    expect(w.packets).toBe(1);
    expect(() => encodePcap([{ tsUs: -5, data }])).toThrow(/packet time -5 us/);
  });
});
