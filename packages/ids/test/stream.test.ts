import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type Chunk,
  type OverlapPolicy,
  overlapPolicies,
  ReassemblyBudget,
  StreamReassembler,
} from '../src/index.js';

const text = (b: Uint8Array | undefined) => Buffer.from(b ?? []).toString('latin1');

/** Reassembles: an in-order prefix "0123", then `old`, then `new` (offsets relative to the prefix end). */
function overlap(policy: OverlapPolicy, old: [number, string], neu: [number, string]): string {
  const r = new StreamReassembler(100, { policy });
  r.insert(100, Buffer.from('0123'));
  r.release(); // the prefix is out: the overlap below happens among buffered bytes
  r.insert(104 + old[0], Buffer.from(old[1]));
  r.insert(104 + neu[0], Buffer.from(neu[1]));
  return r
    .flush()
    .map((c) => text(c.data))
    .join('|');
}

// Each row: the earlier segment, the later one (offset, bytes), and what each policy keeps.
// o = original bytes, n = new bytes. Rows follow Novak & Sturges' overlap cases.
const table: { name: string; old: [number, string]; neu: [number, string]; want: Record<string, string> }[] =
  [
    {
      name: 'exact overlap',
      old: [0, 'oooo'],
      neu: [0, 'nnnn'],
      want: {
        first: 'oooo',
        last: 'nnnn',
        bsd: 'oooo',
        linux: 'oooo',
        'old-linux': 'nnnn',
        windows: 'oooo',
        solaris: 'oooo',
      },
    },
    {
      name: 'new starts before and ends after',
      old: [2, 'oo'],
      neu: [0, 'nnnnnn'],
      want: {
        first: 'nnoonn',
        last: 'nnnnnn',
        bsd: 'nnnnnn',
        linux: 'nnnnnn',
        'old-linux': 'nnnnnn',
        windows: 'nnnnnn',
        solaris: 'nnnnnn',
      },
    },
    {
      name: 'new starts before and ends inside',
      old: [2, 'oooo'],
      neu: [0, 'nnnn'],
      want: {
        first: 'nnoooo',
        last: 'nnnnoo',
        bsd: 'nnnnoo',
        linux: 'nnnnoo',
        'old-linux': 'nnnnoo',
        windows: 'nnnnoo',
        solaris: 'nnoooo',
      },
    },
    {
      name: 'new starts at the same place and ends after',
      old: [0, 'oo'],
      neu: [0, 'nnnn'],
      want: {
        first: 'oonn',
        last: 'nnnn',
        bsd: 'oonn',
        linux: 'nnnn',
        'old-linux': 'nnnn',
        windows: 'oonn',
        solaris: 'oonn',
      },
    },
    {
      name: 'new starts inside and ends after',
      old: [0, 'oooo'],
      neu: [2, 'nnnn'],
      want: {
        first: 'oooonn',
        last: 'oonnnn',
        bsd: 'oooonn',
        linux: 'oooonn',
        'old-linux': 'oooonn',
        windows: 'oooonn',
        solaris: 'oooonn',
      },
    },
    {
      name: 'new inside the original',
      old: [0, 'oooooo'],
      neu: [2, 'nn'],
      want: {
        first: 'oooooo',
        last: 'oonnoo',
        bsd: 'oooooo',
        linux: 'oooooo',
        'old-linux': 'oooooo',
        windows: 'oooooo',
        solaris: 'oooooo',
      },
    },
  ];

