// A pool reused across runs: the rules sent once, and (spareEngines) each run after the first on the engine
// of the run before, reset. Every run must give exactly the alerts of a fresh engine on one thread.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { captureIo, runCommand } from '@strata/cli';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Alert, commands, encodePcap, loadRules, ParallelRunner, runCapture } from '../src/index.js';
import { alertLine, communityRulesWith, sharedIds, tcpFrame } from './helpers.js';

const { shared, have } = sharedIds('suricata-verify/manifest.json');
const base = `${shared}suricata-verify/`;

const lines = (as: Alert[]) => as.map(alertLine).sort();

describe.runIf(have)('a parallel pool reused across runs', () => {
  let pool: ParallelRunner;
  beforeAll(() => {
    pool = new ParallelRunner(2, { spareEngines: true });
  });
  afterAll(async () => {
    await pool.close();
  });

  it('every rule on ndpi-mix-a.pcap: runs on spare engines give the alerts of a fresh engine; new options or rules build anew', async () => {
    // a threshold whose state spans flows, and a rule that alerts on every SYN: state a reused engine would carry
    const rules = communityRulesWith(
      shared,
      'alert tcp any any -> any any (msg:"syn"; flags:S; threshold:type limit, track by_dst, count 3, seconds 60; sid:9000001;)\nalert tcp any any -> any any (msg:"syn2"; flags:S; flowbits:set,seen; sid:9000002;)',
    );
    const pcap = `${shared}traces/ndpi-mix-a.pcap`;
    const opts = { validateChecksums: 'auto' as const };
    const want = lines((await runCapture(pcap, rules, opts)).alerts);
    expect(want.length).toBeGreaterThan(100);
    const runs = [];
    for (let i = 0; i < 3; i++) {
      await pool.idle();
      const r = await pool.run(pcap, rules, opts);
      expect(lines(r.alerts), `run ${i + 1}`).toEqual(want);
      runs.push(r);
    }
    expect(runs.map((r) => r.phases.spareEngines)).toEqual([false, true, true]);
    // every count of the first run (new engines; the same pool, so the same flows on each worker): a spare
    // is the engine of the run before, reset (its automata kept, none of its state)
    for (const r of runs.slice(1)) {
      expect(r.stats).toEqual(runs[0]!.stats);
      expect(r.flows).toEqual(runs[0]!.flows);
      expect(r.httpAnomalies).toEqual(runs[0]!.httpAnomalies);
      expect(r.reassemblyPeakBytes).toBe(runs[0]!.reassemblyPeakBytes);
      expect(r.workers.map((w) => [w.packets, w.alerts])).toEqual(
        runs[0]!.workers.map((w) => [w.packets, w.alerts]),
      );
    }
    // the same stats as a fresh pool gives: a spare starts from nothing
    const fresh = new ParallelRunner(2);
    try {
      const f = await fresh.run(pcap, rules, opts);
      expect(f.phases.spareEngines).toBe(false);
      expect(runs[2]!.stats.httpRequests).toBe(f.stats.httpRequests);
      expect(runs[2]!.stats.alerts).toBe(f.stats.alerts);
      expect(runs[2]!.flows.created).toBe(f.flows.created);
    } finally {
      await fresh.close();
    }
    // other options: the spare (built with the options before) is not used
    const noPrefilter = { ...opts, prefilter: false };
    const r4 = await pool.run(pcap, rules.slice(-200), noPrefilter);
    expect(r4.phases.spareEngines).toBe(false);
    expect(lines(r4.alerts)).toEqual(lines((await runCapture(pcap, rules.slice(-200), noPrefilter)).alerts));
    // the same array with a rule replaced in place: sent again, the new rule in force
    const mine = rules.slice(-200);
    const r5 = await pool.run(pcap, mine, noPrefilter);
    expect(r5.phases.spareEngines).toBe(true);
    mine[mine.length - 1] = loadRules(
      'alert tcp any any -> any any (msg:"fin"; flags:F+; sid:9000003;)',
      'extra.rules',
    ).rules[0]!;
    const r6 = await pool.run(pcap, mine, noPrefilter);
    expect(r6.phases.spareEngines).toBe(false);
    const want6 = lines((await runCapture(pcap, mine, noPrefilter)).alerts);
    expect(want6.some((l) => l.includes(' 9000003 '))).toBe(true);
    expect(lines(r6.alerts)).toEqual(want6);
  }, 120_000);

  it('every suricata-verify case twice on one pool (the second run on a spare engine): the alerts of one thread', async () => {
    const m = JSON.parse(readFileSync(`${base}manifest.json`, 'utf8')) as {
      cases: { name: string; pcap: string; rules: string }[];
    };
    let alerts = 0;
    let spares = 0;
    for (const c of m.cases) {
      const { rules } = loadRules(readFileSync(base + c.rules, 'utf8'), c.rules);
      const want = lines((await runCapture(base + c.pcap, rules)).alerts);
      alerts += want.length;
      for (let i = 0; i < 2; i++) {
        const r = await pool.run(base + c.pcap, rules);
        expect(lines(r.alerts), `${c.name}, run ${i + 1}`).toEqual(want);
        if (r.phases.spareEngines) spares++;
      }
    }
    expect(alerts).toBeGreaterThan(100);
    expect(spares).toBe(m.cases.length);
  }, 120_000);

  it('a worker that cannot set up fails the run with its error while the main thread reads (no hang)', async () => {
    const p = new ParallelRunner(2);
    try {
      const { rules } = loadRules('alert tcp any any -> any any (msg:"syn"; flags:S; sid:1;)', 'x.rules');
      const pcap = `${shared}traces/ndpi-mix-a.pcap`;
      // the engine refuses the option; batches were already queued behind the set-up
      await expect(runCapture(pcap, rules, { flowsMax: -1 })).rejects.toThrow(/flowsMax/);
      await expect(p.run(pcap, rules, { flowsMax: -1 })).rejects.toThrow(/flowsMax/);
      await expect(p.run(pcap, rules, { flowsMax: -1, reader: 'workers' })).rejects.toThrow(/flowsMax/);
      // the pool stays usable: the workers replied with the error instead of ending (the next run got the
      // first run's error, the ones after it hung on a dead thread and on the failed batches still counted)
      const want = lines((await runCapture(pcap, rules)).alerts);
      for (let i = 0; i < 2; i++) expect(lines((await p.run(pcap, rules)).alerts)).toEqual(want);
    } finally {
      await p.close();
    }
    // a closed pool (its threads ended) fails a run instead of waiting for them
    await expect(p.run(`${shared}traces/ndpi-mix-a.pcap`, [])).rejects.toThrow(/run after close/);
  }, 30_000);

  it('a capture that fails mid-way leaves no packets behind: the next runs (IDS and IPS) are whole', async () => {
    const p = new ParallelRunner(2);
    const dir = mkdtempSync(join(tmpdir(), 'ids-parallel-bad-'));
    try {
      const { rules } = loadRules('alert ip any any -> any any (msg:"any"; sid:1;)', 'x.rules');
      const pcap = `${shared}traces/ndpi-mix-a.pcap`;
      const buf = readFileSync(pcap);
      const bad = join(dir, 'bad.pcap');
      // a record claiming 4 GiB after the whole capture: the reader fails after the workers were sent
      // batches (a capture cut inside a record is read up to the cut, above)
      const claim = Buffer.alloc(16);
      claim.writeUInt32LE(0xffffffff, 8);
      writeFileSync(bad, Buffer.concat([buf, claim, Buffer.alloc(64, 0xff)]));
      const want = lines((await runCapture(pcap, rules)).alerts);
      const wantIps = lines((await runCapture(pcap, rules, { ips: true })).alerts);
      const clean = await p.run(pcap, rules);
      expect(lines(clean.alerts)).toEqual(want);
      for (let i = 0; i < 3; i++) {
        await expect(p.run(bad, rules)).rejects.toThrow(/claims/);
        const next = await p.run(pcap, rules);
        expect(lines(next.alerts)).toEqual(want);
        // the failed run's batches still in flight reply during the next run: their alerts are not its load
        expect(
          next.workers.map((w) => w.alerts),
          `run ${i + 1} after a failed one`,
        ).toEqual(clean.workers.map((w) => w.alerts));
      }
      // each worker reading: the first worker's failure fails the run; the pool's next runs are whole
      await expect(p.run(bad, rules, { reader: 'workers' })).rejects.toThrow(/claims/);
      expect(lines((await p.run(pcap, rules, { reader: 'workers' })).alerts)).toEqual(want);
      expect(lines((await p.run(pcap, rules)).alerts)).toEqual(want);
      // IPS: a packet of the failed run's last batch, unknown to this run, crashed the process
      await expect(p.run(bad, rules, { ips: true })).rejects.toThrow(/claims/);
      expect(lines((await p.run(pcap, rules, { ips: true })).alerts)).toEqual(wantIps);
    } finally {
      await p.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);

  it('a pool without spare engines builds one per run, and reports the phases', async () => {
    const p = new ParallelRunner(2);
    try {
      const { rules } = loadRules('alert tcp any any -> any any (msg:"syn"; flags:S; sid:1;)', 'x.rules');
      const pcap = `${shared}traces/ndpi-mix-a.pcap`;
      for (let i = 0; i < 2; i++) {
        const r = await p.run(pcap, rules);
        expect(r.phases.spareEngines).toBe(false);
        expect(r.phases.workerInitMs).toHaveLength(2);
        expect(r.phases.batchesMs).toBeGreaterThan(0);
        expect(r.alerts.length).toBeGreaterThan(10);
      }
    } finally {
      await p.close();
    }
  }, 60_000);
});

describe.runIf(have)('runs on one pool at once', () => {
  it('wait for each other: each gets the alerts of one thread (one failed with "a batch before init", the other lost its alerts)', async () => {
    const p = new ParallelRunner(2);
    try {
      const { rules } = loadRules(
        'alert http any any -> any any (msg:"tmi"; content:"testmyids"; sid:1;)\nalert tcp any any -> any any (msg:"syn"; flags:S; sid:2;)',
        'x.rules',
      );
      const big = `${shared}traces/ndpi-mix-a.pcap`;
      const small = `${base}cases/alert-testmyids/input.pcap`;
      const wantBig = lines((await runCapture(big, rules)).alerts);
      const wantSmall = lines((await runCapture(small, rules)).alerts);
      expect(wantSmall.length).toBeGreaterThan(0);
      const [a, b, c] = await Promise.all([
        p.run(big, rules),
        p.run(small, rules),
        p.run(small, rules, { ips: true }),
      ]);
      expect(lines(a.alerts)).toEqual(wantBig);
      expect(lines(b.alerts)).toEqual(wantSmall);
      expect(c.alerts.length).toBe(wantSmall.length);
      // a run that fails does not hold up the one waiting behind it
      const [bad, good] = await Promise.allSettled([
        p.run(big, rules, { flowsMax: -1 }),
        p.run(small, rules),
      ]);
      expect(bad.status).toBe('rejected');
      expect(good.status === 'fulfilled' && lines(good.value.alerts)).toEqual(wantSmall);
    } finally {
      await p.close();
    }
    await expect(p.run(`${base}cases/alert-testmyids/input.pcap`, [])).rejects.toThrow(
      /^ParallelRunner: run after close/,
    );
  }, 60_000);
});

describe('a capture that ends inside a record', () => {
  it('its packets before the cut are inspected on 1 thread and on 2 workers alike, and the result says where it ended', async () => {
    const frames = Array.from({ length: 40 }, (_, i) =>
      tcpFrame({ sp: 30_000 + i, dp: 8080, seq: 1, payload: `MARK${String(i).padStart(3, '0')}` }),
    );
    const full = encodePcap(frames.map((data, i) => ({ tsUs: (1_700_000_000 + i) * 1e6, data })));
    const dir = mkdtempSync(join(tmpdir(), 'ids-cut-'));
    const pool = new ParallelRunner(2);
    try {
      const cut = join(dir, 'cut.pcap');
      writeFileSync(cut, full.subarray(0, full.length - 7)); // the last record loses its last 7 bytes
      const { rules } = loadRules(
        'alert tcp any any -> any 8080 (msg:"mark"; content:"MARK"; sid:1;)',
        'x.rules',
      );
      for (const ips of [false, true]) {
        const one = await runCapture(cut, rules, { ips });
        expect(one.packets).toBe(39);
        expect(one.alerts).toHaveLength(39);
        expect(one.truncated).toMatch(/^capture byte \d+: truncated: \d+ bytes needed, \d+ left$/);
        for (const reader of ['main', 'workers'] as const) {
          const two = await pool.run(cut, rules, { ips, reader });
          expect(lines(two.alerts)).toEqual(lines(one.alerts));
          expect(two.truncated).toBe(one.truncated);
        }
      }
      // the CLI prints the alerts before the cut, says where it ended, and exits 1
      writeFileSync(
        join(dir, 'mark.rules'),
        'alert tcp any any -> any 8080 (msg:"mark"; content:"MARK"; sid:1;)\n',
      );
      const c = captureIo('', {}, dir);
      expect(await runCommand(commands[0]!, ['--rules', 'mark.rules', 'cut.pcap', '--quiet'], c.io)).toBe(1);
      expect(c.stdout().trim().split('\n')).toHaveLength(39);
      expect(c.stderr()).toMatch(/^strata ids: cut\.pcap: capture byte \d+: truncated: .*read up to it\n$/);
      const whole = join(dir, 'whole.pcap');
      writeFileSync(whole, full);
      const w = await runCapture(whole, rules);
      expect(w.alerts).toHaveLength(40);
      expect(w.truncated).toBeUndefined();
      // anything else wrong is still a failure: a record that claims more than any capture holds
      const bad = join(dir, 'bad.pcap');
      const claim = Buffer.alloc(16);
      claim.writeUInt32LE(0xffffffff, 8);
      writeFileSync(bad, Buffer.concat([full, claim, Buffer.alloc(64)]));
      await expect(runCapture(bad, rules)).rejects.toThrow(/packet record claims 4294967295 bytes/);
    } finally {
      await pool.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 30_000);
});

describe('parallel batches', () => {
  it('frames of 100 KB among small ones (a batch outgrowing its buffer): every byte reaches the workers', async () => {
    // TCP packets of 60,000 payload bytes in frames of 100,000 (a trailer past the IP length, as a capture
    // of offloaded frames has), a marker at a different place in each, between small packets of other flows
    const frames: Uint8Array[] = [];
    for (let i = 0; i < 40; i++) {
      const payload = new Uint8Array(60_000).fill(0x61 + (i % 20));
      payload.set(Buffer.from(`MARK${String(i).padStart(3, '0')}`), 1_000 + i * 1_400);
      const f = tcpFrame({ sp: 30_000 + i, dp: 8080, seq: 1, payload });
      const big = new Uint8Array(100_000).fill(0xee);
      big.set(f);
      frames.push(big);
      for (let j = 0; j < 3; j++)
        frames.push(tcpFrame({ sp: 20_000 + i * 3 + j, dp: 9090, seq: 1, payload: 'x' }));
    }
    const parts: Buffer[] = [];
    const h = Buffer.alloc(24);
    h.writeUInt32LE(0xa1b2c3d4, 0);
    h.writeUInt16LE(2, 4);
    h.writeUInt16LE(4, 6);
    h.writeUInt32LE(262_144, 16);
    h.writeUInt32LE(1, 20);
    parts.push(h);
    frames.forEach((f, k) => {
      const r = Buffer.alloc(16);
      r.writeUInt32LE(1_700_000_000 + k, 0);
      r.writeUInt32LE(f.length, 8);
      r.writeUInt32LE(f.length, 12);
      parts.push(r, Buffer.from(f));
    });
    const dir = mkdtempSync(join(tmpdir(), 'ids-parallel-big-'));
    const pool = new ParallelRunner(2);
    try {
      const pcap = join(dir, 'big.pcap');
      writeFileSync(pcap, Buffer.concat(parts));
      const { rules } = loadRules(
        'alert tcp any any -> any 8080 (msg:"mark"; content:"MARK0"; sid:1;)',
        'x.rules',
      );
      const one = await runCapture(pcap, rules, { midstream: true });
      const two = await pool.run(pcap, rules, { midstream: true });
      expect(one.alerts.length).toBeGreaterThanOrEqual(40);
      expect(lines(two.alerts)).toEqual(lines(one.alerts));
      expect(two.workers.reduce((n, w) => n + w.bytes, 0)).toBe(frames.reduce((n, f) => n + f.length, 0));
    } finally {
      await pool.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 30_000);
});

describe('a capture input that is neither a path nor a stream', () => {
  it('is a TypeError saying what it got, on one thread and on a pool, which stays usable; a stream of Uint8Arrays is read', async () => {
    const { rules } = loadRules(
      'alert tcp any any -> any any (msg:"mark"; content:"MARK"; sid:1;)',
      'x.rules',
    );
    const bytes = new Uint8Array(
      encodePcap([{ tsUs: 1_700_000_000e6, data: tcpFrame({ payload: 'MARK' }) }]),
    );
    const said =
      /^capture input: a path or a readable stream, not Uint8Array \(bytes in memory: Readable\.from\(\[bytes\]\)\)$/;
    const asInput = bytes as unknown as string;
    await expect(runCapture(asInput, rules)).rejects.toThrow(said);
    await expect(runCapture(Buffer.from(bytes) as unknown as string, rules)).rejects.toThrow(
      /not Buffer \(bytes/,
    );
    await expect(runCapture(42 as unknown as string, rules)).rejects.toThrow(/not number$/);
    await expect(runCapture(null as unknown as string, rules)).rejects.toThrow(/not null$/);
    const p = new ParallelRunner(2);
    try {
      for (const reader of ['main', 'workers'] as const)
        await expect(p.run(asInput, rules, { reader }), reader).rejects.toThrow(said);
      // the bytes as a stream (of plain Uint8Arrays: the reader took every chunk for a Buffer and failed
      // with "magic.readUInt32LE is not a function")
      const { Readable } = await import('node:stream');
      expect((await runCapture(Readable.from([bytes]), rules)).alerts.map((a) => a.sid)).toEqual([1]);
      expect((await p.run(Readable.from([bytes]), rules)).alerts.map((a) => a.sid)).toEqual([1]);
    } finally {
      await p.close();
    }
  });
});
