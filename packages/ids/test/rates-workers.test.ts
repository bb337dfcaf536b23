// Thresholds, detection_filter and threshold.config's rate_filter on parallel workers: their counts span
// flows that different workers hold, so the merger takes them in capture order; the alerts, their actions
// and the counts must be those one engine gives. Random rule sets and configs against one engine, and the
// cases where a worker's view of a match differs from the merger's (a pass taking an alert back, a noalert
// match); what workers cannot do is refused, naming the entry or the rule.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  conversationFrames,
  encodePcap,
  loadRules,
  ParallelRunner,
  Pipeline,
  type RunResult,
  runCapture,
  runPipeline,
} from '../src/index.js';
import type { RunOptions } from '../src/run.js';
import { parseThresholdConfig } from '../src/threshold-config.js';
import { tcpFrame } from './helpers.js';

const t0Us = 1_700_000_000_000_000;

/** Each alert as sid@packet:src:action, and the counts thresholds and rate_filters keep. */
function outcome(r: RunResult) {
  const { alerts, alertsSuppressed, alertsRateFiltered, actionsRateFiltered } = r.stats;
  return {
    alerts: r.alerts.map((a) => `${a.sid}@${a.pcapCnt}:${a.src}:${a.action}`),
    stats: { alerts, alertsSuppressed, alertsRateFiltered, actionsRateFiltered },
  };
}

let pools: ParallelRunner[] = [];
let dir = '';
beforeAll(() => {
  pools = [new ParallelRunner(2), new ParallelRunner(3)];
  dir = mkdtempSync(join(tmpdir(), 'ids-rates-'));
});
afterAll(async () => {
  await Promise.all(pools.map((p) => p.close()));
  rmSync(dir, { recursive: true, force: true });
});

/** One engine's outcome over `pcap`, and each pool's (both readers for the first pool). */
async function outcomes(pcap: Uint8Array, ruleText: string, cfg: string, opts: RunOptions = {}) {
  const rules = loadRules(ruleText, 't.rules').rules;
  const all = { ...opts, ...(cfg && { thresholdConfig: parseThresholdConfig(cfg, 'r.config') }) };
  const input = () => Readable.from([Buffer.from(pcap)]);
  // one engine; then the same engine again after a reset (its thresholds and rate_filters from nothing)
  const pipe = new Pipeline(rules, all);
  const one = outcome(await runPipeline(pipe, input()));
  expect(outcome(await runPipeline(pipe, input())), 'the same engine, reset').toEqual(one);
  const many = [];
  for (const p of pools) many.push(outcome(await p.run(input(), rules, all)));
  // the first pool again, each worker reading the capture from a file itself
  const file = join(dir, 'c.pcap');
  writeFileSync(file, pcap);
  const own = await pools[0]!.run(file, rules, { ...all, reader: 'workers' });
  expect(own.phases.reader).toBe(opts.ips ? 'main' : 'workers');
  many.push(outcome(own));
  return { one, many };
}

const hosts = ['10.0.0.1', '10.0.0.3', '192.0.2.1'];

/** 1-`most` conversations, each from one of `hosts` with 1-2 GET requests of `uris`. */
const conversationsArb = (uris: string[], most: number) =>
  fc.array(
    fc.tuple(fc.constantFrom(...hosts), fc.array(fc.constantFrom(...uris), { minLength: 1, maxLength: 2 })),
    { minLength: 1, maxLength: most },
  );

