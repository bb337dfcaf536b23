import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { captureIo, runCommand } from '@strata/cli';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { commands, learnedArgsort, learnedSort, learnedSortStrings, radixSortF64 } from '../src/index.js';
import { fanout, type LearnedStats, leafCount, learnedSortF64, train } from '../src/learned.js';
import { wasmAvailable, wasmLearnedSort } from '../src/wasm.js';

function rng(seed: number) {
  let s = seed >>> 0 || 1;
  return () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 4294967296;
}

const gens: Record<string, (n: number, r: () => number) => number[]> = {
  uniform: (n, r) => Array.from({ length: n }, r),
  normal: (n, r) =>
    Array.from({ length: n }, () => Math.sqrt(-2 * Math.log(r() + 1e-300)) * Math.cos(2 * Math.PI * r())),
  lognormal: (n, r) =>
    Array.from({ length: n }, () =>
      Math.exp(4 * Math.sqrt(-2 * Math.log(r() + 1e-300)) * Math.cos(2 * Math.PI * r())),
    ),
  mix: (n, r) => Array.from({ length: n }, () => (r() < 0.5 ? 1e6 : -3) + r()),
  zipf: (n, r) => Array.from({ length: n }, () => Math.floor(1 / (r() + 1e-9))),
  fewDistinct: (n, r) => Array.from({ length: n }, () => Math.floor(r() * 5)),
  allEqual: (n) => Array.from({ length: n }, () => 42),
  sorted: (n) => Array.from({ length: n }, (_, i) => i),
  reverse: (n) => Array.from({ length: n }, (_, i) => n - i),
  sawtooth: (n) => Array.from({ length: n }, (_, i) => i % 1000),
  spikes: (n, r) => Array.from({ length: n }, () => (r() < 0.001 ? (r() < 0.5 ? -1e12 : 1e12) : r())),
  clusters: (n, r) => Array.from({ length: n }, () => (r() < 0.5 ? 1e-9 * r() : 1e9 + 1e-6 * r())),
  specials: (n, r) =>
    Array.from(
      { length: n },
      () =>
        [Number.NaN, -0, 0, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, r() - 0.5][
          Math.floor(r() * 6)
        ]!,
    ),
};

function same(a: ArrayLike<number | bigint>, b: ArrayLike<number | bigint>): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) return false;
  return true;
}

