// The needle searches of ingest.bench.ts, shared by its own process and needle-child.ts; and how the bench
// runs a child process (needle-child.ts, duckdb-child.ts) and reads its one JSON line.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import type { Stream } from '@strata/helios';

/** Searches each needle once per round, rounds in turn; each search's latency in order and the rows the last one matched. */
export async function searchNeedles(
  s: Stream,
  needles: string[],
  rounds: number,
): Promise<{ latMs: number[]; rows: number }> {
  const latMs: number[] = [];
  let rows = 0;
  for (let rep = 0; rep < rounds; rep++)
    for (const n of needles) {
      const q = s.parse(`content CONTAINS '${n}'`);
      const t = performance.now();
      const res = await s.search(q);
      latMs.push(performance.now() - t);
      rows = res.stats.rowsMatched;
    }
  return { latMs, rows };
}

/** Runs bench/SCRIPT in a fresh Node process (through tsx) and returns the JSON line it prints. */
export function runChild<T>(script: string, args: string[]): T {
  const child = spawnSync(process.execPath, ['--import', 'tsx', join(import.meta.dirname, script), ...args], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    maxBuffer: 1 << 20,
  });
  if (child.status !== 0) throw new Error(`bench: ${script} failed (status ${child.status})`);
  return JSON.parse(child.stdout) as T;
}
