/**
 * Learned Sort (Kristo, Vaidya et al., SIGMOD'20) with the duplicate handling of LearnedSort 2.0
 * ("Defeating duplicates", 2021), for numbers in a Float64Array (other 32-bit types reuse it).
 *
 * 1. Sample (about 1%, bounded) and sort the sample.
 * 2. Train a two-layer RMI: a root linear spline maps a key to one of `leafCount` leaves; each leaf is a
 *    linear spline through the first and last sample points routed to it, predicting the CDF. Leaf outputs
 *    are clamped to [cdf of its first point, cdf of the next leaf's first point], so the model is monotone:
 *    keys in a lower bucket are never greater than keys in a higher one, and buckets need no merging.
 * 3. Heavy keys (a key taking more than one bucket's share of the sample) get equality buckets: keys equal
 *    to them are routed to a bucket of their own that needs no sorting.
 * 4. Quality guard, early: the sample is run through the model; if it crowds into a few buckets, the radix
 *    sort takes the whole input before any pass over it.
 * 5. Cascade, in the WebAssembly core (src/wasm.ts, assembly/index.ts): one pass scatters the keys into
 *    `fanout` fixed-capacity buckets (about 1,000, so that one cache line per bucket stays in L2); a key
 *    whose bucket is full goes to the spill bucket, kept in the part of the input already read. Each
 *    bucket, with its spilled keys, is then scattered by a linear model of the bucket into buckets of
 *    about one key, placed back in the input, and an insertion sort touches up the run.
 *    The JS core (no WebAssembly) counts first and scatters second, both levels by the RMI, into buckets
 *    of about `leafBucketKeys` keys.
 * 6. Quality guard, exact: after the first pass, if the largest buckets hold far more than the model
 *    promised, the keys are put back as they were read and the radix sort takes over.
 *
 * Extra memory: one array of the input's size (the WebAssembly core's first-level buckets, or the JS
 * core's scatter buffer), plus bounded scratch.
 */
import { mergeRunInto } from './merge.js';
import { partitionNaN, radixSortF64 } from './radix.js';
import { wasmAvailable, wasmLearnedSort } from './wasm.js';

/** First-level fan-out (buckets). Tuned on this machine: see README. */
export const fanout = 1024;
/** Target keys per last-level bucket, touched up by insertion sort. */
export const leafBucketKeys = 8;
/**
 * Target keys per last-level bucket in the WebAssembly core: one. Its insertion sort then mostly finds
 * keys in place, and its branch predicts well; at 8 keys per bucket (the JS core's figure) the insertion
 * sort's mispredicted exits took two thirds of the second level's time (`node --cpu-prof`, 10M normal).
 */
export const wasmSubBucketKeys = 1;
/** Last-level buckets of the WebAssembly core holding more keys than this are sorted on their own. */
export const wasmSubSortMin = 24;
/** Leaf models of the RMI. */
export const leafCount = 1024;
/**
 * Below this many keys the LSD radix sort is used. With the WebAssembly core the learned path beat it
 * from about 1M keys on every distribution measured but two-dups (0.9-1.0x) and lost below 500K (min CPU
 * time of 9 alternating runs, 2026-12-02: 250K 0.54-1.54x, 500K 0.63-2.03x, 1M 0.99-1.75x, 2M
 * 0.91-2.38x). `learnedSortF64(..., minKeys)` forces it. See README.
 */
export const learnedMinKeys = 750_000;
/**
 * The same threshold when the WebAssembly core is missing: the JS core lost to the radix sort at every
 * size measured (10M: 7.2 M keys/s against 11.4 M), so it only takes over beyond the measured range.
 */
export const learnedMinKeysJs = 1 << 26;
/** Below this many keys the built-in sort beats the radix sort's fixed histogram cost. */
export const radixMinKeys = 1 << 11;
/** Sample fraction and bounds. */
export const sampleFraction = 0.01;
export const sampleMax = 100_000;
/** The guard: if the keys in first-level buckets larger than this many times the average exceed this share, fall back. */
export const overfullFactor = 8;
export const overfullShareMax = 0.2;

