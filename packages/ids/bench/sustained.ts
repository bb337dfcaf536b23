// The throughput bench's sustained figure, in a process of its own (spawned by throughput.bench.ts, so the
// bench's other runs, its worker pool and what they leave on the heap do not weigh on it): `--warmup`
// untimed passes over the trace by a first engine (3), so V8 has compiled the packet path (a long-running
// process's state, as Snort's compiled binary starts in it; one pass leaves much of it in V8's lower tiers);
// that engine is then released, and the engine measured, built after that, reads the
// trace `--passes` times back to back, each pass's flows flushed at its end, as the Snort 3 figures
// were taken (its packet-loop timer over the trace read 5 times in one run). No collection is forced
// before the timed passes: a forced one (gc() before and after the engine's build) made the first pass
// slower, 0.15-0.19 s against 0.12-0.15 (three alternated processes each). Prints one JSON line: each
// pass's thread CPU seconds and alerts.
// Usage (the bench runs it): node --expose-gc --import tsx bench/sustained.ts --trace PCAP --set N --passes P
// [--warmup W]
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { captureStream, Pipeline, readCaptureBatches } from '../src/index.js';
import { benchRuleSets } from './rulesets.js';

const { values } = parseArgs({
  options: {
    trace: { type: 'string' },
    set: { type: 'string', default: '0' },
    passes: { type: 'string', default: '5' },
    warmup: { type: 'string', default: '3' },
  },
});
const pcap = values.trace;
if (!pcap) throw new Error('--trace: the capture to read');
const passes = Number(values.passes);
const entry = benchRuleSets()[Number(values.set)];
if (!entry) throw new Error(`--set: the index of a rule set of the bench, not ${values.set}`);
const rules = entry[1];

/** This thread's CPU time in seconds (Linux schedstat: nanoseconds, not 10 ms ticks); NaN elsewhere. */
function threadCpuSeconds(): number {
  try {
    return Number(readFileSync('/proc/thread-self/schedstat', 'latin1').split(' ')[0]) / 1e9;
  } catch {
    return Number.NaN;
  }
}

async function pass(pipe: Pipeline): Promise<number> {
  let alerts = 0;
  for await (const batch of readCaptureBatches(captureStream(pcap!)))
    for (const p of batch) alerts += pipe.push(p).length;
  return alerts + pipe.finish().length;
}

let warm: Pipeline | undefined = new Pipeline(rules, { validateChecksums: 'auto' });
for (let i = 0; i < Number(values.warmup); i++) await pass(warm);
// released before the measured engine is built, as a rule reload releases the engine it replaces: a process
// holds one engine (kept, its heap was marked again by the timed passes' full collection)
warm = undefined;
const pipe = new Pipeline(rules, { validateChecksums: 'auto' });
const cpu: number[] = [];
const alerts: number[] = [];
for (let i = 0; i < passes; i++) {
  const c0 = threadCpuSeconds();
  alerts.push(await pass(pipe));
  cpu.push(threadCpuSeconds() - c0);
}
console.log(JSON.stringify({ cpu, alerts }));
