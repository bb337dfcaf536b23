// NBD throughput with nbdcopy as the client: Strata's server (memory device) against nbdkit's memory
// plugin, side by side in one run; and delta sync against rsync --no-whole-file.
// Usage: npm run bench -- r3map [nbd] [-- --mib N]   (default 256 MiB; the 1 GiB with --mib 1024)
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { percentile, table, writeResults } from '@strata/bench';
import { MemoryDevice, NbdServer, syncFiles } from '../src/index.js';

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

const server = new NbdServer([{ name: '', device: new MemoryDevice(bytes) }]);
const port = await server.listen(0);
const kitPort = port + 1;
const kit = spawn(
  'nbdkit',
  ['--foreground', '--exit-with-parent', '-i', '127.0.0.1', '-p', String(kitPort), 'memory', String(bytes)],
  { stdio: 'ignore' },
);
await new Promise((r) => setTimeout(r, 800));
const results: Record<string, number[]> = {};
const add = (k: string, v: number) => (results[k] ??= []).push(v);
try {
  for (let rep = 0; rep < 5; rep++) {
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
      (rsyncOut = (await exec('rsync', ['--no-whole-file', '--inplace', '--stats', img, rsyncDst])).stdout),
  );
  const rsyncSent = Number(/Total bytes sent: ([\d,]+)/.exec(rsyncOut)?.[1]?.replace(/,/g, '') ?? 'NaN');
  const rows = Object.entries(results).map(([k, v]) => [
    k,
    k.endsWith('ms') ? percentile(v, 50).toFixed(2) : `${percentile(v, 50).toFixed(2)} GiB/s`,
  ]);
  rows.push(['strata sync: time / bytes sent', `${tSync.toFixed(0)} ms / ${sent}`]);
  rows.push(['rsync --no-whole-file --inplace: time / bytes sent', `${tRsync.toFixed(0)} ms / ${rsyncSent}`]);
  console.log(`${mib} MiB\n${table(['measure', 'median of 5'], rows)}`);
  writeResults('bench/results', 'nbd', {
    date: new Date().toISOString(),
    mib,
    results,
    sync: { ms: tSync, sent },
    rsync: { ms: tRsync, sent: rsyncSent },
  });
} finally {
  kit.kill();
  await server.close();
  rmSync(dir, { recursive: true, force: true });
}
