// The content search (`find`): the same answer as a plain loop over every start position, with and
// without nocase, on both of its paths (the runtime's indexOf for long case-sensitive windows, its own
// loop otherwise), at the bounds, and with bytes that ASCII case folding must leave alone.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { find } from '../src/find.js';

/** ASCII case folding only (Snort's nocase): bytes past 0x7f and the neighbours of A-Z stay as they are. */
const fold = (b: number) => (b >= 0x41 && b <= 0x5a ? b + 32 : b);

/** The first i >= max(0, from) with i + needle.length <= to where needle matches hay at i; -1 when none. */
function reference(hay: Uint8Array, needle: Uint8Array, from: number, to: number, nocase: boolean): number {
  for (let i = Math.max(0, from); i + needle.length <= to; i++) {
    let j = 0;
    while (j < needle.length && i + j < hay.length) {
      const a = hay[i + j]!;
      const b = needle[j]!;
      if (nocase ? fold(a) !== fold(b) : a !== b) break;
      j++;
    }
    if (j === needle.length) return i;
  }
  return -1;
}

// a small alphabet, so needles occur often: letters in both cases, their ASCII neighbours ('@', '[',
// '`', '{'), Latin-1 letters in both cases (0xc1/0xe1, 0xd6/0xf6: not folded) and other high bytes
const alphabet = [
  0x41, 0x61, 0x42, 0x62, 0x5a, 0x7a, 0x40, 0x5b, 0x60, 0x7b, 0xc1, 0xe1, 0xd6, 0xf6, 0x00, 0xff,
];
// (size 'max': lengths over the whole range, so windows long enough for the indexOf path come often)
const hayArb = fc
  .array(fc.constantFrom(...alphabet), { maxLength: 160, size: 'max' })
  .map((a) => Uint8Array.from(a));

/** A needle: a random one, or a piece of `hay` (its case flipped at random when `flip`). */
function needleArb(hay: Uint8Array) {
  const random = fc
    .array(fc.constantFrom(...alphabet), { maxLength: 48, size: 'max' })
    .map((a) => Uint8Array.from(a));
  const piece = fc
    .tuple(fc.nat(hay.length), fc.nat(48), fc.array(fc.boolean(), { minLength: 48, maxLength: 48 }))
    .map(([at, n, flip]) =>
      hay.slice(at, at + n).map((b, k) => (flip[k] && (b | 32) >= 0x61 && (b | 32) <= 0x7a ? b ^ 32 : b)),
    );
  return fc.oneof(random, piece);
}

describe('find (content search)', () => {
  it('agrees with a plain loop: nocase or not, any bounds, empty and overlong needles (property)', () => {
    fc.assert(
      fc.property(
        hayArb.chain((hay) =>
          fc.tuple(
            fc.constant(hay),
            needleArb(hay),
            fc.integer({ min: -4, max: hay.length + 4 }),
            fc.integer({ min: -4, max: hay.length + 50 }),
            fc.boolean(),
          ),
        ),
        ([hay, needle, from, to, nocase]) => {
          expect(find(hay, needle, from, to, nocase)).toBe(reference(hay, needle, from, to, nocase));
        },
      ),
      { numRuns: 5000 },
    );
  });

  it('finds a needle that exactly fills its window, and not when the window is one byte short (property)', () => {
    fc.assert(
      fc.property(
        hayArb.filter((h) => h.length > 0),
        fc.nat(),
        fc.nat(),
        fc.nat(40),
        fc.boolean(),
        (hay, a, b, before, nocase) => {
          const at = a % hay.length;
          const n = 1 + (b % (hay.length - at));
          const needle = hay.slice(at, at + n);
          const from = Math.max(0, at - before);
          // the window [from, at + n): the needle's last possible place, on the indexOf path when it is long
          expect(find(hay, needle, from, at + n, nocase)).toBe(reference(hay, needle, from, at + n, nocase));
          expect(reference(hay, needle, at, at + n, nocase)).toBe(at);
          expect(find(hay, needle, at, at + n, nocase)).toBe(at);
          expect(find(hay, needle, from, at + n - 1, nocase)).toBe(
            reference(hay, needle, from, at + n - 1, nocase),
          );
          expect(find(hay, needle, at + 1, at + n, nocase)).toBe(-1);
        },
      ),
      { numRuns: 3000 },
    );
  });

  it('caseless: the same answer where the byte it searches for is rare, everywhere, or a letter (property)', () => {
    // hays of the needle's own bytes in both cases (candidates dense, the first match right after a
    // candidate that failed) and of runs of a byte it does not hold (candidates sparse), long enough for
    // the byte search, with a window ending short of the hay or past it
    const needles = [
      'rcpt to:',
      'a:b',
      ':',
      'xx',
      'XxXx',
      'xXb',
      'b@',
      '@@x',
      'AbBa',
      'a :',
      '::b',
      'x:x',
      'b-a',
    ];
    const hayOf = (needle: string) => {
      const own = [...new Set([...needle.toLowerCase(), ...needle.toUpperCase()])];
      const piece = fc.oneof(fc.constantFrom(...own), fc.constant('#'.repeat(12)));
      return fc.array(piece, { maxLength: 300, size: 'max' }).map((a) => Buffer.from(a.join(''), 'latin1'));
    };
    fc.assert(
      fc.property(
        fc.constantFrom(...needles).chain((n) => fc.tuple(fc.constant(n), hayOf(n))),
        fc.nat(40),
        fc.integer({ min: -60, max: 40 }),
        ([n, hay], from, cut) => {
          const needle = Buffer.from(n, 'latin1');
          const to = hay.length + cut;
          expect(find(hay, needle, from, to, true)).toBe(reference(hay, needle, from, to, true));
        },
      ),
      { numRuns: 3000 },
    );
  });

  it('takes a hay that is no Buffer, a plain Uint8Array view into a larger one, on both paths', () => {
    const backing = new Uint8Array(300).fill(0x61);
    backing.set([0x58, 0x59, 0x5a], 10); // "XYZ" before the view
    backing.set([0x51, 0x52, 0x53], 250); // "QRS" inside it
    const hay = backing.subarray(20, 280);
    const needle = Uint8Array.of(0x51, 0x52, 0x53);
    for (const nocase of [false, true]) {
      expect(find(hay, needle, 0, hay.length, nocase)).toBe(230);
      expect(find(hay, needle, 0, 232, nocase)).toBe(-1);
      expect(find(hay, Uint8Array.of(0x58, 0x59, 0x5a), 0, hay.length, nocase)).toBe(-1);
    }
  });
});
