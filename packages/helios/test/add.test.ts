// The add operator in batches: a record naming several children, the fan-out split, promotions, and an
// index built by the add operator of before (one record per child) still read and extended.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  createStream,
  decodeNode,
  encodeNode,
  evalExpr,
  type IndexNode,
  leafNode,
  mergeNodes,
  type ProgressRecord,
  type Row,
  RowParser,
  Stream,
} from '@strata/helios';
import { afterEach, describe, expect, it } from 'vitest';
import { checkIndex } from './index-check.js';

// A token of its own in every line: leaves of a few dozen keys, so level-0 nodes close by keys.
const ddl = `CREATE STREAM ev SOURCES ('file:ev.jsonl') FORMAT json
  COLUMNS (user STRING, n INT, msg TEXT) INDEX (user, TOKENS(msg))`;
const lineOf = (i: number) => JSON.stringify({ user: `u${i % 7}`, n: i, msg: `t${i} w${i % 5}` });

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

async function setup(lines: number, policy: Record<string, number>) {
  const dir = mkdtempSync(join(tmpdir(), 'helios-add-'));
  dirs.push(dir);
  createStream(dir, ddl);
  const file = join(dir, 'ev.jsonl');
  const text = Array.from({ length: lines }, (_, i) => lineOf(i));
  writeFileSync(file, `${text.join('\n')}\n`);
  const s = await Stream.open(dir, 'ev', { compactEveryBlocks: 0, ...policy });
  await s.ingestFile(file, { chunkBytes: 1024 });
  const parser = new RowParser(s.def);
  return { dir, s, rows: text.map((l) => parser.row(l)) };
}

const queries = ["user = 'u3'", "msg CONTAINS 't1234'", "msg CONTAINS 'w2' AND user = 'u1'", 'n > 1500'];

async function expectExact(s: Stream, rows: Row[]): Promise<void> {
  for (const q of queries) {
    const e = s.parse(q);
    expect((await s.search(e)).rows, q).toEqual(rows.filter((r) => evalExpr(e, r)));
  }
}

async function records(s: Stream): Promise<ProgressRecord[]> {
  return s.log.read(0, (await s.log.checkTail()).tail);
}

type NodeRec = Extract<ProgressRecord, { t: 'node' }>;
const nodeRecs = (recs: ProgressRecord[], level: number) =>
  recs.filter((r): r is NodeRec => r.t === 'node' && r.level === level);

/** The live nodes of each level: (from, key) from the search stats' view, read through the export. */
async function liveNodes(s: Stream): Promise<Map<string, { level: number; children: number }>> {
  const out = new Map<string, { level: number; children: number }>();
  for await (const line of s.indexEntries()) {
    const e = JSON.parse(line) as { level: number; node_key: string };
    if (!out.has(e.node_key)) {
      const n = decodeNode(await s.store.get(e.node_key), e.node_key);
      out.set(e.node_key, { level: e.level, children: n.header.children.length });
    }
  }
  return out;
}

