/** Reject responses (IPS): a TCP reset or an ICMP unreachable back to the sender, well formed, never in reply to what must not get one. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { checksum16 } from '../src/decode.js';
import {
  type Decoded,
  decode,
  encodePcap,
  newDecodeStats,
  parseRule,
  rejectFrames,
  runCapture,
} from '../src/index.js';
import { ACK, FIN, handshakeFrames, PSH, RST, readPcapFrames, SYN, tcpFrame } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'ids-reject-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const macA = [0x02, 0, 0, 0, 0, 0xa];
const macB = [0x02, 0, 0, 0, 0, 0xb];

function dec(frame: Uint8Array, linkType = 1): Decoded {
  const d = decode(linkType, frame, newDecodeStats());
  if (typeof d === 'string') throw new Error(`does not decode: ${d}`);
  return d;
}

/** A TCP frame from A (10.0.0.1, macA) to B (10.0.0.2, macB). */
function tcp(flags: number, seq: number, ack: number, payload = ''): Uint8Array {
  const f = tcpFrame({ flags, seq, ack, payload });
  f.set(macB, 0);
  f.set(macA, 6);
  return f;
}

/** An IPv4 UDP frame (checksum left zero: absent) from 10.0.0.1:5353 to `dst`:53. */
function udp4(payload: string, dst = [10, 0, 0, 2]): Uint8Array {
  const p = Buffer.from(payload, 'latin1');
  const f = new Uint8Array(14 + 20 + 8 + p.length);
  f.set(macB, 0);
  f.set(macA, 6);
  f[12] = 0x08;
  const v = new DataView(f.buffer);
  f[14] = 0x45;
  v.setUint16(16, 28 + p.length);
  f[22] = 64;
  f[23] = 17;
  f.set([10, 0, 0, 1], 26);
  f.set(dst, 30);
  v.setUint16(24, checksum16(f, 14, 20));
  v.setUint16(34, 5353);
  v.setUint16(36, 53);
  v.setUint16(38, 8 + p.length);
  f.set(p, 42);
  return f;
}

/** An IPv6 UDP frame from 2001:db8::1 port 5353 to `dst` port 53, with a valid checksum. */
function udp6(payload: Uint8Array, dst = [0x20, 0x01, 0x0d, 0xb8, ...Array(11).fill(0), 2]): Uint8Array {
  const f = new Uint8Array(14 + 40 + 8 + payload.length);
  f.set(macB, 0);
  f.set(macA, 6);
  f[12] = 0x86;
  f[13] = 0xdd;
  const v = new DataView(f.buffer);
  f[14] = 0x60;
  v.setUint16(18, 8 + payload.length);
  f[20] = 17;
  f[21] = 64;
  f.set([0x20, 0x01, 0x0d, 0xb8, ...Array(11).fill(0), 1], 22);
  f.set(dst, 38);
  v.setUint16(54, 5353);
  v.setUint16(56, 53);
  v.setUint16(58, 8 + payload.length);
  f.set(payload, 62);
  v.setUint16(60, l4Checksum6(f.subarray(22, 38), f.subarray(38, 54), 17, f.subarray(54)));
  return f;
}

function l4Checksum6(src: Uint8Array, dst: Uint8Array, proto: number, l4: Uint8Array): number {
  const b = new Uint8Array(40 + l4.length);
  b.set(src, 0);
  b.set(dst, 16);
  new DataView(b.buffer).setUint32(32, l4.length);
  b[39] = proto;
  b.set(l4, 40);
  return checksum16(b, 0, b.length);
}

