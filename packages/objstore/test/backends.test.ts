import { existsSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { hash128 } from '@strata/highwayhash';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import {
  CachedStore,
  compareKeys,
  etagOf,
  FileStore,
  LatencyStore,
  MemStore,
  NotFoundError,
  openStore,
  TieredStore,
  WalStore,
} from '../src/index.js';
import { objectStoreConformance } from './conformance.js';

const root = mkdtempSync(join(tmpdir(), 'objstore-conf-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const fresh = () => join(root, String(n++));

describe('etags', () => {
  it('are HighwayHash-128 (key 0x5a ^ i) of the body as 32 hex digits, word 0 first, each big-endian', () => {
    // stored etags (file: headers, WAL records, pack indexes) depend on this: it must not drift
    const key = new Uint8Array(32).map((_, i) => 0x5a ^ i);
    for (const body of [Buffer.alloc(0), Buffer.from('strata'), Buffer.alloc(5000, 7)]) {
      const [a, b] = hash128(key, body);
      expect(etagOf(body)).toBe(a!.toString(16).padStart(16, '0') + b!.toString(16).padStart(16, '0'));
    }
  });
});

describe('mem: backend', () => objectStoreConformance(async () => new MemStore()));

describe('key order', () => {
  it('compareKeys orders keys as their UTF-8 bytes do, over all of Unicode (property)', () => {
    const key = fc.string({ unit: 'binary', maxLength: 6 });
    fc.assert(
      fc.property(key, key, (a, b) => {
        const want = Math.sign(Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8')));
        expect(Math.sign(compareKeys(a, b))).toBe(want);
      }),
      { numRuns: 2000 },
    );
  });

  it('mem: handles of one name list what any of them wrote or deleted', async () => {
    const name = `shared-${n++}`;
    const a = new MemStore('mem:', name);
    const b = new MemStore('mem:', name);
    await a.put('k/1', Buffer.from('1'));
    expect((await b.list('k/')).objects.map((o) => o.key)).toEqual(['k/1']);
    await a.put('k/0', Buffer.from('0'));
    expect((await b.list('k/')).objects.map((o) => o.key)).toEqual(['k/0', 'k/1']);
    await b.delete('k/1');
    expect((await a.list('k/')).objects.map((o) => o.key)).toEqual(['k/0']);
  });
});
describe('file: backend', () => objectStoreConformance(async () => new FileStore(fresh())));
describe('file: backend, gets of up to 1 MiB read synchronously', () =>
  objectStoreConformance(async () => new FileStore(fresh(), undefined, { syncReadBytesMax: 1 << 20 })));
describe('file: backend, gets of up to 100 bytes read synchronously (others through the pool)', () =>
  objectStoreConformance(async () => new FileStore(fresh(), undefined, { syncReadBytesMax: 100 })));

describe('file: list', () => {
  it('pages what the memory backend pages, over short and long keys, any prefix, startAfter and limit, its headers read through the pool or not (property)', async () => {
    // long keys have names of their own ('~' and a hash): their order is read from their headers
    const keyArb = fc
      .tuple(
        fc.constantFrom('a/', 'a/b', 'b/', 'c'),
        // and code points whose UTF-8 order is not their UTF-16 order (U+E000, U+FFFD, U+1F600)
        fc.string({
          unit: fc.constantFrom('x', 'y', 'é', '-', '\uE000', '\uFFFD', '\u{1F600}'),
          maxLength: 4,
        }),
        fc.nat(130),
      )
      .map(([p, s, long]) => `${p}${s}${long > 100 ? 'z'.repeat(long) : ''}`);
    await fc.assert(
      fc.asyncProperty(
        fc.uniqueArray(keyArb, { maxLength: 60, size: 'max' }),
        fc.constantFrom('', 'a', 'a/', 'a/b', 'b/', 'zz'),
        fc.option(keyArb, { nil: undefined }),
        fc.integer({ min: 1, max: 40 }),
        async (keys, prefix, startAfter, limit) => {
          const dir = fresh();
          const file = new FileStore(dir);
          // and headers read with synchronous calls, as a store reading small objects so does
          const sync = new FileStore(dir, undefined, { syncReadBytesMax: 4096 });
          const mem = new MemStore();
          for (const k of keys) {
            await file.put(k, Buffer.from(k));
            await mem.put(k, Buffer.from(k));
          }
          const pages = async (s: FileStore | MemStore) => {
            const out: { keys: string[]; next: string | undefined }[] = [];
            let after = startAfter;
            for (;;) {
              const page = await s.list(prefix, {
                limit,
                ...(after !== undefined ? { startAfter: after } : {}),
              });
              out.push({ keys: page.objects.map((o) => `${o.key}:${o.size}`), next: page.nextStartAfter });
              if (page.nextStartAfter === undefined) return out;
              after = page.nextStartAfter;
            }
          };
          const want = await pages(mem);
          expect(await pages(file)).toEqual(want);
          expect(await pages(sync)).toEqual(want);
        },
      ),
      { numRuns: 60 },
    );
  });
});

describe('file: synchronous gets', () => {
  it('read what the thread pool reads: whole objects and every kind of range (property)', async () => {
    const dir = fresh();
    const pooled = new FileStore(dir);
    const sync = new FileStore(dir, undefined, { syncReadBytesMax: 4096 });
    await fc.assert(
      fc.asyncProperty(
        // keys of several lengths (the header's length follows the key's), bodies around the header read's
        // 1,070 bytes and the bound, ranges anywhere in them
        fc
          .array(fc.constantFrom(...'abcxyz0189_-'), { minLength: 1, maxLength: 300, size: 'max' })
          .map((cs) => cs.join('')),
        fc.integer({ min: 0, max: 9000 }),
        fc.nat(),
        fc.nat(),
        async (key, size, a, b) => {
          const body = new Uint8Array(size);
          for (let i = 0; i < size; i++) body[i] = (i * 31 + key.length) & 0xff;
          await pooled.put(`k/${key}`, body);
          expect(Buffer.from(await sync.get(`k/${key}`))).toEqual(Buffer.from(body));
          if (size === 0) return;
          const start = a % size;
          const end = start + (b % (size - start));
          const range = { start, end };
          expect(Buffer.from(await sync.get(`k/${key}`, { range }))).toEqual(
            Buffer.from(await pooled.get(`k/${key}`, { range })),
          );
        },
      ),
      { numRuns: 150 },
    );
  });

  it('fail as the pooled gets do: missing, corrupt header, a range past the end, a bad bound', async () => {
    const dir = fresh();
    const sync = new FileStore(dir, undefined, { syncReadBytesMax: 1 << 20 });
    await expect(sync.get('nope')).rejects.toBeInstanceOf(NotFoundError);
    await expect(sync.get('nope', { range: { start: 0, end: 3 } })).rejects.toBeInstanceOf(NotFoundError);
    await sync.put('a', new Uint8Array(10).fill(1));
    await expect(sync.get('a', { range: { start: 10, end: 12 } })).rejects.toThrow(
      /past the object's 10 bytes/,
    );
    // the header's magic broken in place
    const [name] = readdirSync(join(dir, 'objects'));
    const fh = await open(join(dir, 'objects', name!), 'r+');
    await fh.write(Buffer.from('X'), 0, 1, 0);
    await fh.close();
    await expect(sync.get('a')).rejects.toThrow(/corrupt: bad header/);
    await expect(sync.get('a', { range: { start: 0, end: 1 } })).rejects.toThrow(/corrupt: bad header/);
    // heads and listings read headers synchronously too, and fail as the pooled ones do, naming the key
    // or (a listing) the file
    const pooled = new FileStore(dir);
    for (const s of [sync, pooled]) {
      await expect(s.head('a')).rejects.toThrow(`object file a in ${dir} is corrupt: bad header`);
      await expect(s.list('')).rejects.toThrow(`object file ${name} in ${dir} is corrupt: bad header`);
      expect(await s.head('nope')).toBeUndefined();
    }
    expect(() => new FileStore(dir, undefined, { syncReadBytesMax: -1 })).toThrow(RangeError);
  });

  it('a store whose directory cannot be made fails its operations, with no unhandled rejection', async () => {
    // a file where the store's directory should go: mkdir fails; the error reaches the operations only
    const file = join(fresh());
    writeFileSync(file, 'not a directory');
    const s = new FileStore(join(file, 'store'));
    await new Promise((r) => setTimeout(r, 20)); // an unhandled rejection would be reported by now
    await expect(s.get('x')).rejects.toThrow(/ENOTDIR/);
  });

  it('close waits for the directory set-up: a store never used leaves nothing in flight to race a removal', async () => {
    // helios' stream test removed a data directory right after closing a tiered store whose standard tier
    // was never read: its mkdir, still running, failed with ENOENT
    const root = join(fresh(), 'store');
    const s = new FileStore(root);
    await s.close();
    expect(existsSync(join(root, 'objects'))).toBe(true);
    expect(existsSync(join(root, 'tmp'))).toBe(true);
  });

  it('openStore passes fileSyncReadBytesMax to file: stores', async () => {
    const dir = fresh();
    const s = await openStore(`file:${dir}`, { fileSyncReadBytesMax: 1024 });
    await s.put('x', new Uint8Array([1, 2, 3]));
    expect([...(await s.get('x', { range: { start: 1, end: 2 } }))]).toEqual([2, 3]);
    expect((s as unknown as { syncReadBytesMax: number }).syncReadBytesMax).toBe(1024);
  });
});

describe('WAL in front of file:', () =>
  objectStoreConformance(async () =>
    WalStore.open(new FileStore(fresh()), {
      dir: fresh(),
      flushIntervalMs: 2,
      walObjectBytesMax: 64 << 10,
      packBytes: 4 << 10,
    }),
  ));
describe('cache in front of file:', () =>
  objectStoreConformance(async () => new CachedStore(new FileStore(fresh()), 1 << 20)));

describe('cache with a disk tier in front of file: (64 KiB in memory: most objects go through the disk)', () =>
  objectStoreConformance(
    async () =>
      new CachedStore(new FileStore(fresh()), 64 << 10, 32 << 10, { dir: fresh(), bytesMax: 256 << 10 }),
  ));

describe('cache tiers', () => {
  const body = (i: number, v = 0) => Buffer.alloc(4096, (i * 7 + v) & 0xff);

  it('moves what memory evicts to the disk, serves it from there, and stays within both bounds', async () => {
    const dir = fresh();
    const c = new CachedStore(new FileStore(fresh()), 16 << 10, 8 << 10, { dir, bytesMax: 40 << 10 });
    for (let i = 0; i < 20; i++) await c.put(`k${i}`, body(i));
    for (let i = 0; i < 20; i++) expect(Buffer.from(await c.get(`k${i}`)).equals(body(i))).toBe(true);
    expect(c.stats.bytes).toBeLessThanOrEqual(16 << 10);
    expect(c.stats.diskBytes).toBeLessThanOrEqual(40 << 10);
    expect(c.stats.diskEntries).toBeGreaterThan(0);
    // the most recent 4 are in memory, the 10 before them on the disk, the rest only in the store
    const before = { ...c.stats };
    for (let i = 19; i >= 6; i--) expect(Buffer.from(await c.get(`k${i}`)).equals(body(i))).toBe(true);
    expect(c.stats.hits - before.hits).toBe(4);
    expect(c.stats.diskHits - before.diskHits).toBe(10);
    expect(c.stats.misses - before.misses).toBe(0);
    await c.close();
    expect(() => readdirSync(dir)).toThrow(); // removed with the cache
  });

  it('never serves a disk copy of a version that was written over, or one whose file is damaged', async () => {
    const dir = fresh();
    const c = new CachedStore(new FileStore(fresh()), 8 << 10, 8 << 10, { dir, bytesMax: 64 << 10 });
    for (let i = 0; i < 6; i++) await c.put(`k${i}`, body(i));
    for (let i = 0; i < 6; i++) await c.get(`k${i}`); // k0-k3 end on the disk
    await c.put('k0', body(0, 1));
    expect(Buffer.from(await c.get('k0')).equals(body(0, 1))).toBe(true);
    await c.delete('k1');
    await expect(c.get('k1')).rejects.toBeInstanceOf(NotFoundError);
    // flip a byte in every file on the disk: each is then a miss, served right from the store
    const files = readdirSync(dir);
    expect(files.length).toBeGreaterThan(0);
    for (const f of files) {
      const fh = await open(join(dir, f), 'r+');
      const b = Buffer.alloc(1);
      const { size } = await fh.stat();
      await fh.read(b, 0, 1, size - 1);
      b[0]! ^= 0xff;
      await fh.write(b, 0, 1, size - 1);
      await fh.close();
    }
    const misses = c.stats.misses;
    for (const i of [2, 3]) expect(Buffer.from(await c.get(`k${i}`)).equals(body(i))).toBe(true);
    expect(c.stats.misses - misses).toBe(2);
    await c.close();
  });

  it('refuses a memory bound that is not a number of bytes >= 0 (NaN never evicted: the cache grew without bound)', () => {
    for (const bad of [Number.NaN, -1, '1' as unknown as number]) {
      expect(() => new CachedStore(new MemStore(), bad)).toThrow(
        /CachedStore: cacheBytesMax must be a number of bytes >= 0, got/,
      );
      expect(() => new CachedStore(new MemStore(), 1 << 20, bad)).toThrow(
        /CachedStore: objectBytesMax must be a number of bytes >= 0, got/,
      );
    }
    expect(() => new CachedStore(new MemStore(), Number.NaN)).toThrow('got NaN');
    expect(() => new CachedStore(new MemStore(), '1' as unknown as number)).toThrow("got '1'");
    expect(new CachedStore(new MemStore(), 0).cacheBytesMax).toBe(0);
  });

  it('open with openStore: cacheDisk under cacheBytes, and not without it', async () => {
    const dir = fresh();
    const s = await openStore(`file:${fresh()}`, {
      cacheBytes: 32 << 10,
      cacheDisk: { dir, bytesMax: 1 << 20 },
    });
    for (let i = 0; i < 16; i++) await s.put(`o${i}`, body(i));
    for (let i = 0; i < 16; i++) await s.get(`o${i}`);
    expect((s as CachedStore).stats.diskEntries).toBeGreaterThan(0);
    for (let i = 0; i < 16; i++) expect(Buffer.from(await s.get(`o${i}`)).equals(body(i))).toBe(true);
    await s.close();
    await expect(openStore(`file:${fresh()}`, { cacheDisk: { dir, bytesMax: 1 << 20 } })).rejects.toThrow(
      /cacheDisk needs cacheBytes/,
    );
  });

  it('does not cache what a get fetched while a put through it replaced the object', async () => {
    const inner = new FileStore(fresh());
    let gate: Promise<void> | undefined;
    const get = inner.get.bind(inner);
    inner.get = async (...a: Parameters<typeof get>) => {
      const data = await get(...a);
      await gate;
      return data;
    };
    const c = new CachedStore(inner, 1 << 20);
    await c.put('k', body(1));
    let open!: () => void;
    gate = new Promise<void>((r) => {
      open = r;
    });
    const reading = c.get('k'); // fetches the first version, then waits at the gate
    await new Promise((r) => setTimeout(r, 20));
    await c.put('k', body(1, 1));
    open();
    await reading;
    gate = undefined;
    expect(Buffer.from(await c.get('k')).equals(body(1, 1))).toBe(true);
    await c.close();
  });
});
describe('tiers (auto: express + standard)', () =>
  objectStoreConformance(
    async () =>
      new TieredStore(new FileStore(fresh()), new MemStore(), {
        defaultClass: 'auto',
        classes: { 'p/': 'standard', 'd/': 'express' },
      }),
  ));
describe('tiers: options', () => {
  it('refuses ages that are not milliseconds >= 0 and classes that are not one (an idle age of NaN moved nothing)', () => {
    const mk = (o: object) => () => new TieredStore(new MemStore(), new MemStore(), o as never);
    expect(mk({ idleMsBeforeStandard: Number.NaN })).toThrow(
      'TieredStore: idleMsBeforeStandard must be a number of milliseconds >= 0, got NaN',
    );
    expect(mk({ moveStaleMs: -1 })).toThrow(
      'TieredStore: moveStaleMs must be a number of milliseconds >= 0, got -1',
    );
    expect(mk({ classes: { 'a/': 'cold' } })).toThrow(
      "TieredStore: the class of 'a/' must be express, standard or auto, got 'cold'",
    );
    expect(mk({ defaultClass: 'hot' })).toThrow(
      "TieredStore: defaultClass must be express, standard or auto, got 'hot'",
    );
    expect(mk({ idleMsBeforeStandard: 0, classes: { 'a/': 'auto' }, defaultClass: 'express' })).not.toThrow();
  });
});

describe('tiers: moveIdle', () => {
  it('moves idle auto objects to standard, and passes by one deleted between its listing and its read', async () => {
    // another process (a stream's gc or erasure) deletes b after the listing named it
    class Racing extends MemStore {
      override async get(key: string, opts?: Parameters<MemStore['get']>[1]) {
        if (key === 'x/b') await this.delete(key);
        return super.get(key, opts);
      }
    }
    const express = new Racing();
    const standard = new MemStore();
    const t = new TieredStore(express, standard, { defaultClass: 'auto', idleMsBeforeStandard: 1000 });
    for (const k of ['x/a', 'x/b', 'x/c']) await t.put(k, new Uint8Array([k.charCodeAt(2)]));
    expect(await t.moveIdle(Date.now() + 5000)).toBe(2);
    expect((await standard.list('')).objects.map((o) => o.key)).toEqual(['x/a', 'x/c']);
    expect((await express.list('')).objects).toEqual([]);
    expect([...(await t.get('x/c'))]).toEqual([99]);
    await expect(t.get('x/b')).rejects.toThrow(/x\/b/);
  });

  it('moves several objects at once; a move that fails is reported once the others settle, and loses nothing', async () => {
    let inFlight = 0;
    let most = 0;
    class Standard extends MemStore {
      override async put(
        key: string,
        data: Parameters<MemStore['put']>[1],
        opts?: Parameters<MemStore['put']>[2],
      ) {
        inFlight++;
        most = Math.max(most, inFlight);
        await new Promise((r) => setTimeout(r, 2));
        inFlight--;
        if (key === 'x/05') throw new Error('disk full at x/05');
        return super.put(key, data, opts);
      }
    }
    const express = new MemStore();
    const standard = new Standard();
    const t = new TieredStore(express, standard, { defaultClass: 'auto', idleMsBeforeStandard: 1000 });
    const keys = Array.from({ length: 12 }, (_, i) => `x/${String(i).padStart(2, '0')}`);
    for (const k of keys) await t.put(k, Buffer.from(k));
    await expect(t.moveIdle(Date.now() + 5000)).rejects.toThrow('disk full at x/05');
    expect(most).toBeGreaterThan(1);
    // the rounds of four before it moved, and the others of its round; it and the later ones wait in
    // express; every object reads back
    expect((await standard.list('')).objects.map((o) => o.key)).toEqual([
      'x/00',
      'x/01',
      'x/02',
      'x/03',
      'x/04',
      'x/06',
      'x/07',
    ]);
    expect((await express.list('')).objects.map((o) => o.key)).toEqual([
      'x/05',
      'x/08',
      'x/09',
      'x/10',
      'x/11',
    ]);
    for (const k of keys) expect(Buffer.from(await t.get(k)).toString()).toBe(k);
  });
});
describe('tiers: moves racing writers, deleters and other movers', () => {
  const idle = { defaultClass: 'auto' as const, idleMsBeforeStandard: 1000 };
  const later = () => Date.now() + 5000;
  const text = (b: Uint8Array) => Buffer.from(b).toString();

  it('a version written between the read and the express delete stays (it was lost after a head)', async () => {
    // another process's writer, with handles of its own on the same objects
    const standard = new MemStore('mem:', 'tiers-rewritten-standard');
    const writer = new TieredStore(new MemStore('mem:', 'tiers-rewritten'), standard, idle);
    class Rewritten extends MemStore {
      override async delete(key: string, opts?: Parameters<MemStore['delete']>[1]) {
        if (opts?.ifMatch !== undefined) await writer.put(key, Buffer.from('v2')); // lands just before the delete
        return super.delete(key, opts);
      }
    }
    const t = new TieredStore(new Rewritten('mem:', 'tiers-rewritten'), standard, idle);
    await t.put('k', Buffer.from('v1'));
    expect(await t.moveIdle(later())).toBe(0);
    expect(text(await t.get('k'))).toBe('v2');
    expect(await standard.head('k')).toBeUndefined(); // the move's copy of v1 taken back
  });

  it('an object deleted between the read and the standard put does not come back', async () => {
    const standard = new MemStore('mem:', 'tiers-deleted-standard');
    const deleter = new TieredStore(new MemStore('mem:', 'tiers-deleted'), standard, idle);
    class Deleted extends MemStore {
      override async get(key: string, opts?: Parameters<MemStore['get']>[1]) {
        const data = await super.get(key, opts);
        await deleter.delete(key); // another process's delete, done before the move's put
        return data;
      }
    }
    const t = new TieredStore(new Deleted('mem:', 'tiers-deleted'), standard, idle);
    await t.put('k', Buffer.from('v1'));
    expect(await t.moveIdle(later())).toBe(0);
    await expect(t.get('k')).rejects.toBeInstanceOf(NotFoundError);
    expect((await standard.list('')).objects).toEqual([]);
  });

  it('a copy left by a mover that stopped halfway is taken over once stale, and the object moves', async () => {
    const express = new MemStore();
    const standard = new MemStore();
    const t = new TieredStore(express, standard, { ...idle, moveStaleMs: 60_000 });
    await t.put('k', Buffer.from('v1'));
    await standard.put('k', Buffer.from('v1')); // step 2 done, step 3 never came
    expect(await t.moveIdle(later())).toBe(0); // young: another mover's, maybe in flight
    expect(await express.head('k')).toBeDefined();
    const old = new TieredStore(express, standard, { ...idle, moveStaleMs: 1 });
    await new Promise((r) => setTimeout(r, 5));
    expect(await old.moveIdle(later())).toBe(1);
    expect(await express.head('k')).toBeUndefined();
    expect(text(await t.get('k'))).toBe('v1');
  });

  /**
   * Two movers and a writer per key, every call of either tier a point where the scheduler may switch.
   * `process`: the three share the express store object (one process: a lock per key orders them), and the
   * writer's conditional puts on its own last version must succeed. `processes`: each has its own handles
   * on the same objects (separate processes: the protocol alone), the writer's puts are unconditional.
   */
  for (const mode of ['process', 'processes'] as const)
    it(`property (${mode}): movers racing a writer's puts and deletes, every key ends as its writer left it and no deleted one comes back`, async () => {
      let ns = 0;
      await fc.assert(
        fc.asyncProperty(
          fc.scheduler(),
          fc.array(fc.array(fc.constantFrom('del', 'put', 'cput'), { maxLength: 5 }), {
            minLength: 1,
            maxLength: 3,
          }),
          fc.integer({ min: 1, max: 3 }),
          async (sched, plans, rounds) => {
            class Scheduled extends MemStore {
              override async put(...a: Parameters<MemStore['put']>) {
                await sched.schedule(Promise.resolve(), `put ${a[0]}`);
                return super.put(...a);
              }
              override async get(...a: Parameters<MemStore['get']>) {
                await sched.schedule(Promise.resolve(), `get ${a[0]}`);
                return super.get(...a);
              }
              override async head(...a: Parameters<MemStore['head']>) {
                await sched.schedule(Promise.resolve(), `head ${a[0]}`);
                return super.head(...a);
              }
              override async delete(...a: Parameters<MemStore['delete']>) {
                await sched.schedule(Promise.resolve(), `delete ${a[0]}`);
                return super.delete(...a);
              }
            }
            const run = ns++;
            const shared = new Scheduled('mem:', `tiers-express-${mode}-${run}`);
            const standard = new MemStore('mem:', `tiers-standard-${mode}-${run}`);
            const tiers = () =>
              new TieredStore(
                mode === 'process' ? shared : new Scheduled('mem:', `tiers-express-${mode}-${run}`),
                new Scheduled('mem:', `tiers-standard-${mode}-${run}`),
                idle,
              );
            const writer = tiers();
            const movers = [tiers(), tiers()];
            const expected = new Map<string, string | undefined>();
            for (let k = 0; k < plans.length; k++) await standard.put(`k${k}`, Buffer.from('old')); // moved before
            for (let k = 0; k < plans.length; k++)
              await MemStore.prototype.put.call(shared, `k${k}`, Buffer.from('v0'));
            const writes = plans.map(async (plan, k) => {
              const key = `k${k}`;
              let value: string | undefined = 'v0';
              for (const [i, op] of plan.entries()) {
                if (op === 'del') {
                  await writer.delete(key);
                  value = undefined;
                  continue;
                }
                const next = `v${i + 1}`;
                const cond =
                  op === 'put' || mode === 'processes'
                    ? {}
                    : value === undefined
                      ? { ifNoneMatch: '*' as const }
                      : { ifMatch: etagOf(Buffer.from(value)) };
                await writer.put(key, Buffer.from(next), cond);
                value = next;
              }
              expected.set(key, value);
            });
            const moves = movers.map(async (m) => {
              for (let r = 0; r < rounds; r++) await m.moveIdle(later());
            });
            await sched.waitFor(Promise.all([...writes, ...moves]));
            const trace = () =>
              sched
                .report()
                .map((r) => r.label)
                .join(', ');
            for (let k = 0; k < plans.length; k++) {
              const key = `k${k}`;
              const got = await sched.waitFor(
                writer
                  .get(key)
                  .then(text, (e: unknown) => (e instanceof NotFoundError ? undefined : Promise.reject(e))),
              );
              expect(got, `${key}: ${trace()}`).toBe(expected.get(key));
              if (got === undefined)
                expect(await standard.head(key), `${key} came back: ${trace()}`).toBeUndefined();
            }
          },
        ),
        { numRuns: 300 },
      );
    });
});
describe('injected latency', () =>
  objectStoreConformance(
    async () =>
      new LatencyStore(new MemStore(), {
        put: { p50Ms: 0.2, p99Ms: 1 },
        get: { p50Ms: 0.2, p99Ms: 1 },
        head: { p50Ms: 0.1, p99Ms: 1 },
        list: { p50Ms: 0.2, p99Ms: 1 },
        delete: { p50Ms: 0.1, p99Ms: 1 },
      }),
    { largeBytes: 2 << 20 },
  ));

describe('file: a directory that cannot be made', () => {
  // Node's mkdir({ recursive: true }) never settled here: every mkdir under /proc answers ENOENT
  it.skipIf(!existsSync('/proc/self'))(
    'fails every operation with the mkdir error, and close returns',
    async () => {
      const s = await openStore('file:/proc/strata-no-such/store');
      await expect(s.put('k', new Uint8Array([1]))).rejects.toThrow(/ENOENT.*mkdir '\/proc\/strata-no-such'/);
      await expect(s.get('k')).rejects.toThrow(/ENOENT/);
      await expect(s.list('')).rejects.toThrow(/ENOENT/);
      await s.close();
      await expect(openStore('mem:', { wal: { dir: '/proc/strata-no-such/wal' } })).rejects.toThrow(/ENOENT/);
    },
  );
});

describe('file: conditional deletes', () => {
  it('a put that lands between the check and the delete stays, and the delete fails', async () => {
    // unconditional puts take no lock: one replaces the object right after the delete's check
    let landing: (() => Promise<unknown>) | undefined;
    class Raced extends FileStore {
      override async head(key: string) {
        const h = await super.head(key);
        const put = landing;
        landing = undefined;
        await put?.();
        return h;
      }
    }
    const root = fresh();
    const s = new Raced(root);
    const e1 = await s.put('k', Buffer.from('v1'));
    landing = () => s.put('k', Buffer.from('v2'));
    await expect(s.delete('k', { ifMatch: e1 })).rejects.toThrow(/etag is [0-9a-f]{32}, not/);
    expect(Buffer.from(await s.get('k')).toString()).toBe('v2');
    expect(readdirSync(join(root, 'tmp')).filter((f) => f.endsWith('.deleted'))).toEqual([]);
    // and with no put between, the version goes
    await s.delete('k', { ifMatch: etagOf(Buffer.from('v2')) });
    expect(await s.head('k')).toBeUndefined();
    expect(readdirSync(join(root, 'tmp')).filter((f) => !f.startsWith('.lock-src.'))).toEqual([]);
  });
});

describe('file: streamed puts', () => {
  it('write the body as it arrives (a step at a time, not the whole object in memory), with the same etag', async () => {
    const root = fresh();
    const s = new FileStore(root);
    const step = Buffer.alloc(1 << 20);
    for (let i = 0; i < step.length; i++) step[i] = (i * 13) & 0xff;
    const tmpBytes = () =>
      readdirSync(join(root, 'tmp'))
        .filter((f) => f.endsWith('.tmp'))
        .reduce((n, f) => n + statSync(join(root, 'tmp', f)).size, 0);
    let onDiskMidway = 0;
    const etag = await s.put(
      'streamed',
      Readable.from(
        (async function* () {
          for (let i = 0; i < 40; i++) {
            if (i === 32) onDiskMidway = tmpBytes();
            yield Buffer.from(step);
          }
        })(),
      ),
    );
    // with 32 MiB produced, most of it was already in the temp file (the stream reads ahead a little)
    expect(onDiskMidway).toBeGreaterThan(8 << 20);
    const whole = Buffer.concat(Array.from({ length: 40 }, () => step));
    expect(etag).toBe(etagOf(whole));
    expect((await s.head('streamed'))?.etag).toBe(etag);
    expect(Buffer.from(await s.get('streamed')).equals(whole)).toBe(true);
  });

  it('put chunks of any sizes at their offsets while steps are written two at a time', async () => {
    const root = fresh();
    const s = new FileStore(root);
    let seed = 7;
    const next = () => {
      seed = (seed * 1103515245 + 12345) >>> 0;
      return seed;
    };
    const chunks: Buffer[] = [];
    for (let total = 0; total < 9 << 20; ) {
      const n = next() % 3 === 0 ? 1 + (next() % 64) : 1 + (next() % (700 << 10));
      const c = Buffer.alloc(n);
      for (let i = 0; i < n; i += 97) c[i] = next() & 0xff;
      chunks.push(c);
      total += n;
    }
    const whole = Buffer.concat(chunks);
    const etag = await s.put('odd', Readable.from(chunks));
    expect(etag).toBe(etagOf(whole));
    expect(Buffer.from(await s.get('odd')).equals(whole)).toBe(true);
  });

  it('a step that fails while the body is still arriving rejects the put, not the process', async () => {
    const root = fresh();
    const s = new FileStore(root);
    await s.put('k', Buffer.from('old'));
    // every step write fails (an I/O error); the body's next chunk comes only later, so the failed step waits
    // in flight, not awaited yet, across turns of the event loop
    const probe = await open(join(root, 'probe'), 'w');
    const proto = Object.getPrototypeOf(probe) as {
      writev: (parts: unknown, at?: number) => Promise<unknown>;
    };
    await probe.close();
    const writev = proto.writev;
    proto.writev = function (this: unknown, parts: unknown, at?: number) {
      if (typeof at === 'number' && at > 0) return Promise.reject(new Error('EIO: i/o error, write'));
      return writev.call(this, parts, at);
    };
    const unhandled: unknown[] = [];
    const onUnhandled = (e: unknown) => unhandled.push(e);
    process.on('unhandledRejection', onUnhandled);
    try {
      const body = Readable.from(
        (async function* () {
          yield Buffer.alloc(1 << 20, 1);
          await new Promise((r) => setTimeout(r, 50));
          yield Buffer.alloc(1 << 20, 2);
        })(),
      );
      await expect(s.put('k', body)).rejects.toThrow('EIO');
    } finally {
      proto.writev = writev;
      process.off('unhandledRejection', onUnhandled);
    }
    expect(unhandled).toEqual([]);
    expect(Buffer.from(await s.get('k')).toString()).toBe('old');
    expect(readdirSync(join(root, 'tmp')).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('a body stream that fails midway leaves the old object and no temp file', async () => {
    const root = fresh();
    const s = new FileStore(root);
    await s.put('k', Buffer.from('old'));
    const failing = Readable.from(
      (async function* () {
        yield Buffer.alloc(3 << 20, 1);
        throw new Error('the source went away');
      })(),
    );
    await expect(s.put('k', failing)).rejects.toThrow('the source went away');
    expect(Buffer.from(await s.get('k')).toString()).toBe('old');
    expect(readdirSync(join(root, 'tmp')).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });
});

describe('file: listings', () => {
  it('see every put and delete of another instance on the same directory at once, reused or not', async () => {
    const root = fresh();
    const a = new FileStore(root);
    const b = new FileStore(root);
    const keys = async (s: FileStore, prefix = 'k/') => (await s.list(prefix)).objects.map((o) => o.key);
    const model = new Set<string>();
    for (let i = 0; i < 120; i++) {
      const [writer, reader] = i % 3 === 0 ? [a, b] : [b, a];
      const key = `k/${String(i % 17).padStart(2, '0')}`;
      if (model.has(key) && i % 4 === 0) {
        await writer.delete(key);
        model.delete(key);
      } else {
        await writer.put(key, Buffer.from(String(i)));
        model.add(key);
      }
      // now and then a pause longer than the reuse slack, so the next list may reuse the last listing
      if (i % 20 === 0) await new Promise((r) => setTimeout(r, 80));
      expect(await keys(reader)).toEqual([...model].sort());
      expect(await keys(reader)).toEqual([...model].sort()); // a second list: the reused listing
      const page = await reader.list('k/', { startAfter: 'k/08', limit: 3 });
      expect(page.objects.map((o) => o.key)).toEqual(
        [...model]
          .sort()
          .filter((k) => k > 'k/08')
          .slice(0, 3),
      );
    }
  });
});
