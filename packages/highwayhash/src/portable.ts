/**
 * Portable HighwayHash in TypeScript, with no BigInt in the hot loop: every u64 is a pair of u32 words
 * (lo, hi) in a Uint32Array. The algorithm is HighwayHash as specified by Alakuijala, Cox and Wassenberg
 * ("Fast keyed hash/pseudo-random function using SIMD multiply and permute", 2016) and frozen in
 * google/highwayhash; this is an independent implementation checked against that project's test vectors.
 *
 * State layout in `s` (32 u32 words): v0 lanes at 0..7, v1 at 8..15, mul0 at 16..23, mul1 at 24..31;
 * lane i of a vector at base b is (s[b + 2i], s[b + 2i + 1]) = (lo, hi).
 */

export const V0 = 0;
export const V1 = 8;
export const MUL0 = 16;
export const MUL1 = 24;

/** The initial mul0 and mul1 constants, as (lo, hi) pairs. */
const INIT = Uint32Array.of(
  0xfe4cce2f,
  0xdbe6d5d5,
  0x299f31d0,
  0xa4093822,
  0x03707344,
  0x13198a2e,
  0x85a308d3,
  0x243f6a88,
  0xcb0ef593,
  0x3bd39e10,
  0xb5f18a8c,
  0xc0acf169,
  0x34e90c6c,
  0xbe5466cf,
  0x38d01377,
  0x452821e6,
);

/** Resets `s` for the 256-bit key given as 8 u32 words (4 little-endian u64 lanes as lo, hi). */
export function resetState(s: Uint32Array, key: Uint32Array): void {
  for (let i = 0; i < 8; i++) {
    s[MUL0 + i] = INIT[i]!;
    s[MUL1 + i] = INIT[8 + i]!;
    s[V0 + i] = (INIT[i]! ^ key[i]!) >>> 0;
  }
  for (let i = 0; i < 4; i++) {
    // v1 = mul1 ^ (key rotated by 32 bits)
    s[V1 + 2 * i] = (INIT[8 + 2 * i]! ^ key[2 * i + 1]!) >>> 0;
    s[V1 + 2 * i + 1] = (INIT[8 + 2 * i + 1]! ^ key[2 * i]!) >>> 0;
  }
}

/** One round: absorbs four u64 lanes read as 8 u32 words from `w` at `p` (lo, hi order). */
export function updateLanes(s: Uint32Array, w: Uint32Array, p: number): void {
  updatePackets(s, w, p, p + 8);
}

/**
 * Absorbs the packets of `w` from word `from` to word `to` (multiples of 8) into `s`, with the whole state
 * in local variables (a long input does not load and store it through the typed array on every operation).
 * Per lane: v1 += mul0 + input; mul0 ^= lo32(v1) * hi32(v0); v0 += mul1; mul1 ^= lo32(v0) * hi32(v1). Then
 * the zipper merges: v0 += bytes [b3 a4 b2 b5 a6 b1 a7 b0] and its neighbour lane += [a3 b4 a2 a5 a1 b6 a0 b7]
 * (byte 0 first) of v1's lane pairs (a = odd lane, b = even lane), and the same from v0 into v1 — the
 * permutation the paper uses to spread the multiplication results. The 32x32->64 multiplies are split into
 * 16-bit halves so that every intermediate stays exact.
 */
