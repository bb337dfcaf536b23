// What the learned-sort benches share: the npm radixsort anchor, a seeded generator and the paper's
// distributions (plus sorted, reverse and three adversarial ones).
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { radixsort } = require('radixsort') as {
  radixsort: () => (a: Float64Array, aux?: Float64Array) => ArrayBuffer;
};
/** npm `radixsort`, the fastest radix sort package found on the registry so far. */
export const npmRadix = radixsort();

export function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) + 0.5) / 4294967296;
}

const normal = (r: () => number) => Math.sqrt(-2 * Math.log(r())) * Math.cos(2 * Math.PI * r());

/** Key i of n drawn from each distribution. */
export const dists: Record<string, (r: () => number, i: number, n: number) => number> = {
  uniform: (r) => r(),
  normal: (r) => normal(r),
  lognormal: (r) => Math.exp(normal(r)),
  'mix-gauss': (r) => normal(r) + [0, 5, 12, 30, 31][Math.floor(r() * 5)]!,
  exponential: (r) => -Math.log(r()),
  'chi-squared': (r) => normal(r) ** 2 + normal(r) ** 2 + normal(r) ** 2 + normal(r) ** 2,
  zipf: (r) => Math.floor(1 / r() ** 0.9),
  'root-dups': (_r, i, n) => i % Math.floor(Math.sqrt(n)),
  'two-dups': (_r, i, n) => (i * i + n / 2) % n,
  sorted: (_r, i) => i,
  reverse: (_r, i, n) => n - i,
  'outliers(1e12)': (r) => (r() < 0.001 ? (r() < 0.5 ? -1e12 : 1e12) : normal(r)),
  'lognormal(s=4)': (r) => Math.exp(4 * normal(r)),
  'two-clusters': (r) => (r() < 0.5 ? 1e-9 * r() : 1e9 + 1e-6 * r()),
};