describe('rejectFrames', () => {
  it('a TCP segment with ACK gets a reset from its destination whose sequence number is its ACK', () => {
    const f = tcp(ACK | PSH, 1001, 5001, 'EVIL');
    const [r, ...more] = rejectFrames(f, 1, dec(f));
    expect(more).toEqual([]);
    const d = dec(r!);
    expect([...r!.subarray(0, 6)]).toEqual(macA);
    expect([...r!.subarray(6, 12)]).toEqual(macB);
    expect(d).toMatchObject({ src: '10.0.0.2', dst: '10.0.0.1', srcPort: 80, dstPort: 40000, proto: 6 });
    expect({ flags: d.tcpFlags, seq: d.seq, ack: d.ack, len: d.payload.length }).toEqual({
      flags: RST,
      seq: 5001,
      ack: 0,
      len: 0,
    });
    expect([d.ipChecksumOk, d.l4ChecksumOk]).toEqual([true, true]);
  });

  it('a segment without ACK (a SYN) gets RST+ACK acknowledging everything it occupied', () => {
    const syn = tcp(SYN, 0xffffffff, 0);
    const d = dec(rejectFrames(syn, 1, dec(syn))[0]!);
    expect({ flags: d.tcpFlags, seq: d.seq, ack: d.ack }).toEqual({ flags: RST | ACK, seq: 0, ack: 0 }); // wraps
    const fin = tcp(FIN | PSH, 7, 0, 'abc');
    expect(dec(rejectFrames(fin, 1, dec(fin))[0]!).ack).toBe(7 + 3 + 1);
    expect(dec(rejectFrames(fin, 1, dec(fin))[0]!).l4ChecksumOk).toBe(true);
  });

  it('UDP over IPv4 gets ICMP port unreachable quoting the IP header and 8 bytes', () => {
    const f = udp4('a DNS query, long enough');
    const r = rejectFrames(f, 1, dec(f))[0]!;
    const d = dec(r);
    expect(d).toMatchObject({ src: '10.0.0.2', dst: '10.0.0.1', proto: 1, icmpType: 3, icmpCode: 3 });
    expect(d.ipChecksumOk).toBe(true);
    const icmp = r.subarray(14 + 20);
    expect(checksum16(icmp, 0, icmp.length)).toBe(0);
    expect(Buffer.from(icmp.subarray(8)).toString('hex')).toBe(
      Buffer.from(f.subarray(14, 14 + 28)).toString('hex'),
    );
  });

  it('UDP over IPv6 gets ICMPv6 port unreachable quoting the packet, within 1,280 bytes', () => {
    for (const size of [10, 3000]) {
      const f = udp6(new Uint8Array(size).fill(7));
      const r = rejectFrames(f, 1, dec(f))[0]!;
      const d = dec(r);
      expect(d).toMatchObject({
        src: '2001:db8::2',
        dst: '2001:db8::1',
        proto: 58,
        icmpType: 1,
        icmpCode: 4,
      });
      const ip = r.subarray(14);
      expect(ip.length).toBe(Math.min(1280, 40 + 8 + 40 + 8 + size));
      const icmp = ip.subarray(40);
      expect(l4Checksum6(ip.subarray(8, 24), ip.subarray(24, 40), 58, icmp)).toBe(0);
      expect(Buffer.from(icmp.subarray(8, 8 + 48)).toString('hex')).toBe(
        Buffer.from(f.subarray(14, 14 + 48)).toString('hex'),
      );
    }
  });

  it('no response to a reset, an ICMP error, a multicast or broadcast destination, or a fragment', () => {
    const rst = tcp(RST | ACK, 1, 1);
    expect(rejectFrames(rst, 1, dec(rst))).toEqual([]);
    const u = udp4('x');
    const unreachable = rejectFrames(u, 1, dec(u))[0]!;
    expect(rejectFrames(unreachable, 1, dec(unreachable))).toEqual([]);
    const mc = udp4('x', [224, 0, 0, 251]);
    expect(rejectFrames(mc, 1, dec(mc))).toEqual([]);
    const bc = udp4('x', [255, 255, 255, 255]);
    expect(rejectFrames(bc, 1, dec(bc))).toEqual([]);
    const mc6 = udp6(new Uint8Array(4), [0xff, 0x02, ...Array(13).fill(0), 0xfb]);
    expect(rejectFrames(mc6, 1, dec(mc6))).toEqual([]);
    const frag = udp4('fragment');
    frag[20] = 0x20; // more fragments
    new DataView(frag.buffer).setUint16(24, 0);
    new DataView(frag.buffer).setUint16(24, checksum16(frag, 14, 20));
    expect(rejectFrames(frag, 1, dec(frag))).toEqual([]);
  });

  it('raw IP captures get raw IP responses', () => {
    const f = tcp(ACK | PSH, 1001, 5001, 'EVIL').subarray(14);
    const r = rejectFrames(f, 101, dec(f, 101))[0]!;
    expect(dec(r, 101)).toMatchObject({ src: '10.0.0.2', tcpFlags: RST, seq: 5001, l4ChecksumOk: true });
  });
});

