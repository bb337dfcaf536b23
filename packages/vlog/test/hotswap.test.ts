// Hot swap: while writers append continuously, the log is reconfigured from one kind of loglet to another
// and back (native -> file -> object store -> native; ZooKeeper -> native -> ZooKeeper -> striped native
// -> ZooKeeper). No acknowledged append is lost, none appears twice,
// positions stay dense; the writers' longest stall is reported (the bench measures it; no timing asserts).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  FileMetaStore,
  LogServer,
  nativeSpec,
  openLoglet,
  openMeta,
  Sequencer,
  VirtualLog,
} from '../src/index.js';
import { serviceAvailable, startService } from './helpers/services.js';

const root = mkdtempSync(join(tmpdir(), 'vlog-hotswap-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** Writers append until stopped; returns what was acknowledged and the longest stall. */
function writers(v: VirtualLog, count: number) {
  const acked = new Map<number, string>();
  let stop = false;
  let stallMax = 0;
  let stallAll = 0;
  const done = Promise.all(
    Array.from({ length: count }, async (_, w) => {
      for (let i = 0; !stop; i++) {
        const payload = `w${w}-${i}`;
        const t = performance.now();
        const [p] = await v.append([Buffer.from(payload)]);
        stallMax = Math.max(stallMax, performance.now() - t);
        stallAll = Math.max(stallAll, stallMax);
        expect(acked.has(p!)).toBe(false);
        acked.set(p!, payload);
      }
    }),
  );
  return {
    acked,
    stallMax: () => stallAll,
    /** The longest stall since the last call (one swap's, when called after each). */
    stallSince: () => {
      const s = stallMax;
      stallMax = 0;
      return s;
    },
    /** Resolves once `n` more appends have been acknowledged (so every segment gets records). */
    grown: async (n: number) => {
      const target = acked.size + n;
      while (acked.size < target) await new Promise((r) => setTimeout(r, 5));
    },
    stop: async () => {
      stop = true;
      await done;
    },
  };
}

/**
 * A fresh client reads the whole log: dense, every acknowledged record at its position, nothing else twice.
 * A record whose append was refused by a loglet being sealed may still have reached some of its replicas,
 * and the seal's repair keeps it below the sealed end; the writer's retry puts it again in the next segment.
 * So a position that holds no acknowledged record must hold an unacknowledged copy of a record that was
 * acknowledged later, in a sealed segment.
 */
async function checkLog(r: VirtualLog, acked: Map<number, string>) {
  const { tail } = await r.checkTail();
  const recs = await r.read(0, tail);
  expect(recs.map((x) => x.position)).toEqual(Array.from({ length: tail }, (_, i) => i));
  const ackedAt = new Map([...acked].map(([p, s]) => [s, p]));
  const active = r.segments.at(-1)!.start;
  const seen = new Set<string>();
  for (const x of recs) {
    const s = Buffer.from(x.payload).toString();
    if (acked.get(x.position) === s) {
      expect(seen.has(s)).toBe(false);
      seen.add(s);
      continue;
    }
    // an unacknowledged copy
    expect(x.position).toBeLessThan(active);
    expect(ackedAt.get(s)).toBeGreaterThan(x.position);
  }
  expect(seen.size).toBe(acked.size);
}

describe('hot swap between loglet kinds under load', () => {
  it('native -> file -> objstore -> native with 4 writers appending: nothing lost, nothing twice, dense', async () => {
    const servers = [0, 1, 2].map((i) => new LogServer(join(root, `ls${i}`)));
    const addrs = await Promise.all(servers.map(async (s) => `127.0.0.1:${await s.listen(0)}`));
    const seq = new Sequencer();
    const seqAddr = `127.0.0.1:${await seq.listen(0)}`;
    const factory = (spec: string, start: number, i: number) => openLoglet(spec, start, i, root);
    const metaPath = join(root, 'meta.json');
    const v = await VirtualLog.create(new FileMetaStore(metaPath), factory, nativeSpec(seqAddr, addrs, 'hs'));
    const specs = [`file:./seg`, `objstore:file:./objs`, nativeSpec(seqAddr, addrs, 'hs2')];
    const w = writers(v, 4);
    for (const spec of specs) {
      await w.grown(20);
      await v.reconfigure(spec);
    }
    await w.grown(20);
    await w.stop();
    const kinds = v.segments.map((s) => s.spec.split(':')[0]);
    expect(kinds).toEqual(['native', 'file', 'objstore', 'native']);
    // a fresh client reads everything back
    const r = await VirtualLog.connect(new FileMetaStore(metaPath), factory);
    await checkLog(r, w.acked);
    // every segment got records
    for (const s of r.segments.slice(0, -1)) expect(s.end!).toBeGreaterThan(s.start);
    console.log(
      `hot swap: ${w.acked.size} appends across 3 swaps, longest writer stall ${w.stallMax().toFixed(1)} ms`,
    );
    await r.close();
    await v.close();
    await seq.close();
    for (const s of servers) await s.close();
  }, 60_000);

  describe.runIf(serviceAvailable('zookeeper') && serviceAvailable('etcd'))('with ZooKeeper and etcd', () => {
    it('ZooKeeperLoglet -> NativeLoglet -> ZooKeeperLoglet -> StripedLoglet -> ZooKeeperLoglet, the chain in etcd, 4 writers appending', async () => {
      const zk = startService('zookeeper');
      const etcd = startService('etcd');
      const servers = [0, 1, 2].map((i) => new LogServer(join(root, `zls${i}`)));
      const addrs = await Promise.all(servers.map(async (s) => `127.0.0.1:${await s.listen(0)}`));
      const seq = new Sequencer();
      const seqAddr = `127.0.0.1:${await seq.listen(0)}`;
      // the striped segment: two NativeLoglets with their own sequencers over the same three LogServers
      const seq2 = new Sequencer();
      const seq2Addr = `127.0.0.1:${await seq2.listen(0)}`;
      try {
        const factory = (spec: string, start: number, i: number) => openLoglet(spec, start, i, root);
        const meta = () => openMeta(`etcd://${etcd.address}/strata-hotswap`, 'events');
        const zkSpec = `zk://${zk.address}/strata-hotswap/events`;
        const v = await VirtualLog.create(meta(), factory, zkSpec);
        const w = writers(v, 4);
        const stripedSpec = `striped:${nativeSpec(seqAddr, addrs, 'zst')}|${nativeSpec(seq2Addr, addrs, 'zst')}`;
        const stalls: string[] = [];
        for (const spec of [nativeSpec(seqAddr, addrs, 'zs'), zkSpec, stripedSpec, zkSpec]) {
          await w.grown(20);
          w.stallSince();
          await v.reconfigure(spec);
          await w.grown(20);
          stalls.push(`${spec.split(':')[0]} ${w.stallSince().toFixed(1)} ms`);
        }
        await w.stop();
        expect(v.segments.map((s) => s.spec.split(':')[0])).toEqual(['zk', 'native', 'zk', 'striped', 'zk']);
        for (const s of v.segments.slice(0, -1)) expect(s.end!).toBeGreaterThan(s.start);
        const r = await VirtualLog.connect(meta(), factory);
        await checkLog(r, w.acked);
        console.log(
          `hot swap zk -> native -> zk -> striped -> zk: ${w.acked.size} appends, longest writer stall ${w.stallMax().toFixed(1)} ms (around each swap, to: ${stalls.join(', ')})`,
        );
        await r.close();
        await v.close();
      } finally {
        await seq.close();
        await seq2.close();
        for (const s of servers) await s.close();
        zk.stop();
        etcd.stop();
      }
    }, 90_000);
  });
});
