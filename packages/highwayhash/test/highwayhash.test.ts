import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { loadCheck } from '../src/hash.js';
import {
  createHasher,
  hash64,
  hash64Batch,
  hash64Words,
  hash128,
  hash128Words,
  hash256,
  implementation,
  sipHash13,
  sipHash24,
  useImplementation,
} from '../src/index.js';
import { mulHi } from '../src/portable.js';

// Reference vectors from google/highwayhash (provenance inside the fixture).
const v = JSON.parse(readFileSync(new URL('./fixtures/highwayhash.json', import.meta.url), 'utf8'));
const hex = (b: bigint) => b.toString(16).padStart(16, '0');
const keyOf = (words: string[]) => BigUint64Array.from(words.map((h) => BigInt(`0x${h}`)));
const key = keyOf(v.key_u64_hex);
const keyBytes = Uint8Array.from(Buffer.from(v.key_bytes_hex, 'hex'));
const input = (len: number) => Uint8Array.from({ length: len }, (_, i) => i & 0xff);
const cases: { len: number; h64: string; h128: string[]; h256: string[] }[] = [
  ...v.cases,
  ...v.derived_cases.cases,
];

const start = implementation();
afterAll(() => useImplementation(start));

for (const impl of ['wasm', 'ts'] as const) {
  describe(`HighwayHash (${impl})`, () => {
    it('matches every reference vector, one-shot and streaming', () => {
      useImplementation(impl);
      for (const c of cases) {
        const d = input(c.len);
        expect(hex(hash64(key, d)), `len ${c.len}`).toBe(c.h64);
        expect([...hash128(key, d)].map(hex), `len ${c.len}`).toEqual(c.h128);
        expect([...hash256(key, d)].map(hex), `len ${c.len}`).toEqual(c.h256);
        expect(hex(hash64(keyBytes, d))).toBe(c.h64);
        const h = createHasher(key);
        for (let i = 0; i < d.length; i += 13) h.update(d.subarray(i, i + 13));
        expect(hex(h.digest64())).toBe(c.h64);
        expect([...h.reset().update(d).digest256()].map(hex)).toEqual(c.h256);
      }
      for (const c of v.extra_cases.cases) {
        const k = keyOf(v.extra_cases.key_u64_hex);
        const d = Uint8Array.from(Buffer.from(c.input_hex, 'hex'));
        expect(hex(hash64(k, d))).toBe(c.h64);
        expect([...hash128(k, d)].map(hex)).toEqual(c.h128);
      }
    });

    it('streaming over random splits equals one-shot (property)', () => {
      useImplementation(impl);
      fc.assert(
        fc.property(
          fc.uint8Array({ maxLength: 700, size: 'max' }),
          fc.array(fc.nat(80), { maxLength: 20, size: 'max' }),
          (data, cuts) => {
            const h = createHasher(key);
            let p = 0;
            for (const c of cuts) {
              h.update(data.subarray(p, p + c));
              p += c;
            }
            h.update(data.subarray(p));
            expect(h.digest64()).toBe(hash64(key, data));
            expect([...h.reset().update(data).digest128()]).toEqual([...hash128(key, data)]);
          },
        ),
        { numRuns: 300 },
      );
    });

    it('the batch form equals single calls, into BigUint64Array and Uint32Array', () => {
      useImplementation(impl);
      const buf = input(3000).map((x) => (x * 7) & 0xff);
      const offs = Uint32Array.from({ length: 200 }, (_, i) => (i * 37) % 2800);
      const lens = Uint32Array.from({ length: 200 }, (_, i) => i % 190);
      const out = new BigUint64Array(200);
      const out32 = new Uint32Array(400);
      hash64Batch(key, buf, offs, lens, out);
      hash64Batch(key, buf, offs, lens, out32);
      for (let i = 0; i < 200; i++) {
        const want = hash64(key, buf.subarray(offs[i]!, offs[i]! + lens[i]!));
        expect(out[i]).toBe(want);
        expect((BigInt(out32[2 * i + 1]!) << 32n) | BigInt(out32[2 * i]!)).toBe(want);
      }
    });

    it('hashes large inputs across chunk boundaries and unaligned views', () => {
      useImplementation(impl);
      const big = new Uint8Array((3 << 20) + 45).map((_, i) => (i * 31) >>> 3);
      const h = createHasher(key);
      h.update(big.subarray(0, 1000001)).update(big.subarray(1000001));
      expect(h.digest64()).toBe(hash64(key, big));
      const unaligned = big.subarray(3, 3 + 1000);
      expect(hash64(key, unaligned)).toBe(hash64(key, Uint8Array.from(unaligned)));
    });
  });
}

