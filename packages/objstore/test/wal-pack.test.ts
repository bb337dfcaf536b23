// WAL packs: the binary index (version 2) and the JSON one before it (version 1, still read), recovery
// reading only a pack's index, packs that carry their slabs' superseded versions, and damaged indexes
// (a clear error naming the pack and the byte, never a crash: fuzzed).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { type GetOptions, MemStore, ObjectStoreError, WalStore } from '../src/index.js';
import {
  PackIndexWriter,
  PackKind,
  packTrailerBytes,
  placeIndex,
  readIndex,
  sealIndex,
} from '../src/packindex.js';

const root = mkdtempSync(join(tmpdir(), 'objstore-walp-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const fresh = () => join(root, `d${n++}`);
const opts = (dir: string) => ({ dir, packIntervalMs: 3_600_000 });
const etagA = '00112233445566778899aabbccddeeff';

type Entry = [string, PackKind, number, number, number, string];
function entriesOf(pack: string, bytes: Uint8Array): Entry[] {
  const place = placeIndex(pack, bytes.length, bytes.subarray(Math.max(0, bytes.length - packTrailerBytes)));
  const out: Entry[] = [];
  readIndex(pack, place, bytes.subarray(place.start), (...e) => out.push(e));
  return out;
}

/** Counts the bytes each get returns. */
class CountingStore extends MemStore {
  gotBytes = 0;
  override async get(key: string, opts?: GetOptions): Promise<Uint8Array> {
    const b = await super.get(key, opts);
    this.gotBytes += b.length;
    return b;
  }
}

/** Runs `check` on the open WAL `w`, closes it, opens its directory again and runs `check` there too. */
async function checkAcrossReopen(
  w: WalStore,
  store: MemStore,
  dir: string,
  check: (s: WalStore) => Promise<void>,
): Promise<void> {
  await check(w);
  await w.close();
  const again = await WalStore.open(store, opts(dir));
  await check(again);
  await again.close();
}

/** A closed WAL whose store holds one pack (of key 'k', value 'v'), and that pack's key. */
async function onePack(): Promise<{ store: MemStore; dir: string; key: string }> {
  const store = new MemStore();
  const dir = fresh();
  const w = await WalStore.open(store, opts(dir));
  await w.put('k', Buffer.from('v'));
  await w.packNow();
  await w.close();
  return { store, dir, key: (await store.list('.wal-packs/')).objects[0]!.key };
}

/** Answers gets of packs with what `cut` makes of their bytes while it is set (a store that loses data). */
class CuttingStore extends MemStore {
  cut: ((bytes: Uint8Array, opts?: GetOptions) => Uint8Array) | undefined;
  override async get(key: string, opts?: GetOptions): Promise<Uint8Array> {
    const b = await super.get(key, opts);
    return this.cut && key.startsWith('.wal-packs/') ? this.cut(b, opts) : b;
  }
}

describe('pack index', () => {
  it('reads back what was written: data, deletions, direct writes, non-ASCII keys, offsets past 4 GiB', () => {
    const w = new PackIndexWriter();
    const want: Entry[] = [
      ['a', PackKind.Data, 1_700_000_000_123, 0, 10, etagA],
      ['ключ/日本', PackKind.Data, 1.5, 2 ** 33 + 7, 2 ** 31, etagA.replace('0', 'f')],
      ['gone', PackKind.Deleted, 42, 0, 0, ''],
      ['direct', PackKind.Direct, 43, 0, 0, ''],
    ];
    for (const [k, kind, mtime, off, size, etag] of want) w.add(k, kind, mtime, off, size, etag);
    const idx = w.finish();
    const pack = Buffer.concat([Buffer.alloc(0), idx]);
    const place = placeIndex('p', pack.length + 2 ** 34, pack.subarray(-packTrailerBytes));
    expect(place.version).toBe(2);
    const got: Entry[] = [];
    readIndex('p', place, pack, (...e) => got.push(e));
    expect(got).toEqual(want);
  });

  it('refuses an etag that is not 16 bytes of hex', () => {
    expect(() => new PackIndexWriter().add('k', PackKind.Data, 0, 0, 1, 'xyz')).toThrow(/etag of 'k'/);
  });

  it('a damaged index is an error naming the pack and the byte (fuzzed, with and without a valid checksum)', () => {
    const w = new PackIndexWriter();
    for (let i = 0; i < 20; i++)
      w.add(`key-${i}`, i % 3 === 0 ? PackKind.Deleted : PackKind.Data, i, i * 10, 10, etagA);
    const good = Buffer.concat([Buffer.alloc(200), w.finish()]);
    const index = good.subarray(200, good.length - packTrailerBytes);
    const tryRead = (pack: Uint8Array) => {
      try {
        entriesOf('p7', pack);
        return 'ok';
      } catch (e) {
        expect(e).toBeInstanceOf(ObjectStoreError);
        expect((e as Error).message).toMatch(/^WAL pack p7 is damaged at byte \d+: /);
        return 'error';
      }
    };
    fc.assert(
      fc.property(fc.nat(good.length - 1), fc.integer({ min: 1, max: 255 }), (at, x) => {
        // one flipped byte anywhere in index or trailer (the data region is not the index's business)
        const bad = Buffer.from(good);
        bad[200 + (at % (good.length - 200))]! ^= x;
        expect(tryRead(bad)).toBe('error');
      }),
    );
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300, size: 'max' }), fc.nat(index.length), (junk, cut) => {
        // a well-sealed index of any bytes: the entries are checked one by one
        const bytes = Buffer.concat([
          Buffer.alloc(200),
          sealIndex(Buffer.concat([index.subarray(0, cut), junk])),
        ]);
        tryRead(bytes);
      }),
    );
    expect(tryRead(new Uint8Array(3))).toBe('error');
  });

  it('a JSON index (version 1) whose entries are not what a writer made is an error naming the pack and the byte', () => {
    const v1 = (data: number, entries: unknown) => {
      const idx = Buffer.from(JSON.stringify(entries), 'utf8');
      const len = Buffer.alloc(4);
      len.writeUInt32LE(idx.length, 0);
      return Buffer.concat([Buffer.alloc(data), idx, len]);
    };
    expect(entriesOf('p1', v1(10, [['k', 0, 10, etagA, 5, 0]]))).toEqual([['k', 0, 5, 0, 10, etagA]]);
    for (const bad of [
      [['k', 'x', 10, etagA, 5, 0]], // an offset that is not a number
      [['k', 0, -1, etagA, 5, 0]], // a negative size
      [['k', 4, 10, etagA, 5, 0]], // past the data region
      [['k', 0, 1, etagA, 5, 7]], // an unknown kind
      [['k', 0, 1, etagA, null, 0]], // a modification time that is not a number
      [['k', 0, 1, 'zz', 5, 0]], // an etag that is not 16 bytes of hex (a rewrite of the pack could not index it)
    ])
      expect(() => entriesOf('p1', v1(10, bad))).toThrow(/^WAL pack p1 is damaged at byte 10: /);
  });
});