describe('learnedSort equals TypedArray.prototype.sort', () => {
  for (const [name, g] of Object.entries(gens)) {
    it(`${name}: every type, sizes 0 to 200,000`, () => {
      const r = rng(name.length * 7919);
      for (const n of [0, 1, 2, 31, 1000, 40_000, 200_000]) {
        const vals = g(n, r);
        const f64 = Float64Array.from(vals);
        const want = f64.slice().sort();
        const stats = {} as LearnedStats;
        expect(same(learnedSort(f64, stats), want), `${name} n=${n} path=${stats.path}`).toBe(true);
        const f32 = Float32Array.from(vals);
        expect(same(learnedSort(f32.slice()), f32.slice().sort())).toBe(true);
        const finite = vals.map((v) => (Number.isFinite(v) ? v : 0));
        const i32 = Int32Array.from(finite.map((v) => Math.trunc(v) | 0));
        expect(same(learnedSort(i32.slice()), i32.slice().sort())).toBe(true);
        const u32 = Uint32Array.from(finite.map((v) => Math.trunc(Math.abs(v)) >>> 0));
        expect(same(learnedSort(u32.slice()), u32.slice().sort())).toBe(true);
        const i64 = BigInt64Array.from(finite.map((v) => BigInt(Math.trunc(v * 1000))));
        expect(same(learnedSort(i64.slice()), i64.slice().sort())).toBe(true);
        const u64 = BigUint64Array.from(finite.map((v) => BigInt(Math.trunc(Math.abs(v) * 1e6)) * 4099n));
        expect(same(learnedSort(u64.slice()), u64.slice().sort())).toBe(true);
      }
    });
  }

  it('the WebAssembly core is built (npm run build) and loads', () => {
    expect(wasmAvailable(), 'packages/learned-sort/build/learned-sort.wasm: run `npm run build`').toBe(true);
  });

  it('the dispatch takes the learned path from its threshold up (1M normal keys)', () => {
    const a = Float64Array.from(gens.normal!(1_000_000, rng(21)));
    const want = a.slice().sort();
    const stats = {} as LearnedStats;
    learnedSort(a, stats);
    expect(stats.path).toBe('learned');
    expect(same(a, want)).toBe(true);
  });

  for (const core of ['wasm', 'js'] as const) {
    it(`the learned path itself sorts exactly, on every distribution (forced below its size threshold, ${core} core)`, () => {
      const r = rng(5);
      for (const [name, g] of Object.entries(gens)) {
        const a = Float64Array.from(g(300_000, r));
        const want = a.slice().sort();
        const stats = {} as LearnedStats;
        learnedSortF64(a, undefined, stats, 1 << 15, core);
        expect(same(a, want), `${name} via ${stats.path}`).toBe(true);
      }
      for (const name of ['normal', 'spikes']) {
        const a = Float64Array.from(gens[name]!(1_000_000, r));
        const want = a.slice().sort();
        const stats = {} as LearnedStats;
        learnedSortF64(a, new Float64Array(a.length), stats, 1 << 15, core);
        expect(stats.path).toBe('learned');
        expect(same(a, want)).toBe(true);
      }
    });
  }

  it('the WebAssembly core: a first-level bucket too large for its scratch, and runs of -0/+0', () => {
    const r = rng(11);
    // 8% of the keys in a window narrower than one leaf: one first-level bucket gets far more than 65,536
    const a = Float64Array.from({ length: 1_200_000 }, (_, i) =>
      i % 12 === 0 ? 0.5 + r() * 1e-7 : r() < 0.01 ? (r() < 0.5 ? -0 : 0) : r() - 0.2,
    );
    const want = a.slice().sort();
    const stats = {} as LearnedStats;
    learnedSortF64(a, undefined, stats, 0, 'wasm');
    expect(stats.path).toBe('learned');
    expect(same(a, want)).toBe(true);
  });

  it('the WebAssembly core: NaN and -Infinity that the sample misses are found in its first pass', () => {
    const r = rng(13);
    for (const name of ['normal', 'clusters', 'fewDistinct']) {
      const a = Float64Array.from(gens[name]!(300_000, r));
      // positions the deterministic sample does not draw: the core meets them after moving keys
      a[150_077] = Number.NaN;
      a[200_039] = Number.NEGATIVE_INFINITY;
      const want = a.slice().sort();
      learnedSortF64(a, undefined, undefined, 0, 'wasm');
      expect(same(a, want), name).toBe(true);
    }
  });

  it('the WebAssembly core puts the keys back as a permutation when its guard trips mid-pass', () => {
    const r = rng(17);
    // a model trained on uniform keys, shown lognormal(sigma 4) keys: nearly all land in one bucket
    const rmi = train(Float64Array.from({ length: 4096 }, (_, i) => i / 4096));
    const a = Float64Array.from(gens.lognormal!(200_000, r));
    const want = a.slice().sort();
    const res = wasmLearnedSort(a, rmi, new Float64Array(0), new Int32Array(0), false, {
      fanout,
      leafCount,
      subKeys: 1,
      subSortMin: 24,
      overfullFactor: 8,
      overfullShareMax: 0.2,
    });
    expect(res.outcome).toBe('poor');
    expect(same(a.sort(), want)).toBe(true);
  });

  it('the WebAssembly core equals TypedArray.prototype.sort (property, learned path forced)', () => {
    const dist = fc.constantFrom('uniform', 'normal', 'lognormal', 'mix', 'zipf', 'fewDistinct', 'sawtooth');
    fc.assert(
      fc.property(
        fc.array(fc.double(), { maxLength: 2000, size: 'max' }),
        dist,
        fc.integer({ min: 2048, max: 40_000 }),
        fc.integer({ min: 1, max: 1 << 30 }),
        (vals, name, pad, seed) => {
          const a = Float64Array.from([...vals, ...gens[name]!(pad, rng(seed))]);
          // mix the specials in among the keys rather than leaving them at the front
          const r = rng(seed ^ 0x5bd1e995);
          for (let i = a.length - 1; i > 0; i--) {
            const j = Math.floor(r() * (i + 1));
            const t = a[i]!;
            a[i] = a[j]!;
            a[j] = t;
          }
          const want = a.slice().sort();
          learnedSortF64(a, undefined, undefined, 0, 'wasm');
          expect(same(a, want)).toBe(true);
        },
      ),
      { numRuns: 60 },
    );
  });

  it('duplicate-heavy data goes to equality buckets', () => {
    const r = rng(9);
    const a = Float64Array.from({ length: 300_000 }, () => (r() < 0.6 ? 7 : r() < 0.5 ? -1 : r()));
    const want = a.slice().sort();
    const stats = {} as LearnedStats;
    learnedSortF64(a, new Float64Array(a.length), stats, 1 << 15);
    expect(stats.heavyKeys).toBeGreaterThan(0);
    expect(same(a, want)).toBe(true);
  });

  it('random arrays with specials (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.double(), { maxLength: 3000, size: 'max' }),
        fc.integer({ min: 0, max: 60_000 }),
        (vals, pad) => {
          const r = rng(pad + 1);
          const a = Float64Array.from([...vals, ...Array.from({ length: pad }, () => r() * 1e3)]);
          const want = a.slice().sort();
          expect(same(learnedSort(a), want)).toBe(true);
          expect(same(radixSortF64(Float64Array.from(want).reverse()), want)).toBe(true);
        },
      ),
      { numRuns: 40 },
    );
  });
});