describe('WebAssembly and TypeScript agree', () => {
  it('on random keys and every length 0..1100, and a few large ones (property)', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.uint8Array({ minLength: 1100, maxLength: 1100 }),
        (k, data) => {
          for (let len = 0; len <= 1100; len++) {
            const d = data.subarray(0, len);
            useImplementation('wasm');
            const a = [hash64(k, d), ...hash128(k, d), ...hash256(k, d)];
            useImplementation('ts');
            const b = [hash64(k, d), ...hash128(k, d), ...hash256(k, d)];
            expect(a).toEqual(b);
          }
        },
      ),
      { numRuns: 4 },
    );
    const big = new Uint8Array(5 << 20).map((_, i) => i ^ (i >>> 11));
    useImplementation('wasm');
    const a = hash256(key, big);
    useImplementation('ts');
    expect([...hash256(key, big)]).toEqual([...a]);
  });

  it('hash64Words (whole or part of a buffer) and hash128Words give the same words without BigInt', () => {
    for (const impl of ['wasm', 'ts'] as const) {
      useImplementation(impl);
      for (const len of [0, 16, 40, 1024, 5000]) {
        const w = hash64Words(key, input(len), new Uint32Array(2));
        expect((BigInt(w[1]!) << 32n) | BigInt(w[0]!)).toBe(hash64(key, input(len)));
        const w4 = hash128Words(key, input(len), new Uint32Array(4));
        const big = hash128(key, input(len));
        expect([0, 1].map((i) => (BigInt(w4[2 * i + 1]!) << 32n) | BigInt(w4[2 * i]!))).toEqual([...big]);
      }
      expect(() => hash128Words(key, input(1), new Uint32Array(2))).toThrow(TypeError);
      // a part of a buffer, without a subarray: equal to hashing the subarray, at every size class
      const buf = input(6000);
      for (const [a, b] of [
        [0, 0],
        [3, 3],
        [1, 40],
        [7, 300],
        [100, 5000],
        [0, 6000],
        [5999, 6000],
      ] as const) {
        const part = [...hash64Words(key, buf, new Uint32Array(2), a, b)];
        expect(part).toEqual([...hash64Words(key, buf.subarray(a, b), new Uint32Array(2))]);
      }
      for (const [a, b] of [
        [-1, 3],
        [4, 3],
        [0, 6001],
        [0.5, 2],
      ] as const)
        expect(() => hash64Words(key, buf, new Uint32Array(2), a, b)).toThrow(RangeError);
    }
    useImplementation('wasm');
  });

  it('keeps two keys resident: alternating keys, and a key changed in place, give the right hashes', () => {
    const other = new Uint8Array(32).map((_, i) => 255 - i);
    for (const impl of ['wasm', 'ts'] as const) {
      useImplementation(impl);
      for (const len of [0, 5, 33, 1024])
        for (const k of [key, other, key, other]) {
          // a fresh copy of the key is never a cached one
          expect(hash64(k, input(len))).toBe(hash64(k.slice(), input(len)));
          expect([...hash128(k, input(len))]).toEqual([...hash128(k.slice(), input(len))]);
        }
      const mutable = other.slice();
      const before = hash64(mutable, input(40));
      hash64(key, input(40)); // mutable is now the second resident key
      mutable[0]! ^= 1;
      expect(hash64(mutable, input(40))).not.toBe(before);
      expect(hash64(mutable, input(40))).toBe(hash64(mutable.slice(), input(40)));
    }
    useImplementation('wasm');
  });

  it('the WebAssembly engine agrees with TypeScript over any sequence of three keys (two resident slots)', () => {
    const keys = [key, new Uint8Array(32).map((_, i) => 255 - i), new Uint8Array(32).map((_, i) => i * 37)];
    const ts = (f: () => unknown) => {
      useImplementation('ts');
      const r = f();
      useImplementation('wasm');
      return r;
    };
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(2), fc.nat(5), fc.integer({ min: 0, max: 5000 })), {
          minLength: 1,
          maxLength: 40,
        }),
        (steps) => {
          useImplementation('wasm');
          const streams = keys.map((k) => createHasher(k));
          const streamed = keys.map(() => [] as Uint8Array[]);
          for (const [ki, op, len] of steps) {
            const k = keys[ki]!;
            const data = input(len);
            if (op === 0) expect(hash64(k, data)).toBe(ts(() => hash64(k, data)));
            else if (op === 1) {
              expect([...hash128(k, data)]).toEqual(ts(() => [...hash128(k, data)]));
              const w4 = [...hash128Words(k, data, new Uint32Array(4))];
              expect(w4).toEqual(ts(() => [...hash128Words(k, data, new Uint32Array(4))]));
            } else if (op === 2) {
              const w = hash64Words(k, data, new Uint32Array(2));
              const want = ts(() => [...hash64Words(k, data, new Uint32Array(2))]);
              expect([...w]).toEqual(want);
            } else if (op === 3) {
              const out = new BigUint64Array(2);
              const lens = new Uint32Array([len >>> 1, len - (len >>> 1)]);
              const offs = new Uint32Array([0, len >>> 1]);
              hash64Batch(k, data, offs, lens, out);
              expect([...out]).toEqual([
                hash64(k, data.subarray(0, len >>> 1)),
                hash64(k, data.subarray(len >>> 1)),
              ]);
              expect(out[0]).toBe(ts(() => hash64(k, data.subarray(0, len >>> 1))));
            } else {
              // a stream of this key goes on between the one-shot hashes of the others
              streams[ki]!.update(data);
              streamed[ki]!.push(data);
              const all = Buffer.concat(streamed[ki]!);
              expect(streams[ki]!.digest64()).toBe(ts(() => hash64(k, all)));
            }
          }
        },
      ),
      { numRuns: 150 },
    );
  });
});

