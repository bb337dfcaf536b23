// One Pipeline for capture after capture (`Pipeline.reset`, `runPipeline`): each run must give what a new
// Pipeline of the same rules and options gives on that capture, alert for alert and count for count, whatever
// ran on it before (flows, streams, thresholds, rate_filters, flowbits, the checksum sample, fragments held,
// the port groups and automata it built).
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  captureStream,
  checksumSamplePackets,
  loadRules,
  Pipeline,
  type PipelineOptions,
  type Rule,
  type RunResult,
  readCaptureBatches,
  runCapture,
  runPipeline,
} from '../src/index.js';
import {
  caseOptions,
  communityRulesWith,
  conversationFrames,
  type ManifestCase,
  SYN,
  sharedIds,
  tcpFrame,
} from './helpers.js';

const { shared, have } = sharedIds('suricata-verify/manifest.json');
const base = `${shared}suricata-verify/`;

/** What a run gives, less what depends on the clock (times, rule latency, rule profile). */
function outcome(r: RunResult): unknown {
  const { seconds: _s, loopCpuSeconds: _l, ruleLatency: _r, ruleProfile: _p, ...rest } = r;
  return rest;
}

const cases = have
  ? (JSON.parse(readFileSync(`${base}manifest.json`, 'utf8')) as { cases: ManifestCase[] }).cases
  : [];

describe.runIf(have)('one Pipeline, capture after capture', () => {
  it('every suricata-verify case on its own pipeline, again after the next case and after its own: the counts and alerts of a new pipeline', async () => {
    let alerts = 0;
    for (const [i, c] of cases.entries()) {
      const { rules } = loadRules(readFileSync(base + c.rules, 'utf8'), c.rules);
      const opts = caseOptions(c);
      const pipe = new Pipeline(rules, opts);
      const fresh = outcome(await runPipeline(pipe, base + c.pcap));
      alerts += (fresh as { alerts: unknown[] }).alerts.length;
      // the same run again: every state of the first run gone (thresholds, flowbits, flows, counts)
      expect(outcome(await runPipeline(pipe, base + c.pcap)), `${c.name}, twice`).toEqual(fresh);
      // another case's capture between (its flows, fragments and matches on these rules), then this one
      const other = cases[(i + 1) % cases.length]!;
      await runPipeline(pipe, base + other.pcap);
      expect(outcome(await runPipeline(pipe, base + c.pcap)), `${c.name} after ${other.name}`).toEqual(fresh);
    }
    expect(alerts).toBeGreaterThan(100);
  }, 120_000);

  it('random sequences of the cases that share options, on one pipeline of all their rules: each run as on a new pipeline', async () => {
    // the IDS cases with Suricata's defaults, their rules together (one rule per gid:sid: the engine keeps
    // the highest rev, alike for both sides)
    const group = cases.filter(
      (c) =>
        !c.ips &&
        c.config_settings.length === 0 &&
        !c.args.some((a) => a.includes('midstream') || a.includes('async-oneside') || a === 'none') &&
        c.checksum_validation !== 'none',
    );
    expect(group.length).toBeGreaterThan(15);
    const rules: Rule[] = [];
    for (const c of group) rules.push(...loadRules(readFileSync(base + c.rules, 'utf8'), c.rules).rules);
    const opts: PipelineOptions = { validateChecksums: 'auto' };
    const want = new Map<string, unknown>();
    for (const c of group) want.set(c.pcap, outcome(await runCapture(base + c.pcap, rules, opts)));
    expect([...want.values()].some((o) => (o as { alerts: unknown[] }).alerts.length > 0)).toBe(true);
    const pipe = new Pipeline(rules, opts);
    await fc.assert(
      fc.asyncProperty(fc.array(fc.constantFrom(...group), { minLength: 2, maxLength: 6 }), async (seq) => {
        for (const c of seq)
          expect(outcome(await runPipeline(pipe, base + c.pcap)), c.name).toEqual(want.get(c.pcap));
      }),
      { numRuns: 12 },
    );
  }, 120_000);

  it('every community rule: ndpi-mix-a after suricata-verify-mix on one pipeline gives what a new one gives', async () => {
    // a threshold and a detection_filter whose state spans flows, and flowbits: state a run would leave behind
    const rules = communityRulesWith(
      shared,
      'alert tcp any any -> any any (msg:"syn"; flags:S; threshold:type limit, track by_dst, count 3, seconds 3600; sid:9000001;)\nalert tcp any any -> any any (msg:"syn2"; flags:S; flowbits:set,seen; flowbits:noalert; sid:9000002;)\nalert tcp any any -> any any (msg:"fin"; flowbits:isset,seen; flags:F+; detection_filter:track by_src, count 5, seconds 3600; sid:9000003;)',
    );
    const opts: PipelineOptions = { validateChecksums: 'auto' };
    const ndpi = `${shared}traces/ndpi-mix-a.pcap`;
    const svm = `${shared}traces/suricata-verify-mix.pcap`;
    const pipe = new Pipeline(rules, opts);
    const first = outcome(await runPipeline(pipe, ndpi));
    expect((first as { alerts: unknown[] }).alerts.length).toBeGreaterThan(100);
    const mixed = outcome(await runPipeline(pipe, svm));
    expect(outcome(await runPipeline(pipe, ndpi))).toEqual(first);
    expect(outcome(await runCapture(svm, rules, opts))).toEqual(mixed);
  }, 120_000);
});