export interface Rmi {
  rootSlope: number;
  rootIntercept: number;
  slopes: Float64Array;
  intercepts: Float64Array;
  lo: Float64Array;
  hi: Float64Array;
}

/** Where the learned path's per-key work runs: the WebAssembly core (when built), or JS. */
export type LearnedCore = 'wasm' | 'js';

export interface LearnedStats {
  path: 'learned' | 'radix' | 'small' | 'presorted';
  heavyKeys: number;
  overfullShare: number;
}

/** Trains the RMI on a sorted sample. */
export function train(sample: Float64Array): Rmi {
  const m = sample.length;
  const min = sample[0]!;
  const max = sample[m - 1]!;
  const L = leafCount;
  // root: linear spline from (min, 0) to (max, L)
  const span = max - min;
  const rootSlope = span > 0 && Number.isFinite(span) ? L / span : 0;
  const rootIntercept = -min * rootSlope;
  const slopes = new Float64Array(L);
  const intercepts = new Float64Array(L);
  const lo = new Float64Array(L);
  const hi = new Float64Array(L);
  const first = new Int32Array(L).fill(-1);
  const last = new Int32Array(L).fill(-1);
  for (let i = 0; i < m; i++) {
    let leaf = Math.floor(sample[i]! * rootSlope + rootIntercept);
    leaf = leaf < 0 ? 0 : leaf >= L ? L - 1 : leaf;
    if (first[leaf] === -1) first[leaf] = i;
    last[leaf] = i;
  }
  // each leaf: spline through its first and last point's CDF; empty leaves predict a constant
  let nextLo = 1;
  for (let l = L - 1; l >= 0; l--) {
    const f = first[l]!;
    if (f === -1) {
      lo[l] = nextLo;
      hi[l] = nextLo;
      slopes[l] = 0;
      intercepts[l] = nextLo;
      continue;
    }
    const g = last[l]!;
    const cf = f / m;
    const cg = (g + 1) / m;
    const xf = sample[f]!;
    const xg = sample[g]!;
    const s = xg > xf ? (cg - cf) / (xg - xf) : 0;
    slopes[l] = s;
    intercepts[l] = s === 0 ? cf : cf - s * xf;
    lo[l] = cf;
    hi[l] = nextLo;
    nextLo = cf;
  }
  return { rootSlope, rootIntercept, slopes, intercepts, lo, hi };
}

/** The model's CDF estimate in [0, 1], monotone in x. */
export function predict(r: Rmi, x: number): number {
  let leaf = Math.floor(x * r.rootSlope + r.rootIntercept);
  leaf = leaf < 0 ? 0 : leaf >= leafCount ? leafCount - 1 : leaf;
  const p = r.slopes[leaf]! * x + r.intercepts[leaf]!;
  const l = r.lo[leaf]!;
  const h = r.hi[leaf]!;
  // biome-ignore lint/complexity/useMathMinMax: the hot loop's clamp, kept as measured (Math.min/max not measured here)
  return p < l ? l : p > h ? h : p;
}

/**
 * True when keys are already in order (then nothing is done); reverses them in place when they are in
 * strictly descending order. Stops at the first key out of place, so other inputs pay little.
 */
function presorted(a: Float64Array): boolean {
  const n = a.length;
  let i = 1;
  while (
    i < n &&
    (a[i - 1]! < a[i]! || (a[i - 1] === a[i] && !(Object.is(a[i], -0) && !Object.is(a[i - 1], -0))))
  )
    i++;
  if (i === n) return true;
  if (i > 1) return false;
  i = 1;
  while (i < n && a[i - 1]! > a[i]!) i++;
  if (i < n) return false;
  a.reverse();
  return true;
}

