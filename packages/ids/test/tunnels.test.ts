/**
 * Encapsulations the decoder undoes (IP in IP, GRE with PPP, Ethernet and ERSPAN, VXLAN, Geneve, GTP-U,
 * Teredo, PPPoE, MPLS, VN-Tag, E-Tag): the inner packet is what the rules see, as Snort 3 and Suricata
 * inspect it. Found by comparing the decoder with Wireshark's dissectors (`tshark`) over both traces:
 * before, 133 packets of IPv6 in IPv4 in ndpi-mix-a and 1,185 GRE, 529 IPv6-in-IPv6, 123 VXLAN packets
 * of suricata-verify-mix were inspected as their outer packet only.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { captureIo, runCommand } from '@strata/cli';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  commands,
  conversationFrames,
  decode,
  encodePcap,
  loadRules,
  newDecodeStats,
  Pipeline,
  rejectFrames,
  rewritePayload,
  runCapture,
  runCaptureParallel,
  tcpFrame,
  tunnelDepthMax,
} from '../src/index.js';

const cat = (...parts: (Uint8Array | number[])[]): Buffer => Buffer.concat(parts.map((p) => Buffer.from(p)));
const u16 = (n: number) => [n >> 8, n & 0xff];
/** An IPv4 header (checksum right) around `payload`. */
function ip4(proto: number, payload: Uint8Array, src = [192, 0, 2, 1], dst = [192, 0, 2, 2]): Buffer {
  const h = Buffer.from([0x45, 0, ...u16(20 + payload.length), 0, 1, 0, 0, 64, proto, 0, 0, ...src, ...dst]);
  let s = 0;
  for (let i = 0; i < 20; i += 2) s += h.readUInt16BE(i);
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  h.writeUInt16BE(~s & 0xffff, 10);
  return cat(h, payload);
}
/** An IPv6 header around `payload` (2001:db8::1 -> 2001:db8::2 unless given). */
function ip6(next: number, payload: Uint8Array, last = [1, 2]): Buffer {
  const addr = (n: number) => [0x20, 0x01, 0x0d, 0xb8, ...new Array(11).fill(0), n];
  return cat(
    [0x60, 0, 0, 0, ...u16(payload.length), next, 64, ...addr(last[0]!), ...addr(last[1]!)],
    payload,
  );
}
const udp = (sp: number, dp: number, payload: Uint8Array) =>
  cat([...u16(sp), ...u16(dp), ...u16(8 + payload.length), 0, 0], payload);
const eth = (type: number, payload: Uint8Array) => cat(new Array(12).fill(2), u16(type), payload);
/** An Ethernet `frame` in VXLAN (the I flag, VNI 1) in UDP to 4789 in IPv4 in Ethernet. */
const vxlan = (frame: Uint8Array) =>
  eth(0x0800, ip4(17, udp(5000, 4789, cat([8, 0, 0, 0, 0, 0, 1, 0], frame))));
/** The inner packet every case carries: IPv4 10.0.0.1:40000 -> 10.0.0.2:80, TCP, "evil payload". */
const inner4 = () => Buffer.from(tcpFrame({ payload: 'evil payload', flags: 0x18 }).subarray(14));
/** The same TCP segment in IPv6 (checksum not right: decoding does not need it). */
const inner6 = () => ip6(6, inner4().subarray(20), [7, 8]);

