// Durable append throughput and latency of the file loglet alone and of a VirtualLog over it (the
// virtualisation overhead), and reconfiguration time, side by side in one run.
// Usage: npm run bench -- vlog [append] [-- --seconds S --paired-rounds R]
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
import { measureReconfigurations, type Row, record, runAppends, runPaired, seconds } from './common.js';

const pairedArg = process.argv.indexOf('--paired-rounds');
/** Rounds of fresh loglets for the paired overhead (`-- --paired-rounds R`). */
const pairedRounds = pairedArg > 0 ? Number(process.argv[pairedArg + 1]) : 10;
if (!Number.isInteger(pairedRounds) || pairedRounds < 1 || pairedRounds > 1000) {
  console.error(
    `append bench: --paired-rounds: expected an integer from 1 to 1000, got '${process.argv[pairedArg + 1]}'`,
  );
  process.exit(2);
}

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
  // the overhead again, measured at the same moments on the same loglet: a VirtualLog over a NativeLoglet
  // and that NativeLoglet itself (the very object the VirtualLog appends through), appended to together
  // (see runPaired), so both sides share every batch, sync and stall and differ only by the virtual layer;
  // in rounds of fresh loglets, percentiles over all rounds' latencies
  const paired: {
    inflight: number;
    rounds: number;
    nativeP50Ms: number;
    nativeP99Ms: number;
    virtualP50Ms: number;
    virtualP99Ms: number;
    roundP99OverheadUs: number[];
    throughputRatio: number;
  }[] = [];
  for (const inflight of [1, 64]) {
    const lat: [number[], number[]] = [[], []];
    const perRound: number[] = [];
    let rate = [0, 0];
    for (let round = 0; round < pairedRounds; round++) {
      let native: Loglet | undefined;
      const v = await VirtualLog.create(
        new FileMetaStore(join(dir, `pv${n++}`, 'meta.json')),
        async (sp, s, i) => (native = await openLoglet(sp, s, i)),
        `native://${seqAddr}?servers=${addrs.join(',')}&id=pv${n}`,
      );
      await v.append([record]); // opens the segment's loglet
      if (!(native instanceof NativeLoglet)) throw new Error('the VirtualLog opened no NativeLoglet');
      const under = native;
      const [a, b] = await runPaired(
        () => under.append([record]),
        () => v.append([record]),
        inflight,
      );
      // one by one: spread as arguments, a fast round's 150,000 latencies overflowed the stack
      for (const x of a!.lat) lat[0].push(x);
      for (const x of b!.lat) lat[1].push(x);
      perRound.push((percentile(b!.lat, 99) - percentile(a!.lat, 99)) * 1000);
      rate = [rate[0]! + a!.appendsPerSec, rate[1]! + b!.appendsPerSec];
      await v.close(); // closes the loglet too
    }
    paired.push({
      inflight,
      rounds: pairedRounds,
      nativeP50Ms: percentile(lat[0], 50),
      nativeP99Ms: percentile(lat[0], 99),
      virtualP50Ms: percentile(lat[1], 50),
      virtualP99Ms: percentile(lat[1], 99),
      roundP99OverheadUs: perRound,
      throughputRatio: rate[1]! / rate[0]!,
    });
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
  for (const p of paired)
    console.log(
      `NativeLoglet, in flight ${p.inflight}, paired (both at the same moments, ${p.rounds} rounds): p50 ${p.nativeP50Ms.toFixed(3)} -> ${p.virtualP50Ms.toFixed(3)} ms, p99 ${p.nativeP99Ms.toFixed(3)} -> ${p.virtualP99Ms.toFixed(3)} ms: virtualisation overhead at p99 ${((p.virtualP99Ms - p.nativeP99Ms) * 1000).toFixed(0)} us (per round ${p.roundP99OverheadUs.map((x) => x.toFixed(0)).join(', ')}); throughput ratio ${p.throughputRatio.toFixed(2)}`,
    );
  writeResults('bench/results', 'append', {
    date: new Date().toISOString(),
    seconds,
    rows,
    paired,
    reconfiguration: rc,
    reconfigurationNative: rcn,
    failover: fo,
  });
} finally {
  await seq.close();
  for (const s of servers) await s.close();
  rmSync(dir, { recursive: true, force: true });
}
