// The headline targets: 10M (and, with --50m, 50M once) normal doubles, training included, output
// checked against Float64Array.prototype.sort. Implementations alternate within each repetition, so every
// ratio compares runs that saw the same load on a shared machine; the median of the repetitions is printed.
// Usage: npm run bench -- learned-sort large [-- --reps=5] [--50m] [--dist=uniform] [--sizes=1000000,3000000]
import { peakRssBytes } from '@strata/bench';
import { learnedSort, learnedSortF64, radixSortF64 } from '../src/index.js';
import { dists, npmRadix, rng } from './common.js';

const arg = (name: string) => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
const reps = Number(arg('reps') ?? 5);
const dist = arg('dist') ?? 'normal';
const gen = dists[dist];
if (!gen) throw new Error(`large.bench: unknown --dist=${dist}; one of ${Object.keys(dists).join(', ')}`);
const sizes = (arg('sizes') ?? '10000000').split(',').map(Number);
if (process.argv.includes('--50m')) sizes.push(50_000_000);

const impls: [string, (a: Float64Array) => unknown][] = [
  ['learned path (WebAssembly core)', (a) => learnedSortF64(a, undefined, undefined, 0, 'wasm')],
  ['learned path (JS core)', (a) => learnedSortF64(a, undefined, undefined, 0, 'js')],
  ['learnedSort (dispatch)', (a) => learnedSort(a)],
  ['Float64Array.prototype.sort', (a) => a.sort()],
  ['repo LSD radix sort', (a) => radixSortF64(a)],
  ['npm radixsort', (a) => npmRadix(a)],
];

function same(a: Float64Array, b: Float64Array): boolean {
  const x = new Uint32Array(a.buffer, a.byteOffset, 2 * a.length);
  const y = new Uint32Array(b.buffer, b.byteOffset, 2 * b.length);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}

// warm-up: every implementation once on a small input, so that no timed run pays for compilation
{
  const r = rng(1);
  const w = Float64Array.from({ length: 1 << 18 }, (_, i) => gen(r, i, 1 << 18));
  for (const [, f] of impls) f(w.slice());
}

for (const n of sizes) {
  const r = rng(dist.length * 31 + n);
  const input = new Float64Array(n);
  for (let i = 0; i < n; i++) input[i] = gen(r, i, n);
  const want = input.slice().sort();
  const work = new Float64Array(n);
  const runs = n > 10_000_000 ? 1 : reps;
  const ms = impls.map(() => [] as number[]);
  for (let rep = 0; rep < runs; rep++) {
    impls.forEach(([name, f], i) => {
      // the npm package returns a new buffer rather than sorting in place
      if (n > 10_000_000 && name === 'learned path (JS core)') return;
      work.set(input);
      globalThis.gc?.();
      const t0 = performance.now();
      const res = f(work);
      ms[i]!.push(performance.now() - t0);
      const got = res instanceof ArrayBuffer ? new Float64Array(res) : work;
      if (!same(got, want))
        throw new Error(`large.bench: ${name} did not sort ${dist} ${n} like Float64Array.sort`);
    });
  }
  const median = (xs: number[]) => xs.slice().sort((a, b) => a - b)[xs.length >> 1]!;
  const med = ms.map((xs) => (xs.length ? median(xs) : Number.NaN));
  const base = med[0]!;
  console.log(`\n${dist} ${n / 1e6}M doubles, median of ${runs}, training included, output checked`);
  console.log('implementation                    median ms   M keys/s   WebAssembly learned path speedup');
  impls.forEach(([name], i) => {
    const m = med[i]!;
    if (Number.isNaN(m)) return;
    console.log(
      `${name.padEnd(32)}  ${m.toFixed(0).padStart(9)}  ${(n / m / 1e3).toFixed(1).padStart(9)}   ${(m / base).toFixed(2)}x`,
    );
  });
}
console.log(`peak RSS: ${Math.round(peakRssBytes() / 2 ** 20)} MiB`);
