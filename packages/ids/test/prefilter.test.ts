// The multi-string prefilter: the automaton finds exactly the patterns that occur (case-insensitively),
// and an engine with the prefilter raises exactly the alerts of one without it.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type Alert, Engine, parseRules } from '../src/index.js';
import { headerPass, neverPasses } from '../src/match.js';
import { IdList, MultiMatcher } from '../src/prefilter.js';
import { ACK, FIN, handshake, PSH, pkt, withoutScanWasm } from './helpers.js';

const lower = (b: Uint8Array) => Buffer.from(b).toString('latin1').toLowerCase();

/** Byte arrays of `min` to `max` bytes of `alphabet`. */
function bytesOf(alphabet: number[]) {
  // size 'max': fast-check's default size generates at most 10 bytes, whatever `maxLength` says
  return (min: number, max: number) =>
    fc
      .uint8Array({ minLength: min, maxLength: max, size: 'max' })
      .map((b) => b.map((x) => alphabet[x % alphabet.length]!));
}

/**
 * The alerts `run` gives with the prefilter, checked equal to those without it and to those with the
 * all-strings stage as well.
 */
function samePrefiltered(run: (prefilter: boolean, allStrings?: boolean) => string[]): string[] {
  const on = run(true);
  expect(on).toEqual(run(false));
  expect(run(true, true)).toEqual(on);
  return on;
}

