import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decode, newDecodeStats, Pipeline, parseRule } from '../src/index.js';
import { ACK, FIN, PSH, RST, SYN, tcpFrame } from './helpers.js';

const rules = [
  'alert tcp any any -> any 80 (content:"GET"; depth:3; content:"passwd"; distance:0; sid:1;)',
  'alert tcp any any -> any any (content:"|00 00|"; byte_jump:2,0,relative; byte_test:1,>,3,0,relative; sid:2;)',
  'alert tcp any any -> any any (pcre:"/a+b*c/i"; sid:3;)',
  'alert tcp any any -> any any (flow:established,to_server; byte_extract:1,0,n; content:"x"; distance:n; sid:4;)',
  'alert ip any any -> any any (ipopts:any; sid:5;)',
  'alert tcp any any -> any any (flags:S; threshold:type limit, track by_src, count 1, seconds 60; sid:6;)',
].map((r, i) => parseRule(r, 'fuzz.rules', i + 1));

/** A session: handshake, data both ways (some out of order), FIN; frames for the fuzzer to mutate. */
function session(): Uint8Array[] {
  const C = { src: '10.0.0.1', dst: '10.0.0.2', sp: 40000, dp: 80 };
  const S = { src: '10.0.0.2', dst: '10.0.0.1', sp: 80, dp: 40000 };
  return [
    tcpFrame({ ...C, flags: SYN, seq: 100 }),
    tcpFrame({ ...S, flags: SYN | ACK, seq: 900, ack: 101 }),
    tcpFrame({ ...C, flags: ACK, seq: 101, ack: 901 }),
    tcpFrame({ ...C, flags: ACK | PSH, seq: 110, ack: 901, payload: 'passwd HTTP/1.0\r\n' }),
    tcpFrame({ ...C, flags: ACK | PSH, seq: 101, ack: 901, payload: 'GET /etc/' }),
    tcpFrame({ ...S, flags: ACK, seq: 901, ack: 127 }),
    tcpFrame({ ...S, flags: ACK | PSH, seq: 901, ack: 127, payload: '\u0000\u0000\u0000\u0002zz\u0009aaBc' }),
    tcpFrame({ ...C, flags: ACK | FIN, seq: 127, ack: 913 }),
    tcpFrame({ ...S, flags: ACK | RST, seq: 913, ack: 128 }),
  ];
}