export function updatePackets(s: Uint32Array, w: Uint32Array, from: number, to: number): void {
  let v00l = s[0]!;
  let v00h = s[1]!;
  let v01l = s[2]!;
  let v01h = s[3]!;
  let v02l = s[4]!;
  let v02h = s[5]!;
  let v03l = s[6]!;
  let v03h = s[7]!;
  let v10l = s[8]!;
  let v10h = s[9]!;
  let v11l = s[10]!;
  let v11h = s[11]!;
  let v12l = s[12]!;
  let v12h = s[13]!;
  let v13l = s[14]!;
  let v13h = s[15]!;
  let m00l = s[16]!;
  let m00h = s[17]!;
  let m01l = s[18]!;
  let m01h = s[19]!;
  let m02l = s[20]!;
  let m02h = s[21]!;
  let m03l = s[22]!;
  let m03h = s[23]!;
  let m10l = s[24]!;
  let m10h = s[25]!;
  let m11l = s[26]!;
  let m11h = s[27]!;
  let m12l = s[28]!;
  let m12h = s[29]!;
  let m13l = s[30]!;
  let m13h = s[31]!;
  let lo = 0;
  let a = 0;
  let b = 0;
  let t = 0;
  for (let p = from; p < to; p += 8) {
    // lane 0
    a = (v10l + m00l) >>> 0;
    lo = (a + w[p + 0]!) >>> 0;
    v10h = (v10h + m00h + w[p + 1]! + +(a < v10l) + +(lo < a)) >>> 0;
    v10l = lo;
    a = v10l;
    b = v00h;
    t = Math.imul(a, b) >>> 0;
    m00l = (m00l ^ t) >>> 0;
    m00h = (m00h ^ mulHi(a, b, t)) >>> 0;
    lo = (v00l + m10l) >>> 0;
    v00h = (v00h + m10h + +(lo < v00l)) >>> 0;
    v00l = lo;
    a = v00l;
    b = v10h;
    t = Math.imul(a, b) >>> 0;
    m10l = (m10l ^ t) >>> 0;
    m10h = (m10h ^ mulHi(a, b, t)) >>> 0;
    // lane 1
    a = (v11l + m01l) >>> 0;
    lo = (a + w[p + 2]!) >>> 0;
    v11h = (v11h + m01h + w[p + 3]! + +(a < v11l) + +(lo < a)) >>> 0;
    v11l = lo;
    a = v11l;
    b = v01h;
    t = Math.imul(a, b) >>> 0;
    m01l = (m01l ^ t) >>> 0;
    m01h = (m01h ^ mulHi(a, b, t)) >>> 0;
    lo = (v01l + m11l) >>> 0;
    v01h = (v01h + m11h + +(lo < v01l)) >>> 0;
    v01l = lo;
    a = v01l;
    b = v11h;
    t = Math.imul(a, b) >>> 0;
    m11l = (m11l ^ t) >>> 0;
    m11h = (m11h ^ mulHi(a, b, t)) >>> 0;
    // lane 2
    a = (v12l + m02l) >>> 0;
    lo = (a + w[p + 4]!) >>> 0;
    v12h = (v12h + m02h + w[p + 5]! + +(a < v12l) + +(lo < a)) >>> 0;
    v12l = lo;
    a = v12l;
    b = v02h;
    t = Math.imul(a, b) >>> 0;
    m02l = (m02l ^ t) >>> 0;
    m02h = (m02h ^ mulHi(a, b, t)) >>> 0;
    lo = (v02l + m12l) >>> 0;
    v02h = (v02h + m12h + +(lo < v02l)) >>> 0;
    v02l = lo;
    a = v02l;
    b = v12h;
    t = Math.imul(a, b) >>> 0;
    m12l = (m12l ^ t) >>> 0;
    m12h = (m12h ^ mulHi(a, b, t)) >>> 0;
    // lane 3
    a = (v13l + m03l) >>> 0;
    lo = (a + w[p + 6]!) >>> 0;
    v13h = (v13h + m03h + w[p + 7]! + +(a < v13l) + +(lo < a)) >>> 0;
    v13l = lo;
    a = v13l;
    b = v03h;
    t = Math.imul(a, b) >>> 0;
    m03l = (m03l ^ t) >>> 0;
    m03h = (m03h ^ mulHi(a, b, t)) >>> 0;
    lo = (v03l + m13l) >>> 0;
    v03h = (v03h + m13h + +(lo < v03l)) >>> 0;
    v03l = lo;
    a = v03l;
    b = v13h;
    t = Math.imul(a, b) >>> 0;
    m13l = (m13l ^ t) >>> 0;
    m13h = (m13h ^ mulHi(a, b, t)) >>> 0;
    // zipper merge: a = v11, b = v10 into v01 and v00
    {
      const alo = v11l;
      const ahi = v11h;
      const blo = v10l;
      const bhi = v10h;
      const e0lo =
        ((blo >>> 24) | ((ahi & 0xff) << 8) | (blo & 0xff0000) | (((bhi >>> 8) & 0xff) << 24)) >>> 0;
      const e0hi =
        (((ahi >>> 16) & 0xff) | (blo & 0xff00) | ((ahi >>> 24) << 16) | ((blo & 0xff) << 24)) >>> 0;
      const e1lo =
        ((alo >>> 24) | ((bhi & 0xff) << 8) | (alo & 0xff0000) | (((ahi >>> 8) & 0xff) << 24)) >>> 0;
      const e1hi =
        (((alo >>> 8) & 0xff) | ((bhi & 0xff0000) >>> 8) | ((alo & 0xff) << 16) | (bhi & 0xff000000)) >>> 0;
      lo = (v00l + e0lo) >>> 0;
      v00h = (v00h + e0hi + +(lo < v00l)) >>> 0;
      v00l = lo;
      lo = (v01l + e1lo) >>> 0;
      v01h = (v01h + e1hi + +(lo < v01l)) >>> 0;
      v01l = lo;
    }
    // zipper merge: a = v13, b = v12 into v03 and v02
    {
      const alo = v13l;
      const ahi = v13h;
      const blo = v12l;
      const bhi = v12h;
      const e0lo =
        ((blo >>> 24) | ((ahi & 0xff) << 8) | (blo & 0xff0000) | (((bhi >>> 8) & 0xff) << 24)) >>> 0;
      const e0hi =
        (((ahi >>> 16) & 0xff) | (blo & 0xff00) | ((ahi >>> 24) << 16) | ((blo & 0xff) << 24)) >>> 0;
      const e1lo =
        ((alo >>> 24) | ((bhi & 0xff) << 8) | (alo & 0xff0000) | (((ahi >>> 8) & 0xff) << 24)) >>> 0;
      const e1hi =
        (((alo >>> 8) & 0xff) | ((bhi & 0xff0000) >>> 8) | ((alo & 0xff) << 16) | (bhi & 0xff000000)) >>> 0;
      lo = (v02l + e0lo) >>> 0;
      v02h = (v02h + e0hi + +(lo < v02l)) >>> 0;
      v02l = lo;
      lo = (v03l + e1lo) >>> 0;
      v03h = (v03h + e1hi + +(lo < v03l)) >>> 0;
      v03l = lo;
    }
    // zipper merge: a = v01, b = v00 into v11 and v10
    {
      const alo = v01l;
      const ahi = v01h;
      const blo = v00l;
      const bhi = v00h;
      const e0lo =
        ((blo >>> 24) | ((ahi & 0xff) << 8) | (blo & 0xff0000) | (((bhi >>> 8) & 0xff) << 24)) >>> 0;
      const e0hi =
        (((ahi >>> 16) & 0xff) | (blo & 0xff00) | ((ahi >>> 24) << 16) | ((blo & 0xff) << 24)) >>> 0;
      const e1lo =
        ((alo >>> 24) | ((bhi & 0xff) << 8) | (alo & 0xff0000) | (((ahi >>> 8) & 0xff) << 24)) >>> 0;
      const e1hi =
        (((alo >>> 8) & 0xff) | ((bhi & 0xff0000) >>> 8) | ((alo & 0xff) << 16) | (bhi & 0xff000000)) >>> 0;
      lo = (v10l + e0lo) >>> 0;
      v10h = (v10h + e0hi + +(lo < v10l)) >>> 0;
      v10l = lo;
      lo = (v11l + e1lo) >>> 0;
      v11h = (v11h + e1hi + +(lo < v11l)) >>> 0;
      v11l = lo;
    }
    // zipper merge: a = v03, b = v02 into v13 and v12
    {
      const alo = v03l;
      const ahi = v03h;
      const blo = v02l;
      const bhi = v02h;
      const e0lo =
        ((blo >>> 24) | ((ahi & 0xff) << 8) | (blo & 0xff0000) | (((bhi >>> 8) & 0xff) << 24)) >>> 0;
      const e0hi =
        (((ahi >>> 16) & 0xff) | (blo & 0xff00) | ((ahi >>> 24) << 16) | ((blo & 0xff) << 24)) >>> 0;
      const e1lo =
        ((alo >>> 24) | ((bhi & 0xff) << 8) | (alo & 0xff0000) | (((ahi >>> 8) & 0xff) << 24)) >>> 0;
      const e1hi =
        (((alo >>> 8) & 0xff) | ((bhi & 0xff0000) >>> 8) | ((alo & 0xff) << 16) | (bhi & 0xff000000)) >>> 0;
      lo = (v12l + e0lo) >>> 0;
      v12h = (v12h + e0hi + +(lo < v12l)) >>> 0;
      v12l = lo;
      lo = (v13l + e1lo) >>> 0;
      v13h = (v13h + e1hi + +(lo < v13l)) >>> 0;
      v13l = lo;
    }
  }
  s[0] = v00l;
  s[1] = v00h;
  s[2] = v01l;
  s[3] = v01h;
  s[4] = v02l;
  s[5] = v02h;
  s[6] = v03l;
  s[7] = v03h;
  s[8] = v10l;
  s[9] = v10h;
  s[10] = v11l;
  s[11] = v11h;
  s[12] = v12l;
  s[13] = v12h;
  s[14] = v13l;
  s[15] = v13h;
  s[16] = m00l;
  s[17] = m00h;
  s[18] = m01l;
  s[19] = m01h;
  s[20] = m02l;
  s[21] = m02h;
  s[22] = m03l;
  s[23] = m03h;
  s[24] = m10l;
  s[25] = m10h;
  s[26] = m11l;
  s[27] = m11h;
  s[28] = m12l;
  s[29] = m12h;
  s[30] = m13l;
  s[31] = m13h;
}

