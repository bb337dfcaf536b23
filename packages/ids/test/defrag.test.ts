import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type Decoded,
  Defragmenter,
  decode,
  encodePcap,
  newDecodeStats,
  parseRule,
  runCapture,
  runCaptureParallel,
} from '../src/index.js';

/** A TCP segment (20-byte header, ports 1234 -> 80, flags PSH|ACK) carrying `payload`. */
function tcpSegment(payload: Uint8Array): Uint8Array {
  const t = new Uint8Array(20 + payload.length);
  t.set([0x04, 0xd2, 0x00, 0x50], 0);
  t[12] = 0x50;
  t[13] = 0x18;
  t.set(payload, 20);
  return t;
}

function checksum(b: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i < b.length; i += 2) sum += (b[i]! << 8) | (b[i + 1] ?? 0);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

/** A raw IPv4 fragment: bytes [off, off + data.length) of the datagram payload. */
function v4frag(id: number, off: number, data: Uint8Array, more: boolean, proto = 6): Uint8Array {
  const p = new Uint8Array(20 + data.length);
  p[0] = 0x45;
  p[2] = p.length >> 8;
  p[3] = p.length & 0xff;
  p[4] = id >> 8;
  p[5] = id & 0xff;
  const field = (more ? 0x2000 : 0) | (off / 8);
  p[6] = field >> 8;
  p[7] = field & 0xff;
  p[8] = 64;
  p[9] = proto;
  p.set([10, 0, 0, 1, 10, 0, 0, 2], 12);
  const c = checksum(p.subarray(0, 20));
  p[10] = c >> 8;
  p[11] = c & 0xff;
  p.set(data, 20);
  return p;
}

/** A raw IPv6 packet with a fragment header. */
function v6frag(id: number, off: number, data: Uint8Array, more: boolean): Uint8Array {
  const p = new Uint8Array(40 + 8 + data.length);
  p[0] = 0x60;
  const plen = 8 + data.length;
  p[4] = plen >> 8;
  p[5] = plen & 0xff;
  p[6] = 44;
  p[7] = 64;
  p[23] = 1;
  p[39] = 2;
  p[40] = 6;
  const field = off | (more ? 1 : 0);
  p[42] = field >> 8;
  p[43] = field & 0xff;
  p.set([id >>> 24, (id >>> 16) & 0xff, (id >>> 8) & 0xff, id & 0xff], 44);
  p.set(data, 48);
  return p;
}

function dec(raw: Uint8Array): Decoded {
  const d = decode(101, raw, newDecodeStats());
  if (typeof d === 'string') throw new Error(d);
  return d;
}

const text = (b: Uint8Array) => Buffer.from(b).toString('latin1');

/** A pcap of raw IP `frames`, a second apart. */
const rawPcap = (frames: Uint8Array[]) =>
  encodePcap(
    frames.map((data, i) => ({ tsUs: (1_700_000_000 + i) * 1e6, data })),
    101,
  );