describe('MultiMatcher', () => {
  it('marks exactly the patterns that occur, case-insensitively (property, against indexOf)', () => {
    const bytes = fc
      .uint8Array({ minLength: 1, maxLength: 6 })
      .map((b) => b.map((x) => [0x41, 0x61, 0x42, 0x62, 0x00, 0xff][x % 6]!));
    fc.assert(
      fc.property(
        fc.array(bytes, { minLength: 1, maxLength: 20 }),
        bytes.chain(() =>
          fc
            .uint8Array({ maxLength: 200, size: 'max' })
            .map((b) => b.map((x) => [0x41, 0x61, 0x42, 0x62, 0x00, 0xff][x % 6]!)),
        ),
        (patterns, text) => {
          const m = new MultiMatcher(patterns);
          const hit = new Uint8Array(patterns.length);
          const hits = new IdList(0);
          m.scan(text, hit, hits);
          const t = lower(text);
          for (const [i, p] of patterns.entries()) expect(hit[i] === 1).toBe(t.includes(lower(p)));
          expect(new Set(hits.toArray()).size).toBe(hits.n);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('one matcher and one id list reused across scans: each scan marks and lists exactly its own patterns', () => {
    const bytes = fc
      .uint8Array({ minLength: 1, maxLength: 4 })
      .map((b) => b.map((x) => [0x41, 0x61, 0x42, 0x00][x % 4]!));
    const text = fc.uint8Array({ maxLength: 60 }).map((b) => b.map((x) => [0x41, 0x61, 0x42, 0x00][x % 4]!));
    fc.assert(
      fc.property(
        fc.array(bytes, { minLength: 1, maxLength: 12 }),
        fc.array(text, { maxLength: 8 }),
        (patterns, texts) => {
          const m = new MultiMatcher(patterns);
          // capacity 1: the list grows past it
          const hits = new IdList(1);
          for (const t of texts) {
            const hit = new Uint8Array(patterns.length);
            hits.clear();
            m.scan(t, hit, hits);
            const want = patterns.flatMap((p, i) => (lower(t).includes(lower(p)) ? [i] : []));
            expect([...hits.toArray()].sort((a, b) => a - b)).toEqual(want);
            for (const [i] of patterns.entries()) expect(hit[i] === 1).toBe(want.includes(i));
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('MultiMatcher resumed', () => {
  it('marks, for each piece of a text cut anywhere, exactly the patterns ending in it (property, against indexOf)', () => {
    const alphabet = [0x41, 0x61, 0x42, 0x62, 0x00, 0xff];
    const bytes = (min: number, max: number) =>
      fc
        .uint8Array({ minLength: min, maxLength: max, size: 'max' })
        .map((b) => b.map((x) => alphabet[x % alphabet.length]!));
    fc.assert(
      fc.property(
        fc.array(bytes(1, 7), { minLength: 1, maxLength: 16 }),
        fc.array(fc.tuple(bytes(0, 120), fc.array(fc.nat(120), { maxLength: 6 })), { maxLength: 5 }),
        fc.constantFrom(0, 0.5, 1e9),
        fc.constantFrom(0, 0.05, Number.POSITIVE_INFINITY),
        fc.boolean(),
        (patterns, texts, denseAfterBytesPerState, skipCostMax, wasm) => {
          // one matcher for every text, as a stream's scans share their group's; in JavaScript, its dense
          // table built at once, after about half a byte per state (between two pieces, resumed in the same
          // state), or never; in WebAssembly (the table made at once, each row as a scan reaches its state),
          // searching for where patterns start never, by default or always
          const m = new MultiMatcher(patterns, undefined, { denseAfterBytesPerState, skipCostMax, wasm });
          expect(m.inWasm).toBe(wasm);
          for (const [t, cuts] of texts) {
            const whole = lower(t);
            const at = [...new Set(cuts.map((c) => c % (t.length + 1)))].sort((a, b) => a - b);
            let state = 0;
            let from = 0;
            for (const to of [...at, t.length]) {
              const hit = new Uint8Array(patterns.length);
              const hits = new IdList(0);
              state = m.scanFrom(state, t.subarray(from, to), hit, hits);
              const want = patterns.flatMap((p, i) => {
                const q = lower(p);
                for (let k = whole.indexOf(q); k >= 0; k = whole.indexOf(q, k + 1)) {
                  const end = k + q.length;
                  if (end > from && end <= to) return [i];
                }
                return [];
              });
              expect(hits.toArray().sort((a, b) => a - b)).toEqual(want);
              from = to;
            }
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('MultiMatcher before its dense table', () => {
  it('marks what the dense table marks, also through states with many children (property)', () => {
    // patterns mostly after a '/' followed by one of 20 bytes: that state has more children than a list is
    // walked for (a row of its own), as the URI automaton's '/'
    const alphabet = [0x2f, 0x41, 0x61, 0x42, 0x00, ...Array.from({ length: 16 }, (_, i) => 0x30 + i)];
    const bytes = (min: number, max: number) =>
      fc
        .uint8Array({ minLength: min, maxLength: max, size: 'max' })
        .map((b) => b.map((x) => alphabet[x % alphabet.length]!));
    const pattern = fc.oneof(
      bytes(1, 6),
      bytes(0, 4).map((b) => Uint8Array.from([0x2f, ...b])),
    );
    let wide = 0;
    fc.assert(
      fc.property(
        fc.array(pattern, { minLength: 1, maxLength: 40, size: 'max' }),
        bytes(0, 400),
        (patterns, text) => {
          const dense = new MultiMatcher(patterns);
          const sparse = new MultiMatcher(patterns, undefined, { denseAfterBytesPerState: 1e9 });
          const jsSparse = new MultiMatcher(patterns, undefined, {
            denseAfterBytesPerState: 1e9,
            wasm: false,
          });
          if ((sparse as unknown as { wide: Int32Array }).wide.length > 256) wide++;
          const marks = (m: MultiMatcher) => {
            const hit = new Uint8Array(patterns.length);
            const hits = new IdList(0);
            const end = m.scanFrom(0, text, hit, hits);
            return { ids: hits.toArray().sort((a, b) => a - b), end };
          };
          const want = marks(dense);
          expect(marks(sparse)).toEqual(want);
          expect(marks(jsSparse)).toEqual(want);
          const t = lower(text);
          expect(want.ids).toEqual(patterns.flatMap((p, i) => (t.includes(lower(p)) ? [i] : [])));
        },
      ),
      { numRuns: 300 },
    );
    expect(wide).toBeGreaterThan(30); // states with rows of their own were walked
  });
});

describe('MultiMatcher in WebAssembly', () => {
  const bytes = bytesOf([0x41, 0x61, 0x42, 0x62, 0x00, 0xff, 0x5a, 0x7a]);
  const sorted = (l: IdList) => l.toArray().sort((a, b) => a - b);

  it('marks and resumes as the scan in JavaScript, in one lane, two and four (property over sets, texts and cuts)', () => {
    fc.assert(
      fc.property(
        fc.array(bytes(1, 9), { minLength: 1, maxLength: 20 }),
        // up to 2,500 bytes: inputs of 256 and more are scanned as two halves at once, of 1,024 as quarters;
        // plants: patterns written to end a few bytes around a quarter or the middle of the whole text
        fc.array(
          fc.tuple(
            bytes(0, 2500),
            fc.array(fc.nat(2500), { maxLength: 4 }),
            fc.array(fc.tuple(fc.nat(), fc.nat(2), fc.integer({ min: -3, max: 3 })), { maxLength: 4 }),
          ),
          { maxLength: 4 },
        ),
        (patterns, texts) => {
          // the lanes (the search, on by default for some of these sets, has its own property below)
          const w = new MultiMatcher(patterns, undefined, { skipCostMax: 0 });
          const js = new MultiMatcher(patterns, undefined, { wasm: false });
          expect(w.inWasm, 'build/scan.wasm is built by `npm run build`').toBe(true);
          expect(w.searching).toBe(false);
          expect(js.inWasm).toBe(false);
          // one matcher for every text: a scan's marks must not leak into the next
          for (const [text, cuts, plants] of texts) {
            const t = Uint8Array.from(text);
            for (const [i, edge, off] of plants) {
              const p = patterns[i % patterns.length]!;
              const end = [t.length >> 2, t.length >> 1, 3 * (t.length >> 2)][edge]! + off;
              if (end - p.length + 1 >= 0 && end < t.length) t.set(p, end - p.length + 1);
            }
            const at = [...new Set(cuts.map((c) => c % (t.length + 1)))].sort((a, b) => a - b);
            let sw = 0;
            let sj = 0;
            let from = 0;
            for (const to of [...at, t.length]) {
              const piece = t.subarray(from, to);
              const hw = new Uint8Array(patterns.length);
              const hj = new Uint8Array(patterns.length);
              const lw = new IdList(0);
              const lj = new IdList(0);
              sw = w.scanFrom(sw, piece, hw, lw);
              sj = js.scanFrom(sj, piece, hj, lj);
              expect(sorted(lw)).toEqual(sorted(lj));
              expect([...hw]).toEqual([...hj]);
              expect(sw).toBe(sj);
              from = to;
            }
            const hit = new Uint8Array(patterns.length);
            w.scan(t, hit, new IdList(0));
            for (const [i, p] of patterns.entries()) expect(hit[i] === 1).toBe(lower(t).includes(lower(p)));
          }
        },
      ),
      // no shrinking: shrinking texts of thousands of bytes takes minutes
      { numRuns: 300, endOnFailure: true },
    );
  });

  it('resumes in any state, its row built or not, as the scan in JavaScript (property, lanes and search)', () => {
    fc.assert(
      fc.property(
        fc.array(bytes(1, 9), { minLength: 1, maxLength: 20 }),
        fc.array(fc.tuple(fc.nat(), bytes(0, 1500)), { minLength: 1, maxLength: 6 }),
        fc.constantFrom(0, Number.POSITIVE_INFINITY),
        (patterns, scans, skipCostMax) => {
          const w = new MultiMatcher(patterns, undefined, { skipCostMax });
          const js = new MultiMatcher(patterns, undefined, { wasm: false });
          for (const [k, text] of scans) {
            const from = k % w.states;
            const hw = new Uint8Array(patterns.length);
            const hj = new Uint8Array(patterns.length);
            const lw = new IdList(0);
            const lj = new IdList(0);
            expect(w.scanFrom(from, text, hw, lw)).toBe(js.scanFrom(from, text, hj, lj));
            expect(sorted(lw)).toEqual(sorted(lj));
          }
        },
      ),
      { numRuns: 300, endOnFailure: true },
    );
  });

  it('lanes: a match ending anywhere around a lane boundary, and one begun in the previous piece', () => {
    const patterns = ['abcdefghi', 'xyz', 'k'].map((w) => new Uint8Array(Buffer.from(w, 'latin1')));
    // (no search: these three patterns would have it by default, and it goes to the lanes only where
    // places to look at come thick)
    const m = new MultiMatcher(patterns, undefined, { skipCostMax: 0 });
    expect([m.inWasm, m.searching]).toEqual([true, false]);
    // one lane below 256 bytes, two halves below 1,024, four quarters from there
    for (const size of [255, 256, 257, 300, 301, 1023, 1024, 1025, 1030, 1031]) {
      const q = size >> 2;
      // (and the last bytes: past four quarters, one to three bytes are the last lane's)
      for (const edge of [q, size >> 1, 2 * q, 3 * q, size - 1])
        for (const [id, p] of patterns.entries())
          for (let end = edge - 12; end <= edge + 12 && end < size; end++) {
            const t = new Uint8Array(size).fill(0x2e);
            t.set(p, end - p.length + 1);
            const hits = new IdList(0);
            m.scan(t, new Uint8Array(patterns.length), hits);
            expect(sorted(hits), `size ${size}, pattern ${id} ending at ${end}`).toEqual([id]);
          }
      // a pattern begun in the piece before a long one, and one cut by the end of the long one
      const t = new Uint8Array(size + 9).fill(0x2e);
      t.set(patterns[0]!, 0);
      t.set(patterns[0]!, size);
      const s = m.scanFrom(0, t.subarray(0, 4), new Uint8Array(patterns.length), new IdList(0));
      const long = new IdList(0);
      const s2 = m.scanFrom(s, t.subarray(4, size + 4), new Uint8Array(patterns.length), long);
      expect(sorted(long)).toEqual([0]);
      const rest = new IdList(0);
      m.scanFrom(s2, t.subarray(size + 4), new Uint8Array(patterns.length), rest);
      expect(sorted(rest)).toEqual([0]);
    }
  });

  it('finds patterns past the memory it starts with, at both ends and across the middle of a long input', () => {
    const patterns = ['needle', 'Zz', 'q', 'tail end', 'middle'].map(
      (w) => new Uint8Array(Buffer.from(w, 'latin1')),
    );
    const m = new MultiMatcher(patterns);
    expect(m.inWasm).toBe(true);
    for (const size of [100, 70_000, 300_000, 1_000]) {
      const t = new Uint8Array(size).fill(0x2e);
      t.set(Buffer.from('NEEDLE'), 0);
      t.set(Buffer.from('tail END'), size - 8);
      t.set(Buffer.from('miDDle'), (size >> 1) - 3); // across the halves
      t[size >> 2] = 0x51; // Q
      const hits = new IdList(0);
      m.scan(t, new Uint8Array(patterns.length), hits);
      expect(sorted(hits)).toEqual([0, 2, 3, 4]);
      // resumed: a pattern cut by the end of the previous piece
      const s = m.scanFrom(0, t.subarray(0, size - 4), new Uint8Array(patterns.length), new IdList(0));
      const rest = new IdList(0);
      m.scanFrom(s, t.subarray(size - 4), new Uint8Array(patterns.length), rest);
      expect(sorted(rest)).toEqual([3]);
    }
  });

  it('builds a row of its table only for the root and the states its scans reach', () => {
    // 500 patterns of 12 letters: 4,000-6,000 states, most of them deep in one pattern
    let seed = 7;
    const letter = () => {
      seed = (seed * 1103515245 + 12345) >>> 0;
      return 0x61 + ((seed >>> 16) % 26);
    };
    const patterns = Array.from({ length: 500 }, () => Uint8Array.from({ length: 12 }, letter));
    for (const skipCostMax of [0, Number.POSITIVE_INFINITY]) {
      const m = new MultiMatcher(patterns, undefined, { skipCostMax });
      expect(m.states).toBeGreaterThan(4000);
      expect(m.rowsBuilt).toBe(1);
      const hit = new Uint8Array(patterns.length);
      // a text of bytes no pattern holds reaches the root only
      m.scan(new Uint8Array(3000).fill(0x2e), hit, new IdList(0));
      expect(m.rowsBuilt).toBe(1);
      // one pattern in it: the states along it and the fail states of theirs (each at most as deep)
      const t = new Uint8Array(3000).fill(0x2e);
      t.set(patterns[42]!, 1500);
      const hits = new IdList(0);
      m.scan(t, hit, hits);
      expect(hits.toArray()).toContain(42);
      expect(m.rowsBuilt).toBeGreaterThan(12);
      expect(m.rowsBuilt).toBeLessThanOrEqual(1 + 12 * 13);
      // the JavaScript table has them all
      const js = new MultiMatcher(patterns, undefined, { wasm: false });
      expect(js.rowsBuilt).toBe(js.states);
    }
  });

  it('resumed deep in a long pattern, builds the rows of its whole fail chain first (no recursion to overflow)', () => {
    // 'aaa...': each state's fail state is the one before it, so resuming in state 59,990 builds 59,990 rows
    const m = new MultiMatcher([new Uint8Array(60_000).fill(0x61)], undefined, { skipCostMax: 0 });
    expect(m.inWasm).toBe(true);
    const hits = new IdList(0);
    expect(m.scanFrom(59_990, new Uint8Array(20).fill(0x61), new Uint8Array(1), hits)).toBe(60_000);
    expect(hits.toArray()).toEqual([0]);
    expect(m.rowsBuilt).toBe(60_001);
  });

  it('falls back to the scan in JavaScript when build/scan.wasm cannot be read, marking the same', async () => {
    await withoutScanWasm(async () => {
      const fresh = await import('../src/prefilter.js');
      const { WasmScan, wasmScanAvailable } = await import('../src/scan-wasm.js');
      expect(wasmScanAvailable()).toBe(false);
      expect(() => new WasmScan(1, 1)).toThrow(/build\/scan\.wasm is missing/);
      const patterns = ['abcdefghi', 'xyz', 'k', 'Zz'].map((w) => new Uint8Array(Buffer.from(w, 'latin1')));
      const fallback = new fresh.MultiMatcher(patterns);
      expect(fallback.inWasm).toBe(false);
      const m = new MultiMatcher(patterns);
      expect(m.inWasm).toBe(true);
      for (const size of [10, 300, 1030, 5000]) {
        const t = new Uint8Array(size).fill(0x2e);
        t.set(Buffer.from('ABCDEFGHI'), (size >> 1) - 4);
        t.set(Buffer.from('zz'), size - 2);
        const want = new IdList(0);
        const sw = m.scanFrom(0, t.subarray(0, size - 1), new Uint8Array(patterns.length), want);
        const got = new fresh.IdList(0);
        const sf = fallback.scanFrom(0, t.subarray(0, size - 1), new Uint8Array(patterns.length), got);
        expect(sorted(got)).toEqual(sorted(want));
        expect(sf).toBe(sw);
        const rest = new fresh.IdList(0);
        fallback.scanFrom(sf, t.subarray(size - 1), new Uint8Array(patterns.length), rest);
        expect(sorted(rest)).toEqual([3]);
      }
    });
  });
});

describe('MultiMatcher searching for where patterns start', () => {
  // bytes of both cases and of both halves of the byte range (the vector search splits each byte into
  // nibbles and treats bytes from 0x80 apart); 0x2e, the filler, is in no pattern
  const alphabet = [0x41, 0x61, 0x42, 0x62, 0x00, 0xff, 0x5a, 0x7a, 0x80, 0x8f, 0xf0, 0x0f];
  const bytes = bytesOf(alphabet);
  // texts mostly of filler (long stretches the search passes over) or not at all (the search gives up)
  const text = fc
    .tuple(fc.constantFrom(0, 0.02, 0.2, 1), fc.uint8Array({ maxLength: 2500, size: 'max' }))
    .map(([dense, b]) =>
      b.map((x, i) => (((x * 7 + i) % 1000) / 1000 < dense ? alphabet[x % alphabet.length]! : 0x2e)),
    );
  const sorted = (l: IdList) => l.toArray().sort((a, b) => a - b);
  const ascii = (w: string) => new Uint8Array(Buffer.from(w, 'latin1'));

  it('marks and resumes as the scan in JavaScript and the lanes (property over sets, texts, plants and cuts)', () => {
    fc.assert(
      fc.property(
        fc.array(bytes(1, 6), { minLength: 1, maxLength: 16 }),
        fc.array(
          fc.tuple(
            text,
            fc.array(fc.nat(2500), { maxLength: 4 }),
            // patterns planted to end at or around a vector's edge (16 and 32 positions a turn), or anywhere
            fc.array(fc.tuple(fc.nat(), fc.nat(2600), fc.boolean()), { maxLength: 6 }),
          ),
          { maxLength: 4 },
        ),
        (patterns, texts) => {
          const search = new MultiMatcher(patterns, undefined, { skipCostMax: Number.POSITIVE_INFINITY });
          const lanes = new MultiMatcher(patterns, undefined, { skipCostMax: 0 });
          const js = new MultiMatcher(patterns, undefined, { wasm: false });
          expect(search.searching).toBe(true);
          expect(lanes.searching).toBe(false);
          for (const [t0, cuts, plants] of texts) {
            const t = Uint8Array.from(t0);
            for (const [i, at, edge] of plants) {
              const p = patterns[i % patterns.length]!;
              const end = edge ? (at & ~15) + ((at % 3) - 1) : at;
              if (end - p.length + 1 >= 0 && end < t.length) t.set(p, end - p.length + 1);
            }
            const at = [...new Set(cuts.map((c) => c % (t.length + 1)))].sort((a, b) => a - b);
            let ss = 0;
            let sl = 0;
            let sj = 0;
            let from = 0;
            for (const to of [...at, t.length]) {
              const piece = t.subarray(from, to);
              const got = [search, lanes, js].map((m, k) => {
                const hit = new Uint8Array(patterns.length);
                const list = new IdList(0);
                const s = m.scanFrom([ss, sl, sj][k]!, piece, hit, list);
                return { s, list: sorted(list), hit: [...hit] };
              });
              expect(got[0]).toEqual(got[2]);
              expect(got[1]).toEqual(got[2]);
              [ss, sl, sj] = got.map((g) => g.s) as [number, number, number];
              from = to;
            }
          }
        },
      ),
      { numRuns: 400, endOnFailure: true },
    );
  });

  it('runs the automaton only near the patterns in a text of filler, and finds them at every vector edge', () => {
    const patterns = ['needle', 'Zq', 'q\xff\x80'].map(ascii);
    const m = new MultiMatcher(patterns);
    expect(m.searching).toBe(true); // by default: 3 groups that random text seldom passes
    for (const size of [17, 31, 32, 33, 48, 64, 65, 1000, 4096]) {
      for (const [id, p] of patterns.entries())
        for (const end of [p.length - 1, 15, 16, 17, 31, 32, 33, size - 17, size - 16, size - 2, size - 1]) {
          if (end - p.length + 1 < 0 || end >= size) continue;
          const t = new Uint8Array(size).fill(0x2e);
          t.set(p, end - p.length + 1);
          const hits = new IdList(0);
          m.scanFrom(0, t, new Uint8Array(patterns.length), hits);
          expect(sorted(hits), `size ${size}, pattern ${id} ending at ${end}`).toEqual([id]);
          expect(m.searchCounts.entries).toBe(1);
          // a pattern cut by the end of a piece: the state carries it into the next
          if (end === size - 1) {
            const cut = t.subarray(0, size - 1);
            const rest = new IdList(0);
            const s1 = m.scanFrom(0, cut, new Uint8Array(patterns.length), new IdList(0));
            m.scanFrom(s1, t.subarray(size - 1), new Uint8Array(patterns.length), rest);
            expect(sorted(rest)).toEqual([id]);
          }
        }
    }
  });

  it('leaves a one-byte pattern out of the search once it is found, not the pairs that begin with its byte', () => {
    const patterns = ['q', 'qz', 'needle'].map(ascii);
    const m = new MultiMatcher(patterns);
    expect(m.searching).toBe(true);
    const t = new Uint8Array(4096).fill(0x2e);
    for (let i = 100; i < 4000; i += 50) t[i] = 0x51; // Q
    t.set(ascii('QZ'), 4050);
    const hits = new IdList(0);
    m.scan(t, new Uint8Array(patterns.length), hits);
    expect(sorted(hits)).toEqual([0, 1]);
    // the first Q and the pair, where the 78 Qs would each have been looked at
    expect(m.searchCounts).toEqual({ entries: 2, checks: 2 });
    // so too with more groups than the search holds (8): the one-byte pattern's group is merged last
    const more = [...patterns, ...['ab', 'cd', 'ef', 'gh', 'ij', 'kl', 'mn', 'op'].map(ascii)];
    const m2 = new MultiMatcher(more);
    expect(m2.searching).toBe(true);
    m2.scan(t, new Uint8Array(more.length), new IdList(0));
    expect(m2.searchCounts).toEqual({ entries: 2, checks: 2 });
  });

  it('merges one-byte patterns into groups when there are more than 8, finding each of them', () => {
    const patterns = [...'abcdefghi'].map(ascii);
    const m = new MultiMatcher(patterns, undefined, { skipCostMax: Number.POSITIVE_INFINITY });
    expect(m.searching).toBe(true);
    for (const order of ['abcdefghi', 'ihgfedcba', 'aebfcgdhi', 'iaihbgcfde']) {
      const t = new Uint8Array(40 * order.length + 40).fill(0x2e);
      for (let k = 0; k < order.length; k++) t[40 * k + 20] = order.charCodeAt(k);
      const hits = new IdList(0);
      m.scan(t, new Uint8Array(patterns.length), hits);
      expect(sorted(hits), order).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8]);
    }
  });

  it('resumed inside a match, follows it until it is back at depth 1 or the root', () => {
    const patterns = ['abcd', 'bcx', 'needle'].map(ascii);
    const m = new MultiMatcher(patterns);
    expect(m.searching).toBe(true);
    for (const [first, second, want] of [
      ['....a', 'bcd....', [0]],
      ['....ab', 'cd....', [0]],
      ['....abc', 'd' + '.'.repeat(40), [0]],
      ['....a', 'bcx' + '.'.repeat(40), [1]],
      ['....a', 'a' + 'bcd' + '.'.repeat(40), [0]],
    ] as const) {
      const s = m.scanFrom(0, ascii(first), new Uint8Array(patterns.length), new IdList(0));
      const hits = new IdList(0);
      m.scanFrom(s, ascii(second), new Uint8Array(patterns.length), hits);
      expect(sorted(hits), `${first} | ${second}`).toEqual(want);
    }
  });

  it('goes on as the lanes where the places to look at come thick, finding what follows', () => {
    const patterns = ['aaab', 'zz'].map(ascii);
    const m = new MultiMatcher(patterns);
    expect(m.searching).toBe(true);
    for (const size of [100, 1000, 10_000]) {
      const t = new Uint8Array(size).fill(0x61); // every position begins "aa"
      t.set(ascii('zz'), size - 2);
      t.set(ascii('aaab'), size >> 1);
      const hits = new IdList(0);
      const s = m.scanFrom(0, t, new Uint8Array(patterns.length), hits);
      expect(sorted(hits)).toEqual([0, 1]);
      const c = m.searchCounts;
      expect(c.entries + c.checks, `size ${size}`).toBeLessThan(40);
      const js = new MultiMatcher(patterns, undefined, { wasm: false });
      expect(s).toBe(js.scanFrom(0, t, new Uint8Array(patterns.length), new IdList(0)));
    }
  });

  it('searches only where the groups would pass few positions of random text (skipCostMax)', () => {
    expect(new MultiMatcher(['needle', 'haystack'].map(ascii)).searching).toBe(true);
    expect(new MultiMatcher(['needle'].map(ascii), undefined, { skipCostMax: 0 }).searching).toBe(false);
    // 40 first bytes, 4 second bytes after each: 8 groups of them would pass a share of random pairs past
    // the default 0.05 (Infinity admits any share)
    const forty = Array.from({ length: 160 }, (_, j) =>
      Uint8Array.of((j % 40) * 6, ((j % 40) * 37 + Math.floor(j / 40) * 101 + 7) & 255, 0x2e),
    );
    expect(new MultiMatcher(forty).searching).toBe(false);
    const all = { skipCostMax: Number.POSITIVE_INFINITY };
    expect(new MultiMatcher(forty, undefined, all).searching).toBe(true);
    // 90 groups: more than are merged (48)
    const many = Array.from({ length: 90 }, (_, i) => Uint8Array.of(0x80 + i, i, 0x41 + (i % 26)));
    expect(new MultiMatcher(many, undefined, all).searching).toBe(false);
    // and no search without WebAssembly
    expect(new MultiMatcher(['needle'].map(ascii), undefined, { wasm: false }).searching).toBe(false);
  });
});

describe('Engine prefilter', () => {
  it('gives the same alerts with and without it, and with the all-strings stage (property over rules and payloads)', () => {
    const alphabet = 'abAB|:';
    const word = fc.string({ unit: fc.constantFrom(...alphabet.split('')), minLength: 1, maxLength: 4 });
    const rule = fc.tuple(word, fc.boolean(), fc.option(word), fc.boolean());
    let alerts = 0;
    fc.assert(
      fc.property(
        fc.array(rule, { minLength: 1, maxLength: 12 }),
        fc.array(fc.string({ unit: fc.constantFrom(...alphabet.split('')), maxLength: 40 }), {
          maxLength: 12,
        }),
        (specs, payloads) => {
          const text = specs
            .map(([a, nocase, b, neg], i) => {
              const c1 = `content:"${a.replace(/[|:"]/g, 'x')}";${nocase ? ' nocase;' : ''}`;
              const c2 = b === null ? '' : ` content:${neg ? '!' : ''}"${b.replace(/[|:"]/g, 'x')}";`;
              return `alert udp any any -> any any (msg:"r${i}"; ${c1}${c2} sid:${1000 + i};)`;
            })
            .join('\n');
          const { rules } = parseRules(text, 'gen');
          const run = (prefilter: boolean, allStrings = false) => {
            const e = new Engine(rules, { prefilter, allStrings });
            return payloads.flatMap((p, i) =>
              e
                .inspect(pkt({ proto: 17, sp: 1000 + i, dp: 53, payload: p }), i * 1000, i + 1)
                .map((a) => `${a.pcapCnt}:${a.sid}`),
            );
          };
          alerts += samePrefiltered(run).length;
        },
      ),
      { numRuns: 200 },
    );
    expect(alerts).toBeGreaterThan(100); // the comparison is not vacuous
  });

  it('visits over 64 candidates from several patterns in rule order (a pass first ends them)', () => {
    const alerts = Array.from(
      { length: 70 },
      (_, i) => `alert udp any any -> any any (content:"aaa"; sid:${100 + i};)`,
    );
    const pass = 'pass udp any any -> any any (content:"bbb"; sid:1;)';
    const { rules } = parseRules([pass, ...alerts].join('\n'), 'gen');
    // "aaa" is marked before "bbb": the pass rule's list comes last and must be sorted to the front
    const e = new Engine(rules);
    expect(e.inspect(pkt({ proto: 17, sp: 1000, dp: 53, payload: 'aaa bbb' }), 0, 1)).toEqual([]);
    expect(e.stats.rulesEvaluated).toBe(1);
    const got = e.inspect(pkt({ proto: 17, sp: 1001, dp: 53, payload: 'aaa' }), 1000, 2);
    expect(got.map((a) => a.sid)).toEqual(alerts.map((_, i) => 100 + i));
  });
});

describe('Engine port groups', () => {
  it('give the same alerts, in the same order, as one group of every rule (property over ports and actions)', () => {
    const ports = [
      'any',
      '53',
      '80',
      '[53,80]',
      '!53',
      '1024:',
      ':100',
      '$HTTP_PORTS',
      '2000:2001',
      '[49:51,!50]',
    ];
    const rule = fc.tuple(
      fc.constantFrom('alert', 'alert', 'pass', 'drop'),
      fc.constantFrom('udp', 'tcp', 'ip'),
      fc.constantFrom(...ports),
      fc.constantFrom('->', '<>'),
      fc.constantFrom(...ports),
      fc.constantFrom('a', 'b', 'ab', ''),
    );
    // ports on and around the rules' port edges: flows whose ports share a region (Engine.portRegion) get
    // their group from the memo, which must be the group their ports' tests give
    const port = fc.constantFrom(53, 80, 2000, 50, 49, 52, 54, 100, 101, 1023, 1024, 2001, 2002, 8080);
    const packet = fc.tuple(fc.constantFrom(17, 6), port, port);
    let alerts = 0;
    fc.assert(
      fc.property(
        fc.array(rule, { minLength: 1, maxLength: 16 }),
        fc.array(fc.tuple(packet, fc.constantFrom('a', 'b', 'ab', 'x')), { maxLength: 16 }),
        (specs, packets) => {
          const text = specs
            .map(
              ([action, proto, sp, dir, dp, content], i) =>
                `${action} ${proto} any ${sp} ${dir} any ${dp} (${content ? `content:"${content}"; ` : ''}sid:${i + 1};)`,
            )
            .join('\n');
          const { rules } = parseRules(text, 'gen');
          const run = (portGroups: boolean, collide = false, shared = false, ownAfter?: number) => {
            const e = new Engine(rules, { portGroups, ips: true });
            // the groups' own automata (one per kind of scan) from the first byte, or after a few packets
            if (ownAfter !== undefined) {
              const own = portGroupsOf(e);
              own.groupOwnAfterBytes = ownAfter;
              own.kindOwnAfterBytes = ownAfter;
            }
            // every port group's class list hashed alike: the lists themselves must tell the groups apart
            if (collide) portGroupsOf(e).portGroupHashMask = 0;
            // the groups' own automata at their bound: every group scans with the shared one
            if (shared) portGroupsOf(e).groupStates = 1 << 30;
            return packets.flatMap(([[proto, sp, dp], payload], i) => {
              const a = e.inspect(pkt({ proto, sp, dp, payload }), i * 1000, i + 1);
              return [
                ...a.map((x) => `${x.pcapCnt}:${x.sid}`),
                `${i + 1}:${e.verdict.drop ? 'drop' : 'pass'}`,
              ];
            });
          };
          const on = samePrefiltered(run);
          alerts += on.filter((x) => !x.endsWith('pass') && !x.endsWith('drop')).length;
          expect(run(true, false, true)).toEqual(on);
          expect(run(true, false, false, 0)).toEqual(on);
          expect(run(true, false, false, 3)).toEqual(on);
        },
      ),
      { numRuns: 300 },
    );
    expect(alerts).toBeGreaterThan(100); // the comparison is not vacuous
  });

  it('counts the rules a packet and its stream data spare in one group, each kind of inspection its own', () => {
    const { rules } = parseRules(
      [
        'alert tcp any any -> any 80 (content:"zzz"; sid:1;)',
        'alert tcp any any -> any 80 (flags:A+; content:"yyy"; sid:2;)',
        'alert tcp any any -> any 80 (dsize:>0; content:"xxx"; sid:3;)',
      ].join('\n'),
      'gen',
    );
    const e = new Engine(rules, { streamRelease: 'immediate' });
    handshake().forEach((p, i) => void e.inspect(p, i, i + 1));
    for (let i = 0; i < 3; i++) {
      const before = e.stats.rulesPrefiltered;
      e.inspect(pkt({ flags: ACK | PSH, seq: 1001 + 5 * i, ack: 5001, payload: 'hello' }), 10 + i, 10 + i);
      // the stream data spares sid 1 (the packet rules are not its), the packet sids 2 and 3 (sid 1 reads
      // the stream), with a group's entries for both kinds read in turn
      expect(e.stats.rulesPrefiltered - before).toBe(3);
    }
  });

  it('a flow consults only the rules its ports admit (fewer rules evaluated), each group built once', () => {
    const { rules } = parseRules(
      [
        'alert udp any any -> any 53 (content:"q"; sid:1;)',
        'alert udp any any -> any 123 (content:"q"; sid:2;)',
        'alert udp any any -> any any (content:"q"; sid:3;)',
      ].join('\n'),
      'gen',
    );
    const count = (portGroups: boolean) => {
      const e = new Engine(rules, { portGroups });
      const sids: number[] = [];
      for (let i = 0; i < 4; i++)
        sids.push(...e.inspect(pkt({ proto: 17, sp: 4000 + i, dp: 53, payload: 'q' }), i).map((a) => a.sid));
      // a payload without the pattern: the rules consulted are all spared by the prefilter
      for (let i = 0; i < 4; i++) e.inspect(pkt({ proto: 17, sp: 5000 + i, dp: 53, payload: 'z' }), 10 + i);
      // the stage counters: 8 inspections, the 4 with the pattern pass the prefilter and reach the matcher
      expect([
        e.stats.stageInspections,
        e.stats.stagePortGroupOut,
        e.stats.stagePrefilterOut,
        e.stats.stageAllStringsOut,
        e.stats.stageFullMatcherIn,
      ]).toEqual([8, 8, 4, 4, 4]);
      return { sids, consulted: e.stats.rulesPrefiltered, groups: e.stats.portGroups };
    };
    expect(count(true)).toEqual({ sids: [1, 3, 1, 3, 1, 3, 1, 3], consulted: 8, groups: 1 });
    expect(count(false)).toEqual({ sids: [1, 3, 1, 3, 1, 3, 1, 3], consulted: 12, groups: 0 });
    // past the bound on groups, flows consult every rule (and the alerts stay the same)
    const e = new Engine(rules, { portGroupsMax: 0 });
    const sids = e.inspect(pkt({ proto: 17, sp: 4000, dp: 53, payload: 'q' }), 0).map((a) => a.sid);
    e.inspect(pkt({ proto: 17, sp: 4001, dp: 123, payload: 'q' }), 1);
    expect({ sids, groups: e.stats.portGroups, refused: e.stats.portGroupsRefused }).toEqual({
      sids: [1, 3],
      groups: 0,
      refused: 2,
    });
  });
});

/** The alerts (`pcapCnt:sid`) of `segments` sent to port 80 after a handshake, each acknowledged. */
function streamAlerts(
  rules: ReturnType<typeof parseRules>['rules'],
  segments: string[],
  prefilter: boolean,
  streamRelease: 'ack' | 'immediate',
  ownAfter?: number,
): string[] {
  const e = new Engine(rules, { prefilter, streamRelease });
  // the bytes after which the port group moves to an automaton of its own (mid-stream, resumed from its root)
  if (ownAfter !== undefined) portGroupsOf(e).groupOwnAfterBytes = ownAfter;
  const out: string[] = [];
  const push = (a: Alert[]) => out.push(...a.map((x) => `${x.pcapCnt}:${x.sid}`));
  handshake().forEach((p, i) => void push(e.inspect(p, i, i + 1)));
  let seq = 1001;
  segments.forEach((p, i) => {
    push(e.inspect(pkt({ flags: ACK | PSH, seq, ack: 5001, payload: p }), 10 + i, 10 + 2 * i));
    seq += p.length;
    push(
      e.inspect(
        pkt({ src: '10.0.0.2', dst: '10.0.0.1', sp: 80, dp: 40000, flags: ACK, seq: 5001, ack: seq }),
        10 + i,
        11 + 2 * i,
      ),
    );
  });
  push(e.finish());
  return out;
}

/**
 * `text` cut into segments of the lengths `cuts` (the rest as one more): checks that `streamAlerts` gives
 * the same alerts with the prefilter as without it; returns how many.
 */
function sameStreamAlerts(
  rules: ReturnType<typeof parseRules>['rules'],
  text: string,
  cuts: number[],
  streamRelease: 'ack' | 'immediate',
  ownAfter?: number,
): number {
  const segments: string[] = [];
  let at = 0;
  for (const c of cuts) {
    if (at >= text.length) break;
    segments.push(text.slice(at, at + c));
    at += c;
  }
  if (at < text.length) segments.push(text.slice(at));
  const on = streamAlerts(rules, segments, true, streamRelease, ownAfter);
  expect(on).toEqual(streamAlerts(rules, segments, false, streamRelease));
  return on.length;
}

describe('Engine stream prefilter', () => {
  it('resumed across deliveries, gives the alerts of no prefilter (property over rules, streams and cuts)', () => {
    const alphabet = 'abAB';
    const word = fc.string({ unit: fc.constantFrom(...alphabet.split('')), minLength: 1, maxLength: 3 });
    let alerts = 0;
    fc.assert(
      fc.property(
        fc.array(fc.tuple(word, fc.option(word), fc.boolean()), { minLength: 1, maxLength: 8 }),
        // words far apart in filler, so a rule's contents often lie in different deliveries
        fc
          .array(
            fc.oneof(
              word,
              fc.integer({ min: 1, max: 3000 }).map((n) => 'z'.repeat(n)),
            ),
            {
              minLength: 1,
              maxLength: 14,
            },
          )
          .map((parts) => parts.join('')),
        // cuts: many small ones (words split between deliveries) and some large ones (the window slides)
        fc.array(fc.oneof(fc.integer({ min: 1, max: 5 }), fc.integer({ min: 1, max: 3000 })), {
          minLength: 1,
          maxLength: 40,
        }),
        fc.constantFrom<'ack' | 'immediate'>('ack', 'immediate'),
        fc.integer({ min: 0, max: 6000 }),
        (specs, text, cuts, streamRelease, ownAfter) => {
          // stream rules: a content, maybe a second one after it (relative), maybe nocase
          const ruleText = specs
            .map(([a, b, nocase], i) => {
              const n = nocase ? ' nocase;' : '';
              const second = b === null ? '' : ` content:"${b}"; distance:0;${n}`;
              return `alert tcp any any -> any 80 (flow:to_server,established; content:"${a}";${n}${second} sid:${3000 + i};)`;
            })
            .join('\n');
          const { rules } = parseRules(ruleText, 'gen');
          alerts += sameStreamAlerts(rules, text, cuts, streamRelease, ownAfter);
        },
      ),
      { numRuns: 120 },
    );
    expect(alerts).toBeGreaterThan(100);
  });

  it('a port group moving to its own automaton mid-stream finds the patterns that straddle that delivery', () => {
    // rules on another port give the shared automaton other states than the group's own
    const { rules } = parseRules(
      [
        'alert tcp any any -> any 80 (flow:to_server,established; content:"ab"; sid:1;)',
        'alert tcp any any -> any 80 (flow:to_server,established; content:"bcd"; nocase; sid:2;)',
        'alert tcp any any -> any 81 (content:"zb"; sid:3;)',
        'alert tcp any any -> any 81 (content:"azzb"; sid:4;)',
        'alert tcp any any -> any 81 (content:"bzc"; sid:5;)',
      ].join('\n'),
      'gen',
    );
    const text = 'zazabzzBcDzzabcd';
    let alerts = 0;
    for (const streamRelease of ['ack', 'immediate'] as const)
      for (let cut = 1; cut < text.length; cut++)
        for (let cut2 = cut + 1; cut2 <= text.length; cut2++)
          // the group moves at the second delivery, or at the third
          for (const ownAfter of [cut + 1, cut2 + 1]) {
            const segments = [text.slice(0, cut), text.slice(cut, cut2), text.slice(cut2)].filter((x) => x);
            const on = streamAlerts(rules, segments, true, streamRelease, ownAfter);
            expect(on).toEqual(streamAlerts(rules, segments, false, streamRelease));
            alerts += on.length;
          }
    expect(alerts).toBeGreaterThan(300);
  });

  it('remembers many patterns across deliveries, each found again or slid out of the window (property)', () => {
    // 40 rules of two contents each, the second only after the first (distance): a delivery may hold the
    // second while the first is earlier in the window, so the patterns earlier scans found must be marked
    // again; more patterns than the list of found patterns starts with (16), some found again and again
    const words = Array.from({ length: 40 }, (_, i) => `w${String.fromCharCode(97 + (i % 26))}${i}q`);
    const ruleText = words
      .map(
        (w, i) =>
          `alert tcp any any -> any 80 (flow:to_server,established; content:"${w}"; content:"!${i}!"; distance:0; sid:${5000 + i};)`,
      )
      .join('\n');
    const { rules } = parseRules(ruleText, 'gen');
    // the list grows (16 -> 32) while it holds earlier finds: ten words, ten more, then the first ten's
    // second contents, whose rules the kept finds alone send on
    const first = words.slice(0, 10).join(' ');
    const more = words.slice(10, 20).join(' ');
    const seconds = words
      .slice(0, 10)
      .map((_, i) => `!${i}!`)
      .join(' ');
    for (const release of ['ack', 'immediate'] as const)
      expect(
        sameStreamAlerts(rules, `${first} ${more} ${seconds}`, [first.length + 1, more.length + 1], release),
      ).toBe(10);
    let alerts = 0;
    fc.assert(
      fc.property(
        fc.array(
          fc.oneof(
            // a rule's two contents, up to a window apart
            fc
              .tuple(fc.integer({ min: 0, max: 39 }), fc.integer({ min: 0, max: 4000 }))
              .map(([i, n]) => `${words[i]}${'z'.repeat(n)}!${i}!`),
            fc.integer({ min: 0, max: 39 }).map((i) => words[i]!),
            fc.integer({ min: 0, max: 39 }).map((i) => `!${i}!`),
            fc.integer({ min: 1, max: 2500 }).map((n) => 'z'.repeat(n)),
          ),
          { minLength: 1, maxLength: 80 },
        ),
        fc.array(fc.integer({ min: 1, max: 1500 }), { minLength: 1, maxLength: 40 }),
        fc.constantFrom<'ack' | 'immediate'>('ack', 'immediate'),
        (parts, cuts, streamRelease) => {
          alerts += sameStreamAlerts(rules, parts.join(''), cuts, streamRelease);
        },
      ),
      { numRuns: 80 },
    );
    expect(alerts).toBeGreaterThan(30);
  });
});

describe('Engine all-strings stage', () => {
  it('sends a rule on only when every one of its contents is present', () => {
    const { rules } = parseRules(
      [
        'alert udp any any -> any any (content:"needle"; fast_pattern; content:"hay"; content:"stack"; sid:1;)',
        'alert udp any any -> any any (content:"needle"; content:!"absent"; sid:2;)',
      ].join('\n'),
      'gen',
    );
    const e = new Engine(rules, { allStrings: true });
    const sids = (payload: string, i: number) =>
      e.inspect(pkt({ proto: 17, sp: 4000 + i, dp: 53, payload }), i).map((a) => a.sid);
    // the fast pattern without "hay": rule 1 stops at stage 3, rule 2 (a negated content only) goes on
    expect(sids('a needle and a stack', 0)).toEqual([2]);
    expect([e.stats.stagePrefilterOut, e.stats.stageAllStringsOut, e.stats.rulesAllStringsFiltered]).toEqual([
      1, 1, 1,
    ]);
    // every content present, in any order: rule 1 goes on; in another case it passes stage 3 too (the
    // automaton folds case) and the full matcher, which does not, decides
    expect(sids('stack hay needle', 1)).toEqual([1, 2]);
    expect(sids('Hay stack needle', 2)).toEqual([2]);
    expect(e.stats.rulesAllStringsFiltered).toBe(1);
    // nothing but the other strings: stage 2 stops both
    expect(sids('hay stack', 3)).toEqual([]);
    expect(e.stats.stagePrefilterOut).toBe(3);
  });
});

describe('Engine HTTP prefilter', () => {
  it('gives the same HTTP alerts with and without it (property over rules, buffers and requests)', () => {
    const alphabet = 'abAB';
    const word = (min: number) =>
      fc.string({ unit: fc.constantFrom(...alphabet.split('')), minLength: min, maxLength: 4 });
    const buffers = [
      'http_uri',
      'http_raw_uri',
      'http_header',
      'http_cookie',
      'http_client_body',
      'file_data',
    ];
    // a rule: one or two contents, each in a buffer, maybe nocase, negated or the fast pattern
    const content = fc.record({
      buffer: fc.constantFrom(...buffers),
      text: word(1),
      nocase: fc.boolean(),
      negated: fc.boolean(),
      fast: fc.boolean(),
    });
    // and a header: the port the requests go to or another (a buffer whose rules all fail their header is
    // not scanned; the others still are), and now and then a pass rule (its match ends the message's rules)
    const rule = fc.record({
      contents: fc.array(content, { minLength: 1, maxLength: 2 }),
      port: fc.constantFrom('80', '80', 'any', '81', '!80'),
      action: fc.constantFrom('alert', 'alert', 'alert', 'pass'),
    });
    const request = fc.record({ path: word(0), cookie: word(0), agent: word(0), body: word(0) });
    let alerts = 0;
    fc.assert(
      fc.property(
        fc.array(rule, { minLength: 1, maxLength: 10 }),
        fc.array(request, { minLength: 1, maxLength: 3 }),
        (specs, requests) => {
          const text = specs
            .map(({ contents, port, action }, i) => {
              let fastUsed = false;
              const opts = contents.map((c) => {
                const fast = c.fast && !c.negated && !fastUsed;
                fastUsed ||= fast;
                return `${c.buffer}; content:${c.negated ? '!' : ''}"${c.text}";${c.nocase ? ' nocase;' : ''}${fast ? ' fast_pattern;' : ''}`;
              });
              return `${action} tcp any any -> any ${port} (msg:"h${i}"; flow:to_server,established; ${opts.join(' ')} sid:${2000 + i};)`;
            })
            .join('\n');
          const { rules } = parseRules(text, 'gen');
          const run = (prefilter: boolean) => {
            const e = new Engine(rules, { prefilter });
            expect(e.skipped).toEqual([]);
            const out: string[] = [];
            requests.forEach((r, i) => {
              const C = { src: '10.0.0.1', dst: '10.0.0.2', sp: 40000 + i, dp: 80 };
              const req =
                `POST /${r.path} HTTP/1.1\r\nHost: h\r\nUser-Agent: ${r.agent}\r\nCookie: ${r.cookie}\r\n` +
                `Content-Length: ${r.body.length}\r\n\r\n${r.body}`;
              const ts = i * 100;
              for (const p of handshake(C.src, C.dst, C.sp, 80)) e.inspect(p, ts);
              const alertsOf = e.inspect(
                pkt({ ...C, flags: ACK | PSH, seq: 1001, ack: 5001, payload: req }),
                ts + 1,
              );
              alertsOf.push(
                ...e.inspect(pkt({ ...C, flags: ACK | FIN, seq: 1001 + req.length, ack: 5001 }), ts + 2),
              );
              out.push(...alertsOf.map((a) => `${i}:${a.sid}`));
            });
            out.push(...e.finish().map((a) => `end:${a.sid}`));
            return out;
          };
          const on = run(true);
          alerts += on.length;
          expect(on).toEqual(run(false));
        },
      ),
      { numRuns: 150 },
    );
    expect(alerts).toBeGreaterThan(50); // the comparison is not vacuous
  });
});

describe('Engine packet rules without a fast pattern', () => {
  const protos = [1, 6, 17, 47, 58];
  const option = fc.oneof(
    fc
      .tuple(fc.constantFrom('', '!', '<', '>'), fc.constantFrom(...protos))
      .map(([op, p]) => `ip_proto:${op}${p};`),
    fc.constantFrom('itype:8;', 'icode:0;', 'icmp_id:0;', 'icmp_seq:0;', 'flags:S;', 'flags:A+;'),
    fc.constantFrom('seq:0;', 'ack:0;', 'ttl:<65;', 'dsize:>2;', 'id:0;', 'fragbits:!D;'),
  );
  it('header tests that never pass on a protocol fail on each of its packets (property, against headerPass)', () => {
    let never = 0;
    let maybe = 0;
    fc.assert(
      fc.property(
        fc.array(option, { minLength: 1, maxLength: 4 }),
        fc.constantFrom(...protos),
        fc.integer({ min: 0, max: 255 }),
        fc.integer({ min: 0, max: 8 }),
        (opts, proto, flags, size) => {
          const { rules } = parseRules(`alert ip any any -> any any (${opts.join(' ')} sid:1;)`, 'gen');
          const header = new Engine(rules).compiled[0]!.header!;
          const d = pkt({ proto, flags, payload: 'x'.repeat(size) });
          if (proto === 1 || proto === 58) Object.assign(d, { icmpType: 8 });
          // with the TCP flags byte known (the always-rules list of a TCP packet is made per flags byte)
          if (neverPasses(header, proto, proto === 6 ? flags : -1)) {
            never++;
            expect(headerPass(header, d)).toBe(false);
          } else maybe++;
        },
      ),
      { numRuns: 400 },
    );
    expect(never).toBeGreaterThan(50);
    expect(maybe).toBeGreaterThan(50);
  });

  it('rules with TCP flags tests alert on exactly the packets whose flags pass them (property)', () => {
    const flagSpecs = ['S', 'SA', 'A+', 'R', '!R', 'F*', 'SF', 'PA', '0', 'A,12', 'U+'];
    let alerts = 0;
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.constantFrom(...flagSpecs), fc.boolean()), { minLength: 1, maxLength: 6 }),
        fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 1, maxLength: 12 }),
        (specs, packets) => {
          // a content-less rule first or not: the first rule a list admits stays in it whatever its tests
          const text = specs
            .map(
              ([f, ttl], i) =>
                `alert tcp any any -> any any (flags:${f};${ttl ? ' ttl:<65;' : ''} sid:${i + 1};)`,
            )
            .join('\n');
          const { rules } = parseRules(text, 'gen');
          const e = new Engine(rules);
          // the bound on lists reached after the second packet: the rest get their kind's list
          portGroupsOf(e).packetAlwaysListsMax = 2;
          packets.forEach((flags, i) => {
            const d = pkt({ sp: 1000 + i, flags, payload: 'x' });
            const want = e.compiled.filter((c) => headerPass(c.header!, d)).map((c) => c.rule.sid);
            const got = e.inspect(d, i, i + 1).map((a) => a.sid);
            expect(got.sort((x, y) => x - y)).toEqual(want.sort((x, y) => x - y));
            alerts += got.length;
          });
          // two lists per flags byte, then the kind's one (every packet here is of one kind: a new flow's)
          expect(portGroupsOf(e).packetAlwaysLists).toBeLessThanOrEqual(3);
        },
      ),
      { numRuns: 300 },
    );
    expect(alerts).toBeGreaterThan(100);
  });

  it('a packet whose rules all fail on its protocol still counts as past the prefilter stages', () => {
    const { rules } = parseRules(
      [
        'alert ip any any -> any any (ip_proto:17; sid:1;)',
        'alert ip any any -> any any (ip_proto:!6; dsize:>0; sid:2;)',
      ].join('\n'),
      'gen',
    );
    const e = new Engine(rules);
    const alerts = [pkt({ payload: 'ab' }), pkt({ proto: 17, payload: 'ab' })].map((p, i) =>
      e.inspect(p, i, i + 1).map((a) => a.sid),
    );
    expect(alerts).toEqual([[], [1, 2]]);
    // each inspection visited a rule without a fast pattern (the first admitted, whatever its tests)
    expect(e.stats.stageInspections).toBe(2);
    expect(e.stats.stagePrefilterOut).toBe(2);
    expect(e.stats.stageAllStringsOut).toBe(2);
  });
});

describe('Engine TCP packets of flows not established', () => {
  const flows = [
    '',
    'flow:established;',
    'flow:to_server,established;',
    'flow:to_client;',
    'flow:stateless;',
  ];
  it('give the alerts of no prefilter, in flows with and without a handshake (property over rules and flows)', () => {
    const rule = fc.tuple(
      fc.constantFrom('tcp', 'ip'),
      fc.constantFrom(...flows),
      fc.constantFrom('ab', 'b', 'ba', 'abc'),
      fc.constantFrom('', ' content:"c";', ' content:"x";'),
    );
    let alerts = 0;
    fc.assert(
      fc.property(
        fc.array(rule, { minLength: 1, maxLength: 10 }),
        fc.array(
          fc.tuple(
            fc.boolean(),
            fc.boolean(),
            fc.array(fc.constantFrom('ab', 'abc', 'x', 'ba'), { maxLength: 4 }),
          ),
          { minLength: 1, maxLength: 4 },
        ),
        (specs, convs) => {
          const text = specs
            .map(
              ([proto, flow, c, more], i) =>
                `alert ${proto} any any -> any any (${flow} content:"${c}";${more} sid:${i + 1};)`,
            )
            .join('\n');
          const { rules } = parseRules(text, 'gen');
          const run = (prefilter: boolean, allStrings = false) => {
            const e = new Engine(rules, { prefilter, allStrings });
            const out: string[] = [];
            let n = 0;
            convs.forEach(([withHandshake, badChecksum, payloads], k) => {
              const cp = 40000 + k;
              const packets = withHandshake ? handshake('10.0.0.1', '10.0.0.2', cp, 80) : [];
              let seq = 1001;
              for (const p of payloads) {
                packets.push(pkt({ sp: cp, flags: ACK | PSH, seq, ack: 5001, payload: p }));
                seq += p.length;
              }
              for (const p of packets) {
                n++;
                // a bad checksum: the packet is matched on its own, outside the stream
                const ok = !(badChecksum && p.payload.length > 0);
                out.push(...e.inspect(p, n * 1000, n, ok).map((a) => `${a.pcapCnt}:${a.sid}`));
              }
            });
            out.push(...e.finish().map((a) => `end:${a.sid}`));
            return out;
          };
          // (the stage that wants every content present: port groups' automata mark them too)
          alerts += samePrefiltered(run).length;
        },
      ),
      { numRuns: 300 },
    );
    expect(alerts).toBeGreaterThan(100); // the comparison is not vacuous
  });

  it('leave out the rules that need an established flow before the prefilter (stage 1)', () => {
    const { rules } = parseRules(
      [
        'alert tcp any any -> any any (flow:established; content:"evil"; sid:1;)',
        'alert tcp any any -> any any (content:"good"; sid:2;)',
      ].join('\n'),
      'gen',
    );
    const e = new Engine(rules);
    // no handshake seen: the flow is not established, sid 1 cannot match, and its pattern is not looked for
    const midstream = ['evil', 'good evil'].map((p, i) =>
      e.inspect(pkt({ flags: ACK | PSH, seq: 1 + 10 * i, payload: p }), i, i + 1).map((a) => a.sid),
    );
    expect(midstream).toEqual([[], [2]]);
    expect([e.stats.stageInspections, e.stats.stagePrefilterOut, e.stats.rulesPrefiltered]).toEqual([
      2, 1, 1,
    ]);
    // an established flow's packet outside its stream (a bad checksum) still consults sid 1
    const f = new Engine(rules);
    for (const [i, p] of handshake().entries()) f.inspect(p, i, i + 1);
    const bad = pkt({ flags: ACK | PSH, seq: 1001, ack: 5001, payload: 'evil' });
    expect(f.inspect(bad, 10, 4, false).map((a) => a.sid)).toEqual([1]);
  });
});

/** The bounds of an engine's port groups that tests lower (private fields, read by name: checked here). */
interface GroupBounds {
  groupOwnAfterBytes: number;
  kindOwnAfterBytes: number;
  portGroupHashMask: number;
  groupStates: number;
  packetAlwaysListsMax: number;
  packetAlwaysLists: number;
}

function portGroupsOf(e: Engine): GroupBounds {
  const g = (e as unknown as { groups: GroupBounds }).groups;
  // a renamed field would leave a test setting a property nothing reads
  for (const k of [
    'groupOwnAfterBytes',
    'kindOwnAfterBytes',
    'portGroupHashMask',
    'groupStates',
    'packetAlwaysListsMax',
    'packetAlwaysLists',
  ])
    if (typeof (g as unknown as Record<string, unknown>)[k] !== 'number')
      throw new Error(`the engine's port groups have no field ${k}`);
  return g;
}