/**
 * The high 32 bits of the 64-bit product of two u32 values, given its low 32 bits `lo`. The float product
 * is within 2^10 of the exact one, and so is (product - lo) after rounding: scaled by 2^-32 it is the high
 * word plus less than 2^-21, so rounding to the nearest integer is exact. Cheaper than four 16-bit partial
 * products.
 */
export function mulHi(a: number, b: number, lo: number): number {
  return Math.floor((a * b - lo) * 2.3283064365386963e-10 + 0.5);
}

const remainderWords = new Uint32Array(8);
const remainderBytes = new Uint8Array(remainderWords.buffer);

/**
 * Absorbs the final 1..31 bytes `data[from, from + size)` (size = total length mod 32), as the reference
 * does. Allocates nothing.
 */
export function updateRemainder(s: Uint32Array, data: Uint8Array, from: number, size: number): void {
  // v0 += (size << 32) + size
  for (let i = 0; i < 8; i += 2) {
    const lo = (s[V0 + i]! + size) >>> 0;
    s[V0 + i + 1] = (s[V0 + i + 1]! + size + +(lo < size)) >>> 0;
    s[V0 + i] = lo;
  }
  // rotate each 32-bit half of v1 left by size
  for (let i = 0; i < 8; i++) {
    const x = s[V1 + i]!;
    s[V1 + i] = ((x << size) | (x >>> (32 - size))) >>> 0;
  }
  const packet = remainderBytes;
  remainderWords.fill(0);
  const mod4 = size & 3;
  const whole = size & ~3;
  for (let i = 0; i < whole; i++) packet[i] = data[from + i]!;
  if (size & 16) {
    for (let i = 0; i < 4; i++) packet[28 + i] = data[from + whole + i + mod4 - 4]!;
  } else if (mod4) {
    packet[16] = data[from + whole]!;
    packet[17] = data[from + whole + (mod4 >>> 1)]!;
    packet[18] = data[from + whole + mod4 - 1]!;
  }
  updateLanes(s, remainderWords, 0);
}

