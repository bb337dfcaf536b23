// HighwayHash core in AssemblyScript with WebAssembly SIMD (v128). Each 256-bit state vector is kept as
// two v128 halves (lanes 0-1 and 2-3) in linear memory at fixed addresses; JS copies input to INPUT.
// Independent implementation of the algorithm in Alakuijala, Cox, Wassenberg (2016) / google/highwayhash.

const V0: usize = 0; // v0 lanes 0..3 (32 bytes)
const V1: usize = 32;
const MUL0: usize = 64;
const MUL1: usize = 96;
const KEY: usize = 128; // 4 u64 key words
const PACKET: usize = 160; // 32-byte scratch for the remainder
export const OUT: usize = 192; // up to 4 u64 result words
export const INPUT: usize = 1024; // input bytes from here on

@inline function mulLoHi(a: v128, b: v128): v128 {
  // lo32(a lane) * hi32(b lane) for both u64 lanes: gather the u32 halves into i32 lanes 0 and 1 first,
  // because extmul_low multiplies i32 lanes 0 and 1.
  const alo = i8x16.shuffle(a, a, 0, 1, 2, 3, 8, 9, 10, 11, 0, 1, 2, 3, 8, 9, 10, 11);
  const bhi = i8x16.shuffle(b, b, 4, 5, 6, 7, 12, 13, 14, 15, 4, 5, 6, 7, 12, 13, 14, 15);
  return i64x2.extmul_low_i32x4_u(alo, bhi);
}

@inline function zipper(v: v128): v128 {
  return i8x16.shuffle(v, v, 3, 12, 2, 5, 14, 1, 15, 0, 11, 4, 10, 13, 9, 6, 8, 7);
}

@inline function updateV(l0: v128, l1: v128): void {
  let v0a = v128.load(V0);
  let v0b = v128.load(V0 + 16);
  let v1a = v128.load(V1);
  let v1b = v128.load(V1 + 16);
  let m0a = v128.load(MUL0);
  let m0b = v128.load(MUL0 + 16);
  let m1a = v128.load(MUL1);
  let m1b = v128.load(MUL1 + 16);
  v1a = i64x2.add(v1a, i64x2.add(m0a, l0));
  v1b = i64x2.add(v1b, i64x2.add(m0b, l1));
  m0a = v128.xor(m0a, mulLoHi(v1a, v0a));
  m0b = v128.xor(m0b, mulLoHi(v1b, v0b));
  v0a = i64x2.add(v0a, m1a);
  v0b = i64x2.add(v0b, m1b);
  m1a = v128.xor(m1a, mulLoHi(v0a, v1a));
  m1b = v128.xor(m1b, mulLoHi(v0b, v1b));
  v0a = i64x2.add(v0a, zipper(v1a));
  v0b = i64x2.add(v0b, zipper(v1b));
  v1a = i64x2.add(v1a, zipper(v0a));
  v1b = i64x2.add(v1b, zipper(v0b));
  v128.store(V0, v0a);
  v128.store(V0 + 16, v0b);
  v128.store(V1, v1a);
  v128.store(V1 + 16, v1b);
  v128.store(MUL0, m0a);
  v128.store(MUL0 + 16, m0b);
  v128.store(MUL1, m1a);
  v128.store(MUL1 + 16, m1b);
}

/** Resets the state from the key at KEY. */
export function reset(): void {
  store<u64>(MUL0, 0xdbe6d5d5fe4cce2f);
  store<u64>(MUL0 + 8, 0xa4093822299f31d0);
  store<u64>(MUL0 + 16, 0x13198a2e03707344);
  store<u64>(MUL0 + 24, 0x243f6a8885a308d3);
  store<u64>(MUL1, 0x3bd39e10cb0ef593);
  store<u64>(MUL1 + 8, 0xc0acf169b5f18a8c);
  store<u64>(MUL1 + 16, 0xbe5466cf34e90c6c);
  store<u64>(MUL1 + 24, 0x452821e638d01377);
  for (let i: usize = 0; i < 32; i += 8) {
    const k = load<u64>(KEY + i);
    store<u64>(V0 + i, load<u64>(MUL0 + i) ^ k);
    store<u64>(V1 + i, load<u64>(MUL1 + i) ^ ((k >> 32) | (k << 32)));
  }
}

