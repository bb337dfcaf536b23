import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { wordSum, wordSumJs } from '../src/decode.js';
import {
  type Decoded,
  decode,
  decodeInto,
  Engine,
  ipv4Bytes,
  newDecodeStats,
  PacketRecord,
  parseRule,
  tcpFrame,
} from '../src/index.js';
import { wasmWordSum } from '../src/scan-wasm.js';
import { ACK, handshake, pkt, withoutScanWasm } from './helpers.js';

/** Raw IPv4 + TCP (ports 1 -> 2) carrying `payload`, with a correct TCP checksum unless `breakSum`. */
function ipTcp(payload: string, breakSum = false): Uint8Array {
  const p = Buffer.from(payload, 'latin1');
  const f = Buffer.alloc(40 + p.length);
  f[0] = 0x45;
  f.writeUInt16BE(f.length, 2);
  f[8] = 64;
  f[9] = 6;
  f.set([10, 0, 0, 1, 10, 0, 0, 2], 12);
  f.writeUInt16BE(1, 20);
  f.writeUInt16BE(2, 22);
  f[32] = 0x50;
  f[33] = 0x18;
  p.copy(f, 40);
  let s = 6 + 20 + p.length;
  for (let i = 12; i < 20; i += 2) s += f.readUInt16BE(i);
  for (let i = 20; i < f.length; i += 2) s += i + 1 < f.length ? f.readUInt16BE(i) : f[i]! << 8;
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  f.writeUInt16BE((~s & 0xffff) ^ (breakSum ? 1 : 0), 36);
  let h = 0;
  for (let i = 0; i < 20; i += 2) h += f.readUInt16BE(i);
  while (h > 0xffff) h = (h & 0xffff) + (h >>> 16);
  f.writeUInt16BE(~h & 0xffff, 10);
  return f;
}

