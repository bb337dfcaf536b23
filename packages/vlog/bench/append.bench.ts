// Durable append throughput and latency of the file loglet alone and of a VirtualLog over it (the
// virtualisation overhead), and reconfiguration time, side by side in one run.
// Usage: npm run bench -- vlog [append] [-- --seconds S]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { percentile, table, writeResults } from '@strata/bench';
import { FileLoglet, FileMetaStore, type Loglet, VirtualLog } from '../src/index.js';

const secArg = process.argv.indexOf('--seconds');
const seconds = secArg > 0 ? Number(process.argv[secArg + 1]) : 2;
const dir = mkdtempSync(join(tmpdir(), 'vlog-bench-'));
const record = new Uint8Array(100).fill(7);
let n = 0;

async function run(name: string, l: Loglet, inflight: number) {
  const lat: number[] = [];
  const t0 = performance.now();
  let ops = 0;
  await Promise.all(
    Array.from({ length: inflight }, async () => {
      while (performance.now() - t0 < seconds * 1000) {
        const t = performance.now();
        await l.append([record]);
        lat.push(performance.now() - t);
        ops++;
      }
    }),
  );
  const s = (performance.now() - t0) / 1000;
  return { name, inflight, appendsPerSec: ops / s, p50Ms: percentile(lat, 50), p99Ms: percentile(lat, 99) };
}

const rows: ReturnType<typeof run> extends Promise<infer R> ? R[] : never = [];
try {
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
  const reconf: number[] = [];
  const stalls: number[] = [];
  for (let i = 1; i <= 30; i++) {
    let stop = false;
    let worst = 0;
    const writer = (async () => {
      while (!stop) {
        const t = performance.now();
        await v.append([record]);
        worst = Math.max(worst, performance.now() - t);
      }
    })();
    await new Promise((r) => setTimeout(r, 20));
    const t = performance.now();
    await v.reconfigure(`seg${i}`);
    await v.append([record]);
    reconf.push(performance.now() - t);
    stop = true;
    await writer;
    stalls.push(worst);
  }
  await v.close();
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
  const rc = {
    p50Ms: percentile(reconf, 50),
    p99Ms: percentile(reconf, 99),
    writerStallMaxMs: Math.max(...stalls),
  };
  console.log(
    `reconfiguration (seal -> first append acknowledged on the new loglet): p50 ${rc.p50Ms.toFixed(2)} ms, p99 ${rc.p99Ms.toFixed(2)} ms; longest writer stall ${rc.writerStallMaxMs.toFixed(2)} ms`,
  );
  for (const inflight of [1, 64]) {
    const p = rows.filter((r) => r.inflight === inflight && r.name.startsWith('File'));
    const q = rows.filter((r) => r.inflight === inflight && r.name.startsWith('Virtual'));
    const avg = (xs: typeof rows, k: 'p99Ms' | 'appendsPerSec') =>
      xs.reduce((s, r) => s + r[k], 0) / xs.length;
    console.log(
      `in flight ${inflight}: virtualisation overhead at p99 ${((avg(q, 'p99Ms') - avg(p, 'p99Ms')) * 1000).toFixed(0)} us; throughput ratio ${(avg(q, 'appendsPerSec') / avg(p, 'appendsPerSec')).toFixed(2)}`,
    );
  }
  writeResults('bench/results', 'append', {
    date: new Date().toISOString(),
    seconds,
    rows,
    reconfiguration: rc,
  });
} finally {
  rmSync(dir, { recursive: true, force: true });
}