/** Absorbs whole 32-byte packets from [ptr, ptr + len); len is a multiple of 32. */
export function update(ptr: usize, len: usize): void {
  // The hot loop keeps the state in locals (registers) instead of memory.
  let v0a = v128.load(V0);
  let v0b = v128.load(V0 + 16);
  let v1a = v128.load(V1);
  let v1b = v128.load(V1 + 16);
  let m0a = v128.load(MUL0);
  let m0b = v128.load(MUL0 + 16);
  let m1a = v128.load(MUL1);
  let m1b = v128.load(MUL1 + 16);
  const end = ptr + len;
  for (let p = ptr; p < end; p += 32) {
    v1a = i64x2.add(v1a, i64x2.add(m0a, v128.load(p)));
    v1b = i64x2.add(v1b, i64x2.add(m0b, v128.load(p + 16)));
    m0a = v128.xor(m0a, mulLoHi(v1a, v0a));
    m0b = v128.xor(m0b, mulLoHi(v1b, v0b));
    v0a = i64x2.add(v0a, m1a);
    v0b = i64x2.add(v0b, m1b);
    m1a = v128.xor(m1a, mulLoHi(v0a, v1a));
    m1b = v128.xor(m1b, mulLoHi(v0b, v1b));
    v0a = i64x2.add(v0a, zipper(v1a));
    v0b = i64x2.add(v0b, zipper(v1b));
    v1a = i64x2.add(v1a, zipper(v0a));
    v1b = i64x2.add(v1b, zipper(v0b));
  }
  v128.store(V0, v0a);
  v128.store(V0 + 16, v0b);
  v128.store(V1, v1a);
  v128.store(V1 + 16, v1b);
  v128.store(MUL0, m0a);
  v128.store(MUL0 + 16, m0b);
  v128.store(MUL1, m1a);
  v128.store(MUL1 + 16, m1b);
}

/** Absorbs the final 1..31 bytes at ptr (size = total length mod 32). */
export function remainder(ptr: usize, size: u32): void {
  const s64 = (<u64>size << 32) + <u64>size;
  for (let i: usize = 0; i < 32; i += 8) store<u64>(V0 + i, load<u64>(V0 + i) + s64);
  for (let i: usize = 0; i < 32; i += 4) store<u32>(V1 + i, rotl<u32>(load<u32>(V1 + i), size));
  memory.fill(PACKET, 0, 32);
  const mod4 = size & 3;
  const whole = <usize>(size & ~3);
  memory.copy(PACKET, ptr, whole);
  const tail = ptr + whole;
  if (size & 16) {
    for (let i: usize = 0; i < 4; i++) store<u8>(PACKET + 28 + i, load<u8>(tail + i + <usize>mod4 - 4));
  } else if (mod4) {
    store<u8>(PACKET + 16, load<u8>(tail));
    store<u8>(PACKET + 17, load<u8>(tail + <usize>(mod4 >> 1)));
    store<u8>(PACKET + 18, load<u8>(tail + <usize>mod4 - 1));
  }
  updateV(v128.load(PACKET), v128.load(PACKET + 16));
}

@inline function permuteAndUpdate(): void {
  const a = v128.load(V0);
  const b = v128.load(V0 + 16);
  // lanes (2, 3, 0, 1), each with its 32-bit halves swapped
  updateV(i32x4.shuffle(b, b, 1, 0, 3, 2), i32x4.shuffle(a, a, 1, 0, 3, 2));
}

export function finalize64(): void {
  for (let i = 0; i < 4; i++) permuteAndUpdate();
  store<u64>(OUT, load<u64>(V0) + load<u64>(V1) + load<u64>(MUL0) + load<u64>(MUL1));
}

export function finalize128(): void {
  for (let i = 0; i < 6; i++) permuteAndUpdate();
  store<u64>(OUT, load<u64>(V0) + load<u64>(MUL0) + load<u64>(V1 + 16) + load<u64>(MUL1 + 16));
  store<u64>(OUT + 8, load<u64>(V0 + 8) + load<u64>(MUL0 + 8) + load<u64>(V1 + 24) + load<u64>(MUL1 + 24));
}

@inline function modularReduction(a3u: u64, a2: u64, a1: u64, a0: u64, out: usize): void {
  const a3 = a3u & 0x3fffffffffffffff;
  store<u64>(out + 8, a1 ^ ((a3 << 1) | (a2 >> 63)) ^ ((a3 << 2) | (a2 >> 62)));
  store<u64>(out, a0 ^ (a2 << 1) ^ (a2 << 2));
}

export function finalize256(): void {
  for (let i = 0; i < 10; i++) permuteAndUpdate();
  for (let h: usize = 0; h < 32; h += 16) {
    modularReduction(
      load<u64>(V1 + h + 8) + load<u64>(MUL1 + h + 8),
      load<u64>(V1 + h) + load<u64>(MUL1 + h),
      load<u64>(V0 + h + 8) + load<u64>(MUL0 + h + 8),
      load<u64>(V0 + h) + load<u64>(MUL0 + h),
      OUT + h,
    );
  }
}