describe('decoding details', () => {
  it('checks the TCP checksum over the pseudo-header (odd and even lengths)', () => {
    for (const text of ['abc', 'abcd']) {
      const ok = decode(101, ipTcp(text), newDecodeStats());
      const bad = decode(101, ipTcp(text, true), newDecodeStats());
      expect(typeof ok !== 'string' && ok.l4ChecksumOk && ok.ipChecksumOk).toBe(true);
      expect(typeof bad !== 'string' && bad.l4ChecksumOk).toBe(false);
    }
    // a truncated capture cannot be checked: it is not held against the packet
    const cut = decode(101, ipTcp('abcdef', true).subarray(0, 42), newDecodeStats());
    expect(typeof cut !== 'string' && cut.l4ChecksumOk).toBe(true);
  });

  it('decodes the frames craft.ts builds: the fields given, both checksums good (property)', () => {
    const ip = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((b) => b.join('.'));
    fc.assert(
      fc.property(
        fc.record({
          src: ip,
          dst: ip,
          sp: fc.nat(65535),
          dp: fc.nat(65535),
          flags: fc.nat(63),
          seq: fc.nat(0xffffffff),
          ack: fc.nat(0xffffffff),
          payload: fc.uint8Array({ maxLength: 300 }),
        }),
        (seg) => {
          const d = decode(1, tcpFrame(seg), newDecodeStats());
          if (typeof d === 'string') throw new Error(`not decoded: ${d}`);
          expect([d.src, d.dst, d.srcPort, d.dstPort, d.tcpFlags, d.seq, d.ack]).toEqual([
            seg.src,
            seg.dst,
            seg.sp,
            seg.dp,
            seg.flags,
            seg.seq,
            seg.ack,
          ]);
          expect(d.payload).toEqual(seg.payload);
          expect([d.ipChecksumOk, d.l4ChecksumOk]).toEqual([true, true]);
        },
      ),
      { numRuns: 300 },
    );
    for (const bad of ['10.0.0.256', '10.0.0', '10.0.0.1.2', 'a.b.c.d', '10.0.0.-1', ''])
      expect(() => ipv4Bytes(bad), bad).toThrow(/not a dotted IPv4 address/);
  });

  it('sums 16-bit words as a byte loop does, at any alignment and length (property)', () => {
    // the folded one's-complement sum (RFC 1071), by the plain definition
    const fold = (x: number) => {
      while (x > 0xffff) x = (x & 0xffff) + (x >>> 16);
      return x;
    };
    const plain = (b: Uint8Array, from: number, to: number) => {
      let s = 0;
      for (let i = from; i < to; i += 2) s += (b[i]! << 8) | (i + 1 < to ? b[i + 1]! : 0);
      return fold(s);
    };
    let wide = 0;
    const wasm = wasmWordSum()!;
    expect(wasm, 'build/scan.wasm is built by `npm run build`').toBeDefined();
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 0, maxLength: 400, size: 'max' }),
        fc.nat(7),
        fc.nat(400),
        fc.nat(400),
        fc.boolean(),
        (bytes, lead, x, y, ones) => {
          if (ones) bytes.fill(0xff); // the largest words: the sum's carries
          // the bytes at `lead` into a buffer of their own, so both the view's offset and the range's vary
          const buf = new Uint8Array(lead + bytes.length);
          buf.set(bytes, lead);
          const b = buf.subarray(lead);
          const from = Math.min(x, y, b.length);
          const to = Math.min(Math.max(x, y), b.length);
          if (to - from >= 96) wide++; // decode.ts wordSumWideMin
          const want = plain(b, from, to);
          expect(fold(wordSum(b, from, to))).toBe(want);
          // each way on its own, at every length: JavaScript's and WebAssembly's (a copy, summed 16 bytes
          // at a time; the bytes after the range are not its)
          expect(fold(wordSumJs(b, from, to))).toBe(want);
          expect(fold(wasm.sum(b, from, to))).toBe(want);
        },
      ),
      { numRuns: 2000 },
    );
    expect(wide).toBeGreaterThan(500); // the aligned-word path was taken
  });

  it('sums in JavaScript when build/scan.wasm cannot be read, the same sums', async () => {
    await withoutScanWasm(async () => {
      const fresh = await import('../src/decode.js');
      const { wasmWordSum: freshWasm } = await import('../src/scan-wasm.js');
      expect(freshWasm()).toBeUndefined();
      const b = Uint8Array.from({ length: 3000 }, (_, i) => (i * 37 + 11) & 0xff);
      for (const [from, to] of [
        [0, 3000],
        [1, 2999],
        [7, 200],
        [3, 50],
      ] as const)
        expect(fresh.wordSum(b, from, to) % 0xffff).toBe(wordSum(b, from, to) % 0xffff);
    });
  });

  it('sums ranges whose words add up past 2^32 and past 2^53 (3 and 9 MiB of 0xff)', () => {
    const fold = (x: number) => {
      while (x > 0xffff) x = (x & 0xffff) + (x >>> 16);
      return x;
    };
    // by the plain definition, in a sum that stays exact (below 2^53)
    const plain = (b: Uint8Array) => {
      let s = 0;
      for (let i = 0; i < b.length; i += 2) s += (b[i]! << 8) | (i + 1 < b.length ? b[i + 1]! : 0);
      return s % 0xffff || (s === 0 ? 0 : 0xffff);
    };
    for (const [n, lead] of [
      [(3 << 20) + 1, 0],
      [3 << 20, 1],
      [1 << 19, 0],
      [(9 << 20) + 3, 2], // more than 2^21 words, whose sum as doubles would lose its low bits unfolded
    ] as const) {
      const buf = new Uint8Array(lead + n).fill(0xff);
      buf[lead + n - 1] = 0x01;
      // an even word among them (a word's low byte, at a multiple of 4): their sum is odd, which a double
      // past 2^53 cannot hold
      buf[1004] = 0xfe;
      const b = buf.subarray(lead);
      expect(fold(wordSum(b, 0, n))).toBe(plain(b));
      expect(fold(wordSumJs(b, 0, n))).toBe(plain(b));
      // WebAssembly: its memory grown to the range, its 32-bit lanes emptied every 512 KiB
      expect(fold(wasmWordSum()!.sum(b, 0, n))).toBe(plain(b));
      expect(fold(wasmWordSum()!.sum(b, 1, n))).toBe(plain(b.subarray(1)));
    }
  });

  it('ICMP payload starts after the 8-byte header; id and sequence come from it', () => {
    const f = new Uint8Array(20 + 8 + 4);
    f[0] = 0x45;
    f[3] = f.length;
    f[9] = 1;
    f.set([8, 0, 0, 0, 0x12, 0x34, 0x00, 0x07, 0x61, 0x62, 0x63, 0x64], 20);
    const d = decode(101, f, newDecodeStats());
    expect(
      typeof d !== 'string' && [d.icmpType, d.icmpId, d.icmpSeq, Buffer.from(d.payload).toString()],
    ).toEqual([8, 0x1234, 7, 'abcd']);
  });

  it('flow:established is false on the ACK that completes the handshake, true after it', () => {
    const e = new Engine([parseRule('alert tcp any any -> any any (flow:established; sid:1;)')]);
    const [syn, synAck, ack] = handshake();
    const got = [syn!, synAck!, ack!, pkt({ flags: ACK, seq: 1001, ack: 5001 })].map(
      (p, i) => e.inspect(p, i).length,
    );
    expect(got).toEqual([0, 0, 0, 1]);
  });

  it('flow:not_established holds on the handshake and not after it (it was ignored: the rule fired on both)', () => {
    const e = new Engine([
      parseRule('alert tcp any any -> any any (flow:not_established; sid:1;)'),
      parseRule('alert tcp any any -> any any (flow:not_established; content:"x"; sid:2;)'),
    ]);
    const [syn, synAck, ack] = handshake();
    const got = [syn!, synAck!, ack!, pkt({ flags: ACK, seq: 1001, ack: 5001, payload: 'x' })].map((p, i) =>
      e.inspect(p, i).map((a) => a.sid),
    );
    expect(got).toEqual([[1], [1], [1], []]);
    // a packet of a flow seen midstream (no handshake): not established
    const mid = new Engine([
      parseRule('alert tcp any any -> any any (flow:not_established; content:"x"; sid:2;)'),
    ]);
    expect(
      mid.inspect(pkt({ sp: 41000, flags: ACK, seq: 7, ack: 9, payload: 'x' }), 0).map((a) => a.sid),
    ).toEqual([2]);
  });

  it('flow options not known or contradictory skip the rule with the reason (they were ignored)', () => {
    const e = new Engine(
      [
        'alert tcp any any -> any any (flow:sideways; sid:1;)',
        'alert tcp any any -> any any (flow:to_server,to_client; sid:2;)',
        'alert tcp any any -> any any (flow:established,not_established; sid:3;)',
        'alert tcp any any -> any any (flow:only_stream,no_stream; sid:4;)',
        'alert tcp any any -> any any (flow:no_frag,only_frag; sid:5;)',
        'alert tcp any any -> any any (flow:only_stream,only_frag; sid:7;)',
        'alert tcp any any -> any any (flow: from_client , established; sid:6;)',
      ].map((r) => parseRule(r)),
    );
    expect(e.compiled.map((c) => c.rule.sid)).toEqual([6]);
    expect(e.skipped.map((x) => x.reason)).toEqual([
      expect.stringMatching(/^flow: unknown option 'sideways' \(established, not_established, /),
      "flow: 'to_server,to_client' asks for both directions",
      "flow: 'established,not_established' asks for established and not_established",
      "flow: 'only_stream,no_stream' asks for only_stream and no_stream",
      "flow: 'no_frag,only_frag' asks for no_frag and only_frag",
      "flow: 'only_stream,only_frag' asks for only_stream and only_frag: it could never match",
    ]);
    expect(() => parseRule('alert tcp any any -> any any (content:""; sid:7;)')).toThrow(
      /content: empty pattern/,
    );
  });

  it('a packet with a bad checksum is matched on its own but moves no TCP state', () => {
    const e = new Engine([parseRule('alert tcp any any -> any any (flow:established; sid:1;)')]);
    const [syn, synAck, ack] = handshake();
    e.inspect(syn!, 0);
    e.inspect(synAck!, 1, undefined, false);
    e.inspect(ack!, 2);
    expect(e.inspect(pkt({ flags: ACK, seq: 1001, ack: 5001 }), 3)).toEqual([]);
    expect(e.stats.badChecksums).toBe(1);
  });
});