describe('IP defragmentation', () => {
  it('rebuilds an IPv4 datagram from out-of-order and duplicate fragments', () => {
    const seg = tcpSegment(Buffer.from('GET /etc/passwd HTTP/1.0\r\n\r\n'));
    const df = new Defragmenter();
    const frags = [
      v4frag(7, 16, seg.subarray(16), false),
      v4frag(7, 0, seg.subarray(0, 8), true),
      v4frag(7, 8, seg.subarray(8, 16), true),
    ];
    expect(dec(frags[1]!).frag).toMatchObject({ id: 7, offset: 0, more: true });
    expect(df.add(dec(frags[0]!), 0)).toBeUndefined();
    expect(df.add(dec(frags[1]!), 1)).toBeUndefined();
    expect(df.add(dec(frags[1]!), 2)).toBeUndefined();
    const whole = df.add(dec(frags[2]!), 3)!;
    const d = dec(whole);
    expect(d).toMatchObject({ proto: 6, srcPort: 1234, dstPort: 80, fragment: false, ipChecksumOk: true });
    expect(text(d.payload)).toBe('GET /etc/passwd HTTP/1.0\r\n\r\n');
    expect(df.pending).toBe(0);
    expect(df.heldBytes).toBe(0);
  });

  it('keys datagrams by VLAN too: the same addresses and id on two VLANs are two datagrams', () => {
    const seg = tcpSegment(Buffer.from('GET /etc/passwd HTTP/1.0\r\n\r\n'));
    const onVlan = (vlan: number, ip: Uint8Array) => {
      const f = new Uint8Array(18 + ip.length);
      f.set([0x81, 0, vlan >> 8, vlan & 0xff, 0x08, 0x00], 12);
      f.set(ip, 18);
      const d = decode(1, f, newDecodeStats());
      if (typeof d === 'string') throw new Error(d);
      return d;
    };
    const [a, b] = [v4frag(7, 0, seg.subarray(0, 16), true), v4frag(7, 16, seg.subarray(16), false)];
    const df = new Defragmenter();
    expect(df.add(onVlan(10, a), 0)).toBeUndefined();
    expect(df.add(onVlan(20, b), 1)).toBeUndefined();
    expect(df.pending).toBe(2);
    expect(text(dec(df.add(onVlan(10, b), 2)!).payload)).toBe('GET /etc/passwd HTTP/1.0\r\n\r\n');
    expect(text(dec(df.add(onVlan(20, a), 3)!).payload)).toBe('GET /etc/passwd HTTP/1.0\r\n\r\n');
    expect(df.pending).toBe(0);
  });

  it('rebuilds an IPv6 datagram (fragment header removed)', () => {
    const seg = tcpSegment(Buffer.from('x'.repeat(40)));
    const df = new Defragmenter();
    expect(df.add(dec(v6frag(99, 24, seg.subarray(24), false)), 0)).toBeUndefined();
    const d = dec(df.add(dec(v6frag(99, 0, seg.subarray(0, 24), true)), 1)!);
    expect(d).toMatchObject({ ipVersion: 6, proto: 6, dstPort: 80, src: '::1', dst: '::2' });
    expect(d.payload.length).toBe(40);
  });

  it('resolves overlapping fragments with the policy', () => {
    const run = (policy: 'first' | 'last' | 'bsd' | 'linux') => {
      const df = new Defragmenter({ policy });
      df.add(dec(v4frag(1, 0, Buffer.from('AAAAAAAABBBBBBBB'), true, 17)), 0);
      df.add(dec(v4frag(1, 8, Buffer.from('XXXXXXXX'), true, 17)), 1);
      const whole = df.add(dec(v4frag(1, 16, Buffer.from('CCCCCCCC'), false, 17)), 2)!;
      return text(whole.subarray(20));
    };
    expect(run('first')).toBe('AAAAAAAABBBBBBBBCCCCCCCC');
    expect(run('last')).toBe('AAAAAAAAXXXXXXXXCCCCCCCC');
    // the later fragment starts after the earlier one: bsd and linux keep the earlier bytes
    expect(run('bsd')).toBe('AAAAAAAABBBBBBBBCCCCCCCC');
    expect(run('linux')).toBe('AAAAAAAABBBBBBBBCCCCCCCC');
  });

  it('a hole of one byte (a first fragment one short of its 8-byte boundary) is never rebuilt over', () => {
    const df = new Defragmenter();
    expect(df.add(dec(v4frag(3, 0, Buffer.from('AAAAAAA'), true, 17)), 0)).toBeUndefined();
    expect(df.add(dec(v4frag(3, 8, Buffer.from('CCCCCCCC'), false, 17)), 1)).toBeUndefined();
    expect(df.pending).toBe(1);
    // the missing byte arrives (a fragment over the first one's bytes and the hole): whole now
    const whole = df.add(dec(v4frag(3, 0, Buffer.from('aaaaaaaa'), true, 17)), 2);
    expect(text(whole!.subarray(20))).toBe('AAAAAAAaCCCCCCCC');
  });

  it('bounds: oversized datagrams, too many fragments, capacity, memory and timeouts are dropped and counted', () => {
    const df = new Defragmenter({ datagramsMax: 2, fragmentsMax: 3, bytesMax: 64, timeoutUs: 100 });
    // reaches past 65,535 bytes (the ping of death)
    expect(df.add(dec(v4frag(1, 65528, new Uint8Array(16), false, 17)), 0)).toBeUndefined();
    for (let i = 0; i < 4; i++) df.add(dec(v4frag(2, i * 8, new Uint8Array(8), true, 17)), 0);
    df.add(dec(v4frag(3, 8, new Uint8Array(8), true, 17)), 0);
    df.add(dec(v4frag(4, 8, new Uint8Array(8), true, 17)), 0);
    df.add(dec(v4frag(5, 8, new Uint8Array(8), true, 17)), 0);
    df.add(dec(v4frag(6, 0, new Uint8Array(200), true, 17)), 0);
    df.add(dec(v4frag(7, 0, new Uint8Array(8), true, 17)), 1000);
    expect(df.stats.dropped).toMatchObject({ oversized: 1, 'too-many-fragments': 1, memory: 1 });
    expect(df.stats.dropped.capacity).toBeGreaterThanOrEqual(1);
    expect(df.stats.dropped.timeout).toBeGreaterThanOrEqual(1);
    expect(df.pending).toBeLessThanOrEqual(2);
  });

  it('any fragmentation and order of a datagram rebuilds it (property)', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 9, maxLength: 400, size: 'max' }),
        fc.array(fc.nat(49), { maxLength: 10 }),
        fc.boolean(),
        fc.infiniteStream(fc.nat()),
        (payload, cuts, v6, rnd) => {
          const points = [
            ...new Set([0, 8, ...cuts.map((c) => c * 8).filter((c) => c < payload.length), payload.length]),
          ].sort((a, b) => a - b);
          const frags: Uint8Array[] = [];
          for (let i = 0; i + 1 < points.length; i++) {
            const [s, e] = [points[i]!, points[i + 1]!];
            const more = e < payload.length;
            frags.push(
              v6
                ? v6frag(5, s, payload.subarray(s, e), more)
                : v4frag(5, s, payload.subarray(s, e), more, 17),
            );
          }
          const it = rnd[Symbol.iterator]();
          for (let i = frags.length - 1; i > 0; i--) {
            const j = it.next().value! % (i + 1);
            [frags[i], frags[j]] = [frags[j]!, frags[i]!];
          }
          const df = new Defragmenter();
          // rebuilt at the last fragment, not before; fragments side by side overlap nothing
          const got = frags.map((f) => df.add(dec(f), 0));
          expect(got.map((w) => w !== undefined)).toEqual(frags.map((_, k) => k === frags.length - 1));
          expect(df.stats.overlaps).toBe(0);
          const whole = got.at(-1);
          const hdr = v6 ? 40 : 20;
          expect(Buffer.from(whole!.subarray(hdr)).equals(Buffer.from(payload))).toBe(true);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('never throws on mutated fragments (fuzz)', () => {
    fc.assert(
      fc.property(fc.nat(70), fc.nat(255), fc.boolean(), (at, byte, v6) => {
        const df = new Defragmenter();
        for (const off of [0, 8]) {
          const f = v6
            ? v6frag(1, off, new Uint8Array(8), off === 0)
            : v4frag(1, off, new Uint8Array(8), off === 0);
          f[at % f.length] = byte;
          const d = decode(101, f, newDecodeStats());
          if (typeof d !== 'string' && d.frag) df.add(d, 0);
        }
      }),
      { numRuns: 3000 },
    );
  });

  it('runCapture matches a rule on a datagram split into fragments', async () => {
    const seg = tcpSegment(Buffer.from('xxxx /bin/sh xxxx'));
    const frames = [v4frag(3, 16, seg.subarray(16), false), v4frag(3, 0, seg.subarray(0, 16), true)];
    const dir = mkdtempSync(join(tmpdir(), 'ids-defrag-'));
    try {
      const file = join(dir, 'frag.pcap');
      writeFileSync(file, rawPcap(frames));
      const rules = [parseRule('alert tcp any any -> any 80 (msg:"sh"; content:"/bin/sh"; sid:1;)')];
      const r = await runCapture(file, rules);
      expect(r.alerts.map((a) => a.sid)).toEqual([1]);
      expect(r.defrag).toMatchObject({ fragments: 2, reassembled: 1 });
      const off = await runCapture(file, rules, { defrag: false });
      expect(off.alerts).toEqual([]);
      // a capture filter sees the datagram: its ports, which only the first fragment carries
      const kept = await runCapture(file, rules, { filter: 'tcp dst port 80' });
      expect([kept.alerts.map((a) => a.sid), kept.packetsFiltered]).toEqual([[1], 0]);
      const refused = await runCapture(file, rules, { filter: 'tcp dst port 81' });
      expect([refused.alerts.map((a) => a.sid), refused.packetsFiltered]).toEqual([[], 1]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('flow:only_frag matches only datagrams rebuilt from fragments, flow:no_frag only the others (1 and 2 workers)', async () => {
    const seg = tcpSegment(Buffer.from('xxxx /bin/sh xxxx'));
    // the same segment unfragmented, from another source port (another flow)
    const whole = tcpSegment(Buffer.from('xxxx /bin/sh xxxx'));
    whole[1] = 0xd3;
    const frames = [
      v4frag(3, 16, seg.subarray(16), false),
      v4frag(3, 0, seg.subarray(0, 16), true),
      v4frag(4, 0, whole, false),
    ];
    const rules = [
      'alert tcp any any -> any 80 (content:"/bin/sh"; sid:1;)',
      'alert tcp any any -> any 80 (flow:only_frag; content:"/bin/sh"; sid:2;)',
      'alert tcp any any -> any 80 (flow:no_frag; content:"/bin/sh"; sid:3;)',
      'alert ip any any -> any any (flow:stateless,only_frag; sid:4;)',
    ].map((r) => parseRule(r));
    const dir = mkdtempSync(join(tmpdir(), 'ids-defrag-'));
    try {
      const file = join(dir, 'frag.pcap');
      writeFileSync(file, rawPcap(frames));
      const got = (alerts: { sid: number; pcapCnt?: number }[]) =>
        alerts.map((a) => `${a.sid}@${a.pcapCnt}`).sort();
      // packet 2 completes the datagram; packet 3 is the unfragmented one
      const want = ['1@2', '1@3', '2@2', '3@3', '4@2'];
      expect(got((await runCapture(file, rules)).alerts)).toEqual(want);
      expect(got((await runCaptureParallel(file, rules, { workers: 2 })).alerts)).toEqual(want);
      // without defragmentation nothing is rebuilt: only_frag never matches, no_frag matches as before
      expect(got((await runCapture(file, rules, { defrag: false })).alerts)).toEqual(['1@3', '3@3']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
