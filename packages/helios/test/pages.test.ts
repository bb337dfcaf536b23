// Page key filters: a needle the index sends to a block inflates only the pages that may hold it, and
// finds exactly what a scan of every page finds.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { blockPageRows, createStream, Stream, valuePageRows } from '@strata/helios';
import { afterAll, describe, expect, it } from 'vitest';

const root = mkdtempSync(join(tmpdir(), 'helios-pages-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
/** A stream whose index holds declared values only: pages of valuePageRows. */
const valueDdl = `CREATE STREAM ev SOURCES ('x') FORMAT json COLUMNS (n INT, user STRING) INDEX (user)`;

describe('page key filters', () => {
  it('a needle reads one page of a block of many; without the index every page; same rows', async () => {
    const dir = join(root, 'a');
    createStream(
      dir,
      `CREATE STREAM ev SOURCES ('x') FORMAT json COLUMNS (n INT, user STRING, msg TEXT) INDEX (user, TOKENS(msg))`,
    );
    const total = blockPageRows * 6;
    const lines = Array.from({ length: total }, (_, n) =>
      JSON.stringify({ n, user: `u${n % 9}`, msg: `request id_${n} from u${n % 9}` }),
    );
    const file = join(dir, 'in.jsonl');
    writeFileSync(file, `${lines.join('\n')}\n`);
    const s = await Stream.open(dir, 'ev');
    try {
      await s.ingestFile(file, { chunkBytes: 64 << 20 }); // one block
      await s.indexAll();
      expect(s.blockCount).toBe(1);
      for (const n of [0, blockPageRows + 5, total - 1]) {
        const q = s.parse(`msg CONTAINS 'id_${n}'`);
        const viaIndex = await s.search(q);
        expect(viaIndex.rows.map((r) => r[0])).toEqual([n]);
        expect(viaIndex.stats.pagesRead).toBeLessThanOrEqual(2); // its page, and rarely a false positive
        expect(viaIndex.stats.pagesSkipped).toBeGreaterThanOrEqual(4);
        const scan = await s.search(q, { useIndex: false });
        expect(scan.rows).toEqual(viaIndex.rows);
        expect(scan.stats.pagesRead + scan.stats.pagesSkipped).toBe(6);
      }
      // a value and an OR over pages: every page may hold u3, none holds u99
      const u3 = await s.search(s.parse("user = 'u3'"));
      expect(u3.rows.length).toBe(lines.filter((_, n) => n % 9 === 3).length);
      const none = await s.search(s.parse("user = 'u99' OR msg CONTAINS 'id_7'"));
      expect(none.rows.map((r) => r[0])).toEqual([7]);
      expect(none.stats.pagesRead).toBeLessThanOrEqual(2);
    } finally {
      await s.close();
    }
  });

  it('a stream indexing declared values only has pages of valuePageRows; a rare value reads its page', async () => {
    const dir = join(root, 'b');
    createStream(dir, valueDdl);
    const total = valuePageRows * 3;
    const lines = Array.from({ length: total }, (_, n) =>
      JSON.stringify({ n, user: n === total - 1 ? 'rare' : `u${n % 9}` }),
    );
    const file = join(dir, 'in.jsonl');
    writeFileSync(file, `${lines.join('\n')}\n`);
    const s = await Stream.open(dir, 'ev');
    try {
      await s.ingestFile(file, { chunkBytes: 64 << 20 }); // one block
      await s.indexAll();
      expect(s.blockCount).toBe(1);
      const scan = await s.search(s.parse("user = 'u4'"), { useIndex: false });
      expect(scan.stats.pagesRead + scan.stats.pagesSkipped).toBe(3);
      expect(scan.rows.length).toBe(lines.filter((_, n) => n % 9 === 4 && n !== total - 1).length);
      const rare = await s.search(s.parse("user = 'rare'"));
      expect(rare.rows.map((r) => r[0])).toEqual([total - 1]);
      expect(rare.stats.pagesRead).toBeLessThanOrEqual(2);
      expect(rare.stats.pagesSkipped).toBeGreaterThanOrEqual(1);
    } finally {
      await s.close();
    }
  });

  it('a value stream with blocks of 1,024-row pages (written before) and of valuePageRows: search and erase read both', async () => {
    const dir = join(root, 'c');
    createStream(dir, valueDdl);
    const total = valuePageRows * 2;
    const mk = (from: number) =>
      Array.from({ length: total }, (_, i) => JSON.stringify({ n: from + i, user: `u${(from + i) % 7}` }));
    const [a, b] = [join(dir, 'a.jsonl'), join(dir, 'b.jsonl')];
    writeFileSync(a, `${mk(0).join('\n')}\n`);
    writeFileSync(b, `${mk(total).join('\n')}\n`);
    const s = await Stream.open(dir, 'ev');
    const inside = s as unknown as { pageKeyOptions: () => { pageRows?: number } };
    try {
      // the first file as a build before valuePageRows wrote it: pages of blockPageRows
      const own = inside.pageKeyOptions.bind(s);
      inside.pageKeyOptions = () => ({ ...own(), pageRows: blockPageRows });
      await s.ingestFile(a, { chunkBytes: 64 << 20 });
      inside.pageKeyOptions = own;
      await s.ingestFile(b, { chunkBytes: 64 << 20 });
      await s.indexAll();
      expect(s.blockCount).toBe(2);
      const all = await s.search(s.parse(''), { useIndex: false });
      expect(all.rows.map((r) => r[0])).toEqual(Array.from({ length: 2 * total }, (_, n) => n));
      expect(all.stats.pagesRead).toBe(total / blockPageRows + total / valuePageRows);
      const want = (v: number, gone: (n: number) => boolean = () => false) =>
        Array.from({ length: 2 * total }, (_, n) => n).filter((n) => n % 7 === v && !gone(n));
      for (const useIndex of [true, false])
        expect((await s.search(s.parse("user = 'u3'"), { useIndex })).rows.map((r) => r[0])).toEqual(want(3));
      // erase rewrites both blocks (pages of valuePageRows from then on); both still read
      const erased = await s.erase("user = 'u3' AND n >= 5", { gcGraceMs: 0 });
      expect(erased.blocks).toBe(2);
      for (const useIndex of [true, false]) {
        expect((await s.search(s.parse("user = 'u3'"), { useIndex })).rows.map((r) => r[0])).toEqual([3]);
        expect((await s.search(s.parse("user = 'u5'"), { useIndex })).rows.map((r) => r[0])).toEqual(want(5));
      }
      const left = await s.search(s.parse(''), { useIndex: false });
      expect(left.rows.length).toBe(2 * total - (want(3).length - 1));
    } finally {
      await s.close();
    }
  });
});