/**
 * Where `a` and `b` differ, walking their own fields (functions are skipped; `same` pairs objects that stand
 * for each other, as two engines, which their parts point back to; `skip` names fields not compared).
 */
function differences(
  a: unknown,
  b: unknown,
  path: string,
  same: Map<unknown, unknown>,
  skip: Set<string>,
): string[] {
  if (typeof a === 'function' || typeof b === 'function') return [];
  if (a === b || (Number.isNaN(a) && Number.isNaN(b))) return [];
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null)
    return [`${path}: ${String(a)} / ${String(b)}`];
  if (same.has(a)) return same.get(a) === b ? [] : [`${path}: another object`];
  same.set(a, b);
  if (a.constructor !== b.constructor) return [`${path}: ${a.constructor?.name} / ${b.constructor?.name}`];
  if (ArrayBuffer.isView(a)) {
    const x = a as Uint8Array;
    const y = b as Uint8Array;
    return x.length === y.length && x.every((v, i) => v === y[i]) ? [] : [`${path}: typed arrays differ`];
  }
  if (a instanceof Map || a instanceof Set) {
    const x = [...(a as Map<unknown, unknown>)];
    const y = [...(b as Map<unknown, unknown>)];
    if (x.length !== y.length) return [`${path}: ${x.length} entries / ${y.length}`];
    return x.flatMap((e, i) => differences(e, y[i], `${path}[${i}]`, same, skip));
  }
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  return [...keys]
    .filter((k) => !skip.has(k))
    .flatMap((k) =>
      differences(
        (a as Record<string, unknown>)[k],
        (b as Record<string, unknown>)[k],
        `${path}.${k}`,
        same,
        skip,
      ),
    );
}

