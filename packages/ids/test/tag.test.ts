// The `tag` rule option (Snort's, Suricata's): the packets after an alert that its flow or one of its hosts
// sends or receives are tagged, within a count of packets, bytes or seconds; and the packet log
// (`runCapture`'s `logPcap`, `strata ids --log-pcap`) that takes them with the packets that alerted.
import { createReadStream, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { captureIo, runCommand } from '@strata/cli';
import { afterAll, describe, expect, it } from 'vitest';
import {
  commands,
  type Decoded,
  Engine,
  encodePcap,
  parseRule,
  readCapture,
  runCapture,
  tcpFrame,
} from '../src/index.js';
import { parseTag, tagPacketsDefault } from '../src/option-tests.js';
import { ACK, handshake, PSH, pkt } from './helpers.js';

const inf = Number.POSITIVE_INFINITY;

describe('parseTag', () => {
  it("reads Snort 3's, Snort 2's and Suricata's forms, with Suricata's defaults", () => {
    const cases: [string, ReturnType<typeof parseTag>][] = [
      ['session,packets 5', { scope: 'session', packets: 5, bytes: inf, seconds: inf }],
      ['host_src, seconds 60, bytes 100', { scope: 'src', packets: inf, bytes: 100, seconds: 60 }],
      ['host_dst,packets 3', { scope: 'dst', packets: 3, bytes: inf, seconds: inf }],
      ['session,10,packets', { scope: 'session', packets: 10, bytes: inf, seconds: inf }],
      ['host,5,seconds,src', { scope: 'src', packets: inf, bytes: inf, seconds: 5 }],
      // Snort 2's manual: a count of 0 is no bound by that metric
      ['host,0,packets,600,seconds,src', { scope: 'src', packets: inf, bytes: inf, seconds: 600 }],
      ['session,20,bytes,exclusive', { scope: 'session', packets: inf, bytes: 20, seconds: inf }],
      // Suricata: scope alone, 256 packets; a host is the alert's destination
      ['session', { scope: 'session', packets: tagPacketsDefault, bytes: inf, seconds: inf }],
      ['host', { scope: 'dst', packets: tagPacketsDefault, bytes: inf, seconds: inf }],
      ['session,0,packets', { scope: 'session', packets: tagPacketsDefault, bytes: inf, seconds: inf }],
    ];
    for (const [v, want] of cases) expect(parseTag(v), v).toEqual(want);
    for (const bad of [
      'session,lots',
      'flow,packets 5',
      'session,5,minutes',
      'host,5,packets,up',
      'host_src',
    ])
      expect(() => parseTag(bad), bad).toThrow(/tag: expected/);
  });
});

/** Per packet: its alerts and whether it was tagged. */
function run(
  rules: string[],
  ps: Decoded[],
  stepUs = 1000,
): { alerts: number[]; tagged: boolean[]; e: Engine } {
  const e = new Engine(rules.map((r) => parseRule(r)));
  const alerts: number[] = [];
  const tagged: boolean[] = [];
  ps.forEach((p, i) => {
    alerts.push(e.inspect(p, i * stepUs).length);
    tagged.push(e.tagged);
  });
  return { alerts, tagged, e };
}

/** A client's data packets on one established session (after its handshake), `n` of them, 10 bytes each. */
function session(n: number, cp = 40000, client = '10.0.0.1'): Decoded[] {
  return [
    ...handshake(client, '10.0.0.2', cp, 80),
    ...Array.from({ length: n }, (_, i) =>
      pkt({
        src: client,
        sp: cp,
        flags: ACK | PSH,
        seq: 1001 + 10 * i,
        ack: 5001,
        payload: i === 0 ? 'evil-0123' + '.' : `data-${i}`.padEnd(10, '.'),
      }),
    ),
  ];
}

describe('Engine tags', () => {
  const rule = (tag: string) =>
    `alert tcp-pkt any any -> any 80 (msg:"evil"; content:"evil"; tag:${tag}; sid:1;)`;

  it('session, packets N: the N packets of the flow after the alerting one, not it, nor another flow', () => {
    const ps = session(5);
    const r = run([rule('session,packets 2')], ps);
    expect(r.alerts).toEqual([0, 0, 0, 1, 0, 0, 0, 0]);
    expect(r.tagged).toEqual([false, false, false, false, true, true, false, false]);
    expect(r.e.stats.packetsTagged).toBe(2);
    // the same alert, then another session's packets: only the first session's are tagged
    const two = run([rule('session,packets 9')], [...session(2), ...session(0, 40001).slice(0, 3)]);
    expect(two.tagged).toEqual([false, false, false, false, true, false, false, false]);
  });

  it('bytes and seconds bound a session tag as packets do', () => {
    // 10 bytes of payload a packet: 15 bytes take two packets
    expect(run([rule('session,bytes 15')], session(5)).tagged.slice(4)).toEqual([true, true, false, false]);
    // a packet every 1 ms: 2 ms after the alert (at 3 ms) covers the packets at 4 and 5 ms
    expect(run([rule('session,seconds 1')], session(5), 400_000).tagged.slice(4)).toEqual([
      true,
      true,
      false,
      false,
    ]);
  });

  it('host_src, host_dst: packets to or from that host of the alert, in any flow', () => {
    const ps = [
      ...session(1),
      ...session(0, 40005, '10.0.0.9').slice(0, 1),
      ...session(0, 40006).slice(0, 1),
    ];
    // the alert's source 10.0.0.1: its second session's SYN is tagged, 10.0.0.9's is not
    const src = run([rule('host_src,packets 5')], ps);
    expect(src.tagged).toEqual([false, false, false, false, false, true]);
    // the alert's destination 10.0.0.2 is in both later sessions
    const dst = run([rule('host_dst,packets 5')], ps);
    expect(dst.tagged).toEqual([false, false, false, false, true, true]);
  });

  it('a rule without tag tags nothing; a tag changes no alert', () => {
    const plain = run(['alert tcp-pkt any any -> any 80 (msg:"evil"; content:"evil"; sid:1;)'], session(4));
    expect(plain.tagged.some((t) => t)).toBe(false);
    expect(plain.alerts).toEqual(run([rule('session')], session(4)).alerts);
  });
});

describe('the packet log (logPcap, strata ids --log-pcap)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ids-tag-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  // a handshake, the alerting packet and four more of its session
  const frames = [
    tcpFrame({ flags: 0x02, seq: 1000 }),
    tcpFrame({ src: '10.0.0.2', dst: '10.0.0.1', sp: 80, dp: 40000, flags: 0x12, seq: 5000, ack: 1001 }),
    tcpFrame({ flags: ACK, seq: 1001, ack: 5001 }),
    ...Array.from({ length: 5 }, (_, i) =>
      tcpFrame({
        flags: ACK | PSH,
        seq: 1001 + 10 * i,
        ack: 5001,
        payload: (i === 0 ? 'evil' : 'data').padEnd(10, '.'),
      }),
    ),
  ];
  // another session's SYN right after the first tagged packet
  frames.splice(5, 0, tcpFrame({ sp: 40001, flags: 0x02, seq: 7000 }));
  writeFileSync(join(dir, 'tag.pcap'), encodePcap(frames.map((data, i) => ({ tsUs: 1_000_000 + i, data }))));
  writeFileSync(
    join(dir, 'tag.rules'),
    'alert tcp-pkt any any -> any 80 (msg:"evil"; content:"evil"; tag:session,packets 2; sid:1;)\n',
  );
  const logged = async (path: string) => {
    const out: number[] = [];
    for await (const p of readCapture(createReadStream(path))) out.push(p.tsUs - 1_000_000);
    return out;
  };

  it('runCapture writes the alerting packet and those its tag covers, as captured, in order', async () => {
    const rules = [parseRule(readFileSync(join(dir, 'tag.rules'), 'utf8').trim())];
    const r = await runCapture(join(dir, 'tag.pcap'), rules, { logPcap: join(dir, 'log.pcap') });
    expect(r.alerts.map((a) => a.pcapCnt)).toEqual([4]);
    expect(r.packetsLogged).toBe(3);
    expect(r.stats.packetsTagged).toBe(2);
    // the other session's SYN between them is not its flow's
    expect(await logged(join(dir, 'log.pcap'))).toEqual([3, 4, 6]);
    // filtered out (--bpf), that SYN is not inspected: it does not take the tagged packet's mark before it
    const f = await runCapture(join(dir, 'tag.pcap'), rules, {
      logPcap: join(dir, 'filtered.pcap'),
      filter: 'not port 40001',
    });
    expect(f.packetsLogged).toBe(3);
    expect(await logged(join(dir, 'filtered.pcap'))).toEqual([3, 4, 6]);
    const back = readFileSync(join(dir, 'log.pcap'));
    // the packets' bytes as captured (after the 24-byte file header and a 16-byte record header)
    expect(Buffer.from(back.subarray(40, 40 + frames[3]!.length))).toEqual(Buffer.from(frames[3]!));
  });

  it('strata ids --log-pcap, its counts in the stats, and its refusals', async () => {
    const ids = async (...args: string[]) => {
      const c = captureIo('', {}, dir);
      const rc = await runCommand(commands[0]!, ['--rules', 'tag.rules', ...args], c.io);
      return { rc, err: c.stderr() };
    };
    const r = await ids('--log-pcap', 'cli.pcap', '--stats', 'stats.json', 'tag.pcap');
    expect(r.rc, r.err).toBe(0);
    expect(await logged(join(dir, 'cli.pcap'))).toEqual([3, 4, 6]);
    const stats = JSON.parse(readFileSync(join(dir, 'stats.json'), 'utf8'));
    expect([stats.packetsTagged, stats.packetsLogged]).toEqual([2, 3]);
    for (const [args, want] of [
      [['--workers', '2'], /--log-pcap needs one engine/],
      [['tag.pcap'], /--log-pcap writes one pcap/],
    ] as const) {
      const bad = await ids('--log-pcap', 'x.pcap', ...args, 'tag.pcap');
      expect(bad.rc).toBe(2);
      expect(bad.err).toMatch(want);
    }
  });
});
