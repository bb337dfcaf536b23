// `strata ids` as a user drives it: captures given as plain arguments and with --pcap, and the stats.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { captureIo, runCommand } from '@strata/cli';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FlowTable } from '../src/flow.js';
import { commands, encodePcap } from '../src/index.js';
import { tcpFrame } from './helpers.js';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'ids-cli-'));
  writeFileSync(
    join(dir, 'mark.rules'),
    'alert tcp any any -> any 8080 (msg:"mark"; content:"MARK"; sid:1;)\n',
  );
  // capture NAME holds one packet whose payload names it, so each alert says which capture raised it
  for (const name of ['a', 'b', 'c']) {
    const frame = tcpFrame({ sp: 30_000, dp: 8080, seq: 1, payload: `MARK-${name}` });
    writeFileSync(join(dir, `${name}.pcap`), encodePcap([{ tsUs: 1_700_000_000e6, data: frame }]));
  }
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function ids(args: string[], stdin: Buffer | string = '') {
  const c = captureIo(stdin, {}, dir);
  const rc = await runCommand(commands[0]!, ['--rules', 'mark.rules', ...args], c.io);
  return { rc, out: c.stdout(), err: c.stderr() };
}

/** Which capture each alert came from, in output order. */
const sources = (jsonLines: string) =>
  jsonLines
    .trim()
    .split('\n')
    .map((l) => Buffer.from(JSON.parse(l).payload, 'base64').toString('latin1'));

