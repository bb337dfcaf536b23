// Learned Sort core in AssemblyScript: the per-key work of src/learned.ts (model evaluation, counting,
// first-level scatter, second-level scatter, touch-up) on doubles in linear memory. JS owns the input
// array; it copies chunks of it into STAGE for the two first-level passes, and copies each sorted bucket
// from OUT back into the input. The only large region is T (one double per key): the extra memory.
//
// Layout (bytes; the memory is imported, one per sort, sized by JS):
//   MODEL   leafCount x [slope, intercept, lo, hi] f64
//   COUNTS  fanout + 2 i32: first-level counts, then cursors
//   HFIRST / HEND  fanout i32: heavy keys predicting into bucket b are HSET[HFIRST[b] .. HEND[b])
//   HSET    heavy keys (f64, ascending, at most fanout), HCOUNT their counts (i32)
//   SUB     sub-bucket counts of the bucket being sorted, IDS its keys' sub-bucket ids (u16)
//   OUT     the sorted bucket, STAGE a chunk of input keys, T the first-level buckets

export const LEAVES: i32 = 1024;
export const FANOUT: i32 = 1024;
/** Largest first-level bucket sorted here; larger ones are sorted by JS (the model is poor there). */
export const BUCKET_KEYS_MAX: i32 = 65536;
export const STAGE_KEYS: i32 = 65536;

export const MODEL: usize = 0;
export const COUNTS: usize = 32768;
export const HFIRST: usize = 40960;
export const HEND: usize = 45056;
export const HSET: usize = 49152;
export const HCOUNT: usize = 57344;
export const SUB: usize = 65536; // (BUCKET_KEYS_MAX + 1) i32 at most
export const IDS: usize = 393216;
export const OUT: usize = 524288;
export const STAGE: usize = 1048576;
export const T: usize = 1572864;

let rootSlope: f64 = 0;
let rootIntercept: f64 = 0;

export function setRoot(slope: f64, intercept: f64): void {
  rootSlope = slope;
  rootIntercept = intercept;
}

/** The model's CDF estimate scaled by FANOUT, in [0, FANOUT] (monotone in x). */
@inline function predict(x: f64): f64 {
  let t = x * rootSlope + rootIntercept;
  t = t > <f64>(LEAVES - 1) ? <f64>(LEAVES - 1) : t;
  const leaf = t >= 0 ? <usize>(<i32>t) : 0; // NaN (overflowing spans) lands in leaf 0
  const m = MODEL + (leaf << 5);
  let p = load<f64>(m) * x + load<f64>(m, 8);
  const lo = load<f64>(m, 16);
  const hi = load<f64>(m, 24);
  p = p < lo ? lo : p;
  return p > hi ? hi : p;
}

@inline function bucketOf(x: f64): i32 {
  const b = <i32>predict(x);
  return b >= FANOUT ? FANOUT - 1 : b;
}

/** Index of x among the heavy keys predicting into bucket b, or -1. */
@inline function heavyIndex(b: i32, x: f64): i32 {
  const hf = load<i32>(HFIRST + (<usize>b << 2));
  if (hf < 0) return -1;
  const he = load<i32>(HEND + (<usize>b << 2));
  for (let k = hf; k < he; k++) if (load<f64>(HSET + (<usize>k << 3)) == x) return k;
  return -1;
}

/**
 * First pass over STAGE[0, k): counts per model bucket, and per heavy key. Returns nonzero when a key is
 * NaN or infinite (x - x is 0 for every finite x); the counts are then meaningless.
 */
export function countStage(k: i32): i32 {
  let special: i32 = 0;
  for (let i = 0; i < k; i++) {
    const x = load<f64>(STAGE + (<usize>i << 3));
    special |= <i32>(x - x != 0);
    const b = bucketOf(x);
    const h = heavyIndex(b, x);
    if (h >= 0) {
      const hp = HCOUNT + (<usize>h << 2);
      store<i32>(hp, load<i32>(hp) + 1);
    } else {
      const cp = COUNTS + (<usize>b << 2);
      store<i32>(cp, load<i32>(cp) + 1);
    }
  }
  return special;
}

/** Counts to cursors: COUNTS[b] becomes the start of bucket b in T. */
export function countsToCursors(): void {
  let sum: i32 = 0;
  for (let b = 0; b < FANOUT; b++) {
    const cp = COUNTS + (<usize>b << 2);
    const c = load<i32>(cp);
    store<i32>(cp, sum);
    sum += c;
  }
}

/** Second pass over STAGE[0, k): each non-heavy key to its bucket in T. */
export function scatterStage(k: i32): void {
  for (let i = 0; i < k; i++) {
    const x = load<f64>(STAGE + (<usize>i << 3));
    const b = bucketOf(x);
    if (heavyIndex(b, x) >= 0) continue;
    const cp = COUNTS + (<usize>b << 2);
    const c = load<i32>(cp);
    store<i32>(cp, c + 1);
    store<f64>(T + (<usize>c << 3), x);
  }
}

@inline function insertionSort(from: usize, to: usize): void {
  for (let i = from + 8; i < to; i += 8) {
    const x = load<f64>(i);
    let j = i;
    while (j > from) {
      const y = load<f64>(j - 8);
      if (y <= x) break;
      store<f64>(j, y);
      j -= 8;
    }
    store<f64>(j, x);
  }
}

