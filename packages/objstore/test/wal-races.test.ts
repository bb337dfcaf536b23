// The WAL's conditional writes, direct writes and listings, each stopped midway (a store call held) while
// another write lands: each case failed before its fix.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CachedStore, etagOf, MemStore, WalStore } from '../src/index.js';
import { Gated, settle, turns } from './helpers/gated.js';

const root = mkdtempSync(join(tmpdir(), 'objstore-walr-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let dirs = 0;
const fresh = () => join(root, `d${dirs++}`);
const bytes = (t: string) => Buffer.from(t);
const text = (b: Uint8Array) => Buffer.from(b).toString();

describe('WAL: conditional writes, direct writes and listings racing other writes', () => {
  const walOpts = () => ({ dir: fresh(), flushIntervalMs: 1, walObjectBytesMax: 16 });

  it('a create-only put whose check waits for the store fails when a put lands meanwhile (it overwrote it)', async () => {
    const store = new Gated();
    const w = await WalStore.open(store, walOpts());
    store.hold('head'); // the key is in neither the WAL nor a pack: the check asks the store
    const create = settle(w.put('k', bytes('create'), { ifNoneMatch: '*' }));
    await turns();
    const plain = await w.put('k', bytes('plain')); // acknowledged while the create waits
    store.release('head');
    const c = await create;
    expect(c.ok ? 'created' : (c.e as Error).name).toBe('PreconditionFailedError');
    expect(text(await w.get('k'))).toBe('plain');
    expect((await w.head('k'))?.etag).toBe(plain);
    await w.close();
  });

  it('an ifMatch delete whose check waits for the store fails when a put lands meanwhile', async () => {
    const store = new Gated();
    const stored = await store.put('k', bytes('in the store'));
    const w = await WalStore.open(store, walOpts());
    store.hold('head');
    const del = settle(w.delete('k', { ifMatch: stored }));
    await turns();
    await w.put('k', bytes('newer'));
    store.release('head');
    expect((await del).ok).toBe(false);
    expect(text(await w.get('k'))).toBe('newer');
    await w.close();
  });

  it('a close waits for a direct write under way: its put succeeds and a reopen reads it, not the older version', async () => {
    const store = new Gated();
    const opts = walOpts();
    let w = await WalStore.open(store, opts);
    await w.put('k', bytes('small, older'));
    store.hold('put', 'k'); // the large body's put to the store waits
    const large = settle(w.put('k', bytes('a body past walObjectBytesMax, newer')));
    await turns();
    const closing = settle(w.close());
    await turns();
    // calls made once the close began are refused
    await expect(w.put('j', bytes('late'))).rejects.toThrow('the WAL store is closed');
    store.release('put');
    const [l, c] = [await large, await closing];
    expect(l.ok ? 'stored' : (l.e as Error).message).toBe('stored');
    expect(c.ok).toBe(true);
    w = await WalStore.open(store, opts);
    expect(text(await w.get('k'))).toBe('a body past walObjectBytesMax, newer');
    await w.close();
  });

  it('a conditional put too large for the WAL does not replace a put that landed after its check', async () => {
    const store = new Gated();
    const opts = walOpts();
    const w = await WalStore.open(store, opts);
    store.hold('put'); // the large body's put to the store waits
    const create = settle(w.put('k', bytes('a body past walObjectBytesMax'), { ifNoneMatch: '*' }));
    await turns();
    await w.put('k', bytes('small')); // after the check: the newer write
    store.release('put');
    // the create took effect first (its check saw no object), then the small put replaced it
    expect((await create).ok).toBe(true);
    expect(text(await w.get('k'))).toBe('small');
    await w.close();
    const again = await WalStore.open(store, opts);
    expect(text(await again.get('k'))).toBe('small');
    await again.close();
  });

  it('a direct write the store shows before it answers stays below a put made once it was read', async () => {
    const store = new Gated();
    const opts = walOpts();
    const w = await WalStore.open(store, opts);
    store.hold('putReply', 'k'); // the object is in the store; the store's answer waits
    const large = w.put('k', bytes('a body past walObjectBytesMax'));
    await turns();
    expect(text(await w.get('k'))).toBe('a body past walObjectBytesMax'); // it took effect
    await w.put('k', bytes('small')); // so this one is newer
    store.release('putReply');
    await large;
    expect(text(await w.get('k'))).toBe('small'); // the direct write's marker replaced it
    await w.close();
    const again = await WalStore.open(store, opts);
    expect(text(await again.get('k'))).toBe('small');
    await again.close();
  });

  it('a listing racing a direct write of a key the WAL deleted neither lists the deleted version nor leaves the key out', async () => {
    for (const before of ['deleted', 'written'] as const) {
      const store = new Gated();
      const w = await WalStore.open(store, walOpts());
      await w.put('k', bytes('the old version, direct'));
      await w.put('k', bytes('small')); // now in the WAL
      if (before === 'deleted') await w.delete('k'); // the direct object stays in the store, deleted by the WAL
      store.hold('list'); // the store's page is read now, before the new write
      const listing = w.list('');
      await turns();
      const etag = await w.put('k', bytes('the new version, direct'));
      store.release('list');
      const page = await listing;
      expect(
        page.objects.map((o) => [o.key, o.etag]),
        before,
      ).toEqual([['k', etag]]);
      await w.close();
    }
  });

  it('keys in the reserved pack prefix are refused by get, head and delete as by put', async () => {
    const store = new MemStore();
    const w = await WalStore.open(store, { ...walOpts(), packBytes: 1 });
    await w.put('k', bytes('v'));
    await w.packNow();
    const [pack] = (await store.list('.wal-packs/')).objects;
    for (const op of [
      () => w.get(pack!.key),
      () => w.head(pack!.key),
      () => w.getStream(pack!.key),
      () => w.delete(pack!.key),
      () => w.put(pack!.key, bytes('x')),
    ])
      await expect(op()).rejects.toThrow(/is in the WAL's reserved prefix \.wal-packs\//);
    expect(text(await w.get('k'))).toBe('v');
    await w.close();
  });
});

describe('WAL: a closed handle', () => {
  it('fails reads as it fails writes (a handle kept after a reopen read what it held at its close)', async () => {
    const store = new MemStore();
    const dir = fresh();
    const old = await WalStore.open(store, { dir });
    await old.put('k', bytes('v1'));
    await old.close();
    const w = await WalStore.open(store, { dir });
    await w.put('k', bytes('v2'));
    for (const read of [
      () => old.get('k'),
      () => old.head('k'),
      () => old.getStream('k'),
      () => old.list(''),
    ])
      await expect(read()).rejects.toThrow('the WAL store is closed');
    await expect(old.put('k', bytes('v3'))).rejects.toThrow('the WAL store is closed');
    expect(text(await w.get('k'))).toBe('v2');
    await w.close();
  });
});

describe('a cache over a closed WAL', () => {
  it('serves nothing of its own after its close (a cache kept after the WAL was opened again served what it held)', async () => {
    const store = new MemStore();
    const dir = fresh();
    const old = new CachedStore(await WalStore.open(store, { dir }), 1 << 20, 1 << 20, {
      dir: fresh(),
      bytesMax: 1 << 20,
    });
    await old.put('k', bytes('v1'));
    expect(text(await old.get('k'))).toBe('v1'); // cached
    await old.close();
    const w = await WalStore.open(store, { dir });
    await w.put('k', bytes('v2'));
    await expect(old.get('k')).rejects.toThrow('the WAL store is closed');
    expect(old.stats).toMatchObject({ entries: 0, bytes: 0, diskEntries: 0, diskBytes: 0 });
    await w.close();
  });
});

describe('WAL: deletes of objects the store holds', () => {
  it('remove them from the store once durable (they were kept for ever), and not a direct write made since', async () => {
    const store = new MemStore();
    const opts = { dir: fresh(), flushIntervalMs: 1, walObjectBytesMax: 16 };
    await store.put('before', bytes('written before the WAL'));
    const w = await WalStore.open(store, opts);
    await w.put('big', bytes('a body past walObjectBytesMax'));
    await w.put('again', bytes('a body past walObjectBytesMax'));
    await w.delete('big');
    await w.delete('before');
    // deleted, then written directly at once: the new object is the key's
    const deleting = w.delete('again');
    const rewritten = w.put('again', bytes('the next body past walObjectBytesMax'));
    await Promise.all([deleting, rewritten]);
    await w.close(); // waits for the deletes from the store
    expect((await store.list('')).objects.map((o) => o.key)).toEqual(['again']);
    const reopened = await WalStore.open(store, opts);
    expect(text(await reopened.get('again'))).toBe('the next body past walObjectBytesMax');
    await expect(reopened.head('big')).resolves.toBeUndefined();
    await reopened.close();
  });
});

describe('WAL: large objects in the store written over by small puts', () => {
  /** The store's objects other than the WAL's packs. */
  const objects = async (store: MemStore) =>
    (await store.list('')).objects.map((o) => o.key).filter((k) => !k.startsWith('.wal-packs/'));
  const large = (t: string) => bytes(`${t}: a body past walObjectBytesMax`);

  it('remove the large object once the small put is durable (it stayed in the store, hidden, for ever)', async () => {
    const store = new MemStore();
    const opts = { dir: fresh(), flushIntervalMs: 1, walObjectBytesMax: 16, packIntervalMs: 3_600_000 };
    let w = await WalStore.open(store, opts);
    // nothing older in the WAL (no marker awaited), an older version in the WAL, the marker packed
    await w.put('fresh', large('fresh'));
    await w.put('older', bytes('v1'));
    await w.put('older', large('older'));
    await w.put('packed', large('packed'));
    await w.packNow();
    // and one written again after its overwrite: that large object is the key's
    await w.put('again', large('again 1'));
    for (const k of ['fresh', 'older', 'packed', 'again']) await w.put(k, bytes(`small ${k}`));
    await w.put('again', large('again 2'));
    await w.close(); // waits for the removals
    expect(await objects(store)).toEqual(['again']);
    // a large object written before a reopen: the WAL knows it from the marker
    w = await WalStore.open(store, opts);
    await w.put('reopened', large('reopened'));
    await w.packNow();
    await w.close();
    w = await WalStore.open(store, opts);
    expect(text(await w.get('reopened'))).toBe('reopened: a body past walObjectBytesMax');
    await w.put('reopened', bytes('small reopened'));
    await w.close();
    expect(await objects(store)).toEqual(['again']);
    w = await WalStore.open(store, opts);
    for (const k of ['fresh', 'older', 'packed', 'reopened']) expect(text(await w.get(k))).toBe(`small ${k}`);
    expect(text(await w.get('again'))).toBe('again 2: a body past walObjectBytesMax');
    await w.close();
  });

  it('remove a large object a put landed over while the store wrote it', async () => {
    const store = new Gated();
    const w = await WalStore.open(store, { dir: fresh(), flushIntervalMs: 1, walObjectBytesMax: 16 });
    await w.put('k', bytes('v1'));
    store.hold('put', 'k');
    const direct = w.put('k', large('k'));
    await turns();
    await w.put('k', bytes('newer')); // newer than the large write, which then adds no marker
    store.release('put');
    await direct;
    await w.close();
    expect(await objects(store)).toEqual([]);
  });

  it('remove at the next open what a crash (here: a failing store delete) left hidden after an overwrite or a delete', async () => {
    class Failing extends MemStore {
      down = true;
      override async delete(...a: Parameters<MemStore['delete']>) {
        if (this.down) throw new Error('the store is down');
        return super.delete(...a);
      }
    }
    const store = new Failing();
    const opts = { dir: fresh(), flushIntervalMs: 1, walObjectBytesMax: 16, packIntervalMs: 3_600_000 };
    await store.put('before', bytes('written before the WAL'));
    let w = await WalStore.open(store, opts);
    await w.put('over', large('over'));
    await w.put('over', bytes('small'));
    await w.put('deleted', large('deleted'));
    await w.delete('deleted');
    await w.delete('before');
    await w.put('kept', large('kept')); // the key's: stays
    await w.close();
    expect(await objects(store)).toEqual(['before', 'deleted', 'kept', 'over']);
    store.down = false;
    w = await WalStore.open(store, opts);
    await w.close(); // waits for the removals begun at open
    expect(await objects(store)).toEqual(['kept']);
    w = await WalStore.open(store, opts);
    expect(text(await w.get('over'))).toBe('small');
    expect(text(await w.get('kept'))).toBe('kept: a body past walObjectBytesMax');
    expect(await w.head('deleted')).toBeUndefined();
    expect(await w.head('before')).toBeUndefined();
    await w.close();
  });
});

describe('a cache racing a put through it', () => {
  it('caches nothing a get fetched while the put ran (a get after a head that saw the new version returned the old)', async () => {
    const store = new Gated();
    await store.put('k', bytes('v1'));
    const cache = new CachedStore(store, 1 << 20);
    store.hold('put'); // the put waits before it writes...
    store.hold('putReply'); // ...and once written, for its answer
    const put = cache.put('k', bytes('v2'));
    await turns();
    expect(text(await cache.get('k'))).toBe('v1'); // fetched while the put runs: not cached
    store.release('put');
    await turns();
    expect((await cache.head('k'))?.etag).toBe(etagOf(bytes('v2')));
    expect(text(await cache.get('k'))).toBe('v2');
    store.release('putReply');
    await put;
    expect(text(await cache.get('k'))).toBe('v2');
  });
});