describe('WAL packs', () => {
  it('recovery reads the index of each pack, not its data', async () => {
    const store = new CountingStore();
    const dir = fresh();
    let w = await WalStore.open(store, opts(dir));
    for (let i = 0; i < 200; i++) await w.put(`k${i}`, Buffer.alloc(10_000, i));
    await w.packNow();
    await w.close();
    const packSize = (await store.list('.wal-packs/')).objects[0]!.size;
    expect(packSize).toBeGreaterThan(2_000_000);
    store.gotBytes = 0;
    w = await WalStore.open(store, opts(dir));
    expect(store.gotBytes).toBeLessThan(20_000);
    for (const i of [0, 77, 199])
      expect(Buffer.from(await w.get(`k${i}`)).equals(Buffer.alloc(10_000, i))).toBe(true);
    await w.close();
  });

  for (const [rewrites, rewritten] of [
    [1, 3],
    [4, 19],
  ] as const)
    it(`a pack holds its slabs as they are unless most of them is dead (${rewrites} rewrite${rewrites > 1 ? 's' : ''})`, async () => {
      const store = new MemStore();
      const dir = fresh();
      const w = await WalStore.open(store, opts(dir));
      // k0 is written once, first, so the slab's range from it to the newest versions holds the old ones
      for (let v = 0; v <= rewrites; v++)
        for (let i = v === 0 ? 0 : 1; i < (v === 0 ? 20 : 1 + rewritten); i++)
          await w.put(`k${i}`, Buffer.from(`v${v}-${i}`.padEnd(500, '.')));
      await w.delete('k3');
      await w.packNow();
      expect(w.stats.packsCompacted).toBe(0);
      const [pack] = (await store.list('.wal-packs/')).objects;
      const bytes = await store.get(pack!.key);
      expect(entriesOf(pack!.key, bytes).length).toBe(20);
      const { start } = placeIndex(pack!.key, pack!.size, bytes.subarray(-packTrailerBytes));
      if (rewrites === 1) {
        // one rewrite of 3 keys: the slab range as it is, records and the superseded versions included
        expect(start).toBeGreaterThan(20 * 500 + 19 * 20);
      } else {
        // 4 of 5 versions dead: each key's data alone, the live bytes (k3 deleted)
        expect(start).toBe(19 * 500);
      }
      const check = async (s: WalStore) => {
        for (let i = 0; i < 20; i++) {
          const newest = Buffer.from(`v${i >= 1 && i <= rewritten ? rewrites : 0}-${i}`.padEnd(500, '.'));
          if (i === 3) await expect(s.get('k3')).rejects.toThrow();
          else expect(Buffer.from(await s.get(`k${i}`)).equals(newest)).toBe(true);
        }
      };
      await checkAcrossReopen(w, store, dir, check);
    });

  it('points right into arrays of their own (records larger than a slab, entries recovered from segments), and a pack holds only bytes the WAL wrote', async () => {
    const store = new MemStore();
    const dir = fresh();
    const body = (i: number, n: number) => Buffer.alloc(n, `${i}:`);
    const want = new Map<string, Buffer>();
    const put = async (s: WalStore, k: string, b: Buffer) => {
      await s.put(k, b);
      want.set(k, b);
    };
    let w = await WalStore.open(store, opts(dir));
    // slabs and fresh arrays hold 0xee before use here: a pack range past what the WAL wrote would show it
    const inside = w as unknown as { newSlab: (n: number) => Buffer };
    const newSlab = inside.newSlab.bind(w);
    inside.newSlab = (n) => newSlab(n).fill(0xee);
    for (let i = 0; i < 6; i++) await put(w, `small${i}`, body(i, 300));
    await put(w, 'huge0', body(7, 200 << 10)); // larger than a 64 KiB slab, under walObjectBytesMax
    await w.close();
    // reopened: these come back from the segments, each in an array of its own
    w = await WalStore.open(store, opts(dir));
    (w as unknown as typeof inside).newSlab = (n) => newSlab.call(w, n).fill(0xee);
    await put(w, 'small2', body(22, 500));
    await put(w, 'huge1', body(8, 100 << 10));
    for (let i = 10; i < 14; i++) await put(w, `small${i}`, body(i, 40));
    await put(w, 'huge0', body(9, 150 << 10));
    await w.packNow();
    const check = async (s: WalStore) => {
      for (const [k, b] of want) expect(Buffer.from(await s.get(k)).equals(b), k).toBe(true);
    };
    const [pack] = (await store.list('.wal-packs/')).objects;
    const bytes = Buffer.from(await store.get(pack!.key));
    const { start } = placeIndex(pack!.key, pack!.size, bytes.subarray(-packTrailerBytes));
    expect(bytes.subarray(0, start).includes(Buffer.alloc(8, 0xee))).toBe(false);
    await checkAcrossReopen(w, store, dir, check);
  });

  it('compaction refuses a pack that comes back shorter than it was written, and keeps its keys', async () => {
    // a store that, once told to, returns whole packs cut in half
    const store = new CuttingStore();
    const dir = fresh();
    const w = await WalStore.open(store, opts(dir));
    const value = (v: number, i: number) => Buffer.from(`v${v}-${i}`.padEnd(500, '.'));
    for (let i = 0; i < 10; i++) await w.put(`k${i}`, value(0, i));
    await w.packNow();
    for (let i = 0; i < 9; i++) await w.put(`k${i}`, value(1, i));
    store.cut = (b, o) => (o?.range ? b : b.subarray(0, b.length >> 1));
    // the first pack is mostly superseded: compacting it reads it whole, and gets half of it
    await expect(w.packNow()).rejects.toThrow(/WAL pack \.wal-packs\/000000000000\.pack/);
    store.cut = undefined;
    const check = async (s: WalStore) => {
      for (let i = 0; i < 10; i++)
        expect(Buffer.from(await s.get(`k${i}`)).equals(value(i < 9 ? 1 : 0, i)), `k${i}`).toBe(true);
    };
    await checkAcrossReopen(w, store, dir, check);
  });

  it('a read from a pack that the store answers with fewer bytes than the key has is an error, not a short body', async () => {
    const store = new CuttingStore();
    const w = await WalStore.open(store, opts(fresh()));
    await w.put('k', Buffer.from('value'));
    await w.packNow();
    store.cut = (b, o) => (o?.range ? b.subarray(1) : b);
    await expect(w.get('k')).rejects.toThrow(/'k'.*\.wal-packs\/000000000000\.pack.*4 bytes, not 5/);
    store.cut = undefined;
    expect(Buffer.from(await w.get('k')).toString()).toBe('value');
    await w.close();
  });

  it('reads packs written with the JSON index (version 1)', async () => {
    const store = new MemStore();
    const data = Buffer.from('hello, world!');
    const index = Buffer.from(
      JSON.stringify([
        ['greeting', 0, 5, 'a'.repeat(32), 1000, 0],
        ['rest', 5, 8, 'b'.repeat(32), 2000, 0],
        ['deleted', 0, 0, '', 3000, 1],
      ]),
    );
    const len = Buffer.alloc(4);
    len.writeUInt32LE(index.length, 0);
    await store.put('.wal-packs/000000000000.pack', Buffer.concat([data, index, len]));
    const w = await WalStore.open(store, opts(fresh()));
    expect(Buffer.from(await w.get('greeting')).toString()).toBe('hello');
    expect(Buffer.from(await w.get('rest')).toString()).toBe(', world!');
    expect(await w.head('rest')).toMatchObject({ size: 8, etag: 'b'.repeat(32), modifiedMs: 2000 });
    expect(await w.head('deleted')).toBeUndefined();
    // the next pack goes after it, in the binary format
    await w.put('new', Buffer.from('x'));
    await w.packNow();
    const keys = (await store.list('.wal-packs/')).objects.map((o) => o.key);
    expect(keys).toEqual(['.wal-packs/000000000000.pack', '.wal-packs/000000000001.pack']);
    const second = await store.get(keys[1]!);
    expect(placeIndex('', second.length, second.subarray(-packTrailerBytes)).version).toBe(2);
    await w.close();
  });

  it('a WAL does not open over an object in its pack prefix that is not named as its packs are', async () => {
    // a copy of a pack under another name: its number would be NaN, and so would every later pack's
    const { store, dir, key } = await onePack();
    await store.put('.wal-packs/copy.pack', await store.get(key));
    await expect(WalStore.open(store, opts(dir))).rejects.toThrow(
      /'\.wal-packs\/copy\.pack' .*not named as the WAL's packs are/,
    );
    await store.delete('.wal-packs/copy.pack');
    const r = await WalStore.open(store, opts(dir));
    expect(Buffer.from(await r.get('k')).toString()).toBe('v');
    await r.close();
  });

  it('a WAL whose pack index is damaged does not open, and says which pack', async () => {
    const { store, dir, key } = await onePack();
    const bytes = Buffer.from(await store.get(key));
    bytes[bytes.length - packTrailerBytes - 3]! ^= 1;
    await store.put(key, bytes);
    await expect(WalStore.open(store, opts(dir))).rejects.toThrow(`WAL pack ${key} is damaged`);
    // and the failed open let go of the directory: the same error again, not a lock held by ourselves
    await expect(WalStore.open(store, opts(dir))).rejects.toThrow(`WAL pack ${key} is damaged`);
  });
});