const permuted = new Uint32Array(8);

/** Feeds v0 with its lanes permuted (2,3,0,1) and each lane's halves swapped back into the state. */
export function permuteAndUpdate(s: Uint32Array): void {
  permuted[0] = s[V0 + 5]!;
  permuted[1] = s[V0 + 4]!;
  permuted[2] = s[V0 + 7]!;
  permuted[3] = s[V0 + 6]!;
  permuted[4] = s[V0 + 1]!;
  permuted[5] = s[V0 + 0]!;
  permuted[6] = s[V0 + 3]!;
  permuted[7] = s[V0 + 2]!;
  updateLanes(s, permuted, 0);
}

/** Adds two u64 lanes of `s` (given by base index) into out[o], out[o+1]. */
function sum4(s: Uint32Array, i: number, j: number, k: number, l: number, out: Uint32Array, o: number): void {
  const lo = s[i]! + s[j]! + s[k]! + s[l]!;
  out[o] = lo >>> 0;
  out[o + 1] = (s[i + 1]! + s[j + 1]! + s[k + 1]! + s[l + 1]! + Math.floor(lo / 0x100000000)) >>> 0;
}

function sum2(s: Uint32Array, i: number, j: number, out: Uint32Array, o: number): void {
  const lo = s[i]! + s[j]!;
  out[o] = lo >>> 0;
  out[o + 1] = (s[i + 1]! + s[j + 1]! + (lo > 0xffffffff ? 1 : 0)) >>> 0;
}