describe('the whole pipeline', () => {
  it('raises the alerts of a crafted session, content split and reordered across segments', () => {
    const p = new Pipeline(rules);
    const sids = session().flatMap((data, i) =>
      p.push({ tsUs: i, linkType: 1, data, origLength: data.length }),
    );
    sids.push(...p.finish());
    expect(sids.map((a) => a.sid).sort()).toEqual([1, 2, 3, 6]);
    expect(p.engine.stats.segmentsOutOfOrder).toBe(1);
  });

  it('never throws or hangs on mutated, truncated, duplicated and reordered frames; memory stays bounded (fuzz)', () => {
    const base = session();
    const frame = fc.record({
      i: fc.nat(base.length - 1),
      muts: fc.array(fc.tuple(fc.nat(200), fc.nat(255)), { maxLength: 4 }),
      cut: fc.nat(80),
      ts: fc.nat(100_000_000),
    });
    fc.assert(
      fc.property(fc.array(frame, { maxLength: 30 }), fc.constantFrom(1, 101, 113), (frames, linkType) => {
        const p = new Pipeline(rules, { reassemblyMemcapBytes: 1 << 16, flowsMax: 4 });
        for (const f of frames) {
          const src = base[f.i]!;
          const data = Uint8Array.from(src.subarray(linkType === 101 ? 14 : 0));
          for (const [at, b] of f.muts) data[at % data.length] = b;
          const cut = data.subarray(0, Math.max(0, data.length - (f.cut > 60 ? f.cut - 60 : 0)));
          expect(Array.isArray(p.push({ tsUs: f.ts, linkType, data: cut, origLength: cut.length }))).toBe(
            true,
          );
          expect(p.engine.budget.bytes).toBeLessThanOrEqual(1 << 16);
          expect(p.engine.flows.size).toBeLessThanOrEqual(4);
        }
        p.finish();
        expect(p.engine.budget.bytes).toBe(0);
        expect(p.packets).toBe(frames.length);
        expect(p.decodeStats.packets).toBe(frames.length);
      }),
      { numRuns: 600 },
    );
  });

  it('in IPS mode the same fuzz: no throw, memory bounded and given back, the input never written, rewrites keep length (fuzz)', () => {
    const base = session();
    const ipsRules = [
      ...rules,
      parseRule('drop tcp any any -> any any (content:"passwd"; sid:7;)', 'fuzz.rules', 7),
      parseRule('reject tcp any any -> any 80 (flags:S; dsize:>0; sid:8;)', 'fuzz.rules', 8),
      parseRule('pass ip 10.0.0.9 any -> any any (sid:9;)', 'fuzz.rules', 9),
    ];
    const frame = fc.record({
      i: fc.nat(base.length - 1),
      muts: fc.array(fc.tuple(fc.nat(200), fc.nat(255)), { maxLength: 3 }),
      seqShift: fc.integer({ min: -12, max: 12 }),
      ts: fc.nat(100_000_000),
    });
    let rewritten = 0;
    let dropped = 0;
    fc.assert(
      fc.property(fc.array(frame, { maxLength: 30 }), fc.boolean(), (frames, established) => {
        const p = new Pipeline(ipsRules, {
          ips: true,
          streamRelease: 'immediate',
          reassemblyMemcapBytes: 1 << 16,
          validateChecksums: false,
        });
        // half the runs start with the handshake and the first request bytes, so the mutated copies that
        // follow overlap stream data (and get rewritten when they differ)
        if (established)
          for (const i of [0, 1, 2, 4]) p.push({ tsUs: 0, linkType: 1, data: base[i]!, origLength: 0 });
        for (const f of frames) {
          const data = Uint8Array.from(base[f.i]!);
          // overlaps: move the sequence number (checksums are not validated, so such packets join the stream)
          data[41] = (data[41]! + f.seqShift) & 0xff;
          for (const [at, b] of f.muts) data[at % data.length] = b;
          const before = Uint8Array.from(data);
          p.push({ tsUs: f.ts, linkType: 1, data, origLength: data.length });
          expect(data).toEqual(before);
          const v = p.verdict;
          if (v.drop) dropped++;
          if (v.frame !== data) {
            rewritten++;
            expect(v.frame.length).toBe(data.length);
            expect(Buffer.from(v.frame.subarray(0, 50))).toEqual(Buffer.from(data.subarray(0, 50)));
          }
          expect(p.engine.budget.bytes).toBeLessThanOrEqual(1 << 16);
        }
        p.finish();
        expect(p.engine.budget.bytes).toBe(0);
      }),
      { numRuns: 400 },
    );
    expect(dropped).toBeGreaterThan(0); // not vacuous
    expect(rewritten).toBeGreaterThan(0);
  });

  it('packets and rules of the wrong shape from an API caller are TypeErrors saying what was expected', () => {
    const pipe = new Pipeline([parseRule('alert ip any any -> any any (sid:1;)')]);
    const data = tcpFrame({ payload: 'x' });
    const bad: [unknown, RegExp][] = [
      [{ tsUs: 1, linkType: 1 }, /got tsUs 1, linkType 1, data undefined$/],
      [{ tsUs: 1, linkType: 1, data: 'abc' }, /data string$/],
      // past what a Date holds: its alerts could not be printed ("Invalid time value")
      [{ tsUs: 1e20, linkType: 1, data }, /got tsUs 100000000000000000000, /],
      [{ tsUs: Number.NaN, linkType: 1, data }, /got tsUs NaN, /],
      [{ tsUs: 1, linkType: 1.5, data }, /linkType 1\.5, data Uint8Array$/],
    ];
    for (const [p, why] of bad) {
      expect(() => pipe.push(p as never)).toThrow(TypeError);
      expect(() => pipe.push(p as never)).toThrow(why);
    }
    expect(pipe.push({ tsUs: 1, linkType: 1, data, origLength: data.length } as never)).toHaveLength(1);
    // rules: a string was taken as rules of its characters; a null failed on reading its gid
    expect(() => new Pipeline('alert' as never)).toThrow(
      /^Engine: expected an array of rules .* got string$/,
    );
    expect(() => new Pipeline([null] as never)).toThrow(
      /^Engine: rule 0 is not a parsed rule \(parseRule\), got null$/,
    );
    expect(() => new Pipeline([{ msg: 'x' }] as never)).toThrow(
      /rule 0 is not a parsed rule .* got \{"msg":"x"\}$/,
    );
  });

  it("checksum validation 'auto' turns itself off when the sample is mostly bad (offloading)", () => {
    const bad = Uint8Array.from(tcpFrame({ payload: 'x' }));
    bad[50] = (bad[50]! + 1) & 0xff; // the TCP checksum
    const good = tcpFrame({ payload: 'x' });
    const off = new Pipeline([], { validateChecksums: 'auto' });
    const on = new Pipeline([], { validateChecksums: 'auto' });
    for (let i = 0; i < 1000; i++) {
      off.push({ tsUs: i, linkType: 1, data: i % 5 === 0 ? bad : good, origLength: 0 });
      on.push({ tsUs: i, linkType: 1, data: i % 20 === 0 ? bad : good, origLength: 0 });
    }
    expect([off.validating, on.validating]).toEqual([false, true]);
    expect(on.engine.stats.badChecksums).toBe(50);
  });

  it('the transport checksum is summed only where validated: left to the inspector after the sample (checksumsLater), never when off', () => {
    const bad = Uint8Array.from(tcpFrame({ payload: 'x' }));
    bad[50] = (bad[50]! + 1) & 0xff; // the TCP checksum
    const good = tcpFrame({ payload: 'x' });
    const later = new Pipeline([], { validateChecksums: 'auto' });
    later.checksumsLater = true;
    const here = new Pipeline([], { validateChecksums: 'auto' });
    const off = new Pipeline([], { validateChecksums: false });
    for (let i = 0; i < 1200; i++) {
      const data = i % 20 === 0 ? bad : good;
      const p = { tsUs: i, linkType: 1, data, origLength: 0 };
      const x = later.prepare(p)!;
      const y = here.prepare(p)!;
      // during the sample the main pipeline checks every packet itself
      expect(x.checksumLater).toBe(i >= 1000);
      expect(x.checksumOk).toBe(i >= 1000 || data === good);
      expect(x.d.l4ChecksumOk).toBe(i >= 1000 || data === good);
      expect([y.checksumLater, y.checksumOk]).toEqual([false, data === good]);
      const z = off.prepare(p)!;
      expect([z.checksumLater, z.checksumOk, z.d.l4ChecksumOk]).toEqual([false, true, true]);
    }
    expect(later.validating).toBe(true);
  });

  it('decodes the helper frames with valid checksums', () => {
    const d = decode(1, tcpFrame({ payload: 'abc' }), newDecodeStats());
    expect(typeof d !== 'string' && d.ipChecksumOk && d.l4ChecksumOk).toBe(true);
  });
});

