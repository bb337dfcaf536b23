// Compaction: runs of small sibling nodes rewritten into fewer nodes, recorded all or none.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createStream, evalExpr, type ProgressRecord, type Row, RowParser, Stream } from '@strata/helios';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { beforeFirstNodeRead, checkIndex, listKeys } from './index-check.js';

// Few distinct values: a level-0 node closes at fanoutMax blocks long before it reaches mergeKeysMax.
const ddl = `CREATE STREAM ev SOURCES ('file:ev.jsonl') FORMAT json
  COLUMNS (level STRING, user STRING, n INT, msg TEXT) INDEX (level, user, TOKENS(msg))`;
const words = ['open', 'close', 'read', 'write'];
const lineOf = (i: number) =>
  JSON.stringify({ level: ['INFO', 'WARN', 'ERROR'][i % 3], user: `u${i % 7}`, n: i, msg: words[i % 4] });
const policy = { mergeKeysMax: 1000, addKeysMax: 100_000, fanoutMax: 4, levelsMax: 4, compactEveryBlocks: 0 };

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

async function setup(lines: number, opts: Record<string, number> = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'helios-compact-'));
  dirs.push(dir);
  createStream(dir, ddl);
  const file = join(dir, 'ev.jsonl');
  const text = Array.from({ length: lines }, (_, i) => lineOf(i));
  writeFileSync(file, `${text.join('\n')}\n`);
  const s = await Stream.open(dir, 'ev', { ...policy, ...opts });
  await s.ingestFile(file, { chunkBytes: 1024 });
  const parser = new RowParser(s.def);
  return { dir, s, rows: text.map((l) => parser.row(l)) };
}

const queries = ["level = 'WARN'", "user = 'u3' AND msg CONTAINS 'read'", "msg CONTAINS 'write'", 'n > 100'];

/** Each query returns exactly the rows the expression selects from the parsed input (no blocks, no index). */
async function expectExact(s: Stream, rows: Row[]): Promise<void> {
  for (const q of queries) {
    const e = s.parse(q);
    expect((await s.search(e)).rows, q).toEqual(rows.filter((r) => evalExpr(e, r)));
  }
}

