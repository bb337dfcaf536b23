import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { captureIo, runCommand } from '@strata/cli';
import { commands, createStream, Stream } from '@strata/helios';
import { openStore } from '@strata/objstore';
import { afterAll, describe, expect, it } from 'vitest';
import { listKeys } from './index-check.js';

const root = mkdtempSync(join(tmpdir(), 'helios-tiers-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const dayMs = 86_400_000;
const ddl = `CREATE STREAM ev SOURCES ('x') FORMAT json COLUMNS (n INT, user STRING, msg TEXT)
  INDEX (user, TOKENS(msg)) STORAGE express FOR 1 DAY THEN standard RETAIN 30 DAYS`;

async function keys(dir: string, tier: 'express' | 'objects', prefix: string): Promise<string[]> {
  const st = await openStore(`file:${join(dir, tier)}`);
  try {
    return await listKeys(st, prefix);
  } finally {
    await st.close();
  }
}

function writeLines(path: string, from: number, count: number): void {
  const ls = Array.from({ length: count }, (_, i) =>
    JSON.stringify({ n: from + i, user: `u${(from + i) % 5}`, msg: `event id_${from + i}` }),
  );
  writeFileSync(path, `${ls.join('\n')}\n`);
}

describe('STORAGE and RETAIN from the DDL, on an injected clock', () => {
  it('express while hot, standard after a day, gone after 30 days; queries stay exact', async () => {
    const dir = join(root, 'a');
    createStream(dir, ddl);
    let clock = Date.now();
    const s = await Stream.open(dir, 'ev', {
      nowMs: () => clock,
      mergeKeysMax: 50,
      addKeysMax: 500,
      fanoutMax: 4,
    });
    try {
      const f1 = join(dir, 'day0.jsonl');
      writeLines(f1, 0, 300);
      await s.ingestFile(f1, { chunkBytes: 2048 });
      await s.indexAll();
      // Hot: the blocks, leaves and nodes are in the express tier only.
      expect((await keys(dir, 'express', 'ev/blocks/')).length).toBe(s.blockCount);
      expect(await keys(dir, 'objects', 'ev/blocks/')).toEqual([]);
      expect((await s.maintain()).moved).toBe(0);

      clock += 2 * dayMs;
      const m1 = await s.maintain();
      expect(m1.moved).toBeGreaterThanOrEqual(s.blockCount);
      expect(m1.expired).toBe(0);
      expect(await keys(dir, 'express', 'ev/blocks/')).toEqual([]);
      expect((await keys(dir, 'objects', 'ev/blocks/')).length).toBe(s.blockCount);
      expect((await s.search(s.parse("msg CONTAINS 'id_123'"))).rows.map((r) => r[0])).toEqual([123]);

      // Day 20: more data; day 31: the first day's blocks are past RETAIN, the later ones are not.
      clock += 18 * dayMs;
      const day0Blocks = s.blockCount;
      const f2 = join(dir, 'day20.jsonl');
      writeLines(f2, 300, 200);
      await s.ingestFile(f2, { chunkBytes: 2048 });
      clock += 11 * dayMs;
      const m2 = await s.maintain({ graceMs: 0 });
      expect(m2.expired).toBe(day0Blocks);
      expect(m2.deleted).toBeGreaterThanOrEqual(day0Blocks);
      const all = await s.search(s.parse(''));
      expect(all.rows.map((r) => r[0]).sort((a, b) => (a as number) - (b as number))).toEqual(
        Array.from({ length: 200 }, (_, i) => 300 + i),
      );
      expect((await s.search(s.parse("msg CONTAINS 'id_123'"))).rows).toEqual([]);
      // The indexer carries on past the expired prefix; index and scan agree.
      await s.indexAll();
      expect(s.indexedBlocks).toBe(s.blockCount);
      for (const q of ["user = 'u3'", "msg CONTAINS 'id_450'", "msg CONTAINS 'id_7'"]) {
        const a = await s.search(s.parse(q));
        const b = await s.search(s.parse(q), { useIndex: false });
        expect(a.rows).toEqual(b.rows);
        expect(a.stats.tailBlocks).toBe(0);
      }
      let n = 0;
      for await (const b of s.scan()) n += b.rows.length;
      expect(n).toBe(200);
      expect(s.sizes()).toMatchObject({ rows: 200, expiredBlocks: day0Blocks });
      // Only live blocks are left in either tier.
      const left = [
        ...(await keys(dir, 'express', 'ev/blocks/')),
        ...(await keys(dir, 'objects', 'ev/blocks/')),
      ];
      expect(left.length).toBe(s.blockCount - day0Blocks);
    } finally {
      await s.close();
    }
    // A second opener replays the expiry the same way.
    const s2 = await Stream.open(dir, 'ev');
    try {
      expect((await s2.search(s2.parse(''), { useIndex: false })).rows.length).toBe(200);
    } finally {
      await s2.close();
    }
  });

  it('a single class, and a bad class is an error that names the DDL', async () => {
    const dir = join(root, 'b');
    createStream(dir, ddl.replace(/STORAGE .*$/, 'STORAGE standard'));
    const s = await Stream.open(dir, 'ev');
    try {
      const f = join(dir, 'x.jsonl');
      writeLines(f, 0, 10);
      await s.ingestFile(f);
      expect((await keys(dir, 'objects', 'ev/blocks/')).length).toBe(1);
    } finally {
      await s.close();
    }
    // refused where it is written (it was taken, and every open of the stream failed)
    const bad = join(root, 'c');
    expect(() => createStream(bad, ddl.replace(/STORAGE .*$/, 'STORAGE glacier'))).toThrow(
      /unknown storage class 'glacier' \(expected express or standard\)/,
    );
    // a stream.ddl written before that: its open names the file
    createStream(bad, ddl);
    const stored = join(bad, 'streams', 'ev', 'stream.ddl');
    writeFileSync(stored, readFileSync(stored, 'utf8').replace(/STORAGE .*$/, 'STORAGE glacier'));
    await expect(Stream.open(bad, 'ev')).rejects.toThrow(
      /stream\.ddl:\d+:\d+: unknown storage class 'glacier'/,
    );
  });

  it('CLI: strata stream maintain', async () => {
    const dir = join(root, 'd');
    createStream(dir, ddl);
    const c = captureIo('', {}, root);
    const cmd = commands.find((x) => x.name === 'stream')!;
    expect(await runCommand(cmd, ['maintain', 'ev', '--data', dir, '--json'], c.io)).toBe(0);
    expect(JSON.parse(c.stdout())).toEqual({
      moved: 0,
      expired: 0,
      deleted: 0,
      expiredNodes: 0,
      erasuresFinished: 0,
      erasureNodes: 0,
    });
  });
});
