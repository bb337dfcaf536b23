// End-to-end throughput on the shared traces with the community ruleset: one engine on this thread
// (runCapture) against the same rules on N worker threads (ParallelRunner, flows hashed to workers), in
// one process, one after the other, with the ratio. Two rule sets: every rule that loads (3,911), and the
// HTTP rules alone (2,185; they run once per HTTP message, not per packet). Mbps counts captured bytes.
// Usage: npm run bench -- ids throughput [-- --workers 2 --trace ndpi-mix-a --reps 1]
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { Engine, ParallelRunner, parseRules, type Rule, runCapture } from '../src/index.js';

const { values } = parseArgs({
  options: {
    workers: { type: 'string', default: '2' },
    trace: { type: 'string', default: 'ndpi-mix-a' },
    reps: { type: 'string', default: '1' },
  },
});
const workers = Number(values.workers);
const reps = Number(values.reps);
const shared = new URL('../../../../shared/ids/', import.meta.url).pathname;
const pcap = `${shared}traces/${values.trace}.pcap`;
const set = parseRules(readFileSync(`${shared}rules/snort3-community.rules`, 'utf8'), 'community');
const engine = new Engine(set.rules);
const loaded = new Set(engine.compiled.map((c) => c.rule.sid));
const httpSids = new Set(engine.compiled.filter((c) => c.mode === 'http').map((c) => c.rule.sid));
const ruleSets: [string, Rule[]][] = [
  ['all loaded rules', set.rules.filter((r) => loaded.has(r.sid))],
  ['HTTP rules only', set.rules.filter((r) => httpSids.has(r.sid))],
];
const bytes = statSync(pcap).size;
console.log(
  `trace ${values.trace} (${(bytes / 1e6).toFixed(1)} MB), ${workers} workers vs 1 thread, ${availableParallelism()} cores, load average ${loadavg()[0]!.toFixed(1)}`,
);
const pool = new ParallelRunner(workers);
const rows: Record<string, unknown>[] = [];
for (const [name, rules] of ruleSets) {
  for (let rep = 0; rep < reps; rep++) {
    const one = await runCapture(pcap, rules, { validateChecksums: 'auto' });
    const par = await pool.run(pcap, rules, { validateChecksums: 'auto' });
    const mbps1 = (one.bytes * 8) / 1e6 / one.seconds;
    const mbpsN = (par.bytes * 8) / 1e6 / par.seconds;
    const row = {
      rules: name,
      ruleCount: rules.length,
      packets: one.packets,
      alerts1: one.alerts.length,
      alertsN: par.alerts.length,
      seconds1: Number(one.seconds.toFixed(2)),
      secondsN: Number(par.seconds.toFixed(2)),
      mbps1: Number(mbps1.toFixed(2)),
      mbpsN: Number(mbpsN.toFixed(2)),
      kppsN: Number((par.packets / par.seconds / 1e3).toFixed(1)),
      ratio: Number((mbpsN / mbps1).toFixed(2)),
      workerPackets: par.workers.map((w) => w.packets),
      workerBusyMs: par.workers.map((w) => Math.round(w.busyMs)),
      httpRequests: one.stats.httpRequests,
      reassemblyPeakBytes: one.reassemblyPeakBytes,
    };
    rows.push(row);
    console.log(
      `${name.padEnd(18)} 1 thread ${row.mbps1} Mbps (${row.seconds1} s, ${row.alerts1} alerts) | ${workers} workers ${row.mbpsN} Mbps (${row.secondsN} s, ${row.alertsN} alerts) | ratio ${row.ratio}x | worker packets ${row.workerPackets.join('/')}, busy ms ${row.workerBusyMs.join('/')}`,
    );
  }
}
await pool.close();
const dir = new URL('./results/', import.meta.url).pathname;
mkdirSync(dir, { recursive: true });
writeFileSync(
  `${dir}throughput-${values.trace}.json`,
  `${JSON.stringify({ trace: values.trace, workers, loadavg: loadavg()[0], rows }, null, 2)}\n`,
);