describe('strata ids', () => {
  it('names a rule whose evaluation failed, counts it as no match, goes on, and exits 1', async () => {
    writeFileSync(
      join(dir, 'pcre.rules'),
      'alert tcp any any -> any 8080 (msg:"pcre"; content:"MARK"; pcre:"/MARK/"; sid:7;)\n',
    );
    // a pcre whose exec throws on the second capture's payload: no input is known to make one throw (a
    // byte_test bitmask of 1.5 did until 2026-12-05), so a fault is put there
    const exec = RegExp.prototype.exec;
    RegExp.prototype.exec = function (this: RegExp, s: string) {
      if (this.source === 'MARK' && String(s).includes('MARK-b')) throw new Error('pcre broke');
      return exec.call(this, s);
    };
    try {
      const c = captureIo('', {}, dir);
      const rc = await runCommand(
        commands[0]!,
        ['--rules', 'pcre.rules', 'a.pcap', 'b.pcap', 'c.pcap', '--format', 'json'],
        c.io,
      );
      expect(rc).toBe(1);
      expect(sources(c.stdout())).toEqual(['MARK-a', 'MARK-c']);
      expect(c.stderr()).toContain(
        'strata ids: b.pcap: rule 1:7 failed and was counted as no match: pcre broke',
      );
    } finally {
      RegExp.prototype.exec = exec;
    }
  });

  it('names an inspection that failed outside the rules, goes on, and exits 1; the stats file holds it', async () => {
    // a flow table that throws on the second capture's packet: no input is known to make it, so a fault is
    // put there (the engine catches it, pipeline.test.ts; this is what a user of the CLI sees)
    const track = FlowTable.prototype.trackFlow;
    let calls = 0;
    FlowTable.prototype.trackFlow = function (this: FlowTable, ...a: Parameters<FlowTable['trackFlow']>) {
      if (++calls === 2) throw new Error('flow table broke');
      return track.apply(this, a);
    };
    try {
      const r = await ids(['a.pcap', 'b.pcap', 'c.pcap', '--format', 'json', '--stats', 'faults.json']);
      expect(r.rc).toBe(1);
      expect(sources(r.out)).toEqual(['MARK-a', 'MARK-c']);
      expect(r.err).toContain(
        'strata ids: b.pcap: the inspection of packet 1 failed and ended there: flow table broke',
      );
      const stats = JSON.parse(readFileSync(join(dir, 'faults.json'), 'utf8'));
      expect(stats.failedInspections).toEqual([
        { capture: 'b.pcap', where: 'packet 1', error: 'flow table broke' },
      ]);
    } finally {
      FlowTable.prototype.trackFlow = track;
    }
  });

  it('a capture of a link type the decoder does not know, or of no bytes at all, is named and exits 1 (both printed nothing and exited 0)', async () => {
    const frame = tcpFrame({ sp: 30_000, dp: 8080, seq: 1, payload: 'MARK-x' });
    writeFileSync(join(dir, 'link.pcap'), encodePcap([{ tsUs: 1_700_000_000e6, data: frame }], 4242));
    writeFileSync(join(dir, 'empty.pcap'), '');
    for (const extra of [[], ['--workers', '2'], ['--workers', '2', '--reader', 'workers']]) {
      const r = await ids(['a.pcap', 'link.pcap', 'empty.pcap', '--format', 'json', '--quiet', ...extra]);
      expect(r.rc, extra.join(' ')).toBe(1);
      expect(sources(r.out)).toEqual(['MARK-a']);
      expect(r.err).toBe(
        'strata ids: link.pcap: 1 packets of link types the decoder does not know (4242) were not inspected\n' +
          'strata ids: empty.pcap: capture byte 0: empty input: no pcap or pcapng header: the capture is cut short there, read up to it\n',
      );
    }
  });

  it('runs the captures in the order given, plain arguments and --pcap mixed', async () => {
    const r = await ids(['c.pcap', '--pcap', 'a.pcap', 'b.pcap', '--format', 'json', '--quiet']);
    expect(r.rc).toBe(0);
    expect(sources(r.out)).toEqual(['MARK-c', 'MARK-a', 'MARK-b']);
    const s = await ids(['--pcap', 'b.pcap', 'a.pcap', '--format', 'json', '--quiet']);
    expect(sources(s.out)).toEqual(['MARK-b', 'MARK-a']);
  });

  it('each capture is a run of its own: a threshold or flow of one is not carried into the next (one engine, reset between them; the stats add the runs up)', async () => {
    writeFileSync(
      join(dir, 'limit.rules'),
      'alert tcp any any -> any 8080 (msg:"limit"; content:"MARK"; threshold:type limit, track by_dst, count 1, seconds 3600; sid:3;)\n',
    );
    for (const extra of [[], ['--workers', '2']]) {
      const c = captureIo('', {}, dir);
      const rc = await runCommand(
        commands[0]!,
        [
          '--rules',
          'limit.rules',
          'a.pcap',
          'b.pcap',
          'c.pcap',
          '--format',
          'json',
          '--stats',
          'limit.json',
          ...extra,
        ],
        c.io,
      );
      expect(rc, extra.join(' ')).toBe(0);
      expect(sources(c.stdout()), extra.join(' ')).toEqual(['MARK-a', 'MARK-b', 'MARK-c']);
      const stats = JSON.parse(readFileSync(join(dir, 'limit.json'), 'utf8'));
      expect([stats.packets, stats.flows, stats.alerts, stats.alertsSuppressed]).toEqual([3, 3, 3, 0]);
    }
  });

  it("'-' reads a capture from standard input, among files, on one thread and on workers (it was ENOENT on './-')", async () => {
    const b = readFileSync(join(dir, 'b.pcap'));
    for (const extra of [[], ['--workers', '2'], ['--workers', '2', '--reader', 'workers']]) {
      const r = await ids(['a.pcap', '-', 'c.pcap', '--format', 'json', '--quiet', ...extra], b);
      expect(r.rc, extra.join(' ')).toBe(0);
      expect(sources(r.out)).toEqual(['MARK-a', 'MARK-b', 'MARK-c']);
    }
    const twice = await ids(['-', '-'], b);
    expect(twice.rc).toBe(2);
    expect(twice.err).toMatch(/'-' \(standard input\) can be given as a capture once/);
  });

  it('--out with two captures is refused in words that fit plain arguments; a failing capture is named', async () => {
    const r = await ids(['--ips', '--out', 'o.pcap', 'a.pcap', 'b.pcap']);
    expect(r.rc).toBe(2);
    expect(r.err).toMatch(/--out writes one pcap: give one capture \(got 2\)/);
    const m = await ids(['a.pcap', 'missing.pcap', '--quiet']);
    expect(m.rc).not.toBe(0);
    expect(m.err).toMatch(/missing\.pcap: .*ENOENT/);
    expect(m.err).not.toMatch(/--pcap missing/);
  });

  it('--alerts and --stats files that cannot be written: one line naming the flag, exit 1 (they crashed)', async () => {
    // the alerts stream was opened with no 'error' listener: an unwritable path killed the process
    for (const flag of ['--alerts', '--stats']) {
      const r = await ids(['a.pcap', flag, 'no-such-dir/out', '--quiet']);
      expect(r.rc).toBe(1);
      expect(r.err).toBe(
        `strata ids: ${flag} ${join(dir, 'no-such-dir/out')}: ENOENT: no such file or directory, open '${join(dir, 'no-such-dir/out')}'\n`,
      );
      expect(r.out).toBe('');
    }
    // a write that fails later (a full disk) is an error too, not a crash
    const full = await ids(['a.pcap', '--alerts', '/dev/full', '--quiet']);
    expect(full.rc).toBe(1);
    expect(full.err).toMatch(/^strata ids: --alerts \/dev\/full: ENOSPC/);
  });

  it('a rule file given twice loads each gid:sid once: one alert, not two, and the duplicates counted as skipped', async () => {
    const r = await ids(['--rules', 'mark.rules', 'a.pcap']);
    expect(r.rc).toBe(0);
    expect(r.out.trim().split('\n')).toHaveLength(1);
    expect(r.err).toMatch(
      /1 rules loaded, 1 skipped; 1 x a duplicate gid:sid \(the highest rev, the first of equals, is kept\)/,
    );
  });

  it('a rule continued over lines with \\ loads as parseRules reads it; an error names the line it starts on', async () => {
    // Snort 2's and Suricata's multi-line rules: the CLI split on every newline (two syntax errors)
    writeFileSync(
      join(dir, 'multi.rules'),
      '# two lines\r\nalert tcp any any -> any 8080 (msg:"multi"; \\\r\n  content:"MARK-b"; sid:7;)\n' +
        'alert tcp any any -> any 8080 (msg:"bad" \\\n  sid:8;)\n',
    );
    const c = captureIo('', {}, dir);
    const rc = await runCommand(commands[0]!, ['--rules', 'multi.rules', 'a.pcap', 'b.pcap'], c.io);
    expect(rc).toBe(0);
    expect(c.stdout().trim().split('\n')).toHaveLength(1);
    expect(c.stdout()).toContain('multi');
    expect(c.stderr()).toMatch(/multi\.rules:4:\d+: /);
    expect(c.stderr()).toMatch(/1 rules loaded, 1 malformed/);
  });

  it('a rules file of 200,000 rules loads (its rules were spread as arguments: a RangeError past about 150,000)', async () => {
    const lines = Array.from({ length: 200_000 }, (_, i) => `alert udp any any -> any 9 (sid:${i + 10};)\n`);
    writeFileSync(join(dir, 'many.rules'), lines.join(''));
    const c = captureIo('', {}, dir);
    const rc = await runCommand(commands[0]!, ['--rules', 'many.rules', 'a.pcap'], c.io);
    expect(c.stderr()).toMatch(/200000 rules loaded, 0 skipped/);
    expect(rc).toBe(0);
  }, 30_000);

  it('the stats give the rate per CPU-second of the process beside the wall-time rate', async () => {
    const r = await ids(['a.pcap', 'b.pcap', '--stats', 'stats.json', '--quiet']);
    expect(r.rc).toBe(0);
    const s = JSON.parse(readFileSync(join(dir, 'stats.json'), 'utf8'));
    expect(s.packets).toBe(2);
    expect(s.cpuSeconds).toBeGreaterThan(0);
    expect(s.mbpsPerCpuSecond).toBeCloseTo((s.bytes * 8) / 1e6 / s.cpuSeconds, 6);
    const t = await ids(['a.pcap']);
    expect(t.err).toMatch(/ Mbps \([\d.]+ per CPU-second\), /);
  });
});

