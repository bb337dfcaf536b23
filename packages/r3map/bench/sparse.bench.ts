// The pre-copy of a mostly empty device over NBD on loopback (in-process `migrate`, idle source): with
// BLOCK_STATUS (the destination skips what reads as zeros at the source) against the same migration with
// the client asking for no meta context (`blockStatus: false`: every hole read and written, as before), in
// alternating order per run. Time and bytes read from the source. Usage: npm run bench -- r3map sparse
//   [-- --gib N --written-mib M --runs R]   (defaults: 4 GiB, 8 MiB written in 64 pieces, 3 runs)
import { percentile, table, writeResults } from '@strata/bench';
import {
  type BlockDevice,
  MemoryDevice,
  MigratingDevice,
  MountDevice,
  migrate,
  NbdClientDevice,
  NbdServer,
  TrackedDevice,
} from '../src/index.js';
import { numberArg as arg } from './args.js';

const size = arg('--gib', 4) * 2 ** 30;
const writtenBytes = arg('--written-mib', 8) * 2 ** 20;
const runs = arg('--runs', 3);
const pieces = 64;

async function once(blockStatus: boolean) {
  const src = new MemoryDevice(size);
  const piece = new Uint8Array(writtenBytes / pieces).fill(0x5a);
  for (let i = 0; i < pieces; i++) await src.writeAt(Math.floor((i * size) / pieces) + 4096 * i, piece);
  let bytesRead = 0;
  const counted: BlockDevice = {
    size,
    readAt: (o, n) => {
      bytesRead += n;
      return src.readAt(o, n);
    },
    extents: (o, n) => src.extents(o, n),
    writeAt: (o, b) => src.writeAt(o, b),
    trim: (o, n) => src.trim(o, n),
    flush: () => src.flush(),
    close: () => src.close(),
  };
  const source = new TrackedDevice(counted, 4096);
  const server = new NbdServer([{ name: '', device: source.copySource }]);
  const port = await server.listen(0, '127.0.0.1');
  const remote = await NbdClientDevice.connect('127.0.0.1', port, '', { blockStatus });
  const dest = new MountDevice(new MemoryDevice(size), remote, { chunkBytes: 1 << 20, localZeroed: true });
  const t0 = performance.now();
  await migrate(source, dest, new MigratingDevice(source));
  const ms = performance.now() - t0;
  await remote.close();
  await server.close();
  return { ms, bytesRead };
}

const before: { ms: number; bytesRead: number }[] = [];
const after: { ms: number; bytesRead: number }[] = [];
const ratio: number[] = [];
for (let i = 0; i < runs; i++) {
  let b: { ms: number; bytesRead: number };
  let a: { ms: number; bytesRead: number };
  if (i % 2 === 0) {
    b = await once(false);
    a = await once(true);
  } else {
    a = await once(true);
    b = await once(false);
  }
  before.push(b);
  after.push(a);
  ratio.push(a.ms / b.ms);
}
const med = (xs: number[]) => percentile(xs, 50);
const mib = (n: number) => `${(n / 2 ** 20).toFixed(1)} MiB`;
const rows = [
  [
    'without BLOCK_STATUS (every hole read)',
    `${med(before.map((x) => x.ms)).toFixed(0)} ms`,
    mib(med(before.map((x) => x.bytesRead))),
  ],
  [
    'with BLOCK_STATUS',
    `${med(after.map((x) => x.ms)).toFixed(1)} ms`,
    mib(med(after.map((x) => x.bytesRead))),
  ],
  [
    'with / without, per run (median)',
    `${ratio.map((x) => x.toFixed(4)).join(', ')} (${med(ratio).toFixed(4)}x)`,
    '',
  ],
];
console.log(
  `${size / 2 ** 30} GiB device, ${writtenBytes >> 20} MiB written in ${pieces} pieces, ${runs} runs\n${table(['pre-copy + handover', 'time (median)', 'read from the source'], rows)}`,
);
writeResults('bench/results', 'sparse', {
  date: new Date().toISOString(),
  sizeBytes: size,
  writtenBytes,
  runs,
  before,
  after,
  ratio,
});
