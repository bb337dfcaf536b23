// NBD throughput with nbdcopy as the client: Strata's server (`strata nbd serve --mem`, its own process,
// run from the package's build under `npm run bench`) against nbdkit's memory plugin, side by side in one
// run, interleaved; the same for a file, where `strata nbd serve --file`, nbdkit's file plugin and
// nbd-server serve one file in turn; and delta sync against rsync --no-whole-file. Usage:
//   npm run bench -- r3map [nbd] [-- --mib N --reps R --sync-only --sync-reps S]
//   (default 256 MiB, 7 reps, 3 sync runs; the issue's 1 GiB with --mib 1024)
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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

/** User + system CPU seconds of a process so far (Linux /proc; NaN elsewhere). */
function cpuSeconds(pid: number | undefined): number {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return Number.NaN;
  }
}

async function time(f: () => Promise<unknown>): Promise<number> {
  const t = performance.now();
  await f();
  return performance.now() - t;
}

const repsArg = process.argv.indexOf('--reps');
// --sync-only: just the delta sync against rsync (e.g. at the issue's 1 GiB)
const reps = process.argv.includes('--sync-only') ? 0 : repsArg > 0 ? Number(process.argv[repsArg + 1]) : 7;
const syncRepsArg = process.argv.indexOf('--sync-reps');
const syncReps = syncRepsArg > 0 ? Number(process.argv[syncRepsArg + 1]) : 3;
// our server as a process of its own, like nbdkit: neither competes with this script's event loop
const cli = new URL('../test/helpers/cli.ts', import.meta.url).pathname;
/** `strata nbd serve` in its own process (a memory device unless `device` says otherwise); resolves with
 * the process and its port. */
