/** Conformance suites: every Loglet and every MetaStore implementation runs these. */
import fc from 'fast-check';
import { expect, it } from 'vitest';
import {
  type Loglet,
  type MetaStore,
  SealedError,
  TrimmedError,
  VersionConflictError,
} from '../src/index.js';

const b = (s: string) => new Uint8Array(Buffer.from(s));
const s = (p: Uint8Array) => Buffer.from(p).toString();

/** `make(start)` returns a fresh, empty loglet whose first position is `start`. */
export function logletConformance(make: (start: number) => Promise<Loglet>): void {
  const withLoglet = (start: number, f: (l: Loglet) => Promise<void>) => async () => {
    const l = await make(start);
    try {
      await f(l);
    } finally {
      await l.close();
    }
  };

  it(
    'appends get dense positions from start, in order; reads return them',
    withLoglet(0, async (l) => {
      expect(await l.checkTail()).toEqual({ tail: 0, sealed: false });
      expect(await l.append([b('a'), b('b')])).toEqual([0, 1]);
      expect(await l.append([b('c')])).toEqual([2]);
      expect((await l.checkTail()).tail).toBe(3);
      const recs = await l.read(0, 10);
      expect(recs.map((r) => [r.position, s(r.payload)])).toEqual([
        [0, 'a'],
        [1, 'b'],
        [2, 'c'],
      ]);
      expect((await l.read(1, 2)).map((r) => r.position)).toEqual([1]);
      expect(await l.read(3, 10)).toEqual([]);
    }),
  );

  it(
    'an empty append is acknowledged with no positions and takes none: appends, tail checks and reads go on',
    withLoglet(0, async (l) => {
      expect(await l.append([])).toEqual([]);
      expect(await l.checkTail()).toEqual({ tail: 0, sealed: false });
      expect(await l.append([b('a')])).toEqual([0]);
      expect(await l.append([])).toEqual([]);
      expect(await l.append([b('b'), b('c')])).toEqual([1, 2]);
      expect((await l.read(0, 10)).map((r) => [r.position, s(r.payload)])).toEqual([
        [0, 'a'],
        [1, 'b'],
        [2, 'c'],
      ]);
      expect(await l.checkTail()).toEqual({ tail: 3, sealed: false });
    }),
  );

  it(
    'reads and trims at something that is not a position are refused, naming it, and change nothing',
    withLoglet(0, async (l) => {
      await l.append([b('a'), b('b'), b('c')]);
      for (const [from, to] of [
        [1.5, 3],
        [Number.NaN, 3],
        [-1, 3],
        [0, Number.NaN],
        [0, 2.5],
        [Number.POSITIVE_INFINITY, 3],
      ] as const)
        await expect(l.read(from, to), `read(${from}, ${to})`).rejects.toThrow(RangeError);
      await expect(l.read(0.5, 2)).rejects.toThrow(
        'read: from must be a log position (a whole number of at least 0), got 0.5',
      );
      for (const pos of [Number.NaN, -1, 0.5, Number.NEGATIVE_INFINITY])
        await expect(l.prefixTrim(pos), `prefixTrim(${pos})`).rejects.toThrow(
          /prefixTrim: pos must be a log position/,
        );
      expect((await l.read(0, Number.POSITIVE_INFINITY)).map((r) => s(r.payload))).toEqual(['a', 'b', 'c']);
      expect((await l.read(1, 1e18)).map((r) => r.position)).toEqual([1, 2]);
      expect(await l.append([b('d')])).toEqual([3]);
    }),
  );

  it(
    'an append of something that is not an array of Uint8Arrays is refused, naming the record, and stores nothing',
    withLoglet(0, async (l) => {
      const bad: [unknown, RegExp][] = [
        [null, /append: the batch must be an array of Uint8Arrays, got null/],
        [b('x'), /the batch must be an array of Uint8Arrays, got Uint8Array/],
        [[b('a'), 'x'], /append: record 1 of the batch must be a Uint8Array, got string/],
        [[new DataView(new ArrayBuffer(2))], /record 0 of the batch must be a Uint8Array, got DataView/],
        [[new ArrayBuffer(2)], /got ArrayBuffer/],
        [[[1, 2]], /got Array/],
        [[null], /got null/],
      ];
      for (const [batch, why] of bad) await expect(l.append(batch as Uint8Array[])).rejects.toThrow(why);
      expect(await l.checkTail()).toEqual({ tail: 0, sealed: false });
      expect(await l.append([b('a')])).toEqual([0]);
    }),
  );

  it(
    'a loglet starting mid-log hands out positions from its start',
    withLoglet(1200, async (l) => {
      expect(await l.append([b('x'), b('y')])).toEqual([1200, 1201]);
      expect((await l.read(1200, 1300)).map((r) => r.position)).toEqual([1200, 1201]);
      expect((await l.checkTail()).tail).toBe(1202);
    }),
  );

  it(
    'concurrent appends are each acknowledged at distinct positions with no gaps',
    withLoglet(0, async (l) => {
      const res = await Promise.all(
        Array.from({ length: 200 }, (_, i) => l.append([b(`r${i}`), b(`s${i}`)])),
      );
      const all = res.flat().sort((x, y) => x - y);
      expect(all).toEqual(Array.from({ length: 400 }, (_, i) => i));
      for (const [i, [p, q]] of res.entries()) {
        expect(q).toBe(p! + 1);
        const recs = await l.read(p!, q! + 1);
        expect(recs.map((r) => s(r.payload))).toEqual([`r${i}`, `s${i}`]);
      }
    }),
  );

  it(
    'seal is idempotent and no append is acknowledged after it returns',
    withLoglet(0, async (l) => {
      await l.append([b('a')]);
      const inflight = Array.from({ length: 50 }, (_, i) =>
        l.append([b(`x${i}`)]).then(
          (p) => p[0]!,
          (e: unknown) => e,
        ),
      );
      const sealed = await l.seal();
      expect(sealed.sealed).toBe(true);
      const after = await l.append([b('late')]).catch((e: unknown) => e);
      expect(after).toBeInstanceOf(SealedError);
      const outcomes = await Promise.all(inflight);
      const acked = outcomes.filter((o): o is number => typeof o === 'number');
      for (const o of outcomes) if (typeof o !== 'number') expect(o).toBeInstanceOf(SealedError);
      // everything acknowledged is below the sealed tail and readable
      for (const p of acked) expect(p).toBeLessThan(sealed.tail);
      expect((await l.read(0, sealed.tail)).length).toBe(sealed.tail);
      expect(await l.seal()).toEqual(sealed);
      expect(await l.checkTail()).toEqual(sealed);
    }),
  );

  it(
    'prefixTrim makes earlier positions unreadable and keeps later ones',
    withLoglet(0, async (l) => {
      await l.append([b('0'), b('1'), b('2'), b('3')]);
      await l.prefixTrim(2);
      await expect(l.read(0, 4)).rejects.toBeInstanceOf(TrimmedError);
      expect((await l.read(2, 4)).map((r) => s(r.payload))).toEqual(['2', '3']);
      await l.prefixTrim(1); // never moves back
      await expect(l.read(1, 2)).rejects.toBeInstanceOf(TrimmedError);
    }),
  );

  it(
    'reads equal appends under random batches (property)',
    withLoglet(0, async (l) => {
      const written: string[] = [];
      await fc.assert(
        fc.asyncProperty(
          fc.array(fc.array(fc.string({ maxLength: 30 }), { minLength: 1, maxLength: 5 }), { maxLength: 8 }),
          async (batches) => {
            for (const batch of batches) {
              const ps = await l.append(batch.map(b));
              expect(ps[0]).toBe(written.length);
              written.push(...batch);
            }
            const recs = await l.read(0, written.length);
            expect(recs.map((r) => s(r.payload))).toEqual(written);
          },
        ),
        { numRuns: 20 },
      );
    }),
  );
}