describe('Pipeline.reset', () => {
  it("after a run and a reset, every field of the pipeline and its engine is a new one's, but the rules and what they learned of traffic", async () => {
    if (!have) return;
    const rules = communityRulesWith(
      shared,
      'alert tcp any any -> any any (msg:"syn"; flags:S; threshold:type limit, track by_dst, count 3, seconds 3600; sid:9000001;)',
    );
    const opts: PipelineOptions = { validateChecksums: 'auto', ruleLatency: { maxUs: 1, suspend: true } };
    const used = new Pipeline(rules, opts);
    await runPipeline(used, `${shared}traces/ndpi-mix-a.pcap`);
    expect(used.engine.stats.alerts).toBeGreaterThan(10);
    used.reset();
    const fresh = new Pipeline(rules, opts);
    // not compared (each rule's latency and profile fields are, below):
    // the compiled rules and their order, the port groups and the HTTP prefilter with the automata built
    // from traffic; and the pipeline's scratch records of the packet under way
    const kept = new Set(['compiled', 'ordered', 'httpOrdered', 'mailOrdered', 'groups', 'httpPrefilter']);
    for (const k of ['record', 'prepared']) kept.add(k);
    expect(differences(used, fresh, 'pipeline', new Map(), kept)).toEqual([]);
    const perRule = (p: Pipeline) =>
      p.engine.compiled.map((c) => [c.latencyTimeouts, c.suspendedAt, c.profChecks, c.profUs, c.profMaxUs]);
    expect(perRule(used)).toEqual(perRule(fresh));
  }, 60_000);

  it('an FTP data connection announced in one capture is not one in the next', () => {
    const rules = loadRules(
      'alert tcp any any -> any any (file_data; content:"SECRET"; service:ftp-data; sid:2;)',
      'x.rules',
    ).rules;
    const opts: PipelineOptions = { streamRelease: 'immediate' };
    const frames = (c: string, cp: number, sp: number, segs: [0 | 1, string][], t0: number) =>
      conversationFrames(segs, {
        client: c,
        clientPort: cp,
        server: '8.8.8.8',
        serverPort: sp,
        fin: true,
      }).map((data, i) => ({ tsUs: (t0 + i) * 1e6, linkType: 1, data, origLength: data.length }));
    const control = frames(
      '192.168.1.5',
      40000,
      21,
      [
        [1, '220 ready\r\n'],
        [0, 'PASV\r\n'],
        [1, '227 Entering Passive Mode (8,8,8,8,195,80).\r\n'],
      ],
      1_700_000_000,
    );
    const data = frames('192.168.1.5', 41000, 50000, [[0, 'file: SECRET']], 1_700_000_100);
    const run = (pipe: Pipeline, packets: typeof data) => {
      const sids: number[] = [];
      for (const p of packets) for (const a of pipe.push(p)) sids.push(a.sid);
      for (const a of pipe.finish()) sids.push(a.sid);
      return sids;
    };
    // in one capture, the announced connection carries a file
    const both = new Pipeline(rules, opts);
    expect(run(both, [...control, ...data])).toEqual([2]);
    // the announcement in one capture, the connection in the next: a new pipeline sees no FTP there
    expect(run(new Pipeline(rules, opts), data)).toEqual([]);
    const pipe = new Pipeline(rules, opts);
    run(pipe, control);
    pipe.reset();
    expect(run(pipe, data)).toEqual([]);
  });

  it("the 'auto' checksum sample starts again: a capture of bad checksums after a clean one is judged as alone", () => {
    const { rules } = loadRules('alert tcp any any -> any any (msg:"syn"; flags:S; sid:1;)', 'x.rules');
    const frames = (bad: boolean) =>
      Array.from({ length: checksumSamplePackets + 200 }, (_, i) => {
        const f = tcpFrame({ sp: 1024 + i, flags: SYN, seq: i });
        if (bad) f[14 + 20 + 16] = f[14 + 20 + 16]! ^ 0xff; // the TCP checksum
        return { tsUs: 1_000_000 * (i + 1), linkType: 1, data: f, origLength: f.length };
      });
    const run = (pipe: Pipeline, packets: ReturnType<typeof frames>) => {
      let alerts = 0;
      for (const p of packets) alerts += pipe.push(p).length;
      alerts += pipe.finish().length;
      return { alerts, validating: pipe.validating, stats: { ...pipe.engine.stats } };
    };
    const opts: PipelineOptions = { validateChecksums: 'auto' };
    const alone = run(new Pipeline(rules, opts), frames(true));
    // the sample was mostly bad: validation off, the packets after it inspected as good ones
    expect(alone.validating).toBe(false);
    expect(alone.stats.badChecksums).toBeGreaterThan(checksumSamplePackets * 0.9);
    const pipe = new Pipeline(rules, opts);
    expect(run(pipe, frames(false)).validating).toBe(true);
    pipe.reset();
    expect(run(pipe, frames(true))).toEqual(alone);
  });

  it('a run cut short (no finish): its flows are dropped, the next run is whole', async () => {
    const { rules } = loadRules(
      'alert tcp any any -> any any (msg:"syn"; flags:S; threshold:type limit, track by_dst, count 1, seconds 60; sid:1;)',
      'x.rules',
    );
    const pcap = `${shared}traces/ndpi-mix-a.pcap`;
    if (!have) return;
    const want = outcome(await runCapture(pcap, rules));
    const pipe = new Pipeline(rules);
    let n = 0;
    for await (const batch of readCaptureBatches(captureStream(pcap)))
      for (const p of batch) if (n++ < 5000) pipe.push(p);
    expect(pipe.engine.flows.stats.flows).toBeGreaterThan(0);
    expect(pipe.engine.stats.alerts).toBeGreaterThan(0);
    pipe.reset();
    expect(pipe.engine.flows.stats.flows).toBe(0);
    expect(Object.values(pipe.engine.stats).every((v) => v === 0)).toBe(true);
    expect(pipe.packets).toBe(0);
    expect(outcome(await runPipeline(pipe, pcap))).toEqual(want);
  }, 60_000);

  it('a result keeps its counts when the pipeline runs again', async () => {
    if (!have) return;
    const { rules } = loadRules('alert tcp any any -> any any (msg:"syn"; flags:S; sid:1;)', 'x.rules');
    const pipe = new Pipeline(rules);
    const a = await runPipeline(pipe, `${shared}traces/ndpi-mix-a.pcap`);
    const packets = a.stats.packets;
    const created = a.flows.created;
    await runPipeline(pipe, `${base}cases/alert-testmyids/input.pcap`);
    expect(a.stats.packets).toBe(packets);
    expect(a.flows.created).toBe(created);
    expect(packets).toBeGreaterThan(1000);
  }, 60_000);
});