describe('strata ids --reader', () => {
  it('with --workers, the workers read the capture themselves and give the same alerts; bad values are usage errors', async () => {
    const main = await ids([
      'a.pcap',
      'b.pcap',
      '--workers',
      '2',
      '--format',
      'json',
      '--stats',
      'm.json',
      '--quiet',
    ]);
    const self = await ids([
      'a.pcap',
      'b.pcap',
      '--workers',
      '2',
      '--reader',
      'workers',
      '--format',
      'json',
      '--stats',
      'w.json',
      '--quiet',
    ]);
    expect(self.rc).toBe(0);
    expect(sources(self.out)).toEqual(sources(main.out));
    expect(sources(self.out)).toEqual(['MARK-a', 'MARK-b']);
    expect(JSON.parse(readFileSync(join(dir, 'm.json'), 'utf8')).reader).toBe('main');
    expect(JSON.parse(readFileSync(join(dir, 'w.json'), 'utf8')).reader).toBe('workers');
    // IPS: this thread reads whatever --reader says, and the stats say so
    await ids(['a.pcap', '--workers', '2', '--reader', 'workers', '--ips', '--stats', 'i.json', '--quiet']);
    expect(JSON.parse(readFileSync(join(dir, 'i.json'), 'utf8')).reader).toBe('main');
    expect(await ids(['a.pcap', '--workers', '2', '--reader', 'all'])).toMatchObject({
      rc: 2,
      err: expect.stringMatching(/--reader: expected main or workers, got 'all'/),
    });
    expect(await ids(['a.pcap', '--reader', 'workers'])).toMatchObject({
      rc: 2,
      err: expect.stringMatching(/give --workers N/),
    });
  }, 60_000);
});

