// Hot swap: while writers append continuously, the log is reconfigured from one kind of loglet to another
// and back (native -> file -> object store -> native). No acknowledged append is lost, none appears twice,
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
  const done = Promise.all(
    Array.from({ length: count }, async (_, w) => {
      for (let i = 0; !stop; i++) {
        const payload = `w${w}-${i}`;
        const t = performance.now();
        const [p] = await v.append([Buffer.from(payload)]);
        stallMax = Math.max(stallMax, performance.now() - t);
        expect(acked.has(p!)).toBe(false);
        acked.set(p!, payload);
      }
    }),
  );
  return {
    acked,
    stallMax: () => stallMax,
    stop: async () => {
      stop = true;
      await done;
    },
  };
}

/** A fresh client reads the whole log: dense, each acknowledged record at its position, nothing twice. */
async function checkLog(r: VirtualLog, acked: Map<number, string>) {
  const { tail } = await r.checkTail();
  const recs = await r.read(0, tail);
  expect(recs.map((x) => x.position)).toEqual(Array.from({ length: tail }, (_, i) => i));
  expect(tail).toBe(acked.size);
  const seen = new Set<string>();
  for (const x of recs) {
    const s = Buffer.from(x.payload).toString();
    expect(seen.has(s)).toBe(false);
    seen.add(s);
    expect(acked.get(x.position)).toBe(s);
  }
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
      await new Promise((r) => setTimeout(r, 150));
      await v.reconfigure(spec);
    }
    await new Promise((r) => setTimeout(r, 150));
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
    it('ZooKeeperLoglet -> NativeLoglet -> ZooKeeperLoglet, the chain in etcd, 4 writers appending', async () => {
      const zk = startService('zookeeper');
      const etcd = startService('etcd');
      const servers = [0, 1, 2].map((i) => new LogServer(join(root, `zls${i}`)));
      const addrs = await Promise.all(servers.map(async (s) => `127.0.0.1:${await s.listen(0)}`));
      const seq = new Sequencer();
      const seqAddr = `127.0.0.1:${await seq.listen(0)}`;
      try {
        const factory = (spec: string, start: number, i: number) => openLoglet(spec, start, i, root);
        const meta = () => openMeta(`etcd://${etcd.address}/strata-hotswap`, 'events');
        const zkSpec = `zk://${zk.address}/strata-hotswap/events`;
        const v = await VirtualLog.create(meta(), factory, zkSpec);
        const w = writers(v, 4);
        for (const spec of [nativeSpec(seqAddr, addrs, 'zs'), zkSpec]) {
          await new Promise((r) => setTimeout(r, 300));
          await v.reconfigure(spec);
        }
        await new Promise((r) => setTimeout(r, 300));
        await w.stop();
        expect(v.segments.map((s) => s.spec.split(':')[0])).toEqual(['zk', 'native', 'zk']);
        for (const s of v.segments.slice(0, -1)) expect(s.end!).toBeGreaterThan(s.start);
        const r = await VirtualLog.connect(meta(), factory);
        await checkLog(r, w.acked);
        console.log(
          `hot swap zk -> native -> zk: ${w.acked.size} appends, longest writer stall ${w.stallMax().toFixed(1)} ms`,
        );
        await r.close();
        await v.close();
      } finally {
        await seq.close();
        for (const s of servers) await s.close();
        zk.stop();
        etcd.stop();
      }
    }, 90_000);
  });
});
