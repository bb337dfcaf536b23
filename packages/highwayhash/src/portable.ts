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

/**
 * One round: absorbs four u64 lanes read as 8 u32 words from `w` at `p` (lo, hi order).
 * The 32x32->64 multiplies are split into 16-bit halves so that every intermediate stays exact.
 */
export function updateLanes(s: Uint32Array, w: Uint32Array, p: number): void {
  for (let i = 0; i < 8; i += 2) {
    // v1 += mul0 + lane
    let lo = s[V1 + i]! + s[MUL0 + i]! + w[p + i]!;
    let hi = s[V1 + i + 1]! + s[MUL0 + i + 1]! + w[p + i + 1]! + Math.floor(lo / 0x100000000);
    const v1lo = lo >>> 0;
    const v1hi = hi >>> 0;
    s[V1 + i] = v1lo;
    s[V1 + i + 1] = v1hi;
    // mul0 ^= lo32(v1) * hi32(v0)
    let a = v1lo;
    let b = s[V0 + i + 1]!;
    let a0 = a & 0xffff;
    let a1 = a >>> 16;
    let b0 = b & 0xffff;
    let b1 = b >>> 16;
    let m1 = a1 * b0;
    let m2 = a0 * b1;
    let mid = ((a0 * b0) >>> 16) + (m1 & 0xffff) + (m2 & 0xffff);
    s[MUL0 + i] = (s[MUL0 + i]! ^ Math.imul(a, b)) >>> 0;
    s[MUL0 + i + 1] = (s[MUL0 + i + 1]! ^ (a1 * b1 + (m1 >>> 16) + (m2 >>> 16) + (mid >>> 16))) >>> 0;
    // v0 += mul1
    lo = s[V0 + i]! + s[MUL1 + i]!;
    hi = s[V0 + i + 1]! + s[MUL1 + i + 1]! + (lo > 0xffffffff ? 1 : 0);
    const v0lo = lo >>> 0;
    s[V0 + i] = v0lo;
    s[V0 + i + 1] = hi >>> 0;
    // mul1 ^= lo32(v0) * hi32(v1)
    a = v0lo;
    b = v1hi;
    a0 = a & 0xffff;
    a1 = a >>> 16;
    b0 = b & 0xffff;
    b1 = b >>> 16;
    m1 = a1 * b0;
    m2 = a0 * b1;
    mid = ((a0 * b0) >>> 16) + (m1 & 0xffff) + (m2 & 0xffff);
    s[MUL1 + i] = (s[MUL1 + i]! ^ Math.imul(a, b)) >>> 0;
    s[MUL1 + i + 1] = (s[MUL1 + i + 1]! ^ (a1 * b1 + (m1 >>> 16) + (m2 >>> 16) + (mid >>> 16))) >>> 0;
  }
  zipperMergeAndAdd(s, V1 + 2, V1, V0 + 2, V0);
  zipperMergeAndAdd(s, V1 + 6, V1 + 4, V0 + 6, V0 + 4);
  zipperMergeAndAdd(s, V0 + 2, V0, V1 + 2, V1);
  zipperMergeAndAdd(s, V0 + 6, V0 + 4, V1 + 6, V1 + 4);
}

/**
 * add0 += bytes [b3 a4 b2 b5 a6 b1 a7 b0] and add1 += bytes [a3 b4 a2 a5 a1 b6 a0 b7] (byte 0 first),
 * where a = lane `ia`, b = lane `ib`: the byte permutation the paper uses to spread multiplication results.
 */
function zipperMergeAndAdd(s: Uint32Array, ia: number, ib: number, iadd1: number, iadd0: number): void {
  const alo = s[ia]!;
  const ahi = s[ia + 1]!;
  const blo = s[ib]!;
  const bhi = s[ib + 1]!;
  const e0lo = ((blo >>> 24) | ((ahi & 0xff) << 8) | (blo & 0xff0000) | (((bhi >>> 8) & 0xff) << 24)) >>> 0;
  const e0hi = (((ahi >>> 16) & 0xff) | (blo & 0xff00) | ((ahi >>> 24) << 16) | ((blo & 0xff) << 24)) >>> 0;
  const e1lo = ((alo >>> 24) | ((bhi & 0xff) << 8) | (alo & 0xff0000) | (((ahi >>> 8) & 0xff) << 24)) >>> 0;
  const e1hi =
    (((alo >>> 8) & 0xff) | ((bhi & 0xff0000) >>> 8) | ((alo & 0xff) << 16) | (bhi & 0xff000000)) >>> 0;
  let lo = s[iadd0]! + e0lo;
  s[iadd0] = lo >>> 0;
  s[iadd0 + 1] = (s[iadd0 + 1]! + e0hi + (lo > 0xffffffff ? 1 : 0)) >>> 0;
  lo = s[iadd1]! + e1lo;
  s[iadd1] = lo >>> 0;
  s[iadd1 + 1] = (s[iadd1 + 1]! + e1hi + (lo > 0xffffffff ? 1 : 0)) >>> 0;
}

/** Absorbs the final 1..31 bytes `tail[0..size)` (size = total length mod 32), as the reference does. */
export function updateRemainder(s: Uint32Array, tail: Uint8Array, size: number, scratch: Uint8Array): void {
  // v0 += (size << 32) + size
  for (let i = 0; i < 8; i += 2) {
    const lo = s[V0 + i]! + size;
    s[V0 + i] = lo >>> 0;
    s[V0 + i + 1] = (s[V0 + i + 1]! + size + (lo > 0xffffffff ? 1 : 0)) >>> 0;
  }
  // rotate each 32-bit half of v1 left by size
  for (let i = 0; i < 8; i++) {
    const x = s[V1 + i]!;
    s[V1 + i] = ((x << size) | (x >>> (32 - size))) >>> 0;
  }
  const packet = scratch.subarray(0, 32);
  packet.fill(0);
  const mod4 = size & 3;
  const whole = size & ~3;
  for (let i = 0; i < whole; i++) packet[i] = tail[i]!;
  if (size & 16) {
    for (let i = 0; i < 4; i++) packet[28 + i] = tail[whole + i + mod4 - 4]!;
  } else if (mod4) {
    packet[16] = tail[whole]!;
    packet[17] = tail[whole + (mod4 >>> 1)]!;
    packet[18] = tail[whole + mod4 - 1]!;
  }
  updateLanes(s, new Uint32Array(packet.buffer, packet.byteOffset, 8), 0);
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
