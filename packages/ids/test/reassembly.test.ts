import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type Alert, type Decoded, Engine, type EngineOptions, parseRule } from '../src/index.js';
import { ACK, FIN, handshake, PSH, pkt } from './helpers.js';

const C = { src: '10.0.0.1', dst: '10.0.0.2', sp: 40000, dp: 80 };
const S = { src: '10.0.0.2', dst: '10.0.0.1', sp: 80, dp: 40000 };

function engine(rules: string[], opts: EngineOptions = {}): Engine {
  return new Engine(
    rules.map((r, i) => parseRule(r, 't.rules', i + 1)),
    opts,
  );
}

function run(e: Engine, pkts: Decoded[]): Alert[] {
  const out: Alert[] = [];
  pkts.forEach((p, i) => {
    out.push(...e.inspect(p, 1_000_000 + i));
  });
  out.push(...e.finish());
  return out;
}

/** Client data segments [offset, text] after the handshake (client ISN 1000: data starts at 1001). */
function data(segs: [number, string][], ackAfter = true, ackEach = false): Decoded[] {
  const out = [...handshake()];
  const have = new Set<number>();
  let contiguous = 0;
  for (const [off, t] of segs) {
    out.push(pkt({ ...C, flags: ACK | PSH, seq: 1001 + off, ack: 5001, payload: t }));
    if (!ackEach) continue;
    // the receiver acknowledges cumulatively: up to the end of what it holds without a hole
    for (let i = 0; i < t.length; i++) have.add(off + i);
    while (have.has(contiguous)) contiguous++;
    out.push(pkt({ ...S, flags: ACK, seq: 5001, ack: 1001 + contiguous }));
  }
  const end = Math.max(0, ...segs.map(([o, t]) => o + t.length));
  if (ackAfter) out.push(pkt({ ...S, flags: ACK, seq: 5001, ack: 1001 + end }));
  return out;
}

