// Object store latency and small-write throughput, side by side in one run: the file: backend, the s3:
// backend against a local Ceph RGW (when installed), the bare AWS SDK client on the same RGW, and each
// through the WAL and the cache, and the WAL's group-commit latency at fixed offered rates.
// Usage: npm run bench -- objstore [store] [-- --count N] [--commit-only]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { percentile, table, writeResults } from '@strata/bench';
import { S3Store } from '../src/backends/s3.js';
import { CachedStore, costReport, FileStore, type ObjectStore, WalStore } from '../src/index.js';
import { type Rgw, rgwAvailable, startRgw } from '../test/helpers/rgw.js';

const countArg = process.argv.indexOf('--count');
const count = countArg > 0 ? Number(process.argv[countArg + 1]) : 200;
const commitOnly = process.argv.includes('--commit-only');
const dir = mkdtempSync(join(tmpdir(), 'objstore-bench-'));
let rgw: Rgw | undefined;
const rows: string[][] = [];
const results: Record<string, unknown>[] = [];

async function latency(name: string, op: (i: number) => Promise<unknown>, n: number, concurrency = 1) {
  const lat: number[] = [];
  const t0 = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < n) {
        const i = next++;
        const t = performance.now();
        await op(i);
        lat.push(performance.now() - t);
      }
    }),
  );
  const secs = (performance.now() - t0) / 1000;
  const r = {
    name,
    concurrency,
    p50Ms: percentile(lat, 50),
    p99Ms: percentile(lat, 99),
    opsPerSec: n / secs,
  };
  results.push(r);
  rows.push([
    name,
    String(concurrency),
    `${r.p50Ms.toFixed(2)} ms`,
    `${r.p99Ms.toFixed(2)} ms`,
    `${r.opsPerSec.toFixed(0)}/s`,
  ]);
  console.log(rows[rows.length - 1]!.join('  '));
  return r;
}

const body4k = new Uint8Array(4096).map((_, i) => i * 7);
const body1m = new Uint8Array(1 << 20).map((_, i) => i * 13);
const stores: [string, ObjectStore][] = [['file:', new FileStore(join(dir, 'file'))]];
let sdk: S3Client | undefined;
/**
 * Open loop: `rate` 1 KiB writes per second for `secs` seconds through a WAL with the given group-commit
 * interval, each timed from its call to its durable acknowledgement. Unlike the closed loop of 1,024
 * writers below (which saturates the CPU, so its latency is queueing), this is the latency a workload
 * below capacity sees: the wait for the next group commit plus the commit's write and fsync.
 */
async function offeredLoad(store: ObjectStore, intervalMs: number, rate: number, secs: number) {
  const w = await WalStore.open(store, {
    dir: join(dir, `wal-open-${intervalMs}-${rate}`),
    flushIntervalMs: intervalMs,
    packBytes: 64 << 20,
  });
  const one = new Uint8Array(1024).fill(2);
  const lat: number[] = [];
  const inflight: Promise<void>[] = [];
  const t0 = performance.now();
  let issued = 0;
  const total = Math.round(rate * secs);
  await new Promise<void>((done) => {
    const tick = setInterval(() => {
      const due = Math.min(total, Math.floor(((performance.now() - t0) / 1000) * rate));
      for (; issued < due; issued++) {
        const t = performance.now();
        inflight.push(w.put(`open/${issued}`, one).then(() => void lat.push(performance.now() - t)));
      }
      if (issued >= total) {
        clearInterval(tick);
        done();
      }
    }, 1);
  });
  await Promise.all(inflight);
  await w.close();
  const r = {
    name: `WAL group commit, open loop`,
    intervalMs,
    rate,
    p50Ms: percentile(lat, 50),
    p99Ms: percentile(lat, 99),
    maxMs: percentile(lat, 100),
    targetMs: intervalMs + 5,
  };
  results.push(r);
  rows.push([
    `file: WAL 1 KiB PUT at ${rate.toLocaleString('en-US')}/s offered (${intervalMs} ms group commit; target p99 ${r.targetMs} ms)`,
    'open',
    `${r.p50Ms.toFixed(2)} ms`,
    `${r.p99Ms.toFixed(2)} ms`,
    `max ${r.maxMs.toFixed(1)} ms`,
  ]);
  console.log(rows[rows.length - 1]!.join('  '));
}

