import { readFileSync } from 'node:fs';
import { Engine, parseRules, runCapture } from './src/index.ts';

const set = parseRules(readFileSync('/work/shared/ids/rules/snort3-community.rules', 'utf8'), 'community');
const e = new Engine(set.rules);
const ids = new Set(e.compiled.filter((c) => c.mode === 'http').map((c) => c.rule.sid));
const httpOnly = set.rules.filter((r) => ids.has(r.sid));
const t0 = performance.now();
const r0 = await runCapture(`/work/shared/ids/traces/suricata-verify-mix.pcap`, [], {
  validateChecksums: 'auto',
});
console.log('no rules', r0.seconds.toFixed(1));
const r = await runCapture(`/work/shared/ids/traces/suricata-verify-mix.pcap`, httpOnly, {
  validateChecksums: 'auto',
});
console.log('http', r.seconds.toFixed(1), r.alerts.length, performance.now() - t0);
const bySid = new Map<number, number>();
for (const a of r.alerts) bySid.set(a.sid, (bySid.get(a.sid) ?? 0) + 1);
console.log(
  [...bySid].sort((a, b) => a[0] - b[0]),
  r.stats.httpRequests,
  r.stats.httpResponses,
  Object.entries(r.httpAnomalies).filter(([, n]) => n > 0),
  r.reassemblyPeakBytes,
);
