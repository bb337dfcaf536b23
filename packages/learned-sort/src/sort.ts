/** The public sorts: one entry point per shape, dispatching on the typed array's type. */
import { kindOf } from '@strata/cli';
import { type LearnedStats, learnedSortF64 } from './learned.js';
import { f64ToKeys, partitionNaN, radixSortF64, radixSortU32, radixSortU64Pairs } from './radix.js';

export type SortableArray =
  | Float64Array
  | Float32Array
  | Int32Array
  | Uint32Array
  | BigInt64Array
  | BigUint64Array;

/**
 * Sorts in place and returns the same array, in exactly the order of `TypedArray.prototype.sort`
 * (NaN last, -0 before +0). Extra memory: one array of the input's type and length.
 */
export function learnedSort<T extends SortableArray>(array: T, stats?: LearnedStats): T {
  if (array instanceof Float64Array) {
    learnedSortF64(array, undefined, stats);
    return array;
  }
  if (array instanceof Float32Array) {
    // floats as order-preserving u32 keys: the radix path is exact and two passes long
    const n = partitionNaN(array);
    const w = new Uint32Array(array.buffer, array.byteOffset, n);
    for (let i = 0; i < n; i++) {
      const v = w[i]!;
      w[i] = v & 0x80000000 ? ~v >>> 0 : (v | 0x80000000) >>> 0;
    }
    radixSortU32(w, new Uint32Array(n), 0);
    for (let i = 0; i < n; i++) {
      const v = w[i]!;
      w[i] = v & 0x80000000 ? (v & 0x7fffffff) >>> 0 : ~v >>> 0;
    }
    if (stats) stats.path = 'radix';
    return array;
  }
  if (array instanceof Int32Array || array instanceof Uint32Array) {
    const w = new Uint32Array(array.buffer, array.byteOffset, array.length);
    radixSortU32(w, new Uint32Array(array.length), array instanceof Int32Array ? 0x80000000 : 0);
    if (stats) stats.path = 'radix';
    return array;
  }
  if (array instanceof BigUint64Array || array instanceof BigInt64Array) {
    const w = new Uint32Array(array.buffer, array.byteOffset, 2 * array.length);
    const signed = array instanceof BigInt64Array;
    if (signed) for (let i = 1; i < w.length; i += 2) w[i] = (w[i]! ^ 0x80000000) >>> 0;
    radixSortU64Pairs(w, new Uint32Array(w.length));
    if (signed) for (let i = 1; i < w.length; i += 2) w[i] = (w[i]! ^ 0x80000000) >>> 0;
    if (stats) stats.path = 'radix';
    return array;
  }
  throw new TypeError(
    `learnedSort: expected a Float64Array, Float32Array, Int32Array, Uint32Array, BigInt64Array or BigUint64Array, got ${kindOf(array)}`,
  );
}

/**
 * A stable permutation that sorts `keys` (keys[perm[0]] <= keys[perm[1]] <= ...), in TypedArray sort order,
 * for sorting records by a key column. The keys are not modified.
 */
export function learnedArgsort(keys: SortableArray): Uint32Array {
  const n = keys.length;
  const idx = new Uint32Array(n);
  for (let i = 0; i < n; i++) idx[i] = i;
  if (n < 2) return idx;
  // 64-bit order-preserving keys (lo, hi), then a stable LSD radix sort carrying the indices
  const w = new Uint32Array(2 * n);
  if (keys instanceof Float64Array || keys instanceof Float32Array) {
    const f = keys instanceof Float64Array ? keys : Float64Array.from(keys);
    w.set(new Uint32Array(f.buffer, f.byteOffset, 2 * n));
    f64ToKeys(w);
    // NaN sorts last whatever its sign
    for (let i = 0; i < n; i++)
      if (Number.isNaN(f[i]!)) {
        w[2 * i] = 0xffffffff;
        w[2 * i + 1] = 0xffffffff;
      }
  } else if (keys instanceof Int32Array || keys instanceof Uint32Array) {
    const flip = keys instanceof Int32Array ? 0x80000000 : 0;
    for (let i = 0; i < n; i++) w[2 * i] = (keys[i]! ^ flip) >>> 0;
  } else if (keys instanceof BigUint64Array || keys instanceof BigInt64Array) {
    w.set(new Uint32Array(keys.buffer, keys.byteOffset, 2 * n));
    if (keys instanceof BigInt64Array)
      for (let i = 1; i < w.length; i += 2) w[i] = (w[i]! ^ 0x80000000) >>> 0;
  } else throw new TypeError(`learnedArgsort: expected a typed array of numbers, got ${kindOf(keys)}`);
  radixSortU64Pairs(w, new Uint32Array(2 * n), idx, new Uint32Array(n));
  return idx;
}

/** Leading code units packed into a double (about 3 chars x 16 bits): the string model's input. */
function prefixKey(s: string): number {
  const a = s.length > 0 ? s.charCodeAt(0) : -1;
  const b = s.length > 1 ? s.charCodeAt(1) : -1;
  const c = s.length > 2 ? s.charCodeAt(2) : -1;
  return (a + 1) * 65537 * 65537 + (b + 1) * 65537 + (c + 1);
}

/**
 * Sorts an array of strings in place, in the order of `Array.prototype.sort()` (UTF-16 code units): keys
 * are bucketed by a model of their leading characters, then ties within a bucket are resolved by
 * comparison (the paper's extension to strings).
 */
export function learnedSortStrings(array: string[]): string[] {
  if (!Array.isArray(array))
    throw new TypeError(`learnedSortStrings: expected an array of strings, got ${kindOf(array)}`);
  const n = array.length;
  for (let i = 0; i < n; i++)
    if (typeof array[i] !== 'string')
      throw new TypeError(`learnedSortStrings: element ${i} is ${kindOf(array[i])}, not a string`);
  if (n < 1024) return array.sort();
  const k = new Float64Array(n);
  for (let i = 0; i < n; i++) k[i] = prefixKey(array[i]!);
  // the prefix keys are sorted by the numeric sort; the permutation groups strings with equal prefixes
  const perm = learnedArgsort(k);
  const out = new Array<string>(n);
  for (let i = 0; i < n; i++) out[i] = array[perm[i]!]!;
  let start = 0;
  for (let i = 1; i <= n; i++) {
    if (i === n || k[perm[i]!] !== k[perm[start]!]) {
      if (i - start > 1) {
        const run = out.slice(start, i).sort();
        for (let j = 0; j < run.length; j++) out[start + j] = run[j]!;
      }
      start = i;
    }
  }
  for (let i = 0; i < n; i++) array[i] = out[i]!;
  return array;
}

export { radixSortF64 };
