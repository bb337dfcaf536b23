/** Prevention (`ips`): verdicts, flow drop and pass, IP-only rule types, inline normalization, pcap output. */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { captureIo, runCommand } from '@strata/cli';
import { afterAll, describe, expect, it } from 'vitest';
import {
  type Alert,
  commands,
  type Decoded,
  decode,
  Engine,
  type EngineOptions,
  encodePcap,
  eveJson,
  newDecodeStats,
  parseRule,
  runCapture,
} from '../src/index.js';
import { ACK, handshake, handshakeFrames, PSH, pkt, readPcapFrames, tcpFrame } from './helpers.js';

const rules = (...t: string[]) => t.map((x) => parseRule(x));

/** Runs packets through an engine; per packet: whether it was dropped, and the alerts' sids. */
function run(e: Engine, ps: Decoded[]): { drop: boolean[]; sids: number[][]; alerts: Alert[] } {
  const drop: boolean[] = [];
  const sids: number[][] = [];
  const alerts: Alert[] = [];
  ps.forEach((p, i) => {
    const a = e.inspect(p, i * 1000);
    drop.push(e.verdict.drop);
    sids.push(a.map((x) => x.sid));
    alerts.push(...a);
  });
  return { drop, sids, alerts };
}

// ips alone: stream data is inspected as it arrives (streamRelease defaults to immediate)
const inline: EngineOptions = { ips: true };
/** A client data segment of the handshake's session (client ISN 1000). */
const data = (seq: number, payload: string) => pkt({ flags: ACK | PSH, seq: 1001 + seq, ack: 5001, payload });