describe('more header options', () => {
  const fire = (rule: string, d: ReturnType<typeof pkt>) =>
    new Engine([parseRule(rule)]).inspect(d, 0).map((a) => a.sid);

  it('ipopts: IPv4 options are listed and matched by name', () => {
    const f = new Uint8Array(28 + 8);
    f[0] = 0x47; // 28-byte header: two option words
    f[3] = f.length;
    f[9] = 17;
    f.set([1, 7, 3, 4, 0, 0, 0, 0], 20); // NOP, record route (length 3), end of list
    const d = decode(101, f, newDecodeStats());
    expect(typeof d !== 'string' && d.ipOptions).toEqual([1, 7, 0]);
    if (typeof d === 'string') return;
    expect(fire('alert ip any any -> any any (ipopts:rr; sid:1;)', d)).toEqual([1]);
    expect(fire('alert ip any any -> any any (ipopts:lsrr; sid:1;)', d)).toEqual([]);
    expect(fire('alert ip any any -> any any (ipopts:any; sid:1;)', d)).toEqual([1]);
  });

  it('id, fragbits, seq, ack and ip_proto: IPv4 and TCP header fields', () => {
    const f = Buffer.from(ipTcp('x'));
    f.writeUInt16BE(13170, 4); // identification
    f[6] = 0x40 | 0x80; // don't fragment and the reserved bit
    f.writeUInt32BE(1958810375, 24); // sequence number
    f.writeUInt32BE(0, 28);
    const d = decode(101, f, newDecodeStats());
    if (typeof d === 'string') throw new Error(d);
    expect([d.ipId, d.ipFlags, d.seq, d.ack]).toEqual([13170, 6, 1958810375, 0]);
    const rule = (opts: string) => `alert tcp any any -> any any (${opts} sid:1;)`;
    const fires = (opts: string) => fire(rule(opts), d).length === 1;
    expect([fires('id:13170;'), fires('id:13171;'), fires('id:>13000;')]).toEqual([true, false, true]);
    expect([fires('seq:1958810375;'), fires('seq:1;'), fires('ack:0;'), fires('ack:1;')]).toEqual([
      true,
      false,
      true,
      false,
    ]);
    // fragbits: D and R set, M clear
    expect(
      ['DR', 'D', 'D+', 'M+', 'M*', 'MD*', '!M', '!D', '+DR', 'dr'].map((v) => fires(`fragbits:${v};`)),
    ).toEqual([true, false, true, false, false, true, true, false, true, true]);
    expect(new Engine([parseRule(rule('fragbits:X;'))]).skipped[0]?.reason).toMatch(/bad fragbits 'X'/);
    // ip_proto: a number or a name, negated or compared
    expect(['6', 'tcp', '!17', '>5', '<6', 'udp'].map((v) => fires(`ip_proto:${v};`))).toEqual([
      true,
      true,
      true,
      true,
      false,
      false,
    ]);
    expect(new Engine([parseRule(rule('ip_proto:nosuch;'))]).skipped[0]?.reason).toMatch(
      /bad ip_proto 'nosuch'/,
    );
    // IPv6 has neither field; a UDP packet has no sequence number
    const v6 = { ...d, ipVersion: 6 as const };
    expect(fire(rule('id:13170;'), v6)).toEqual([]);
    expect(fire('alert udp any any -> any any (ack:0; sid:1;)', { ...d, proto: 17 })).toEqual([]);
  });

  it('raw_data is the payload: telnet option bytes stay in it (no inspector removes them here)', () => {
    const e = new Engine([
      parseRule(
        'alert tcp any any -> any 23 (flow:to_server,established; raw_data; content:"|FF F3 FF F3|"; sid:1;)',
      ),
    ]);
    expect(e.skipped).toEqual([]);
    for (const p of handshake('10.0.0.1', '10.0.0.2', 40000, 23)) e.inspect(p, 0);
    const payload = Uint8Array.of(0x41, 0xff, 0xf3, 0xff, 0xf3);
    const a = e.inspect(pkt({ dp: 23, flags: ACK | 0x08, seq: 1001, ack: 5001, payload }), 1);
    expect([...a, ...e.finish()].map((x) => x.sid)).toEqual([1]);
  });

  it('NSH carrying IPv4 is decoded (RFC 8300)', () => {
    const ip = ipTcp('x');
    const f = new Uint8Array(14 + 8 + ip.length);
    f.set([0x89, 0x4f], 12);
    f.set([0x0f, 0xc2, 0x01, 0x01, 0, 0, 1, 0xff], 14); // length 2 words, MD type 1... next protocol IPv4
    f.set(ip, 22);
    const d = decode(1, f, newDecodeStats());
    expect(typeof d !== 'string' && [d.src, d.dstPort]).toEqual(['10.0.0.1', 2]);
  });

  it('address ranges, icmpv6 rules, stream_size', () => {
    expect(
      fire('alert udp 10.0.0.0-10.0.0.9 any -> any any (sid:1;)', pkt({ proto: 17, src: '10.0.0.5' })),
    ).toEqual([1]);
    expect(
      fire('alert udp 10.0.0.0-10.0.0.4 any -> any any (sid:1;)', pkt({ proto: 17, src: '10.0.0.5' })),
    ).toEqual([]);
    expect(fire('alert icmpv6 any any -> any any (sid:1;)', pkt({ proto: 58 }))).toEqual([1]);
    expect(fire('alert icmp any any -> any any (sid:1;)', pkt({ proto: 58 }))).toEqual([]);
    const e = new Engine([
      parseRule('alert tcp any any -> any any (stream_size:client,>,3; sid:1;)'),
      parseRule('alert tcp any any -> any any (stream_size:server,=,1; sid:2;)'),
    ]);
    const [syn, synAck, ack] = handshake();
    for (const p of [syn!, synAck!, ack!]) e.inspect(p, 0);
    expect(
      e.inspect(pkt({ flags: ACK, seq: 1001, ack: 5001, payload: 'abcd' }), 1).map((a) => a.sid),
    ).toEqual([1, 2]);
  });
});