describe('learnedArgsort', () => {
  it('is a stable permutation that sorts every type (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: -5, max: 5 }), { maxLength: 500, size: 'max' }), (vals) => {
        for (const keys of [
          Float64Array.from(vals),
          Int32Array.from(vals),
          BigInt64Array.from(vals.map(BigInt)),
        ]) {
          const p = learnedArgsort(keys);
          for (let i = 1; i < p.length; i++) {
            const a = keys[p[i - 1]!]!;
            const b = keys[p[i]!]!;
            expect(a <= b).toBe(true);
            if (a === b) expect(p[i - 1]! < p[i]!).toBe(true);
          }
          expect([...p].sort((x, y) => x - y)).toEqual(vals.map((_, i) => i));
        }
      }),
    );
    const f = Float64Array.of(Number.NaN, 1, -0, 0, Number.NEGATIVE_INFINITY);
    expect([...learnedArgsort(f)]).toEqual([4, 2, 3, 1, 0]);
  });
});

describe('learnedSortStrings', () => {
  it('orders like Array.prototype.sort() (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.string({ maxLength: 8 }), { minLength: 0, maxLength: 3000, size: 'max' }),
        (arr) => {
          const want = arr.slice().sort();
          expect(learnedSortStrings(arr.slice())).toEqual(want);
        },
      ),
      { numRuns: 30 },
    );
    const many = Array.from({ length: 20_000 }, (_, i) => `user-${(i * 7919) % 20_000}/é${i % 13}`);
    expect(learnedSortStrings(many.slice())).toEqual(many.slice().sort());
  });

  it('rejects non-strings with the index', () => {
    expect(() => learnedSortStrings(['a', 3 as unknown as string])).toThrow(/element 1/);
    expect(() => learnedSort([3, 1] as unknown as Float64Array)).toThrow(TypeError);
  });
});

