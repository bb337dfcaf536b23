import { deflateRawSync } from 'node:zlib';
import {
  BlockReader,
  blockId,
  buildKeyFilter,
  decodeNode,
  encodeBlock,
  encodeNode,
  fieldParser,
  filterMayHold,
  hashKeys,
  keysOf,
  leafNode,
  lookup,
  mergeAll,
  mergeNodes,
  NodeDirectory,
  nodeVersion,
  parseDdl,
  rowKeys,
  sortUnique,
  tokenize,
} from '@strata/helios';
import { hash64Words } from '@strata/highwayhash';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CellScan } from '../src/block.js';
import { columnKeys } from '../src/keys.js';

/** Where each of `n` cells starts (plus one past the end), scanned whole; null when `t` is not the compact array. */
function scanCells(t: string, n: number): number[] | null {
  const sc = new CellScan(t, n);
  return sc.reach(n - 1) ? sc.off : null;
}

const keysArb = fc
  .array(fc.integer({ min: 0, max: 2 ** 53 - 1 }), { maxLength: 300, size: 'max' })
  .map((xs) => sortUnique(Float64Array.from(xs)));

/**
 * A version 2 block (one page, no filters), as written before pages: "HLB2" | u32 header length | header
 * JSON with `sections` | deflate(JSON column)... The column texts are given as written.
 */
function v2Block(columns: string[], rows: number, min: unknown[], max: unknown[]): Buffer {
  const cols = columns.map((t) => deflateRawSync(Buffer.from(t), { level: 1 }));
  const body = Buffer.concat(cols);
  const w = hash64Words(new Uint8Array(32).fill(3), body);
  const check = w[1]!.toString(16).padStart(8, '0') + w[0]!.toString(16).padStart(8, '0');
  const header = Buffer.from(
    JSON.stringify({
      id: 'x',
      source: 's',
      from: 0,
      to: 9,
      rows,
      rawBytes: 9,
      min,
      max,
      sections: cols.map((c) => c.length),
      check,
    }),
  );
  const len = Buffer.alloc(4);
  len.writeUInt32LE(header.length);
  return Buffer.concat([Buffer.from('HLB2'), len, header, body]);
}

