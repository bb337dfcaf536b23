import { execFileSync } from 'node:child_process';
import {
  appendFileSync,
  createWriteStream,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { captureIo, runCommand } from '@strata/cli';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type Alert,
  commands,
  Engine,
  encodePcap,
  heldPacketsMax,
  loadRules,
  ParallelRunner,
  parseRules,
  type Rule,
  runCapture,
} from '../src/index.js';
import { sameEngines } from '../src/parallel.js';
import { FlowSharder } from '../src/shard.js';
import { alertLine, caseOptions, fragments, type ManifestCase, pkt, sharedIds, tcpFrame } from './helpers.js';

const { shared, have } = sharedIds('suricata-verify/manifest.json');
const base = `${shared}suricata-verify/`;

it("FlowSharder: a packet of one of the last two flows routed gets that flow's worker without a hash, the worker the hash gives (property)", () => {
  const endpoint = fc.tuple(
    fc.constantFrom('10.0.0.1', '10.0.0.2', '192.0.2.7'),
    fc.constantFrom(53, 80, 40000, 40001),
  );
  const flow = fc.tuple(endpoint, endpoint, fc.constantFrom(6, 17));
  fc.assert(
    fc.property(
      fc.uniqueArray(flow, { minLength: 1, maxLength: 5, selector: (f) => JSON.stringify(f) }),
      fc.array(fc.tuple(fc.nat(), fc.boolean()), { minLength: 1, maxLength: 60 }),
      fc.integer({ min: 2, max: 5 }),
      fc.uint8Array({ minLength: 32, maxLength: 32 }),
      (flows, picks, workers, key) => {
        const kept = new FlowSharder(workers, key, undefined);
        for (const [i, back] of picks) {
          const [[a, ap], [b, bp], proto] = flows[i % flows.length]!;
          // either direction: both go to one worker
          const d = back
            ? pkt({ src: b, sp: bp, dst: a, dp: ap, proto })
            : pkt({ src: a, sp: ap, dst: b, dp: bp, proto });
          // a new sharder remembers nothing: its answer is the hash's
          expect(kept.of(d)).toBe(new FlowSharder(workers, key, undefined).of(d));
        }
      },
    ),
    { numRuns: 200 },
  );
});

it('sameEngines: workers that loaded different rules fail the run (its totals came from worker 0 alone)', () => {
  const ready = (loaded: number, sids: number[]) =>
    ({
      type: 'ready',
      loaded,
      skipped: sids.map((sid) => ({ sid, reason: 'r' })),
      warnings: [] as string[],
      initMs: 0,
      initCpuMs: 0,
      spare: false,
      spareCpuMs: 0,
    }) as const;
  expect(() => sameEngines([ready(3, [7]), ready(3, [7]), ready(3, [7])])).not.toThrow();
  expect(() => sameEngines([ready(3, [7]), ready(3, [7]), ready(2, [7, 8])])).toThrow(
    'workers built different engines from the same rules: worker 0 loaded 3 (1 skipped), worker 2 loaded 2 (2 skipped)',
  );
  // the same count with other rules skipped is a difference too
  expect(() => sameEngines([ready(3, [7]), ready(3, [9])])).toThrow(/worker 1 loaded 3 \(1 skipped\)/);
});