describe('TCP stream reassembly', () => {
  for (const row of table)
    it(`overlap policy table: ${row.name}`, () => {
      for (const [policy, want] of Object.entries(row.want))
        expect([policy, overlap(policy as OverlapPolicy, row.old, row.neu)]).toEqual([policy, want]);
    });

  it('delivers in order, buffers out of order, drops retransmissions of released bytes', () => {
    const r = new StreamReassembler(1);
    expect(r.insert(1, Buffer.from('abc'))).toBe('in-order');
    expect(r.insert(7, Buffer.from('ghi'))).toBe('out-of-order');
    expect(text(r.release()?.data)).toBe('abc');
    expect(r.release()).toBeUndefined();
    expect(r.insert(1, Buffer.from('abc'))).toBe('retransmit');
    expect(r.insert(4, Buffer.from('def'))).toBe('in-order');
    expect(r.contiguousEnd()).toBe(9);
    // release up to an acknowledgment only
    expect(text(r.release(r.offsetOf(6))?.data)).toBe('de');
    expect(text(r.release()?.data)).toBe('fghi');
    expect(r.stats).toMatchObject({ inOrder: 2, outOfOrder: 1, retransmits: 1 });
  });

  it('flushes past holes at the end and marks the gap', () => {
    const r = new StreamReassembler(2);
    r.insert(6, Buffer.from('GOOD'));
    r.insert(10, Buffer.from('DATA'));
    expect(r.release()).toBeUndefined();
    const out = r.flush();
    expect(out.map((c) => [c.off, c.gap, text(c.data)])).toEqual([[4, true, 'GOODDATA']]);
  });

  it('keeps its own copies: Buffer views are neither held nor written through', () => {
    const frame = Buffer.from('xxGOODxxEVILxx');
    const r = new StreamReassembler(0, { policy: 'last' });
    r.insert(0, frame.subarray(2, 6));
    r.insert(0, frame.subarray(8, 12));
    expect(frame.toString()).toBe('xxGOODxxEVILxx');
    frame.fill(0x7a);
    expect(text(r.release()?.data)).toBe('EVIL');
  });

  it('handles sequence numbers that wrap around 2^32', () => {
    const r = new StreamReassembler(0xfffffffe);
    r.insert(0x00000001, Buffer.from('def'));
    r.insert(0xfffffffe, Buffer.from('abc'));
    expect(text(r.release()?.data)).toBe('abcdef');
    expect(r.offsetOf(4)).toBe(6);
  });

  it('bounds buffered pieces, bytes and the shared budget; stops at the reassembly depth', () => {
    const budget = new ReassemblyBudget(10);
    const r = new StreamReassembler(0, { segmentsMax: 2, budget });
    expect(r.insert(10, Buffer.from('a'))).toBe('out-of-order');
    expect(r.insert(20, Buffer.from('b'))).toBe('out-of-order');
    expect(r.insert(30, Buffer.from('c'))).toBe('overflow');
    // the direction's own bound above, the engine's shared memcap here (what its exception policy acts on)
    const s = new StreamReassembler(0, { budget });
    expect(s.insert(0, new Uint8Array(9))).toBe('memcap');
    expect(s.insert(0, new Uint8Array(8))).toBe('in-order');
    r.dispose();
    s.dispose();
    expect(budget.bytes).toBe(0);
    const d = new StreamReassembler(0, { depthBytes: 4 });
    d.insert(0, Buffer.from('abcdef'));
    expect(d.insert(6, Buffer.from('gh'))).toBe('beyond-depth');
    expect(text(d.release()?.data)).toBe('abcd');
    // depth 0: no limit, as Suricata's stream.reassembly.depth 0 (it kept nothing, every byte beyond it)
    const all = new StreamReassembler(0, { depthBytes: 0, bufferBytesMax: 1 << 22 });
    let got = 0;
    for (let off = 0; off < 3 << 20; off += 1 << 16) {
      expect(all.insert(off, new Uint8Array(1 << 16))).not.toBe('beyond-depth');
      got += all.release()?.data.length ?? 0;
    }
    expect(got).toBe(3 << 20);
    expect(all.stats.beyondDepth).toBe(0);
    expect(() => new StreamReassembler(0, { policy: 'nope' as OverlapPolicy })).toThrow(/policy/);
  });

  it('copies in-order pieces into charged slabs, uncharged once retired and released', () => {
    const budget = new ReassemblyBudget(1 << 20, 64 * 1024); // two 32 KiB slabs at most
    const held = new StreamReassembler(0, { budget });
    const src = new Uint8Array(1000).fill(7);
    expect(held.insert(0, src)).toBe('in-order');
    src.fill(9); // the piece is a copy: the caller's buffer is free again
    expect(budget.slabBytes).toBe(32 * 1024);
    // a second stream fills the rest of that slab and most of a second one; the first stream's piece keeps
    // the first slab charged after it is retired
    const busy = new StreamReassembler(0, { budget });
    for (let i = 0; i < 60; i++) {
      expect(busy.insert(i * 1000, src)).toBe('in-order');
      busy.release();
    }
    expect(budget.slabBytes).toBe(64 * 1024);
    // both slabs charged: the next slab would pass the bound, so pieces get arrays of their own
    for (let i = 60; i < 70; i++) expect(busy.insert(i * 1000, src)).toBe('in-order');
    expect(budget.slabBytes).toBe(64 * 1024);
    expect(text(busy.release()?.data)).toBe(text(new Uint8Array(10_000).fill(9)));
    expect(Array.from(held.release()?.data ?? [])).toEqual(Array.from(new Uint8Array(1000).fill(7)));
    // every piece is out and the full second slab was retired when no third fitted: nothing is charged
    expect(budget.slabBytes).toBe(0);
    held.dispose();
    busy.dispose();
    expect(budget.bytes).toBe(0);
    expect(budget.slabBytes).toBe(0);
    expect(budget.peakBytes).toBeLessThanOrEqual((1 << 20) + 64 * 1024);
    // pieces of 64 bytes or less never take a slab
    const small = new ReassemblyBudget(1 << 20);
    new StreamReassembler(0, { budget: small }).insert(0, new Uint8Array(64));
    expect(small.slabBytes).toBe(0);
  });

  it('streams sharing slabs reassemble what was sent, whatever is held, reused or disposed, chunks kept as handed out (property)', () => {
    const op = fc.record({
      stream: fc.nat(3),
      len: fc.integer({ min: 1, max: 3000 }),
      skip: fc.boolean(), // leave a hole: the segment waits out of order until the hole's segment comes
      release: fc.boolean(),
    });
    fc.assert(
      fc.property(
        fc.array(op, { maxLength: 120, size: 'max' }),
        fc.integer({ min: 0, max: 4 }),
        (ops, slabs) => {
          const budget = new ReassemblyBudget(1 << 22, slabs * 32 * 1024);
          const streams = [0, 1, 2, 3].map(() => ({
            r: new StreamReassembler(0, { budget }),
            sent: [] as number[],
            // the chunks themselves, read at the end: a chunk must not change once handed out
            got: [] as Uint8Array[],
            hole: undefined as { at: number; bytes: Uint8Array } | undefined,
          }));
          const src = new Uint8Array(3000); // one buffer for every segment, changed after each insert
          let n = 0;
          for (const o of ops) {
            const s = streams[o.stream]!;
            for (let i = 0; i < o.len; i++) src[i] = n++ & 0xff;
            const seg = src.subarray(0, o.len);
            if (o.skip && !s.hole) {
              s.hole = { at: s.sent.length, bytes: Uint8Array.from(seg) };
              s.sent.push(...seg);
            } else {
              const at = s.sent.length;
              s.sent.push(...seg);
              s.r.insert(at, seg);
              if (s.hole) {
                s.r.insert(s.hole.at, s.hole.bytes);
                s.hole = undefined;
              }
            }
            src.fill(0xee);
            const c = o.release ? s.r.release() : undefined;
            if (c) s.got.push(c.data);
            expect(budget.slabBytes).toBeLessThanOrEqual(budget.slabBytesMax);
          }
          for (const s of streams) {
            if (s.hole) s.r.insert(s.hole.at, s.hole.bytes);
            const c = s.r.release();
            if (c) s.got.push(c.data);
            expect(s.got.flatMap((d) => [...d])).toEqual(s.sent);
            s.r.dispose();
          }
          expect(budget.bytes).toBe(0);
          expect(budget.slabBytes).toBeLessThanOrEqual(32 * 1024); // at most the slab being filled
        },
      ),
      { numRuns: 200 },
    );
  });

  it('bytes for released chunks: each of the length asked, none sharing a byte with another (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 20_000 }), { maxLength: 40 }), (sizes) => {
        const budget = new ReassemblyBudget();
        const got = sizes.map((n, k) => {
          const b = budget.releaseBytes(n);
          expect(b.length).toBe(n);
          b.fill(k & 0xff);
          return b;
        });
        for (const [k, b] of got.entries()) expect(b.every((x) => x === (k & 0xff))).toBe(true);
      }),
      { numRuns: 200 },
    );
    // an arena filled exactly, then the next one
    const budget = new ReassemblyBudget();
    const quarter = [1, 2, 3, 4].map(() => budget.releaseBytes(16 * 1024));
    expect(quarter.map((b) => b.length)).toEqual([16384, 16384, 16384, 16384]);
    expect(new Set(quarter.map((b) => b.buffer)).size).toBe(1);
    expect(budget.releaseBytes(1).buffer).not.toBe(quarter[0]!.buffer);
  });

  it('slabs change nothing but memory: overlaps, partial releases, flushes and reads as without them (property)', () => {
    // every stream runs twice, sharing a budget with slabs and a budget without; whatever overlaps write
    // into held pieces, what comes out and what is read held is the same, and a chunk handed out is never
    // changed afterwards
    const op = fc.record({
      s: fc.nat(2),
      kind: fc.constantFrom(
        'insert',
        'insert',
        'insert',
        'release',
        'release-to',
        'flush',
        'read',
        'dispose',
      ),
      at: fc.oneof(fc.constant(0), fc.integer({ min: -3000, max: 6000 })), // from the contiguous end
      len: fc.integer({ min: 1, max: 3000 }),
      fill: fc.nat(255),
    });
    fc.assert(
      fc.property(
        fc.array(op, { maxLength: 150, size: 'max' }),
        fc.integer({ min: 0, max: 3 }),
        fc.constantFrom(...overlapPolicies),
        (ops, slabs, policy) => {
          const withSlabs = new ReassemblyBudget(1 << 22, slabs * 32 * 1024);
          const without = new ReassemblyBudget(1 << 22, 0);
          const pair = () => ({
            a: new StreamReassembler(0, { budget: withSlabs, policy }),
            b: new StreamReassembler(0, { budget: without, policy }),
          });
          const streams = [pair(), pair(), pair()];
          const out: { data: Uint8Array; was: number[] }[] = [];
          const same = (x: Chunk | undefined, y: Chunk | undefined) => {
            expect(x && { off: x.off, gap: x.gap, data: Array.from(x.data) }).toEqual(
              y && { off: y.off, gap: y.gap, data: Array.from(y.data) },
            );
            if (x) out.push({ data: x.data, was: Array.from(x.data) });
          };
          const src = new Uint8Array(3000); // one buffer for every segment, changed after each insert
          for (const o of ops) {
            const s = streams[o.s]!;
            if (o.kind === 'insert') {
              const seq = Math.max(0, s.a.contiguousEnd() + o.at);
              for (let i = 0; i < o.len; i++) src[i] = (o.fill + i * 7) & 0xff;
              const seg = src.subarray(0, o.len);
              expect(s.a.insert(seq, seg)).toBe(s.b.insert(seq, seg));
              src.fill(0xee);
            } else if (o.kind === 'release') same(s.a.release(), s.b.release());
            else if (o.kind === 'release-to')
              same(s.a.release(s.a.released + o.len), s.b.release(s.b.released + o.len));
            else if (o.kind === 'flush') {
              const [x, y] = [s.a.flush(), s.b.flush()];
              expect(x.length).toBe(y.length);
              for (let i = 0; i < x.length; i++) same(x[i], y[i]);
            } else if (o.kind === 'read') {
              const [x, y] = [new Uint8Array(o.len), new Uint8Array(o.len)];
              expect(s.a.readHeld(s.a.released + o.at, x)).toBe(s.b.readHeld(s.b.released + o.at, y));
              expect(x).toEqual(y);
            } else {
              s.a.dispose();
              s.a.dispose(); // a second dispose gives nothing back twice
              s.b.dispose();
              streams[o.s] = pair();
            }
            expect(withSlabs.bytes).toBe(without.bytes);
            expect(withSlabs.slabBytes).toBeGreaterThanOrEqual(0);
            expect(withSlabs.slabBytes).toBeLessThanOrEqual(withSlabs.slabBytesMax);
          }
          for (const c of out) expect(Array.from(c.data)).toEqual(c.was);
          for (const s of streams) {
            s.a.dispose();
            s.b.dispose();
          }
          expect(withSlabs.bytes).toBe(0);
          expect(withSlabs.slabBytes).toBeLessThanOrEqual(32 * 1024);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('any segmentation, reordering and duplication of a stream reassembles to the same bytes (property)', () => {
    const seg = fc
      .record({
        data: fc.uint8Array({ minLength: 1, maxLength: 300, size: 'max' }),
        base: fc.oneof(fc.constant(0xffffff00), fc.nat(0xffffffff)),
        cuts: fc.array(fc.nat(299), { maxLength: 20 }),
        dups: fc.array(fc.tuple(fc.nat(299), fc.nat(40)), { maxLength: 5 }),
        policy: fc.constantFrom(...overlapPolicies),
        releaseEvery: fc.integer({ min: 1, max: 8 }),
      })
      .chain((x) => {
        const points = [...new Set([0, ...x.cuts.filter((c) => c < x.data.length), x.data.length])].sort(
          (a, b) => a - b,
        );
        const segs: [number, number][] = [];
        for (let i = 0; i + 1 < points.length; i++) segs.push([points[i]!, points[i + 1]!]);
        for (const [s, n] of x.dups)
          if (s < x.data.length) segs.push([s, Math.min(x.data.length, s + n + 1)]);
        return fc
          .shuffledSubarray(segs, { minLength: segs.length, maxLength: segs.length })
          .map((order) => ({ ...x, order }));
      });
    fc.assert(
      fc.property(seg, (x) => {
        const budget = new ReassemblyBudget();
        const r = new StreamReassembler(x.base, { policy: x.policy, budget });
        const got: number[] = [];
        x.order.forEach(([s, e], i) => {
          r.insert((x.base + s) >>> 0, x.data.subarray(s, e));
          if (i % x.releaseEvery === 0) got.push(...(r.release()?.data ?? []));
        });
        got.push(...(r.release()?.data ?? []));
        expect(r.flush()).toEqual([]);
        expect(Buffer.from(got).equals(Buffer.from(x.data))).toBe(true);
        expect(budget.bytes).toBe(0);
      }),
      { numRuns: 400 },
    );
  });
});