describe('verdicts', () => {
  it('a drop rule on the stream drops the packet and the rest of its flow; other flows go on', () => {
    const e = new Engine(rules('drop tcp any any -> any any (content:"EVIL"; sid:1;)'), inline);
    const other = pkt({ src: '10.0.0.9', flags: ACK | PSH, payload: 'EVI' });
    const r = run(e, [...handshake(), data(0, 'hello '), data(6, 'EVIL'), data(10, 'more'), other]);
    expect(r.drop).toEqual([false, false, false, false, true, true, false]);
    expect(r.sids).toEqual([[], [], [], [], [1], [], []]);
    expect(r.alerts[0]!.stream).toBe(true);
    expect(eveJson(r.alerts[0]!)).toMatchObject({ alert: { action: 'blocked' } });
    expect(e.stats).toMatchObject({ packetsDropped: 2, flowsDropped: 1 });
    // the server's side of a dropped flow is dropped too
    e.inspect(pkt({ src: '10.0.0.2', dst: '10.0.0.1', sp: 80, dp: 40000, flags: ACK, seq: 5001 }), 9000);
    expect(e.verdict.drop).toBe(true);
  });

  it("eve's alert.action: a drop blocked in IPS mode only (in IDS the packet goes on), a reject in both (Suricata's)", () => {
    const both = [
      'drop udp any any -> any any (content:"bad"; sid:2;)',
      'reject udp any any -> any any (content:"worse"; sid:3;)',
    ];
    const actions = (opts: EngineOptions) => {
      const e = new Engine(rules(...both), opts);
      const r = run(e, [pkt({ proto: 17, payload: 'bad' }), pkt({ proto: 17, sp: 1, payload: 'worse' })]);
      return r.alerts
        .map((a) => [a.sid, eveJson(a).alert])
        .map(([sid, x]) => [sid, (x as { action: string }).action]);
    };
    expect(actions(inline)).toEqual([
      [2, 'blocked'],
      [3, 'blocked'],
    ]);
    // it said blocked for a drop rule's alert in IDS mode too, where nothing was dropped
    expect(actions({})).toEqual([
      [2, 'allowed'],
      [3, 'blocked'],
    ]);
  });

  it('a drop on a packet rule drops that packet only (Suricata: action scope packet)', () => {
    const e = new Engine(rules('drop udp any any -> any any (content:"bad"; sid:2;)'), inline);
    const u = (payload: string) => pkt({ proto: 17, dp: 53, payload });
    const r = run(e, [u('ok'), u('bad'), u('ok again')]);
    expect(r.drop).toEqual([false, true, false]);
    expect(r.sids).toEqual([[], [2], []]);
    expect(e.stats.flowsDropped).toBe(0);
  });

  it('reject drops as drop does and asks for a response (test/reject.test.ts has what is sent)', () => {
    const e = new Engine(rules('reject udp any any -> any any (content:"bad"; sid:3;)'), inline);
    const r = run(e, [pkt({ proto: 17, payload: 'bad' })]);
    expect(r.drop).toEqual([true]);
    expect(e.verdict.reject).toBe(true);
    run(e, [pkt({ proto: 17, payload: 'good' })]);
    expect(e.verdict.reject).toBe(false);
    expect(eveJson(r.alerts[0]!)).toMatchObject({ alert: { action: 'blocked', signature_id: 3 } });
  });

  it('an IP-only drop drops the whole flow from its first packet; noalert still drops', () => {
    const e = new Engine(rules('drop ip 10.0.0.1 any -> any any (noalert; sid:4;)'), inline);
    const back = pkt({ proto: 17, src: '10.0.0.2', dst: '10.0.0.1', sp: 80, dp: 40000 });
    const r = run(e, [pkt({ proto: 17, payload: 'a' }), back]);
    expect(r.drop).toEqual([true, true]);
    expect(r.alerts).toEqual([]);
  });

  it('without ips, drop rules only alert: no packet is dropped', () => {
    const e = new Engine(rules('drop tcp any any -> any any (content:"EVIL"; sid:1;)'), {
      streamRelease: 'immediate',
    });
    const r = run(e, [...handshake(), data(0, 'EVIL'), data(4, 'more')]);
    expect(r.drop.every((d) => !d)).toBe(true);
    expect(r.sids.flat()).toEqual([1]);
  });

  it('pass rules: first in the default action order, they pass the flow; drop first, the drop wins', () => {
    const rs = rules('pass ip 10.0.0.1 any -> any any (sid:5;)', 'drop ip any any -> any any (sid:6;)');
    const flow = [pkt({ proto: 17, payload: 'a' }), pkt({ proto: 17, payload: 'b' })];
    const passed = new Engine(rs, inline);
    expect(run(passed, flow)).toMatchObject({ drop: [false, false], sids: [[], []] });
    expect(passed.stats.flowsPassed).toBe(1);
    const dropped = new Engine(rs, { ...inline, actionOrder: ['drop', 'pass', 'reject', 'alert'] });
    expect(run(dropped, flow)).toMatchObject({ drop: [true, true], sids: [[6], []] });
    expect(dropped.stats.flowsPassed).toBe(0);
  });

  it("a packet's stream and packet matches apply together in rule order: a pass takes back the alerts after it", () => {
    const alert = 'alert tcp any any -> any any (content:"x"; sid:1;)'; // matched on the stream
    const flow = [...handshake(), data(0, 'x')];
    expect(run(new Engine(rules(alert), inline), flow).sids[3]).toEqual([1]);
    // the default order puts the packet rule's pass first: the stream alert of the same packet is taken back
    const passed = new Engine(rules(alert, 'pass tcp any any -> any any (dsize:>0; sid:2;)'), inline);
    expect(run(passed, flow).sids[3]).toEqual([]);
    expect(passed.stats.alerts).toBe(0);
    // drop first: the packet rule's drop applies although the stream's pass matched first
    const order = { ...inline, actionOrder: ['drop', 'pass', 'reject', 'alert'] };
    const dropped = new Engine(
      rules(
        'pass tcp any any -> any any (content:"x"; sid:3;)',
        'drop tcp any any -> any any (dsize:>0; sid:4;)',
      ),
      order,
    );
    const r = run(dropped, [...flow, data(1, 'y')]);
    expect(r.drop.slice(3)).toEqual([true, true]); // packet scope: the flow was not passed either
    expect(r.sids.slice(3)).toEqual([[4], [4]]);
    expect(dropped.stats.flowsPassed).toBe(0);
  });

  it('a passed flow is not inspected at its end either; its reassembly memory goes back at once', () => {
    const rs = rules('alert tcp any any -> any any (content:"x"; sid:1;)');
    const flow = [...handshake(), data(0, 'x')]; // never acknowledged: waits for the end of the flow
    const plain = new Engine(rs);
    run(plain, flow);
    expect(plain.budget.bytes).toBeGreaterThan(0);
    expect(plain.finish().map((a) => a.sid)).toEqual([1]);
    const passed = new Engine([...rules('pass ip any any -> any any (sid:2;)'), ...rs]);
    run(passed, flow);
    expect(passed.budget.bytes).toBe(0);
    expect(passed.finish()).toEqual([]);
  });

  it('a pass after a drop on the same packet neither alerts nor passes the flow; `alert;` makes it log', () => {
    const order = { ...inline, actionOrder: ['drop', 'reject', 'alert', 'pass'] };
    const quiet = new Engine(
      rules('pass udp any any -> any 53 (sid:7;)', 'drop udp any any -> any any (content:"x"; sid:8;)'),
      order,
    );
    const u = (payload: string) => pkt({ proto: 17, dp: 53, payload });
    expect(run(quiet, [u('x'), u('y')])).toMatchObject({ drop: [true, false], sids: [[8], []] });
    const loud = new Engine(
      rules(
        'pass udp any any -> any 53 (alert; sid:7;)',
        'drop udp any any -> any any (content:"x"; sid:8;)',
      ),
      order,
    );
    expect(run(loud, [u('x')]).sids).toEqual([[8, 7]]);
  });
});

