// Durable append throughput and latency of the file loglet alone and of a VirtualLog over it (the
// virtualisation overhead), and reconfiguration time, side by side in one run.
// Usage: npm run bench -- vlog [append] [-- --seconds S]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { percentile, table, writeResults } from '@strata/bench';
import {
  FileLoglet,
  FileMetaStore,
  type Loglet,
  LogServer,
  NativeLoglet,
  nativeFailover,
  openLoglet,
  prepareLoglet,
  Sequencer,
  VirtualLog,
} from '../src/index.js';
import { measureReconfigurations, type Row, record, runAppends, seconds } from './common.js';

const dir = mkdtempSync(join(tmpdir(), 'vlog-bench-'));
let n = 0;
const run = (name: string, l: Loglet, inflight: number) =>
  runAppends(name, () => l.append([record]), inflight);

const rows: Row[] = []; // 3 LogServers and a sequencer on loopback, in this process (fsync on every LogServer)
const servers = [0, 1, 2].map((i) => new LogServer(join(dir, `ls${i}`)));
const addrs = await Promise.all(servers.map(async (s) => `127.0.0.1:${await s.listen(0)}`));
const seq = new Sequencer(addrs);
const seqAddr = `127.0.0.1:${await seq.listen(0)}`;
try {
  for (const inflight of [1, 64]) {
    for (let round = 0; round < 2; round++) {
      const native = new NativeLoglet(`n${n++}`, 0, seqAddr, addrs);
      rows.push(await run('NativeLoglet (3 LogServers, majority)', native, inflight));
      await native.close();
      const d = join(dir, `nv${n++}`);
      const spec = `native://${seqAddr}?servers=${addrs.join(',')}&id=v${n}`;
      const v = await VirtualLog.create(
        new FileMetaStore(join(d, 'meta.json')),
        (sp, s, i) => openLoglet(sp, s, i),
        spec,
      );
      rows.push(await run('VirtualLog over NativeLoglet', v, inflight));
      await v.close();
    }
  }
  for (const inflight of [1, 64]) {
    // alternate subject and baseline twice, so drift on the shared machine hits both
    for (let round = 0; round < 2; round++) {
      const plain = await FileLoglet.open(join(dir, `p${n++}`));
      rows.push(await run('FileLoglet (fsync group commit)', plain, inflight));
      await plain.close();
      const d = join(dir, `v${n++}`);
      const v = await VirtualLog.create(
        new FileMetaStore(join(d, 'meta.json')),
        (spec, s) => FileLoglet.open(join(d, spec, String(s)), s),
        'seg',
      );
      rows.push(await run('VirtualLog over FileLoglet', v, inflight));
      await v.close();
    }
  }
  // reconfiguration: seal to first append acknowledged on the new loglet, with a writer running
  const d = join(dir, 'reconf');
  const v = await VirtualLog.create(
    new FileMetaStore(join(d, 'meta.json')),
    (spec, s) => FileLoglet.open(join(d, spec, String(s)), s),
    'seg0',
  );
  const rc = await measureReconfigurations(v, (i) => `seg${i}`);
  await v.close();
  // the same over NativeLoglets: reconfigure to a new native loglet (a new id) on the same servers
  const dn = join(dir, 'reconf-native');
  const nspec = (i: number) => `native://${seqAddr}?servers=${addrs.join(',')}&id=r${i}`;
  const vn = await VirtualLog.create(
    new FileMetaStore(join(dn, 'meta.json')),
    (spec, s, i) => openLoglet(spec, s, i),
    nspec(0),
    { prepare: prepareLoglet }, // the successor is claimed while the seal runs, as openLog does
  );
  const rcn = await measureReconfigurations(vn, nspec);
  await vn.close();
  // failover: the sequencer dies under a writer; time from the kill to the first append acknowledged on
  // the replacement the failover policy picks (its checks time out after 200 ms)
  const failovers: number[] = [];
  for (let k = 0; k < 5; k++) {
    const victim = new Sequencer();
    const victimAddr = `127.0.0.1:${await victim.listen(0)}`;
    const df = join(dir, `failover${k}`);
    const vf = await VirtualLog.create(
      new FileMetaStore(join(df, 'meta.json')),
      (spec, s, i) => openLoglet(spec, s, i),
      `native://${victimAddr}?servers=${addrs.join(',')}&id=f${k}`,
      { failover: nativeFailover({ sequencers: [victimAddr, seqAddr], servers: addrs, timeoutMs: 200 }) },
    );
    for (let i = 0; i < 100; i++) await vf.append([record]);
    const t = performance.now();
    await victim.close();
    await vf.append([record]);
    failovers.push(performance.now() - t);
    await vf.close();
  }
  console.log(
    table(
      ['loglet', 'in flight', 'appends/s', 'p50', 'p99'],
      rows.map((r) => [
        r.name,
        String(r.inflight),
        r.appendsPerSec.toFixed(0),
        `${r.p50Ms.toFixed(3)} ms`,
        `${r.p99Ms.toFixed(3)} ms`,
      ]),
    ),
  );
  for (const [what, r] of [
    ['FileLoglet -> FileLoglet', rc],
    ['NativeLoglet -> NativeLoglet', rcn],
  ] as const)
    console.log(
      `reconfiguration ${what} (seal -> first append acknowledged on the new loglet): p50 ${r.p50Ms.toFixed(2)} ms, p99 ${r.p99Ms.toFixed(2)} ms; longest writer stall ${r.writerStallMaxMs.toFixed(2)} ms`,
    );
  const fo = { p50Ms: percentile(failovers, 50), maxMs: Math.max(...failovers) };
  console.log(
    `failover after a sequencer dies (kill -> first append acknowledged on the replacement; 200 ms check timeout): p50 ${fo.p50Ms.toFixed(1)} ms, max ${fo.maxMs.toFixed(1)} ms over ${failovers.length}`,
  );
  for (const [base, virt] of [
    ['FileLoglet', 'VirtualLog over FileLoglet'],
    ['NativeLoglet', 'VirtualLog over NativeLoglet'],
  ] as const)
    for (const inflight of [1, 64]) {
      const p = rows.filter((r) => r.inflight === inflight && r.name.startsWith(base));
      const q = rows.filter((r) => r.inflight === inflight && r.name === virt);
      const avg = (xs: typeof rows, k: 'p99Ms' | 'appendsPerSec') =>
        xs.reduce((s, r) => s + r[k], 0) / xs.length;
      console.log(
        `${base}, in flight ${inflight}: virtualisation overhead at p99 ${((avg(q, 'p99Ms') - avg(p, 'p99Ms')) * 1000).toFixed(0)} us; throughput ratio ${(avg(q, 'appendsPerSec') / avg(p, 'appendsPerSec')).toFixed(2)}`,
      );
    }
  writeResults('bench/results', 'append', {
    date: new Date().toISOString(),
    seconds,
    rows,
    reconfiguration: rc,
    reconfigurationNative: rcn,
    failover: fo,
  });
} finally {
  await seq.close();
  for (const s of servers) await s.close();
  rmSync(dir, { recursive: true, force: true });
}
