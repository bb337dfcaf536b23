// Learned Sort core in AssemblyScript: the per-key work of src/learned.ts (model evaluation, the
// first-level scatter into fixed-capacity buckets with a spill bucket, the second-level scatter, the
// touch-up) on doubles in linear memory. JS owns the input array; it copies chunks of it into STAGE for
// the one first-level pass, copies the keys spilled from each chunk back into the part of the input
// already read, and copies each sorted bucket from OUT back into the input. The only large region is T
// (fanout x capacity doubles, at most n + fanout): the extra memory.
//
// Layout (bytes; the memory is imported, one per sort, sized by JS):
//   MODEL   leafCount x [slope, intercept, lo, hi] f64, scaled to predict bucket numbers in [0, FANOUT]
//   COUNTS  fanout i32: keys held by each first-level bucket in T (then, after compaction, their starts)
//   HFIRST / HEND  fanout i32: heavy keys predicting into bucket b are HSET[HFIRST[b] .. HEND[b])
//   HSET    heavy keys (f64, ascending, at most fanout), HCOUNT their counts (i32)
//   SPILLS  fanout i32: keys of each bucket that found it full (then cursors into the spill area)
//   SUB     sub-bucket counts of the bucket being sorted, IDS its keys' sub-bucket ids (u16)
//   OUT     the sorted bucket, STAGE a chunk of input keys, SPILL the keys of a chunk that spilled,
//   T       the first-level buckets, bucket b at [b x capacity, (b + 1) x capacity)

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
export const SPILLS: usize = 61440;
export const SUB: usize = 65536; // (BUCKET_KEYS_MAX + 1) i32 at most
export const IDS: usize = 393216;
export const OUT: usize = 524288;
export const STAGE: usize = 1048576;
export const SPILL: usize = 1572864;
export const T: usize = 2097152;

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
 * The one first-level pass, over STAGE[0, k): each key to its bucket in T while the bucket has room
 * (`capacity` keys), else to SPILL; heavy keys are only counted. Returns the number of keys spilled from
 * this chunk, negated and less one when a key is NaN or infinite (x - x is 0 for every finite x): such
 * keys are placed like any other (NaN in bucket 0), so the caller can still put every key back.
 */
export function scatterStage(k: i32, capacity: i32): i32 {
  let special: f64 = 0;
  let spilled: i32 = 0;
  for (let i = 0; i < k; i++) {
    const x = load<f64>(STAGE + (<usize>i << 3));
    special += x - x;
    const b = bucketOf(x);
    const hf = load<i32>(HFIRST + (<usize>b << 2));
    if (hf >= 0) {
      const h = heavyIndex(b, x);
      if (h >= 0) {
        const hp = HCOUNT + (<usize>h << 2);
        store<i32>(hp, load<i32>(hp) + 1);
        continue;
      }
    }
    const cp = COUNTS + (<usize>b << 2);
    const c = load<i32>(cp);
    if (c < capacity) {
      store<i32>(cp, c + 1);
      store<f64>(T + ((<usize>b * <usize>capacity + <usize>c) << 3), x);
    } else {
      const sp = SPILLS + (<usize>b << 2);
      store<i32>(sp, load<i32>(sp) + 1);
      store<f64>(SPILL + (<usize>spilled << 3), x);
      spilled++;
    }
  }
  return special == 0 ? spilled : -spilled - 1;
}

/**
 * Closes the gaps between the buckets in T: bucket b moves to COUNTS-prefix order, and COUNTS[b] becomes
 * its start (in keys). SPILLS[b] becomes the cursor of bucket b's spilled keys, which follow all buckets.
 * Returns the number of keys the buckets hold.
 */
export function compact(capacity: i32): i32 {
  let dense: i32 = 0;
  for (let b = 0; b < FANOUT; b++) {
    const cp = COUNTS + (<usize>b << 2);
    const c = load<i32>(cp);
    const from = <usize>b * <usize>capacity;
    if (<usize>dense != from) memory.copy(T + (<usize>dense << 3), T + (from << 3), <usize>c << 3);
    store<i32>(cp, dense);
    dense += c;
  }
  let cursor = dense;
  for (let b = 0; b < FANOUT; b++) {
    const sp = SPILLS + (<usize>b << 2);
    const c = load<i32>(sp);
    store<i32>(sp, cursor);
    cursor += c;
  }
  return dense;
}

