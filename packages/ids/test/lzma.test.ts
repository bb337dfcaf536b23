/**
 * The LZMA-alone decoder (`src/lzma.ts`) against streams made by XZ Utils (test/fixtures/lzma/README.md):
 * every properties variant the encoder allows, both match finders' kinds, a bomb, random bytes; the
 * header's known size; the output cap; any cut or mutation (decoded or refused, never a throw or a hang).
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { lzmaDecode } from '../src/lzma.js';

const fixture = (name: string) =>
  new Uint8Array(readFileSync(new URL(`fixtures/lzma/${name}`, import.meta.url)));
const eicar = 'X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*';
/** SHA-256 of the first 64 KiB of loghub's Android_2k.log, the input of the android-*.lzma fixtures. */
const android64k = '570803fd9fd4704f735bc5b5655498b13053e78cd5d013c11890096df68d15f0';
const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const text = (b: Uint8Array) => Buffer.from(b).toString('latin1');
/** `s` with its header's uncompressed size (bytes 5-12, little-endian) set to `n`. */
const sized = (s: Uint8Array, n: number) => {
  const out = Uint8Array.from(s);
  new DataView(out.buffer).setBigUint64(5, BigInt(n), true);
  return out;
};

describe('LZMA-alone decoding', () => {
  it("decodes XZ Utils' streams byte for byte: presets 1, 6 and 9e, lc/lp/pb variants, a fast match finder", () => {
    for (const name of [
      'android-6.lzma',
      'android-lc0-lp2-pb0.lzma',
      'android-lc4-lp0-pb4.lzma',
      'android-9e-lc1-lp3-pb3.lzma',
      'android-1-fast-hc3.lzma',
    ]) {
      const r = lzmaDecode(fixture(name), 1 << 20);
      expect([r.ok, r.capped, r.error, r.out.length, sha256(r.out)], name).toEqual([
        true,
        false,
        undefined,
        65_536,
        android64k,
      ]);
    }
    expect(text(lzmaDecode(fixture('eicar.lzma'), 1 << 20).out)).toBe(eicar);
    // random bytes: literals nearly all through
    const random = lzmaDecode(fixture('random-4k.lzma'), 1 << 20);
    expect(random.ok).toBe(true);
    expect(random.out).toEqual(fixture('random-4k.bin'));
  });

  it('a known size in the header ends the output there, before or without the end marker', () => {
    const s = fixture('eicar.lzma');
    expect(text(lzmaDecode(sized(s, 68), 1 << 20).out)).toBe(eicar);
    const short = lzmaDecode(sized(s, 30), 1 << 20);
    expect([short.ok, text(short.out)]).toEqual([true, eicar.slice(0, 30)]);
    // the marker before the size: what came, and the error
    const long = lzmaDecode(sized(s, 100), 1 << 20);
    expect([long.ok, text(long.out), long.error]).toEqual([false, eicar, 'end marker at byte 68 of 100']);
    expect(lzmaDecode(sized(s, 0), 1 << 20)).toMatchObject({ ok: true, out: new Uint8Array(0) });
  });

  it('stops at the output cap: a bomb of 1 MiB of zeros in 237 bytes', () => {
    const bomb = fixture('zeros-1mib.lzma');
    expect(bomb.length).toBe(237);
    const r = lzmaDecode(bomb, 1000);
    expect([r.ok, r.capped, r.out.length, r.out.every((c) => c === 0)]).toEqual([false, true, 1000, true]);
    const whole = lzmaDecode(bomb, 1 << 20);
    expect([whole.ok, whole.out.length]).toEqual([true, 1 << 20]);
    // a known size past the cap is capped too
    expect(lzmaDecode(sized(bomb, 1 << 20), 4096)).toMatchObject({ ok: false, capped: true });
  });

  it('refuses what is no LZMA stream, saying what', () => {
    const s = fixture('eicar.lzma');
    expect(lzmaDecode(s.subarray(0, 12), 1 << 20).error).toBe('header: under 13 bytes');
    expect(lzmaDecode(Uint8Array.from([225, ...s.subarray(1)]), 1 << 20).error).toBe(
      'properties byte 225: over 224',
    );
    // lc 8, lp 4 (0x300 << 12 probabilities): refused before any allocation
    expect(lzmaDecode(Uint8Array.from([8 + 9 * 4, ...s.subarray(1)]), 1 << 20).error).toBe(
      'lc + lp = 12: over 8',
    );
    const bad = Uint8Array.from(s);
    bad[13] = 1;
    expect(lzmaDecode(bad, 1 << 20).error).toBe('range coder: first byte not 0');
    // a first symbol that is a match (its distance reaches before the start), or a repeated match
    const first = (...code: number[]) =>
      lzmaDecode(Uint8Array.from([...s.subarray(0, 13), 0, ...code, 0, 0, 0, 0]), 1 << 20);
    expect(first(0x80, 0, 0, 0).error).toBe('distance 1 at byte 0: before the start');
    expect(first(0xf0, 0, 0, 0).error).toBe('a repeated match before any output');
    expect(first(0xff, 0xff, 0xff, 0xff).error).toBe('range coder: corrupt start');
  });

  it('a stream cut anywhere gives a prefix of its output (property)', () => {
    const s = fixture('android-9e-lc1-lp3-pb3.lzma');
    const full = lzmaDecode(s, 1 << 20).out;
    fc.assert(
      fc.property(fc.nat(s.length), (n) => {
        const r = lzmaDecode(s.subarray(0, n), 1 << 20);
        expect(r.ok).toBe(n === s.length);
        expect(Buffer.compare(r.out, full.subarray(0, r.out.length))).toBe(0);
        if (n < s.length && n >= 13) expect(r.error).toBe('input ended early');
      }),
      { numRuns: 200 },
    );
  });

  it('mutated streams decode or stop with an error, within the cap, never throwing (fuzz)', () => {
    const names = ['eicar.lzma', 'android-6.lzma', 'zeros-1mib.lzma', 'random-4k.lzma'];
    const errors = new Set<string>();
    fc.assert(
      fc.property(
        fc.nat(names.length - 1),
        fc.array(fc.tuple(fc.nat(), fc.nat(255)), { minLength: 1, maxLength: 8 }),
        fc.integer({ min: 1, max: 1 << 17 }),
        (which, flips, cap) => {
          const m = Uint8Array.from(fixture(names[which]!));
          for (const [at, v] of flips) m[at % m.length] = v;
          const r = lzmaDecode(m, cap);
          expect(r.out.length).toBeLessThanOrEqual(cap);
          if (r.error) errors.add(r.error.replace(/\d+/g, 'N'));
        },
      ),
      { numRuns: 400 },
    );
    // the fuzz reached the decoder's checks, not only the header's
    expect([...errors].some((e) => e.includes('before the start') || e === 'input ended early')).toBe(true);
  });
});