describe('IP-only rule types', () => {
  it('an IP-only rule runs on the first packet of each direction; a negated address makes it run on every packet', () => {
    const e = new Engine(
      rules('alert ip any any -> any any (sid:1;)', 'alert ip 10.0.0.1 any -> !10.0.0.1 any (sid:2;)'),
    );
    const c = () => pkt({ proto: 17, payload: 'c' });
    const s = () => pkt({ proto: 17, src: '10.0.0.2', dst: '10.0.0.1', sp: 80, dp: 40000, payload: 's' });
    expect(run(e, [c(), c(), s(), s(), c()]).sids).toEqual([[1, 2], [2], [1], [], [2]]);
    // with a flow keyword it is a packet rule: every packet
    const f = new Engine(rules('alert udp any any -> any any (flow:to_server; sid:3;)'));
    expect(run(f, [c(), c()]).sids).toEqual([[3], [3]]);
  });
});

describe('inline normalization', () => {
  it('an overlap with different bytes is rewritten to the first copy, inspected as such, and re-inspected', () => {
    const e = new Engine(
      rules(
        'alert tcp-pkt any any -> any any (content:"EVIL"; sid:1;)',
        'alert tcp-stream any any -> any any (content:"GOOD"; sid:2;)',
      ),
      inline,
    );
    const r = run(e, [...handshake(), data(0, 'GOOD'), data(0, 'EVIL')]);
    expect(r.sids.slice(3)).toEqual([[2], [2]]);
    expect(Buffer.from(e.verdict.payload!).toString()).toBe('GOOD');
    expect(e.stats.packetsRewritten).toBe(1);
    // a partial overlap: only the overlapped bytes are rewritten
    const p = new Engine([], inline);
    run(p, [...handshake(), data(0, 'abcd')]);
    p.inspect(data(2, 'XXef'), 9000);
    expect(Buffer.from(p.verdict.payload!).toString()).toBe('cdef');
    // the same bytes again: nothing to rewrite
    p.inspect(data(2, 'cdef'), 9001);
    expect(p.verdict.payload).toBeUndefined();
  });
});