/** `latency` of `op` at each concurrency in turn; the round of the highest throughput. */
async function fastest(
  name: string,
  op: (c: number, i: number) => Promise<unknown>,
  n: number,
  concurrencies: number[],
) {
  const rounds = [];
  for (const c of concurrencies) rounds.push(await latency(name, (i) => op(c, i), n, c));
  return rounds.reduce((a, b) => (b.opsPerSec > a.opsPerSec ? b : a));
}

/** Small writes on `s`: direct PUTs against the same through a WAL, acknowledged durable. */
async function smallWrites(name: string, s: ObjectStore): Promise<void> {
  const smallN = count * 5;
  const walN = smallN * 200;
  const one = new Uint8Array(1024).fill(1);
  // each side at the concurrency that suits it best on this machine: direct PUTs at 32 and 128, the WAL at
  // 1,024 and 2,048 writers (a group commit of ~1 MiB holds about 1,000 of them: with twice that, the next
  // batch fills while one syncs); the better of each counts
  // each side timed warm: a first round untimed (JIT, the first files and segments), then the timed one
  for (let i = 0; i < 200; i++) await s.put(`small-warm/${i}`, one);
  // 2,000 writes: 500 (before) were a few rounds at 128 writers, a burst more than a rate
  const direct = await fastest(
    `${name} direct 1 KiB PUT`,
    (c, i) => s.put(`small/${c}/${i}`, one),
    smallN * 2,
    [32, 128],
  );
  const w = await WalStore.open(s, {
    dir: join(dir, `wal-${name.replace(/\W/g, '')}`),
    flushIntervalMs: 5,
    packBytes: 16 << 20,
  });
  // the WAL's rate is a steady state over about a second: 20,000 writes (before) took 0.1-0.2 s and
  // measured mostly the warm-up (about 10 us of CPU per write against 4 warm); the warm-up is as long as a
  // timed round, so the slabs records go into have been allocated (and their pages faulted in) before, as
  // in a WAL that has run a while
  await latency(`${name} via WAL, warm-up`, (i) => w.put(`small-wal-warm/${i}`, one), walN, 1024);
  const viaWal = await fastest(
    `${name} via WAL 1 KiB PUT (5 ms group commit)`,
    (c, i) => w.put(`small-wal/${c}/${i}`, one),
    walN,
    [1024, 2048],
  );
  await w.packNow();
  const ratio = viaWal.opsPerSec / direct.opsPerSec;
  console.log(
    `${name}: WAL ${ratio.toFixed(1)}x the direct PUT rate; ${w.stats.storePuts} store PUTs for ${3 * walN} writes; WAL commit p99 ${percentile(w.stats.commitLatencyMs, 99).toFixed(2)} ms`,
  );
  results.push({
    name: `${name} WAL gain`,
    ratio,
    storePuts: w.stats.storePuts,
    writes: 3 * walN,
    commitP99Ms: percentile(w.stats.commitLatencyMs, 99),
  });
  rows.push([
    `${name}: WAL / direct 1 KiB writes`,
    '',
    '',
    '',
    `${ratio.toFixed(1)}x (${w.stats.storePuts} store PUTs for ${3 * walN})`,
  ]);
  await w.close();
}

