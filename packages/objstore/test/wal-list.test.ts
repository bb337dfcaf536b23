// WAL listings: pages merged from the store's listing and the WAL's three layers (the writes in memory, the
// ones a pack in progress is storing, the packed keys), checked page by page against a MemStore given the
// same writes, and a store page that the WAL's deletions empty.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { type ListOptions, MemStore, type ObjectStore, type PutOptions, WalStore } from '../src/index.js';
import { Gated } from './helpers/gated.js';

const root = mkdtempSync(join(tmpdir(), 'objstore-wall-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const fresh = () => join(root, `d${n++}`);
const packPrefix = '.wal-packs/';

/** A MemStore whose pack writes wait while `hold` is set (so a pack in progress can be listed through). */
class HeldStore extends MemStore {
  private gate: Promise<void> | undefined;
  private open: (() => void) | undefined;
  hold(): void {
    this.gate ??= new Promise((r) => {
      this.open = r;
    });
  }
  release(): void {
    this.open?.();
    this.gate = undefined;
    this.open = undefined;
  }
  override async put(key: string, body: Parameters<MemStore['put']>[1], opts?: PutOptions): Promise<string> {
    if (key.startsWith(packPrefix)) await this.gate;
    return super.put(key, body, opts);
  }
}

/** Every page of a listing, as `key:size` and each page's `nextStartAfter`. */
async function pages(s: ObjectStore, prefix: string, opts: ListOptions) {
  const out: { keys: string[]; next: string | undefined }[] = [];
  let after = opts.startAfter;
  for (let i = 0; i < 10_000; i++) {
    const page = await s.list(prefix, { ...opts, ...(after !== undefined ? { startAfter: after } : {}) });
    out.push({ keys: page.objects.map((o) => `${o.key}:${o.size}`), next: page.nextStartAfter });
    if (page.nextStartAfter === undefined) return out;
    after = page.nextStartAfter;
  }
  throw new Error('listing did not end');
}

const keyArb = fc.constantFrom(
  'a',
  'a/1',
  'a/2',
  'a/3',
  'a/\u{1F600}',
  'a/\uE000',
  'b',
  'b/1',
  'b/2',
  'c/x/y',
);

describe('WAL list', () => {
  it('pages as a MemStore given the same writes, through memory, a pack in progress, packs and direct writes (property)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.tuple(
            fc.constantFrom('put', 'put', 'big', 'delete', 'pack', 'release'),
            keyArb,
            fc.integer({ min: 0, max: 40 }),
          ),
          { maxLength: 40 },
        ),
        fc.constantFrom('', 'a', 'a/', 'b/', 'c/', 'z'),
        fc.option(keyArb, { nil: undefined }),
        fc.integer({ min: 1, max: 6 }),
        async (ops, prefix, startAfter, limit) => {
          const store = new HeldStore();
          // objects of more than 64 bytes go to the store directly (the WAL keeps a "direct" entry)
          const w = await WalStore.open(store, {
            dir: fresh(),
            flushIntervalMs: 1,
            packIntervalMs: 3_600_000,
            walObjectBytesMax: 64,
          });
          const model = new MemStore();
          const packs: Promise<void>[] = [];
          try {
            for (const [op, key, size] of ops) {
              if (op === 'put' || op === 'big') {
                const body = new Uint8Array(op === 'big' ? 65 + size : size);
                await w.put(key, body);
                await model.put(key, body);
              } else if (op === 'delete') {
                await w.delete(key);
                await model.delete(key);
              } else if (op === 'pack') {
                store.hold();
                packs.push(w.packNow());
              } else {
                store.release();
                await Promise.all(packs);
              }
            }
            const opts = { limit, ...(startAfter !== undefined ? { startAfter } : {}) };
            expect(await pages(w, prefix, opts)).toEqual(await pages(model, prefix, opts));
          } finally {
            store.release();
            await Promise.all(packs);
            await w.close();
          }
        },
      ),
      { numRuns: 150 },
    );
  });

  it('goes on past a store page whose every object the WAL deleted', async () => {
    // the deletes' removals of the objects from the store held: the store still lists them (as while the
    // removals run, or after one failed)
    const store = new Gated();
    store.hold('delete');
    const w = await WalStore.open(store, {
      dir: fresh(),
      flushIntervalMs: 1,
      packIntervalMs: 3_600_000,
      walObjectBytesMax: 8,
    });
    try {
      // six objects on the store itself, the first three deleted through the WAL (not yet packed)
      for (let i = 0; i < 6; i++) await w.put(`k/${i}`, new Uint8Array(16));
      for (let i = 0; i < 3; i++) await w.delete(`k/${i}`);
      expect((await store.list('k/')).objects).toHaveLength(6);
      // the store's first page of three holds only deleted keys: the WAL's page must not end the listing
      const first = await w.list('k/', { limit: 3 });
      expect(first.objects.map((o) => o.key)).toEqual(['k/3', 'k/4', 'k/5']);
      expect(first.nextStartAfter).toBeUndefined();
      expect(await pages(w, 'k/', { limit: 2 })).toEqual([
        { keys: ['k/3:16', 'k/4:16'], next: 'k/4' },
        { keys: ['k/5:16'], next: undefined },
      ]);
    } finally {
      store.release('delete');
      await w.close();
    }
    expect((await store.list('k/')).objects).toHaveLength(3); // removed once released
  });

  it('lists packed keys from where the page starts, with any number of packs and layers', async () => {
    const store = new MemStore();
    const w = await WalStore.open(store, { dir: fresh(), flushIntervalMs: 1, packIntervalMs: 3_600_000 });
    try {
      // keys packed in three packs, out of order, some written again or deleted later, then more in memory
      const want = new Map<string, number>();
      for (let p = 0; p < 3; p++) {
        for (let i = p; i < 300; i += 3) {
          const k = `k/${String((i * 7919) % 300).padStart(3, '0')}`;
          await w.put(k, new Uint8Array(p + 1));
          want.set(k, p + 1);
        }
        await w.packNow();
      }
      for (let i = 0; i < 300; i += 10) {
        const k = `k/${String(i).padStart(3, '0')}`;
        if (i % 20 === 0) {
          await w.delete(k);
          want.delete(k);
        } else {
          await w.put(k, new Uint8Array(9));
          want.set(k, 9);
        }
      }
      const listed: string[] = [];
      for (const page of await pages(w, 'k/', { limit: 7 })) listed.push(...page.keys);
      expect(listed).toEqual([...want.keys()].sort().map((k) => `${k}:${want.get(k)}`));
      const from = await w.list('k/', { startAfter: 'k/149', limit: 3 });
      expect(from.objects.map((o) => o.key)).toEqual(
        [...want.keys()]
          .sort()
          .filter((k) => k > 'k/149')
          .slice(0, 3),
      );
    } finally {
      await w.close();
    }
  });
});