function insertionSort(a: Float64Array, from: number, to: number): void {
  for (let i = from + 1; i < to; i++) {
    const x = a[i]!;
    let j = i - 1;
    while (j >= from && a[j]! > x) {
      a[j + 1] = a[j]!;
      j--;
    }
    a[j + 1] = x;
  }
}

/** -0 and +0 compare equal; TypedArray sort puts every -0 before every +0. Fixes each run of zeros. */
function orderZeros(a: Float64Array, n: number): void {
  let i = 0;
  while (i < n) {
    if (a[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    let neg = 0;
    while (j < n && a[j] === 0) {
      if (Object.is(a[j], -0)) neg++;
      j++;
    }
    for (let k = i; k < j; k++) a[k] = k - i < neg ? -0 : 0;
    i = j;
  }
}

function drawSample(a: Float64Array, n: number): Float64Array {
  const m = Math.min(sampleMax, Math.max(1000, Math.floor(n * sampleFraction)));
  const s = new Float64Array(m);
  // deterministic stride with a small LCG jitter: reproducible, and not fooled by periodic inputs
  let seed = 0x9e3779b9;
  const stride = n / m;
  for (let i = 0; i < m; i++) {
    seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
    const j = Math.min(n - 1, Math.floor(i * stride + (seed / 4294967296) * stride));
    s[i] = a[j]!;
  }
  // the radix sort: a sorted sample costs a few ms instead of the built-in sort's tens
  return radixSortF64(s);
}

/**
 * The quality guard's figure, estimated on the sample: the share of the (non-heavy) sample keys that sit
 * in first-level buckets over `overfullFactor` times the average (plus the guard's slack of 64 keys,
 * scaled down to the sample).
 */
function sampleOverfullShare(rmi: Rmi, sample: Float64Array, hset: Float64Array, n: number): number {
  const B = fanout;
  const m = sample.length;
  const counts = new Int32Array(B);
  let heavyInSample = 0;
  // the sample and the heavy keys are both ascending: one walk finds the heavy sample keys
  for (let i = 0, k = 0; i < m; i++) {
    const x = sample[i]!;
    while (k < hset.length && hset[k]! < x) k++;
    if (k < hset.length && hset[k] === x) {
      heavyInSample++;
      continue;
    }
    let b = Math.floor(predict(rmi, x) * B);
    b = b >= B ? B - 1 : b;
    counts[b]!++;
  }
  const limit = (overfullFactor * (m - heavyInSample)) / B + (64 * m) / n;
  let over = 0;
  for (let b = 0; b < B; b++) if (counts[b]! > limit) over += counts[b]!;
  return over / m;
}

const bucketCounts = new Int32Array(fanout + 2);
const bucketStarts = new Int32Array(fanout + 2);

/**
 * Sorts `a` in place, in TypedArray sort order, by the learned model when it holds at least `minKeys`
 * keys (else by the radix sort). `tmp`, when given, is the scratch of the radix sort and the JS core (else
 * they allocate it; the WebAssembly core brings its own). `core` picks the WebAssembly core (the default;
 * the JS core stands in when it is not built) or the JS core. `stats` reports the path taken.
 */
export function learnedSortF64(
  a: Float64Array,
  tmp?: Float64Array,
  stats?: LearnedStats,
  minKeys = wasmAvailable() ? learnedMinKeys : learnedMinKeysJs,
  core: LearnedCore = 'wasm',
): Float64Array {
  // The WebAssembly core checks for NaN and infinities in its first pass, so an input without them pays
  // no separate scan; one with them is left a permutation of itself and takes the path below.
  if (core === 'wasm' && a.length >= minKeys && a.length >= radixMinKeys)
    if (sortFinite(a, tmp, stats, minKeys, core, true)) return a;
  const withInf = partitionNaN(a);
  // infinities would break the linear models: take them out, put them back at the ends afterwards
  let n = 0;
  let negInf = 0;
  while (n < withInf && Number.isFinite(a[n]!)) n++; // read-only until the first infinity
  for (let i = n; i < withInf; i++) {
    const x = a[i]!;
    if (x === Number.NEGATIVE_INFINITY) negInf++;
    else if (x !== Number.POSITIVE_INFINITY) a[n++] = x;
  }
  const keys = a.subarray(0, n);
  sortFinite(keys, tmp, stats, minKeys, core, false);
  if (negInf > 0) a.copyWithin(negInf, 0, n);
  a.fill(Number.NEGATIVE_INFINITY, 0, negInf);
  a.fill(Number.POSITIVE_INFINITY, negInf + n, withInf);
  return a;
}

/**
 * Sorts `keys`. With `unchecked`, the keys may hold NaN or infinities: as soon as the sample or the
 * WebAssembly core's first pass meets one, false is returned and the keys are a permutation of the input.
 */
function sortFinite(
  keys: Float64Array,
  tmpGiven: Float64Array | undefined,
  stats: LearnedStats | undefined,
  minKeys: number,
  core: LearnedCore,
  unchecked: boolean,
): boolean {
  // the WebAssembly core brings its own buffer: allocate this one only for the paths that use it
  const scratch = () => tmpGiven ?? new Float64Array(keys.length);
  const n = keys.length;
  if (n < radixMinKeys) {
    if (stats) stats.path = 'small';
    keys.sort();
    return true;
  }
  // NaN fails every comparison, so an input holding one is never taken for presorted
  if (presorted(keys)) {
    if (stats) stats.path = 'presorted';
    return true;
  }
  if (n < minKeys) {
    if (stats) stats.path = 'radix';
    radixSortF64(keys, scratch());
    return true;
  }
  const sample = drawSample(keys, n);
  if (unchecked && !(Number.isFinite(sample[0]!) && Number.isFinite(sample[sample.length - 1]!)))
    return false;
  const rmi = train(sample);
  // heavy keys: a value taking more than a first-level bucket's share of the sample gets an equality bucket
  const heavy: number[] = [];
  const share = sample.length / fanout;
  for (let i = 0; i < sample.length; ) {
    let j = i + 1;
    while (j < sample.length && sample[j] === sample[i]) j++;
    // zero is never an equality bucket: it would lose the sign of -0
    if (j - i > share && sample[i] !== 0) heavy.push(sample[i]!);
    i = j;
  }
  if (stats) stats.heavyKeys = heavy.length;
  const B = fanout;
  // first pass: count keys per model bucket, and heavy keys per equality bucket
  const H = heavy.length;
  const heavyCounts = new Int32Array(H);
  const hset = new Float64Array(heavy);
  // the model is monotone, so a heavy key can only meet keys that predict into the same bucket
  const heavyBucket = new Int32Array(H);
  const heavyFirst = new Int32Array(B).fill(-1);
  const heavyEnd = new Int32Array(B);
  for (let k = 0; k < H; k++) {
    let b = Math.floor(predict(rmi, hset[k]!) * B);
    b = b >= B ? B - 1 : b;
    heavyBucket[k] = b;
    if (heavyFirst[b] === -1) heavyFirst[b] = k;
    heavyEnd[b] = k + 1;
  }
  // Early guard: the sample through the model. A model that crowds the sample into a few buckets will
  // crowd the keys too; the radix sort then starts without the wasted first pass.
  const sampleShare = sampleOverfullShare(rmi, sample, hset, n);
  if (sampleShare > overfullShareMax) {
    if (stats) {
      stats.path = 'radix';
      stats.overfullShare = sampleShare;
    }
    radixSortF64(keys, scratch()); // exact for NaN and infinities too, so `unchecked` needs no care
    return true;
  }
  if (core === 'wasm') {
    const r = wasmLearnedSort(keys, rmi, hset, heavyBucket, unchecked, {
      fanout: B,
      leafCount,
      subKeys: wasmSubBucketKeys,
      subSortMin: wasmSubSortMin,
      overfullFactor,
      overfullShareMax,
    });
    if (r.outcome === 'special') return false;
    if (stats) stats.overfullShare = r.overfullShare;
    if (r.outcome === 'sorted') {
      if (stats) stats.path = 'learned';
      return true;
    }
    if (r.outcome !== 'unavailable') {
      // 'poor': the guard tripped; 'disordered' would be a bug in the model's monotonicity
      if (stats) stats.path = 'radix';
      radixSortF64(keys, scratch());
      return true;
    }
  }
  // the JS core needs finite keys
  if (unchecked) return false;
  const tmp = scratch();
  bucketCounts.fill(0);
  const { rootSlope, rootIntercept, slopes, intercepts, lo, hi } = rmi;
  const L = leafCount;
  for (let i = 0; i < n; i++) {
    const x = keys[i]!;
    let leaf = Math.floor(x * rootSlope + rootIntercept);
    leaf = leaf < 0 ? 0 : leaf >= L ? L - 1 : leaf;
    let p = slopes[leaf]! * x + intercepts[leaf]!;
    const pl = lo[leaf]!;
    const ph = hi[leaf]!;
    // biome-ignore lint/complexity/useMathMinMax: the hot loop's clamp, kept as measured (Math.min/max not measured here)
    p = p < pl ? pl : p > ph ? ph : p;
    let b = Math.floor(p * B);
    b = b >= B ? B - 1 : b;
    const hf = heavyFirst[b]!;
    if (hf >= 0) {
      let h = -1;
      for (let k = hf; k < heavyEnd[b]!; k++) if (hset[k] === x) h = k;
      if (h >= 0) {
        heavyCounts[h]!++;
        continue;
      }
    }
    bucketCounts[b]!++;
  }
  // guard: how many keys sit in badly overfull buckets?
  const avg = (n - heavyCounts.reduce((s, c) => s + c, 0)) / B;
  let over = 0;
  for (let b = 0; b < B; b++) if (bucketCounts[b]! > overfullFactor * avg + 64) over += bucketCounts[b]!;
  const overShare = over / n;
  if (stats) stats.overfullShare = overShare;
  if (overShare > overfullShareMax) {
    if (stats) stats.path = 'radix';
    radixSortF64(keys, tmp);
    return true;
  }
  if (stats) stats.path = 'learned';
  // Layout: model buckets in order, each followed by the equality buckets of the heavy keys that predict
  // into it; after the model bucket is sorted, one linear merge puts the equality runs in place.
  // starts: bucket b, then the equality buckets whose key predicts into b (heavy is sorted, so in order)
  const eqStart = new Int32Array(H);
  let pos = 0;
  for (let b = 0, k = 0; b < B; b++) {
    bucketStarts[b] = pos;
    pos += bucketCounts[b]!;
    while (k < H && heavyBucket[k] === b) {
      eqStart[k] = pos;
      pos += heavyCounts[k]!;
      k++;
    }
  }
  const cursor = bucketStarts.slice(0, B);
  const eqCursor = eqStart.slice();
  for (let i = 0; i < n; i++) {
    const x = keys[i]!;
    let leaf = Math.floor(x * rootSlope + rootIntercept);
    leaf = leaf < 0 ? 0 : leaf >= L ? L - 1 : leaf;
    let p = slopes[leaf]! * x + intercepts[leaf]!;
    const pl = lo[leaf]!;
    const ph = hi[leaf]!;
    // biome-ignore lint/complexity/useMathMinMax: the hot loop's clamp, kept as measured (Math.min/max not measured here)
    p = p < pl ? pl : p > ph ? ph : p;
    let b = Math.floor(p * B);
    b = b >= B ? B - 1 : b;
    const hf = heavyFirst[b]!;
    if (hf >= 0) {
      let h = -1;
      for (let k = hf; k < heavyEnd[b]!; k++) if (hset[k] === x) h = k;
      if (h >= 0) {
        eqCursor[h]!++;
        continue;
      }
    }
    tmp[cursor[b]!++] = x;
  }
  // second level: each model bucket, scattered back into `keys` by the finer model output
  const sub = new Int32Array(Math.max(2, Math.ceil((n / B / leafBucketKeys) * 4)) + 2);
  for (let b = 0, k = 0; b < B; b++) {
    const from = bucketStarts[b]!;
    const to = from + bucketCounts[b]!;
    const m = to - from;
    if (m > 0) sortBucket(rmi, tmp, keys, from, to, b, sub);
    // equality buckets whose key predicted into b: merge them into place (tmp[from, to) is free now)
    const k0 = k;
    while (k < H && heavyBucket[k] === b) k++;
    if (k > k0) mergeEqualityRuns(keys, tmp, from, to, hset, heavyCounts, k0, k);
  }
  orderZeros(keys, n);
  return true;
}

/** Sub-bucket ids of the bucket being sorted: bounded by the largest first-level bucket, not by n. */
let subIds = new Uint16Array(1 << 14);

/** Sorts tmp[from, to) (one first-level bucket) into keys[from, to). */
function sortBucket(
  rmi: Rmi,
  tmp: Float64Array,
  keys: Float64Array,
  from: number,
  to: number,
  b: number,
  sub: Int32Array,
): void {
  const m = to - from;
  if (m <= 32) {
    for (let i = from; i < to; i++) keys[i] = tmp[i]!;
    insertionSort(keys, from, to);
    return;
  }
  let S = Math.ceil(m / leafBucketKeys);
  if (S > sub.length - 2) S = sub.length - 2;
  const B = fanout;
  sub.fill(0, 0, S + 1);
  if (subIds.length < m) subIds = new Uint16Array(Math.max(m, subIds.length * 2));
  const { rootSlope, rootIntercept, slopes, intercepts, lo, hi } = rmi;
  const L = leafCount;
  const scale = B * S;
  const base = b * S;
  for (let i = from; i < to; i++) {
    const x = tmp[i]!;
    let leaf = Math.floor(x * rootSlope + rootIntercept);
    leaf = leaf < 0 ? 0 : leaf >= L ? L - 1 : leaf;
    let p = slopes[leaf]! * x + intercepts[leaf]!;
    const l = lo[leaf]!;
    const h = hi[leaf]!;
    // biome-ignore lint/complexity/useMathMinMax: the hot loop's clamp, kept as measured (Math.min/max not measured here)
    p = p < l ? l : p > h ? h : p;
    let s = Math.floor(p * scale - base);
    s = s < 0 ? 0 : s >= S ? S - 1 : s;
    subIds[i - from] = s;
    sub[s + 1]!++;
  }
  for (let s = 1; s <= S; s++) sub[s] = sub[s]! + sub[s - 1]!;
  // scatter; sub[s] becomes the end of sub-bucket s
  for (let i = from; i < to; i++) keys[from + sub[subIds[i - from]!]!++] = tmp[i]!;
  // touch-up: sub-buckets are ordered among themselves, so one insertion sort over the run is near-linear,
  // unless a sub-bucket is large (model poor locally): sort those on their own first.
  let start = 0;
  for (let s = 0; s < S; s++) {
    const end = sub[s]!;
    if (end - start > 4 * leafBucketKeys + 64) keys.subarray(from + start, from + end).sort();
    start = end;
  }
  insertionSort(keys, from, to);
}

/**
 * keys[from, to) is a sorted model bucket; heavy keys k0..k1-1 (ascending) predicted into it, and their
 * equality buckets follow it. Writes the merge of both into keys[from, to + their counts).
 */
function mergeEqualityRuns(
  keys: Float64Array,
  tmp: Float64Array,
  from: number,
  to: number,
  hset: Float64Array,
  heavyCounts: Int32Array,
  k0: number,
  k1: number,
): void {
  for (let i = from; i < to; i++) tmp[i] = keys[i]!;
  mergeRunInto(tmp.subarray(from, to), keys, from, hset, heavyCounts, k0, k1);
}
