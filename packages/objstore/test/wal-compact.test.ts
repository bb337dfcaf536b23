// The WAL's direct writes and pack compaction: a large write that bypasses the WAL is not shadowed by an
// older packed version after a restart, sparse and small packs are rewritten, and a model-based property
// test checks reads across writes, deletes, packing, compaction and reopening.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { FileStore, MemStore, NotFoundError, type ObjectStore, WalStore } from '../src/index.js';
import type { PackedRefs } from '../src/packedrefs.js';

const root = mkdtempSync(join(tmpdir(), 'objstore-walc-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const fresh = () => join(root, `d${n++}`);
const small = (s: string) => Buffer.from(s);
const big = (c: string) => Buffer.alloc(300 << 10, c); // above walObjectBytesMax (256 KiB)
const opts = (dir: string) => ({ dir, packIntervalMs: 3_600_000 });

async function packKeys(s: ObjectStore): Promise<string[]> {
  return (await s.list('.wal-packs/')).objects.map((o) => o.key);
}

describe('WAL direct writes', () => {
  for (const packed of [false, true])
    it(`a large write after a small one survives a restart (old version ${packed ? 'packed' : 'in the WAL'})`, async () => {
      const store = new FileStore(fresh());
      const dir = fresh();
      let w = await WalStore.open(store, opts(dir));
      await w.put('k', small('v1'));
      if (packed) await w.packNow();
      await w.put('k', big('x'));
      expect((await w.head('k'))?.size).toBe(300 << 10);
      // a restart without packing (the WAL holds the direct marker), then one after packing it
      await w.close();
      for (let round = 0; round < 2; round++) {
        w = await WalStore.open(store, opts(dir));
        expect(Buffer.from(await w.get('k')).equals(big('x'))).toBe(true);
        expect((await w.head('k'))?.size).toBe(300 << 10);
        expect((await w.list('')).objects.map((o) => [o.key, o.size])).toEqual([['k', 300 << 10]]);
        await w.packNow();
        await w.close();
      }
    });
});

describe('WAL pack compaction', () => {
  it('rewrites a pack whose data was mostly overwritten, and reads stay right across a restart', async () => {
    const store = new MemStore();
    const dir = fresh();
    let w = await WalStore.open(store, opts(dir));
    for (let i = 0; i < 100; i++) await w.put(`k${i}`, small(`a${i}`.padEnd(1000, '.')));
    await w.packNow();
    for (let i = 0; i < 80; i++) await w.put(`k${i}`, small(`b${i}`));
    await w.packNow(); // the first pack is now 20% live: compacted into a new one
    expect(w.stats.packsCompacted).toBeGreaterThanOrEqual(1);
    expect(w.stats.bytesReclaimed).toBeGreaterThan(50_000);
    expect((await packKeys(store)).length).toBeLessThanOrEqual(2);
    const check = async (s: WalStore) => {
      for (let i = 0; i < 100; i++)
        expect(Buffer.from(await s.get(`k${i}`)).toString()).toBe(
          i < 80 ? `b${i}` : `a${i}`.padEnd(1000, '.'),
        );
    };
    await check(w);
    await w.close();
    w = await WalStore.open(store, opts(dir));
    await check(w);
    await w.close();
  });

  it('merges small packs once there are four, and does not churn packs of tombstones', async () => {
    const store = new MemStore();
    const w = await WalStore.open(store, opts(fresh()));
    for (let r = 0; r < 5; r++) {
      await w.put(`r${r}`, small(`round ${r}`));
      await w.packNow();
    }
    expect((await packKeys(store)).length).toBeLessThan(4);
    for (let r = 0; r < 5; r++) expect(Buffer.from(await w.get(`r${r}`)).toString()).toBe(`round ${r}`);
    await w.delete('r0');
    await w.packNow();
    const before = w.stats.packsCompacted;
    for (let i = 0; i < 3; i++) await w.packNow(); // nothing new: no rewrite
    expect(w.stats.packsCompacted).toBe(before);
    await expect(w.get('r0')).rejects.toBeInstanceOf(NotFoundError);
    await w.close();
  });

  it('reads equal a model across puts, large puts, deletes, packing and restarts (property)', async () => {
    type Op =
      | { t: 'put'; k: string; v: string }
      | { t: 'big'; k: string; c: string }
      | { t: 'del'; k: string }
      | { t: 'pack' }
      | { t: 'reopen' };
    const key = fc.constantFrom('a', 'b', 'c', 'd');
    const op: fc.Arbitrary<Op> = fc.oneof(
      {
        weight: 5,
        arbitrary: fc.record({ t: fc.constant('put' as const), k: key, v: fc.string({ maxLength: 5 }) }),
      },
      {
        weight: 1,
        arbitrary: fc.record({ t: fc.constant('big' as const), k: key, c: fc.constantFrom('x', 'y') }),
      },
      { weight: 2, arbitrary: fc.record({ t: fc.constant('del' as const), k: key }) },
      { weight: 2, arbitrary: fc.constant({ t: 'pack' as const }) },
      { weight: 1, arbitrary: fc.constant({ t: 'reopen' as const }) },
    );
    await fc.assert(
      fc.asyncProperty(fc.array(op, { maxLength: 25 }), async (ops) => {
        const store = new MemStore();
        const dir = fresh();
        let w = await WalStore.open(store, opts(dir));
        const model = new Map<string, Buffer>();
        for (const o of ops) {
          if (o.t === 'put') {
            await w.put(o.k, small(o.v));
            model.set(o.k, small(o.v));
          } else if (o.t === 'big') {
            await w.put(o.k, big(o.c));
            model.set(o.k, big(o.c));
          } else if (o.t === 'del') {
            await w.delete(o.k);
            model.delete(o.k);
          } else if (o.t === 'pack') await w.packNow();
          else {
            await w.close();
            w = await WalStore.open(store, opts(dir));
          }
        }
        for (const k of ['a', 'b', 'c', 'd']) {
          const want = model.get(k);
          if (want) expect(Buffer.from(await w.get(k)).equals(want)).toBe(true);
          else await expect(w.get(k)).rejects.toBeInstanceOf(NotFoundError);
          expect((await w.head(k))?.size).toBe(want?.length);
        }
        const listed = (await w.list('')).objects.map((o) => o.key);
        expect(listed).toEqual([...model.keys()].sort());
        // the live bytes per pack kept as keys move equal a recount (compaction decides on them)
        const inner = w as unknown as { packed: PackedRefs; packSizes: Map<string, unknown> };
        const recount = new Map<string, number>();
        for (const [, r] of inner.packed.entries()) recount.set(r.pack, (recount.get(r.pack) ?? 0) + r.size);
        for (const p of inner.packSizes.keys()) expect(inner.packed.liveOf(p)).toBe(recount.get(p) ?? 0);
        await w.close();
      }),
      { numRuns: 40 },
    );
  });
});
