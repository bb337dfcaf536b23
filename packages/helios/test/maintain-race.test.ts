// Maintenance (tiers, retention, gc) and erasure racing other Streams on one directory: each interleaving
// forced by holding one Stream at a chosen step while another works (Streams on one directory behave as
// separate processes).
import { mkdtempSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createStream, Stream } from '@strata/helios';
import { afterAll, describe, expect, it } from 'vitest';
import {
  beforeFirstCall,
  checkIndex,
  expectIndexEqualsScan,
  keyOf,
  secretsStream,
  storedKeys,
} from './index-check.js';
import { child } from './procs-lib.js';

const root = mkdtempSync(join(tmpdir(), 'helios-maintain-race-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const dayMs = 86_400_000;
const ddl = `CREATE STREAM ev SOURCES ('file:ev.jsonl') FORMAT json
  COLUMNS (n INT, user STRING, msg TEXT) INDEX (user, TOKENS(msg))
  STORAGE express FOR 1 DAY THEN standard RETAIN 30 DAYS`;

/** A stream of `count` lines, user u(i % 7), u3's messages secrets; returns its dir, lines and file. */
function stream(name: string, count: number): { dir: string; lines: string[]; file: string } {
  const dir = join(root, name);
  return { dir, ...secretsStream(dir, ddl, count) };
}

/** The index keys of u3's rows (its user value and its secrets). */
function u3Keys(s: Stream, lines: string[]): number[] {
  return [...keyOf(s, 1, 'u3'), ...lines.flatMap((_, i) => (i % 7 === 3 ? keyOf(s, 2, `secret_${i}`) : []))];
}

describe('erasure beside maintenance and other erasures', () => {
  for (const other of ['an erasure of other rows', 'a compaction and a maintain']) {
    it(`an erasure whose index path ${other} deletes under it redoes the path: no erased key is left`, async () => {
      // Forced: B's erasure has rewritten a block and planned the index path above it on its view; before
      // it reads the path's nodes, A replaces them (an erasure's renode, or a compaction) and deletes the
      // old objects (the erasure at once, maintain's gc as superseded). B's read then misses. Failing
      // there left B's block rewritten but its keys in the index for good (a second erase finds no rows
      // to erase, so it never drops them), and the erase failed.
      const { dir, lines, file } = stream(other.startsWith('an') ? 'paths' : 'compact', 400);
      const policy = { mergeKeysMax: 30, addKeysMax: 100_000, fanoutMax: 2, compactEveryBlocks: 0 };
      const c = await Stream.open(dir, 'ev', policy);
      await c.ingestFile(file, { chunkBytes: 1024 });
      await c.indexAll();
      await c.close();
      const a = await Stream.open(dir, 'ev', policy);
      const b = await Stream.open(dir, 'ev', policy);
      try {
        const ran = beforeFirstCall(b, 'rewritePath', async () => {
          if (other.startsWith('an')) await a.erase("user = 'u5'", { gcGraceMs: 60_000 });
          else {
            expect((await a.compact()).records).toBeGreaterThan(0);
            await a.maintain({ graceMs: 0 });
          }
        });
        const r = await b.erase("user = 'u3'", { gcGraceMs: 60_000 });
        expect(ran()).toBe(true);
        expect(r.rows).toBe(lines.filter((_, i) => i % 7 === 3).length);
        await b.gc({ graceMs: 0 });
        const { keys: stored } = await storedKeys(b);
        expect(u3Keys(b, lines).filter((k) => stored.has(k))).toEqual([]);
        await expectIndexEqualsScan(b, ["user = 'u3'", "user = 'u4'", "msg CONTAINS 'common_1'"]);
        await checkIndex(b);
      } finally {
        await a.close();
        await b.close();
      }
    });
  }

  it('an erasure of a block that retention expires and gc deletes before its rewrite lands finishes', async () => {
    // Forced: B's erasure reads a block that is not yet past RETAIN; before B records its rewrite, A's
    // maintain (31 days on) expires every block and collects them, their leaves and the nodes over them.
    // B's rewrite still holds (the block's object is the one it read), and the index path above the
    // block is gone: there is nothing left to drop keys from, not an error.
    const { dir, file } = stream('expire', 300);
    let clock = Date.now();
    const policy = { mergeKeysMax: 30, addKeysMax: 100_000, fanoutMax: 4, compactEveryBlocks: 0 };
    const c = await Stream.open(dir, 'ev', { ...policy, nowMs: () => clock });
    await c.ingestFile(file, { chunkBytes: 1024 });
    await c.indexAll();
    await c.close();
    const a = await Stream.open(dir, 'ev', { ...policy, nowMs: () => clock + 31 * dayMs });
    const b = await Stream.open(dir, 'ev', { ...policy, nowMs: () => clock });
    try {
      let expired = 0;
      const append = b.log.append.bind(b.log);
      b.log.append = async (recs) => {
        if (expired === 0 && recs[0]?.t === 'rewrite') expired = (await a.maintain({ graceMs: 0 })).expired;
        return append(recs);
      };
      await b.erase("user = 'u3'", { gcGraceMs: 60_000 });
      b.log.append = append;
      expect(expired).toBe(b.blockCount);
      clock += 31 * dayMs;
      const fresh = await Stream.open(dir, 'ev', policy);
      try {
        for (const s of [b, fresh]) {
          expect((await s.search(s.parse("user = 'u3'"))).rows).toEqual([]);
          expect((await s.search(s.parse('n >= 0'))).rows).toEqual([]);
        }
        await fresh.indexAll();
      } finally {
        await fresh.close();
      }
    } finally {
      await a.close();
      await b.close();
    }
  });
});

describe('gc beside an indexer after an erasure', () => {
  it('a parent under a grandparent that an erasure shrank is not extended: gc leaves every named node', async () => {
    // Level 1 [3,5) is closed by its keys and under the level-2 root when an erasure in another Stream
    // drops most of block 4's keys: it is then small, last and under its fanout, as an open parent is.
    // Extended by the add operator (a new object for it, more children), the root still named the old
    // object, which gc then deleted: every search through the root failed on it for good, and the
    // indexer failed once the next level-1 node did not start at level 1's watermark.
    const dir = join(root, 'shrunk');
    createStream(
      dir,
      `CREATE STREAM ev SOURCES ('x') FORMAT json COLUMNS (n INT, user STRING, msg TEXT) INDEX (user, TOKENS(msg))`,
    );
    const lines: string[] = [];
    for (let i = 0; i < 5; i++)
      for (let j = 0; j < 4; j++)
        lines.push(JSON.stringify({ n: i * 4 + j, user: `b${i}`, msg: i === 4 ? `v${j} w${j}` : `m${i}` }));
    const file = join(dir, 'a.jsonl');
    writeFileSync(file, `${lines.join('\n')}\n`);
    // one block a level-0 node; level 1 [0,3) full at 3 children, [3,5) closed by keys (2 + 9 >= 8)
    const policy = { mergeKeysMax: 1, addKeysMax: 8, fanoutMax: 3, compactEveryBlocks: 0 };
    const a = await Stream.open(dir, 'ev', policy);
    const b = await Stream.open(dir, 'ev', policy);
    try {
      await a.ingestFile(file, { chunkBytes: 150 });
      await a.indexAll();
      const view = a as unknown as { levels: Map<number, { from: number; to: number }>[] };
      const ranges = (L: number) =>
        [...(view.levels[L]?.values() ?? [])].map((n) => [n.from, n.to]).sort((x, y) => x[0]! - y[0]!);
      expect([ranges(0).length, ranges(1), ranges(2)]).toEqual([
        5,
        [
          [0, 3],
          [3, 5],
        ],
        [[0, 5]],
      ]);
      await b.erase("msg CONTAINS 'w0' OR msg CONTAINS 'w1' OR msg CONTAINS 'w2'", { gcGraceMs: 60_000 });
      for (let k = 0; k < 6; k++) {
        const more = join(dir, `more${k}.jsonl`);
        const late = [0, 1].map((j) =>
          JSON.stringify({ n: 100 + 2 * k + j, user: `late${k}`, msg: `x${k}` }),
        );
        writeFileSync(more, `${late.join('\n')}\n`);
        await a.ingestFile(more, { chunkBytes: 150 });
        await a.indexAll();
      }
      expect(a.indexedBlocks).toBe(a.blockCount);
      await a.maintain({ graceMs: 0 });
      const fresh = await Stream.open(dir, 'ev', policy);
      try {
        const queries = ["user = 'b3'", "user = 'b4'", "msg CONTAINS 'v3'", "user = 'late1'", "user = 'b0'"];
        for (const n of await expectIndexEqualsScan(fresh, queries)) expect(n).toBeGreaterThan(0);
        await checkIndex(fresh);
      } finally {
        await fresh.close();
      }
    } finally {
      await a.close();
      await b.close();
    }
  });
});

describe('maintain in an indexer process beside erasure, ingestion and searches', () => {
  it('gc deletes superseded objects under the others: every row once, no erased key, the index exact', async () => {
    // The stream's objects are made an hour old first, so the indexer process's maintain (every 100 ms,
    // the default grace of 10 minutes) deletes each node the moment it is superseded (by its own
    // compaction, by the erasure here): what the other Streams' views still name goes under them.
    const { dir, lines, file } = stream('procs', 1200);
    const policy = { mergeKeysMax: 40, addKeysMax: 300, fanoutMax: 4, compactEveryBlocks: 0 };
    const s = await Stream.open(dir, 'ev', policy);
    const more = join(dir, 'more.jsonl');
    const extra = Array.from({ length: 400 }, (_, i) =>
      JSON.stringify({
        n: 1200 + i,
        user: `u${i % 7}`,
        msg: i % 7 === 3 ? `secret_x${i}` : `common_${i % 3}`,
      }),
    );
    writeFileSync(more, `${extra.join('\n')}\n`);
    try {
      await s.ingestFile(file, { chunkBytes: 1024 });
      await s.indexStep(Math.floor(s.blockCount / 2));
      const old = (Date.now() - 3600_000) / 1000;
      const age = (d: string): void => {
        for (const e of readdirSync(d, { withFileTypes: true }))
          if (e.isDirectory()) age(join(d, e.name));
          else utimesSync(join(d, e.name), old, old);
      };
      age(join(dir, 'objects'));
      age(join(dir, 'express'));
      const indexer = child(
        'index-cli',
        'ev',
        '--follow',
        '20',
        '--compact-every',
        '4',
        '--maintain-every',
        '100ms',
        '--data',
        dir,
      );
      await indexer.line(/maintain: moved/);
      const ingest = (async () => {
        const w = await Stream.open(dir, 'ev', policy);
        try {
          await w.ingestFile(more, { chunkBytes: 1024 });
        } finally {
          await w.close();
        }
      })();
      const r = await s.erase("user = 'u3'");
      expect(r.rows).toBeGreaterThanOrEqual(lines.filter((_, i) => i % 7 === 3).length);
      for (let k = 0; k < 5; k++) {
        const q = s.parse(`user = 'u${k === 3 ? 4 : k}'`);
        expect((await s.search(q)).rows).toEqual((await s.search(q, { useIndex: false })).rows);
      }
      await ingest;
      await s.erase("user = 'u3'");
      await new Promise((res) => setTimeout(res, 300));
      indexer.proc.kill('SIGINT');
      expect(await indexer.exit).toBe('done');
      await s.indexAll();
      expect(s.indexedBlocks).toBe(s.blockCount);
      const all = await s.search(s.parse('n >= 0'), { useIndex: false });
      const want = [...lines, ...extra]
        .map((l) => JSON.parse(l).n as number)
        .filter((n) => (n < 1200 ? n % 7 !== 3 : (n - 1200) % 7 !== 3));
      expect(all.rows.map((x) => x[0] as number).sort((x, y) => x - y)).toEqual(want);
      await s.gc({ graceMs: 0 });
      const { keys: stored } = await storedKeys(s);
      expect(u3Keys(s, lines).filter((k) => stored.has(k))).toEqual([]);
      await expectIndexEqualsScan(s, [
        "user = 'u3'",
        "user = 'u4'",
        "msg CONTAINS 'common_1'",
        "msg CONTAINS 'secret_x10'",
      ]);
      await checkIndex(s);
    } finally {
      await s.close();
    }
  });
});