describe('engines agree on the fast paths (property)', () => {
  const both = <T>(f: () => T): [T, T] => {
    useImplementation('wasm');
    const a = f();
    useImplementation('ts');
    const b = f();
    return [a, b];
  };

  it('one-shot and streaming agree over random lengths up to 70 KiB and random chunkings', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.integer({ min: 0, max: 70_000 }),
        fc.integer({ min: 0, max: 0xffff }),
        fc.array(fc.integer({ min: 0, max: 20_000 }), { maxLength: 8 }),
        (k, len, seed, cuts) => {
          const data = new Uint8Array(len).map((_, i) => (i * 131 + seed) >>> (i & 7));
          const [a, b] = both(() => {
            const h = createHasher(k);
            let p = 0;
            for (const c of cuts) {
              h.update(data.subarray(p, p + c));
              p += c;
            }
            h.update(data.subarray(p));
            const words = hash64Words(k, data, new Uint32Array(2));
            return [hash64(k, data), h.digest64(), (BigInt(words[1]!) << 32n) | BigInt(words[0]!)];
          });
          expect(a[0]).toBe(a[1]);
          expect(a[0]).toBe(a[2]);
          expect(b).toEqual(a);
        },
      ),
      { numRuns: 40 },
    );
  });

  it('interleaved hashers, one-shot calls between their updates and resets with a new key (property)', () => {
    // the WebAssembly engine keeps one hasher's state in the core and saves it when another user needs it
    const large = new Uint8Array((300 << 10) + 7).map((_, i) => (i * 131) >>> 5);
    const largeWant = both(() => [...hash256(key, large)]);
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.uint8Array({ minLength: 2000, maxLength: 2000 }),
        fc.array(fc.tuple(fc.nat(2), fc.nat(120), fc.nat(9)), { maxLength: 40, size: 'max' }),
        (k, data, ops) => {
          const [a, b] = both(() => {
            const hs = [createHasher(k), createHasher(key), createHasher(k)];
            const keys = [k, key, k];
            const ends = [0, 0, 0];
            const seen: bigint[] = [];
            for (const [h, len, extra] of ops) {
              const end = Math.min(data.length, ends[h]! + len);
              hs[h]!.update(data.subarray(ends[h]!, end));
              ends[h] = end;
              if (extra === 0) expect([...hash256(key, large)]).toEqual(largeWant[0]);
              if (extra === 1)
                seen.push(hash64(k, data.subarray(0, len)), ...hash128(key, data.subarray(len)));
              if (extra === 2) seen.push(hs[h]!.digest64());
              if (extra === 3) {
                hs[h]!.reset(key);
                keys[h] = key;
                ends[h] = 0;
              }
            }
            for (let h = 0; h < 3; h++) {
              const d = data.subarray(0, ends[h]);
              expect(hs[h]!.digest64()).toBe(hash64(keys[h]!, d));
              expect([...hs[h]!.digest256()]).toEqual([...hash256(keys[h]!, d)]);
              seen.push(hs[h]!.digest64(), ...hs[h]!.digest128());
            }
            return seen;
          });
          expect(b).toEqual(a);
        },
      ),
      { numRuns: 60 },
    );
    expect(largeWant[1]).toEqual(largeWant[0]);
  });

  it('a key mutated in place between calls is noticed, for every key form', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.uint8Array({ maxLength: 100, size: 'max' }),
        (k1, k2, data) => {
          for (const impl of ['wasm', 'ts'] as const) {
            useImplementation(impl);
            const aligned = new Uint8Array(k1);
            const unaligned = new Uint8Array(33).subarray(1);
            unaligned.set(k1);
            const words = new BigUint64Array(new Uint8Array(k1).buffer);
            for (const key of [aligned, unaligned, words]) {
              expect(hash64(key, data)).toBe(hash64(Uint8Array.from(k1), data));
              if (key instanceof BigUint64Array) key.set(new BigUint64Array(Uint8Array.from(k2).buffer));
              else key.set(k2);
              expect(hash64(key, data)).toBe(hash64(Uint8Array.from(k2), data));
              expect([...hash128(key, data)]).toEqual([...hash128(Uint8Array.from(k2), data)]);
            }
          }
        },
      ),
      { numRuns: 30 },
    );
  });

  it('the batch form equals single calls on random, unsorted, overlapping keys', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.uint8Array({ minLength: 1, maxLength: 600, size: 'max' }),
        fc.array(fc.tuple(fc.nat(), fc.nat(70)), { maxLength: 60, size: 'max' }),
        (k, buf, picks) => {
          const offs = Uint32Array.from(picks, ([o]) => o % buf.length);
          const lens = Uint32Array.from(picks, ([, l], i) => Math.min(l, buf.length - offs[i]!));
          const [a, b] = both(() => {
            const out = new BigUint64Array(picks.length);
            const out32 = new Uint32Array(2 * picks.length);
            hash64Batch(k, buf, offs, lens, out);
            hash64Batch(k, buf, offs, lens, out32);
            for (let i = 0; i < picks.length; i++) {
              const want = hash64(k, buf.subarray(offs[i]!, offs[i]! + lens[i]!));
              expect(out[i]).toBe(want);
              expect((BigInt(out32[2 * i + 1]!) << 32n) | BigInt(out32[2 * i]!)).toBe(want);
            }
            return [...out];
          });
          expect(b).toEqual(a);
        },
      ),
      { numRuns: 100 },
    );
  });

  it('the batch form crosses its internal chunk of 65,536 keys', () => {
    const n = 70_000;
    const buf = new Uint8Array(n + 40).map((_, i) => (i * 2654435761) >>> 24);
    const offs = Uint32Array.from({ length: n }, (_, i) => (i * 7919) % n);
    const lens = Uint32Array.from({ length: n }, (_, i) => i % 40);
    useImplementation('wasm');
    const out = new BigUint64Array(n);
    hash64Batch(key, buf, offs, lens, out);
    useImplementation('ts');
    for (let i = 0; i < n; i += 997)
      expect(out[i]).toBe(hash64(key, buf.subarray(offs[i]!, offs[i]! + lens[i]!)));
    expect(out[n - 1]).toBe(hash64(key, buf.subarray(offs[n - 1]!, offs[n - 1]! + lens[n - 1]!)));
  });
});