describe('strata ids --rule-latency, --packet-latency', () => {
  it('lists the rules over the bound and, with --rule-suspend, stops evaluating one past its count', async () => {
    // a pcre no guard applies to (a backreference to its leading word): over 8 KiB of letters each exec
    // tries every start, tens of milliseconds in V8's RegExp (--pcre-steps 0), far past the 1 ms bound on
    // any machine
    writeFileSync(
      join(dir, 'slow.rules'),
      'alert tcp-pkt any any -> any 8080 (msg:"slow"; content:"zz"; pcre:"/(\\w+)\\s*:=.*\\1/si"; sid:9;)\n',
    );
    const payload = `${'a'.repeat(8190)}zz`;
    const frames = [0, 1, 2, 3, 4, 5].map((i) => ({
      tsUs: 1_700_000_000e6 + i,
      data: tcpFrame({ sp: 31_000 + i, dp: 8080, seq: 1, payload }),
    }));
    writeFileSync(join(dir, 'slow.pcap'), encodePcap(frames));
    const run = async (...more: string[]) => {
      const c = captureIo('', {}, dir);
      const rc = await runCommand(
        commands[0]!,
        ['--rules', 'slow.rules', 'slow.pcap', '--pcre-steps', '0', ...more],
        c.io,
      );
      return { rc, out: c.stdout(), err: c.stderr() };
    };
    const counted = await run('--rule-latency', '1000', '--quiet');
    expect(counted.rc).toBe(0);
    expect(counted.out).toBe('');
    expect(counted.err).toMatch(
      /slow\.pcap: 6 of 6 rule evaluations over 1000 us: 1:9 6 \(slowest [\d.]+ ms\)\n/,
    );
    const suspended = await run('--rule-latency', '1000', '--rule-suspend', '2', '--stats', 'lat.json');
    expect(suspended.rc).toBe(0);
    expect(suspended.err).toMatch(
      /2 of 2 rule evaluations over 1000 us: 1:9 2 \(slowest [\d.]+ ms, suspended 1x\)/,
    );
    const stats = JSON.parse(readFileSync(join(dir, 'lat.json'), 'utf8'));
    expect(stats).toMatchObject({
      ruleEvalsTimed: 2,
      ruleEvalTimeouts: 2,
      ruleSuspensions: 1,
      ruleReenables: 0,
    });
    expect(stats.slowRules).toEqual([
      { capture: 'slow.pcap', rule: '1:9', timeouts: 2, suspensions: 1, slowestUs: expect.any(Number) },
    ]);
    expect(stats.failedInspections).toBeUndefined();
    // with --latency-alerts the suspension is an alert (gid 134 sid 1) on the packet it happened at
    const alerted = await run('--rule-latency', '1000', '--rule-suspend', '2', '--latency-alerts', '--quiet');
    expect(alerted.out).toMatch(
      /^\S+ \[\*\*\] \[134:1:1\] rule tree suspended due to latency \[\*\*\].* \{TCP\} 10\.0\.0\.1:31001 -> 10\.0\.0\.2:8080\n$/,
    );
    expect(await run('--latency-alerts')).toMatchObject({
      rc: 2,
      err: expect.stringMatching(/--latency-alerts needs --rule-latency US or --packet-latency US/),
    });
    // the rules that took the most time, over the captures, on stderr and in the stats
    const profiled = await run('--profile-rules', '3', '--quiet', '--stats', 'prof.json');
    expect(profiled.err).toMatch(
      /^strata ids: the 1 rules that took the most time .*\n {2}1:9 +6 +[\d.]+ +[\d.]+ +[\d.]+\n$/,
    );
    expect(JSON.parse(readFileSync(join(dir, 'prof.json'), 'utf8')).ruleProfile).toEqual([
      { rule: '1:9', checks: 6, totalUs: expect.any(Number), maxUs: expect.any(Number) },
    ]);
    const profiled2 = await run('--profile-rules', '3', '--quiet', '--workers', '2');
    expect(profiled2.err).toMatch(/\n {2}1:9 +6 /);
    expect(await run('--profile-rules', '0')).toMatchObject({
      rc: 2,
      err: expect.stringMatching(/--profile-rules: expected a whole number from 1/),
    });
    // on workers each engine times its own flows; the records are merged
    const workers = await run('--rule-latency', '1000', '--workers', '2', '--quiet');
    expect(workers.err).toMatch(/6 of 6 rule evaluations over 1000 us: 1:9 6 \(slowest [\d.]+ ms\)\n/);
    // off by default: nothing timed, nothing said
    const off = await run('--quiet');
    expect(off.err).toBe('');
    // packet latency: a second rule after the slow one is skipped on each packet with --fastpath
    writeFileSync(
      join(dir, 'slow2.rules'),
      `${readFileSync(join(dir, 'slow.rules'), 'utf8')}alert tcp-pkt any any -> any 8080 (msg:"after"; content:"zz"; sid:10;)\n`,
    );
    const two = async (...more: string[]) => {
      const c = captureIo('', {}, dir);
      const rc = await runCommand(
        commands[0]!,
        ['--rules', 'slow2.rules', 'slow.pcap', '--quiet', '--pcre-steps', '0', ...more],
        c.io,
      );
      return { rc, alerts: c.stdout().trim().split('\n').filter(Boolean).length, err: c.stderr() };
    };
    expect(await two('--packet-latency', '1000')).toMatchObject({
      rc: 0,
      alerts: 6,
      err: 'strata ids: slow.pcap: 6 packets over 1000 us of detection\n',
    });
    expect(await two('--packet-latency', '1000', '--fastpath')).toMatchObject({
      rc: 0,
      alerts: 0,
      err: 'strata ids: slow.pcap: 6 packets over 1000 us of detection, 6 fastpathed (their remaining rules not evaluated)\n',
    });
    expect(await two('--fastpath')).toMatchObject({
      rc: 2,
      err: expect.stringMatching(/--fastpath needs --packet-latency US/),
    });
    for (const [args, why] of [
      [['--rule-suspend', '2'], /--rule-suspend and --rule-suspend-ms need --rule-latency US/],
      [['--rule-latency', '0'], /--rule-latency: expected a whole number from 1, got '0'/],
      [['--rule-latency', '1.5'], /--rule-latency: expected a whole number from 1, got '1.5'/],
      [['--rule-latency', '10', '--rule-suspend-ms', '5'], /--rule-suspend-ms needs --rule-suspend N/],
      [['--rule-latency', '10', '--rule-suspend', '0'], /--rule-suspend: expected a whole number from 1/],
    ] as const)
      expect(await run(...args), args.join(' ')).toMatchObject({ rc: 2, err: expect.stringMatching(why) });
  }, 60_000);

  it('ends a backreference pcre past --pcre-steps as no match, and says how many', async () => {
    // six packets of 8 KiB of letters, and a pcre with \1 quadratic in them for any backtracking matcher
    // (\d is in \w: each start's \w+ gives its letters back one by one); the := it needs is there, at the
    // end (without it the step machine's search ends at its first instruction)
    writeFileSync(
      join(dir, 'steps.rules'),
      'alert tcp-pkt any any -> any 8080 (msg:"slow"; content:"zz"; pcre:"/(\\w+)\\d:=.*\\1/si"; sid:9;)\n',
    );
    const frames = [0, 1, 2, 3, 4, 5].map((i) => ({
      tsUs: 1_700_000_000e6 + i,
      data: tcpFrame({ sp: 31_000 + i, dp: 8080, seq: 1, payload: `${'a'.repeat(8188)}:=zz` }),
    }));
    writeFileSync(join(dir, 'steps.pcap'), encodePcap(frames));
    const run = async (...more: string[]) => {
      const c = captureIo('', {}, dir);
      const rc = await runCommand(
        commands[0]!,
        ['--rules', 'steps.rules', 'steps.pcap', '--quiet', ...more],
        c.io,
      );
      return { rc, out: c.stdout(), err: c.stderr() };
    };
    const bounded = await run('--stats', 'steps.json');
    expect(bounded).toEqual({
      rc: 0,
      out: '',
      err: 'strata ids: steps.pcap: 6 pcre execs ran out of steps (--pcre-steps) and did not match\n',
    });
    expect(JSON.parse(readFileSync(join(dir, 'steps.json'), 'utf8')).pcreStepLimits).toBe(6);
    const workers = await run('--workers', '2', '--pcre-steps', '8');
    expect(workers.err).toBe(
      'strata ids: steps.pcap: 6 pcre execs ran out of steps (--pcre-steps) and did not match\n',
    );
    // a match within the budget alerts: `aa1:= aa` after short words
    const payload = `${'b '.repeat(2000)}aa1:= aazz`;
    writeFileSync(
      join(dir, 'fits.pcap'),
      encodePcap([{ tsUs: 1_700_000_000e6, data: tcpFrame({ sp: 31_000, dp: 8080, seq: 1, payload }) }]),
    );
    const c = captureIo('', {}, dir);
    expect(
      await runCommand(commands[0]!, ['--rules', 'steps.rules', 'fits.pcap', '--stats', 'fits.json'], c.io),
    ).toBe(0);
    expect(c.stdout()).toMatch(/\[1:9:0\] slow/);
    expect(JSON.parse(readFileSync(join(dir, 'fits.json'), 'utf8')).pcreStepLimits).toBe(0);
    for (const bad of ['-1', '1.5', 'x'])
      expect(await run(`--pcre-steps=${bad}`)).toMatchObject({
        rc: 2,
        err: `strata ids: --pcre-steps: expected a whole number from 0, got '${bad}'\n`,
      });
  }, 60_000);
});
