import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileStore, MemStore, PreconditionFailedError, type PutOptions } from '@strata/objstore';
import { afterAll, describe, expect, it } from 'vitest';
import {
  FileLoglet,
  FileMetaStore,
  LogletUnavailableError,
  MemoryLoglet,
  MemoryMetaStore,
  NodeDisk,
  ObjectStoreLoglet,
  SealedError,
  TrimmedError,
  VirtualLog,
} from '../src/index.js';
import { logletConformance, metaStoreConformance } from './conformance.js';

const root = mkdtempSync(join(tmpdir(), 'vlog-conf-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const fresh = () => join(root, String(n++));

describe('MemoryLoglet', () => logletConformance(async (start) => new MemoryLoglet(start)));
describe('FileLoglet', () => logletConformance(async (start) => FileLoglet.open(fresh(), start)));
describe('FileLoglet, durable writes on the event loop', () =>
  logletConformance(async (start) =>
    FileLoglet.openOn(await NodeDisk.open(fresh(), { writesOnLoop: true }), start),
  ));
describe('ObjectStoreLoglet (mem: store)', () =>
  logletConformance(async (start) => new ObjectStoreLoglet(new MemStore(), 'log', start)));
describe('ObjectStoreLoglet (file: store)', () =>
  logletConformance(async (start) => new ObjectStoreLoglet(new FileStore(fresh()), 'log', start)));
describe('ObjectStoreLoglet on a long log', () => {
  it('a fresh client finds the tail and reads a range without fetching every batch, listing them once', async () => {
    class Counting extends MemStore {
      gets = 0;
      listed = 0;
      override get(...a: Parameters<MemStore['get']>) {
        this.gets++;
        return super.get(...a);
      }
      override async list(...a: Parameters<MemStore['list']>) {
        const page = await super.list(...a);
        this.listed += page.objects.length;
        return page;
      }
    }
    const store = new Counting();
    const w = new ObjectStoreLoglet(store, 'long', 0);
    for (let i = 0; i < 300; i++) await w.append([Buffer.from(`a${i}`), Buffer.from(`b${i}`)]);
    const r = new ObjectStoreLoglet(store, 'long', 0);
    store.gets = 0;
    store.listed = 0;
    expect(await r.checkTail()).toEqual({ tail: 600, sealed: false });
    expect(store.gets).toBeLessThanOrEqual(3); // the last batch, the free slot after it, the trim point
    expect(store.listed).toBe(300); // every batch listed once, to find the tail
    store.gets = 0;
    store.listed = 0;
    const recs = await r.read(581, 590);
    expect(recs.map((x) => x.position)).toEqual(Array.from({ length: 9 }, (_, i) => 581 + i));
    expect(Buffer.from(recs[0]!.payload).toString()).toBe('b290');
    expect(store.gets).toBeLessThanOrEqual(10); // 5 batches and the tail check, not 290
    // the tail check listed every slot: the batches holding 581-589 are known, nothing is listed again
    expect(store.listed).toBe(0);
  });

  it('a read fetches several batches at once (round trips of a remote store overlap), in order, and stops at a seal', async () => {
    class Slow extends MemStore {
      inFlight = 0;
      most = 0;
      override async get(...a: Parameters<MemStore['get']>) {
        this.inFlight++;
        this.most = Math.max(this.most, this.inFlight);
        await new Promise((r) => setTimeout(r, 1));
        this.inFlight--;
        return super.get(...a);
      }
    }
    const store = new Slow();
    const w = new ObjectStoreLoglet(store, 'slow', 0);
    for (let i = 0; i < 40; i++) await w.append([Buffer.from(`r${i}`)]);
    const r = new ObjectStoreLoglet(store, 'slow', 0);
    const recs = await r.read(3, 37);
    expect(recs.map((x) => x.position)).toEqual(Array.from({ length: 34 }, (_, i) => 3 + i));
    expect(recs.map((x) => Buffer.from(x.payload).toString())).toEqual(recs.map((x) => `r${x.position}`));
    expect(store.most).toBeGreaterThan(1);
    await w.seal();
    expect((await new ObjectStoreLoglet(store, 'slow', 0).read(0, 100)).length).toBe(40);
  });
});
describe('VirtualLog over MemoryLoglets (one segment)', () =>
  logletConformance(async (start) => {
    const v = await VirtualLog.create(
      new MemoryMetaStore(),
      async (_spec, s) => new MemoryLoglet(s),
      'mem://x',
      // an append to a sealed log waits this long for a successor segment before it gives up
      { appendTimeoutMs: 300 },
    );
    // a virtual log always starts at 0: fill the prefix so the suite's start holds
    if (start > 0) await v.append(Array.from({ length: start }, () => new Uint8Array(1)));
    return start > 0 ? offsetView(v, start) : v;
  }));
describe('VirtualLog over FileLoglets, reconfigured mid-way', () =>
  logletConformance(async (start) => {
    const dir = fresh();
    const v = await VirtualLog.create(
      new FileMetaStore(join(dir, 'meta.json')),
      (spec, s) => FileLoglet.open(join(dir, spec, String(s)), s),
      'a',
      { appendTimeoutMs: 300 },
    );
    if (start > 0) {
      await v.append(Array.from({ length: start }, () => new Uint8Array(1)));
      await v.reconfigure('b');
      return offsetView(v, start);
    }
    return v;
  }));

describe('MemoryMetaStore', () => metaStoreConformance(async () => new MemoryMetaStore()));
describe('FileMetaStore', () =>
  metaStoreConformance(async () => new FileMetaStore(join(fresh(), 'reg.json'))));

describe('FileMetaStore, a file it did not write', () => {
  it('refuses a version that is not a whole number >= 0, naming the file', async () => {
    const dir = fresh();
    mkdirSync(dir);
    const path = join(dir, 'reg.json');
    for (const [text, why] of [
      ['{"version": 1e400, "value": 1}', 'version Infinity is not a whole number >= 0'],
      ['{"version": 1.5, "value": 1}', 'version 1.5 is not a whole number >= 0'],
      ['{"version": -1, "value": 1}', 'version -1 is not a whole number >= 0'],
      ['{"value": 1}', 'version missing is not a whole number >= 0'],
      ['null', 'not a {"version", "value"} object'],
    ]) {
      writeFileSync(path, text!);
      await expect(new FileMetaStore(path).get()).rejects.toThrow(
        `MetaStore file ${path} is corrupt: ${why}`,
      );
    }
    writeFileSync(path, '{"version": 3, "value": "x"}');
    expect(await new FileMetaStore(path).get()).toEqual({ version: 3, value: 'x' });
  });
});

/** A VirtualLog whose first `start` positions are filler: the suite sees a log that starts at `start`. */
function offsetView(v: VirtualLog, start: number) {
  return Object.assign(Object.create(v) as VirtualLog, {
    start,
    read: async (from: number, to: number) => v.read(Math.max(from, start), to),
    prefixTrim: (p: number) => v.prefixTrim(Math.max(p, start)),
  });
}

describe('ObjectStoreLoglet at the tail', () => {
  it("a reader that has walked the loglet checks the tail with one get and no listing, and sees every other client's batch", async () => {
    class Counting extends MemStore {
      lists = 0;
      gets = 0;
      override list(...a: Parameters<MemStore['list']>) {
        this.lists++;
        return super.list(...a);
      }
      override get(...a: Parameters<MemStore['get']>) {
        this.gets++;
        return super.get(...a);
      }
    }
    const store = new Counting();
    const w = new ObjectStoreLoglet(store, 'tail', 5);
    const r = new ObjectStoreLoglet(store, 'tail', 5);
    expect(await r.checkTail()).toEqual({ tail: 5, sealed: false }); // an empty loglet: a listing
    let tail = 5;
    for (let i = 0; i < 40; i++) {
      // 0-3 batches of 1-3 records by the writer, then the reader's check
      for (let k = 0; k < i % 4; k++) {
        const ps = await w.append(Array.from({ length: 1 + ((i + k) % 3) }, () => new Uint8Array([i])));
        tail = ps.at(-1)! + 1;
      }
      store.lists = 0;
      store.gets = 0;
      expect(await r.checkTail()).toEqual({ tail, sealed: false });
      if (i % 4 === 0 && i > 0) {
        // nothing new since the last check: one get of the free slot, no listing
        expect(store.lists).toBe(0);
        expect(store.gets).toBe(1);
      }
    }
    expect((await r.read(5, tail)).map((x) => x.position)).toEqual(
      Array.from({ length: tail - 5 }, (_, i) => 5 + i),
    );
    // a reader following the tail: each new batch is found by the tail check and read with gets alone
    for (let i = 0; i < 12; i++) {
      const ps = await w.append(Array.from({ length: 1 + (i % 3) }, () => new Uint8Array([i])));
      store.lists = 0;
      const recs = await r.read(tail, Number.POSITIVE_INFINITY);
      expect(recs.map((x) => x.position)).toEqual(ps);
      expect(store.lists).toBe(1); // the tail check's, which found the batch and nothing after it
      tail = ps.at(-1)! + 1;
    }
    await w.seal();
    expect(await r.checkTail()).toEqual({ tail, sealed: true });
    await expect(r.append([new Uint8Array(1)])).rejects.toBeInstanceOf(SealedError);
  });
});
describe('ObjectStoreLoglet and a slot of no records', () => {
  it('an empty append writes no slot; a slot of none (an older version wrote one) is an error naming it, not a hang', async () => {
    const store = new MemStore();
    const w = new ObjectStoreLoglet(store, 'e', 0);
    expect(await w.append([])).toEqual([]);
    expect((await store.list('')).objects).toEqual([]);
    expect(await w.append([new Uint8Array([1])])).toEqual([0]);
    // what an empty append wrote before: a count of 0 at the next slot, which no walk got past
    await store.put('e/0000000000000001', new Uint8Array(4));
    const r = new ObjectStoreLoglet(store, 'e', 0);
    await expect(r.checkTail()).rejects.toThrow(
      'log object e/0000000000000001 is corrupt: a batch of no records',
    );
    await expect(w.append([new Uint8Array([2])])).rejects.toThrow(/a batch of no records/);
  });
});

describe('ObjectStoreLoglet and a damaged trim point', () => {
  it('a trim object that is not a position is an error naming it (it read as NaN: no trim)', async () => {
    const store = new MemStore();
    const w = new ObjectStoreLoglet(store, 't', 0);
    await w.append([new Uint8Array([1]), new Uint8Array([2]), new Uint8Array([3])]);
    await w.prefixTrim(2);
    await expect(w.read(0, 3)).rejects.toBeInstanceOf(TrimmedError);
    for (const bad of ['', 'x', '2.5', '-1', '99999999999999999', ' 2']) {
      await store.put('t/trim', Buffer.from(bad));
      await expect(w.read(0, 3), JSON.stringify(bad)).rejects.toThrow(
        `log object t/trim is corrupt: the trim point is '${bad}', not a position`,
      );
      await expect(w.prefixTrim(3)).rejects.toThrow('log object t/trim is corrupt');
    }
  });
});

describe('ObjectStoreLoglet and a store that refuses every slot', () => {
  it('an append or a seal that keeps losing the race for a slot fails as unavailable after its bound (it retried for ever)', async () => {
    // a store whose create-only puts all fail as taken while no slot ever appears (a broken store, or
    // writers that keep winning): every try is lost
    class Refusing extends MemStore {
      puts = 0;
      override async put(
        key: string,
        body: Parameters<MemStore['put']>[1],
        opts?: PutOptions,
      ): Promise<string> {
        if (opts?.ifNoneMatch === '*') {
          this.puts++;
          throw new PreconditionFailedError(key, 'the object exists');
        }
        return super.put(key, body, opts);
      }
    }
    const store = new Refusing();
    const l = new ObjectStoreLoglet(store, 'r', 0);
    await expect(l.append([new Uint8Array([1])])).rejects.toThrow(
      'append on r: another writer took the slot 1000 times in a row',
    );
    await expect(l.append([new Uint8Array([1])])).rejects.toBeInstanceOf(LogletUnavailableError);
    await expect(l.seal()).rejects.toThrow('seal on r: another writer took the slot 1000 times in a row');
    expect(store.puts).toBe(3000);
  });
});

describe('ObjectStoreLoglet with several clients on one store', () => {
  it('racing appenders get distinct slots; after a seal by another client nothing is acknowledged', async () => {
    const store = new MemStore();
    const clients = [0, 1, 2].map(() => new ObjectStoreLoglet(store, 'shared'));
    const acked: number[] = [];
    await Promise.all(
      clients.map(async (c, k) => {
        for (let i = 0; i < 20; i++)
          acked.push(...(await c.append([new Uint8Array([k]), new Uint8Array([i])])));
      }),
    );
    expect([...acked].sort((a, b) => a - b)).toEqual(Array.from({ length: 120 }, (_, i) => i));
    const sealed = await clients[1]!.seal();
    expect(sealed).toEqual({ tail: 120, sealed: true });
    await expect(clients[0]!.append([new Uint8Array(1)])).rejects.toBeInstanceOf(SealedError);
    expect(await clients[2]!.checkTail()).toEqual(sealed);
    expect((await clients[2]!.read(0, 200)).length).toBe(120);
  });
});

describe('ObjectStoreLoglet under concurrent tail checks', () => {
  it('a checkTail racing appends of one client never makes the next append skip a slot', async () => {
    // Found by the StripedLoglet tests: two walks of the slots (an append's and a checkTail's) both added
    // the length of the batch they read to the shared next slot, so a slot was skipped and never written.
    const store = new MemStore();
    const l = new ObjectStoreLoglet(store, 'race', 0);
    await Promise.all(
      Array.from({ length: 60 }, async (_, i) => {
        await l.append([new Uint8Array([i])]);
        const t = await l.checkTail();
        await l.read(Math.max(0, t.tail - 3), t.tail);
        await l.checkTail();
      }),
    );
    const recs = await l.read(0, 1e9);
    expect(recs.map((r) => r.position)).toEqual(Array.from({ length: 60 }, (_, i) => i));
    expect((await l.checkTail()).tail).toBe(60);
  });
});
