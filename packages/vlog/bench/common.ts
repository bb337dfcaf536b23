// What the vlog benchmarks share: the append driver and the reconfiguration probe.
import { percentile } from '@strata/bench';
import type { VirtualLog } from '../src/index.js';

const secArg = process.argv.indexOf('--seconds');
/** Seconds per measured run (`-- --seconds S`). */
export const seconds = secArg > 0 ? Number(process.argv[secArg + 1]) : 2;
/** The record: 100 bytes. */
export const record = new Uint8Array(100).fill(7);

/** Runs `append` from `inflight` concurrent callers for `seconds`; throughput and latency percentiles. */
export async function runAppends(name: string, append: () => Promise<unknown>, inflight: number) {
  const lat: number[] = [];
  const t0 = performance.now();
  let ops = 0;
  await Promise.all(
    Array.from({ length: inflight }, async () => {
      while (performance.now() - t0 < seconds * 1000) {
        const t = performance.now();
        await append();
        lat.push(performance.now() - t);
        ops++;
      }
    }),
  );
  const s = (performance.now() - t0) / 1000;
  return { name, inflight, appendsPerSec: ops / s, p50Ms: percentile(lat, 50), p99Ms: percentile(lat, 99) };
}
export type Row = Awaited<ReturnType<typeof runAppends>>;

/**
 * Appends through `a` and `b` at the same moments for `seconds`: with one in flight a single caller
 * alternates between them, otherwise half of the callers use each. So both see the same machine (the
 * same disk syncs, the same other load), which sequential runs on a shared machine do not; returns each
 * side's latencies (ms) and appends per second.
 */
export async function runPaired(a: () => Promise<unknown>, b: () => Promise<unknown>, inflight: number) {
  const sides = [
    { append: a, lat: [] as number[] },
    { append: b, lat: [] as number[] },
  ];
  const t0 = performance.now();
  const until = t0 + seconds * 1000;
  await Promise.all(
    Array.from({ length: Math.max(1, inflight) }, async (_, i) => {
      for (let k = i; performance.now() < until; k += inflight > 1 ? 0 : 1) {
        const side = sides[k % 2]!;
        const t = performance.now();
        await side.append();
        side.lat.push(performance.now() - t);
      }
    }),
  );
  const s = (performance.now() - t0) / 1000;
  return sides.map((x) => ({ lat: x.lat, appendsPerSec: x.lat.length / s }));
}

/**
 * Reconfigures `v` to `specFor(1..count)` while a writer appends continuously; per reconfiguration, the
 * time from the seal to the first append acknowledged on the new loglet, and the writer's longest stall.
 */
export async function measureReconfigurations(v: VirtualLog, specFor: (i: number) => string, count = 30) {
  const reconf: number[] = [];
  const stalls: number[] = [];
  for (let i = 1; i <= count; i++) {
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
    await v.reconfigure(specFor(i));
    await v.append([record]);
    reconf.push(performance.now() - t);
    stop = true;
    await writer;
    stalls.push(worst);
  }
  return {
    p50Ms: percentile(reconf, 50),
    p99Ms: percentile(reconf, 99),
    writerStallMaxMs: Math.max(...stalls),
  };
}