describe('the add operator in batches', () => {
  it('one pass puts the closed nodes of a level under parents of at most fanoutMax children, one record a parent', async () => {
    const { dir, s, rows } = await setup(2000, {
      mergeKeysMax: 60,
      addKeysMax: 100_000,
      fanoutMax: 4,
      levelsMax: 4,
    });
    try {
      expect(s.blockCount).toBeGreaterThan(60);
      await s.indexAll();
      const perLevel = await checkIndex(s);
      const recs = await records(s);
      const l1 = nodeRecs(recs, 1);
      // the batch: a record that names several children, and one record for each level-1 node
      expect(l1.some((r) => (r.added?.length ?? 0) > 1)).toBe(true);
      expect(l1.length).toBe(perLevel[1]);
      for (const r of l1) expect(r.added ?? [r.child]).toHaveLength(r.children!);
      // the fan-out split: every node above level 0 has 2..fanoutMax children
      const live = await liveNodes(s);
      const upper = [...live.values()].filter((n) => n.level > 0);
      expect(upper.length).toBeGreaterThan(4);
      for (const n of upper) {
        expect(n.children).toBeGreaterThanOrEqual(2);
        expect(n.children).toBeLessThanOrEqual(4);
      }
      expect(perLevel.length).toBeGreaterThan(2);
      await expectExact(s, rows);
      const again = await Stream.open(dir, 'ev');
      try {
        await expectExact(again, rows);
        expect((await again.search(again.parse(''), { limit: 0 })).stats.levels).toEqual(
          (await s.search(s.parse(''), { limit: 0 })).stats.levels,
        );
      } finally {
        await again.close();
      }
    } finally {
      await s.close();
    }
  });

  it('an indexer that follows block by block writes a parent a few times as it fills, not once per child; searches exact at every step', async () => {
    const { s, rows } = await setup(2400, {
      mergeKeysMax: 60,
      addKeysMax: 100_000,
      fanoutMax: 16,
      levelsMax: 3,
    });
    try {
      for (let step = 0; (await s.indexStep(1)) > 0; step++) if (step % 7 === 3) await expectExact(s, rows);
      await checkIndex(s);
      await expectExact(s, rows);
      const l1 = nodeRecs(await records(s), 1);
      const first = l1.filter((r) => r.from === 0);
      // the first parent filled (16 children); one by one that took 15 records, geometrically about 6
      expect(first[first.length - 1]!.children).toBe(16);
      expect(first.length).toBeLessThanOrEqual(8);
      expect(l1.some((r) => (r.added?.length ?? 0) > 1)).toBe(true);
    } finally {
      await s.close();
    }
  });

  it('a record whose children are not the level-below nodes at its start, in order, up to its end, is ignored by every reader', async () => {
    const { dir, s, rows } = await setup(800, { mergeKeysMax: 60, levelsMax: 1 });
    try {
      await s.indexAll(); // levelsMax 1: level 0 only, every node an orphan
      const l0 = nodeRecs(await records(s), 0).sort((a, b) => a.from - b.from);
      expect(l0.length).toBeGreaterThan(4);
      const [a, b, c] = l0 as [NodeRec, NodeRec, NodeRec];
      const forged = (added: string[], to: number): ProgressRecord => ({
        t: 'node',
        level: 1,
        from: a.from,
        to,
        key: 'ev/nodes/L1/forged',
        keys: 1,
        bytes: 1,
        base: null,
        added,
        children: added.length,
      });
      const bad = [
        forged([a.key, c.key], c.to), // skips a child
        forged([b.key, a.key], b.to), // out of order
        forged([a.key, b.key], c.to), // ends past its last child
        forged([a.key, b.key, c.key], b.to), // ends before it
      ];
      for (const r of bad) await s.log.append([r]);
      const st = await s.search(s.parse("user = 'u3'"));
      expect(s.racesLost.nodes).toBe(bad.length);
      expect(st.stats.levels.length).toBe(1);
      await expectExact(s, rows);
      const again = await Stream.open(dir, 'ev', { mergeKeysMax: 60, fanoutMax: 4, compactEveryBlocks: 0 });
      try {
        expect(again.racesLost.nodes).toBe(bad.length);
        // the indexer of this reader adds them for real, in batches, and the index is exact
        await again.indexAll();
        expect(nodeRecs(await records(again), 1).some((r) => (r.added?.length ?? 0) > 1)).toBe(true);
        await checkIndex(again);
        await expectExact(again, rows);
      } finally {
        await again.close();
      }
    } finally {
      await s.close();
    }
  });

  it('a record of a type this version does not know stops every reader with an error that names it, not skipped', async () => {
    const { dir, s } = await setup(200, { mergeKeysMax: 60 });
    try {
      await s.indexAll();
      await s.log.append([{ t: 'graft', level: 1 } as unknown as ProgressRecord]);
      await expect(s.search(s.parse("user = 'u3'"))).rejects.toThrow(
        /type this version does not know \("graft"\)/,
      );
      await expect(s.indexStep()).rejects.toThrow(/"graft"/); // again at the next catch-up
      await expect(Stream.open(dir, 'ev')).rejects.toThrow(/"graft"/);
    } finally {
      await s.close();
    }
  });

  it('a node that fills a parent alone is promoted (the level names its object), and erasure rewrites through it', async () => {
    // a parent fills at two level-0 nodes: every level-1 node is full, and level 2 promotes them
    const { s, rows } = await setup(1500, { mergeKeysMax: 60, addKeysMax: 100, fanoutMax: 8, levelsMax: 4 });
    try {
      await s.indexAll();
      const recs = await records(s);
      const promoted = recs.filter((r): r is NodeRec => r.t === 'node' && r.level > 1 && r.key === r.child);
      expect(promoted.length).toBeGreaterThan(2);
      await checkIndex(s);
      await expectExact(s, rows);
      // no node object above level 0 with a single child: a promotion writes none
      for (const n of (await liveNodes(s)).values())
        if (n.level > 0) expect(n.children).toBeGreaterThanOrEqual(2);
      // erase the rows of one token under a promoted node: the renode names the promotion's new object too
      const under = promoted[0]!;
      const victim = rows.findIndex((r) => (r[1] as number) >= under.from * 5 && (r[1] as number) % 5 === 1);
      const token = `t${victim}`;
      const r = await s.erase(`msg CONTAINS '${token}'`, { gcGraceMs: 0 });
      expect(r.rows).toBe(1);
      expect(r.nodesRewritten).toBeGreaterThan(2);
      const left = rows.filter((_, i) => i !== victim);
      await checkIndex(s);
      await expectExact(s, left);
      expect((await s.search(s.parse(`msg CONTAINS '${token}'`))).rows).toEqual([]);
    } finally {
      await s.close();
    }
  });

  it('a compaction under a promoted parent renames the promotion too; gc, a reopened reader and an erasure agree', async () => {
    // level-0 nodes close at 2 blocks and stay small (mergeKeysMax 200); two of them fill a level-1
    // parent (addKeysMax 100), which level 2 then promotes; compaction merges the parent's small children
    const policy = { mergeKeysMax: 200, addKeysMax: 100, fanoutMax: 2, compactFanoutMax: 8, levelsMax: 4 };
    const { dir, s, rows } = await setup(1200, policy);
    try {
      await s.indexAll();
      const promoted = nodeRecs(await records(s), 2).filter((r) => r.key === r.child);
      expect(promoted.length).toBeGreaterThan(2);
      const st = await s.compact();
      expect(st.runs).toBeGreaterThan(0);
      const compacts = (await records(s)).filter(
        (r): r is Extract<ProgressRecord, { t: 'compact' }> => r.t === 'compact',
      );
      // the path goes on through the promotion: the level above the parent names the parent's new object
      const through = compacts.filter((r) => r.path.some((p, i) => i > 0 && p.key === r.path[i - 1]!.key));
      expect(through.length).toBeGreaterThan(0);
      expect(s.racesLost.compacts).toBe(0);
      await checkIndex(s);
      await expectExact(s, rows);
      // the superseded parents and children, deleted several at a time; a delete that fails is not
      // counted and leaves its object to the next pass
      const store = s.store as unknown as { delete: (k: string, o?: unknown) => Promise<void> };
      const del = store.delete.bind(store);
      let calls = 0;
      store.delete = (k, o) => (++calls % 3 === 0 ? Promise.reject(new Error('EIO')) : del(k, o));
      const first = await s.gc({ graceMs: 0 });
      store.delete = del;
      expect(first).toBeGreaterThan(0);
      expect(first).toBe(calls - Math.floor(calls / 3));
      expect(await s.gc({ graceMs: 0 })).toBe(Math.floor(calls / 3));
      expect(await s.gc({ graceMs: 0 })).toBe(0);
      await checkIndex(s);
      await expectExact(s, rows);
      const again = await Stream.open(dir, 'ev', { compactEveryBlocks: 0, ...policy });
      try {
        await expectExact(again, rows);
        const token = 't100';
        expect((await again.erase(`msg CONTAINS '${token}'`, { gcGraceMs: 0 })).rows).toBe(1);
        const left = rows.filter((r) => r[1] !== 100);
        await checkIndex(again);
        await expectExact(again, left);
        expect((await again.search(again.parse(`msg CONTAINS '${token}'`))).rows).toEqual([]);
      } finally {
        await again.close();
      }
    } finally {
      await s.close();
    }
  });

  it('a crash between writing a parent and appending its record leaves the old view; a restart adds the children again and gc takes the unrecorded object', async () => {
    const policy = { mergeKeysMax: 60, fanoutMax: 4, levelsMax: 3 };
    const { dir, s, rows } = await setup(800, policy);
    const l1Objects = async (x: Stream) => (await x.store.list('ev/nodes/L1/')).objects.map((o) => o.key);
    let unrecorded: string[] = [];
    try {
      const log = s.log as { append: typeof s.log.append };
      const append = log.append.bind(s.log);
      let attempts = 0;
      log.append = async (recs: ProgressRecord[]) => {
        if (recs.some((r) => r.t === 'node' && r.level > 0)) {
          attempts++;
          throw new Error('progress log unreachable');
        }
        return append(recs);
      };
      await expect(s.indexAll()).rejects.toThrow('progress log unreachable');
      expect(attempts).toBe(1);
      unrecorded = await l1Objects(s);
      expect(unrecorded.length).toBe(1); // the parent, written and never recorded
      const levels = (await s.search(s.parse(''), { limit: 0 })).stats.levels;
      expect(levels.length).toBe(1); // no level-1 node in the view: level 0's nodes are orphans
      await checkIndex(s);
      await expectExact(s, rows);
      log.append = append;
    } finally {
      await s.close();
    }
    const again = await Stream.open(dir, 'ev', { compactEveryBlocks: 0, ...policy });
    try {
      await expectExact(again, rows);
      await again.indexAll();
      expect(again.racesLost.nodes).toBe(0);
      expect(nodeRecs(await records(again), 1).length).toBeGreaterThan(0);
      await checkIndex(again);
      await expectExact(again, rows);
      expect(await l1Objects(again)).toEqual(expect.arrayContaining(unrecorded));
      expect(await again.gc({ graceMs: 0 })).toBeGreaterThanOrEqual(unrecorded.length);
      const left = await l1Objects(again);
      expect(unrecorded.filter((k) => left.includes(k))).toEqual([]);
      await checkIndex(again);
      await expectExact(again, rows);
    } finally {
      await again.close();
    }
  });

  it('an index the add operator of before wrote (a parent rewritten for each child, one `child` record each) is read and extended', async () => {
    const { dir, s, rows } = await setup(1200, { mergeKeysMax: 60, levelsMax: 1 });
    let parentKey: string | null = null;
    const l0 = nodeRecs(await records(s), 0);
    expect(l0).toEqual([]);
    try {
      await s.indexAll();
      const nodes = nodeRecs(await records(s), 0).sort((a, b) => a.from - b.from);
      expect(nodes.length).toBeGreaterThan(6);
      // the old add operator: merge each closed child into the parent, write it whole, one record each
      let parent: IndexNode | undefined;
      for (const c of nodes.slice(0, 3)) {
        const keys = decodeNode(await s.store.get(c.key), c.key).keys;
        const one = leafNode(1, c.from, c.to, c.key, keys, [c.from, c.to]);
        parent = parent ? mergeNodes(parent, one) : one;
        const key = `ev/nodes/L1/${parent.header.from}-${parent.header.to}-old${c.from}`;
        const bytes = encodeNode(parent);
        await s.store.put(key, bytes);
        await s.log.append([
          {
            t: 'node',
            level: 1,
            from: parent.header.from,
            to: parent.header.to,
            key,
            keys: parent.keys.length,
            bytes: bytes.length,
            base: parentKey,
            child: c.key,
          },
        ]);
        parentKey = key;
      }
    } finally {
      await s.close();
    }
    const again = await Stream.open(dir, 'ev', { mergeKeysMax: 60, fanoutMax: 6, compactEveryBlocks: 0 });
    try {
      const view = (await again.search(again.parse(''), { limit: 0 })).stats.levels;
      expect(view.map((l) => l.nodes)).toEqual([expect.any(Number), 1]);
      expect(again.racesLost.nodes).toBe(0);
      await checkIndex(again);
      await expectExact(again, rows);
      // the indexer of now takes the old parent as its open parent and adds the rest in one record
      await again.indexAll();
      const l1 = nodeRecs(await records(again), 1);
      const next = l1[3]!;
      expect(next.base).toBe(parentKey);
      expect(next.added?.length).toBe(3);
      await checkIndex(again);
      await expectExact(again, rows);
    } finally {
      await again.close();
    }
  });
});
