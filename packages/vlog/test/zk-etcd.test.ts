// ZooKeeperMetaStore, EtcdMetaStore and ZooKeeperLoglet against real servers on 127.0.0.1, started here
// (scripts/services) and stopped afterwards. Skipped only outside CI when a server is not installed.
import { createServer } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LogletOwnedError, openLog, SealedError, VersionConflictError, VirtualLog } from '../src/index.js';
import { EtcdMetaStore, parseEtcdUrl } from '../src/providers/etcd.js';
import { parseZkUrl, ZkClient, ZooKeeperLoglet, ZooKeeperMetaStore } from '../src/providers/zookeeper.js';
import { logletConformance, metaStoreConformance } from './conformance.js';
import { type Service, serviceAvailable, startService } from './helpers/services.js';

const b = (s: string) => new Uint8Array(Buffer.from(s));
let n = 0;
const fresh = (what: string) => `/strata-test/${what}-${process.pid}-${n++}`;

it('parses zk:// and etcd:// URLs and says what is wrong with bad ones', () => {
  expect(parseZkUrl('zk://127.0.0.1:2181/strata/log')).toEqual({
    hosts: '127.0.0.1:2181',
    path: '/strata/log',
  });
  expect(parseZkUrl('zk://a:1,b:2/x/')).toEqual({ hosts: 'a:1,b:2', path: '/x' });
  expect(() => parseZkUrl('zk://127.0.0.1:2181')).toThrow(/expected zk:\/\/HOST:PORT/);
  expect(() => parseZkUrl('zk://127.0.0.1:2181/a b')).toThrow(/expected zk:\/\/HOST:PORT/);
  expect(parseEtcdUrl('etcd://127.0.0.1:2379/strata/log')).toEqual({
    endpoint: 'http://127.0.0.1:2379',
    key: '/strata/log',
  });
  expect(() => parseEtcdUrl('etcd://127.0.0.1:2379')).toThrow(/expected etcd:\/\/HOST:PORT\/key/);
});