describe("the TypeScript core's 32x32->64 multiply", () => {
  it('mulHi (float product corrected by the exact low word) is exact (property)', () => {
    const check = (a: number, b: number) => {
      const p = BigInt(a) * BigInt(b);
      expect(mulHi(a, b, Math.imul(a, b) >>> 0)).toBe(Number(p >> 32n));
    };
    const edges = [0, 1, 2, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0x80000001, 0xfffffffe, 0xffffffff];
    for (const a of edges) for (const b of edges) check(a, b);
    fc.assert(
      fc.property(fc.nat({ max: 0xffffffff }), fc.nat({ max: 0xffffffff }), (a, b) => check(a, b)),
      { numRuns: 20_000 },
    );
  });
});

describe('SipHash', () => {
  const k16 = Uint8Array.from({ length: 16 }, (_, i) => i);
  it('matches the reference SipHash-2-4 and SipHash-1-3 outputs', () => {
    for (const [name, f] of [
      ['sip24', sipHash24],
      ['sip13', sipHash13],
    ] as const) {
      const cs = [...v.siphash[name].cases, ...(v.siphash[`${name}_derived`]?.cases ?? [])];
      expect(cs.length).toBeGreaterThan(10);
      for (const c of cs) expect(hex(f(k16, input(c.len))), `${name} len ${c.len}`).toBe(c.h);
    }
  });
});