export function metaStoreConformance(make: () => Promise<MetaStore<{ n: number }>>): void {
  it('starts empty at version 0; put bumps the version; stale puts fail', async () => {
    const m = await make();
    expect(await m.get()).toEqual({ version: 0, value: undefined });
    expect(await m.put({ n: 1 }, 0)).toBe(1);
    expect(await m.get()).toEqual({ version: 1, value: { n: 1 } });
    await expect(m.put({ n: 2 }, 0)).rejects.toBeInstanceOf(VersionConflictError);
    expect(await m.put({ n: 2 }, 1)).toBe(2);
    expect((await m.get()).value).toEqual({ n: 2 });
    await m.close();
  });

  it('of racing writers exactly one succeeds', async () => {
    const m = await make();
    for (let round = 0; round < 5; round++) {
      const { version } = await m.get();
      const r = await Promise.allSettled(
        Array.from({ length: 12 }, (_, i) => m.put({ n: round * 100 + i }, version)),
      );
      const won = r.flatMap((x, i) => (x.status === 'fulfilled' ? [i] : []));
      expect(won).toHaveLength(1);
      for (const x of r) if (x.status === 'rejected') expect(x.reason).toBeInstanceOf(VersionConflictError);
      expect(await m.get()).toEqual({ version: version + 1, value: { n: round * 100 + won[0]! } });
    }
    await m.close();
  });
}