describe('index nodes', () => {
  it('a decoded node answers lookups from its bytes at any alignment, then from its arrays, the same as the node', () => {
    fc.assert(
      fc.property(
        keysArb,
        keysArb,
        fc.integer({ min: 0, max: 15 }),
        fc.array(fc.integer({ min: 0, max: 2 ** 53 - 1 }), { maxLength: 10 }),
        (ka, kb, shift, probes) => {
          const node = mergeNodes(leafNode(0, 0, 1, 0, ka), leafNode(0, 1, 2, 1, kb));
          const bytes = encodeNode(node);
          // an object store or a request hands back bytes after its own header: at any offset in a
          // Buffer (whose slice() is a view, not a copy) over a larger pool
          const pool = Buffer.alloc(bytes.length + shift + 64, 0xee);
          pool.set(bytes, shift + 32);
          const m = decodeNode(pool.subarray(shift + 32, shift + 32 + bytes.length));
          const asked = [...ka.slice(0, 15), ...kb.slice(0, 15), ...probes];
          for (const k of asked) expect([...lookup(m, k)], `key ${k}`).toEqual([...lookup(node, k)]);
          expect([...m.keys]).toEqual([...node.keys]);
          expect([...m.postOff]).toEqual([...node.postOff]);
          expect([...m.post]).toEqual([...node.post]);
          expect([...m.bloom]).toEqual([...node.bloom]);
          for (const k of asked) expect([...lookup(m, k)], `key ${k}`).toEqual([...lookup(node, k)]);
          expect(encodeNode(m)).toEqual(bytes);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('a chain of merges (a parent taking children one by one, stored and read back): keys, pointers and filter as built from scratch', () => {
    fc.assert(
      fc.property(fc.array(keysArb, { minLength: 1, maxLength: 6 }), fc.boolean(), (parts, stored) => {
        let node = leafNode(1, 0, 1, 'c0', parts[0]!, [0, 1]);
        for (let c = 1; c < parts.length; c++) {
          const child = leafNode(1, c, c + 1, `c${c}`, parts[c]!, [c, c + 1]);
          node = mergeNodes(stored ? decodeNode(encodeNode(node)) : node, child);
        }
        // the reference: every key with the children holding it, in order
        const want = new Map<number, number[]>();
        parts.forEach((ks, c) => {
          for (const k of ks) want.set(k, [...(want.get(k) ?? []), c]);
        });
        const keys = [...want.keys()].sort((x, y) => x - y);
        expect([...node.keys]).toEqual(keys);
        keys.forEach((k, i) => {
          expect([...node.post.subarray(node.postOff[i]!, node.postOff[i + 1]!)]).toEqual(want.get(k));
        });
        // the filter: the one a node of these keys gets when built at once (bits depend on key and size)
        expect([...node.bloom]).toEqual([...leafNode(0, 0, 1, 0, node.keys).bloom]);
        expect(node.header.children).toEqual(parts.map((_, c) => `c${c}`));
      }),
      { numRuns: 300 },
    );
  });

  it('mergeAll (a batch: parts without filters, some stored) is the chain of merges, filter included', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(keysArb, fc.boolean(), fc.boolean()), { minLength: 1, maxLength: 9 }),
        (parts) => {
          const nodes = parts.map(([ks, filter, stored], c) => {
            const n = leafNode(1, c, c + 1, `c${c}`, ks, [c, c + 1], filter || stored);
            return stored ? decodeNode(encodeNode(n)) : n;
          });
          const all = mergeAll(nodes);
          let chain = leafNode(1, 0, 1, 'c0', parts[0]![0], [0, 1]);
          for (let c = 1; c < parts.length; c++)
            chain = mergeNodes(chain, leafNode(1, c, c + 1, `c${c}`, parts[c]![0], [c, c + 1]));
          expect([...all.keys]).toEqual([...chain.keys]);
          expect([...all.postOff]).toEqual([...chain.postOff]);
          expect([...all.post]).toEqual([...chain.post]);
          expect([...all.bloom]).toEqual([...chain.bloom]);
          expect(all.header.children).toEqual(chain.header.children);
          expect(all.header.ranges).toEqual(chain.header.ranges);
          expect(decodeNode(encodeNode(all)).keys).toEqual(all.keys);
        },
      ),
      { numRuns: 300 },
    );
    // a part without its filter is not a node to store
    expect(() => encodeNode(leafNode(0, 0, 1, 0, new Float64Array([1, 2]), undefined, false))).toThrow(
      /no filter/,
    );
  });

  it('merge is the union of keys and pointers; encode/decode round-trips; lookups agree', () => {
    fc.assert(
      fc.property(keysArb, keysArb, fc.integer({ min: 0, max: 2 ** 53 - 1 }), (ka, kb, probe) => {
        const a = leafNode(0, 0, 1, 0, ka);
        const b = leafNode(0, 1, 2, 1, kb);
        const m = decodeNode(encodeNode(mergeNodes(a, b)));
        const union = new Set([...ka, ...kb]);
        expect([...m.keys]).toEqual([...union].sort((x, y) => x - y));
        for (const k of [...ka.slice(0, 20), ...kb.slice(0, 20), probe]) {
          const want = [ka.includes(k) ? 0 : -1, kb.includes(k) ? 1 : -1].filter((x) => x >= 0);
          expect([...lookup(m, k)]).toEqual(want);
        }
        expect(m.header.children).toEqual([0, 1]);
      }),
      { numRuns: 200 },
    );
  });

  it('corrupt nodes and blocks are refused with an error that says what is wrong', () => {
    const node = encodeNode(leafNode(0, 0, 1, 0, Float64Array.from([1, 2, 3])));
    const flipped = node.slice();
    flipped[flipped.length - 5]! ^= 1;
    expect(() => decodeNode(flipped, 'n1')).toThrow(/n1: checksum mismatch/);
    expect(() => decodeNode(new Uint8Array([1, 2, 3]), 'n2')).toThrow(/n2: not an index node/);
    const { bytes } = encodeBlock({ id: 'x', source: 's', from: 0, to: 1, rawBytes: 1 }, [[1, 'a']], 2);
    const bad = bytes.slice();
    bad[bad.length - 1]! ^= 0xff;
    expect(() => new BlockReader(bad, 'b1').rows()).toThrow(
      /b1: page 0 of 1 \(rows 0-0\) fails its checksum/,
    );
    expect(new BlockReader(bytes).rows()).toEqual([[1, 'a']]);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200, size: 'max' }), fc.nat(), (junk, at) => {
        const mixed = node.slice();
        mixed.set(junk.subarray(0, Math.max(0, mixed.length - (at % mixed.length))), at % mixed.length);
        try {
          decodeNode(mixed);
        } catch (e) {
          expect(e).toBeInstanceOf(Error);
        }
        try {
          new BlockReader(junk).rows();
        } catch (e) {
          expect(e).toBeInstanceOf(Error);
        }
      }),
      { numRuns: 500 },
    );
  });

  it('pages: rows round-trip at any page size; every key is in its page filter, few others are', () => {
    const rowArb = fc.tuple(fc.oneof(fc.integer(), fc.constant(null)), fc.string({ maxLength: 12 }));
    fc.assert(
      fc.property(fc.array(rowArb, { maxLength: 60 }), fc.integer({ min: 1, max: 17 }), (rows, per) => {
        const keysOfPage = (cols: unknown[][]) =>
          Float64Array.from(cols[1]!.map((v) => (v as string).length * 7919));
        const { bytes, pageKeys } = encodeBlock(
          { id: 'x', source: 's', from: 0, to: 1, rawBytes: 1 },
          rows,
          2,
          { pageRows: per, pageKeys: keysOfPage },
        );
        const r = new BlockReader(bytes);
        expect(r.rows()).toEqual(rows.map((x) => [x[0], x[1]]));
        expect(r.pages.length).toBe(Math.max(1, Math.ceil(rows.length / per)));
        for (let p = 0; p < r.pages.length; p++) {
          expect(r.pageStart(p)).toBe(p * per);
          for (const k of pageKeys[p]!) expect(r.pageMayHold(p, k)).toBe(true);
        }
      }),
      { numRuns: 200 },
    );
    // false positives at 10 bits a key: about 1%
    const keys = Float64Array.from({ length: 2000 }, (_, i) => (i * 2654435761) % 2 ** 53);
    const f = buildKeyFilter(keys);
    for (const k of keys) expect(filterMayHold(f, k)).toBe(true);
    let fp = 0;
    for (let i = 0; i < 20000; i++) if (filterMayHold(f, 2 ** 52 + i * 40503)) fp++;
    expect(fp / 20000).toBeLessThan(0.03);
    expect(filterMayHold(new Uint8Array(0), 42)).toBe(true);
  });

  it('cells read alone (pageCell, pageRow) and rows found by a needle in the column text equal the parsed columns', () => {
    // strings with quotes, backslashes, control characters, non-ASCII and lone surrogates; numbers; nulls
    const cellArb = fc.oneof(
      fc.string({ maxLength: 16, unit: 'binary' }),
      fc.string({ maxLength: 16, unit: fc.constantFrom('a', 'b', '"', '\\', ',', ']', '[', '\n', 'é') }),
      fc.double({ noNaN: true, noDefaultInfinity: true }),
      fc.integer(),
      fc.constant(null),
    );
    const needleArb = fc.stringMatching(/^[ab0-9.\-e]{1,3}$/);
    fc.assert(
      fc.property(
        fc.array(fc.tuple(cellArb, cellArb), { maxLength: 40 }),
        fc.integer({ min: 1, max: 9 }),
        needleArb,
        (rows, per, needle) => {
          const { bytes } = encodeBlock({ id: 'x', source: 's', from: 0, to: 1, rawBytes: 1 }, rows, 2, {
            pageRows: per,
          });
          const json = rows.map((r) => JSON.parse(JSON.stringify(r)) as unknown[]);
          const r = new BlockReader(bytes);
          for (let p = 0; p < r.pages.length; p++) {
            const n = r.pages[p]!.rows;
            for (let c = 0; c < 2; c++) {
              const want = json
                .slice(p * per, p * per + n)
                .map((row, i) => [i, JSON.stringify(row[c])] as const)
                .filter(([, text]) => text.includes(needle))
                .map(([i]) => i);
              expect(r.pageRowsWith(p, c, needle)).toEqual(want);
              for (let i = 0; i < n; i++)
                expect(r.pageCellHas(p, i, c, needle)).toBe(
                  JSON.stringify(json[p * per + i]![c]).includes(needle),
                );
            }
            for (let i = 0; i < n; i++) expect(r.pageRow(p, i)).toEqual(json[p * per + i]);
          }
          expect(new BlockReader(bytes).rows()).toEqual(json);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('a cell scan goes only as far as asked, in any order, and finds what the whole scan finds', () => {
    const cellArb = fc.oneof(
      fc.string({ maxLength: 12, unit: fc.constantFrom('a', '"', '\\', ',', ']', 'é') }),
      fc.integer(),
      fc.constant(null),
    );
    fc.assert(
      fc.property(fc.array(cellArb, { maxLength: 30 }), fc.array(fc.nat(40)), (cells, asks) => {
        const t = JSON.stringify(cells);
        const whole = scanCells(t, cells.length);
        expect(whole).not.toBeNull();
        const sc = new CellScan(t, cells.length);
        for (const i of asks) {
          expect(sc.reach(i)).toBe(i < cells.length);
          for (let k = 0; k <= Math.min(i, cells.length - 1); k++)
            expect(JSON.parse(t.slice(sc.off[k]!, sc.off[k + 1]! - 1))).toEqual(cells[k]);
        }
        expect(sc.reach(cells.length - 1)).toBe(true);
        expect(sc.off).toEqual(whole);
      }),
      { numRuns: 300 },
    );
    // past cell 1 the text is not the compact array: cells 0 and 1 are found without reading it
    const sc = new CellScan('[1,"b",{"no":"pe"},4]', 4);
    expect(sc.reach(1)).toBe(true);
    expect(sc.off.slice(0, 3)).toEqual([1, 3, 7]);
    expect(sc.reach(2)).toBe(false);
    expect(sc.reach(0)).toBe(false); // from then on the reader parses the column whole
    expect(scanCells('[1,"b",{"no":"pe"},4]', 4)).toBeNull();
    // a count of cells other than the text's fails at the last cell
    expect(new CellScan('[1,2,3]', 2).reach(0)).toBe(true);
    expect(new CellScan('[1,2,3]', 2).reach(1)).toBe(false);
    expect(new CellScan('[1,2]', 3).reach(2)).toBe(false);
  });

  it('a column text that is not compact JSON (spaces) is parsed whole: cells and needles still answer', () => {
    const r = new BlockReader(v2Block(['[1, 2.5 ,null]', '[ "a b" ,"x\\"y", "c"]'], 3, [], []));
    expect(r.pageCell(0, 1, 0)).toBe(2.5);
    expect(r.pageRow(0, 1)).toEqual([2.5, 'x"y']);
    expect(r.pageRowsWith(0, 1, 'c')).toEqual([2]);
    expect(r.pageRowsWith(0, 0, '2')).toEqual([1]);
    expect(r.pageCellHas(0, 0, 1, 'b')).toBe(true);
    expect(r.rows()).toEqual([
      [1, 'a b'],
      [2.5, 'x"y'],
      [null, 'c'],
    ]);
  });

  it('reads a version 2 block (one page, no filters) as written before pages', () => {
    const r = new BlockReader(
      v2Block([JSON.stringify([1, 2]), JSON.stringify(['a', 'b'])], 2, [1, null], [2, null]),
    );
    expect(r.rows()).toEqual([
      [1, 'a'],
      [2, 'b'],
    ]);
    expect(r.pages.length).toBe(1);
    expect(r.pageMayHold(0, 123)).toBe(true);
  });

  it('line parsers never throw on arbitrary lines', () => {
    const parsers = [
      fieldParser({ kind: 'json' }),
      fieldParser({ kind: 'logfmt' }),
      fieldParser({ kind: 'loghub', template: '<A> <B> [<C>]: <D>' }),
    ];
    fc.assert(
      fc.property(fc.string({ maxLength: 500, size: 'max' }), (line) => {
        for (const p of parsers) p(line);
      }),
      { numRuns: 1000 },
    );
  });
});

describe('block ids', () => {
  it('are the ids stored blocks carry: HighwayHash of source, offsets and content, joined', () => {
    // pinned values: a re-sent chunk must get the id its first sending got, whatever version computed it
    const big = new Uint8Array(100_000).map((_, i) => (i * 7919) & 255);
    expect(blockId('file:/a#1#x', 0, 4, new TextEncoder().encode('abc\n'))).toBe('4fde410a6b9c481a');
    expect(blockId('s', 10, 100_010, big)).toBe('a6773bfd1b3dbdc6');
    expect(blockId('', 0, 0, new Uint8Array(0))).toBe('c97f4b6b00c2b0d6');
    const key = new Uint8Array(32).fill(3);
    const head = new TextEncoder().encode('s\u000010\u0000100010\u0000');
    const all = new Uint8Array(head.length + big.length);
    all.set(head);
    all.set(big, head.length);
    const w = hash64Words(key, all);
    expect(blockId('s', 10, 100_010, big)).toBe(
      w[1]!.toString(16).padStart(8, '0') + w[0]!.toString(16).padStart(8, '0'),
    );
  });
});

describe('sortUnique', () => {
  it('gives the sorted distinct keys: uniform, clustered into one bucket, repeated, and not 53-bit keys', () => {
    const key53 = fc.integer({ min: 0, max: 2 ** 53 - 1 });
    const keys = fc.oneof(
      fc.array(key53, { maxLength: 300, size: 'max' }),
      fc.array(key53, { minLength: 256, maxLength: 3000, size: 'max' }),
      // a few keys a bucket, from a part of the range
      fc.array(fc.integer({ min: 0, max: 2 ** 44 }), { minLength: 256, maxLength: 3000, size: 'max' }),
      // many repeats of few keys (a block's pages share most of their keys)
      fc
        .array(key53, { minLength: 1, maxLength: 20 })
        .chain((few) => fc.array(fc.constantFrom(...few), { minLength: 300, maxLength: 3000, size: 'max' })),
      // all in one bucket (not uniform): the bucket is sorted by the typed array's sort
      fc.array(fc.integer({ min: 0, max: 5000 }), { minLength: 300, maxLength: 3000, size: 'max' }),
      fc.array(
        fc.oneof(key53, fc.constantFrom(2 ** 53, -1, 0.5, 2 ** 60, Number.NaN, Number.POSITIVE_INFINITY)),
        { minLength: 256, maxLength: 600, size: 'max' },
      ),
    );
    fc.assert(
      fc.property(keys, (xs) => {
        const want = [...new Set(xs.map((x) => (Object.is(x, -0) ? 0 : x)))].sort((a, b) =>
          Number.isNaN(a) ? 1 : Number.isNaN(b) ? -1 : a - b,
        );
        const got = [...sortUnique(Float64Array.from(xs))];
        // learned sort keeps one NaN per NaN; every other key once, in order
        expect(got.filter((x) => !Number.isNaN(x))).toEqual(want.filter((x) => !Number.isNaN(x)));
      }),
      { numRuns: 200 },
    );
  });
});

describe('index keys from bytes', () => {
  it('keysOf gives the keys of the key strings built from tokenize and the values', () => {
    const def = parseDdl(`CREATE STREAM k SOURCES ('file:x') FORMAT json
      COLUMNS (n INT, level STRING, msg TEXT) INDEX (n, level, TOKENS(msg))`);
    const text = fc.oneof(
      fc.string({ maxLength: 40 }),
      fc.string({ unit: 'binary', maxLength: 40 }),
      fc.stringMatching(/^[a-z.\-"\\\n\t\u0001\u007f\ud800\udc00 ]{0,40}$/u),
      fc.constant(`é${'y'.repeat(140)} \ud83d.${'z'.repeat(130)}é "q\\x"`),
      fc.stringMatching(/^[a-z0-9_.\- /:é€😀]{0,300}$/u),
      fc.constant(`${'x'.repeat(200)} ${'-.a'.repeat(3)} .-.`),
      fc.constant(Array.from({ length: 5000 }, (_, i) => `t${i % 4500}`).join(' ')),
    );
    const rowArb = fc.tuple(
      fc.oneof(fc.integer({ min: -5, max: 5 }), fc.constant(null)),
      fc.oneof(fc.constantFrom('INFO', 'WARN', 'é'), fc.constant(null)),
      fc.oneof(text, fc.constant(null)),
    );
    fc.assert(
      fc.property(fc.array(rowArb, { maxLength: 30 }), (rows) => {
        const want = new Set<string>();
        for (const r of rows) {
          if (r[0] !== null) want.add(`0\u0000${r[0]}`);
          if (r[1] !== null) want.add(`1\u0000${r[1]}`);
          if (r[2] !== null) for (const t of tokenize(r[2])) want.add(`2\u0001${t}`);
        }
        const keys = [...sortUnique(hashKeys([...want]))];
        expect([...keysOf(def, rows)]).toEqual(keys);
        // from the columns' JSON text, as a block page has it (escapes, lone surrogates, long tokens)
        const json = [0, 1, 2].map((c) => new TextEncoder().encode(JSON.stringify(rows.map((r) => r[c]))));
        expect([...sortUnique(rowKeys(def, rows, json))]).toEqual(keys);
      }),
      { numRuns: 300 },
    );
  });

  it('a declared string column given as its JSON text alone (the byte parser) gives the keys of its values, each once', () => {
    const def = parseDdl(`CREATE STREAM k SOURCES ('file:x') FORMAT json
      COLUMNS (n INT, level STRING, comp STRING) INDEX (level, comp)`);
    const value = fc.oneof(
      fc.constant(null),
      // runs of one value, values of one length, and two of equal length whose dedupe hashes collide
      // (the word-at-a-time hash of column 1's keys, found by a birthday search)
      fc.constantFrom('INFO', 'WARN', 'INFO ', 'dfs.DataNode$PacketResponder', 'dfs.FSNamesystem'),
      fc.constantFrom('t4RAJc389', 'Jg5K1Grev', '4RCN8vU9o', '6hevGF4z4'),
      fc.string({ maxLength: 20 }),
      fc.string({ unit: 'binary', maxLength: 20 }),
      fc.stringMatching(/^[a-z"\\\n\u0001\u007f\ud800é ]{0,12}$/u),
    );
    fc.assert(
      fc.property(fc.array(fc.tuple(value, value), { maxLength: 40 }), (rows) => {
        const want = new Set<string>();
        for (const r of rows) {
          if (r[0] !== null) want.add(`1\u0000${r[0]}`);
          if (r[1] !== null) want.add(`2\u0000${r[1]}`);
        }
        const json = [0, 1].map((c) => new TextEncoder().encode(JSON.stringify(rows.map((r) => r[c]))));
        const got = columnKeys(def, [rows.map(() => 1), [], []], [new Uint8Array(0), ...json]);
        expect(got.length).toBe(want.size);
        expect([...sortUnique(got)]).toEqual([...sortUnique(hashKeys([...want]))]);
      }),
      { numRuns: 300 },
    );
  });

  it('a TOKENS column text with more distinct tokens than its table of tokens met holds, and keys of every length to 130', () => {
    // 9,000 distinct tokens in one column's text: the table takes 4,095 and has 8,192 slots (without its
    // bound the probe for the 8,193rd would never end); a new key's bytes are copied by a loop up to 64
    const def = parseDdl(`CREATE STREAM k SOURCES ('file:x') FORMAT json
      COLUMNS (n INT, level STRING, msg TEXT) INDEX (level, TOKENS(msg))`);
    const chars = 'abcdefghijklmnopqrstuvwxyz0123456789_';
    const long = Array.from({ length: 130 }, (_, n) => chars.repeat(4).slice(n % 37, (n % 37) + n + 1));
    const rows = [0, 1, 2].map((r) => [
      r,
      long[60 + r]!,
      Array.from({ length: 3000 }, (_, i) => `t${r * 3000 + i}`).join(' '),
    ]);
    rows.push([3, long[63]!, long.join(' ')]);
    const want = new Set<string>();
    for (const r of rows) {
      want.add(`1\u0000${r[1]}`);
      for (const t of tokenize(r[2] as string)) want.add(`2\u0001${t}`);
    }
    const keys = [...sortUnique(hashKeys([...want]))];
    expect(keys.length).toBe(9000 + 130 + 4);
    expect([...keysOf(def, rows)]).toEqual(keys);
    const json = [0, 1, 2].map((c) => new TextEncoder().encode(JSON.stringify(rows.map((r) => r[c]))));
    const got = rowKeys(def, rows, json);
    expect(got.length).toBe(keys.length);
    expect([...sortUnique(got)]).toEqual(keys);
  });

  it('keys whose dedupe hashes collide stay apart (tokens with a common start; a value and a token)', () => {
    // pairs of equal length and equal 32-bit FNV-1a (the dedupe table's hash) of their key strings,
    // found by a birthday search: only the byte compare tells them apart
    const def = parseDdl(`CREATE STREAM k SOURCES ('file:x') FORMAT json
      COLUMNS (n INT, level STRING, msg TEXT) INDEX (n, level, TOKENS(msg))`);
    const rows = [
      [1, 'Vy84vww4', 'abcdj8man abcdwgcim Trcpj4lb'],
      [2, 'INFO', 'abcd8a53a abcdeoys7 abcdj8man Trcpj4lb'],
    ];
    const want = new Set(['0\u00001', '0\u00002', '1\u0000Vy84vww4', '1\u0000INFO']);
    for (const t of ['abcdj8man', 'abcdwgcim', 'Trcpj4lb', 'abcd8a53a', 'abcdeoys7']) want.add(`2\u0001${t}`);
    const keys = [...sortUnique(hashKeys([...want]))];
    expect(keys.length).toBe(9);
    expect([...keysOf(def, rows)]).toEqual(keys);
    const json = [0, 1, 2].map((c) => new TextEncoder().encode(JSON.stringify(rows.map((r) => r[c]))));
    expect([...sortUnique(rowKeys(def, rows, json))]).toEqual(keys);
  });
});

describe('HLN2 index nodes (paged)', () => {
  /** A node of random keys, each pointing to 1-3 of `children` children (ascending, distinct). */
  const nodeArb = fc
    .record({
      keys: fc.array(fc.integer({ min: 0, max: 2 ** 53 - 1 }), { maxLength: 400, size: 'max' }),
      children: fc.integer({ min: 1, max: 20 }),
      seed: fc.integer({ min: 0, max: 1 << 30 }),
      level: fc.integer({ min: 0, max: 3 }),
    })
    .map(({ keys, children, seed, level }) => {
      const parts = Array.from({ length: children }, (_, c) => {
        const mine = sortUnique(Float64Array.from(keys.filter((k, i) => (k + i + seed + c) % (c + 2) === 0)));
        return level === 0
          ? leafNode(0, c, c + 1, c, mine, undefined, false)
          : leafNode(level, c, c + 1, `n/L${level - 1}/${c}`, mine, [c, c + 1], false);
      });
      return mergeAll(parts);
    });

  /** The node's header and directory through NodeDirectory, and a lookup that reads one page (as a search does). */
  function paged(bytes: Uint8Array, where = 'n') {
    const need = NodeDirectory.bytesNeeded(bytes.subarray(0, 24), where);
    const dir = NodeDirectory.parse(bytes.slice(0, need), where);
    const pagesRead: number[] = [];
    return {
      dir,
      pagesRead,
      find(key: number): number[] {
        const p = dir.pageOf(key);
        if (p < 0) return [];
        pagesRead.push(p);
        const [s, e] = dir.range(p);
        return [...dir.page(p, bytes.slice(s, e)).find(key)];
      },
    };
  }

  it('round trip: the arrays, header and filter of HLN1; a lookup through the directory and one page equals the whole node', () => {
    fc.assert(
      fc.property(
        nodeArb,
        fc.integer({ min: 1, max: 70 }),
        fc.array(fc.integer({ min: 0, max: 2 ** 53 - 1 }), { maxLength: 30 }),
        (node, pageKeys, probes) => {
          const bytes = encodeNode(node, 2, pageKeys);
          expect(nodeVersion(bytes)).toBe(2);
          const back = decodeNode(bytes, 'n');
          const v1 = decodeNode(encodeNode(node), 'n');
          expect([...back.keys]).toEqual([...v1.keys]);
          expect([...back.postOff]).toEqual([...v1.postOff]);
          expect([...back.post]).toEqual([...v1.post]);
          expect([...back.bloom]).toEqual([...v1.bloom]);
          expect(back.header.children).toEqual(node.header.children);
          expect(back.header.ranges).toEqual(node.header.ranges);
          expect(back.header.pages).toBe(Math.ceil(node.keys.length / pageKeys));
          const pg = paged(bytes);
          // present keys (every one when few), absent ones, one below the first key and one past the last
          const ks = [...node.keys];
          const present = ks.length <= 60 ? ks : ks.filter((_, i) => i % 7 === 0);
          for (const k of [...present, ...probes, 0, 2 ** 53 - 1, ...ks.map((k) => k + 1).slice(0, 10)]) {
            const want = [...lookup(node, k)];
            expect(pg.find(k)).toEqual(want);
            expect([...lookup(back, k)]).toEqual(want);
          }
          // one page a lookup, and only the page whose range holds the key
          for (const k of present.slice(0, 5)) {
            const i = ks.indexOf(k);
            pg.pagesRead.length = 0;
            pg.find(k);
            expect(pg.pagesRead).toEqual([Math.floor(i / pageKeys)]);
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it('pages written with pointer offsets from 0 (as HLN2 was written at first, 2026-12-03 21:15-21:40) read the same', () => {
    const check = (b: Uint8Array) => hash64Words(new Uint8Array(32).fill(7), b);
    fc.assert(
      fc.property(nodeArb, fc.integer({ min: 1, max: 40 }), (node, pageKeys) => {
        const bytes = encodeNode(node, 2, pageKeys);
        const { dir } = paged(bytes);
        const old = bytes.slice();
        const dv = new DataView(old.buffer);
        const dirAt = dir.pagesAt - dir.pages * 20;
        for (let p = 0; p < dir.pages; p++) {
          const [s, e] = dir.range(p);
          const c = Math.min(pageKeys, node.keys.length - p * pageKeys);
          const base = dv.getUint32(s + c * 8, true);
          for (let j = 0; j <= c; j++)
            dv.setUint32(s + c * 8 + j * 4, dv.getUint32(s + c * 8 + j * 4, true) - base, true);
          const w = check(old.subarray(s, e));
          dv.setUint32(dirAt + p * 20 + 12, w[0]!, true);
          dv.setUint32(dirAt + p * 20 + 16, w[1]!, true);
        }
        const w = check(old.subarray(24, dir.pagesAt));
        dv.setUint32(16, w[0]!, true);
        dv.setUint32(20, w[1]!, true);
        const back = decodeNode(old, 'n');
        expect([...back.postOff]).toEqual([...node.postOff]);
        expect([...back.post]).toEqual([...node.post]);
        const pg = paged(old);
        for (const k of [...node.keys].slice(0, 50)) expect(pg.find(k)).toEqual([...lookup(node, k)]);
      }),
      { numRuns: 100 },
    );
  });

  it('the default page size keeps the directory small: 512 keys a page, at most 4,096 pages', () => {
    const keys = sortUnique(Float64Array.from({ length: 5000 }, (_, i) => i * 7919 + 3));
    const bytes = encodeNode(leafNode(1, 0, 1, 'c', keys, [0, 1]), 2);
    const { dir } = paged(bytes);
    expect(dir.header.pageKeys).toBe(512);
    expect(dir.pages).toBe(10);
    expect(dir.bytes).toBeLessThan(600);
    // 4,096 pages at most: 3M keys take 733 a page (the arrays only: the header is what is asked)
    expect(Math.max(512, Math.ceil(3_000_000 / 4096))).toBe(733);
  });

  it('a corrupt page fails naming node and page, read in parts and whole; the other pages still answer; a corrupt directory fails', () => {
    const keys = sortUnique(Float64Array.from({ length: 100 }, (_, i) => i * 1000 + 1));
    const node = leafNode(0, 0, 1, 0, keys);
    const bytes = encodeNode(node, 2, 16);
    const good = paged(bytes, 'ev/nodes/L0/0-1-x');
    const [s3, e3] = good.dir.range(3);
    const bad = bytes.slice();
    bad[s3 + ((e3 - s3) >> 1)]! ^= 4;
    const pg = paged(bad, 'ev/nodes/L0/0-1-x');
    expect(() => pg.find(keys[3 * 16 + 2]!)).toThrow(
      'ev/nodes/L0/0-1-x: page 3 of 7 (keys 48-63) fails its checksum: the node is corrupt',
    );
    expect(pg.find(keys[5]!)).toEqual([0]);
    expect(pg.find(keys[99]!)).toEqual([0]);
    expect(() => decodeNode(bad, 'ev/nodes/L0/0-1-x')).toThrow(
      'ev/nodes/L0/0-1-x: page 3 of 7 (keys 48-63) fails its checksum',
    );
    // a page cut short is refused too
    expect(() => good.dir.page(3, bytes.slice(s3, e3 - 4))).toThrow(/page 3 of 7 .* fails its checksum/);
    // the directory (a first key) and the header (a child) are under the directory's check
    for (const at of [good.dir.pagesAt - 20, 30]) {
      const d = bytes.slice();
      d[at]! ^= 1;
      expect(() => paged(d, 'nk')).toThrow('nk: directory checksum mismatch (corrupt node)');
    }
    // the filter, read only whole
    const f = bytes.slice();
    f[f.length - 1]! ^= 1;
    expect(() => decodeNode(f, 'nk')).toThrow('nk: filter checksum mismatch (corrupt node)');
    expect(paged(f).find(keys[7]!)).toEqual([0]);
    // a node of no keys: no pages, every lookup empty
    const empty = encodeNode(leafNode(0, 0, 1, 0, new Float64Array(0)), 2);
    expect(paged(empty).find(5)).toEqual([]);
    expect(decodeNode(empty).keys.length).toBe(0);
    // bytes 12-15, a u32 written as 0 and under no checksum: any other value is refused, whole and in parts
    for (const at of [12, 15]) {
      const w = bytes.slice();
      w[at]! ^= 1;
      const word = at === 12 ? 1 : 2 ** 24;
      const msg = `nw: HLN2 prefix word 3 is ${word}, expected 0 (a newer format?)`;
      expect(() => paged(w, 'nw')).toThrow(msg);
      expect(() => decodeNode(w, 'nw')).toThrow(msg);
    }
    // junk over a node: an error, whole and in parts, or the node's own answers, never other children
    const probes = [...keys, ...keys.map((k) => k + 1), 0];
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 200, size: 'max' }), fc.nat(), (junk, at) => {
        const mixed = bytes.slice();
        const o = at % mixed.length;
        mixed.set(junk.subarray(0, mixed.length - o), o);
        let whole: ReturnType<typeof decodeNode> | undefined;
        try {
          whole = decodeNode(mixed);
        } catch (e) {
          expect(e).toBeInstanceOf(Error);
        }
        if (whole) for (const k of probes) expect([...lookup(whole, k)]).toEqual([...lookup(node, k)]);
        let parts: ReturnType<typeof paged> | undefined;
        try {
          parts = paged(mixed);
        } catch (e) {
          expect(e).toBeInstanceOf(Error);
        }
        for (const k of parts ? probes : []) {
          let got: number[] | undefined;
          try {
            got = parts!.find(k);
          } catch (e) {
            expect(e).toBeInstanceOf(Error);
          }
          if (got) expect(got).toEqual([...lookup(node, k)]);
        }
      }),
      { numRuns: 300 },
    );
  });
});
