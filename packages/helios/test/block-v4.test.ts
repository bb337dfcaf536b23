// Version 4 and 5 blocks: the directory in one range get, then only the pages asked for (adjacent ones in
// one get), each page checked on its own; versions 2 and 3 still read; a corrupt page fails naming block
// and page while the others read; version 5's sections are brotli, version 4's raw deflate.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { brotliDecompressSync, deflateRawSync, inflateRawSync } from 'node:zlib';
import {
  type BlockHeader,
  BlockReader,
  blockPageRows,
  blockPrefixBytes,
  buildKeyFilter,
  type Cell,
  createStream,
  decodeBlock,
  encodeBlock,
  rowKeys,
  Stream,
} from '@strata/helios';
import { hash64Words } from '@strata/highwayhash';
import { MemStore } from '@strata/objstore';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { encodeBlockAsync, type RowSource } from '../src/block.js';
import type { BytesLru } from '../src/lru.js';
import { sectionBuffer } from '../src/sections.js';

const root = mkdtempSync(join(tmpdir(), 'helios-v4-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const meta = { id: 'x', source: 's', from: 0, to: 1, rawBytes: 1 };
/** Rows whose text barely compresses, so pages are a few KiB each. */
function rowsOf(n: number): [number, string][] {
  let x = 12345;
  return Array.from({ length: n }, (_, i) => {
    let t = '';
    for (let k = 0; k < 6; k++) {
      x = (Math.imul(x, 1103515245) + 12345) >>> 0;
      t += `${x.toString(36)} `;
    }
    return [i, `row${i} ${t}`];
  });
}

/** A MemStore that counts gets and the bytes they return. */
class CountingStore extends MemStore {
  gets = 0;
  ranged = 0;
  bytes = 0;
  override async get(
    key: string,
    opts: { range?: { start: number; end: number } } = {},
  ): Promise<Uint8Array> {
    const b = await super.get(key, opts);
    this.gets++;
    if (opts.range) this.ranged++;
    this.bytes += b.length;
    return b;
  }
}

/** A stream `ev` (TOKENS(msg)) in `root/name`, and a JSON lines file of `n` rows (rowsOf) to ingest. */
function streamWithRows(name: string, n: number): { dir: string; rows: [number, string][]; file: string } {
  const dir = join(root, name);
  createStream(
    dir,
    `CREATE STREAM ev SOURCES ('x') FORMAT json COLUMNS (n INT, msg TEXT) INDEX (TOKENS(msg))`,
  );
  const rows = rowsOf(n);
  const file = join(dir, 'in.jsonl');
  writeFileSync(file, `${rows.map(([n, msg]) => JSON.stringify({ n, msg })).join('\n')}\n`);
  return { dir, rows, file };
}

/** Page p's bytes [start, end) in a version 4/5 block (the layout the format comment in block.ts draws). */
function pageSpan(bytes: Uint8Array, header: BlockHeader, p: number): [number, number] {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let o = 20 + dv.getUint32(4, true) + dv.getUint32(8, true);
  for (let q = 0; q < p; q++) for (const n of header.pages![q]!.sections) o += n;
  let len = 0;
  for (const n of header.pages![p]!.sections) len += n;
  return [o, o + len];
}

const hex64 = (w: Uint32Array) => w[1]!.toString(16).padStart(8, '0') + w[0]!.toString(16).padStart(8, '0');

/** A version 3 block as it was written before version 4 (filters and sections in one checked body). */
function encodeV3(rows: [number, string][], per: number): Uint8Array {
  const parts: Buffer[] = [];
  const pages: { rows: number; filter: number; sections: number[] }[] = [];
  for (let s = 0; s < Math.max(1, rows.length); s += per) {
    const page = rows.slice(s, s + per);
    const filter = buildKeyFilter(Float64Array.from(page.map((r) => r[0] * 7919)));
    const secs = [0, 1].map((c) => deflateRawSync(Buffer.from(JSON.stringify(page.map((r) => r[c])))));
    parts.push(Buffer.from(filter), ...secs);
    pages.push({ rows: page.length, filter: filter.length, sections: secs.map((z) => z.length) });
  }
  const body = Buffer.concat(parts);
  const check = hex64(hash64Words(new Uint8Array(32).fill(3), body));
  const header = Buffer.from(
    JSON.stringify({
      ...meta,
      rows: rows.length,
      min: [0, null],
      max: [rows.length - 1, null],
      pages,
      check,
    }),
  );
  const len = Buffer.alloc(4);
  len.writeUInt32LE(header.length);
  return Buffer.concat([Buffer.from('HLB3'), len, header, body]);
}

describe('version 4 and 5 blocks', () => {
  it.each([4, 5] as const)(
    'version %i: open reads the directory, load fetches only the pages asked for, adjacent pages in one get',
    async (version) => {
      const rows = rowsOf(64 * 120);
      const { bytes, header } = encodeBlock(meta, rows, 2, {
        pageRows: 64,
        pageKeys: (cols) => Float64Array.from(cols[0]!.map((v) => (v as number) * 7919)),
        version,
      });
      expect(String.fromCharCode(...bytes.subarray(0, 4))).toBe(`HLB${version}`);
      expect(bytes.length).toBeGreaterThan(blockPrefixBytes);
      const store = new CountingStore();
      await store.put('b/1', bytes);
      for (const prefix of [blockPrefixBytes, 256]) {
        store.gets = store.ranged = store.bytes = 0;
        const r = await BlockReader.open(store, 'b/1', prefix);
        expect(r.version).toBe(version);
        // a directory longer than the prefix takes a second get
        expect(store.gets).toBe(prefix === 256 ? 2 : 1);
        expect(r.pages.length).toBe(120);
        for (let p = 0; p < 120; p++) expect(r.pageMayHold(p, p * 64 * 7919)).toBe(true);
        const far = 100;
        expect(r.pageLoaded(far)).toBe(false);
        const before = store.gets;
        await r.load([far]);
        expect(store.gets).toBe(before + 1);
        expect(r.pageRow(far, 3)).toEqual(rows[far * 64 + 3]);
        // 103, 104, 105 are one run, 108 another
        await r.load([105, 103, 108, 104, far]);
        expect(store.gets).toBe(before + 3);
        for (const p of [103, 104, 105, 108]) expect(r.pageRow(p, 0)).toEqual(rows[p * 64]);
        expect(() => r.pageRow(90, 0)).toThrow(/b\/1: page 90 was not loaded/);
        expect(store.bytes).toBe(r.bytesFetched);
        expect(r.bytesFetched).toBeLessThan(bytes.length / 3);
        expect(store.ranged).toBe(store.gets);
        await r.loadAll();
        expect(r.rows()).toEqual(rows);
      }
      // the directory is a copy of its own (the cache keeps it, not the whole fetched range), and reads the
      // block again without a fetch
      const whole = new BlockReader(Buffer.from(bytes), 'b/1');
      const dir = whole.directory()!;
      expect(dir.buffer.byteLength).toBe(dir.length);
      store.gets = 0;
      expect(new BlockReader(dir, 'b/1', store).pages.length).toBe(120);
      expect(store.gets).toBe(0);
      // a block smaller than the prefix is one get
      const small = encodeBlock(meta, rows.slice(0, 10), 2, { version }).bytes;
      await store.put('b/2', small);
      store.gets = 0;
      const r2 = await BlockReader.open(store, 'b/2');
      expect(store.gets).toBe(1);
      expect(r2.rows()).toEqual(rows.slice(0, 10));
      expect(header.pages!.every((p) => /^[0-9a-f]{16}$/.test(p.check!))).toBe(true);
    },
  );

  it.each([4, 5] as const)(
    'version %i: a corrupt page fails naming the block and the page; the other pages still read',
    async (version) => {
      const rows = rowsOf(64 * 8);
      const { bytes, header } = encodeBlock(meta, rows, 2, { pageRows: 64, version });
      const [a, b] = pageSpan(bytes, header, 5);
      const bad = bytes.slice();
      bad[(a + b) >> 1]! ^= 0x10;
      const store = new MemStore();
      await store.put('s/blocks/abc', bad);
      const whole = new BlockReader(bad, 's/blocks/abc');
      const ranged = await BlockReader.open(store, 's/blocks/abc', 512);
      await ranged.load([4, 5, 6]);
      for (const r of [whole, ranged]) {
        for (const p of [0, 4, 6, 7]) {
          await r.load([p]);
          expect(r.pageRow(p, 1)).toEqual(rows[p * 64 + 1]);
        }
        expect(() => r.pageText(5, 1)).toThrow(
          /s\/blocks\/abc: page 5 of 8 \(rows 320-383\) fails its checksum/,
        );
        await r.loadAll();
        expect(() => r.rows()).toThrow(/page 5 of 8/);
      }
      // the directory has its own checksum
      const badDir = bytes.slice();
      badDir[25]! ^= 1;
      expect(() => new BlockReader(badDir, 'b9')).toThrow(/b9: directory checksum mismatch/);
      await store.put('d', badDir);
      await expect(BlockReader.open(store, 'd')).rejects.toThrow(/d: directory checksum mismatch/);
      // truncated objects: the pages past the end are refused, with the block's name
      expect(() => new BlockReader(bytes.subarray(0, a), 'cut')).toThrow(/cut: pages end at byte/);
      await store.put('cut', bytes.subarray(0, b - 1));
      const cut = await BlockReader.open(store, 'cut', 512);
      await expect(cut.load([5])).rejects.toThrow(/cut: pages 5-5 are bytes .*\(truncated block\)/);
    },
  );

  it('a section buffer over 16 MiB is not kept for reuse (the pool outlives the ingest)', async () => {
    const rows = rowsOf(50);
    const source: RowSource = {
      length: rows.length,
      columns: (a, b) => [0, 1].map((c) => rows.slice(a, b).map((r) => r[c]!)),
    };
    sectionBuffer(1); // take what earlier blocks left (two at most)
    sectionBuffer(1);
    // the buffer is sized from the chunk's raw bytes: this block's is about 25 MiB
    await encodeBlockAsync({ ...meta, rawBytes: 20 << 20 }, source, 2, { pageRows: 64 });
    expect(sectionBuffer(1).byteLength).toBeLessThanOrEqual(16 << 20);
  });

  it('blocks laid out in section buffers the worker gave back (garbage in them) have the same bytes', async () => {
    const source = (rows: [number, string][]): RowSource => ({
      length: rows.length,
      columns: (a, b) => [0, 1].map((c) => rows.slice(a, b).map((r) => r[c]!)),
    });
    const big = rowsOf(3000).map(([n, t]): [number, string] => [n * 1e9, t.repeat(3)]);
    // short integers in runs (a repeat is copied a word at a time, past its bytes) after the big ones' text
    const small = rowsOf(700).map(([n, t]): [number, string] => [n >> 3, t]);
    const m = (rows: [number, string][]) => ({ ...meta, rawBytes: rows.length * 40 });
    // the bytes wanted, encoded before the loop: encodeBlock takes a buffer the worker gave back too, so
    // encoded between the async ones it would leave them none to reuse
    const wantBig = encodeBlock(m(big), big, 2, { pageRows: 64 }).bytes;
    const wantSmall = encodeBlock(m(small), small, 2, { pageRows: 64 }).bytes;
    // the big blocks leave their buffers behind; the small ones are then laid out in them
    for (let round = 0; round < 3; round++) {
      const a = await Promise.all(
        [big, big].map((r) => encodeBlockAsync(m(r), source(r), 2, { pageRows: 64 })),
      );
      for (const blk of a) expect(blk.bytes).toEqual(wantBig);
      const b = await encodeBlockAsync(m(small), source(small), 2, { pageRows: 64 });
      expect(b.bytes).toEqual(wantSmall);
      expect(decodeBlock(b.bytes, 'small').rows).toEqual(small);
    }
  });

  it('sections are brotli in version 5 (the default) and raw deflate in version 4, of the same JSON text', () => {
    const rows: [number, string][] = [...rowsOf(100), [7, 'q"\\\u0001é😀']];
    const sectionsOf = (version: 4 | 5) => {
      const { bytes, header } = encodeBlock(meta, rows, 2, { pageRows: 64, version });
      const out: Buffer[] = [];
      let o = pageSpan(bytes, header, 0)[0];
      for (const pg of header.pages!)
        for (const n of pg.sections) {
          const z = bytes.subarray(o, o + n);
          out.push(version === 5 ? brotliDecompressSync(z) : inflateRawSync(z));
          o += n;
        }
      return out.map((b) => b.toString());
    };
    const want = [rows.slice(0, 64), rows.slice(64)].flatMap((page) =>
      [0, 1].map((c) => JSON.stringify(page.map((r) => r[c]))),
    );
    expect(sectionsOf(5)).toEqual(want);
    expect(sectionsOf(4)).toEqual(want);
    expect(encodeBlock(meta, rows, 2).bytes[3]).toBe(0x35);
    // and each reads back to the same rows
    for (const version of [4, 5] as const)
      expect(new BlockReader(encodeBlock(meta, rows, 2, { pageRows: 64, version }).bytes).rows()).toEqual(
        rows,
      );
  });

  it('a section is JSON.stringify of its cells (integer columns are written by hand: every size and sign)', () => {
    const int = fc.oneof(
      fc.integer(),
      fc.integer({ min: -1e15 + 1, max: 1e15 - 1 }),
      fc.maxSafeInteger(),
      fc.constantFrom(0, -0, 9, 10, 99, 100, 9999, 10000, 99_999_999, 1e8, 1e8 + 1, 1e15 - 1, 1e15, -1e15),
      fc.constantFrom(-1e15 + 1, 2 ** 53, 1226188800000, 1226188800010, 1e21, -(2 ** 53)),
    );
    const cell = fc.oneof(
      { weight: 6, arbitrary: int },
      { weight: 1, arbitrary: fc.constant(null) },
      { weight: 1, arbitrary: fc.double() },
      { weight: 1, arbitrary: fc.string({ maxLength: 5 }) },
    );
    const rowArb = fc.tuple(fc.oneof(int, fc.constant(null)), cell, int);
    // runs of one row (a value equal to the one before copies its bytes)
    const rowsArb = fc
      .array(fc.tuple(rowArb, fc.integer({ min: 1, max: 4 })), { maxLength: 20 })
      .map((runs) => runs.flatMap(([row, n]) => Array.from({ length: n }, () => row)));
    fc.assert(
      fc.property(rowsArb, fc.integer({ min: 1, max: 9 }), (rows, per) => {
        const r = new BlockReader(encodeBlock(meta, rows, 3, { pageRows: per }).bytes);
        for (let p = 0; p < r.pages.length; p++)
          for (let c = 0; c < 3; c++)
            expect(r.pageText(p, c)).toBe(
              JSON.stringify(rows.slice(p * per, (p + 1) * per).map((row) => row[c])),
            );
      }),
      { numRuns: 300 },
    );
  });

  it('reads version 3 (pages, one checksum) and version 2 blocks, whole and through open', async () => {
    const rows = rowsOf(300);
    const v3 = encodeV3(rows, 64);
    const store = new CountingStore();
    await store.put('v3', v3);
    for (const r of [new BlockReader(v3, 'v3'), await BlockReader.open(store, 'v3', 1024)]) {
      expect(r.version).toBe(3);
      expect(r.pages.length).toBe(5);
      expect(r.pageMayHold(2, 130 * 7919)).toBe(true);
      expect(r.pageStart(4)).toBe(256);
      await r.load([0, 1, 2, 3, 4]); // here already: no get
      expect(r.rows()).toEqual(rows);
    }
    expect(store.gets).toBe(2); // the prefix, then the whole object (older versions are read whole)
    const bad = Buffer.from(v3);
    bad[bad.length - 3]! ^= 1;
    expect(() => new BlockReader(bad, 'v3b')).toThrow(/v3b: checksum mismatch/);

    const cols = [JSON.stringify([1, 2]), JSON.stringify(['a', 'b'])].map((t) =>
      deflateRawSync(Buffer.from(t)),
    );
    const body = Buffer.concat(cols);
    const check = hex64(hash64Words(new Uint8Array(32).fill(3), body));
    const h = Buffer.from(
      JSON.stringify({
        ...meta,
        rows: 2,
        min: [1, null],
        max: [2, null],
        sections: cols.map((c) => c.length),
        check,
      }),
    );
    const len = Buffer.alloc(4);
    len.writeUInt32LE(h.length);
    await store.put('v2', Buffer.concat([Buffer.from('HLB2'), len, h, body]));
    const r2 = await BlockReader.open(store, 'v2');
    expect(r2.version).toBe(2);
    expect(r2.rows()).toEqual([
      [1, 'a'],
      [2, 'b'],
    ]);
  });

  it('a stream: a needle fetches the directory and its page; a corrupt page fails that needle and the scan only', async () => {
    const total = blockPageRows * 8;
    const { dir, file } = streamWithRows('stream', total);
    const s = await Stream.open(dir, 'ev');
    try {
      await s.ingestFile(file, { chunkBytes: 64 << 20 }); // one block
      await s.indexAll();
      const { objects } = await s.store.list('ev/blocks/');
      expect(objects.length).toBe(1);
      const key = objects[0]!.key;
      const bytes = await s.store.get(key);
      const blk = new BlockReader(bytes, key);
      expect(blk.version).toBe(5);
      expect(blk.pages.length).toBe(8);
      const needle = (p: number) => s.parse(`msg CONTAINS 'row${p * blockPageRows + 7}'`);
      const hit = await s.search(needle(6));
      expect(hit.rows.map((r) => r[0])).toEqual([6 * blockPageRows + 7]);
      expect(hit.stats.blockBytesFetched).toBeLessThan(bytes.length / 2);
      expect(hit.stats.blockGets).toBeLessThanOrEqual(3); // directory, its page (and rarely a false positive)
      // the directory is cached: again, only the page
      const again = await s.search(needle(6));
      expect(again.rows).toEqual(hit.rows);
      expect(again.stats.blockGets).toBeLessThan(hit.stats.blockGets);
      expect(again.stats.blockBytesFetched).toBeLessThan(
        hit.stats.blockBytesFetched - blk.directoryBytes + 1,
      );
      // flip a byte in page 3 of the stored block
      const [a, b] = pageSpan(bytes, blk.header, 3);
      const bad = bytes.slice();
      bad[(a + b) >> 1]! ^= 0x40;
      await s.store.put(key, bad);
      for (const p of [0, 6, 7]) expect((await s.search(needle(p))).rows.length).toBe(1);
      const page3 = new RegExp(`${key}: page 3 of 8 \\(rows 3072-4095\\) fails its checksum`);
      await expect(s.search(needle(3))).rejects.toThrow(page3);
      await expect(s.search(needle(6), { useIndex: false })).rejects.toThrow(page3);
      await expect(
        (async () => {
          for await (const _ of s.scan());
        })(),
      ).rejects.toThrow(page3);
    } finally {
      await s.close();
    }
  });

  it('a block record carries its directory size: a fresh reader gets exactly the directory, then the page; so after an erasure', async () => {
    const { dir, file } = streamWithRows('dirsize', blockPageRows * 8);
    let s = await Stream.open(dir, 'ev');
    await s.ingestFile(file, { chunkBytes: 64 << 20 }); // one block
    await s.indexAll();
    await s.close();
    const needle = `msg CONTAINS 'row${6 * blockPageRows + 7}'`;
    /** A fresh reader's needle: the ranges its gets of the block asked for, and the block's directory size. */
    const firstNeedle = async () => {
      const r = await Stream.open(dir, 'ev');
      try {
        const { objects } = await r.store.list('ev/blocks/');
        const key = objects[0]!.key;
        const directoryBytes = new BlockReader(await r.store.get(key), key).directoryBytes;
        const asked: { start: number; end: number }[] = [];
        const get = r.store.get.bind(r.store);
        r.store.get = (k: string, opts?: { range?: { start: number; end: number } }) => {
          if (k === key && opts?.range) asked.push(opts.range);
          return get(k, opts);
        };
        expect((await r.search(r.parse(needle))).rows.map((x) => x[0])).toEqual([6 * blockPageRows + 7]);
        return { asked, directoryBytes };
      } finally {
        await r.close();
      }
    };
    const check = ({ asked, directoryBytes }: Awaited<ReturnType<typeof firstNeedle>>) => {
      // one get of exactly the directory (not a 4 KiB guess and then the rest), then pages past it
      expect(asked[0]).toEqual({ start: 0, end: directoryBytes - 1 });
      for (const g of asked.slice(1)) expect(g.start).toBeGreaterThanOrEqual(directoryBytes);
    };
    check(await firstNeedle());
    // an erasure writes a new block with another directory: its rewrite record carries the new size
    s = await Stream.open(dir, 'ev');
    try {
      await s.erase(`n < ${blockPageRows * 3}`);
    } finally {
      await s.close();
    }
    check(await firstNeedle());
  });

  it('concurrent searches that miss the same directory count it once in the cache', async () => {
    const { dir, file } = streamWithRows('concurrent', blockPageRows * 2);
    let s = await Stream.open(dir, 'ev');
    await s.ingestFile(file, { chunkBytes: 64 << 20 });
    await s.indexAll();
    await s.close();
    s = await Stream.open(dir, 'ev'); // no directory cached yet
    try {
      const q = s.parse(`msg CONTAINS 'row${blockPageRows + 3}'`);
      const res = await Promise.all([s.search(q), s.search(q), s.search(q)]);
      for (const r of res) expect(r.rows.map((x) => x[0])).toEqual([blockPageRows + 3]);
      const cache = (s as unknown as { reads: { directories: BytesLru<Uint8Array> } }).reads.directories;
      let held = 0;
      for (const d of cache.values()) held += d.v.length;
      expect(cache.size).toBe(1);
      expect(cache.bytes).toBe(held);
    } finally {
      await s.close();
    }
  });

  it('a stream whose blocks are HLB3: read whole, after the first with one get', async () => {
    const { dir, rows, file } = streamWithRows('old', blockPageRows * 3);
    let s = await Stream.open(dir, 'ev');
    await s.ingestFile(file, { chunkBytes: 64 << 20 });
    const key = (await s.store.list('ev/blocks/')).objects[0]!.key;
    await s.close();
    // the block as an HLB3 writer wrote it (its filters are not the index's keys: searched without the index)
    const v3 = encodeV3(rows, blockPageRows);
    s = await Stream.open(dir, 'ev');
    try {
      await s.store.put(key, v3);
      const q = s.parse(`msg CONTAINS 'row${2 * blockPageRows + 5}'`);
      const first = await s.search(q, { useIndex: false });
      expect(first.rows.map((r) => r[0])).toEqual([2 * blockPageRows + 5]);
      expect(first.stats.blockGets).toBe(2); // the first get asked for a directory, found HLB3
      const second = await s.search(q, { useIndex: false });
      expect(second.rows).toEqual(first.rows);
      expect(second.stats.blockGets).toBe(1);
      expect(second.stats.blockBytesFetched).toBe(v3.length);
    } finally {
      await s.close();
    }
  });

  it('a stream whose block is HLB4 (as written before HLB5): needles through the index and scans give the same rows', async () => {
    const old = 4;
    const total = blockPageRows * 4;
    const { dir, file } = streamWithRows(`v${old}`, total);
    let s = await Stream.open(dir, 'ev');
    await s.ingestFile(file, { chunkBytes: 64 << 20 }); // one block
    await s.indexAll();
    const key = (await s.store.list('ev/blocks/')).objects[0]!.key;
    const stored = await s.store.get(key);
    const needles = [0, 1, 2, 3].map((p) => `msg CONTAINS 'row${p * blockPageRows + 9}'`);
    const want: { rows: unknown; pagesRead: number }[] = [];
    for (const q of needles) {
      const { rows, stats } = await s.search(s.parse(q));
      want.push({ rows, pagesRead: stats.pagesRead });
    }
    const scanned: unknown[] = [];
    for await (const r of s.scan()) scanned.push(r);
    // the same rows and page filters written as the old version (re-encoded as 5, they are the stored bytes)
    const { header, rows } = decodeBlock(stored, key);
    const { id, source, from, to, rawBytes } = header;
    const pageKeys = (cols: Cell[][], json: Uint8Array[]) =>
      rowKeys(
        s.def,
        cols[0]!.map((_, i) => cols.map((c) => c[i]!)),
        json,
      );
    const encode = (version: 4 | 5) =>
      encodeBlock({ id, source, from, to, rawBytes }, rows, 2, { pageKeys, version }).bytes;
    expect(Buffer.from(encode(5)).equals(Buffer.from(stored))).toBe(true);
    const older = encode(old);
    await s.close();
    s = await Stream.open(dir, 'ev');
    try {
      await s.store.put(key, older);
      for (const [i, q] of needles.entries()) {
        const hit = await s.search(s.parse(q));
        expect(hit.rows).toEqual(want[i]!.rows);
        expect(hit.rows.length).toBe(1);
        // the same pages, chosen by the same filters
        expect(hit.stats.pagesRead).toBe(want[i]!.pagesRead);
        expect(hit.stats.pagesRead).toBeLessThan(4);
        expect((await s.search(s.parse(q), { useIndex: false })).rows).toEqual(want[i]!.rows);
      }
      const again: unknown[] = [];
      for await (const r of s.scan()) again.push(r);
      expect(again).toEqual(scanned);
      expect(new BlockReader(await s.store.get(key), key).version).toBe(old);
    } finally {
      await s.close();
    }
  });
});
