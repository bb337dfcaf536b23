// Live migration of a device under a random-write load (4 KiB writes at a fixed rate), over NBD on
// loopback: total time, bytes sent, downtime p50/p99 over repeated runs, against a raw copy of the device
// by the same code (a mount's background pull with no writes). Usage: npm run bench -- r3map migrate
//   [-- --mib N --runs R --rate MIBPS --track BYTES]   (defaults: 128 MiB, 5 runs, 10 MiB/s, 4096)
import { percentile, table, writeResults } from '@strata/bench';
import {
  MemoryDevice,
  MigratingDevice,
  MountDevice,
  migrate,
  NbdClientDevice,
  NbdServer,
  TrackedDevice,
} from '../src/index.js';
import { numberArg as arg } from './args.js';

const size = arg('--mib', 128) << 20;
const runs = arg('--runs', 5);
const rateBytes = arg('--rate', 10) << 20;
const chunk = 64 << 10;
// dirty tracking unit (--track 65536 tracks whole chunks, as before 2026-12-02)
const trackBytes = arg('--track', 4096);

async function once(withLoad: boolean) {
  const src = new MemoryDevice(size);
  const image = new Uint8Array(size);
  const words = new Uint32Array(image.buffer);
  for (let i = 0; i < words.length; i++) words[i] = Math.imul(i, 2654435761);
  await src.writeAt(0, image);
  const source = new TrackedDevice(src, trackBytes);
  const server = new NbdServer([{ name: '', device: source.copySource }]);
  const port = await server.listen(0);
  const remote = await NbdClientDevice.connect('127.0.0.1', port, '');
  const dest = new MountDevice(new MemoryDevice(size), remote, { chunkBytes: chunk, pullConcurrency: 4 });
  const front = new MigratingDevice(source);
  let stop = false;
  let writes = 0;
  const load = (async () => {
    if (!withLoad) return;
    const t0 = performance.now();
    while (!stop) {
      // pace to the target rate
      const due = (writes * 4096 * 1000) / rateBytes - (performance.now() - t0);
      if (due > 0) await new Promise((r) => setTimeout(r, due));
      await front.writeAt(
        Math.floor(Math.random() * (size / 4096)) * 4096,
        new Uint8Array(4096).fill(writes & 0xff),
      );
      writes++;
    }
  })();
  const t = performance.now();
  let r: Awaited<ReturnType<typeof migrate>> | undefined;
  if (withLoad) r = await migrate(source, dest, front, { dirtyChunksMax: 8 });
  else await dest.pullAll();
  const ms = performance.now() - t;
  stop = true;
  await load;
  await remote.close();
  await server.close();
  return { ms, report: r, writes, bytesSent: dest.stats.bytesFetched };
}

const raw: number[] = [];
const total: number[] = [];
const downtime: number[] = [];
const resent: number[] = [];
const sent: number[] = [];
const ratio: number[] = [];
for (let i = 0; i < runs; i++) {
  // a raw copy and a migration per run, in alternating order; the ratio of each pair is what the shared
  // machine disturbs least
  let rawMs = 0;
  if (i % 2 === 0) rawMs = (await once(false)).ms;
  const m = await once(true);
  if (i % 2 === 1) rawMs = (await once(false)).ms;
  raw.push(rawMs);
  ratio.push(m.ms / rawMs);
  total.push(m.ms);
  downtime.push(m.report!.downtimeMs);
  resent.push(m.report!.chunksResent);
  sent.push(m.bytesSent);
}
const rows = [
  ['raw copy (same code, no load) median', `${percentile(raw, 50).toFixed(0)} ms`],
  [
    'migration under load, total median',
    `${percentile(total, 50).toFixed(0)} ms (${(percentile(total, 50) / percentile(raw, 50)).toFixed(2)}x raw)`,
  ],
  [
    'migration / raw copy, per run (median)',
    `${ratio.map((x) => x.toFixed(2)).join(', ')} (${percentile(ratio, 50).toFixed(2)}x)`,
  ],
  [
    'downtime p50 / p99',
    `${percentile(downtime, 50).toFixed(2)} / ${percentile(downtime, 99).toFixed(2)} ms`,
  ],
  [
    're-sent units (median)',
    `${percentile(resent, 50)} of ${size / trackBytes} (${trackBytes >> 10} KiB tracking, 64 KiB chunks)`,
  ],
  [
    'bytes sent (median)',
    `${(percentile(sent, 50) / 2 ** 20).toFixed(1)} MiB (${(percentile(sent, 50) / size).toFixed(2)}x the device)`,
  ],
];
console.log(
  `${size >> 20} MiB, ${rateBytes >> 20} MiB/s of random 4 KiB writes, ${runs} runs, ${trackBytes} B tracking\n${table(['measure', 'value'], rows)}`,
);
writeResults('bench/results', 'migrate', {
  date: new Date().toISOString(),
  sizeBytes: size,
  rateBytes,
  trackBytes,
  runs,
  raw,
  ratio,
  total,
  downtime,
  resent,
  sent,
});