/** A capture of those conversations to 10.0.0.2:80, each request answered, each closed; a second a frame. */
function httpConversations(convs: [string, string[]][]): Uint8Array {
  const frames = convs.flatMap(([client, paths], k) =>
    conversationFrames(
      paths.flatMap((u): [0 | 1, string][] => [
        [0, `GET ${u} HTTP/1.1\r\nHost: a\r\n\r\n`],
        [1, 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'],
      ]),
      { serverPort: 80, client, clientPort: 40_000 + k, fin: true },
    ),
  );
  return encodePcap(frames.map((data, i) => ({ tsUs: t0Us + i * 1e6, data })));
}

describe('thresholds and rate_filter on workers: what one engine gives', () => {
  it('an alert a pass on its packet took back still counted toward its threshold and its rate_filter', async () => {
    // four conversations from one client; the first's URI meets an HTTP pass rule, which (ordered before
    // the alert rules) takes back the alerts its packet raised before it; one engine had counted them
    const frames = [40000, 40001, 40002, 40003].flatMap((cp, k) =>
      conversationFrames(
        [
          [0, `GET /${k === 0 ? 'passme' : 'other'} HTTP/1.1\r\nHost: a\r\n\r\n`],
          [1, 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n'],
        ],
        { serverPort: 80, clientPort: cp },
      ),
    );
    const pcap = encodePcap(frames.map((data, i) => ({ tsUs: t0Us + i * 1e6, data })));
    const rules = [
      'pass http any any -> any any (msg:"p"; content:"/passme"; http_uri; sid:1;)',
      'alert tcp any any -> any 80 (msg:"limit"; flow:to_server; content:"GET"; threshold: type limit, track by_src, count 2, seconds 60; sid:2;)',
      'alert tcp any any -> any 80 (msg:"rated"; flow:to_server; content:"GET"; sid:3;)',
    ].join('\n');
    const cfg =
      'rate_filter gen_id 1, sig_id 3, track by_src, count 2, seconds 60, new_action drop, timeout 0';
    const { one, many } = await outcomes(pcap, rules, cfg);
    expect(one.alerts).toEqual([
      // (each request inspected when acknowledged) the first request's alerts were taken back, but
      // counted: sid 2's limit of 2 is reached by the second, sid 3's rate by the third
      '2@12:10.0.0.1:alert',
      '3@12:10.0.0.1:alert',
      '3@19:10.0.0.1:drop',
      '3@26:10.0.0.1:drop',
    ]);
    expect(one.stats.actionsRateFiltered).toBe(2);
    for (const m of many) expect(m).toEqual(one);
  });

  it("a noalert rule's matches count toward its rate_filter on workers too", async () => {
    const frames = [1, 2, 3].map((i) => ({
      tsUs: t0Us + i * 1e6,
      data: tcpFrame({ src: '10.0.0.1', dst: '10.9.9.9', sp: 20_000 + i, dp: 8080, seq: 1, payload: 'MARK' }),
    }));
    const { one, many } = await outcomes(
      encodePcap(frames),
      'alert tcp-pkt any any -> any 8080 (msg:"quiet"; content:"MARK"; flowbits:noalert; sid:1;)',
      'rate_filter gen_id 1, sig_id 1, track by_rule, count 1, seconds 60, new_action drop, timeout 0',
    );
    expect(one).toEqual({
      alerts: [],
      stats: { alerts: 0, alertsSuppressed: 0, alertsRateFiltered: 0, actionsRateFiltered: 2 },
    });
    for (const m of many) expect(m).toEqual(one);
  });

  it('random rules, thresholds, suppressions and rate_filters over flows from a few hosts: the same alerts, actions and counts', async () => {
    const hosts = ['10.0.0.1', '10.0.0.2', '192.0.2.1'];
    const track = fc.constantFrom('by_src', 'by_dst');
    const ruleArb = fc.record({
      action: fc.constantFrom('alert', 'drop', 'sdrop', 'reject'),
      onlyTen: fc.boolean(),
      noalert: fc.boolean(),
      gate: fc.option(
        fc.oneof(
          fc
            .tuple(fc.constantFrom('limit', 'threshold', 'both'), track, fc.integer({ min: 1, max: 3 }))
            .map(([t, by, n]) => `threshold: type ${t}, track ${by}, count ${n}, seconds 10;`),
          fc
            .tuple(track, fc.integer({ min: 1, max: 3 }))
            .map(([by, n]) => `detection_filter: track ${by}, count ${n}, seconds 10;`),
        ),
        { nil: undefined },
      ),
    });
    const rateArb = fc.record({
      sid: fc.integer({ min: 0, max: 4 }),
      track: fc.constantFrom('by_src', 'by_dst', 'by_rule', 'by_both'),
      count: fc.integer({ min: 1, max: 3 }),
      seconds: fc.integer({ min: 1, max: 20 }),
      action: fc.constantFrom('alert', 'drop', 'sdrop', 'reject', 'log'),
      timeout: fc.integer({ min: 0, max: 10 }),
      applyTo: fc.boolean(),
    });
    await fc.assert(
      fc.asyncProperty(
        fc.array(ruleArb, { minLength: 1, maxLength: 4 }),
        fc.uniqueArray(rateArb, { selector: (r) => r.sid, maxLength: 3 }),
        fc.option(fc.tuple(fc.integer({ min: 1, max: 4 }), fc.constantFrom(...hosts)), { nil: undefined }),
        fc.array(
          fc.tuple(fc.integer({ min: 0, max: 4 }), fc.constantFrom(...hosts), fc.constantFrom(...hosts)),
          { minLength: 1, maxLength: 30 },
        ),
        async (rules, rates, suppress, packets) => {
          const ruleText = rules
            .map(
              (r, i) =>
                `${r.action} tcp-pkt ${r.onlyTen ? '10.0.0.0/8' : 'any'} any -> any 8080 (msg:"r${i + 1}"; content:"MARK"; ${r.noalert ? 'flowbits:noalert; ' : ''}${r.gate ?? ''} sid:${i + 1};)`,
            )
            .join('\n');
          const cfg = [
            ...rates.map(
              (r) =>
                `rate_filter gen_id 1, sig_id ${r.sid}, track ${r.track}, count ${r.count}, seconds ${r.seconds}, new_action ${r.action}, timeout ${r.timeout}${r.applyTo && (r.track === 'by_src' || r.track === 'by_dst') ? ', apply_to [10.0.0.0/8]' : ''}`,
            ),
            ...(suppress
              ? [`suppress gen_id 1, sig_id ${suppress[0]}, track by_src, ip ${suppress[1]}`]
              : []),
          ].join('\n');
          // each packet a flow of its own (its source port), so the flows spread over the workers
          let s = 0;
          const frames = packets.map(([step, src, dst], i) => {
            s += step;
            const data = tcpFrame({ src, dst, sp: 20_000 + i, dp: 8080, seq: 1, payload: 'MARK' });
            return { tsUs: t0Us + s * 1e6 + i, data };
          });
          const { one, many } = await outcomes(encodePcap(frames), ruleText, cfg);
          for (const m of many) expect(m).toEqual(one);
        },
      ),
      { numRuns: Number(process.env.RATES_RUNS ?? 40) },
    );
  }, 120_000);

  it('random HTTP conversations, pass rules and stream, HTTP and packet rules with thresholds and rate_filters: the same', async () => {
    const uris = ['/a', '/passme', '/b?x=1', '/a/passme'];
    const gate = fc.option(
      fc
        .tuple(
          fc.constantFrom('limit', 'threshold', 'both'),
          fc.constantFrom('by_src', 'by_dst'),
          fc.integer({ min: 1, max: 3 }),
        )
        .map(([t, by, n]) => `threshold: type ${t}, track ${by}, count ${n}, seconds 30; `),
      { nil: '' },
    );
    // the rule pool: sid i+1 is pool[i] with a gate where it takes one (pass rules take none)
    const pool: ((g: string) => string)[] = [
      () => 'pass http any any -> any any (msg:"p"; content:"passme"; http_uri; sid:1;)',
      (g) => `alert tcp any any -> any 80 (msg:"get"; flow:to_server; content:"GET"; ${g}sid:2;)`,
      (g) => `alert http any any -> any any (msg:"uri a"; content:"/a"; http_uri; ${g}sid:3;)`,
      (g) => `alert tcp-pkt any any -> any 80 (msg:"pkt"; content:"HTTP/1.1"; ${g}sid:4;)`,
      (g) => `alert tcp any 80 -> any any (msg:"ok"; flow:to_client; content:"200 OK"; ${g}sid:5;)`,
      () => 'alert tcp any any -> any 80 (msg:"q"; flow:to_server; content:"x=1"; flowbits:noalert; sid:6;)',
      () => 'pass tcp-pkt 192.0.2.1 any -> any 80 (msg:"pp"; content:"/b"; sid:7;)',
    ];
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(fc.boolean(), gate), { minLength: pool.length, maxLength: pool.length }),
        fc.uniqueArray(
          fc.record({
            sid: fc.constantFrom(2, 3, 4, 5, 6),
            track: fc.constantFrom('by_src', 'by_dst', 'by_rule', 'by_both'),
            count: fc.integer({ min: 1, max: 3 }),
            action: fc.constantFrom('drop', 'sdrop', 'reject', 'alert', 'log'),
            timeout: fc.integer({ min: 0, max: 20 }),
          }),
          { selector: (r) => r.sid, maxLength: 3 },
        ),
        conversationsArb(uris, 6),
        async (chosen, rates, convs) => {
          const ruleText = pool
            .map((r, i) => (chosen[i]![0] ? r(chosen[i]![1]) : ''))
            .filter((r) => r !== '')
            .join('\n');
          if (ruleText === '') return;
          const cfg = rates
            .map(
              (r) =>
                `rate_filter gen_id 1, sig_id ${r.sid}, track ${r.track}, count ${r.count}, seconds 30, new_action ${r.action}, timeout ${r.timeout}`,
            )
            .join('\n');
          const pcap = httpConversations(convs);
          const { one, many } = await outcomes(pcap, ruleText, cfg);
          for (const m of many) expect(m).toEqual(one);
        },
      ),
      { numRuns: Number(process.env.RATES_RUNS ?? 40) },
    );
  }, 120_000);

  it('IPS, random drop, reject, pass and alert rules (thresholds on the alerting ones) over HTTP conversations: the same packets passed, verdicts and alerts', async () => {
    const uris = ['/a', '/passme', '/b?x=1', '/drop/a'];
    const acting = fc.constantFrom('drop', 'reject', 'sdrop', 'alert', 'pass');
    const pool: ((action: string, g: string) => string)[] = [
      (a) => `${a} http any any -> any any (msg:"uri"; content:"passme"; http_uri; sid:1;)`,
      (a, g) => `${a} tcp any any -> any 80 (msg:"get"; flow:to_server; content:"GET"; ${g}sid:2;)`,
      (a, g) => `${a} http any any -> any any (msg:"drop uri"; content:"/drop"; http_uri; ${g}sid:3;)`,
      (a, g) => `${a} tcp-pkt 192.0.2.1 any -> any 80 (msg:"pkt"; content:"x=1"; ${g}sid:4;)`,
      (a, g) => `${a} tcp any 80 -> any any (msg:"ok"; flow:to_client; content:"200 OK"; ${g}sid:5;)`,
    ];
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.tuple(
            fc.boolean(),
            acting,
            fc.option(fc.constantFrom('limit', 'threshold', 'both'), { nil: undefined }),
          ),
          { minLength: pool.length, maxLength: pool.length },
        ),
        conversationsArb(uris, 5),
        async (chosen, convs) => {
          const ruleText = pool
            .map((r, i) => {
              const [on, action, t] = chosen[i]!;
              // a gate only on rules whose action does not act (those are refused on workers)
              const g =
                t && action === 'alert' ? `threshold: type ${t}, track by_src, count 2, seconds 30; ` : '';
              return on ? r(action, g) : '';
            })
            .filter((r) => r !== '')
            .join('\n');
          if (ruleText === '') return;
          const rules = loadRules(ruleText, 't.rules').rules;
          const pcap = httpConversations(convs);
          const input = () => Readable.from([Buffer.from(pcap)]);
          const one = await runCapture(input(), rules, { ips: true, out: join(dir, 'one.pcap') });
          for (const [i, p] of pools.entries()) {
            const out = join(dir, `many-${i}.pcap`);
            const many = await p.run(input(), rules, { ips: true, out });
            expect(outcome(many)).toEqual(outcome(one));
            expect(many.verdicts).toEqual(one.verdicts);
            expect(readFileSync(out).equals(readFileSync(join(dir, 'one.pcap')))).toBe(true);
          }
        },
      ),
      { numRuns: Number(process.env.RATES_RUNS ?? 30) },
    );
  }, 120_000);

  it('refused where a worker would act before the count: a rate_filter to pass, a pass rule under one, IPS', async () => {
    const pcap = encodePcap([]);
    const mark = 'alert tcp-pkt any any -> any 8080 (msg:"m"; content:"MARK"; sid:1;)';
    const rate = (action: string) =>
      `rate_filter gen_id 1, sig_id 0, track by_rule, count 1, seconds 10, new_action ${action}, timeout 0`;
    await expect(outcomes(pcap, mark, `# site\n${rate('pass')}`)).rejects.toThrow(
      'r.config:2: rate_filter new_action pass needs one engine',
    );
    await expect(
      outcomes(pcap, 'pass tcp-pkt any any -> any 8080 (msg:"m"; content:"MARK"; sid:1;)', rate('alert')),
    ).rejects.toThrow('rule 1:1: a rate_filter from or to pass needs one engine');
    await expect(outcomes(pcap, mark, rate('drop'), { ips: true })).rejects.toThrow(
      'r.config:1: rate_filter with IPS needs one engine',
    );
    // on one thread all three run
    for (const [text, action, ips] of [
      [mark, 'pass', false],
      [mark, 'drop', true],
    ] as const) {
      const r = await runCapture(Readable.from([Buffer.from(pcap)]), loadRules(text, 't').rules, {
        ips,
        thresholdConfig: parseThresholdConfig(rate(action), 'r.config'),
      });
      expect(r.rulesLoaded).toBe(1);
    }
  });
});

