// The filter stages in front of the full matcher, measured end to end on one thread, one stage on against
// the same engine with it off, in one process, alternating which goes first, with the ratio per pair and
// the median. Both must raise the same alerts. `--stage port-groups` (default): a flow direction consults
// only the rules its protocol and ports admit, against one group of every rule (`portGroups: false`).
// `--stage all-strings`: a rule goes on only if all its contents occur (`allStrings: true`), against the
// fast pattern alone. Every rule of the community ruleset that loads; Mbps counts captured bytes.
// Usage: npm run bench -- ids stages [-- --trace ndpi-mix-a --reps 3 --stage port-groups|all-strings]
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { parseRules, type RunResult, runCapture, threadCpuMs } from '../src/index.js';

const { values } = parseArgs({
  options: {
    trace: { type: 'string', default: 'ndpi-mix-a' },
    reps: { type: 'string', default: '3' },
    stage: { type: 'string', default: 'port-groups' },
  },
});
const stages = {
  'port-groups': { on: 'port groups', off: 'every rule', opts: (on: boolean) => ({ portGroups: on }) },
  'all-strings': { on: 'all strings', off: 'fast pattern', opts: (on: boolean) => ({ allStrings: on }) },
} as const;
const stage = stages[values.stage as keyof typeof stages];
if (!stage) throw new Error(`--stage: one of ${Object.keys(stages).join(', ')}, not '${values.stage}'`);
const reps = Number(values.reps);
const shared = new URL('../../../../shared/ids/', import.meta.url).pathname;
const pcap = `${shared}traces/${values.trace}.pcap`;
const { rules } = parseRules(readFileSync(`${shared}rules/snort3-community.rules`, 'utf8'), 'community');
console.log(
  `trace ${values.trace}, ${rules.length} rules parsed, ${availableParallelism()} cores, load average ${loadavg()[0]!.toFixed(1)}`,
);

async function once(on: boolean): Promise<{ r: RunResult; cpuS: number }> {
  const c0 = threadCpuMs() ?? 0;
  const r = await runCapture(pcap, rules, { validateChecksums: 'auto', ...stage.opts(on) });
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
  const onFirst = rep % 2 === 0;
  const a = await once(onFirst);
  const b = await once(!onFirst);
  const [on, off] = onFirst ? [a, b] : [b, a];
  const mbps = (x: { r: RunResult }) => (x.r.bytes * 8) / 1e6 / x.r.seconds;
  const row = {
    rep,
    stage: values.stage,
    onFirst,
    portGroups: on.r.stats.portGroups,
    alertsSame: key(on.r) === key(off.r),
    alertsSamePackets:
      on.r.alerts.map((x) => `${x.pcapCnt}:${x.sid}`).join() ===
      off.r.alerts.map((x) => `${x.pcapCnt}:${x.sid}`).join(),
    alerts: on.r.alerts.length,
    secondsOn: Number(on.r.seconds.toFixed(2)),
    secondsOff: Number(off.r.seconds.toFixed(2)),
    mbpsOn: Number(mbps(on).toFixed(1)),
    mbpsOff: Number(mbps(off).toFixed(1)),
    cpuSecondsOn: Number(on.cpuS.toFixed(2)),
    cpuSecondsOff: Number(off.cpuS.toFixed(2)),
    ratioWall: Number((off.r.seconds / on.r.seconds).toFixed(2)),
    ratioCpu: Number((off.cpuS / on.cpuS).toFixed(2)),
    rulesPrefilteredOn: on.r.stats.rulesPrefiltered,
    rulesPrefilteredOff: off.r.stats.rulesPrefiltered,
    rulesEvaluatedOn: on.r.stats.rulesEvaluated,
    rulesEvaluatedOff: off.r.stats.rulesEvaluated,
    fullMatcherInOn: on.r.stats.stageFullMatcherIn,
    fullMatcherInOff: off.r.stats.stageFullMatcherIn,
    loadavg: Number(loadavg()[0]!.toFixed(1)),
  };
  rows.push(row);
  console.log(
    `rep ${rep} (${onFirst ? 'on first' : 'off first'}): ${stage.on} ${row.mbpsOn} Mbps (${row.secondsOn} s, CPU ${row.cpuSecondsOn} s, ${row.portGroups} groups) | ${stage.off} ${row.mbpsOff} Mbps (${row.secondsOff} s, CPU ${row.cpuSecondsOff} s) | ratio wall ${row.ratioWall}x, CPU ${row.ratioCpu}x | alerts ${row.alerts}, same sids: ${row.alertsSame}, same packets: ${row.alertsSamePackets} | rules consulted and spared by the prefilter ${row.rulesPrefilteredOn} vs ${row.rulesPrefilteredOff}, evaluated ${row.rulesEvaluatedOn} vs ${row.rulesEvaluatedOff}, inspections reaching the full matcher ${row.fullMatcherInOn} vs ${row.fullMatcherInOff} | load ${row.loadavg}`,
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
  `${dir}stages-${values.stage}-${values.trace}.json`,
  `${JSON.stringify({ trace: values.trace, date: new Date().toISOString(), ...summary, rows }, null, 2)}\n`,
);
