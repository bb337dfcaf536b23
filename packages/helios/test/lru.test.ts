import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BytesLru } from '../src/lru.js';

type Op =
  | { op: 'get'; k: string }
  | { op: 'put'; k: string; bytes: number }
  | { op: 'drop'; k: string }
  | { op: 'bound'; max: number };

const key = fc.constantFrom('a', 'b', 'c', 'd', 'e', 'f', 'a#1', 'a#2', 'b#1');
const ops = fc.array(
  fc.oneof(
    fc.record({ op: fc.constant('get' as const), k: key }),
    fc.record({ op: fc.constant('put' as const), k: key, bytes: fc.integer({ min: 0, max: 40 }) }),
    fc.record({ op: fc.constant('drop' as const), k: key }),
    fc.record({ op: fc.constant('bound' as const), max: fc.integer({ min: 0, max: 100 }) }),
  ),
  { maxLength: 60 },
);

describe('BytesLru', () => {
  it('holds what a list in use order holds: at most its bound in bytes, counting a value once, dropping the least recently used first', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 100 }), ops, (max, list) => {
        const lru = new BytesLru<string>(max);
        // the model: entries least recently used first
        let model: { k: string; v: string; bytes: number }[] = [];
        let bound = max;
        list.forEach((o: Op, i) => {
          if (o.op === 'get') {
            const at = model.findIndex((e) => e.k === o.k);
            const want = at < 0 ? undefined : model[at]!.v;
            if (at >= 0) model.push(...model.splice(at, 1));
            expect(lru.get(o.k)).toBe(want);
          } else if (o.op === 'put') {
            const v = `${o.k}@${i}`;
            model = model.filter((e) => e.k !== o.k);
            model.push({ k: o.k, v, bytes: o.bytes });
            // the least recently used go while over the bound, never the value just put
            let sum = model.reduce((n, e) => n + e.bytes, 0);
            while (sum > bound && model[0]!.k !== o.k) sum -= model.shift()!.bytes;
            lru.put(o.k, v, o.bytes);
          } else if (o.op === 'drop') {
            // a node's directory and its pages go together, as gc drops a deleted node's
            model = model.filter((e) => e.k.split('#')[0] !== o.k);
            lru.dropWhere((k) => k.split('#')[0] === o.k);
          } else {
            bound = o.max;
            lru.bytesMax = o.max; // takes effect at the next put
          }
          expect([...lru.keys()]).toEqual(model.map((e) => e.k));
          expect([...lru.values()].map((e) => e.v)).toEqual(model.map((e) => e.v));
          expect(lru.size).toBe(model.length);
          expect(lru.bytes).toBe(model.reduce((n, e) => n + e.bytes, 0));
        });
      }),
      { numRuns: 500 },
    );
  });

  it('keeps one value larger than its bound, alone, until the next put', () => {
    const lru = new BytesLru<number>(10);
    lru.put('a', 1, 4);
    lru.put('b', 2, 4);
    lru.put('big', 3, 25);
    expect([...lru.keys()]).toEqual(['big']);
    expect(lru.bytes).toBe(25);
    lru.put('c', 4, 1);
    expect([...lru.keys()]).toEqual(['c']);
    expect(lru.bytes).toBe(1);
  });
});
