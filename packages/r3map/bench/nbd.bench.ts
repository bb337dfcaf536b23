// NBD throughput with nbdcopy as the client: Strata's server (`strata nbd serve --mem`, its own process,
// run from the sources) against nbdkit's memory plugin, side by side in one run, interleaved; and delta
// sync against rsync --no-whole-file. Usage: npm run bench -- r3map [nbd] [-- --mib N --reps R --sync-only]
//   (default 256 MiB, 7 reps; the issue's 1 GiB with --mib 1024)
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { percentile, table, writeResults } from '@strata/bench';
import { NbdClientDevice, syncFiles } from '../src/index.js';

const exec = promisify(execFile);
const mibArg = process.argv.indexOf('--mib');
const mib = mibArg > 0 ? Number(process.argv[mibArg + 1]) : 256;
const bytes = mib << 20;
const dir = mkdtempSync(join(tmpdir(), 'r3map-bench-'));
const img = join(dir, 'src.img');
const buf = Buffer.alloc(bytes);
for (let i = 0; i < bytes; i += 8) buf.writeDoubleLE(Math.random(), i);
writeFileSync(img, buf);

async function time(f: () => Promise<unknown>): Promise<number> {
  const t = performance.now();
  await f();
  return performance.now() - t;
}

const repsArg = process.argv.indexOf('--reps');
// --sync-only: just the delta sync against rsync (e.g. at the issue's 1 GiB)
const reps = process.argv.includes('--sync-only') ? 0 : repsArg > 0 ? Number(process.argv[repsArg + 1]) : 7;
// our server as a process of its own, like nbdkit: neither competes with this script's event loop
const cli = new URL('../test/helpers/cli.ts', import.meta.url).pathname;
const strata = spawn(
  process.execPath,
  ['--import', 'tsx', cli, 'nbd', 'serve', '--mem', String(bytes), '--listen', '127.0.0.1:0', '--json'],
  { stdio: ['ignore', 'pipe', 'inherit'] },
);
const port = await new Promise<number>((resolve, reject) => {
  strata.stdout!.once('data', (c: Buffer) => resolve(JSON.parse(c.toString()).port as number));
  strata.once('exit', (code) => reject(new Error(`strata nbd serve exited with ${code}`)));
});
// a free port for nbdkit, then wait until it answers
const probe = createServer();
await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
const kitPort = (probe.address() as { port: number }).port;
await new Promise((r) => probe.close(r));
const kit = spawn(
  'nbdkit',
  ['--foreground', '--exit-with-parent', '-i', '127.0.0.1', '-p', String(kitPort), 'memory', String(bytes)],
  { stdio: 'ignore' },
);
for (let i = 0; ; i++) {
  try {
    await exec('nbdinfo', ['--size', `nbd://127.0.0.1:${kitPort}`]);
    break;
  } catch (e) {
    if (i === 50) throw e;
    await new Promise((r) => setTimeout(r, 100));
  }
}
const results: Record<string, number[]> = {};
const add = (k: string, v: number) => (results[k] ??= []).push(v);
try {
  for (let rep = 0; rep < reps; rep++) {
    for (const [name, p] of [
      ['strata', port],
      ['nbdkit memory', kitPort],
    ] as const) {
      add(
        `${name} write`,
        bytes / 2 ** 30 / ((await time(() => exec('nbdcopy', [img, `nbd://127.0.0.1:${p}`]))) / 1000),
      );
      add(
        `${name} read`,
        bytes /
          2 ** 30 /
          ((await time(() => exec('nbdcopy', [`nbd://127.0.0.1:${p}`, join(dir, 'out.img')]))) / 1000),
      );
      const lat: number[] = [];
      for (let i = 0; i < 50; i++)
        lat.push(await time(() => exec('nbdinfo', ['--size', `nbd://127.0.0.1:${p}`])));
      add(`${name} nbdinfo round trip ms`, percentile(lat, 50));
    }
  }
  // single-request latency: one 4 KiB READ at a time over one open connection (our client, both servers)
  for (let rep = 0; rep < Math.min(reps, 3); rep++)
    for (const [name, p] of [
      ['strata', port],
      ['nbdkit memory', kitPort],
    ] as const) {
      const dev = await NbdClientDevice.connect('127.0.0.1', p, '');
      const lat: number[] = [];
      for (let i = 0; i < 2200; i++) {
        const off = ((i * 7919) % (bytes / 4096)) * 4096;
        const t = performance.now();
        await dev.readAt(off, 4096);
        if (i >= 200) lat.push((performance.now() - t) * 1000); // after a warm-up
      }
      await dev.close();
      add(`${name} 4 KiB read latency p50 us`, percentile(lat, 50));
      add(`${name} 4 KiB read latency p99 us`, percentile(lat, 99));
    }
  // delta sync: 1% of 64 KiB chunks changed, against rsync --no-whole-file --inplace
  const dst = join(dir, 'dst.img');
  writeFileSync(dst, buf);
  const chunks = bytes / 65536;
  for (let i = 0; i < chunks / 100; i++) buf.writeUInt32LE(i, Math.floor(Math.random() * chunks) * 65536);
  writeFileSync(img, buf);
  const rsyncDst = join(dir, 'rsync.img');
  writeFileSync(rsyncDst, Buffer.concat([]));
  await exec('cp', [dst, rsyncDst]);
  let sent = 0;
  const tSync = await time(async () => (sent = (await syncFiles(img, dst)).bytesSent));
  let rsyncOut = '';
  const tRsync = await time(
    async () =>
      (rsyncOut = (
        await exec('rsync', ['--no-whole-file', '--inplace', '--ignore-times', '--stats', img, rsyncDst])
      ).stdout),
  );
  const rsyncSent = Number(/Total bytes sent: ([\d,]+)/.exec(rsyncOut)?.[1]?.replace(/,/g, '') ?? 'NaN');
  const rows = Object.entries(results).map(([k, v]) => [
    k,
    k.endsWith('ms') || k.endsWith('us')
      ? percentile(v, 50).toFixed(2)
      : `${percentile(v, 50).toFixed(2)} GiB/s`,
  ]);
  const med = (k: string) => percentile(results[k] ?? [], 50);
  if (reps > 0)
    rows.push([
      '4 KiB read latency p50: strata / nbdkit',
      `${(med('strata 4 KiB read latency p50 us') / med('nbdkit memory 4 KiB read latency p50 us')).toFixed(2)}x`,
    ]);
  for (const op of reps > 0 ? ['write', 'read'] : [])
    rows.push([
      `${op}: strata / nbdkit`,
      `${(med(`strata ${op}`) / med(`nbdkit memory ${op}`)).toFixed(2)}x`,
    ]);
  rows.push(['strata sync: time / bytes sent', `${tSync.toFixed(0)} ms / ${sent}`]);
  rows.push(['rsync --no-whole-file --inplace: time / bytes sent', `${tRsync.toFixed(0)} ms / ${rsyncSent}`]);
  console.log(`${mib} MiB\n${table(['measure', `median of ${reps}`], rows)}`);
  writeResults('bench/results', 'nbd', {
    date: new Date().toISOString(),
    mib,
    results,
    sync: { ms: tSync, sent },
    rsync: { ms: tRsync, sent: rsyncSent },
  });
} finally {
  kit.kill();
  strata.kill();
  rmSync(dir, { recursive: true, force: true });
}