const dir = mkdtempSync(join(tmpdir(), 'ids-ips-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function pcapFile(frames: Uint8Array[]): string {
  const path = join(dir, `in-${Math.random().toString(36).slice(2)}.pcap`);
  writeFileSync(
    path,
    encodePcap(frames.map((data, i) => ({ tsUs: (1_700_000_000 + i) * 1e6 + i * 10, data }))),
  );
  return path;
}

/** Two TCP sessions: A (port 40000) sends EVIL in its second data segment, B (port 40001) stays clean. */
function twoSessions(): Uint8Array[] {
  const s = (cp: number, flags: number, seq: number, ack: number, payload = '', toServer = true) =>
    toServer
      ? tcpFrame({ sp: cp, dp: 80, flags, seq, ack, payload })
      : tcpFrame({ src: '10.0.0.2', dst: '10.0.0.1', sp: 80, dp: cp, flags, seq, ack, payload });
  return [
    ...handshakeFrames(40000),
    ...handshakeFrames(40001),
    s(40000, ACK | PSH, 1001, 5001, 'hello '),
    s(40001, ACK | PSH, 1001, 5001, 'hello '),
    s(40000, ACK | PSH, 1007, 5001, 'EVIL'), // 9: dropped, and its flow from here on
    s(40000, ACK, 5001, 1011, '', false), // 10: dropped (the flow)
    s(40001, ACK | PSH, 1007, 5001, 'fine'),
    s(40000, ACK | PSH, 1011, 5001, 'more'), // 12: dropped (the flow)
    s(40001, ACK, 5001, 1011, '', false),
  ];
}

describe('pcap output', () => {
  it('the output pcap reads back with exactly the passed packets, in order, timestamps kept', async () => {
    const frames = twoSessions();
    const out = join(dir, 'passed.pcap');
    const r = await runCapture(
      pcapFile(frames),
      rules('drop tcp any any -> any any (content:"EVIL"; sid:1;)'),
      {
        ips: true,
        streamRelease: 'immediate',
        out,
      },
    );
    expect(r.alerts.map((a) => [a.sid, a.pcapCnt])).toEqual([[1, 9]]);
    expect(r.verdicts).toEqual({ passed: 10, dropped: 3, responses: 0 });
    const back = await readPcapFrames(out);
    const dropped = new Set([8, 9, 11]); // 0-based 9, 10, 12
    const want = frames.filter((_, i) => !dropped.has(i));
    expect(back.map((p) => Buffer.from(p.data).toString('hex'))).toEqual(
      want.map((f) => Buffer.from(f).toString('hex')),
    );
    expect(back[0]!.tsUs).toBe(1_700_000_000 * 1e6);
    expect(back[3]!.tsUs).toBe(1_700_000_003 * 1e6 + 30);
  });

  it('a rewritten packet goes out rewritten, with a valid TCP checksum; nothing passed is still a pcap', async () => {
    const frames = [
      ...handshakeFrames(),
      tcpFrame({ flags: ACK | PSH, seq: 1001, ack: 5001, payload: 'GOOD' }),
    ];
    frames.push(tcpFrame({ flags: ACK | PSH, seq: 1001, ack: 5001, payload: 'EVIL' }));
    const out = join(dir, 'rewritten.pcap');
    const r = await runCapture(pcapFile(frames), [], { ips: true, streamRelease: 'immediate', out });
    expect(r.stats.packetsRewritten).toBe(1);
    const back = await readPcapFrames(out);
    expect(back).toHaveLength(5);
    expect(Buffer.from(back[4]!.data).toString('hex')).toBe(Buffer.from(frames[3]!).toString('hex'));
    const d = decode(1, back[4]!.data, newDecodeStats());
    expect(typeof d !== 'string' && d.l4ChecksumOk).toBe(true);
    const none = join(dir, 'none.pcap');
    await runCapture(pcapFile(frames), rules('drop ip any any -> any any (sid:9;)'), {
      ips: true,
      out: none,
    });
    expect(readFileSync(none)).toHaveLength(24);
    expect(await readPcapFrames(none)).toEqual([]);
  });

  it('bad input gets clear errors', async () => {
    const p = pcapFile(twoSessions());
    await expect(runCapture(p, [], { out: join(dir, 'x.pcap') })).rejects.toThrow(/needs ips/);
    await expect(runCapture(p, [], { ips: true, out: join(dir, 'no', 'such', 'x.pcap') })).rejects.toThrow(
      /ENOENT/,
    );
  });
});

describe('strata ids --ips', () => {
  it('--ips --out writes the passed packets; the stats count verdicts; usage errors exit 2', async () => {
    const p = pcapFile(twoSessions());
    const rf = join(dir, 'drop.rules');
    writeFileSync(rf, 'drop tcp any any -> any any (msg:"evil"; content:"EVIL"; sid:1;)\n');
    const out = join(dir, 'cli.pcap');
    const stats = join(dir, 'stats.json');
    const c = captureIo();
    const args = ['--rules', rf, '--pcap', p];
    expect(
      await runCommand(
        commands[0]!,
        [...args, '--ips', '--out', out, '--stats', stats, '--format', 'json'],
        c.io,
      ),
    ).toBe(0);
    const recs = c
      .stdout()
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(recs.map((x) => [x.alert.signature_id, x.alert.action, x.pcap_cnt])).toEqual([[1, 'blocked', 9]]);
    expect(JSON.parse(readFileSync(stats, 'utf8'))).toMatchObject({
      packets: 13,
      packetsPassed: 10,
      packetsDropped: 3,
      flowsDropped: 1,
      packetsRewritten: 0,
    });
    expect(await readPcapFrames(out)).toHaveLength(10);
    const code = async (extra: string[]) => {
      const io = captureIo();
      const rc = await runCommand(commands[0]!, [...args, ...extra], io.io);
      return { rc, err: io.stderr() };
    };
    expect(await code(['--out', out])).toMatchObject({
      rc: 2,
      err: expect.stringMatching(/--out FILE needs --ips/),
    });
    // on two worker threads: the same packets passed on and the same counts
    const out2 = join(dir, 'cli-2.pcap');
    const stats2 = join(dir, 'stats-2.json');
    expect(
      await runCommand(
        commands[0]!,
        [...args, '--ips', '--workers', '2', '--out', out2, '--stats', stats2, '--format', 'json'],
        captureIo().io,
      ),
    ).toBe(0);
    expect(readFileSync(out2).equals(readFileSync(out))).toBe(true);
    const verdictsOf = (f: string) => {
      const { packetsPassed, packetsDropped, flowsDropped, packetsRewritten } = JSON.parse(
        readFileSync(f, 'utf8'),
      );
      return { packetsPassed, packetsDropped, flowsDropped, packetsRewritten };
    };
    expect(verdictsOf(stats2)).toEqual(verdictsOf(stats));
    expect(await code(['--ips', '--out', out, '--pcap', p])).toMatchObject({
      rc: 2,
      err: expect.stringMatching(/give one capture/),
    });
    expect(await code(['--action-order', 'drop,pass'])).toMatchObject({
      rc: 2,
      err: expect.stringMatching(/--action-order/),
    });
    expect(await code(['--ips', '--out', join(dir, 'no', 'x.pcap')])).toMatchObject({
      rc: 1,
      err: expect.stringMatching(/ENOENT/),
    });
  });

  it("the summary counts a rule file's malformed rules; a capture may be a plain argument", async () => {
    const p = pcapFile(twoSessions());
    const rf = join(dir, 'some-bad.rules');
    writeFileSync(
      rf,
      [
        'alert tcp any any -> any any (msg:"evil"; content:"EVIL"; sid:1;)',
        'alert tcp any any => any any (sid:2;)',
        'alert tcp any any -> any any (msg:"re"; pcre:"/(a/"; sid:3;)',
        'alert tcp any any -> any any (msg:"x" sid:4)',
        '',
      ].join('\n'),
    );
    const c = captureIo();
    expect(await runCommand(commands[0]!, ['--rules', rf, p], c.io)).toBe(0);
    expect(c.stderr()).toMatch(
      /^strata ids: 1 rules loaded, 2 malformed \(above\), 1 skipped; 1 x pcre '"\/\(a\/"': missing \) for the \( at offset 0$/m,
    );
    expect(c.stdout()).toMatch(/\[1:1:0\] evil/);
  });
});