/** Spilled keys, staged again in STAGE[0, k), to their bucket's place in the spill area of T. */
export function placeSpill(k: i32): void {
  for (let i = 0; i < k; i++) {
    const x = load<f64>(STAGE + (<usize>i << 3));
    const sp = SPILLS + (<usize>bucketOf(x) << 2);
    const c = load<i32>(sp);
    store<i32>(sp, c + 1);
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

/** Sub-bucket of x among S: the bucket's own linear spline, (min, 0) to (max, S), clamped. */
@inline function subOf(x: f64, S: i32, scale: f64, base: f64): i32 {
  const s = <i32>(x * scale - base);
  return s < 0 ? 0 : s >= S ? S - 1 : s;
}

@inline function countSubs(src: usize, m: i32, ids: usize, S: i32, scale: f64, base: f64): void {
  for (let i = 0; i < m; i++) {
    const s = subOf(load<f64>(src + (<usize>i << 3)), S, scale, base);
    store<u16>(ids + (<usize>i << 1), <u16>s);
    const sp = SUB + (<usize>(s + 1) << 2);
    store<i32>(sp, load<i32>(sp) + 1);
  }
}

@inline function placeSubs(src: usize, m: i32, ids: usize): void {
  for (let i = 0; i < m; i++) {
    const sp = SUB + (<usize>load<u16>(ids + (<usize>i << 1)) << 2);
    const c = load<i32>(sp);
    store<i32>(sp, c + 1);
    store<f64>(OUT + (<usize>c << 3), load<f64>(src + (<usize>i << 3)));
  }
}

/**
 * Sorts first-level bucket b, whose keys are T[from, from + m) and its spilled keys T[from2, from2 + m2)
 * (m + m2 <= BUCKET_KEYS_MAX), into OUT[0, m + m2): scatter by a linear model of the bucket into
 * sub-buckets of about `subKeys` keys, sort the oversized ones, then one insertion sort over the run.
 * -0 is put before +0.
 */
export function sortBucket(from: i32, m: i32, from2: i32, m2: i32, subKeys: i32, subSortMin: i32): void {
  const src = T + (<usize>from << 3);
  const src2 = T + (<usize>from2 << 3);
  const total = m + m2;
  if (total <= 32) {
    memory.copy(OUT, src, <usize>m << 3);
    memory.copy(OUT + (<usize>m << 3), src2, <usize>m2 << 3);
  } else {
    const S = (total + subKeys - 1) / subKeys;
    memory.fill(SUB, 0, (<usize>S + 1) << 2);
    // The last level's model is a linear spline through the bucket's smallest and largest key: within
    // one first-level bucket the CDF is close to linear, and this costs a subtract and a multiply per
    // key where the RMI costs two multiply-adds, four loads and four clamps (15-20% faster overall,
    // 2M-10M normal, uniform, exponential and lognormal keys; see README).
    let mn = Infinity;
    let mx = -Infinity;
    for (let i = 0; i < m; i++) {
      const x = load<f64>(src + (<usize>i << 3));
      mn = min(mn, x);
      mx = max(mx, x);
    }
    for (let i = 0; i < m2; i++) {
      const x = load<f64>(src2 + (<usize>i << 3));
      mn = min(mn, x);
      mx = max(mx, x);
    }
    if (mx == mn) {
      // all equal (or -0 and +0 only): nothing to sort
      memory.copy(OUT, src, <usize>m << 3);
      memory.copy(OUT + (<usize>m << 3), src2, <usize>m2 << 3);
      finishRun(OUT, total);
      return;
    }
    const scale = <f64>S / (mx - mn);
    const base = mn * scale;
    countSubs(src, m, IDS, S, scale, base);
    countSubs(src2, m2, IDS + (<usize>m << 1), S, scale, base);
    let sum: i32 = 0;
    for (let s = 0; s < S; s++) {
      const sp = SUB + (<usize>s << 2);
      const c = load<i32>(sp + 4);
      store<i32>(sp, sum);
      sum += c;
    }
    placeSubs(src, m, IDS);
    placeSubs(src2, m2, IDS + (<usize>m << 1));
    // SUB[s] is now the end of sub-bucket s
    let start: i32 = 0;
    for (let s = 0; s < S; s++) {
      const end = load<i32>(SUB + (<usize>s << 2));
      if (end - start > subSortMin) sortRange(OUT + (<usize>start << 3), end - start);
      start = end;
    }
  }
  insertionSort(OUT, OUT + (<usize>total << 3));
  finishRun(OUT, total);
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