describe('bad input', () => {
  it('names what was expected', () => {
    expect(() => hash64(new BigUint64Array(3), input(1))).toThrow(/4 words, got 3/);
    expect(() => hash64(new Uint8Array(31), input(1))).toThrow(/32 bytes, got 31/);
    expect(() => hash64('key' as unknown as Uint8Array, input(1))).toThrow(TypeError);
    expect(() => hash64(key, 'text' as unknown as Uint8Array)).toThrow(/expected a Uint8Array/);
    expect(() => sipHash24(new Uint8Array(8), input(1))).toThrow(/16 bytes, got 8 bytes/);
    expect(() =>
      hash64Batch(key, input(10), Uint32Array.of(5), Uint32Array.of(9), new BigUint64Array(1)),
    ).toThrow(RangeError);
    // offsets, lengths and out of other kinds (a plain array failed inside the WebAssembly path)
    const batch = (offs: unknown, lens: unknown, out: unknown) => () =>
      hash64Batch(key, input(10), offs as Uint32Array, lens as Uint32Array, out as BigUint64Array);
    expect(batch([-1], Uint32Array.of(4), new BigUint64Array(1))).toThrow(
      /hash64Batch offsets: expected a Uint32Array, got /,
    );
    expect(batch(Uint32Array.of(0), Int32Array.of(4), new BigUint64Array(1))).toThrow(
      /hash64Batch lengths: expected a Uint32Array, got /,
    );
    expect(batch(Uint32Array.of(0), Uint32Array.of(4), [0n])).toThrow(
      /hash64Batch out: expected a BigUint64Array or a Uint32Array, got /,
    );
  });
});

describe('the check at load', () => {
  it('runs when the WebAssembly core is chosen later (the portable one was forced at load)', () => {
    const src = new URL('../src/index.ts', import.meta.url).pathname;
    const r = spawnSync(
      process.execPath,
      [
        '--import',
        'tsx',
        '--input-type=module',
        '-e',
        `const m = await import(${JSON.stringify(src)}); const a = m.implementation(); m.useImplementation('wasm');
         console.log(a, m.implementation(), m.hash64(new Uint8Array(32).map((_, i) => i), new Uint8Array(0)).toString(16));`,
      ],
      { encoding: 'utf8', env: { ...process.env, STRATA_HIGHWAYHASH: 'ts' }, timeout: 60_000 },
    );
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe('ts wasm 907a56de22c26e53');
  });

  it('expects what the portable core computes, and the WebAssembly core passed it (it is in use)', () => {
    // the test process loads the module as any user does: the core is WebAssembly, so the check passed
    expect(start).toBe(process.env.STRATA_HIGHWAYHASH === 'ts' ? 'ts' : 'wasm');
    useImplementation('ts');
    try {
      const { keys, data, lengths } = loadCheck;
      const h64 = lengths.flatMap((n) => keys.map((k) => hash64(k, data.subarray(0, n))));
      expect(h64).toEqual(loadCheck.hash64);
      // the reference's first 64-bit vector: the empty input under the key 0..31
      expect(loadCheck.hash64[0]).toBe(0x907a56de22c26e53n);
      const w = new Uint32Array(2);
      const words = [16, 64].flatMap((n) => [...hash64Words(keys[1]!, data, w, 1, n + 1)]);
      expect(words).toEqual(loadCheck.words);
      expect([...hash128(keys[0]!, data.subarray(0, 33))]).toEqual(loadCheck.hash128);
      expect([...hash256(keys[1]!, data.subarray(0, 65))]).toEqual(loadCheck.hash256);
    } finally {
      useImplementation(start);
    }
  });
});