/** 64-bit result as (lo, hi) into out[0..1]. */
export function finalize64(s: Uint32Array, out: Uint32Array): void {
  for (let n = 0; n < 4; n++) permuteAndUpdate(s);
  sum4(s, V0, V1, MUL0, MUL1, out, 0);
}

/** 128-bit result as two (lo, hi) words into out[0..3]. */
export function finalize128(s: Uint32Array, out: Uint32Array): void {
  for (let n = 0; n < 6; n++) permuteAndUpdate(s);
  sum4(s, V0, MUL0, V1 + 4, MUL1 + 4, out, 0);
  sum4(s, V0 + 2, MUL0 + 2, V1 + 6, MUL1 + 6, out, 2);
}

const t = new Uint32Array(8);

/** 256-bit result as four (lo, hi) words into out[0..7]. */
export function finalize256(s: Uint32Array, out: Uint32Array): void {
  for (let n = 0; n < 10; n++) permuteAndUpdate(s);
  // a0..a3 per half: a0 = v0[0]+mul0[0], a1 = v0[1]+mul0[1], a2 = v1[0]+mul1[0], a3 = v1[1]+mul1[1]
  for (let h = 0; h < 2; h++) {
    const off = 4 * h;
    sum2(s, V0 + off, MUL0 + off, t, 0);
    sum2(s, V0 + off + 2, MUL0 + off + 2, t, 2);
    sum2(s, V1 + off, MUL1 + off, t, 4);
    sum2(s, V1 + off + 2, MUL1 + off + 2, t, 6);
    modularReduction(t, out, off);
  }
}

/** m1 = a1 ^ (a3' << 1 | a2 >> 63) ^ (a3' << 2 | a2 >> 62); m0 = a0 ^ (a2 << 1) ^ (a2 << 2); a3' = a3 & 2^62-1. */
function modularReduction(t: Uint32Array, out: Uint32Array, o: number): void {
  const a0lo = t[0]!;
  const a0hi = t[1]!;
  const a1lo = t[2]!;
  const a1hi = t[3]!;
  const a2lo = t[4]!;
  const a2hi = t[5]!;
  const a3lo = t[6]!;
  const a3hi = t[7]! & 0x3fffffff;
  const s1lo = (a3lo << 1) | (a2hi >>> 31);
  const s1hi = (a3hi << 1) | (a3lo >>> 31);
  const s2lo = (a3lo << 2) | (a2hi >>> 30);
  const s2hi = (a3hi << 2) | (a3lo >>> 30);
  out[o + 2] = (a1lo ^ s1lo ^ s2lo) >>> 0;
  out[o + 3] = (a1hi ^ s1hi ^ s2hi) >>> 0;
  const l1lo = a2lo << 1;
  const l1hi = (a2hi << 1) | (a2lo >>> 31);
  const l2lo = a2lo << 2;
  const l2hi = (a2hi << 2) | (a2lo >>> 30);
  out[o] = (a0lo ^ l1lo ^ l2lo) >>> 0;
  out[o + 1] = (a0hi ^ l1hi ^ l2hi) >>> 0;
}
