// The merge of a sorted run with the equality buckets of heavy keys (LearnedSort 2.0), shared by the
// JavaScript and WebAssembly paths.

/**
 * Writes the sorted `run` merged with heavy keys k0..k1-1 (each repeated its count) into dst from `at`;
 * returns where it stopped. `run` may lie in dst after `at` as long as the writes stay behind the reads.
 */
export function mergeRunInto(
  run: Float64Array,
  dst: Float64Array,
  at: number,
  hset: Float64Array,
  heavyCounts: Int32Array,
  k0: number,
  k1: number,
): number {
  let out = at;
  let i = 0;
  const n = run.length;
  for (let k = k0; k < k1; k++) {
    const h = hset[k]!;
    while (i < n && run[i]! <= h) dst[out++] = run[i++]!;
    const c = heavyCounts[k]!;
    dst.fill(h, out, out + c);
    out += c;
  }
  while (i < n) dst[out++] = run[i++]!;
  return out;
}
