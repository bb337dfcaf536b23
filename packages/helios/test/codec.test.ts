import {
  BlockReader,
  decodeNode,
  encodeBlock,
  encodeNode,
  fieldParser,
  leafNode,
  lookup,
  mergeNodes,
  sortUnique,
} from '@strata/helios';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

const keysArb = fc
  .array(fc.integer({ min: 0, max: 2 ** 53 - 1 }), { maxLength: 300 })
  .map((xs) => sortUnique(Float64Array.from(xs)));

describe('index nodes', () => {
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
    expect(() => new BlockReader(bad, 'b1')).toThrow(/b1: checksum mismatch/);
    expect(new BlockReader(bytes).rows()).toEqual([[1, 'a']]);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), fc.nat(), (junk, at) => {
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

  it('line parsers never throw on arbitrary lines', () => {
    const parsers = [
      fieldParser({ kind: 'json' }),
      fieldParser({ kind: 'logfmt' }),
      fieldParser({ kind: 'loghub', template: '<A> <B> [<C>]: <D>' }),
    ];
    fc.assert(
      fc.property(fc.string({ maxLength: 500 }), (line) => {
        for (const p of parsers) p(line);
      }),
      { numRuns: 1000 },
    );
  });
});