describe('strata sort', () => {
  const cmd = commands[0]!;
  it('sorts text and binary input; bad input names the line or byte', async () => {
    const c = captureIo('3\n-1\n2.5\n');
    expect(await runCommand(cmd, ['--type', 'f64', '--text', '--quiet'], c.io)).toBe(0);
    expect(c.stdout()).toBe('-1\n2.5\n3\n');
    expect(c.stderr()).toBe(''); // --quiet, which the help did not list
    expect(cmd.help).toMatch(/--quiet /);
    // '-' is standard input too (it was ENOENT on './-'), as FILE or --in
    for (const args of [['-'], ['--in', '-']]) {
      const d = captureIo('3\n-1\n2.5\n');
      expect(await runCommand(cmd, ['--type', 'f64', '--text', '--quiet', ...args], d.io)).toBe(0);
      expect(d.stdout()).toBe('-1\n2.5\n3\n');
    }
    const bin = Buffer.from(new Uint32Array([5, 1, 4]).buffer);
    const b = captureIo(bin);
    expect(await runCommand(cmd, ['--type', 'u32'], b.io)).toBe(0);
    expect([...new Uint32Array(Uint8Array.from(b.stdoutBytes()).buffer)]).toEqual([1, 4, 5]);
    expect(b.stderr()).toMatch(/keys\/s/);
    const bad = captureIo(Buffer.alloc(10));
    expect(await runCommand(cmd, ['--type', 'f64'], bad.io)).toBe(1);
    expect(bad.stderr()).toMatch(/not a multiple of 8.*byte 8/);
    const t = captureIo('1\nx\n');
    expect(await runCommand(cmd, ['--text', '--type', 'i32'], t.io)).toBe(1);
    expect(t.stderr()).toMatch(/line 2/);
    expect(await runCommand(cmd, ['--type', 'f16'], captureIo().io)).toBe(2);
  });

  it('refuses numbers its type cannot hold instead of wrapping them', async () => {
    const cases: [string, string][] = [
      ['i32', '2147483648'],
      ['i32', '-2147483649'],
      ['u32', '-1'],
      ['u32', '4294967296'],
      ['i64', '9223372036854775808'],
      ['u64', '-1'],
      ['u64', '18446744073709551616'],
      ['f32', '1e39'],
      // past f64's range the parse gives infinity, which the literal does not say
      ['f64', '1e400'],
      ['f64', '-1e400'],
      ['f32', '1e400'],
    ];
    for (const [type, v] of cases) {
      const c = captureIo(`0\n${v}\n`);
      expect(await runCommand(cmd, ['--type', type, '--text'], c.io), `${type} ${v}`).toBe(1);
      expect(c.stderr()).toBe(`strata sort: line 2: ${v} is out of range for ${type}\n`);
    }
    // every integer type: decimal digits with an optional sign, nothing else Number() reads
    for (const type of ['i32', 'u32', 'i64', 'u64']) {
      for (const v of ['0x10', '1e3', '1.0', '5-']) {
        const c = captureIo(`0\n${v}\n`);
        expect(await runCommand(cmd, ['--type', type, '--text'], c.io), `${type} ${v}`).toBe(1);
        expect(c.stderr()).toBe(`strata sort: line 2: '${v}' is not an integer\n`);
      }
      const plus = captureIo('+5\n3\n');
      expect(await runCommand(cmd, ['--type', type, '--text', '--quiet'], plus.io)).toBe(0);
      expect(plus.stdout()).toBe('3\n5\n');
    }
    const edges = captureIo('2147483647\n-2147483648\n');
    expect(await runCommand(cmd, ['--type', 'i32', '--text', '--quiet'], edges.io)).toBe(0);
    expect(edges.stdout()).toBe('-2147483648\n2147483647\n');
    // the literals Infinity and NaN are what they say, and a zero keeps its sign on the way out
    const inf = captureIo('Infinity\n-0\n0\n-Infinity\nNaN\n+Infinity\n');
    expect(await runCommand(cmd, ['--type', 'f64', '--text', '--quiet'], inf.io)).toBe(0);
    expect(inf.stdout()).toBe('-Infinity\n-0\n0\nInfinity\nInfinity\nNaN\n');
    const z32 = captureIo('0\n-0\n');
    expect(await runCommand(cmd, ['--type', 'f32', '--text', '--quiet'], z32.io)).toBe(0);
    expect(z32.stdout()).toBe('-0\n0\n');
    const u64 = captureIo('18446744073709551615\n0\n');
    expect(await runCommand(cmd, ['--type', 'u64', '--text', '--quiet'], u64.io)).toBe(0);
    expect(u64.stdout()).toBe('0\n18446744073709551615\n');
  });

  it('a missing file, a directory, an endless line, an unwritable --out: one clear error, exit 1', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sort-cli-'));
    try {
      // the stream was opened before the stat that failed: its open error was unhandled (a crash)
      const missing = captureIo('', {}, dir);
      expect(await runCommand(cmd, ['--type', 'i32', 'missing.bin'], missing.io)).toBe(1);
      expect(missing.stderr()).toBe(
        `strata sort: cannot read missing.bin: ENOENT: no such file or directory, open '${join(dir, 'missing.bin')}'\n`,
      );
      const d = captureIo('', {}, dir);
      expect(await runCommand(cmd, ['--text', '.'], d.io)).toBe(1);
      expect(d.stderr()).toBe('strata sort: cannot read .: it is a directory\n');
      // a line is parsed as it arrives: one without an end is refused at the bound, not held whole
      const long = captureIo(`1\n2\n${'9'.repeat(100_000)}`);
      expect(await runCommand(cmd, ['--text'], long.io)).toBe(1);
      expect(long.stderr()).toMatch(/^strata sort: line 3: longer than 4096 characters \('9{40}\.\.\.'\)\n$/);
      // a character split across two reads of the file (64 KiB each) is named whole
      writeFileSync(join(dir, 'split.txt'), `${'1\n'.repeat(32_767)}x\u00e9\n`);
      const split = captureIo('', {}, dir);
      expect(await runCommand(cmd, ['--text', '--quiet', 'split.txt'], split.io)).toBe(1);
      expect(split.stderr()).toBe("strata sort: line 32768: 'x\u00e9' is not a number\n");
      // an --out that cannot be opened fails before the input is read; one whose writes fail, at the end
      const noDir = captureIo('1\n', {}, dir);
      expect(await runCommand(cmd, ['--text', '--out', 'no-dir/o.txt'], noDir.io)).toBe(1);
      expect(noDir.stderr()).toMatch(/^strata sort: --out .*no-dir\/o\.txt: ENOENT/);
      const full = captureIo('2\n1\n', {}, dir);
      expect(await runCommand(cmd, ['--text', '--quiet', '--out', '/dev/full'], full.io)).toBe(1);
      expect(full.stderr()).toMatch(/^strata sort: --out \/dev\/full: ENOSPC/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('takes the input file as --in FILE or as its one argument, and refuses both or more', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sort-cli-'));
    try {
      writeFileSync(join(dir, 'in.txt'), '3\n1\n2\n');
      for (const args of [['in.txt'], ['--in', 'in.txt']]) {
        const c = captureIo('', {}, dir);
        expect(await runCommand(cmd, ['--type', 'i32', '--text', '--quiet', ...args], c.io)).toBe(0);
        expect(c.stdout()).toBe('1\n2\n3\n');
      }
      const both = captureIo('', {}, dir);
      expect(await runCommand(cmd, ['--text', '--in', 'in.txt', 'in.txt'], both.io)).toBe(2);
      expect(both.stderr()).toMatch(/expected the input once/);
      const two = captureIo('', {}, dir);
      expect(await runCommand(cmd, ['--text', 'in.txt', 'in.txt'], two.io)).toBe(2);
      expect(two.stderr()).toMatch(/unexpected argument 'in.txt'/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
