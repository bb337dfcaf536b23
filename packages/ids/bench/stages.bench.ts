// The filter stages in front of the full matcher, measured end to end on one thread: port groups (a flow
// direction consults only the rules its protocol and ports admit, each group with its own multi-string
// prefilter) against one group of every rule with one prefilter (the anchor, `portGroups: false`), in one
// process, alternating which goes first, with the ratio per pair and the median. Both must raise the same
// alerts. Every rule of the community ruleset that loads; Mbps counts captured bytes.
// Usage: npm run bench -- ids stages [-- --trace ndpi-mix-a --reps 3]
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { parseRules, type RunResult, runCapture, threadCpuMs } from '../src/index.js';

const { values } = parseArgs({
  options: {
    trace: { type: 'string', default: 'ndpi-mix-a' },
    reps: { type: 'string', default: '3' },
  },
});
const reps = Number(values.reps);
const shared = new URL('../../../../shared/ids/', import.meta.url).pathname;
const pcap = `${shared}traces/${values.trace}.pcap`;
const { rules } = parseRules(readFileSync(`${shared}rules/snort3-community.rules`, 'utf8'), 'community');
console.log(
  `trace ${values.trace}, ${rules.length} rules parsed, ${availableParallelism()} cores, load average ${loadavg()[0]!.toFixed(1)}`,
);

async function once(portGroups: boolean): Promise<{ r: RunResult; cpuS: number }> {
  const c0 = threadCpuMs() ?? 0;
  const r = await runCapture(pcap, rules, { validateChecksums: 'auto', portGroups });
  return { r, cpuS: ((threadCpuMs() ?? 0) - c0) / 1000 };
}

// sids, sorted: one HTTP file_data rule (39729) alerts at a packet that varies from run to run (the flow
// table's hash key is random per run, and with it which flow its timeout sweep flushes first)
const key = (r: RunResult) =>
  r.alerts
    .map((a) => a.sid)
    .sort((x, y) => x - y)
    .join(' ');
const rows: Record<string, unknown>[] = [];
for (let rep = 0; rep < reps; rep++) {
  // alternate the order: whichever runs second finds warmer caches and a JIT that has seen the code
  const groupsFirst = rep % 2 === 0;
  const a = await once(groupsFirst);
  const b = await once(!groupsFirst);
  const [on, off] = groupsFirst ? [a, b] : [b, a];
  const mbps = (x: { r: RunResult }) => (x.r.bytes * 8) / 1e6 / x.r.seconds;
  const row = {
    rep,
    groupsFirst,
    portGroups: on.r.stats.portGroups,
    alertsSame: key(on.r) === key(off.r),
    alertsSamePackets:
      on.r.alerts.map((x) => `${x.pcapCnt}:${x.sid}`).join() ===
      off.r.alerts.map((x) => `${x.pcapCnt}:${x.sid}`).join(),
    alerts: on.r.alerts.length,
    secondsGroups: Number(on.r.seconds.toFixed(2)),
    secondsAll: Number(off.r.seconds.toFixed(2)),
    mbpsGroups: Number(mbps(on).toFixed(1)),
    mbpsAll: Number(mbps(off).toFixed(1)),
    cpuSecondsGroups: Number(on.cpuS.toFixed(2)),
    cpuSecondsAll: Number(off.cpuS.toFixed(2)),
    ratioWall: Number((off.r.seconds / on.r.seconds).toFixed(2)),
    ratioCpu: Number((off.cpuS / on.cpuS).toFixed(2)),
    rulesPrefilteredGroups: on.r.stats.rulesPrefiltered,
    rulesPrefilteredAll: off.r.stats.rulesPrefiltered,
    rulesEvaluatedGroups: on.r.stats.rulesEvaluated,
    rulesEvaluatedAll: off.r.stats.rulesEvaluated,
    loadavg: Number(loadavg()[0]!.toFixed(1)),
  };
  rows.push(row);
  console.log(
    `rep ${rep} (${groupsFirst ? 'groups first' : 'all first'}): port groups ${row.mbpsGroups} Mbps (${row.secondsGroups} s, CPU ${row.cpuSecondsGroups} s, ${row.portGroups} groups) | every rule ${row.mbpsAll} Mbps (${row.secondsAll} s, CPU ${row.cpuSecondsAll} s) | ratio wall ${row.ratioWall}x, CPU ${row.ratioCpu}x | alerts ${row.alerts}, same sids: ${row.alertsSame}, same packets: ${row.alertsSamePackets} | rules consulted and spared by the prefilter ${row.rulesPrefilteredGroups} vs ${row.rulesPrefilteredAll}, evaluated ${row.rulesEvaluatedGroups} vs ${row.rulesEvaluatedAll} | load ${row.loadavg}`,
  );
}
const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;
const summary = {
  medianRatioWall: median(rows.map((r) => r.ratioWall as number)),
  medianRatioCpu: median(rows.map((r) => r.ratioCpu as number)),
};
console.log(`median ratio: wall ${summary.medianRatioWall}x, CPU ${summary.medianRatioCpu}x`);
const dir = new URL('./results/', import.meta.url).pathname;
mkdirSync(dir, { recursive: true });
writeFileSync(
  `${dir}stages-${values.trace}.json`,
  `${JSON.stringify({ trace: values.trace, date: new Date().toISOString(), ...summary, rows }, null, 2)}\n`,
);
