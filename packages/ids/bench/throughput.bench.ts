// End-to-end throughput on the shared traces with the community ruleset: one engine on this thread
// (runCapture) against the same rules on N worker threads (ParallelRunner, flows hashed to workers), in
// one process, one after the other, with the ratio. Two rule sets: every rule that loads (3,911), and the
// HTTP rules alone (2,185; they run once per HTTP message, not per packet). Mbps counts captured bytes.
// Wall-clock Mbps on a shared machine say how loaded it was; CPU seconds per thread (/proc/thread-self/stat)
// say what the work cost, and the slowest thread's CPU time bounds the parallel time on dedicated cores.
// Per row: the filter stages' pass rates (of the inspections of a packet or stream chunk: those whose port
// group holds a rule of the kind, those where a rule passed the prefilter, those reaching the full
// matcher). With every rule, the anchor of issue 10 in the same process: the naive matcher (naive.ts: each
// rule's contents searched with indexOf over every reassembled payload), and the pipeline's ratio to it.
// The N-worker side is run twice per rep, as a user meets it: cold, a pool created for the run and closed
// after it (what `strata ids --workers N` does for one capture; its time counts starting the workers,
// sending them the rules, each building its engine, and compiling the engine's code in each worker's own
// V8 isolate), and warm, one pool kept across the reps with spare engines (each worker resets its engine
// for the next run after a run; the bench waits for that before timing, and warms the pool up with one
// untimed run per rule set). The warm figure is what a long-lived pool pays per capture; the cold one is the
// CLI's on one capture. Its match on one thread: a Pipeline kept across the reps (`runPipeline`, reset
// between runs, warmed up the same way), timed by wall right after the warm pool: the ratio of the two is
// 2 workers against 1 by wall, both warm (the one-thread runCapture above builds its engine each time).
// Process CPU (every thread: the JS threads and V8's compiler and GC threads) is reported per side too.
// Sustained, one thread: one engine reading the trace `--passes` times back to back (5, each pass's flows
// flushed at its end), the packet loop's thread CPU over all passes: how the issue's Snort 3 figures were
// taken (its packet-loop timer, the trace read 5 times per run), where the passes above each build a new
// engine and time its first pass only; measured in a process of its own after three untimed warm-up passes by
// another engine, released before the measured one is built (bench/sustained.ts), so this process's other
// runs and worker pool do not weigh on it.
// Usage: npm run bench -- ids throughput [-- --workers 2 --trace ndpi-mix-a --reps 1]
import { spawnSync } from 'node:child_process';
import { mkdirSync, statSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { ParallelRunner, Pipeline, runCapture, runPipeline, threadCpuMs } from '../src/index.js';
import { wasmScanAvailable } from '../src/scan-wasm.js';
import { naiveRun } from './naive.js';
import { benchRuleSets, idsShared } from './rulesets.js';

const { values } = parseArgs({
  options: {
    workers: { type: 'string', default: '2' },
    trace: { type: 'string', default: 'ndpi-mix-a' },
    reps: { type: 'string', default: '1' },
    passes: { type: 'string', default: '5' },
  },
});
const passes = Number(values.passes);
if (!Number.isInteger(passes) || passes < 2)
  throw new Error(
    `--passes: an integer of at least 2 (the steady figure is the passes after the first), not ${values.passes}`,
  );
const workers = Number(values.workers);
const reps = Number(values.reps);
const pcap = `${idsShared}traces/${values.trace}.pcap`;
const ruleSets = benchRuleSets();
const bytes = statSync(pcap).size;
// the prefilter's scan falls back to JavaScript when build/scan.wasm is missing: say which one ran
const scanIn = wasmScanAvailable() ? 'WebAssembly' : 'JavaScript';
console.log(
  `trace ${values.trace} (${(bytes / 1e6).toFixed(1)} MB), ${workers} workers vs 1 thread, ${availableParallelism()} cores, load average ${loadavg()[0]!.toFixed(1)}, prefilter scan in ${scanIn}`,
);
const pool = new ParallelRunner(workers, { spareEngines: true });
const rows: Record<string, unknown>[] = [];
/**
 * The sustained figure of rule set `set` (its index in `ruleSets`), measured in a process of its own
 * (`bench/sustained.ts`: warm-up passes by another engine, then one engine reading the trace `n` times):
 * each pass's thread CPU seconds and alerts.
 */
function sustainedRun(set: number, n: number): { cpu: number[]; alerts: number[] } {
  const r = spawnSync(
    process.execPath,
    [
      ...process.execArgv,
      new URL('./sustained.ts', import.meta.url).pathname,
      '--trace',
      pcap,
      '--set',
      String(set),
      '--passes',
      String(n),
    ],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] },
  );
  if (r.status !== 0) throw new Error(`bench/sustained.ts exited with ${r.status ?? r.signal}`);
  return JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { cpu: number[]; alerts: number[] };
}
/** CPU seconds of the whole process (every thread) since `from`. */
const processCpu = (from: NodeJS.CpuUsage) => {
  const u = process.cpuUsage(from);
  return (u.user + u.system) / 1e6;
};
for (const [set, [name, rules]] of ruleSets.entries()) {
  // warm-up of the kept pool for this rule set (untimed): the rules sent, the JIT warmed, spares made ready;
  // and of the kept one-thread pipeline
  await pool.run(pcap, rules, { validateChecksums: 'auto' });
  const kept = new Pipeline(rules, { validateChecksums: 'auto' });
  await runPipeline(kept, pcap);
  for (let rep = 0; rep < reps; rep++) {
    // the kept pool's workers make their spare engines ready after each run: not while this thread is timed
    await pool.idle();
    const p0 = process.cpuUsage();
    const c0 = threadCpuMs() ?? 0;
    const one = await runCapture(pcap, rules, { validateChecksums: 'auto' });
    const c1 = threadCpuMs() ?? 0;
    const procCpu1 = processCpu(p0);
    const sus = sustainedRun(set, passes);
    const susCpu = sus.cpu.reduce((a, x) => a + x, 0);
    // cold: a pool made for the run and closed after it, as the CLI does
    const pc = process.cpuUsage();
    const tc = performance.now();
    const coldPool = new ParallelRunner(workers);
    const cold = await coldPool.run(pcap, rules, { validateChecksums: 'auto' });
    await coldPool.close();
    const coldSeconds = (performance.now() - tc) / 1000;
    const procCpuCold = processCpu(pc);
    // warm: the kept pool, once its workers are idle (their spare engines ready)
    await pool.idle();
    const pw = process.cpuUsage();
    const c1w = threadCpuMs() ?? 0;
    const par = await pool.run(pcap, rules, { validateChecksums: 'auto' });
    const c2 = threadCpuMs() ?? 0;
    const procCpuWarm = processCpu(pw);
    // warm on one thread: the kept pipeline, reset (as the pool's engines were)
    const one1 = await runPipeline(kept, pcap);
    // CPU seconds: what the work cost, whatever else the machine was doing. One thread: all of it; N
    // workers: the main thread (read, decode, dispatch, merge) and each worker, which on dedicated cores
    // run side by side, so the slowest of them bounds the time
    const cpu1 = (c1 - c0) / 1000;
    const loopCpu = one.loopCpuSeconds ?? Number.NaN;
    const cpuMain = (c2 - c1w) / 1000;
    const cpuWorkers = par.workers.map((w) => w.cpuMs / 1000);
    const cpuBound = Math.max(cpuMain, ...cpuWorkers);
    // the naive anchor, with every rule only (its cost does not depend on which rules are HTTP rules)
    const c3 = threadCpuMs() ?? 0;
    const naive = name === 'all loaded rules' ? await naiveRun(pcap, rules) : undefined;
    const cpuNaive = ((threadCpuMs() ?? 0) - c3) / 1000;
    const st = one.stats;
    const share = (n: number) => Number((st.stageInspections ? n / st.stageInspections : 0).toFixed(4));
    const mbps1 = (one.bytes * 8) / 1e6 / one.seconds;
    const mbpsN = (par.bytes * 8) / 1e6 / par.seconds;
    const mbpsCold = (cold.bytes * 8) / 1e6 / coldSeconds;
    const row = {
      rules: name,
      ruleCount: rules.length,
      packets: one.packets,
      alerts1: one.alerts.length,
      alertsN: par.alerts.length,
      alertsCold: cold.alerts.length,
      seconds1: Number(one.seconds.toFixed(2)),
      // N workers, warm (the kept pool, spare engines) and cold (pool made, run, closed)
      secondsN: Number(par.seconds.toFixed(2)),
      secondsCold: Number(coldSeconds.toFixed(2)),
      mbps1: Number(mbps1.toFixed(2)),
      mbpsN: Number(mbpsN.toFixed(2)),
      mbpsCold: Number(mbpsCold.toFixed(2)),
      kppsN: Number((par.packets / par.seconds / 1e3).toFixed(1)),
      ratio: Number((mbpsN / mbps1).toFixed(2)),
      // one thread warm: the kept pipeline (reset between runs), and the warm pool against it
      secondsKept1: Number(one1.seconds.toFixed(3)),
      mbpsKept1: Number(((one1.bytes * 8) / 1e6 / one1.seconds).toFixed(2)),
      alertsKept1: one1.alerts.length,
      ratioWarm: Number((one1.seconds / par.seconds).toFixed(2)),
      ratioCold: Number((mbpsCold / mbps1).toFixed(2)),
      phasesWarmMs: phaseMs(par.phases),
      phasesColdMs: phaseMs(cold.phases),
      spareEnginesWarm: par.phases.spareEngines,
      spareCpuMsWarm: par.phases.workerSpareCpuMs.map((x) => Math.round(x)),
      processCpuSeconds1: Number(procCpu1.toFixed(2)),
      processCpuSecondsCold: Number(procCpuCold.toFixed(2)),
      processCpuSecondsN: Number(procCpuWarm.toFixed(2)),
      cpuSeconds1: Number(cpu1.toFixed(2)),
      cpuSecondsMain: Number(cpuMain.toFixed(2)),
      cpuSecondsWorkers: cpuWorkers.map((x) => Number(x.toFixed(2))),
      mbpsPerCpuSecond1: Number(((one.bytes * 8) / 1e6 / cpu1).toFixed(2)),
      // without building the engine (as Snort's packet-loop timer counts; the issue's Snort figures are that)
      loopCpuSeconds1: Number(loopCpu.toFixed(2)),
      loopMbpsPerCpuSecond1: Number(((one.bytes * 8) / 1e6 / loopCpu).toFixed(2)),
      sustainedPasses: passes,
      sustainedLoopCpuSeconds: Number(susCpu.toFixed(3)),
      sustainedMbpsPerCore: Number(((passes * one.bytes * 8) / 1e6 / susCpu).toFixed(2)),
      // the engine's passes after its first (a long-lived engine's rate: its first pass builds the port
      // groups and their automata and runs code V8 has not yet optimized for this engine's objects)
      steadyMbpsPerCore: Number((((passes - 1) * one.bytes * 8) / 1e6 / (susCpu - sus.cpu[0]!)).toFixed(2)),
      sustainedPassCpuSeconds: sus.cpu.map((x) => Number(x.toFixed(3))),
      sustainedAlerts: sus.alerts,
      mbpsDedicatedCoresN: Number(((par.bytes * 8) / 1e6 / cpuBound).toFixed(2)),
      cpuRatio: Number((cpu1 / cpuBound).toFixed(2)),
      workerPackets: par.workers.map((w) => w.packets),
      workerBusyMs: par.workers.map((w) => Math.round(w.busyMs)),
      stageInspections: st.stageInspections,
      stagePortGroupShare: share(st.stagePortGroupOut),
      stagePrefilterShare: share(st.stagePrefilterOut),
      stageAllStringsShare: share(st.stageAllStringsOut),
      stageFullMatcherShare: share(st.stageFullMatcherIn),
      ...(naive && {
        naiveSeconds: Number(naive.seconds.toFixed(2)),
        naiveCpuSeconds: Number(cpuNaive.toFixed(2)),
        naiveMbps: Number(((naive.bytes * 8) / 1e6 / naive.seconds).toFixed(2)),
        naivePayloads: naive.payloads,
        naivePayloadBytes: naive.payloadBytes,
        naiveRulesSearched: naive.rulesSearched,
        naiveCandidates: naive.candidates,
        pipelineOverNaiveWall: Number((naive.seconds / one.seconds).toFixed(2)),
        pipelineOverNaiveCpu: Number((cpuNaive / cpu1).toFixed(2)),
      }),
      mailMessages: st.mailMessages,
      flowsPerSecond1: Math.round(one.flows.created / one.seconds),
      httpRequests: one.stats.httpRequests,
      reassemblyPeakBytes: one.reassemblyPeakBytes,
      maxRssMiB: Math.round(process.resourceUsage().maxRSS / 1024),
    };
    rows.push(row);
    console.log(
      `${name.padEnd(18)} stages: ${row.stageInspections} inspections, port group ${row.stagePortGroupShare}, prefilter ${row.stagePrefilterShare}, all strings ${row.stageAllStringsShare}, full matcher ${row.stageFullMatcherShare}${naive ? ` | naive indexOf matcher: ${row.naiveCpuSeconds} s CPU (${row.naiveSeconds} s wall, ${row.naiveMbps} Mbps, ${row.naiveCandidates} candidates of ${row.naiveRulesSearched} rules x ${row.naivePayloads} payloads) = pipeline ${row.pipelineOverNaiveCpu}x by CPU, ${row.pipelineOverNaiveWall}x by wall` : ''}\n${' '.repeat(18)} CPU: 1 thread ${row.cpuSeconds1} s = ${row.mbpsPerCpuSecond1} Mbps per core (packet loop ${row.loopCpuSeconds1} s = ${row.loopMbpsPerCpuSecond1} Mbps; sustained, the trace read ${passes} times by one engine: ${row.sustainedMbpsPerCore} Mbps, passes ${row.sustainedPassCpuSeconds.join('/')} s, alerts ${row.sustainedAlerts.join('/')}; steady, its passes after the first: ${row.steadyMbpsPerCore} Mbps) | ${workers} workers: main ${row.cpuSecondsMain} s, workers ${row.cpuSecondsWorkers.join('/')} s = ${row.mbpsDedicatedCoresN} Mbps on dedicated cores | ${row.cpuRatio}x\n${' '.repeat(18)} wall: 1 thread ${row.mbps1} Mbps (${row.seconds1} s, ${row.alerts1} alerts) | ${workers} workers cold ${row.mbpsCold} Mbps (${row.secondsCold} s, ${row.alertsCold} alerts; init/batches/finish ${row.phasesColdMs.join('/')} ms) = ${row.ratioCold}x | warm ${row.mbpsN} Mbps (${row.secondsN} s, ${row.alertsN} alerts; ${row.phasesWarmMs.join('/')} ms${row.spareEnginesWarm ? `, spare engines made ready between runs: ${row.spareCpuMsWarm.join('/')} ms CPU` : ''}) = ${row.ratio}x | 1 thread warm (a kept pipeline, reset) ${row.mbpsKept1} Mbps (${row.secondsKept1} s, ${row.alertsKept1} alerts): ${workers} workers warm ${row.ratioWarm}x\n${' '.repeat(18)} process CPU (all threads): 1 thread ${row.processCpuSeconds1} s, cold ${row.processCpuSecondsCold} s, warm ${row.processCpuSecondsN} s | worker packets ${row.workerPackets.join('/')}, busy ms ${row.workerBusyMs.join('/')} | ${row.flowsPerSecond1} flows/s, reassembly peak ${(row.reassemblyPeakBytes / 2 ** 20).toFixed(1)} MiB, max RSS ${row.maxRssMiB} MiB`,
    );
  }
}
await pool.close();
function phaseMs(p: { initMs: number; batchesMs: number; finishMs: number }): number[] {
  return [p.initMs, p.batchesMs, p.finishMs].map((x) => Math.round(x));
}
const dir = new URL('./results/', import.meta.url).pathname;
mkdirSync(dir, { recursive: true });
writeFileSync(
  `${dir}throughput-${values.trace}.json`,
  `${JSON.stringify({ trace: values.trace, workers, loadavg: loadavg()[0], prefilterScan: scanIn, rows }, null, 2)}\n`,
);