describe.runIf(have)('parallel workers: the same alerts as one engine', () => {
  const pools: ParallelRunner[] = [];
  beforeAll(() => {
    pools.push(new ParallelRunner(2), new ParallelRunner(4));
  });
  afterAll(async () => {
    await Promise.all(pools.map((p) => p.close()));
  });

  it('every suricata-verify case with 1, 2 and 4 workers, alerts in capture order; IPS cases pass on the same packets', async () => {
    const m = JSON.parse(readFileSync(`${base}manifest.json`, 'utf8')) as { cases: ManifestCase[] };
    const dir = mkdtempSync(join(tmpdir(), 'ids-parallel-ips-'));
    let alerts = 0;
    let dropped = 0;
    try {
      for (const c of m.cases) {
        const { rules } = loadRules(readFileSync(base + c.rules, 'utf8'), c.rules);
        const opts = caseOptions(c);
        const file = (k: number) => join(dir, `${c.name.replace(/[^\w-]/g, '_')}-${k}.pcap`);
        const out = (k: number) => (c.ips ? { out: file(k) } : {});
        const one = await runCapture(base + c.pcap, rules, { ...opts, ...out(1) });
        const want = one.alerts.map(alertLine).sort();
        alerts += want.length;
        dropped += one.verdicts?.dropped ?? 0;
        for (const pool of pools) {
          const r = await pool.run(base + c.pcap, rules, { ...opts, ...out(pool.workers) });
          expect(r.alerts.map(alertLine).sort(), `${c.name} with ${pool.workers} workers`).toEqual(want);
          if (c.ips) {
            // the same verdicts, and the same packets passed on, byte for byte and in capture order
            expect(r.verdicts, `${c.name} verdicts with ${pool.workers} workers`).toEqual(one.verdicts);
            expect(
              readFileSync(file(pool.workers)).equals(readFileSync(file(1))),
              `${c.name} pcap with ${pool.workers} workers`,
            ).toBe(true);
          }
          // capture order: packet numbers never go back (flushes at the end come last)
          const cnt = r.alerts.map((a) => a.pcapCnt ?? 0);
          for (let i = 1; i < cnt.length; i++) expect(cnt[i]!).toBeGreaterThanOrEqual(cnt[i - 1]!);
          expect(r.packets).toBe(one.packets);
          expect(r.workers.reduce((n, w) => n + w.packets, 0)).toBeLessThanOrEqual(one.packets);
        }
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    expect(alerts).toBeGreaterThan(100);
    expect(dropped).toBeGreaterThan(10); // the IPS cases drop packets: the comparison above means something
  }, 90_000);

  it('the community HTTP rules on ndpi-mix-a.pcap: the same alerts on 2 workers, load spread', async () => {
    const set = parseRules(readFileSync(`${shared}rules/snort3-community.rules`, 'utf8'), 'community');
    const e = new Engine(set.rules);
    const httpSids = new Set(e.compiled.filter((c) => c.mode === 'http').map((c) => c.rule.sid));
    // the HTTP rules and a threshold rule whose state spans flows (decided on the main thread)
    const rules: Rule[] = [
      ...set.rules.filter((r) => httpSids.has(r.sid)),
      ...loadRules(
        'alert tcp any any -> any any (msg:"syn"; flags:S; threshold:type limit, track by_dst, count 3, seconds 60; sid:9000001;)',
        'extra.rules',
      ).rules,
    ];
    const pcap = `${shared}traces/ndpi-mix-a.pcap`;
    const one = await runCapture(pcap, rules, { validateChecksums: 'auto' });
    const two = await pools[0]!.run(pcap, rules, { validateChecksums: 'auto' });
    expect(two.alerts.map(alertLine).sort()).toEqual(one.alerts.map(alertLine).sort());
    expect(one.alerts.filter((a) => a.sid === 9000001).length).toBeGreaterThan(10);
    expect(two.stats.httpRequests).toBe(one.stats.httpRequests);
    // past the 'auto' sample the workers check the transport checksums (the main thread left them)
    expect(one.stats.badChecksums).toBeGreaterThan(1000);
    expect(two.stats.badChecksums).toBe(one.stats.badChecksums);
    for (const w of two.workers) expect(w.packets).toBeGreaterThan(one.packets / 5);
  }, 55_000);

  it('IPS on ndpi-mix-a.pcap (more packets than are held for verdicts at once): the same pcap out on 2 workers', async () => {
    const pcap = `${shared}traces/ndpi-mix-a.pcap`;
    const { rules } = loadRules(
      [
        'drop tcp any any -> any any (msg:"GET"; flow:to_server; content:"GET "; depth:4; sid:9000002;)',
        'reject udp any any -> any 53 (msg:"dns"; content:"|01 00 00 01|"; offset:2; depth:4; sid:9000003;)',
      ].join('\n'),
      'ips.rules',
    );
    const dir = mkdtempSync(join(tmpdir(), 'ids-parallel-ndpi-'));
    try {
      const opts = { ips: true, streamRelease: 'immediate' as const, validateChecksums: 'auto' as const };
      const one = await runCapture(pcap, rules, { ...opts, out: join(dir, '1.pcap') });
      const two = await pools[0]!.run(pcap, rules, { ...opts, out: join(dir, '2.pcap') });
      expect(one.packets).toBeGreaterThan(heldPacketsMax);
      expect(one.verdicts!.dropped).toBeGreaterThan(100);
      expect(one.verdicts!.responses).toBeGreaterThan(10);
      expect(two.verdicts).toEqual(one.verdicts);
      expect(readFileSync(join(dir, '2.pcap')).equals(readFileSync(join(dir, '1.pcap')))).toBe(true);
      expect(two.alerts.map(alertLine).sort()).toEqual(one.alerts.map(alertLine).sort());
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);

  it('strata ids --workers 2: the same alert lines, per-worker load in the stats', async () => {
    const { mkdtempSync, rmSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const dir = mkdtempSync(`${tmpdir()}/ids-workers-`);
    try {
      const args = [
        '--rules',
        `${base}cases/alert-testmyids/test.rules`,
        '--pcap',
        `${base}cases/alert-testmyids/input.pcap`,
      ];
      const one = captureIo();
      expect(await runCommand(commands[0]!, [...args, '--quiet'], one.io)).toBe(0);
      const two = captureIo();
      expect(
        await runCommand(
          commands[0]!,
          [...args, '--workers', '2', '--ordered', '--stats', `${dir}/s.json`],
          two.io,
        ),
      ).toBe(0);
      expect(two.stdout()).toBe(one.stdout());
      // the capture as a plain argument, as `snort -r` users type it: the same alerts
      const bare = captureIo();
      expect(
        await runCommand(
          commands[0]!,
          ['--rules', args[1]!, `${base}cases/alert-testmyids/input.pcap`, '--quiet'],
          bare.io,
        ),
      ).toBe(0);
      expect(bare.stdout()).toBe(one.stdout());
      const stats = JSON.parse(readFileSync(`${dir}/s.json`, 'utf8'));
      expect(stats.workers).toHaveLength(2);
      expect(stats.workers[0].packets + stats.workers[1].packets).toBe(10);
      expect(await runCommand(commands[0]!, [...args, '--workers', '0'], captureIo().io)).toBe(2);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 30_000);
});

/**
 * 30 TCP sessions, then 1,200 more packets (one in three sent as two fragments): one in `badEvery` with
 * a bad checksum, TCP or (unfragmented) the IP header's.
 */
function checksumCapture(badEvery: number): Buffer {
  const frames: Uint8Array[] = [];
  const seq: number[] = [];
  for (let c = 0; c < 30; c++) {
    const cp = 40000 + c;
    frames.push(tcpFrame({ sp: cp, flags: 0x02, seq: 999 }));
    frames.push(
      tcpFrame({ src: '10.0.0.2', dst: '10.0.0.1', sp: 80, dp: cp, flags: 0x12, seq: 4999, ack: 1000 }),
    );
    frames.push(tcpFrame({ sp: cp, flags: 0x10, seq: 1000, ack: 5000 }));
    seq.push(1000);
  }
  for (let k = 1, bad = 0; k <= 1200; k++) {
    const c = (k * 7) % 30;
    const payload = `GET /${k} HTTP/1.1\r\nHost: evil${k % 5}\r\n\r\n${'A'.repeat(k % 50)}`;
    const f = tcpFrame({ sp: 40000 + c, flags: 0x18, seq: seq[c]!, ack: 5000, payload });
    const kind = k % badEvery === 0 ? bad++ % 3 : -1;
    const fragmented = k % 3 === 1;
    if (kind === -1) seq[c]! += payload.length;
    // a fragment's IP header checksum is not its datagram's: a fragmented one gets a bad TCP checksum
    if (kind === 0 || kind === 1 || (kind === 2 && fragmented)) f[50]! ^= 1;
    else if (kind === 2) f[24]! ^= 1;
    if (fragmented) frames.push(...fragments(f, k));
    else frames.push(f);
  }
  return encodePcap(frames.map((data, i) => ({ tsUs: i * 1000, data })));
}

describe('parallel workers: bad checksums as on one thread', () => {
  it('counted and inspected alike, fragments included, with all, auto (either way) and none; the same IPS verdicts and pcap; IDS with either reader', async () => {
    const pool = new ParallelRunner(2);
    const dir = mkdtempSync(join(tmpdir(), 'ids-parallel-checksums-'));
    const { rules } = loadRules(
      [
        'alert tcp any any -> any 80 (msg:"evil3"; content:"evil3"; sid:1;)',
        'drop tcp any any -> any 80 (msg:"evil4"; flow:established; content:"evil4"; sid:2;)',
        'alert http any any -> any any (msg:"host evil1"; http.host; content:"evil1"; sid:3;)',
      ].join('\n'),
      'c.rules',
    );
    try {
      for (const [badEvery, validating] of [
        [20, true], // 5% bad: auto keeps validating
        [5, false], // 20% bad: auto stops after its sample
      ] as const) {
        const pcap = join(dir, `c${badEvery}.pcap`);
        writeFileSync(pcap, checksumCapture(badEvery));
        for (const v of [true, 'auto', false] as const) {
          const opts = (out: string) => ({
            validateChecksums: v,
            ips: true,
            streamRelease: 'immediate' as const,
            out: join(dir, out),
          });
          const one = await runCapture(pcap, rules, opts('one.pcap'));
          const two = await pool.run(pcap, rules, opts('two.pcap'));
          const what = `1 in ${badEvery} bad, validation ${v}`;
          const bad = 1200 / badEvery;
          // auto off after its sample: only the sample's bad packets are counted
          if (v === 'auto' && !validating) expect(one.stats.badChecksums, what).toBeLessThan(bad);
          else expect(one.stats.badChecksums, what).toBe(v === false ? 0 : bad);
          expect(two.stats.badChecksums, what).toBe(one.stats.badChecksums);
          expect(two.alerts.map(alertLine).sort(), what).toEqual(one.alerts.map(alertLine).sort());
          expect(two.verdicts, what).toEqual(one.verdicts);
          expect(readFileSync(join(dir, 'two.pcap')).equals(readFileSync(join(dir, 'one.pcap'))), what).toBe(
            true,
          );
          expect(one.verdicts!.dropped, what).toBeGreaterThan(0);
          // IDS: each worker reads the capture itself; or the main thread reads it and sends batches
          const ids = await runCapture(pcap, rules, { validateChecksums: v });
          for (const reader of ['workers', 'main'] as const) {
            const r = await pool.run(pcap, rules, { validateChecksums: v, reader });
            expect(r.phases.reader).toBe(reader);
            expect(r.stats.badChecksums, `${what}, IDS, ${reader} reading`).toBe(one.stats.badChecksums);
            expect(r.alerts.map(alertLine).sort(), `${what}, IDS, ${reader} reading`).toEqual(
              ids.alerts.map(alertLine).sort(),
            );
            expect(r.defrag).toEqual(ids.defrag);
            expect(r.defrag!.reassembled).toBe(400);
          }
        }
      }
    } finally {
      await pool.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 30_000);
});

describe('parallel workers: who reads the capture', () => {
  it("a regular file is read by each worker with reader 'workers', by the main thread by default; a pipe always by the main thread: the same alerts", async () => {
    const pool = new ParallelRunner(2);
    const dir = mkdtempSync(join(tmpdir(), 'ids-parallel-fifo-'));
    try {
      const { rules } = loadRules(
        [
          'alert tcp any any -> any 80 (msg:"evil3"; content:"evil3"; sid:1;)',
          'alert http any any -> any any (msg:"host evil1"; http.host; content:"evil1"; sid:3;)',
        ].join('\n'),
        'c.rules',
      );
      const bytes = checksumCapture(20);
      const file = join(dir, 'c.pcap');
      writeFileSync(file, bytes);
      const want = (await runCapture(file, rules)).alerts.map(alertLine).sort();
      expect(want.length).toBeGreaterThan(100);
      const r = await pool.run(file, rules, { reader: 'workers' });
      expect(r.phases.reader).toBe('workers');
      expect(r.alerts.map(alertLine).sort()).toEqual(want);
      const d = await pool.run(file, rules);
      expect(d.phases.reader).toBe('main');
      expect(d.alerts.map(alertLine).sort()).toEqual(want);
      // a pipe cannot be read by two readers: the main thread reads it and sends the packets
      const fifo = join(dir, 'c.fifo');
      execFileSync('mkfifo', [fifo]);
      const w = createWriteStream(fifo);
      const written = new Promise<void>((res, rej) => w.on('close', () => res()).on('error', rej));
      w.end(bytes);
      const p = await pool.run(fifo, rules, { reader: 'workers' });
      await written;
      expect(p.phases.reader).toBe('main');
      expect(p.alerts.map(alertLine).sort()).toEqual(want);
      expect(p.packets).toBe(r.packets);
    } finally {
      await pool.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 30_000);

  it("reader 'workers' on a file renamed over during the run: every worker reads the file that was there when it started", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ids-parallel-renamed-'));
    const { rules } = loadRules(
      [
        'alert tcp any any -> any 80 (msg:"evil3"; content:"evil3"; sid:1;)',
        'alert tcp any any -> any 80 (msg:"late"; content:"late"; sid:4;)',
      ].join('\n'),
      'c.rules',
    );
    // a fresh pool: its workers are still starting when the path changes, so none has opened it yet
    const pool = new ParallelRunner(2);
    try {
      const bytes = checksumCapture(20);
      const file = join(dir, 'c.pcap');
      const copy = join(dir, 'c0.pcap');
      const other = join(dir, 'other.pcap');
      writeFileSync(file, bytes);
      writeFileSync(copy, bytes);
      // another capture, larger, under the same path once the run has started (a rotated capture file)
      writeFileSync(
        other,
        encodePcap(
          Array.from({ length: 3000 }, (_, i) => ({
            tsUs: i,
            data: tcpFrame({ sp: 41000 + (i % 500), flags: 0x18, payload: `late ${i}` }),
          })),
        ),
      );
      const running = pool.run(file, rules, { reader: 'workers' });
      renameSync(other, file);
      const r = await running;
      expect(r.phases.reader).toBe('workers');
      const main = await pool.run(copy, rules);
      const at = (x: { alerts: Alert[] }) => x.alerts.map((a) => `${a.pcapCnt} ${alertLine(a)}`);
      expect(r.packets).toBe(main.packets);
      expect(r.truncated).toBeUndefined();
      expect(at(r)).toEqual(at(main));
      expect(at(r).length).toBeGreaterThan(100);
    } finally {
      await pool.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 30_000);

  it("reader 'workers' on a file that grows during the run: every worker reads up to its size at the start, the alerts those of the main thread, in the same order", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ids-parallel-grow-'));
    const { rules } = loadRules(
      [
        'alert tcp any any -> any 80 (msg:"evil3"; content:"evil3"; sid:1;)',
        'alert http any any -> any any (msg:"host evil1"; http.host; content:"evil1"; sid:3;)',
        'alert tcp any any -> any 80 (msg:"late"; content:"late"; sid:4;)',
      ].join('\n'),
      'c.rules',
    );
    // a fresh pool: its workers are still starting when the file grows, so none has read it yet
    const pool = new ParallelRunner(3);
    try {
      const bytes = checksumCapture(20);
      const file = join(dir, 'c.pcap');
      writeFileSync(file, bytes);
      // more records, the last one cut: read past the size at the start, they would add packets, alerts
      // and a cut; read up to it by some workers only, they would be routed unlike on the others
      const more = encodePcap(
        Array.from({ length: 40 }, (_, i) => ({
          tsUs: 5_000_000 + i,
          data: tcpFrame({ sp: 41000 + i, flags: 0x18, payload: `late ${i}` }),
        })),
      ).subarray(24);
      const copy = join(dir, 'c0.pcap');
      writeFileSync(copy, bytes);
      const running = pool.run(file, rules, { reader: 'workers' });
      appendFileSync(file, more.subarray(0, more.length - 10));
      const r = await running;
      expect(r.phases.reader).toBe('workers');
      const grown = await runCapture(file, rules);
      expect(grown.truncated).toBeDefined();
      expect(grown.packets).toBe(r.packets + 39);
      // the capture as it was: the same packets, no cut, and the main thread's alerts in the same order
      const main = await pool.run(copy, rules);
      expect(main.phases.reader).toBe('main');
      const at = (x: { alerts: Alert[] }) => x.alerts.map((a) => `${a.pcapCnt} ${alertLine(a)}`);
      expect(r.packets).toBe(main.packets);
      expect(r.truncated).toBeUndefined();
      expect(at(r)).toEqual(at(main));
      expect(at(r).length).toBeGreaterThan(100);
      expect(r.workers.map((w) => w.packets)).toEqual(main.workers.map((w) => w.packets));
    } finally {
      await pool.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 30_000);
});

describe('parallel workers: flows time out at the packet they do on one engine', () => {
  const rules = loadRules(
    'alert tcp-stream any any -> any 80 (msg:"evil"; flow:to_server; content:"evil"; sid:1;)',
    't',
  ).rules;
  const opts = { flowTimeouts: { tcpNewUs: 10e6, tcpEstablishedUs: 10e6, tcpClosedUs: 10e6 } };
  const t0 = 1_700_000_000_000_000;
  /**
   * Four connections to port 80 from 10.0.i.1:4000i, each with data its server never acknowledges (so not
   * inspected until the flow ends: a timeout flush alerts), connection i's data sent at `dataUs(i)`.
   */
  const stalled = (dataUs: (i: number) => number) => {
    const frames: { tsUs: number; data: Uint8Array }[] = [];
    const at = (us: number, f: Uint8Array) => frames.push({ tsUs: t0 + us, data: f });
    for (let i = 0; i < 4; i++) {
      const C = { src: `10.0.${i}.1`, dst: '10.0.9.2', sp: 40_000 + i, dp: 80 };
      const S = { src: C.dst, dst: C.src, sp: 80, dp: C.sp };
      at(10 * i, tcpFrame({ ...C, flags: 0x02, seq: 1000 }));
      at(10 * i + 1, tcpFrame({ ...S, flags: 0x12, seq: 5000, ack: 1001 }));
      at(10 * i + 2, tcpFrame({ ...C, flags: 0x10, seq: 1001, ack: 5001 }));
      at(dataUs(i), tcpFrame({ ...C, flags: 0x10, seq: 1001, ack: 5001, payload: `evil ${i}` }));
    }
    return { frames, at };
  };

  it("every worker sweeps its table at every packet: flushed alerts on the same packet, in the sweep's order, with either reader", async () => {
    // then 20 s of quiet, then a SYN of each of 8 other hosts (spread over the workers by their hash): one
    // engine's sweep flushes the four (idle past the 10 s timeout) before the first of them, oldest first
    const { frames, at } = stalled((i) => 10 * i + 3);
    for (let j = 0; j < 8; j++)
      at(
        20e6 + j,
        tcpFrame({ src: `10.1.${j}.1`, dst: '10.1.9.2', sp: 50_000, dp: 53, flags: 0x02, seq: 1 }),
      );
    const pcap = encodePcap(frames);
    const one = await runCapture(Readable.from([pcap]), rules, opts);
    // the four flushes on the first packet after the quiet (number 17), in the order of the flows' last packets
    expect(one.alerts.map((a) => `${a.pcapCnt} ${a.src}:${a.srcPort} ${a.pktSrc}`)).toEqual(
      [0, 1, 2, 3].map((i) => `17 10.0.${i}.1:${40_000 + i} stream (flow timeout)`),
    );
    const dir = mkdtempSync(join(tmpdir(), 'ids-ticks-'));
    try {
      const file = join(dir, 'quiet.pcap');
      writeFileSync(file, pcap);
      for (const workers of [2, 4]) {
        const pool = new ParallelRunner(workers);
        try {
          for (const reader of ['main', 'workers'] as const) {
            const r = await pool.run(file, rules, { ...opts, reader });
            expect(r.alerts.map(alertLine), `${workers} workers, reader ${reader}`).toEqual(
              one.alerts.map(alertLine),
            );
          }
        } finally {
          await pool.close();
        }
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the ticks of a long run of one flow (more than a batch holds, for several workers at once) all arrive', async () => {
    // then 12,000 packets of one other connection, 1 ms apart: the four time out one by one along it
    const { frames, at } = stalled((i) => 10 * i + 3 + 1000 * i);
    const G = { src: '10.2.0.1', dst: '10.2.0.2', sp: 50_000, dp: 8080 };
    for (let k = 0; k < 12_000; k++)
      at(10_000 + 1000 * k, tcpFrame({ ...G, flags: 0x10, seq: 1 + k, ack: 1 }));
    const pcap = encodePcap(frames);
    const one = await runCapture(Readable.from([pcap]), rules, opts);
    expect(one.alerts.map((a) => a.pktSrc)).toEqual(new Array(4).fill('stream (flow timeout)'));
    expect(one.alerts.map((a) => a.pcapCnt)).toEqual([10_008, 10_009, 10_010, 10_011]);
    const pool = new ParallelRunner(4);
    try {
      const r = await pool.run(Readable.from([pcap]), rules, opts);
      expect(r.alerts.map(alertLine)).toEqual(one.alerts.map(alertLine));
    } finally {
      await pool.close();
    }
  });
});

describe('parallel workers: the bounds hold for the process', () => {
  it('the flow table and the reassembly memcap are shared out among the workers: their peaks add up to one engine’s bound', async () => {
    // 60 flows from 10.0.0.1, each a handshake then 6 KiB in 3 segments the server never acknowledges:
    // with `ack` release every byte stays buffered, 360 KiB against a memcap of 96 KiB
    const frames: { tsUs: number; data: Uint8Array }[] = [];
    for (let f = 0; f < 60; f++) {
      const c = { src: '10.0.0.1', dst: '10.0.0.2', sp: 30_000 + f, dp: 8000 };
      const s = { src: c.dst, dst: c.src, sp: c.dp, dp: c.sp };
      frames.push({ tsUs: frames.length, data: tcpFrame({ ...c, flags: 0x02, seq: 99 }) });
      frames.push({ tsUs: frames.length, data: tcpFrame({ ...s, flags: 0x12, seq: 499, ack: 100 }) });
      frames.push({ tsUs: frames.length, data: tcpFrame({ ...c, flags: 0x10, seq: 100, ack: 500 }) });
      for (let k = 0; k < 3; k++)
        frames.push({
          tsUs: frames.length,
          data: tcpFrame({ ...c, flags: 0x18, seq: 100 + k * 2048, ack: 500, payload: 'x'.repeat(2048) }),
        });
    }
    const pcap = encodePcap(frames);
    const rules = loadRules(
      'alert tcp any any -> any 8000 (msg:"m"; flow:established; content:"zz"; sid:1;)',
      'r',
    ).rules;
    const memcap = 96 * 1024;
    const opts = { reassemblyMemcapBytes: memcap, flowsMax: 1000 };
    const one = await runCapture(Readable.from([Buffer.from(pcap)]), rules, opts);
    // the one engine fills its memcap (a quarter more for its slabs at most)
    expect(one.reassemblyPeakBytes).toBeGreaterThan(memcap * 0.9);
    expect(one.reassemblyPeakBytes).toBeLessThanOrEqual(memcap * 1.25);
    // 60 flows at once in a table of 40: one engine evicts 20 for room, and so do the workers together
    // (the whole table each, they evicted none)
    const table = { flowsMax: 40 };
    const one40 = await runCapture(Readable.from([Buffer.from(pcap)]), rules, table);
    expect(one40.flows.evicted.capacity).toBe(20);
    for (const n of [2, 3]) {
      const pool = new ParallelRunner(n);
      try {
        const r = await pool.run(Readable.from([Buffer.from(pcap)]), rules, opts);
        // each worker had its share: together no more than one engine (each had the whole before)
        expect(r.reassemblyPeakBytes, `${n} workers`).toBeLessThanOrEqual(memcap * 1.25);
        expect(r.reassemblyPeakBytes, `${n} workers`).toBeGreaterThan(memcap * 0.6);
        expect(r.flows.created).toBe(60);
        const t = await pool.run(Readable.from([Buffer.from(pcap)]), rules, table);
        expect(t.flows.evicted.capacity, `${n} workers`).toBeGreaterThanOrEqual(20);
        // a bound one engine refuses is refused on workers as it stands (not divided into range first)
        await expect(
          pool.run(Readable.from([Buffer.from(pcap)]), rules, { flowsMax: 2 ** 25 }),
        ).rejects.toThrow(`flowsMax must be an integer from 1 to ${2 ** 24}, got ${2 ** 25}`);
      } finally {
        await pool.close();
      }
    }
  }, 60_000);
});