describe('compaction', () => {
  it("a compaction whose view names nodes another process's erasure has just deleted catches up and goes on", async () => {
    const { dir, s, rows } = await setup(1500);
    await s.indexAll();
    await s.close();
    const a = await Stream.open(dir, 'ev', policy);
    const b = await Stream.open(dir, 'ev', policy);
    try {
      // A's view is read, then B's erasure rewrites every node above a block of u3's rows and deletes the
      // old ones at once, before A's first node read
      await a.search(a.parse("level = 'WARN'"));
      const erased = beforeFirstNodeRead(a, () => b.erase("user = 'u3'", { gcGraceMs: 60_000 }));
      const st = await a.compact();
      expect(erased()).toBe(true);
      expect(st.runs).toBeGreaterThan(0);
      await checkIndex(a);
      await expectExact(
        a,
        rows.filter((r) => r[1] !== 'u3'),
      );
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('merges the level-0 nodes a parent closed at fanoutMax into one, and parents likewise: fewer nodes, same pointers', async () => {
    const { dir, s, rows } = await setup(1500);
    try {
      await s.indexAll();
      const before = await checkIndex(s);
      const blocks = s.blockCount;
      expect(blocks).toBeGreaterThan(40);
      // 4 blocks a level-0 node, 4 children a parent
      expect(before[0]).toBe(Math.ceil(blocks / 4));
      const common = await s.search(s.parse("level = 'WARN'"));
      // a reader that keeps the pages of the nodes compaction is about to supersede
      const reader = await Stream.open(dir, 'ev');
      await reader.search(reader.parse("level = 'WARN'"));
      const st = await s.compact();
      expect(st.racesLost).toBe(0);
      const after = await checkIndex(s);
      // every group of siblings (the children of one parent, or the orphans) became one node at each level
      const levels = (await s.search(s.parse(''), { limit: 0 })).stats.levels;
      for (let L = 0; L + 1 < levels.length; L++)
        expect(levels[L]!.nodes).toBeLessThanOrEqual(levels[L + 1]!.nodes + 1);
      expect(after[0]).toBeLessThan(before[0]! / 3);
      expect(after.reduce((a, b) => a + b, 0)).toBeLessThan(before.reduce((a, b) => a + b, 0) / 2);
      expect(st.nodesMerged - st.runs).toBe(
        before.reduce((a, b) => a + b, 0) - after.reduce((a, b) => a + b, 0),
      );
      await expectExact(s, rows);
      // a value in every block: the search reads every node that holds it, now far fewer
      const again = await s.search(s.parse("level = 'WARN'"));
      expect(again.rows).toEqual(common.rows);
      expect(again.stats.nodesRead).toBeLessThan(common.stats.nodesRead / 2);
      // nothing left to do: a second pass appends nothing
      expect((await s.compact()).records).toBe(0);
      // a reader that opens the stream now replays the compact records to the same view
      const r2 = await Stream.open(dir, 'ev');
      try {
        expect(await checkIndex(r2)).toEqual(after);
        await expectExact(r2, rows);
      } finally {
        await r2.close();
      }
      // superseded objects are gc's
      const cachedBefore = reader.nodePageCacheStats.nodeKeys;
      expect(await reader.gc({ graceMs: 0 })).toBeGreaterThan(0);
      // and the pages the gc'ing process kept of them go with them
      const existing = new Set(await listKeys(s.store, 'ev/nodes/'));
      expect(cachedBefore.filter((k) => !existing.has(k)).length).toBeGreaterThan(0);
      expect(reader.nodePageCacheStats.nodeKeys.filter((k) => !existing.has(k))).toEqual([]);
      await reader.close();
      await expectExact(s, rows);
      expect(await checkIndex(s)).toEqual(after);
    } finally {
      await s.close();
    }
  });

  it('runs every compactEveryBlocks blocks inside the indexer; queries stay exact at every step', async () => {
    const { s, rows } = await setup(1200, { compactEveryBlocks: 5, compactFanoutMax: 12 });
    try {
      while ((await s.indexStep(3)) > 0) {
        await checkIndex(s);
        await expectExact(s, rows);
      }
      expect(s.compactions.passes).toBeGreaterThan(3);
      expect(s.compactions.runs).toBeGreaterThan(0);
      const levels = (await s.search(s.parse(''), { limit: 0 })).stats.levels;
      expect(levels[0]!.nodes).toBeLessThan(s.blockCount / 4);
    } finally {
      await s.close();
    }
  });

  it('counts compactEveryBlocks from the progress log: indexers restarted every 3 blocks still compact every 8', async () => {
    const opts = { compactEveryBlocks: 8, compactFanoutMax: 12 };
    const { dir, s: first, rows } = await setup(1200, opts);
    await first.close();
    let passes = 0;
    let steps = 0;
    for (;;) {
      // a new process each time (the count of blocks indexed since the last compaction must come from the log)
      const s = await Stream.open(dir, 'ev', { ...policy, ...opts });
      try {
        const done = await s.indexStep(3);
        passes += s.compactions.passes;
        if (done === 0) {
          await checkIndex(s);
          await expectExact(s, rows);
          const blocks = s.blockCount;
          expect(blocks).toBeGreaterThan(40);
          // one pass per 8 blocks indexed (at 9, 18, ...: steps of 3), not one per restart, nor none
          expect(passes).toBeGreaterThanOrEqual(Math.floor(blocks / 9));
          expect(passes).toBeLessThanOrEqual(Math.ceil(blocks / 8) + 1);
          const levels = (await s.search(s.parse(''), { limit: 0 })).stats.levels;
          expect(levels[0]!.nodes).toBeLessThan(blocks / 4);
          break;
        }
        steps++;
      } finally {
        await s.close();
      }
    }
    expect(steps).toBeGreaterThan(10);
  });

  it('a crash between writing the compacted nodes and recording them leaves the old view valid', async () => {
    const { dir, s, rows } = await setup(800);
    try {
      await s.indexAll();
      const before = await checkIndex(s);
      const log = s.log as { append: typeof s.log.append };
      const append = log.append.bind(s.log);
      let attempts = 0;
      log.append = async (recs: ProgressRecord[]) => {
        if (recs.some((r) => r.t === 'compact')) {
          attempts++;
          throw new Error('progress log unreachable');
        }
        return append(recs);
      };
      const listNodes = async () => new Set((await s.store.list('ev/nodes/')).objects.map((o) => o.key));
      const objectsBefore = await listNodes();
      await expect(s.compact()).rejects.toThrow('progress log unreachable');
      expect(attempts).toBe(1);
      const unrecorded = [...(await listNodes())].filter((k) => !objectsBefore.has(k));
      expect(unrecorded.length).toBeGreaterThan(0); // written, never recorded
      expect(await checkIndex(s)).toEqual(before);
      await expectExact(s, rows);
      // another process (a restart) sees the old view too
      const r2 = await Stream.open(dir, 'ev', policy);
      try {
        expect(await checkIndex(r2)).toEqual(before);
        await expectExact(r2, rows);
        // the unrecorded nodes are garbage: gc takes them, the live index stays
        expect(await r2.gc({ graceMs: 0 })).toBeGreaterThanOrEqual(unrecorded.length);
        const left = await listNodes();
        expect(unrecorded.filter((k) => left.has(k))).toEqual([]);
        expect(await checkIndex(r2)).toEqual(before);
        await expectExact(r2, rows);
      } finally {
        await r2.close();
      }
      log.append = append;
      const st = await s.compact();
      expect(st.runs).toBeGreaterThan(0);
      await checkIndex(s);
      await expectExact(s, rows);
    } finally {
      await s.close();
    }
  });

  it('racing compactions and indexers: the record that loses is ignored by every reader, and redone', async () => {
    const { dir, s, rows } = await setup(1000);
    const b = await Stream.open(dir, 'ev', policy);
    const hold = (x: Stream, when: (r: ProgressRecord) => boolean, first: () => Promise<unknown>) => {
      const log = x.log as { append: typeof x.log.append };
      const append = log.append.bind(x.log);
      let fired = false;
      log.append = async (recs: ProgressRecord[]) => {
        if (!fired && recs.some(when)) {
          fired = true;
          await first(); // the other process gets its record in between this one's read and its append
        }
        return append(recs);
      };
      return () => {
        log.append = append;
        return fired;
      };
    };
    try {
      await s.indexStep(Math.floor(s.blockCount / 3));
      await b.indexStep(0); // b's view: a third indexed
      // an indexer adds a closed level-0 node to the open parent that a compaction is rewriting
      let release = hold(
        b,
        (r) => r.t === 'node' && r.level > 0,
        () => s.compact(),
      );
      await b.indexStep(Math.floor(s.blockCount / 3));
      expect(release()).toBe(true);
      expect(b.racesLost.nodes).toBeGreaterThan(0); // b's add lost, and b redid it on the new view
      await checkIndex(b);
      await expectExact(b, rows);
      // a compaction of the open parent's children while an indexer adds the next child to that parent
      await b.indexStep(8);
      release = hold(
        s,
        (r) => r.t === 'compact',
        () => b.indexStep(4),
      );
      const st = await s.compact();
      expect(release()).toBe(true);
      expect(st.racesLost).toBe(1);
      expect(s.racesLost.compacts).toBe(1);
      await checkIndex(s);
      await expectExact(s, rows);
      // two compactions from one view: the second loses
      await s.indexAll();
      release = hold(
        s,
        (r) => r.t === 'compact',
        () => b.compact(),
      );
      await s.compact();
      release();
      await b.compact();
      const view = await checkIndex(s);
      expect(await checkIndex(b)).toEqual(view);
      expect(b.racesLost).toEqual(s.racesLost); // every reader replays the same log to the same verdicts
      expect(s.racesLost.compacts).toBe(2);
      await expectExact(s, rows);
      await expectExact(b, rows);
    } finally {
      await b.close();
      await s.close();
    }
  });
});

describe('compaction: property test', () => {
  // Few distinct values a column, so level-0 nodes close at fanoutMax with few keys: compaction has work.
  const lineArb = fc
    .record({
      level: fc.constantFrom('INFO', 'WARN', 'ERROR'),
      user: fc.constantFrom('u0', 'u1', 'u2', 'u3', 'u4'),
      n: fc.integer({ min: 0, max: 9 }),
      msg: fc.array(fc.constantFrom(...words, 'rare_zz'), { maxLength: 3 }),
    })
    .map((r) => JSON.stringify({ ...r, msg: r.msg.join(' ') }));
  const atomArb = fc.oneof(
    fc.constantFrom('INFO', 'WARN', 'NONE').map((v) => `level = '${v}'`),
    fc.constantFrom('u0', 'u3', 'u9').map((v) => `user != '${v}'`),
    fc.constantFrom(...words, 'rare_zz').map((v) => `msg CONTAINS '${v}'`),
    fc.integer({ min: 0, max: 10 }).map((v) => `n >= ${v}`),
  );
  const exprArb = fc
    .tuple(atomArb, atomArb, fc.constantFrom('AND', 'OR'))
    .map(([a, b, op]) => `(${a} ${op} ${b})`);

  it('random streams, chunking, policies, compaction inside the indexer and beside searches: exact', async () => {
    let runs = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.array(lineArb, { minLength: 40, maxLength: 160, size: 'max' }),
        fc.integer({ min: 150, max: 700 }),
        fc.record({
          mergeKeysMax: fc.integer({ min: 30, max: 150 }),
          addKeysMax: fc.integer({ min: 5, max: 400 }),
          fanoutMax: fc.integer({ min: 2, max: 4 }),
          levelsMax: fc.integer({ min: 2, max: 5 }),
          compactEveryBlocks: fc.integer({ min: 0, max: 5 }),
          compactFanoutMax: fc.integer({ min: 4, max: 24 }),
        }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        fc.array(exprArb, { minLength: 1, maxLength: 4 }),
        async (lines, chunkBytes, pol, indexedFrac, qs) => {
          const dir = mkdtempSync(join(tmpdir(), 'helios-compact-'));
          createStream(dir, ddl);
          const file = join(dir, 'ev.jsonl');
          writeFileSync(file, `${lines.join('\n')}\n`);
          const s = await Stream.open(dir, 'ev', pol);
          const parser = new RowParser(s.def);
          const rows = lines.map((l) => parser.row(l));
          const exact = async (x: Stream) => {
            for (const q of qs) {
              const e = x.parse(q);
              expect((await x.search(e)).rows, q).toEqual(rows.filter((r) => evalExpr(e, r)));
            }
          };
          try {
            await s.ingestFile(file, { chunkBytes });
            await s.indexStep(Math.floor(s.blockCount * indexedFrac)); // compacts every compactEveryBlocks
            await exact(s);
            const reader = await Stream.open(dir, 'ev');
            try {
              await Promise.all([s.compact(), exact(s), exact(reader)]);
              await checkIndex(s);
              await exact(reader);
              await s.indexAll();
              await s.compact();
              await exact(s);
              expect(await checkIndex(reader)).toEqual(await checkIndex(s));
            } finally {
              await reader.close();
            }
            runs += s.compactions.runs;
          } finally {
            await s.close();
            rmSync(dir, { recursive: true, force: true });
          }
        },
      ),
      { numRuns: 25 },
    );
    expect(runs).toBeGreaterThan(8); // it had work (36 and 57 runs in two runs of this test)
    console.log(`compaction property test: ${runs} runs of nodes merged over 25 streams`);
  });
});