async function startStrata(extra: string[] = [], device = ['--mem', String(bytes)]) {
  const proc = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      // the package's build, as the bench itself runs it (scripts/bench.mjs)
      ...(process.env.STRATA_BENCH_HOOKS ? ['--import', process.env.STRATA_BENCH_HOOKS] : []),
      cli,
      'nbd',
      'serve',
      ...device,
      '--listen',
      '127.0.0.1:0',
      '--json',
      '--exit-with-parent',
      ...extra,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const port = await new Promise<number>((resolve, reject) => {
    proc.stdout!.once('data', (c: Buffer) => resolve(JSON.parse(c.toString()).port as number));
    proc.once('exit', (code) => reject(new Error(`strata nbd serve exited with ${code}`)));
  });
  return { proc, port };
}
const { proc: strata, port } = await startStrata();
// the same server with its adaptive polling off (--poll-us 0; on by default, up to 200 us): for the
// single-request latency, where an idle vCPU's wake-up is most of the difference
const noPolling = await startStrata(['--poll-us', '0']);
async function freePort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
  const p = (probe.address() as { port: number }).port;
  await new Promise((r) => probe.close(r));
  return p;
}
/** Waits until an NBD server answers at `uri`. */
async function answering(uri: string): Promise<void> {
  for (let i = 0; ; i++) {
    try {
      await exec('nbdinfo', ['--size', uri]);
      return;
    } catch (e) {
      if (i === 50) throw e;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}
/** nbdkit with `plugin` on a free port of 127.0.0.1, once it answers. */
async function startNbdkit(...plugin: string[]) {
  const p = await freePort();
  const proc = spawn(
    'nbdkit',
    ['--foreground', '--exit-with-parent', '-i', '127.0.0.1', '-p', String(p), ...plugin],
    {
      stdio: 'ignore',
    },
  );
  await answering(`nbd://127.0.0.1:${p}`);
  return { proc, port: p };
}
const { proc: kit, port: kitPort } = await startNbdkit('memory', String(bytes));

/**
 * The file servers, each serving the same file, one at a time (they are idle when not measured): their
 * URIs and a stop for all three.
 */
async function startFileServers() {
  const served = join(dir, 'served.img');
  writeFileSync(served, buf);
  const strataFile = await startStrata([], ['--file', served]);
  const kitFile = await startNbdkit('file', served);
  // nbd-server (Debian's nbd-server 3.24) forks a daemon per the config below (its `-d` serves one client
  // and exits), so its pid comes from a pid file and it is stopped in `finally` and on exit
  const nbdServerPort = await freePort();
  const nbdServerConf = join(dir, 'nbd-server.conf');
  const nbdServerPid = join(dir, 'nbd-server.pid');
  writeFileSync(
    nbdServerConf,
    `[generic]\n  listenaddr = 127.0.0.1\n  port = ${nbdServerPort}\n[bench]\n  exportname = ${served}\n`,
  );
  await exec('nbd-server', ['-C', nbdServerConf, '-p', nbdServerPid]);
  const stopNbdServer = () => {
    try {
      process.kill(Number(readFileSync(nbdServerPid, 'utf8')));
    } catch {
      // not started or already gone
    }
  };
  process.once('exit', stopNbdServer);
  await answering(`nbd://127.0.0.1:${nbdServerPort}/bench`);
  return {
    uris: [
      ['strata --file', `nbd://127.0.0.1:${strataFile.port}`],
      ['nbdkit file', `nbd://127.0.0.1:${kitFile.port}`],
      ['nbd-server', `nbd://127.0.0.1:${nbdServerPort}/bench`],
    ] as const,
    stop() {
      strataFile.proc.kill();
      kitFile.proc.kill();
      stopNbdServer();
    },
  };
}
// not for the delta sync alone (--sync-only)
const fileServers = reps > 0 ? await startFileServers() : undefined;
const results: Record<string, number[]> = {};
const add = (k: string, v: number) => (results[k] ??= []).push(v);
try {
  for (let rep = 0; rep < reps; rep++) {
    for (const [name, p, pid] of [
      ['strata', port, strata.pid],
      ['nbdkit memory', kitPort, kit.pid],
    ] as const) {
      // the server's CPU seconds per GiB copied: less sensitive to a shared machine than the wall time
      let c = cpuSeconds(pid);
      add(
        `${name} write`,
        bytes / 2 ** 30 / ((await time(() => exec('nbdcopy', [img, `nbd://127.0.0.1:${p}`]))) / 1000),
      );
      add(`${name} write server CPU s/GiB`, (cpuSeconds(pid) - c) / (bytes / 2 ** 30));
      c = cpuSeconds(pid);
      add(
        `${name} read`,
        bytes /
          2 ** 30 /
          ((await time(() => exec('nbdcopy', [`nbd://127.0.0.1:${p}`, join(dir, 'out.img')]))) / 1000),
      );
      add(`${name} read server CPU s/GiB`, (cpuSeconds(pid) - c) / (bytes / 2 ** 30));
      const lat: number[] = [];
      for (let i = 0; i < 50; i++)
        lat.push(await time(() => exec('nbdinfo', ['--size', `nbd://127.0.0.1:${p}`])));
      add(`${name} nbdinfo round trip ms`, percentile(lat, 50));
    }
    // one file served by each in turn, the order reversed every other rep; nbdcopy sends no FLUSH (no
    // --flush): a write ends when the server has the bytes (Strata's server flushes after the DISC, after
    // it closed the connection; the others do not)
    const uris = fileServers!.uris;
    for (const [name, uri] of rep % 2 === 0 ? uris : [...uris].reverse()) {
      add(`${name} write`, bytes / 2 ** 30 / ((await time(() => exec('nbdcopy', [img, uri]))) / 1000));
      add(
        `${name} read`,
        bytes / 2 ** 30 / ((await time(() => exec('nbdcopy', [uri, join(dir, 'out.img')]))) / 1000),
      );
    }
  }
  // single-request latency: one 4 KiB READ at a time over one open connection (our client, both servers)
  for (let rep = 0; rep < Math.min(reps, 3); rep++)
    for (const [name, p] of [
      ['strata', port],
      ['strata --poll-us 0', noPolling.port],
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
  // delta sync: 1% of 64 KiB chunks changed, against rsync --no-whole-file --inplace. Each run starts from
  // a fresh copy of the old file with the page cache written back (`sync`), so neither side pays for the
  // setup's dirty pages (our sync ends with a datasync of what it wrote; rsync does not sync).
  const old = join(dir, 'old.img');
  writeFileSync(old, buf);
  const chunks = bytes / 65536;
  for (let i = 0; i < chunks / 100; i++) buf.writeUInt32LE(i, Math.floor(Math.random() * chunks) * 65536);
  writeFileSync(img, buf);
  const dst = join(dir, 'dst.img');
  const syncRuns: { strata: number; rsync: number }[] = [];
  let sent = 0;
  let rsyncSent = Number.NaN;
  for (let run = 0; run < syncReps; run++) {
    const fresh = async () => {
      await exec('cp', [old, dst]);
      await exec('sync');
    };
    await fresh();
    const strata = await time(async () => (sent = (await syncFiles(img, dst)).bytesSent));
    await fresh();
    let rsyncOut = '';
    const rsync = await time(
      async () =>
        (rsyncOut = (
          await exec('rsync', ['--no-whole-file', '--inplace', '--ignore-times', '--stats', img, dst])
        ).stdout),
    );
    rsyncSent = Number(/Total bytes sent: ([\d,]+)/.exec(rsyncOut)?.[1]?.replace(/,/g, '') ?? 'NaN');
    syncRuns.push({ strata, rsync });
  }
  const rows = Object.entries(results).map(([k, v]) => [
    k,
    k.endsWith('ms') || k.endsWith('us') || k.endsWith('s/GiB')
      ? percentile(v, 50).toFixed(2)
      : `${percentile(v, 50).toFixed(2)} GiB/s`,
  ]);
  const med = (k: string) => percentile(results[k] ?? [], 50);
  if (reps > 0)
    rows.push([
      '4 KiB read latency p50: strata / nbdkit',
      `${(med('strata 4 KiB read latency p50 us') / med('nbdkit memory 4 KiB read latency p50 us')).toFixed(2)}x`,
    ]);
  if (reps > 0)
    rows.push([
      '4 KiB read latency p50: strata --poll-us 0 / nbdkit',
      `${(med('strata --poll-us 0 4 KiB read latency p50 us') / med('nbdkit memory 4 KiB read latency p50 us')).toFixed(2)}x`,
    ]);
  for (const op of reps > 0 ? ['write', 'read'] : [])
    rows.push([
      `${op}: strata / nbdkit`,
      `${(med(`strata ${op}`) / med(`nbdkit memory ${op}`)).toFixed(2)}x`,
    ]);
  for (const op of reps > 0 ? ['write', 'read'] : [])
    for (const anchor of ['nbdkit file', 'nbd-server'])
      rows.push([
        `file ${op}: strata / ${anchor}`,
        `${(med(`strata --file ${op}`) / med(`${anchor} ${op}`)).toFixed(2)}x`,
      ]);
  if (syncReps > 0) {
    const ms = (k: 'strata' | 'rsync') =>
      percentile(
        syncRuns.map((r) => r[k]),
        50,
      );
    rows.push(['strata sync: time / bytes sent', `${ms('strata').toFixed(0)} ms / ${sent}`]);
    rows.push([
      'rsync --no-whole-file --inplace: time / bytes sent',
      `${ms('rsync').toFixed(0)} ms / ${rsyncSent}`,
    ]);
    rows.push(['sync time: strata / rsync', `${(ms('strata') / ms('rsync')).toFixed(2)}x`]);
  }
  console.log(`${mib} MiB\n${table(['measure', `median of ${reps} (sync: of ${syncReps})`], rows)}`);
  for (const r of syncRuns)
    console.log(`sync run: strata ${r.strata.toFixed(0)} ms, rsync ${r.rsync.toFixed(0)} ms`);
  writeResults('bench/results', 'nbd', {
    date: new Date().toISOString(),
    mib,
    results,
    sync: { runs: syncRuns, sent },
    rsync: { sent: rsyncSent },
  });
} finally {
  kit.kill();
  strata.kill();
  noPolling.proc.kill();
  fileServers?.stop();
  rmSync(dir, { recursive: true, force: true });
}
