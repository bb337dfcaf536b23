// Retention and the index: when blocks expire, the live nodes that reach past the expired prefix (a
// level-0 node that straddles it, the parents above) lose the expired blocks' keys, so that after gc no
// stored node or leaf holds a key only expired rows had. Also after a crash between the `expire` record
// and the index rewrite, and with two Streams (two processes) maintaining at once.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createStream, decodeNode, encodeNode, maintainSummary, nodeVersion, Stream } from '@strata/helios';
import { afterAll, describe, expect, it } from 'vitest';
import {
  beforeFirstCall,
  checkIndex,
  expectIndexEqualsScan,
  keyOf,
  listKeys,
  storedKeys,
} from './index-check.js';

const root = mkdtempSync(join(tmpdir(), 'helios-expire-index-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const dayMs = 86_400_000;
const ddl = `CREATE STREAM ev SOURCES ('x') FORMAT json COLUMNS (n INT, user STRING, msg TEXT)
  INDEX (user, TOKENS(msg)) STORAGE standard RETAIN 30 DAYS`;
// level-0 nodes of 4 blocks, parents of 4 children: the boundary falls inside a level-0 node, and the
// parent over it also holds level-0 nodes that expire whole
const policy = { mergeKeysMax: 100_000, addKeysMax: 100_000, fanoutMax: 4, compactEveryBlocks: 0 };

/** Lines n = from.. with message tokens `tag_n` (one row's alone) and `shared`. */
function writeLines(path: string, tag: string, from: number, count: number): void {
  const ls = Array.from({ length: count }, (_, i) =>
    JSON.stringify({ n: from + i, user: `u${(from + i) % 5}`, msg: `shared ${tag}_${from + i}` }),
  );
  writeFileSync(path, `${ls.join('\n')}\n`);
}

/**
 * A stream of day-0 lines (`old_n`), then day-20 lines (`new_n`), indexed together so that a level-0 node
 * holds blocks of both; the clock then at day 31 (the day-0 blocks past RETAIN). Returns the clock's
 * setter target and the day-0 block count.
 */
async function setUp(
  name: string,
  pol: typeof policy = policy,
  /** Index only the day-0 blocks and this many more (default: all; 'none': nothing). */
  indexPast?: number | 'none',
): Promise<{ dir: string; clock: { now: number }; day0Blocks: number }> {
  const dir = join(root, name);
  createStream(dir, ddl);
  const clock = { now: Date.now() };
  const s = await Stream.open(dir, 'ev', { ...pol, nowMs: () => clock.now });
  try {
    const f1 = join(dir, 'day0.jsonl');
    writeLines(f1, 'old', 0, 300);
    await s.ingestFile(f1, { chunkBytes: 2048 });
    const day0Blocks = s.blockCount;
    clock.now += 20 * dayMs;
    const f2 = join(dir, 'day20.jsonl');
    writeLines(f2, 'new', 300, 300);
    await s.ingestFile(f2, { chunkBytes: 2048 });
    if (indexPast === undefined) await s.indexAll();
    else if (indexPast !== 'none') await s.indexStep(day0Blocks + indexPast);
    clock.now += 11 * dayMs;
    return { dir, clock, day0Blocks };
  } finally {
    await s.close();
  }
}

/** Brings `s`'s view up to the log's end (a private step of every operation). */
function catchUp(s: Stream): Promise<void> {
  return (s as unknown as { catchUp(): Promise<void> }).catchUp();
}

/** The live level-0 node [from, to) that holds the boundary `upTo` inside it (the test's premise). */
function straddler(s: Stream, upTo: number): { from: number; to: number } | undefined {
  const lv0 = (s as unknown as { levels: Map<number, { from: number; to: number }>[] }).levels[0]!;
  return [...lv0.values()].find((n) => n.from < upTo && upTo < n.to);
}

/** After gc: no stored index object holds an expired row's own key, and the index is exact. */
async function expectExpiredGone(s: Stream, day0Blocks: number): Promise<void> {
  await s.gc({ graceMs: 0 });
  expect(s.sizes().expiredBlocks).toBe(day0Blocks);
  const { keys: stored } = await storedKeys(s);
  const old = Array.from({ length: 300 }, (_, i) => keyOf(s, 2, `old_${i}`)).flat();
  expect(old.filter((k) => stored.has(k)).length, 'keys of expired rows stored').toBe(0);
  // the later rows' keys are all there
  const kept = Array.from({ length: 300 }, (_, i) => keyOf(s, 2, `new_${300 + i}`)).flat();
  expect(kept.filter((k) => !stored.has(k))).toEqual([]);
  await expectIndexEqualsScan(s, [
    "msg CONTAINS 'old_5'",
    "user = 'u3'",
    "msg CONTAINS 'new_301'",
    "msg CONTAINS 'shared'",
  ]);
  await checkIndex(s);
}

/**
 * Stores every node above level 0 again as a version from before child ranges wrote it: the same node
 * without `ranges`. Returns their keys.
 */
async function stripRanges(s: Stream): Promise<string[]> {
  const rewritten: string[] = [];
  for (const key of await listKeys(s.store, 'ev/nodes/')) {
    const bytes = await s.store.get(key);
    const node = decodeNode(bytes, key);
    if (node.header.level === 0 || !node.header.ranges) continue;
    delete node.header.ranges;
    await s.store.put(key, encodeNode(node, nodeVersion(bytes) === 2 ? 2 : 1));
    rewritten.push(key);
  }
  return rewritten;
}

describe('retention drops the expired blocks from the index nodes that reach past them', () => {
  it('a straddling level-0 node and its parents lose the expired keys; index and scan agree', async () => {
    const { dir, clock, day0Blocks } = await setUp('straddle');
    const s = await Stream.open(dir, 'ev', { ...policy, nowMs: () => clock.now });
    try {
      await catchUp(s);
      expect(straddler(s, day0Blocks), 'a level-0 node holds blocks of both days').toBeDefined();
      expect(s.indexedBlocks).toBe(s.blockCount);
      const m = await s.maintain({ graceMs: 0 });
      expect(m.expired).toBe(day0Blocks);
      expect(m.expiredNodes, 'the straddling node and its parents rewritten').toBeGreaterThan(1);
      expect(maintainSummary(m)).toContain(`, rewrote ${m.expiredNodes} index nodes holding expired keys`);
      await expectExpiredGone(s, day0Blocks);
      // the indexer goes on past it, and a second maintain finds nothing more to drop
      const f3 = join(dir, 'day31.jsonl');
      writeLines(f3, 'late', 600, 100);
      await s.ingestFile(f3, { chunkBytes: 2048 });
      await s.indexAll();
      const racesLost = { ...s.racesLost };
      expect((await s.maintain({ graceMs: 0 })).expiredNodes).toBe(0);
      expect(s.racesLost).toEqual(racesLost);
      await expectExpiredGone(s, day0Blocks);
    } finally {
      await s.close();
    }
    // a second opener replays the same view
    const s2 = await Stream.open(dir, 'ev', { ...policy, nowMs: () => clock.now });
    try {
      await checkIndex(s2);
    } finally {
      await s2.close();
    }
  });

  it('a maintain that fails after its expire record is finished by the next one (another process)', async () => {
    const { dir, clock, day0Blocks } = await setUp('crash');
    const a = await Stream.open(dir, 'ev', { ...policy, nowMs: () => clock.now });
    let failed = false;
    try {
      // the first index node write after the expire record fails (a crash there, as far as the log knows)
      const ran = beforeFirstCall(a, 'putNode', async () => {
        throw new Error('injected: killed after the expire record');
      });
      failed = await a.maintain({ graceMs: 0 }).then(
        () => false,
        (e) => /injected/.test((e as Error).message),
      );
      expect(failed).toBe(ran());
    } finally {
      await a.close();
    }
    const b = await Stream.open(dir, 'ev', { ...policy, nowMs: () => clock.now });
    try {
      await catchUp(b);
      expect(b.sizes().expiredBlocks).toBe(day0Blocks); // the expire record stands
      const m = await b.maintain({ graceMs: 0 });
      expect(m.expired).toBe(0);
      expect(m.expiredNodes, 'the drop the first maintain did not make').toBeGreaterThan(0);
      await expectExpiredGone(b, day0Blocks);
    } finally {
      await b.close();
    }
    expect(failed, 'the first maintain failed where injected').toBe(true);
  });

  it('two Streams maintaining at once: one rewrite wins, the other replans and drops nothing more', async () => {
    const { dir, clock, day0Blocks } = await setUp('race');
    const a = await Stream.open(dir, 'ev', { ...policy, nowMs: () => clock.now });
    const b = await Stream.open(dir, 'ev', { ...policy, nowMs: () => clock.now });
    try {
      // b has planned its rewrite on its view when a expires and rewrites the same nodes first
      // (gc's grace period keeps b's unrecorded objects from a's gc, as between processes)
      const ran = beforeFirstCall(b, 'putNode', () => a.maintain());
      await b.maintain();
      await catchUp(a);
      await expectExpiredGone(b, day0Blocks);
      await expectExpiredGone(a, day0Blocks);
      expect(ran()).toBe(true);
      expect(b.racesLost.renodes).toBeGreaterThan(0);
      expect(a.racesLost).toEqual(b.racesLost);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('an indexer that read expired blocks before the expiry records its node after the drop: it loses', async () => {
    // Nothing indexed yet: the indexer reads the day-0 blocks' leaves, then (before it writes its first
    // node) a maintain expires them and finds no node to drop their keys from; the node recorded after that
    // holds them. Built on a view from before the expiry, it now loses, and the indexer builds it again
    // with the expired blocks' keys left out (before: they stayed until the next maintain).
    const { dir, clock, day0Blocks } = await setUp('late-node', policy, 'none');
    const a = await Stream.open(dir, 'ev', { ...policy, nowMs: () => clock.now });
    const c = await Stream.open(dir, 'ev', { ...policy, nowMs: () => clock.now });
    try {
      const ran = beforeFirstCall(a, 'putNode', () => c.maintain());
      await a.indexAll();
      expect(ran()).toBe(true);
      expect(a.racesLost.nodes).toBeGreaterThan(0);
      expect(a.indexedBlocks).toBe(a.blockCount);
      await expectExpiredGone(a, day0Blocks);
    } finally {
      await a.close();
      await c.close();
    }
  });

  it('an indexer that extends the straddling node first: the drop is redone on the node it wrote', async () => {
    // the level-0 node over the boundary is the open tail (nodes of up to 16 blocks): the indexer extends
    // it with the later blocks, from the object the maintain is about to replace
    const pol = { ...policy, fanoutMax: 16 };
    const { dir, clock, day0Blocks } = await setUp('indexer', pol, 2);
    const a = await Stream.open(dir, 'ev', { ...pol, nowMs: () => clock.now });
    const c = await Stream.open(dir, 'ev', { ...pol, nowMs: () => clock.now });
    try {
      await catchUp(a);
      expect(a.indexedBlocks).toBe(day0Blocks + 2);
      expect(straddler(a, day0Blocks)).toBeDefined();
      const ran = beforeFirstCall(a, 'putNode', () => c.indexAll());
      await a.maintain();
      await catchUp(c);
      await expectExpiredGone(a, day0Blocks);
      await expectExpiredGone(c, day0Blocks);
      expect(c.indexedBlocks).toBe(c.blockCount);
      expect(ran()).toBe(true);
      expect(a.racesLost.renodes).toBeGreaterThan(0); // a's first plan lost to the indexer's node record
    } finally {
      await a.close();
      await c.close();
    }
  });

  it("nodes written without their children's ranges (before they carried them) lose the expired keys too", async () => {
    const { dir, clock, day0Blocks } = await setUp('no-ranges');
    const s = await Stream.open(dir, 'ev', { ...policy, nowMs: () => clock.now });
    try {
      expect((await stripRanges(s)).length, 'parents to strip').toBeGreaterThan(0);
      expect(straddler(s, day0Blocks), 'a level-0 node holds blocks of both days').toBeDefined();
      const m = await s.maintain({ graceMs: 0 });
      expect(m.expired).toBe(day0Blocks);
      expect(m.expiredNodes).toBeGreaterThan(1);
      await expectExpiredGone(s, day0Blocks);
      await expectIndexEqualsScan(s, [
        "NOT user = 'u1'",
        "user = 'u1' OR msg CONTAINS 'old_3'",
        "NOT msg CONTAINS 'shared'",
        'n >= 0',
      ]);
      // an erasure through those parents too
      const secret = keyOf(s, 2, 'new_310');
      expect((await s.erase("msg CONTAINS 'new_310'", { gcGraceMs: 0 })).rows).toBe(1);
      await s.gc({ graceMs: 0 });
      const { keys: stored } = await storedKeys(s);
      expect(secret.filter((k) => stored.has(k))).toEqual([]);
      await expectIndexEqualsScan(s, ["msg CONTAINS 'new_310'", "msg CONTAINS 'new_311'", "user = 'u0'"]);
      await checkIndex(s);
    } finally {
      await s.close();
    }
  });

  it('nodes without ranges under the indexer and compaction, before and after retention', async () => {
    const pol = { mergeKeysMax: 40, addKeysMax: 200, fanoutMax: 4, compactEveryBlocks: 0 };
    const { dir, clock, day0Blocks } = await setUp('no-ranges-more', pol);
    const s = await Stream.open(dir, 'ev', { ...pol, nowMs: () => clock.now });
    try {
      const stripped = new Set(await stripRanges(s));
      expect(stripped.size).toBeGreaterThan(0);
      const queries = ["msg CONTAINS 'old_3'", "msg CONTAINS 'new_333'", "user = 'u2'", "NOT user = 'u1'"];
      // more blocks indexed over the old parents, then compacted
      const f3 = join(dir, 'day31.jsonl');
      writeLines(f3, 'late', 600, 300);
      await s.ingestFile(f3, { chunkBytes: 2048 });
      await s.indexAll();
      await s.compact();
      await expectIndexEqualsScan(s, queries);
      await checkIndex(s);
      await s.maintain({ graceMs: 0 });
      await s.compact();
      await s.indexAll();
      await expectExpiredGone(s, day0Blocks);
      await expectIndexEqualsScan(s, [...queries, "msg CONTAINS 'late_700'"]);
      // every node above level 0 this version wrote since carries its children's ranges again (merged
      // with an old parent, it lost them)
      const levels = (s as unknown as { levels: Map<number, { key: string }>[] }).levels;
      const written = levels
        .slice(1)
        .flatMap((m) => [...m.values()].map((n) => n.key))
        .filter((k) => !stripped.has(k));
      expect(written.length).toBeGreaterThan(0);
      const rangeless = [];
      for (const key of written)
        if (!decodeNode(await s.store.get(key), key).header.ranges) rangeless.push(key);
      expect(rangeless).toEqual([]);
    } finally {
      await s.close();
    }
  });
});