const cases: [string, () => Buffer, number, string][] = [
  ['IPv4 in IPv4', () => eth(0x0800, ip4(4, inner4())), 1, '10.0.0.1'],
  ['IPv6 in IPv4 (6in4)', () => eth(0x0800, ip4(41, inner6())), 1, '2001:db8::7'],
  ['IPv4 in IPv6', () => eth(0x86dd, ip6(4, inner4())), 1, '10.0.0.1'],
  ['IPv6 in IPv6', () => eth(0x86dd, ip6(41, inner6())), 1, '2001:db8::7'],
  ['GRE, IPv4', () => eth(0x0800, ip4(47, cat([0, 0, 8, 0], inner4()))), 1, '10.0.0.1'],
  [
    'GRE with checksum, key and sequence',
    () => eth(0x0800, ip4(47, cat([0xb0, 0, 8, 0], new Array(12).fill(0), inner4()))),
    1,
    '10.0.0.1',
  ],
  [
    'GRE, Ethernet (0x6558) with a VLAN tag',
    () => eth(0x0800, ip4(47, cat([0, 0, 0x65, 0x58], eth(0x8100, cat([0, 5, 8, 0], inner4()))))),
    1,
    '10.0.0.1',
  ],
  [
    'GRE, PPP (PPTP, version 1, compressed protocol)',
    () =>
      eth(
        0x0800,
        ip4(47, cat([0x30, 0x81, 0x88, 0x0b], u16(0), u16(7), [0, 0, 0, 1], [0, 0, 0, 1], [0x21], inner4())),
      ),
    1,
    '10.0.0.1',
  ],
  [
    'ERSPAN type II',
    () =>
      eth(
        0x0800,
        ip4(47, cat([0x10, 0, 0x88, 0xbe], [0, 0, 0, 1], new Array(8).fill(0), eth(0x0800, inner4()))),
      ),
    1,
    '10.0.0.1',
  ],
  [
    'ERSPAN type III with its subheader',
    () =>
      eth(
        0x0800,
        ip4(
          47,
          cat(
            [0x10, 0, 0x22, 0xeb],
            [0, 0, 0, 1],
            [...new Array(11).fill(0), 1],
            new Array(8).fill(0),
            eth(0x0800, inner4()),
          ),
        ),
      ),
    1,
    '10.0.0.1',
  ],
  ['VXLAN', () => vxlan(eth(0x0800, inner4())), 1, '10.0.0.1'],
  [
    'Geneve with an option, IPv6',
    () => eth(0x0800, ip4(17, udp(5000, 6081, cat([1, 0, 0x86, 0xdd, 0, 0, 1, 0], [0, 1, 2, 1], inner6())))),
    1,
    '2001:db8::7',
  ],
  [
    'GTP-U with an extension header',
    () =>
      eth(
        0x0800,
        ip4(
          17,
          udp(
            2152,
            2152,
            cat([0x34, 0xff, ...u16(8 + inner4().length), 0, 0, 0, 1, 0, 0, 0, 0x85], [1, 0, 0, 0], inner4()),
          ),
        ),
      ),
    1,
    '10.0.0.1',
  ],
  [
    'Teredo with an origin indication',
    () => eth(0x0800, ip4(17, udp(3544, 40000, cat([0, 0, 1, 2, 3, 4, 5, 6], inner6())))),
    1,
    '2001:db8::7',
  ],
  [
    'PPPoE session',
    () => eth(0x8864, cat([0x11, 0, 0, 1], u16(2 + 40 + 12), [0, 0x21], inner4())),
    0,
    '10.0.0.1',
  ],
  [
    'PPPoE session, compressed protocol',
    () => eth(0x8864, cat([0x11, 0, 0, 1], u16(1 + 40 + 12), [0x21], inner4())),
    0,
    '10.0.0.1',
  ],
  ['MPLS, two labels', () => eth(0x8847, cat([0, 1, 0, 64], [0, 2, 1, 64], inner4())), 0, '10.0.0.1'],
  [
    'MPLS pseudowire with control word, Ethernet',
    () => eth(0x8847, cat([0, 1, 1, 64], [0, 0, 0, 0], eth(0x0800, inner4()))),
    0,
    '10.0.0.1',
  ],
  ['VN-Tag', () => eth(0x8926, cat([0, 0, 0, 0], u16(0x0800), inner4())), 0, '10.0.0.1'],
  ['E-Tag', () => eth(0x893f, cat([0, 0, 0, 0, 0, 0], u16(0x0800), inner4())), 0, '10.0.0.1'],
  ['Cisco FabricPath', () => eth(0x8903, cat([0, 0x20], eth(0x0800, inner4()))), 0, '10.0.0.1'],
  // the link layer's own encapsulations inside an encapsulated Ethernet frame (before, only VLAN tags were
  // followed there: PPPoE or MPLS inside VXLAN left the VXLAN packet inspected as UDP)
  [
    'VXLAN, a VLAN tag, PPPoE',
    () => vxlan(eth(0x8100, cat([0, 5, 0x88, 0x64], [0x11, 0, 0, 1], u16(2 + 40 + 12), [0, 0x21], inner4()))),
    1,
    '10.0.0.1',
  ],
  [
    'GRE, Ethernet, MPLS',
    () => eth(0x0800, ip4(47, cat([0, 0, 0x65, 0x58], eth(0x8847, cat([0, 1, 1, 64], inner4()))))),
    1,
    '10.0.0.1',
  ],
  [
    'Geneve, Ethernet, E-Tag',
    () =>
      eth(
        0x86dd,
        ip6(
          17,
          udp(
            5000,
            6081,
            cat([0, 0, 0x65, 0x58, 0, 0, 1, 0], eth(0x893f, cat([0, 0, 0, 0, 0, 0], u16(0x0800), inner4()))),
          ),
        ),
      ),
    1,
    '10.0.0.1',
  ],
  [
    'two deep: IPv6 in GRE in VXLAN',
    () => vxlan(eth(0x0800, ip4(47, cat([0, 0, 0x86, 0xdd], inner6())))),
    2,
    '2001:db8::7',
  ],
];

