// A migration's unit sets: the sparse bitmap (UnitSet) against a Set model, and their frames on the
// control channel (runs over several frames, control version 3), round trip and refusals.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  ControlError,
  decodeUnitFrame,
  encodeMessage,
  encodeUnitFrames,
  frameBytesMax,
  UnitSet,
  unitPageBits,
  unitRunBytesMax,
} from '../src/index.js';

/** The runs of an ascending list of distinct units, as [first, count]. */
function runsOf(sorted: number[]): [number, number][] {
  const out: [number, number][] = [];
  for (const u of sorted) {
    const r = out[out.length - 1];
    if (r && r[0] + r[1] === u) r[1]++;
    else out.push([u, 1]);
  }
  return out;
}

/** Decodes frames into one set as a destination does. */
function decodeAll(frames: { runs: string; more: boolean }[], units: number): UnitSet {
  const set = new UnitSet();
  let end = 0;
  for (const [i, f] of frames.entries()) {
    expect(f.more).toBe(i < frames.length - 1);
    end = decodeUnitFrame(f, units, set, end);
  }
  return set;
}

describe('UnitSet', () => {
  it('behaves as a Set of numbers under adds, deletes and ranges across pages (model-based)', () => {
    const span = 3 * unitPageBits + 77;
    const op = fc.oneof(
      fc.record({ k: fc.constant('add' as const), u: fc.nat({ max: span }) }),
      fc.record({ k: fc.constant('delete' as const), u: fc.nat({ max: span }) }),
      fc.record({
        k: fc.constantFrom('addRange' as const, 'deleteRange' as const),
        u: fc.nat({ max: span }),
        n: fc.oneof(fc.nat({ max: 70 }), fc.nat({ max: unitPageBits + 70 })),
      }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
        const model = new Set<number>();
        const set = new UnitSet();
        for (const o of ops) {
          if (o.k === 'add') {
            set.add(o.u);
            model.add(o.u);
          } else if (o.k === 'delete') {
            expect(set.delete(o.u)).toBe(model.delete(o.u));
          } else {
            const n = (o as { n: number }).n;
            if (o.k === 'addRange') set.addRange(o.u, n);
            else set.deleteRange(o.u, n);
            for (let u = o.u; u < o.u + n; u++) o.k === 'addRange' ? model.add(u) : model.delete(u);
          }
          expect(set.size).toBe(model.size);
        }
        const sorted = [...model].sort((a, b) => a - b);
        expect([...set]).toEqual(sorted);
        expect([...set.runs()]).toEqual(runsOf(sorted));
        for (const u of [0, 31, 32, unitPageBits - 1, unitPageBits, span])
          expect(set.has(u)).toBe(model.has(u));
      }),
      { numRuns: 150 },
    );
  });

  it('marks 2^30 units (a 4 TiB device in 4 KiB units) in well under a second, a bit a unit at most', () => {
    const set = new UnitSet();
    const units = 2 ** 30;
    const t0 = performance.now();
    set.addRange(0, units);
    set.deleteRange(5, 1);
    expect(performance.now() - t0).toBeLessThan(2_000);
    expect(set.size).toBe(units - 1);
    expect([...set.runs()]).toEqual([
      [0, 5],
      [6, units - 6],
    ]);
    // indices past 2^31 (a device over 8 TiB in 4 KiB units) are kept as they are
    const far = new UnitSet([2 ** 33 + 3, 2 ** 33 + 4, 2 ** 40]);
    expect([...far.runs()]).toEqual([
      [2 ** 33 + 3, 2],
      [2 ** 40, 1],
    ]);
    expect(() => set.addRange(-1, 2)).toThrow(RangeError);
  });
});

describe('unit frames', () => {
  it('round-trip any set, in one frame or split over many', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 5 * unitPageBits }),
        fc.array(fc.tuple(fc.nat(), fc.nat({ max: 40 })), { maxLength: 80 }),
        fc.constantFrom(40, 48, 64, unitRunBytesMax),
        (units, ranges, runBytesMax) => {
          const set = new UnitSet();
          for (const [u, n] of ranges) set.addRange(u % units, Math.min(n, units - (u % units)));
          const frames = [...encodeUnitFrames(set, runBytesMax)];
          const back = decodeAll(frames, units);
          expect([...back.runs()]).toEqual([...set.runs()]);
          for (const f of frames)
            expect(Buffer.from(f.runs, 'base64').length).toBeLessThanOrEqual(runBytesMax);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('a set of every other unit of 2^30 (the worst case of a 4 TiB device) streams in bounded frames', () => {
    // 600,000 single-unit runs spread over 2^30 units: 3-4 bytes each, several frames of at most 1 MiB
    const units = 2 ** 30;
    const set = new UnitSet();
    for (let k = 0; k < 600_000; k++) set.add(k * 2 + (k % 7 === 0 ? 1_000_000_000 : 0));
    let frames = 0;
    let end = 0;
    const back = new UnitSet();
    for (const f of encodeUnitFrames(set)) {
      frames++;
      const frame = encodeMessage({ t: 'dirty', ...f });
      expect(frame.length).toBeLessThanOrEqual(frameBytesMax);
      end = decodeUnitFrame(f, units, back, end);
    }
    expect(frames).toBeGreaterThan(1);
    expect(back.size).toBe(set.size);
    expect([...back.runs()]).toEqual([...set.runs()]);
  });

  it("refuse what cannot be a set of the device's units, saying what", () => {
    const b64 = (...bytes: number[]) => Buffer.from(bytes).toString('base64');
    const bad: [{ runs: string; more: boolean }, RegExp][] = [
      [{ runs: '!!!!', more: false }, /not base64/],
      [{ runs: 'AAA', more: false }, /not base64/],
      [{ runs: '', more: true }, /empty unit list says more follow/],
      [{ runs: b64(3, 0), more: false }, /empty run at unit 3/],
      [{ runs: b64(14, 3), more: false }, /units \[14, 17\) past the last \(16\)/],
      [{ runs: b64(0x80), more: false }, /ends within a number/],
      [{ runs: b64(0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 1), more: false }, /past 2\^53/],
      // zero digits padded until the scale is Infinity: 0 * Infinity made the number NaN, which passed
      [{ runs: b64(...new Array(160).fill(0x80), 0, 1), more: false }, /past 2\^53/],
    ];
    for (const [f, re] of bad) {
      expect(() => decodeUnitFrame(f, 16, new UnitSet())).toThrow(ControlError);
      expect(() => decodeUnitFrame(f, 16, new UnitSet())).toThrow(re);
    }
    // a frame goes on from where the one before ended: a gap can only move forward
    const set = new UnitSet();
    const end = decodeUnitFrame({ runs: b64(2, 3), more: true }, 16, set);
    expect(end).toBe(5);
    expect(() => decodeUnitFrame({ runs: b64(10, 2), more: false }, 16, set, end)).toThrow(/\[15, 17\)/);
  });
});
