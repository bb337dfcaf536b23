import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { IndexNode } from '../src/node.js';
import { NodeCache, nodeCacheMax } from '../src/nodecache.js';

/** The cache only keeps nodes; which node it is does not matter to it. */
const node = (k: string) => ({ k }) as unknown as IndexNode;

const keys = ['n0', 'n1', 'n2', 'n3', 'n4', 'n5', 'n6', 'n7', 'n8', 'n9'];
const key = fc.constantFrom(...keys);
const ops = fc.array(
  fc.oneof(
    {
      weight: 4,
      arbitrary: fc.record({
        op: fc.constant('put' as const),
        k: key,
        bytes: fc.integer({ min: 0, max: 30 }),
        upper: fc.boolean(),
      }),
    },
    { weight: 2, arbitrary: fc.record({ op: fc.constant('get' as const), k: key }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant('delete' as const), k: key }) },
    {
      weight: 1,
      arbitrary: fc.record({
        op: fc.constant('view' as const),
        upper: fc.subarray(keys, { maxLength: 3 }),
        level0: fc.subarray(keys, { maxLength: 5 }),
      }),
    },
  ),
  { maxLength: 50 },
);

describe('NodeCache', () => {
  it('keeps the current upper nodes whatever its bounds, drops what is not current before current level-0 nodes, least recently used first, down to its bound (property)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 60 }), ops, (bytesMax, list) => {
        let upper = new Set<string>();
        let level0 = new Set<string>();
        const cache = new NodeCache({ upper: () => new Set(upper), level0: () => new Set(level0) }, bytesMax);
        // what the cache holds, least recently used first
        let held: { k: string; bytes: number }[] = [];
        for (const o of list) {
          if (o.op === 'view') {
            upper = new Set(o.upper);
            level0 = new Set(o.level0.filter((k) => !upper.has(k)));
            continue;
          }
          if (o.op === 'get') {
            const at = held.findIndex((e) => e.k === o.k);
            expect(cache.get(o.k)).toEqual(at < 0 ? undefined : node(o.k));
            if (at >= 0) held.push(...held.splice(at, 1));
            continue;
          }
          if (o.op === 'delete') {
            cache.delete(o.k);
            held = held.filter((e) => e.k !== o.k);
            continue;
          }
          cache.put(o.k, node(o.k), o.bytes, o.upper);
          const before = [...held.filter((e) => e.k !== o.k), { k: o.k, bytes: o.bytes }];
          held = before.filter((e) => cache.has(e.k));
          const gone = before.filter((e) => !cache.has(e.k));
          const pinned = (k: string) => upper.has(k) || (o.upper && k === o.k);
          expect(cache.has(o.k)).toBe(true);
          for (const e of gone) expect(pinned(e.k)).toBe(false);
          // within the bounds counted without the pinned nodes, or nothing left to drop but the one put
          const free = held.filter((e) => !pinned(e.k));
          const within = free.length <= nodeCacheMax && free.reduce((n, e) => n + e.bytes, 0) <= bytesMax;
          expect(within || free.every((e) => e.k === o.k)).toBe(true);
          // what is not current goes before a current level-0 node, the least recently used first
          const rank = (e: { k: string }) => (level0.has(e.k) ? 1 : 0);
          const order = (e: { k: string }) => before.findIndex((b) => b.k === e.k);
          const dropOrder = (x: { k: string }, y: { k: string }) => rank(x) - rank(y) || order(x) - order(y);
          for (const g of gone)
            for (const e of free) if (e.k !== o.k) expect(dropOrder(g, e)).toBeLessThan(0);
          // nothing dropped that did not have to go: without the last one dropped it would be over the bound
          if (gone.length > 0) {
            const last = [...gone].sort(dropOrder).pop()!;
            const withLast = [...free, last];
            expect(
              withLast.reduce((n, e) => n + e.bytes, 0) > bytesMax || withLast.length > nodeCacheMax,
            ).toBe(true);
          }
          expect(cache.stats.nodes).toBe(held.length);
          expect(cache.stats.bytes).toBe(held.reduce((n, e) => n + e.bytes, 0));
        }
      }),
      { numRuns: 500 },
    );
  });

  it(`keeps at most ${nodeCacheMax} nodes that can be dropped, whatever their bytes`, () => {
    const cache = new NodeCache({ upper: () => new Set(['top']), level0: () => new Set() }, 1 << 30);
    cache.put('top', node('top'), 1);
    for (let i = 0; i < nodeCacheMax + 10; i++) cache.put(`n${i}`, node(`n${i}`), 1);
    expect(cache.stats.nodes).toBe(nodeCacheMax + 1);
    expect(cache.has('top')).toBe(true);
    expect(cache.has('n9')).toBe(false);
    expect(cache.has('n10')).toBe(true);
    expect(cache.stats).toMatchObject({ upperNodes: 1, upperBytes: 1 });
  });
});