describe('tunnels', () => {
  it('each encapsulation decodes to the packet it carries', () => {
    for (const [name, frame, tunnels, src] of cases) {
      const stats = newDecodeStats();
      const d = decode(1, frame(), stats);
      if (typeof d === 'string') throw new Error(`${name}: ${d}`);
      expect(
        [d.src, d.srcPort, d.dstPort, d.proto, Buffer.from(d.payload).toString(), d.tunnels],
        name,
      ).toEqual([src, 40000, 80, 6, 'evil payload', tunnels]);
      expect(stats.tunneled, name).toBe(tunnels > 0 ? 1 : 0);
      // every prefix of the frame decodes or fails by name, never throws
      const f = frame();
      for (let n = 0; n < f.length; n++) decode(1, f.subarray(0, n), stats);
    }
  });

  it('mutated encapsulations decode or fail by name, never throw (property)', () => {
    fc.assert(
      fc.property(
        fc.nat(cases.length - 1),
        fc.array(fc.tuple(fc.nat(), fc.nat(255)), { minLength: 1, maxLength: 6 }),
        fc.nat(),
        (which, flips, cut) => {
          const f = cases[which]![1]();
          for (const [at, v] of flips) f[at % f.length] = v;
          const d = decode(1, f.subarray(0, f.length - (cut % 8)), newDecodeStats());
          if (typeof d !== 'string') expect(d.tunnels).toBeLessThanOrEqual(tunnelDepthMax);
        },
      ),
      { numRuns: 3000 },
    );
  });

  it('what only looks like one is left as it is; nesting stops at tunnelDepthMax', () => {
    const plain = (f: Buffer) => {
      const d = decode(1, f, newDecodeStats());
      if (typeof d === 'string') throw new Error(d);
      return [d.proto, d.srcPort, d.dstPort, d.tunnels];
    };
    // VXLAN without its I flag, a Teredo bubble (no IPv6 packet filling the datagram), GRE version 2
    expect(
      plain(eth(0x0800, ip4(17, udp(5000, 4789, cat([0, 0, 0, 0, 0, 0, 1, 0], eth(0x0800, inner4())))))),
    ).toEqual([17, 5000, 4789, 0]);
    expect(plain(eth(0x0800, ip4(17, udp(3544, 40000, cat(inner6(), [0])))))).toEqual([17, 3544, 40000, 0]);
    expect(plain(eth(0x0800, ip4(47, cat([0, 2, 8, 0], inner4()))))).toEqual([47, 0, 0, 0]);
    // an encapsulated frame that is not IP (ARP in VXLAN) or will not decode (a cut IPv4 header in GRE):
    // the packet that carries it is inspected, as before tunnels were followed
    const arp = eth(0x0806, new Uint8Array(28));
    expect(plain(vxlan(arp))).toEqual([17, 5000, 4789, 0]);
    expect(plain(eth(0x0800, ip4(47, cat([0, 0, 8, 0], inner4().subarray(0, 12)))))).toEqual([47, 0, 0, 0]);
    // a link header cut short inside the encapsulated frame (a VLAN tag, an MPLS label without the bottom
    // of the stack, PPPoE carrying LCP): the carrier too
    expect(plain(vxlan(eth(0x8100, cat([0, 5]))))).toEqual([17, 5000, 4789, 0]);
    expect(plain(vxlan(eth(0x8847, cat([0, 1, 0, 64]))))).toEqual([17, 5000, 4789, 0]);
    expect(plain(vxlan(eth(0x8864, cat([0x11, 0, 0, 1], u16(6), [0xc0, 0x21], [1, 1, 0, 4]))))).toEqual([
      17, 5000, 4789, 0,
    ]);
    expect(plain(eth(0x0800, ip4(4, ip4(47, cat([0, 0, 8, 0], [0x45, 0])))))).toEqual([47, 0, 0, 1]);
    // IPv4 in IPv4 five deep: four undone, the fifth header is the innermost inspected (its protocol 4)
    let p: Buffer = inner4();
    for (let i = 0; i < tunnelDepthMax + 1; i++) p = ip4(4, p);
    expect(tunnelDepthMax).toBe(4);
    expect(plain(eth(0x0800, p))).toEqual([4, 0, 0, 4]);
  });

  it('an IPv4 total length of 0 (segmentation offload on the sending host) is the rest of the frame', () => {
    const f = Buffer.from(tcpFrame({ payload: 'x'.repeat(3000) }));
    f.writeUInt16BE(0, 16);
    const d = decode(1, f, newDecodeStats());
    if (typeof d === 'string') throw new Error(d);
    expect(d.payload.length).toBe(3000);
  });

  it('rules see a conversation inside VXLAN and GRE as they see it bare; no reject or rewrite through a tunnel', async () => {
    const rules = loadRules(
      [
        'alert tcp any any -> any 80 (msg:"evil in the stream"; flow:established,to_server; content:"evil"; sid:1;)',
        'alert http any any -> any any (msg:"evil in the URI"; http_uri; content:"/evil"; sid:2;)',
      ].join('\n'),
      't',
    ).rules;
    const bare = conversationFrames(
      [
        [0, 'GET /evil HTTP/1.1\r\nHost: x\r\n\r\n'],
        [1, 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'],
      ],
      { serverPort: 80, fin: true },
    );
    const wraps: [string, (ip: Uint8Array) => Buffer][] = [
      ['bare', (ip) => eth(0x0800, ip)],
      ['VXLAN', (ip) => vxlan(eth(0x0800, ip))],
      ['GRE', (ip) => eth(0x0800, ip4(47, cat([0, 0, 8, 0], ip)))],
    ];
    const seen: string[][] = [];
    for (const [name, wrap] of wraps) {
      const frames = bare.map((f, i) => ({ tsUs: 1_700_000_000_000_000 + i, data: wrap(f.subarray(14)) }));
      const r = await runCapture(Readable.from([encodePcap(frames)]), rules);
      seen.push(r.alerts.map((a) => `${a.sid} ${a.src}:${a.srcPort} -> ${a.dst}:${a.dstPort}`));
      expect(r.tunneled, name).toBe(name === 'bare' ? 0 : frames.length);
    }
    expect(seen[0]!.length).toBe(2);
    expect(seen[1]).toEqual(seen[0]);
    expect(seen[2]).toEqual(seen[0]);
    const f = wraps[1]![1](bare[3]!.subarray(14));
    const d = decode(1, f, newDecodeStats());
    if (typeof d === 'string') throw new Error(d);
    expect(d.tunnels).toBe(1);
    expect(rejectFrames(f, 1, d)).toEqual([]);
    expect(rewritePayload(f, d, new Uint8Array(d.payload.length))).toBeUndefined();
  });

  /** The rule and the conversation of the next two tests: a GET of /evil, sid 1 on it. */
  const evilText =
    'alert tcp any any -> any 80 (msg:"evil"; flow:established,to_server; content:"evil"; sid:1;)';
  const evil = loadRules(evilText, 't').rules;
  const evilConversation = () =>
    conversationFrames([[0, 'GET /evil HTTP/1.1\r\n\r\n']], { serverPort: 80, fin: true });
  /**
   * A capture of every frame of `evilConversation` twice (`copies`): two flows, two alerts, on one thread and
   * on 2 workers; one flow and one alert with `option`. Returns the capture and the run apart.
   */
  const capturedTwice = async (
    copies: (f: Uint8Array, i: number) => { tsUs: number; data: Uint8Array }[],
    option: 'vlanAgnostic' | 'tunnelAgnostic',
  ) => {
    const pcap = encodePcap(evilConversation().flatMap(copies));
    const apart = await runCapture(Readable.from([pcap]), evil);
    expect(apart.alerts.map((a) => a.sid)).toEqual([1, 1]);
    expect(apart.flows.created).toBe(2);
    const merged = await runCapture(Readable.from([pcap]), evil, { [option]: true });
    expect(merged.alerts.map((a) => a.sid)).toEqual([1]);
    expect(merged.flows.created).toBe(1);
    // on workers the same (the option goes to each worker's engine)
    for (const on of [false, true]) {
      const r = await runCaptureParallel(Readable.from([pcap]), evil, { [option]: on, workers: 2 });
      expect(r.alerts.map((a) => a.sid)).toEqual(on ? [1] : [1, 1]);
    }
    return { pcap, apart };
  };

  it('a conversation routed between two VLANs and captured on both is two flows (one with vlanAgnostic)', async () => {
    // each frame on VLAN 10, then again on VLAN 20 (a router on a stick, the capture on its trunk)
    await capturedTwice(
      (f, i) =>
        [10, 20].map((vlan, j) => ({
          tsUs: 1_700_000_000_000_000 + 2 * i + j,
          data: cat(f.subarray(0, 12), [0x81, 0, ...u16(vlan)], f.subarray(12)),
        })),
      'vlanAgnostic',
    );
  });

  it('a conversation captured bare and inside GRE (at the tunnel endpoint) is two flows (one with tunnelAgnostic)', async () => {
    // each frame in GRE, then bare: the same 5-tuple at depths 1 and 0
    const { pcap, apart } = await capturedTwice(
      (f, i) => [
        {
          tsUs: 1_700_000_000_000_000 + 2 * i,
          data: eth(0x0800, ip4(47, cat([0, 0, 8, 0], f.subarray(14)))),
        },
        { tsUs: 1_700_000_000_000_001 + 2 * i, data: f },
      ],
      'tunnelAgnostic',
    );
    expect(apart.tunneled).toBe(evilConversation().length);
    // and from the command line
    const dir = mkdtempSync(join(tmpdir(), 'strata-tunnels-'));
    try {
      writeFileSync(join(dir, 'r.rules'), `${evilText}\n`);
      writeFileSync(join(dir, 'c.pcap'), pcap);
      for (const [flag, n] of [
        [[], 2],
        [['--tunnel-agnostic'], 1],
      ] as const) {
        const c = captureIo('', {}, dir);
        const rc = await runCommand(commands[0]!, ['--rules', 'r.rules', ...flag, 'c.pcap'], c.io);
        expect(rc, c.stderr()).toBe(0);
        expect(
          c
            .stdout()
            .split('\n')
            .filter((l) => l.includes('[1:1:0]')).length,
        ).toBe(n);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a datagram fragmented inside a tunnel is rebuilt and inspected as tunneled: no reject, as unfragmented', async () => {
    const rules = loadRules('reject udp any any -> any 53 (msg:"evil"; content:"evil"; sid:7;)', 't').rules;
    // an inner IPv4 UDP datagram cut after 16 bytes of its payload (the rule's content in the second piece)
    const body = Buffer.from('0123456789abcdef and then evil things');
    const whole = ip4(17, udp(4000, 53, body), [10, 0, 0, 1], [10, 0, 0, 2]);
    const piece = (from: number, to: number, more: boolean): Buffer => {
      const h = Buffer.from(whole.subarray(0, 20));
      h.writeUInt16BE(20 + to - from, 2);
      h.writeUInt16BE((more ? 0x2000 : 0) | (from / 8), 6);
      h.writeUInt16BE(0, 10);
      let s = 0;
      for (let i = 0; i < 20; i += 2) s += h.readUInt16BE(i);
      while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
      h.writeUInt16BE(~s & 0xffff, 10);
      return cat(h, whole.subarray(20 + from, 20 + to));
    };
    const pieces = [piece(0, 24, true), piece(24, whole.length - 20, false)];
    const inVxlan = (ip: Uint8Array) => vxlan(eth(0x0800, ip));
    const outcome = (frames: Buffer[]) => {
      const p = new Pipeline(rules, { ips: true });
      const seen = frames.map((data, i) => {
        const alerts = p.push({
          tsUs: 1_700_000_000_000_000 + i,
          linkType: 1,
          data,
          origLength: data.length,
        });
        return {
          sids: alerts.map((a) => a.sid),
          drop: p.verdict.drop,
          responses: p.verdict.responses.length,
        };
      });
      return { seen, reassembled: p.defrag?.stats.reassembled };
    };
    // bare, the rebuilt datagram is rejected (an ICMP unreachable back to its sender)
    const bare = outcome(pieces.map((ip) => eth(0x0800, ip)));
    expect(bare.seen[1]).toEqual({ sids: [7], drop: true, responses: 1 });
    // tunneled: the same alert and drop, and no response built from the outer headers as if they were a
    // link layer (it was: the first fragment's bytes before the inner IP header, outer IP and UDP included)
    const tunneled = outcome(pieces.map(inVxlan));
    expect(tunneled.reassembled).toBe(1);
    expect(tunneled.seen).toEqual([
      { sids: [], drop: false, responses: 0 },
      { sids: [7], drop: true, responses: 0 },
    ]);
    // unfragmented in the tunnel: the same
    expect(outcome([inVxlan(whole)]).seen).toEqual([{ sids: [7], drop: true, responses: 0 }]);
    // on worker threads, which decode the rebuilt datagram again, the same
    for (const [wrap, responses] of [
      [(ip: Buffer) => eth(0x0800, ip), 1],
      [inVxlan, 0],
    ] as const) {
      const pcap = encodePcap(pieces.map((ip, i) => ({ tsUs: 1_700_000_000_000_000 + i, data: wrap(ip) })));
      const r = await runCaptureParallel(Readable.from([pcap]), rules, { ips: true, workers: 2 });
      expect([r.alerts.map((a) => a.sid), r.verdicts]).toEqual([[7], { passed: 1, dropped: 1, responses }]);
    }
  });
});