describe('rejectFrames to the destination (rejectdst) and to both (rejectboth)', () => {
  it('a TCP segment: a reset in its own direction with its sequence number (RST+ACK with its ACK)', () => {
    const f = tcp(ACK | PSH, 1001, 5001, 'EVIL');
    const [r, ...more] = rejectFrames(f, 1, dec(f), undefined, 'dst');
    expect(more).toEqual([]);
    // the link layer as the packet had it: to B, from A
    expect([...r!.subarray(0, 6)]).toEqual(macB);
    expect([...r!.subarray(6, 12)]).toEqual(macA);
    const d = dec(r!);
    expect(d).toMatchObject({ src: '10.0.0.1', dst: '10.0.0.2', srcPort: 40000, dstPort: 80, proto: 6 });
    expect({ flags: d.tcpFlags, seq: d.seq, ack: d.ack, len: d.payload.length }).toEqual({
      flags: RST | ACK,
      seq: 1001,
      ack: 5001,
      len: 0,
    });
    expect([d.ipChecksumOk, d.l4ChecksumOk]).toEqual([true, true]);
    // without ACK (a SYN): a bare reset with its sequence number; none for a reset
    const syn = tcp(SYN, 77, 0);
    const s = dec(rejectFrames(syn, 1, dec(syn), undefined, 'dst')[0]!);
    expect({ flags: s.tcpFlags, seq: s.seq, ack: s.ack, ok: s.l4ChecksumOk }).toEqual({
      flags: RST,
      seq: 77,
      ack: 0,
      ok: true,
    });
    const rst = tcp(RST | ACK, 1, 1);
    expect(rejectFrames(rst, 1, dec(rst), undefined, 'dst')).toEqual([]);
  });

  it('UDP over IPv4 and IPv6: an ICMP unreachable to the destination quoting the packet, checksums valid', () => {
    const f = udp4('a DNS query, long enough');
    const r = rejectFrames(f, 1, dec(f), undefined, 'dst')[0]!;
    const d = dec(r);
    expect(d).toMatchObject({ src: '10.0.0.1', dst: '10.0.0.2', proto: 1, icmpType: 3, icmpCode: 3 });
    expect(d.ipChecksumOk).toBe(true);
    const icmp = r.subarray(14 + 20);
    expect(checksum16(icmp, 0, icmp.length)).toBe(0);
    expect(Buffer.from(icmp.subarray(8)).toString('hex')).toBe(
      Buffer.from(f.subarray(14, 42)).toString('hex'),
    );
    const f6 = udp6(new Uint8Array(20).fill(7));
    const ip = rejectFrames(f6, 1, dec(f6), undefined, 'dst')[0]!.subarray(14);
    expect(dec(ip, 101)).toMatchObject({ src: '2001:db8::1', dst: '2001:db8::2', proto: 58, icmpType: 1 });
    expect(l4Checksum6(ip.subarray(8, 24), ip.subarray(24, 40), 58, ip.subarray(40))).toBe(0);
  });

  it("both: the sender's response, then the destination's", () => {
    const f = tcp(ACK | PSH, 1001, 5001, 'EVIL');
    const [a, b, ...more] = rejectFrames(f, 1, dec(f), undefined, 'both');
    expect(more).toEqual([]);
    expect(dec(a!)).toMatchObject({
      src: '10.0.0.2',
      dst: '10.0.0.1',
      tcpFlags: RST,
      seq: 5001,
      l4ChecksumOk: true,
    });
    expect(dec(b!)).toMatchObject({
      src: '10.0.0.1',
      dst: '10.0.0.2',
      tcpFlags: RST | ACK,
      seq: 1001,
      l4ChecksumOk: true,
    });
  });

  it('the actions in runCapture: rejectsrc, rejectdst, rejectboth, and two rejects of either side on one packet', async () => {
    const frames = [...handshakeFrames(), tcp(ACK | PSH, 1001, 5001, 'EVIL')];
    const input = join(dir, 'in-variants.pcap');
    writeFileSync(input, encodePcap(frames.map((data, i) => ({ tsUs: (1_700_000_000 + i) * 1e6, data }))));
    const cases: [string[], string[]][] = [
      [['rejectsrc'], ['10.0.0.2']],
      [['rejectdst'], ['10.0.0.1']],
      [['rejectboth'], ['10.0.0.2', '10.0.0.1']],
      [
        ['reject', 'rejectdst'],
        ['10.0.0.2', '10.0.0.1'],
      ],
    ];
    for (const [actions, sources] of cases) {
      const out = join(dir, `${actions.join('-')}.pcap`);
      const rules = actions.map((a, i) =>
        parseRule(`${a} tcp any any -> any 80 (content:"EVIL"; sid:${i + 1};)`),
      );
      const r = await runCapture(input, rules, { ips: true, out });
      expect(r.verdicts).toEqual({ passed: 3, dropped: 1, responses: sources.length });
      const back = (await readPcapFrames(out)).slice(3).map((p) => dec(p.data));
      expect(back.map((d) => d.src)).toEqual(sources);
      for (const d of back)
        expect([d.tcpFlags & RST, d.ipChecksumOk, d.l4ChecksumOk]).toEqual([RST, true, true]);
    }
    expect(() => parseRule('rejectany tcp any any -> any 80 (sid:1;)')).toThrow(/unknown action 'rejectany'/);
  });
});

describe('reject in runCapture', () => {
  it('the reset follows the dropped packet in the output pcap; drop rules send none', async () => {
    const frames = [...handshakeFrames(), tcp(ACK | PSH, 1001, 5001, 'EVIL')];
    const input = join(dir, 'in.pcap');
    writeFileSync(input, encodePcap(frames.map((data, i) => ({ tsUs: (1_700_000_000 + i) * 1e6, data }))));
    for (const action of ['reject', 'drop']) {
      const out = join(dir, `${action}.pcap`);
      const rule = parseRule(`${action} tcp any any -> any 80 (content:"EVIL"; sid:1;)`);
      const r = await runCapture(input, [rule], { ips: true, out });
      const back = await readPcapFrames(out);
      if (action === 'drop') {
        expect(r.verdicts).toEqual({ passed: 3, dropped: 1, responses: 0 });
        expect(back).toHaveLength(3);
        continue;
      }
      expect(r.verdicts).toEqual({ passed: 3, dropped: 1, responses: 1 });
      expect(back).toHaveLength(4);
      const d = dec(back[3]!.data);
      expect(d).toMatchObject({
        src: '10.0.0.2',
        dst: '10.0.0.1',
        tcpFlags: RST,
        seq: 5001,
        l4ChecksumOk: true,
      });
      expect(back[3]!.tsUs).toBe((1_700_000_000 + 3) * 1e6);
    }
  });
});