describe('the end-of-input flush on workers', () => {
  it("alerts of flows still open at the end come in one engine's order (flows by last packet), thresholds and all", async () => {
    // 24 flows from 3 clients, each sending 'MARK' that the server never acknowledges: inspected only by
    // the end-of-input flush, flow by flow; their last packets in an order unlike their first ones
    const frames: { tsUs: number; data: Uint8Array }[] = [];
    const flows = Array.from({ length: 24 }, (_, f) => ({
      src: ['10.0.0.1', '10.0.0.2', '10.0.0.3'][f % 3]!,
      sp: 30_000 + f,
    }));
    for (const c of flows) {
      const C = { src: c.src, dst: '10.9.9.9', sp: c.sp, dp: 8080 };
      const S = { src: C.dst, dst: C.src, sp: C.dp, dp: C.sp };
      frames.push({ data: tcpFrame({ ...C, flags: 0x02, seq: 99 }), tsUs: 0 });
      frames.push({ data: tcpFrame({ ...S, flags: 0x12, seq: 499, ack: 100 }), tsUs: 0 });
      frames.push({ data: tcpFrame({ ...C, flags: 0x10, seq: 100, ack: 500 }), tsUs: 0 });
    }
    for (const k of [5, 17, 2, 23, 11, 0, 8, 14, 20, 3, 9, 1, 22, 6, 15, 12, 19, 4, 21, 7, 10, 13, 16, 18]) {
      const c = flows[k]!;
      const C = { src: c.src, dst: '10.9.9.9', sp: c.sp, dp: 8080 };
      frames.push({
        data: tcpFrame({ ...C, flags: 0x18, seq: 100, ack: 500, payload: `MARK ${k}` }),
        tsUs: 0,
      });
    }
    frames.forEach((f, i) => {
      f.tsUs = t0Us + i * 1000;
    });
    const rules = [
      'alert tcp any any -> any 8080 (msg:"all"; flow:to_server; content:"MARK"; sid:1;)',
      'alert tcp any any -> any 8080 (msg:"one per client"; flow:to_server; content:"MARK"; threshold: type limit, track by_src, count 1, seconds 60; sid:2;)',
    ].join('\n');
    const { one, many } = await outcomes(encodePcap(frames), rules, '');
    const flushed = one.alerts.filter((a) => a.startsWith('1@'));
    expect(flushed).toHaveLength(24);
    for (const m of many) expect(m).toEqual(one);
  });
});