try {
  // file: alone first, with no Ceph cluster running beside it (its daemons' disk and CPU work disturbed the
  // direct PUTs, the WAL's closed loop and the commit latency when RGW was started first)
  if (!commitOnly) await smallWrites('file:', stores[0]![1]);
  for (const intervalMs of [5, 100])
    for (const rate of [1_000, 10_000]) await offeredLoad(stores[0]![1], intervalMs, rate, 5);
  if (!commitOnly) {
    if (rgwAvailable()) {
      rgw = await startRgw();
      stores.push([
        's3: (RGW)',
        new S3Store({
          bucket: rgw.bucket,
          prefix: 'bench',
          endpoint: rgw.endpoint,
          region: 'us-east-1',
          accessKeyId: 'testkey',
          secretAccessKey: 'testsecret',
        }),
      ]);
      sdk = new S3Client({
        region: 'us-east-1',
        endpoint: rgw.endpoint,
        forcePathStyle: true,
        credentials: { accessKeyId: 'testkey', secretAccessKey: 'testsecret' },
      });
    }
    // each store also through a WAL (5 ms group commit; a 1 MiB body is past the WAL's record bound and goes
    // to the store directly) and through the cache (gets after puts through it: misses, a head and a get)
    const layered: [string, ObjectStore][] = [];
    for (const [name, s] of stores) {
      const walDir = join(dir, `wal-ops-${name.replace(/\W/g, '')}`);
      layered.push([`${name} via WAL`, await WalStore.open(s, { dir: walDir, flushIntervalMs: 5 })]);
      layered.push([`${name} via cache`, new CachedStore(s, 256 << 20)]);
    }
    for (const [label, body] of [
      ['4 KiB', body4k],
      ['1 MiB', body1m],
    ] as const) {
      const n = label === '1 MiB' ? Math.max(20, count / 4) : count;
      for (const [name, s] of [...stores, ...layered]) {
        for (const conc of [1, 32]) {
          await latency(`${name} PUT ${label}`, (i) => s.put(`k/${label}/${i}`, body), n, conc);
          await latency(`${name} GET ${label}`, (i) => s.get(`k/${label}/${i % n}`), n, conc);
        }
      }
      if (sdk && rgw) {
        // the bare SDK on the same server: the s3: backend's overhead is the difference at p50
        for (let round = 0; round < 2; round++) {
          await latency(
            `bare AWS SDK PUT ${label}`,
            (i) =>
              sdk!.send(new PutObjectCommand({ Bucket: rgw!.bucket, Key: `bare/${label}/${i}`, Body: body })),
            n,
          );
          await latency(
            `s3: (RGW) PUT ${label} again`,
            (i) => stores[1]![1].put(`k2/${label}/${i}`, body),
            n,
          );
        }
        await latency(
          `bare AWS SDK GET ${label}`,
          async (i) => {
            const r = await sdk!.send(
              new GetObjectCommand({ Bucket: rgw!.bucket, Key: `bare/${label}/${i % n}` }),
            );
            await r.Body!.transformToByteArray();
          },
          n,
        );
      }
      const cached = new CachedStore(stores[0]![1], 64 << 20);
      // the keys written above: n of them (fewer than 50 with a small --count)
      const hot = Math.min(50, n);
      for (let i = 0; i < hot; i++) await cached.get(`k/${label}/${i}`);
      await latency(`cache hit (file:) GET ${label}`, (i) => cached.get(`k/${label}/${i % hot}`), count * 5);
    }
    for (const [name, s] of layered) if (name.endsWith('via WAL')) await (s as WalStore).close();
    if (rgw) await smallWrites('s3: (RGW)', stores[1]![1]);
  }
  const cost = commitOnly ? [] : costReport({ writesPerSecond: 1000, writeBytes: 1024, retainDays: 30 });
  for (const c of cost)
    rows.push([
      `cost/month, 1,000 x 1 KiB writes/s, 30 days: ${c.option}`,
      '',
      '',
      '',
      `$${c.total.toFixed(2)}`,
    ]);
  console.log(`\n${table(['operation', 'conc', 'p50', 'p99', 'throughput'], rows)}`);
  writeResults('bench/results', commitOnly ? 'store-commit' : 'store', {
    date: new Date().toISOString(),
    results,
    cost,
  });
} finally {
  for (const [, s] of stores) await s.close();
  sdk?.destroy();
  rgw?.stop();
  rmSync(dir, { recursive: true, force: true });
}