function siftDown(base: usize, root: i32, n: i32): void {
  const x = load<f64>(base + (<usize>root << 3));
  let i = root;
  while (true) {
    let c = 2 * i + 1;
    if (c >= n) break;
    let y = load<f64>(base + (<usize>c << 3));
    if (c + 1 < n) {
      const z = load<f64>(base + (<usize>(c + 1) << 3));
      if (z > y) {
        c++;
        y = z;
      }
    }
    if (y <= x) break;
    store<f64>(base + (<usize>i << 3), y);
    i = c;
  }
  store<f64>(base + (<usize>i << 3), x);
}

function heapSort(base: usize, n: i32): void {
  for (let i = (n >> 1) - 1; i >= 0; i--) siftDown(base, i, n);
  for (let e = n - 1; e > 0; e--) {
    const top = load<f64>(base);
    store<f64>(base, load<f64>(base + (<usize>e << 3)));
    store<f64>(base + (<usize>e << 3), top);
    siftDown(base, 0, e);
  }
}

/** Introsort of [from, to) (byte addresses): quicksort, heapsort past a depth limit, insertion sort below 16. */
function introSort(from: usize, to: usize, depth: i32): void {
  while (to - from > 16 << 3) {
    if (depth == 0) {
      heapSort(from, <i32>((to - from) >> 3));
      return;
    }
    depth--;
    const mid = from + ((((to - from) >> 3) >> 1) << 3);
    let a = load<f64>(from);
    let b = load<f64>(mid);
    let c = load<f64>(to - 8);
    // median of three as the pivot
    if (a > b) {
      const t = a;
      a = b;
      b = t;
    }
    if (b > c) b = a > c ? a : c;
    const pivot = b;
    // Hoare partition: equal keys split evenly, so runs of duplicates stay O(n log n)
    let i = from - 8;
    let j = to;
    while (true) {
      do i += 8;
      while (load<f64>(i) < pivot);
      do j -= 8;
      while (load<f64>(j) > pivot);
      if (i >= j) break;
      const t = load<f64>(i);
      store<f64>(i, load<f64>(j));
      store<f64>(j, t);
    }
    // [from, j] <= pivot <= [j + 8, to): recurse on the smaller side
    if (j + 8 - from < to - j - 8) {
      introSort(from, j + 8, depth);
      from = j + 8;
    } else {
      introSort(j + 8, to, depth);
      to = j + 8;
    }
  }
  insertionSort(from, to);
}

/** Sorts m keys at byte address `at` (any order). */
export function sortRange(at: usize, m: i32): void {
  introSort(at, at + (<usize>m << 3), 2 * (32 - clz<i32>(m)));
}

/**
 * Sorts first-level bucket b (T[from, from + m), m <= BUCKET_KEYS_MAX) into OUT[0, m): scatter by the
 * finer model output into sub-buckets of about `subKeys` keys, sort the oversized ones, then one
 * insertion sort over the run. -0 is put before +0.
 */
export function sortBucket(from: i32, m: i32, b: i32, subKeys: i32, subSortMin: i32): void {
  const src = T + (<usize>from << 3);
  if (m <= 32) {
    memory.copy(OUT, src, <usize>m << 3);
  } else {
    const S = (m + subKeys - 1) / subKeys;
    memory.fill(SUB, 0, (<usize>S + 1) << 2);
    const scale = <f64>S;
    const base = <f64>b * <f64>S;
    for (let i = 0; i < m; i++) {
      const x = load<f64>(src + (<usize>i << 3));
      let s = <i32>(predict(x) * scale - base);
      s = s < 0 ? 0 : s >= S ? S - 1 : s;
      store<u16>(IDS + (<usize>i << 1), <u16>s);
      const sp = SUB + (<usize>(s + 1) << 2);
      store<i32>(sp, load<i32>(sp) + 1);
    }
    let sum: i32 = 0;
    for (let s = 0; s < S; s++) {
      const sp = SUB + (<usize>s << 2);
      const c = load<i32>(sp + 4);
      store<i32>(sp, sum);
      sum += c;
    }
    for (let i = 0; i < m; i++) {
      const sp = SUB + (<usize>load<u16>(IDS + (<usize>i << 1)) << 2);
      const c = load<i32>(sp);
      store<i32>(sp, c + 1);
      store<f64>(OUT + (<usize>c << 3), load<f64>(src + (<usize>i << 3)));
    }
    // SUB[s] is now the end of sub-bucket s
    let start: i32 = 0;
    for (let s = 0; s < S; s++) {
      const end = load<i32>(SUB + (<usize>s << 2));
      if (end - start > subSortMin) sortRange(OUT + (<usize>start << 3), end - start);
      start = end;
    }
  }
  insertionSort(OUT, OUT + (<usize>m << 3));
  finishRun(OUT, m);
}

/** Puts -0 before +0 in a sorted run (they compare equal, so the sort leaves them mixed). */
export function finishRun(at: usize, m: i32): void {
  if (m == 0) return;
  const first = load<f64>(at);
  const last = load<f64>(at + (<usize>(m - 1) << 3));
  if (first <= 0 && last >= 0) {
    let i: i32 = 0;
    while (i < m && load<f64>(at + (<usize>i << 3)) != 0) i++;
    let j = i;
    let neg: i32 = 0;
    while (j < m && load<f64>(at + (<usize>j << 3)) == 0) {
      if (reinterpret<i64>(load<f64>(at + (<usize>j << 3))) < 0) neg++;
      j++;
    }
    for (let k = i; k < j; k++) store<f64>(at + (<usize>k << 3), k - i < neg ? -0.0 : 0.0);
  }
}