describe('variables from a file', () => {
  it('reads snort.conf ipvar/portvar/var, suricata.yaml address-groups/port-groups and NAME=VALUE', async () => {
    const { parseVarsFile } = await import('../src/index.js');
    expect(
      parseVarsFile(
        '# snort\nipvar HOME_NET [10.0.0.0/8]\nportvar HTTP_PORTS [80,8080]\nvar RULE_PATH rules\n',
      ),
    ).toEqual({ HOME_NET: '[10.0.0.0/8]', HTTP_PORTS: '[80,8080]', RULE_PATH: 'rules' });
    const yaml = [
      '%YAML 1.1',
      '---',
      'vars:',
      '  address-groups:',
      '    HOME_NET: "[192.168.0.0/16]"',
      '    EXTERNAL_NET: "!$HOME_NET"',
      '  port-groups:',
      '    HTTP_PORTS: "80"',
      'stream:',
      '  midstream: true',
    ].join('\n');
    expect(parseVarsFile(yaml)).toEqual({
      HOME_NET: '[192.168.0.0/16]',
      EXTERNAL_NET: '!$HOME_NET',
      HTTP_PORTS: '80',
    });
    expect(parseVarsFile('A=1\nB = "x y"')).toEqual({ A: '1', B: 'x y' });
    expect(() => parseVarsFile('ok=1\nwhat is this', 'v.conf')).toThrow(/^v\.conf:2: expected/);
  });
});