describe('rules on the reassembled stream', () => {
  it('matches content across segment boundaries; tcp-pkt rules see single packets only', () => {
    const e = engine([
      'alert tcp any any -> any 80 (msg:"split"; content:"cmd.exe"; sid:1;)',
      'alert tcp-pkt any any -> any 80 (msg:"pkt"; content:"cmd.exe"; sid:2;)',
      'alert tcp-stream any any -> any 80 (msg:"stream"; content:"/c dir"; sid:3;)',
      'alert tcp any any -> any 80 (msg:"dsize is per packet"; dsize:3; content:"cmd"; sid:4;)',
    ]);
    const alerts = run(
      e,
      data([
        [0, 'GET /cmd'],
        [8, '.exe /c'],
        [15, ' dir'],
      ]),
    );
    expect(alerts.map((a) => a.sid).sort()).toEqual([1, 3]);
    expect(alerts.every((a) => a.stream && a.src === '10.0.0.1' && a.dstPort === 80)).toBe(true);
    expect(e.stats.segmentsInOrder).toBe(3);
  });

  it('reorders out-of-order segments and counts them; content+distance straddles segments', () => {
    const e = engine([
      'alert tcp any any -> any any (content:"USER"; content:"root"; distance:1; within:5; sid:7;)',
    ]);
    const alerts = run(
      e,
      data([
        [6, 'root\r\n'],
        [0, 'USER'],
        [4, '  '],
      ]),
    );
    expect(alerts.map((a) => a.sid)).toEqual([7]);
    expect(e.stats.segmentsOutOfOrder).toBe(1);
  });

  it('an overlap is resolved by the receiving host policy before inspection', () => {
    const rules = [
      'alert tcp-stream any any -> any any (content:"EVIL"; sid:1;)',
      'alert tcp-stream any any -> any any (content:"GOOD"; sid:2;)',
    ];
    const segs: [number, string][] = [
      [0, 'GOOD'],
      [0, 'EVIL'],
    ];
    expect(run(engine(rules), data(segs)).map((a) => a.sid)).toEqual([2]);
    expect(run(engine(rules, { overlapPolicy: 'last' }), data(segs)).map((a) => a.sid)).toEqual([1]);
    expect(
      run(
        engine(rules, { hostOsPolicy: { windows: ['0.0.0.0/0'], 'old-linux': ['10.0.0.2'] } }),
        data(segs),
      ).map((a) => a.sid),
    ).toEqual([1]);
    // inline: data is inspected when it arrives, so the first copy is what the rules saw
    expect(
      run(engine(rules, { overlapPolicy: 'last', streamRelease: 'immediate' }), data(segs)).map((a) => a.sid),
    ).toEqual([2]);
  });

  it('flushes unacknowledged data when the flow ends; a hole stops matches across it', () => {
    const e = engine([
      'alert tcp any any -> any any (content:"GOODDATA"; sid:1;)',
      'alert tcp any any -> any any (content:"VERYGOOD"; sid:2;)',
    ]);
    const alerts = run(
      e,
      data(
        [
          [4, 'GOOD'],
          [8, 'DATA'],
        ],
        false,
      ),
    );
    expect(alerts.map((a) => a.sid)).toEqual([1]);
  });

  it('no handshake and no midstream: packets are inspected one by one, not as a stream', () => {
    const e = engine([
      'alert tcp any any -> any any (content:"abcdef"; sid:1;)',
      'alert tcp any any -> any any (content:"abc"; sid:2;)',
      'alert tcp-stream any any -> any any (content:"abc"; sid:3;)',
    ]);
    const alerts = run(e, [pkt({ ...C, seq: 1, payload: 'abc' }), pkt({ ...C, seq: 4, payload: 'def' })]);
    expect(alerts.map((a) => a.sid)).toEqual([2]);
  });

  it('FIN and one alert per occurrence: two requests in one stream alert twice', () => {
    const e = engine([
      'alert tcp any any -> any 80 (content:"GET "; depth:4; sid:1;)',
      'alert tcp any any -> any 80 (content:"GET "; sid:2;)',
    ]);
    const p = data([[0, 'GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n']]);
    p.push(pkt({ ...C, flags: FIN | ACK, seq: 1001 + 38, ack: 5001 }));
    const alerts = run(e, p);
    expect(alerts.filter((a) => a.sid === 1)).toHaveLength(1);
    expect(alerts.filter((a) => a.sid === 2)).toHaveLength(2);
  });

  it('a large release is inspected in pieces; a match across a piece boundary is found once', () => {
    const big = Buffer.alloc(40_000, 0x2e);
    big.write('needle', 16_384 - 3, 'latin1');
    big.write('needle', 39_000, 'latin1');
    const e = engine(['alert tcp any any -> any any (content:"needle"; sid:1;)']);
    const segs: [number, string][] = [];
    for (let o = 0; o < big.length; o += 1000) segs.push([o, big.toString('latin1', o, o + 1000)]);
    expect(run(e, data(segs)).map((a) => a.sid)).toEqual([1, 1]);
  });

  it('alerts are the same whether segments arrive in order or shuffled (property)', () => {
    const rules = [
      'alert tcp any any -> any any (content:"attack"; sid:1;)',
      'alert tcp any any -> any any (content:"ab"; content:"cd"; distance:0; within:6; sid:2;)',
      'alert tcp any any -> any any (pcre:"/x[0-9]+y/"; sid:3;)',
      'alert tcp any any -> any any (content:"abcd"; sid:4;)',
      'alert tcp any any -> any any (content:"dc"; content:"ba"; distance:1; sid:5;)',
    ];
    // words, not letters: matches (and matches across segment boundaries) must be frequent
    const alphabet = fc.constantFrom('abcd', 'ab', 'cd', 'x12y', 'att', 'ack', 'dc', 'ba', ' ', 'zz', 'a');
    fc.assert(
      fc.property(
        fc.array(alphabet, { minLength: 1, maxLength: 80 }).map((a) => a.join('')),
        fc.array(fc.nat(199), { maxLength: 12 }),
        fc.infiniteStream(fc.nat()),
        (text, cuts, rnd) => {
          const points = [...new Set([0, ...cuts.filter((c) => c < text.length), text.length])].sort(
            (a, b) => a - b,
          );
          const segs: [number, string][] = [];
          for (let i = 0; i + 1 < points.length; i++)
            segs.push([points[i]!, text.slice(points[i]!, points[i + 1]!)]);
          const shuffled = [...segs];
          const it = rnd[Symbol.iterator]();
          for (let i = shuffled.length - 1; i > 0; i--) {
            const j = it.next().value! % (i + 1);
            [shuffled[i], shuffled[j]] = [shuffled[j]!, shuffled[i]!];
          }
          const key = (as: Alert[]) =>
            as
              .map((a) => a.sid)
              .sort()
              .join(',');
          const inOrder = key(run(engine(rules), data(segs, true, true)));
          expect(key(run(engine(rules), data(shuffled, true, true)))).toBe(inOrder);
          expect(key(run(engine(rules, { streamRelease: 'immediate' }), data(shuffled)))).toBe(inOrder);
          // and the same as one packet carrying the whole text
          expect(key(run(engine(rules), data([[0, text]])))).toBe(inOrder);
        },
      ),
      { numRuns: 150 },
    );
  });
});
