// What the packet loop allocates: runCapture's loop (1 MiB reads, decode, defragmentation, flows,
// reassembly, inspection) on a shared trace, with the engine built before measuring starts (as
// `loopCpuSeconds` counts). Per pass: V8 heap bytes allocated per packet (the sampling heap profiler with the
// objects later collected by minor and major GCs included: typed arrays' backing stores over 64 bytes live
// outside the V8 heap and are not counted); then, in a pass without the profiler (which slows the loop
// several times), the loop's thread CPU (scheduler nanoseconds, not 10 ms ticks) and its scavenges and
// other GCs. Anchors in the same process: the capture reader alone, and the pipeline
// with no rules (the packet path without inspection), with every rule's allocation as a multiple of each,
// and the largest allocating functions (self bytes) of the last pass with every rule.
// Usage: npm run bench -- ids alloc [-- --trace ndpi-mix-a --reps 3]
import { createReadStream, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { loadavg } from 'node:os';
import { constants, PerformanceObserver } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { Engine, Pipeline, parseRules, type Rule, readCaptureBatches } from '../src/index.js';

const { values } = parseArgs({
  options: {
    trace: { type: 'string', default: 'ndpi-mix-a' },
    reps: { type: 'string', default: '3' },
  },
});
const reps = Number(values.reps);
const shared = new URL('../../../../shared/ids/', import.meta.url).pathname;
const pcap = `${shared}traces/${values.trace}.pcap`;
const set = parseRules(readFileSync(`${shared}rules/snort3-community.rules`, 'utf8'), 'community');
const loaded = new Set(new Engine(set.rules).compiled.map((c) => c.rule.sid));
const rules = set.rules.filter((r) => loaded.has(r.sid));
/** Sampling interval of the heap profiler in bytes (the mean gap between samples). */
const samplingIntervalBytes = 256;

/** This thread's CPU time in ns (Linux schedstat); NaN elsewhere. */
function cpuNs(): number {
  try {
    return Number(readFileSync('/proc/thread-self/schedstat', 'latin1').split(' ')[0]);
  } catch {
    return Number.NaN;
  }
}

const gcs = { minor: 0, other: 0, ms: 0, on: false };
new PerformanceObserver((list) => {
  if (!gcs.on) return;
  for (const e of list.getEntries()) {
    const kind = (e as { detail?: { kind?: number } }).detail?.kind;
    if (kind === constants.NODE_PERFORMANCE_GC_MINOR) gcs.minor++;
    else gcs.other++;
    gcs.ms += e.duration;
  }
}).observe({ entryTypes: ['gc'] });

interface ProfileNode {
  callFrame: { functionName: string; url: string; lineNumber: number };
  selfSize: number;
  children: ProfileNode[];
}

const session = new Session();
session.connect();
await session.post('HeapProfiler.enable');

/** One pass of the loop; `rules` undefined: the capture reader alone; `sample` false: no heap profiler. */
async function pass(ruleSet: Rule[] | undefined, sample = true) {
  const pipe = ruleSet ? new Pipeline(ruleSet, { validateChecksums: 'auto' }) : undefined;
  (globalThis as { gc?: () => void }).gc?.();
  await new Promise((r) => setTimeout(r, 10));
  Object.assign(gcs, { minor: 0, other: 0, ms: 0, on: true });
  if (sample)
    await session.post('HeapProfiler.startSampling', {
      samplingInterval: samplingIntervalBytes,
      includeObjectsCollectedByMajorGC: true,
      includeObjectsCollectedByMinorGC: true,
    });
  const c0 = cpuNs();
  let packets = 0;
  let alerts = 0;
  for await (const batch of readCaptureBatches(createReadStream(pcap, { highWaterMark: 1024 * 1024 })))
    for (const p of batch) {
      packets++;
      if (pipe) alerts += pipe.push(p).length;
    }
  if (pipe) alerts += pipe.finish().length;
  const cpuSeconds = (cpuNs() - c0) / 1e9;
  const profile = sample
    ? ((await session.post('HeapProfiler.stopSampling')) as { profile: { head: ProfileNode } }).profile
    : { head: { callFrame: { functionName: '', url: '', lineNumber: 0 }, selfSize: 0, children: [] } };
  await new Promise((r) => setTimeout(r, 10));
  gcs.on = false;
  const self = new Map<string, number>();
  let bytes = 0;
  const walk = (n: ProfileNode) => {
    bytes += n.selfSize;
    const f = n.callFrame;
    const name = `${f.functionName || '(anonymous)'} ${f.url.split('/').pop() ?? ''}:${f.lineNumber + 1}`;
    if (n.selfSize > 0) self.set(name, (self.get(name) ?? 0) + n.selfSize);
    for (const c of n.children) walk(c);
  };
  walk(profile.head);
  const top = [...self]
    .sort((a, b) => b[1] - a[1])
    .slice(0, 10)
    .map(([name, b]) => ({ name, bytesPerPacket: Math.round(b / packets) }));
  return {
    packets,
    alerts,
    bytesPerPacket: Math.round(bytes / packets),
    scavenges: gcs.minor,
    otherGcs: gcs.other,
    gcMs: Number(gcs.ms.toFixed(1)),
    cpuSeconds: Number(cpuSeconds.toFixed(4)),
    top,
  };
}

console.log(
  `trace ${values.trace}, ${rules.length} rules, load average ${loadavg()[0]!.toFixed(1)}; heap bytes allocated in the packet loop (sampled every ${samplingIntervalBytes} B, collected objects included)`,
);
const rows = [];
let last: Awaited<ReturnType<typeof pass>> | undefined;
for (let rep = 0; rep < reps; rep++) {
  const reader = await pass(undefined);
  const bare = await pass([]);
  const every = await pass(rules);
  const timed = await pass(rules, false);
  last = every;
  const row = {
    readerBytesPerPacket: reader.bytesPerPacket,
    noRulesBytesPerPacket: bare.bytesPerPacket,
    everyRuleBytesPerPacket: every.bytesPerPacket,
    overReader: Number((every.bytesPerPacket / reader.bytesPerPacket).toFixed(2)),
    overNoRules: Number((every.bytesPerPacket / bare.bytesPerPacket).toFixed(2)),
    everyRuleScavenges: timed.scavenges,
    everyRuleOtherGcs: timed.otherGcs,
    everyRuleGcMs: timed.gcMs,
    everyRuleLoopCpuSeconds: timed.cpuSeconds,
    alerts: every.alerts,
    packets: every.packets,
  };
  rows.push(row);
  console.log(
    `pass ${rep + 1}: every rule ${row.everyRuleBytesPerPacket} B/packet (${row.alerts} alerts; a pass without sampling, the inspector attached: loop ${row.everyRuleLoopCpuSeconds} s CPU, ${row.everyRuleScavenges} scavenges + ${row.everyRuleOtherGcs} other GCs, ${row.everyRuleGcMs} ms) | no rules ${row.noRulesBytesPerPacket} B/packet = ${row.overNoRules}x | reader alone ${row.readerBytesPerPacket} B/packet = ${row.overReader}x`,
  );
}
console.log('largest allocators, last pass with every rule (self bytes per packet):');
for (const t of last?.top ?? []) console.log(`  ${String(t.bytesPerPacket).padStart(5)}  ${t.name}`);
const dir = new URL('./results/', import.meta.url).pathname;
mkdirSync(dir, { recursive: true });
writeFileSync(
  `${dir}alloc-${values.trace}.json`,
  `${JSON.stringify({ trace: values.trace, loadavg: loadavg()[0], rows, top: last?.top }, null, 2)}\n`,
);
