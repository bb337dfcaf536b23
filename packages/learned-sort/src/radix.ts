/**
 * LSD radix sorts on typed arrays: the strongest non-learned baseline and the learned sort's fallback.
 * 64-bit keys are handled as (lo, hi) u32 pairs through a Uint32Array view, so no BigInt is touched.
 * Float64 keys are mapped to order-preserving u64 bit patterns (negative: all bits flipped; positive:
 * sign bit flipped), which puts -0 before +0 and -Infinity/+Infinity at the ends, as TypedArray sort does.
 */

/** Digit width of the 64-bit sorts: 4 passes of 16 bits; each histogram (256 KiB) stays in L2. */
const DIGIT_BITS = 16;
const RADIX = 1 << DIGIT_BITS;
const MASK = RADIX - 1;

const counts = new Uint32Array(RADIX);

/**
 * Sorts 64-bit (lo, hi) pairs in `w` (length 2n) as unsigned integers, using `tmp` (length 2n) as the
 * other buffer; the result ends in `w`. Passes whose digit is constant are skipped. `idx`/`idxTmp`, when
 * given, are permuted alongside (stable), for argsort.
 */
export function radixSortU64Pairs(
  w: Uint32Array,
  tmp: Uint32Array,
  idx?: Uint32Array,
  idxTmp?: Uint32Array,
): void {
  const n = w.length >>> 1;
  let src = w;
  let dst = tmp;
  let isrc = idx;
  let idst = idxTmp;
  for (let pass = 0; pass < 4; pass++) {
    const word = pass >>> 1;
    const shift = (pass & 1) * DIGIT_BITS;
    counts.fill(0);
    for (let i = 0; i < n; i++) counts[(src[2 * i + word]! >>> shift) & MASK]!++;
    // a digit that is the same for every key changes nothing
    if (counts[(src[word]! >>> shift) & MASK] === n) continue;
    let sum = 0;
    for (let d = 0; d < RADIX; d++) {
      const c = counts[d]!;
      counts[d] = sum;
      sum += c;
    }
    if (isrc && idst) {
      for (let i = 0; i < n; i++) {
        const lo = src[2 * i]!;
        const hi = src[2 * i + 1]!;
        const p = counts[((word ? hi : lo) >>> shift) & MASK]!++;
        dst[2 * p] = lo;
        dst[2 * p + 1] = hi;
        idst[p] = isrc[i]!;
      }
      const t = isrc;
      isrc = idst;
      idst = t;
    } else if (word === 0) {
      for (let i = 0; i < n; i++) {
        const lo = src[2 * i]!;
        const p = counts[(lo >>> shift) & MASK]!++;
        dst[2 * p] = lo;
        dst[2 * p + 1] = src[2 * i + 1]!;
      }
    } else {
      for (let i = 0; i < n; i++) {
        const hi = src[2 * i + 1]!;
        const p = counts[(hi >>> shift) & MASK]!++;
        dst[2 * p] = src[2 * i]!;
        dst[2 * p + 1] = hi;
      }
    }
    const t = src;
    src = dst;
    dst = t;
  }
  if (src !== w) w.set(src);
  if (idx && isrc && isrc !== idx) idx.set(isrc);
}

/** float64 bits -> order-preserving u64 bits, in place on the (lo, hi) view. */
export function f64ToKeys(w: Uint32Array): void {
  for (let i = 1; i < w.length; i += 2) {
    const hi = w[i]!;
    if (hi & 0x80000000) {
      w[i] = ~hi >>> 0;
      w[i - 1] = ~w[i - 1]! >>> 0;
    } else w[i] = (hi | 0x80000000) >>> 0;
  }
}

/** The inverse of {@link f64ToKeys}. */
export function keysToF64(w: Uint32Array): void {
  for (let i = 1; i < w.length; i += 2) {
    const hi = w[i]!;
    if (hi & 0x80000000) w[i] = (hi & 0x7fffffff) >>> 0;
    else {
      w[i] = ~hi >>> 0;
      w[i - 1] = ~w[i - 1]! >>> 0;
    }
  }
}

/** Moves NaNs to the end (TypedArray sort order); returns how many non-NaN values lead. */
export function partitionNaN(a: Float64Array | Float32Array): number {
  // read-only until the first NaN: most inputs have none and pay no writes
  let k = 0;
  while (k < a.length && !Number.isNaN(a[k]!)) k++;
  if (k === a.length) return k;
  for (let i = k + 1; i < a.length; i++) {
    const x = a[i]!;
    if (!Number.isNaN(x)) a[k++] = x;
  }
  for (let i = k; i < a.length; i++) a[i] = Number.NaN;
  return k;
}

/** LSD radix sort of doubles, in place; `tmp` is one array of the same length (the extra memory). */
export function radixSortF64(a: Float64Array, tmp: Float64Array = new Float64Array(a.length)): Float64Array {
  const n = partitionNaN(a);
  const w = new Uint32Array(a.buffer, a.byteOffset, 2 * n);
  const t = new Uint32Array(tmp.buffer, tmp.byteOffset, 2 * n);
  f64ToKeys(w);
  radixSortU64Pairs(w, t);
  keysToF64(w);
  return a;
}

/** LSD radix sort of 32-bit keys already mapped to unsigned order (u32 view), 2 passes of 16 bits. */
export function radixSortU32(w: Uint32Array, tmp: Uint32Array, flip: number): void {
  const n = w.length;
  let src = w;
  let dst = tmp;
  for (let pass = 0; pass < 2; pass++) {
    const shift = pass * DIGIT_BITS;
    counts.fill(0);
    for (let i = 0; i < n; i++) counts[((src[i]! ^ flip) >>> shift) & MASK]!++;
    let sum = 0;
    for (let d = 0; d < RADIX; d++) {
      const c = counts[d]!;
      counts[d] = sum;
      sum += c;
    }
    for (let i = 0; i < n; i++) {
      const v = src[i]!;
      dst[counts[((v ^ flip) >>> shift) & MASK]!++] = v;
    }
    const t = src;
    src = dst;
    dst = t;
  }
  if (src !== w) w.set(src);
}