describe('a fault outside the rules', () => {
  it("ends that packet's inspection, is counted with where, and the run goes on; the end-of-input flush too", () => {
    const pipe = new Pipeline([
      parseRule('alert tcp-pkt any any -> any 8080 (msg:"mark"; content:"MARK"; sid:1;)'),
    ]);
    const e = pipe.engine;
    // a flow table that throws on the second packet: what a bug there did (a throw failed the whole run)
    const flows = (e as unknown as { flows: { trackFlow: (...a: unknown[]) => unknown } }).flows;
    const track = flows.trackFlow.bind(flows);
    let calls = 0;
    flows.trackFlow = (...a: unknown[]) => {
      if (++calls === 2) throw new Error('flow table broke');
      return track(...a);
    };
    const sids = [0, 1, 2].map((i) =>
      pipe
        .push({
          tsUs: 1e6 + i,
          linkType: 1,
          origLength: 58,
          data: tcpFrame({ sp: 40_000 + i, dp: 8080, payload: 'MARK' }),
        })
        .map((a) => a.sid),
    );
    expect(sids).toEqual([[1], [], [1]]);
    expect(e.stats.packetFaults).toBe(1);
    expect(e.packetFaults).toEqual([{ where: 'packet 2', error: 'flow table broke' }]);
    const drain = (e as unknown as { flows: { drain: () => void } }).flows;
    drain.drain = () => {
      throw new Error('drain broke');
    };
    expect(pipe.finish()).toEqual([]);
    expect(e.packetFaults.at(-1)).toEqual({ where: 'the end-of-input flush', error: 'drain broke' });
    expect(e.stats.packetFaults).toBe(2);
  });
});
