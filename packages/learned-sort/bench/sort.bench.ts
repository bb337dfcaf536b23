// Learned Sort against Float64Array.prototype.sort, Array.prototype.sort with a comparator, npm radixsort
// and this repo's LSD radix sort, on the paper's distributions. Training is included in every timing.
// Each op copies the input into a work array first (the same cost for every implementation), and every
// implementation allocates its own scratch array per call.
// Usage: npm run bench -- learned-sort [sort] [-- --large]   (1M keys; --large adds 10M)
import { type Impl, runBench } from '@strata/bench';
import { learnedSort, radixSortF64 } from '../src/index.js';
import { dists, npmRadix, rng } from './common.js';

const large = process.argv.includes('--large');
const sizes = large ? [1_000_000, 10_000_000] : [1_000_000];
const only = process.argv.find((a) => a.startsWith('--dist='))?.slice(7);

for (const n of sizes) {
  const inputs = new Map<string, Float64Array>();
  for (const [name, f] of Object.entries(dists)) {
    if (only && only !== name) continue;
    const r = rng(name.length * 31 + n);
    inputs.set(
      name,
      Float64Array.from({ length: n }, (_, i) => f(r, i, n)),
    );
  }
  const work = new Float64Array(n);
  const cases = [...inputs.keys()].map((name, i) => ({
    name: `${name} ${n / 1e6}M`,
    x: i + 1,
    items: n,
    dist: name,
  }));
  const mk = (f: () => void) => (c: (typeof cases)[number]) => {
    const input = inputs.get(c.dist)!;
    return () => {
      work.set(input);
      f();
    };
  };
  const anchors: Impl<(typeof cases)[number]>[] = [
    { name: 'Float64Array.prototype.sort', setup: mk(() => work.sort()) },
    { name: 'repo LSD radix sort', setup: mk(() => radixSortF64(work)) },
    { name: 'npm radixsort', setup: mk(() => npmRadix(work)) },
  ];
  if (n <= 1_000_000)
    anchors.push({
      name: 'Array.prototype.sort((a,b)=>a-b)',
      setup: (c) => {
        const input = Array.from(inputs.get(c.dist)!);
        return () => input.slice().sort((a, b) => a - b);
      },
    });
  await runBench({
    name: `sort-${n / 1e6}M`,
    title: `Learned Sort vs baselines, ${n / 1e6}M doubles (training included)`,
    cases,
    subject: { name: 'learnedSort', setup: mk(() => learnedSort(work)) },
    anchors,
    repetitions: 5,
    minTimeMs: n > 1e6 ? 1 : 100,
    warmupMs: 50,
    xLabel: 'distribution (see README table)',
  });
}
