// The WAL's index of packed keys (typed-array slots behind a key map) against a plain Map of objects.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compareKeys } from '../src/backends/mem.js';
import { hashKey, PackedRefs, type PackRef } from '../src/packedrefs.js';
import { PackKind } from '../src/packindex.js';

const kinds = [PackKind.Data, PackKind.Deleted, PackKind.Direct] as const;

describe('PackedRefs', () => {
  it('ranks keys in compareKeys order while keys keep coming between listings (property)', () => {
    const keyArb = fc.string({
      unit: fc.constantFrom('a', 'b', '/', '\uE000', '\u{1F600}', 'z'),
      maxLength: 5,
    });
    fc.assert(
      fc.property(
        fc.array(fc.array(keyArb, { maxLength: 40 }), { maxLength: 6 }),
        keyArb,
        (batches, probe) => {
          const refs = new PackedRefs();
          const model = new Set<string>();
          for (const batch of batches) {
            for (const k of batch) {
              refs.point(k, 'p', 0, 1, '', 0, PackKind.Data);
              model.add(k);
            }
            // a listing between batches: the order is built, then extended by the next batch
            const want = [...model].sort(compareKeys);
            expect(Array.from({ length: refs.size }, (_, r) => refs.keyAtRank(r))).toEqual(want);
            const at = refs.rankOf(probe);
            expect(at).toBe(want.filter((k) => compareKeys(k, probe) < 0).length);
            if (at < refs.size) expect(refs.refAtRank(at)).toEqual(refs.get(refs.keyAtRank(at)));
          }
        },
      ),
      { numRuns: 200 },
    );
  });

  it('answers as a map of references does, with live bytes per pack as a recount gives (property)', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            key: fc.integer({ min: 0, max: 2500 }),
            pack: fc.integer({ min: 0, max: 6 }),
            offset: fc.nat({ max: 2 ** 40 }),
            size: fc.nat({ max: 5 * 2 ** 20 }),
            etag: fc.uint8Array({ minLength: 16, maxLength: 16 }).map((b) => Buffer.from(b).toString('hex')),
            mtime: fc.integer({ min: 1.6e12, max: 1.9e12 }),
            kind: fc.constantFrom(...kinds),
          }),
          { maxLength: 3000, size: 'max' },
        ),
        (ops) => {
          const refs = new PackedRefs();
          const model = new Map<string, PackRef>();
          for (const o of ops) {
            const key = `k/${o.key}`;
            const pack = `p${o.pack}`;
            refs.point(key, pack, o.offset, o.size, o.etag, o.mtime, o.kind);
            refs.addLive(pack, o.size);
            model.set(key, {
              pack,
              offset: o.offset,
              size: o.size,
              etag: o.etag,
              modifiedMs: o.mtime,
              deleted: o.kind === PackKind.Deleted,
              direct: o.kind === PackKind.Direct,
            });
          }
          expect(refs.size).toBe(model.size);
          for (const [k, r] of model) {
            expect(refs.has(k)).toBe(true);
            expect(refs.get(k)).toEqual(r);
          }
          expect(refs.get('k/absent')).toBeUndefined();
          expect(new Map(refs.entries())).toEqual(model);
          const recount = new Map<string, number>();
          for (const r of model.values()) recount.set(r.pack, (recount.get(r.pack) ?? 0) + r.size);
          for (let p = 0; p <= 6; p++) expect(refs.liveOf(`p${p}`)).toBe(recount.get(`p${p}`) ?? 0);
          const chosen = ['p1', 'p4', 'p9'];
          const keysIn = refs.keysIn(chosen);
          for (const p of chosen)
            expect(keysIn.get(p)).toEqual([...model].filter(([, r]) => r.pack === p).map(([k]) => k));
        },
      ),
      { numRuns: 60 },
    );
  });

  it('keeps every field of early slots as the arrays grow', () => {
    const refs = new PackedRefs();
    const n = 5000; // past 1,024, 2,048 and 4,096 slots
    for (let i = 0; i < n; i++)
      refs.point(
        `k${i}`,
        `p${i % 7}`,
        i * 3,
        i + 1,
        i.toString(16).padStart(32, '0'),
        1.7e12 + i,
        kinds[i % 3]!,
      );
    for (let i = 0; i < n; i++)
      expect(refs.get(`k${i}`)).toEqual({
        pack: `p${i % 7}`,
        offset: i * 3,
        size: i + 1,
        etag: i.toString(16).padStart(32, '0'),
        modifiedMs: 1.7e12 + i,
        deleted: kinds[i % 3] === PackKind.Deleted,
        direct: kinds[i % 3] === PackKind.Direct,
      });
  });

  it('tells apart keys of the same hash', () => {
    // two keys whose 32-bit hashes are equal (a birthday search: about 2^16 keys)
    const seen = new Map<number, string>();
    let pair: [string, string] | undefined;
    for (let i = 0; !pair; i++) {
      const k = `c/${i}`;
      const other = seen.get(hashKey(k));
      if (other !== undefined) pair = [other, k];
      else seen.set(hashKey(k), k);
    }
    const refs = new PackedRefs();
    const [a, b] = pair;
    refs.point(a, 'p0', 1, 10, 'a'.repeat(32), 1.7e12, PackKind.Data);
    expect(refs.has(b)).toBe(false);
    refs.point(b, 'p1', 2, 20, 'b'.repeat(32), 1.7e12, PackKind.Data);
    expect(refs.get(a)?.size).toBe(10);
    expect(refs.get(b)?.size).toBe(20);
    expect(refs.size).toBe(2);
  });

  it('forgets a deleted pack', () => {
    const refs = new PackedRefs();
    refs.point('a', 'p0', 0, 10, 'e'.repeat(32), 1.7e12, PackKind.Data);
    refs.addLive('p0', 10);
    refs.point('a', 'p1', 0, 10, 'e'.repeat(32), 1.7e12, PackKind.Data);
    refs.addLive('p1', 10);
    expect(refs.liveOf('p0')).toBe(0);
    refs.forgetPack('p0');
    expect(refs.liveOf('p0')).toBe(0);
    expect(refs.liveOf('p1')).toBe(10);
  });
});