describe('a reused packet record (decodeInto)', () => {
  /** Raw IPv4 (link type 101): `opts` option bytes, `fragField` flags and offset, then the transport bytes. */
  function v4(proto: number, l4: number[], src: number[], opts: number[] = [], fragField = 0): Uint8Array {
    const ihl = 20 + opts.length;
    const f = new Uint8Array(ihl + l4.length);
    f[0] = 0x40 | (ihl / 4);
    f[2] = f.length >> 8;
    f[3] = f.length & 0xff;
    f[4] = 0x12;
    f[5] = src[3]!;
    f[6] = fragField >> 8;
    f[7] = fragField & 0xff;
    f[8] = 30 + src[3]!;
    f[9] = proto;
    f.set(src, 12);
    f.set([192, 168, 7, src[3]! + 1], 16);
    f.set(opts, 20);
    f.set(l4, ihl);
    return f;
  }
  /** Raw IPv6 with `next` (44: a fragment header first, then UDP) and the transport bytes. */
  function v6(next: number, l4: number[], last: number): Uint8Array {
    const f = new Uint8Array(40 + l4.length);
    f[0] = 0x60;
    f[4] = l4.length >> 8;
    f[5] = l4.length & 0xff;
    f[6] = next;
    f[7] = 9;
    f.set([0x20, 0x01, 0x0d, 0xb8], 8);
    f[23] = last;
    f.set([0xfe, 0x80], 24);
    f[39] = last + 1;
    f.set(l4, 40);
    return f;
  }
  const tcp = (seq: number, flags: number, data: number[]) => [
    0x9c,
    0x40,
    0,
    80,
    seq >> 24,
    (seq >> 16) & 0xff,
    (seq >> 8) & 0xff,
    seq & 0xff,
    0,
    0,
    0,
    7,
    0x50,
    flags,
    1,
    0,
    0,
    0,
    0,
    0,
    ...data,
  ];
  const udp = (sp: number, data: number[]) => [sp >> 8, sp & 0xff, 0, 53, 0, 8 + data.length, 0, 0, ...data];
  const frames: [number, Uint8Array][] = [
    [101, v4(6, tcp(0x01020304, 0x18, [0x61, 0x62]), [10, 0, 0, 1], [1, 1, 7, 0])],
    [101, v4(17, udp(5353, [1, 2, 3]), [172, 16, 0, 9])],
    [101, v4(1, [8, 0, 0, 0, 0x12, 0x34, 0, 5, 0x41], [10, 9, 8, 7])],
    [101, v4(1, [3, 1, 0, 0], [10, 9, 8, 6])], // ICMP shorter than its 8-byte header
    [101, v4(17, [0, 1, 2, 3, 4, 5, 6, 7], [10, 1, 1, 1], [], 0x2000)], // a first fragment
    [101, v6(17, udp(1234, [9, 9]), 0x11)],
    [101, v6(44, [17, 0, 0, 8, 0, 0, 0, 42, ...udp(99, [])], 0x21)], // an IPv6 fragment
    [101, v6(6, tcp(7, 0x02, []), 0x31)],
    [101, new Uint8Array([0x45, 0, 0, 10])], // truncated: counted, the record not used
  ];
  // with a VLAN tag over Ethernet, so `vlans` is set on one packet and must not stay
  const eth = new Uint8Array(18 + frames[0]![1].length);
  eth.set([0x81, 0x00, 0x00, 0x2a, 0x08, 0x00], 12);
  eth.set(frames[0]![1], 18);
  frames.push([1, eth]);

  const fields = (d: Decoded) => ({
    ipVersion: d.ipVersion,
    src: d.src,
    dst: d.dst,
    srcAddr: [...d.srcAddr],
    dstAddr: [...d.dstAddr],
    nums: [d.proto, d.ttl, d.ipId, d.ipFlags, d.srcPort, d.dstPort, d.tcpFlags, d.seq, d.ack],
    icmp: [d.icmpType, d.icmpCode, d.icmpId, d.icmpSeq],
    payload: [...d.payload],
    fragment: d.fragment,
    frag: d.frag && { ...d.frag, header: [...d.frag.header], link: [...d.frag.link] },
    checks: [d.ipChecksumOk, d.l4ChecksumOk],
    ipOptions: [...d.ipOptions],
    offsets: [d.l4Offset, d.ipOffset],
    vlans: [...d.vlans],
  });

  it('gives every packet, in any order, exactly what a fresh decode gives (property)', () => {
    const fresh = frames.map(([lt, b]) => {
      const d = decode(lt, b, newDecodeStats());
      return typeof d === 'string' ? d : fields(d);
    });
    expect(fresh.filter((x) => typeof x !== 'string').length).toBe(frames.length - 1);
    fc.assert(
      fc.property(fc.array(fc.nat(frames.length - 1), { minLength: 2, maxLength: 30 }), (order) => {
        const r = new PacketRecord();
        const stats = newDecodeStats();
        for (const i of order) {
          const [lt, b] = frames[i]!;
          const got = decodeInto(r, lt, b, stats);
          if (typeof got === 'string') expect(got).toBe(fresh[i]);
          else {
            expect(got).toBe(r);
            expect(fields(got)).toEqual(fresh[i]);
          }
        }
      }),
      { numRuns: 200 },
    );
  });

  it('never throws on mutated or cut frames, and a failure leaves nothing behind (fuzz)', () => {
    fc.assert(
      fc.property(
        fc.nat(frames.length - 1),
        fc.array(fc.tuple(fc.nat(200), fc.nat(255)), { maxLength: 6 }),
        fc.nat(200),
        fc.nat(frames.length - 1),
        (i, flips, cut, next) => {
          const [lt, orig] = frames[i]!;
          const b = orig.slice(0, Math.min(orig.length, cut + 1));
          for (const [at, v] of flips) if (at < b.length) b[at] = v;
          const r = new PacketRecord();
          const stats = newDecodeStats();
          decodeInto(r, lt, b, stats);
          // whatever the mangled frame left in the record, the next packet decodes as on a fresh one
          const [nlt, nb] = frames[next]!;
          const got = decodeInto(r, nlt, nb, stats);
          const want = decode(nlt, nb, newDecodeStats());
          if (typeof want === 'string') expect(got).toBe(want);
          else expect(typeof got !== 'string' && fields(got)).toEqual(fields(want));
        },
      ),
      { numRuns: 1000 },
    );
  });

  it('its addresses are its own: a flow and an alert keep copies, not the next packet', () => {
    const e = new Engine([parseRule('alert udp any any -> any 53 (content:"|01 02|"; sid:7;)')]);
    const r = new PacketRecord();
    const stats = newDecodeStats();
    decodeInto(r, 101, frames[1]![1], stats);
    const a = e.inspect(r, 1, 1);
    decodeInto(r, 101, frames[5]![1], stats);
    e.inspect(r, 2, 2);
    expect(a.map((x) => [x.sid, x.src, x.dst])).toEqual([[7, '172.16.0.9', '192.168.7.10']]);
    // in slot order, which the table's random hash key decides
    expect([...e.flows.flows()].map((f) => [...f.clientAddr].join('.')).sort()).toEqual([
      '172.16.0.9',
      '32.1.13.184.0.0.0.0.0.0.0.0.0.0.0.17',
    ]);
  });
});