it('EtcdMetaStore: a peer that is not etcd gets an error naming it (a bare JSON SyntaxError before)', async () => {
  const server = createServer((req, res) => {
    req.resume();
    res.end('hello');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as { port: number };
  try {
    await expect(EtcdMetaStore.open(`etcd://127.0.0.1:${port}/k`).get()).rejects.toThrow(
      `etcd http://127.0.0.1:${port}/v3/kv/range: the answer is not JSON (is etcd running there?): "hello"`,
    );
  } finally {
    await new Promise((r) => server.close(r));
  }
});

describe.runIf(serviceAvailable('zookeeper'))('ZooKeeper (a real server on 127.0.0.1)', () => {
  let zk: Service | undefined;
  beforeAll(() => {
    zk = startService('zookeeper');
  });
  afterAll(() => zk?.stop());
  const url = (path: string) => `zk://${zk!.address}${path}`;

  describe('ZooKeeperMetaStore', () =>
    metaStoreConformance(async () => ZooKeeperMetaStore.open(url(fresh('meta')))));

  it('ZooKeeperMetaStore: of writers racing from separate sessions exactly one wins', async () => {
    const path = url(fresh('meta-race'));
    const stores = Array.from({ length: 8 }, () => ZooKeeperMetaStore.open<{ n: number }>(path));
    try {
      for (let round = 0; round < 3; round++) {
        const { version } = await stores[0]!.get();
        const r = await Promise.allSettled(stores.map((m, i) => m.put({ n: i }, version)));
        const won = r.flatMap((x, i) => (x.status === 'fulfilled' ? [i] : []));
        expect(won).toHaveLength(1);
        for (const x of r) if (x.status === 'rejected') expect(x.reason).toBeInstanceOf(VersionConflictError);
        expect(await stores[3]!.get()).toEqual({ version: version + 1, value: { n: won[0] } });
      }
    } finally {
      for (const m of stores) await m.close();
    }
  });

  describe('ZooKeeperLoglet', () =>
    logletConformance(async (start) => ZooKeeperLoglet.open(zk!.address, { path: fresh('loglet'), start })));

  it('ZooKeeperLoglet: appenders on separate sessions get dense, distinct positions; a seal by another stops them all', async () => {
    const path = fresh('loglet-race');
    const clients = await Promise.all(
      Array.from({ length: 4 }, () => ZooKeeperLoglet.open(zk!.address, { path, start: 100 })),
    );
    const sealer = await ZooKeeperLoglet.open(zk!.address, { path, start: 100 });
    try {
      const acked: { pos: number; tag: string }[] = [];
      const failed: unknown[] = [];
      let sealed: { tail: number } | undefined;
      await Promise.all([
        ...clients.map(async (l, c) => {
          // append until the seal stops this client (bounded: the seal comes after 80 acknowledgements)
          for (let i = 0; i < 10_000; i++) {
            const batch = [b(`c${c}-${i}-a`), b(`c${c}-${i}-b`)].slice(0, 1 + (i % 2));
            try {
              const ps = await l.append(batch);
              expect(ps).toEqual(ps.map((_, k) => ps[0]! + k));
              for (const [k, pos] of ps.entries())
                acked.push({ pos, tag: Buffer.from(batch[k]!).toString() });
            } catch (e) {
              failed.push(e);
              if (e instanceof SealedError) return;
              throw e;
            }
          }
        }),
        (async () => {
          while (acked.length < 80) await new Promise((r) => setTimeout(r, 2));
          sealed = await sealer.seal();
        })(),
      ]);
      const tail = sealed!.tail;
      expect(failed).toHaveLength(clients.length); // each one ran into the seal
      for (const e of failed) expect(e).toBeInstanceOf(SealedError);
      // every acknowledged record is below the sealed tail, at its position; positions are dense
      expect(new Set(acked.map((a) => a.pos)).size).toBe(acked.length);
      for (const a of acked) expect(a.pos).toBeLessThan(tail);
      const recs = await sealer.read(100, Number.POSITIVE_INFINITY);
      expect(recs.map((r) => r.position)).toEqual(Array.from({ length: tail - 100 }, (_, i) => 100 + i));
      const at = new Map(recs.map((r) => [r.position, Buffer.from(r.payload).toString()]));
      for (const a of acked) expect(at.get(a.pos)).toBe(a.tag);
      for (const l of clients) {
        await expect(l.append([b('late')])).rejects.toBeInstanceOf(SealedError);
        expect(await l.checkTail()).toEqual({ tail, sealed: true });
      }
    } finally {
      for (const l of [...clients, sealer]) await l.close();
    }
  });

  it('ZooKeeperLoglet: reopening finds the records, the tail and the trim point', async () => {
    const path = fresh('loglet-reopen');
    const a = await ZooKeeperLoglet.open(zk!.address, { path, start: 7 });
    expect(await a.append([b('x'), b(''), b('z')])).toEqual([7, 8, 9]);
    await a.prefixTrim(8);
    await a.close();
    const c = new ZkClient(zk!.address);
    // the trimmed record was deleted; the last one never is
    expect(await c.exists(`${path}/r/${'7'.padStart(16, '0')}`)).toBeUndefined();
    await c.close();
    const l = await ZooKeeperLoglet.open(zk!.address, { path, start: 7 });
    try {
      expect(await l.checkTail()).toEqual({ tail: 10, sealed: false });
      expect((await l.read(8, 10)).map((r) => Buffer.from(r.payload).toString())).toEqual(['', 'z']);
      expect(await l.append([b('w')])).toEqual([10]);
      await l.prefixTrim(11); // past the last record: it stays for the next append's check
      expect(await l.append([b('v')])).toEqual([11]);
    } finally {
      await l.close();
    }
  });

  it("two logs given one zk:// location do not share a segment: the second is refused, a reconfiguration onto another log's segment too", async () => {
    const loglet = url(fresh('shared'));
    const m = (k: number) => `mem://zk-own-${k}-${process.pid}-${n++}`;
    const [m1, m2, m3] = [m(1), m(2), m(3)];
    const one = await openLog('one', { meta: m1, loglet, create: true });
    const two = await openLog('two', {
      meta: m2,
      loglet: url(fresh('two')),
      create: true,
    });
    try {
      await one.append([b('x'), b('y')]);
      await expect(openLog('three', { meta: m3, loglet, create: true })).rejects.toThrow(
        /segment 0-0 there belongs to log 'one', not 'three': give each log a location of its own/,
      );
      // log one's segment 1 would start at 2; log two's next segment is 1-0 there: free, and then its own
      await two.reconfigure(loglet);
      expect(await two.append([b('t')])).toEqual([0]);
      await one.reconfigure(url(fresh('one-b')));
      // a third log's segment 1-0 at that location is two's
      const three = await openLog('three', {
        meta: m3,
        loglet: url(fresh('three')),
        create: true,
      });
      await expect(three.reconfigure(loglet)).rejects.toBeInstanceOf(LogletOwnedError);
      await three.close();
      // the owner itself opens its segments again (another client, a restart)
      const again = await openLog('one', { meta: m1 });
      expect((await again.read(0, 2)).map((r) => Buffer.from(r.payload).toString())).toEqual(['x', 'y']);
      await again.close();
    } finally {
      await one.close();
      await two.close();
    }
  });

  it('ZooKeeperLoglet: a lost server fails operations with LogletUnavailableError, not a hang', async () => {
    const own = startService('zookeeper');
    const l = await ZooKeeperLoglet.open(own.address, { path: fresh('loglet-lost'), start: 0 });
    try {
      expect(await l.append([b('a')])).toEqual([0]);
      own.stop();
      const t = performance.now();
      const e = await l.append([b('b')]).catch((x: unknown) => x);
      expect((e as Error).name).toMatch(/LogletUnavailableError|ZkConnectionLossError/);
      expect(performance.now() - t).toBeLessThan(15_000);
    } finally {
      own.stop();
      await l.close();
    }
  });
});

describe.runIf(serviceAvailable('etcd'))('etcd (a real server on 127.0.0.1)', () => {
  let etcd: Service | undefined;
  beforeAll(() => {
    etcd = startService('etcd');
  });
  afterAll(() => etcd?.stop());
  const url = (key: string) => `etcd://${etcd!.address}${key}`;

  describe('EtcdMetaStore', () => metaStoreConformance(async () => EtcdMetaStore.open(url(fresh('meta')))));

  it('EtcdMetaStore: of writers racing from separate stores exactly one wins', async () => {
    const key = url(fresh('meta-race'));
    const stores = Array.from({ length: 8 }, () => EtcdMetaStore.open<{ n: number }>(key));
    for (let round = 0; round < 3; round++) {
      const { version } = await stores[0]!.get();
      const r = await Promise.allSettled(stores.map((m, i) => m.put({ n: i }, version)));
      const won = r.flatMap((x, i) => (x.status === 'fulfilled' ? [i] : []));
      expect(won).toHaveLength(1);
      for (const x of r) if (x.status === 'rejected') expect(x.reason).toBeInstanceOf(VersionConflictError);
      expect(await stores[5]!.get()).toEqual({ version: version + 1, value: { n: won[0] } });
    }
  });
});

describe.runIf(serviceAvailable('zookeeper') && serviceAvailable('etcd'))(
  'a VirtualLog on an etcd MetaStore over ZooKeeperLoglets',
  () => {
    let zk: Service | undefined;
    let etcd: Service | undefined;
    beforeAll(() => {
      zk = startService('zookeeper');
      etcd = startService('etcd');
    });
    afterAll(() => {
      zk?.stop();
      etcd?.stop();
    });

    it('appends, reconfigures to a new ZooKeeperLoglet (a second client follows), reads it all back', async () => {
      const base = fresh('vlog');
      const key = `etcd://${etcd!.address}${base}`;
      // a segment's loglet lives under the spec's path, named by the segment's index and start
      const factory = (spec: string, start: number, index: number) =>
        ZooKeeperLoglet.open(zk!.address, { path: `${spec}/${index}-${start}`, start });
      const a = await VirtualLog.create(EtcdMetaStore.open(key), factory, `${base}/a`);
      const other = await VirtualLog.connect(EtcdMetaStore.open(key), factory);
      try {
        const first = await Promise.all(Array.from({ length: 20 }, (_, i) => a.append([b(`a${i}`)])));
        expect(first.flat().sort((x, y) => x - y)).toEqual(Array.from({ length: 20 }, (_, i) => i));
        await a.reconfigure(`${base}/b`);
        // the other client's loglet is sealed: it refreshes the chain and lands on the new one
        expect(await other.append([b('o')])).toEqual([20]);
        expect(await a.append([b('a20')])).toEqual([21]);
        const recs = await other.read(0, Number.POSITIVE_INFINITY);
        expect(recs.map((r) => r.position)).toEqual(Array.from({ length: 22 }, (_, i) => i));
        expect(Buffer.from(recs[20]!.payload).toString()).toBe('o');
      } finally {
        await a.close();
        await other.close();
      }
    });
  },
);