/** One-shot over [ptr, ptr + len) with bits = 64, 128 or 256; the result lands at OUT. */
export function hash(ptr: usize, len: usize, bits: u32): void {
  reset();
  const whole = len & ~31;
  update(ptr, whole);
  if (len & 31) remainder(ptr + whole, <u32>(len & 31));
  if (bits == 64) finalize64();
  else if (bits == 128) finalize128();
  else finalize256();
}

/**
 * HighwayHash-64 of [ptr, ptr + len) with the whole state in locals (registers) from the first packet to
 * the final sum: the fast path for one-shot and batch hashing. The initial state (after `reset`) is read
 * from `init`. Returns nothing; the result is stored at `out`.
 */
@inline function hash64From(init: usize, ptr: usize, len: usize, out: usize): void {
  let v0a = v128.load(init);
  let v0b = v128.load(init + 16);
  let v1a = v128.load(init + 32);
  let v1b = v128.load(init + 48);
  let m0a = v128.load(init + 64);
  let m0b = v128.load(init + 80);
  let m1a = v128.load(init + 96);
  let m1b = v128.load(init + 112);
  const whole = len & ~31;
  const end = ptr + whole;
  const size = <u32>(len & 31);
  // packets, then (when size > 0) the remainder packet, then 4 permuted rounds
  // after the whole packets: the remainder packet (when size > 0), then 4 permuted rounds
  let rounds = 4 + (size ? 1 : 0);
  let p = ptr;
  for (;;) {
    let l0 = i64x2.splat(0);
    let l1 = l0;
    if (p < end) {
      l0 = v128.load(p);
      l1 = v128.load(p + 16);
      p += 32;
    } else if (rounds == 0) break;
    else {
      if (rounds == 5) {
        const s64 = (<u64>size << 32) + <u64>size;
        const add = i64x2.splat(s64);
        v0a = i64x2.add(v0a, add);
        v0b = i64x2.add(v0b, add);
        v1a = v128.or(i32x4.shl(v1a, size), i32x4.shr_u(v1a, 32 - size));
        v1b = v128.or(i32x4.shl(v1b, size), i32x4.shr_u(v1b, 32 - size));
        memory.fill(PACKET, 0, 32);
        const mod4 = size & 3;
        const w = <usize>(size & ~3);
        memory.copy(PACKET, end, w);
        const tail = end + w;
        if (size & 16) {
          for (let i: usize = 0; i < 4; i++) store<u8>(PACKET + 28 + i, load<u8>(tail + i + <usize>mod4 - 4));
        } else if (mod4) {
          store<u8>(PACKET + 16, load<u8>(tail));
          store<u8>(PACKET + 17, load<u8>(tail + <usize>(mod4 >> 1)));
          store<u8>(PACKET + 18, load<u8>(tail + <usize>mod4 - 1));
        }
        l0 = v128.load(PACKET);
        l1 = v128.load(PACKET + 16);
      } else {
        l0 = i32x4.shuffle(v0b, v0b, 1, 0, 3, 2);
        l1 = i32x4.shuffle(v0a, v0a, 1, 0, 3, 2);
      }
      rounds--;
    }
    v1a = i64x2.add(v1a, i64x2.add(m0a, l0));
    v1b = i64x2.add(v1b, i64x2.add(m0b, l1));
    m0a = v128.xor(m0a, mulLoHi(v1a, v0a));
    m0b = v128.xor(m0b, mulLoHi(v1b, v0b));
    v0a = i64x2.add(v0a, m1a);
    v0b = i64x2.add(v0b, m1b);
    m1a = v128.xor(m1a, mulLoHi(v0a, v1a));
    m1b = v128.xor(m1b, mulLoHi(v0b, v1b));
    v0a = i64x2.add(v0a, zipper(v1a));
    v0b = i64x2.add(v0b, zipper(v1b));
    v1a = i64x2.add(v1a, zipper(v0a));
    v1b = i64x2.add(v1b, zipper(v0b));
  }
  const sum = i64x2.add(i64x2.add(v0a, v1a), i64x2.add(m0a, m1a));
  store<u64>(out, i64x2.extract_lane(sum, 0));
}

/** One-shot HighwayHash-64 on the register-resident path; the result lands at OUT. */
export function hash64Fast(ptr: usize, len: usize): void {
  reset();
  memory.copy(PACKET + 64, V0, 128);
  hash64From(PACKET + 64, ptr, len, OUT);
}

/** The batch form on the register-resident path. */
export function batch64Fast(buf: usize, offs: usize, lens: usize, n: u32, out: usize): void {
  reset();
  memory.copy(PACKET + 64, V0, 128);
  for (let i: usize = 0; i < <usize>n; i++) {
    const p = buf + <usize>load<u32>(offs + (i << 2));
    const len = <usize>load<u32>(lens + (i << 2));
    hash64From(PACKET + 64, p, len, out + (i << 3));
  }
}
