// HighwayHash core in AssemblyScript with WebAssembly SIMD (v128). Each 256-bit state vector is kept as
// two v128 halves (lanes 0-1 and 2-3). The streaming state lives in linear memory at fixed addresses and
// only `update` reads and writes it; every hash and digest (`hashFrom`) keeps the state in locals from its
// first packet to the result.
// Independent implementation of the algorithm in Alakuijala, Cox, Wassenberg (2016) / google/highwayhash.
//
// Code shape, measured on V8 11.3 (Node 20) x64:
// - The 32x32->64 multiplies gather the low u32 halves of one vector and the high halves of the other with
//   one two-operand `i32x4.shuffle` each (a single `shufps`) for both 128-bit halves at once, then
//   `extmul_low` / `extmul_high` multiply lanes 0-1 and 2-3: 8 instructions per 256-bit multiply, not 10.
// - The zipper merge is `i8x16.swizzle` with its mask loaded once into a local: V8 rebuilds the constant
//   of an `i8x16.shuffle` from two 64-bit immediates on every use (4 extra instructions per zipper).
// - A round adds the packet to v1 first and mul0 last: mul0 comes out of the multiply, the end of the
//   longest dependency chain, and one add after it instead of two made 1 MiB 3-8% faster.
// - The remainder packet is built in registers (masked loads and a lane insert), not through
//   `memory.fill` / `memory.copy`, which V8 compiles to calls into C.

const V0: usize = 0; // v0 lanes 0..3 (32 bytes)
const V1: usize = 32;
const MUL0: usize = 64;
const MUL1: usize = 96;
/** 4 u64 key words; `setKey` derives an initial state from them. */
export const KEY: usize = 128;
export const OUT: usize = 192; // up to 4 u64 result words
/**
 * Two slots for the state right after reset for a key (V0, V1, MUL0, MUL1 layout, 128 bytes each), so that
 * two keys used in turn (an etag and a record checksum) each stay derived: every hash takes the slot's address.
 */
export const INIT_A: usize = 256;
export const INIT_B: usize = 512;
const ZIP: usize = 384; // the zipper merge's byte order, as a swizzle mask
/** 32 bytes of 0xff then 32 bytes of 0: loading 16 bytes at LOW + 32 - n keeps the first n bytes. */
const LOW: usize = 400;
/** Input bytes from here on; up to 32 bytes past the end of an input may be read (and masked off). */
export const INPUT: usize = 1024;

/**
 * Derives the initial state (after reset) at `init` (INIT_A or INIT_B) from the key at KEY; call after
 * writing a new key, and before any hashing (it also writes the constant tables: memory starts empty and is
 * grown by the host).
 */
export function setKey(init: usize): void {
  // the zipper: output byte i is input byte ZIP[i]
  v128.store(ZIP, i8x16(3, 12, 2, 5, 14, 1, 15, 0, 11, 4, 10, 13, 9, 6, 8, 7));
  memory.fill(LOW, 0xff, 32);
  memory.fill(LOW + 32, 0, 32);
  store<u64>(init + MUL0, 0xdbe6d5d5fe4cce2f);
  store<u64>(init + MUL0 + 8, 0xa4093822299f31d0);
  store<u64>(init + MUL0 + 16, 0x13198a2e03707344);
  store<u64>(init + MUL0 + 24, 0x243f6a8885a308d3);
  store<u64>(init + MUL1, 0x3bd39e10cb0ef593);
  store<u64>(init + MUL1 + 8, 0xc0acf169b5f18a8c);
  store<u64>(init + MUL1 + 16, 0xbe5466cf34e90c6c);
  store<u64>(init + MUL1 + 24, 0x452821e638d01377);
  for (let i: usize = 0; i < 32; i += 8) {
    const k = load<u64>(KEY + i);
    store<u64>(init + V0 + i, load<u64>(init + MUL0 + i) ^ k);
    store<u64>(init + V1 + i, load<u64>(init + MUL1 + i) ^ ((k >> 32) | (k << 32)));
  }
}

/** Resets the streaming state to the key's initial state at `init` (see `setKey`). */
export function reset(init: usize): void {
  // eight v128 moves: `memory.copy` compiles to a call into C
  for (let i: usize = 0; i < 128; i += 16) v128.store(V0 + i, v128.load(init + i));
}

/** Absorbs whole 32-byte packets from [ptr, ptr + len) into the streaming state; len is a multiple of 32. */
export function update(ptr: usize, len: usize): void {
  const zip = v128.load(ZIP);
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
    v1a = i64x2.add(i64x2.add(v1a, v128.load(p)), m0a);
    v1b = i64x2.add(i64x2.add(v1b, v128.load(p, 16)), m0b);
    let x = i32x4.shuffle(v1a, v1b, 0, 2, 4, 6);
    let y = i32x4.shuffle(v0a, v0b, 1, 3, 5, 7);
    m0a = v128.xor(m0a, i64x2.extmul_low_i32x4_u(x, y));
    m0b = v128.xor(m0b, i64x2.extmul_high_i32x4_u(x, y));
    v0a = i64x2.add(v0a, m1a);
    v0b = i64x2.add(v0b, m1b);
    x = i32x4.shuffle(v0a, v0b, 0, 2, 4, 6);
    y = i32x4.shuffle(v1a, v1b, 1, 3, 5, 7);
    m1a = v128.xor(m1a, i64x2.extmul_low_i32x4_u(x, y));
    m1b = v128.xor(m1b, i64x2.extmul_high_i32x4_u(x, y));
    v0a = i64x2.add(v0a, i8x16.swizzle(v1a, zip));
    v0b = i64x2.add(v0b, i8x16.swizzle(v1b, zip));
    v1a = i64x2.add(v1a, i8x16.swizzle(v0a, zip));
    v1b = i64x2.add(v1b, i8x16.swizzle(v0b, zip));
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

/** The remainder packet's first half: of the first (size & ~3) bytes at t, those below 16; the rest zero. */
@inline function tailLow(t: usize, size: u32): v128 {
  return v128.and(v128.load(t), v128.load(LOW + 32 - <usize>(size & ~3)));
}

/** The remainder packet's second half: bytes 16.. of the whole words, then the reference's last bytes. */
@inline function tailHigh(t: usize, size: u32): v128 {
  const whole = <usize>(size & ~3);
  const mod4 = <usize>(size & 3);
  let l1 = v128.and(v128.load(t, 16), v128.load(LOW + 48 - whole));
  if (size & 16) {
    // the last 4 bytes of the input go to packet bytes 28..31
    l1 = i32x4.replace_lane(l1, 3, load<u32>(t + <usize>size - 4));
  } else if (mod4) {
    // bytes [whole], [whole + mod4 / 2], [whole + mod4 - 1] go to packet bytes 16, 17, 18
    const u =
      <u32>load<u8>(t + whole) |
      (<u32>load<u8>(t + whole + (mod4 >> 1)) << 8) |
      (<u32>load<u8>(t + whole + mod4 - 1) << 16);
    l1 = i32x4.replace_lane(l1, 0, <i32>u);
  }
  return l1;
}

/** Reduces (a3, a2, a1, a0) modulo the reference's polynomial and stores the two result words at out. */
@inline function modularReduction(a3u: u64, a2: u64, a1: u64, a0: u64, out: usize): void {
  const a3 = a3u & 0x3fffffffffffffff;
  store<u64>(out + 8, a1 ^ ((a3 << 1) | (a2 >> 63)) ^ ((a3 << 2) | (a2 >> 62)));
  store<u64>(out, a0 ^ (a2 << 1) ^ (a2 << 2));
}

/**
 * HighwayHash of [ptr, ptr + len) from the state at `src` (a key's initial state for a one-shot hash, V0
 * for a stream), with the whole state in locals from the first packet to the result: the whole packets, then the remainder
 * packet (when len % 32 > 0) and the permuted rounds (4, 6 or 10 for bits = 64, 128 or 256) in a second
 * loop. The result goes to `dst` (bits / 8 bytes); the state at `src` is left as it was (a stream can go
 * on after a digest). Reads up to 32 bytes past the input's end. The host sends one-shot inputs of 4 KiB
 * and more through `update` and `digest` instead: V8 compiles `update`'s loop 3-5% faster than this one.
 */
@inline function hashFrom(src: usize, ptr: usize, len: usize, bits: u32, dst: usize): void {
  const zip = v128.load(ZIP);
  let v0a = v128.load(src);
  let v0b = v128.load(src + 16);
  let v1a = v128.load(src + 32);
  let v1b = v128.load(src + 48);
  let m0a = v128.load(src + 64);
  let m0b = v128.load(src + 80);
  let m1a = v128.load(src + 96);
  let m1b = v128.load(src + 112);
  const end = ptr + (len & ~31);
  let p = ptr;
  for (; p < end; p += 32) {
    v1a = i64x2.add(i64x2.add(v1a, v128.load(p)), m0a);
    v1b = i64x2.add(i64x2.add(v1b, v128.load(p, 16)), m0b);
    let x = i32x4.shuffle(v1a, v1b, 0, 2, 4, 6);
    let y = i32x4.shuffle(v0a, v0b, 1, 3, 5, 7);
    m0a = v128.xor(m0a, i64x2.extmul_low_i32x4_u(x, y));
    m0b = v128.xor(m0b, i64x2.extmul_high_i32x4_u(x, y));
    v0a = i64x2.add(v0a, m1a);
    v0b = i64x2.add(v0b, m1b);
    x = i32x4.shuffle(v0a, v0b, 0, 2, 4, 6);
    y = i32x4.shuffle(v1a, v1b, 1, 3, 5, 7);
    m1a = v128.xor(m1a, i64x2.extmul_low_i32x4_u(x, y));
    m1b = v128.xor(m1b, i64x2.extmul_high_i32x4_u(x, y));
    v0a = i64x2.add(v0a, i8x16.swizzle(v1a, zip));
    v0b = i64x2.add(v0b, i8x16.swizzle(v1b, zip));
    v1a = i64x2.add(v1a, i8x16.swizzle(v0a, zip));
    v1b = i64x2.add(v1b, i8x16.swizzle(v0b, zip));
  }
  const size = <u32>(len & 31);
  let l0: v128;
  let l1: v128;
  let rounds = bits == 64 ? 4 : bits == 128 ? 6 : 10;
  if (size) {
    const add = i64x2.splat((<u64>size << 32) + <u64>size);
    v0a = i64x2.add(v0a, add);
    v0b = i64x2.add(v0b, add);
    v1a = v128.or(i32x4.shl(v1a, size), i32x4.shr_u(v1a, 32 - size));
    v1b = v128.or(i32x4.shl(v1b, size), i32x4.shr_u(v1b, 32 - size));
    l0 = tailLow(end, size);
    l1 = tailHigh(end, size);
    rounds++;
  } else {
    l0 = i32x4.shuffle(v0b, v0b, 1, 0, 3, 2);
    l1 = i32x4.shuffle(v0a, v0a, 1, 0, 3, 2);
  }
  for (;;) {
    v1a = i64x2.add(i64x2.add(v1a, l0), m0a);
    v1b = i64x2.add(i64x2.add(v1b, l1), m0b);
    let x = i32x4.shuffle(v1a, v1b, 0, 2, 4, 6);
    let y = i32x4.shuffle(v0a, v0b, 1, 3, 5, 7);
    m0a = v128.xor(m0a, i64x2.extmul_low_i32x4_u(x, y));
    m0b = v128.xor(m0b, i64x2.extmul_high_i32x4_u(x, y));
    v0a = i64x2.add(v0a, m1a);
    v0b = i64x2.add(v0b, m1b);
    x = i32x4.shuffle(v0a, v0b, 0, 2, 4, 6);
    y = i32x4.shuffle(v1a, v1b, 1, 3, 5, 7);
    m1a = v128.xor(m1a, i64x2.extmul_low_i32x4_u(x, y));
    m1b = v128.xor(m1b, i64x2.extmul_high_i32x4_u(x, y));
    v0a = i64x2.add(v0a, i8x16.swizzle(v1a, zip));
    v0b = i64x2.add(v0b, i8x16.swizzle(v1b, zip));
    v1a = i64x2.add(v1a, i8x16.swizzle(v0a, zip));
    v1b = i64x2.add(v1b, i8x16.swizzle(v0b, zip));
    if (--rounds == 0) break;
    // the permuted v0: lanes (2, 3, 0, 1), each with its 32-bit halves swapped
    l0 = i32x4.shuffle(v0b, v0b, 1, 0, 3, 2);
    l1 = i32x4.shuffle(v0a, v0a, 1, 0, 3, 2);
  }
  if (bits == 64) {
    store<u64>(dst, i64x2.extract_lane(i64x2.add(i64x2.add(v0a, v1a), i64x2.add(m0a, m1a)), 0));
  } else if (bits == 128) {
    // word i: v0[i] + mul0[i] + v1[i + 2] + mul1[i + 2]
    v128.store(dst, i64x2.add(i64x2.add(v0a, m0a), i64x2.add(v1b, m1b)));
  } else {
    const lo0 = i64x2.add(v0a, m0a);
    const hi0 = i64x2.add(v1a, m1a);
    const lo1 = i64x2.add(v0b, m0b);
    const hi1 = i64x2.add(v1b, m1b);
    modularReduction(
      i64x2.extract_lane(hi0, 1),
      i64x2.extract_lane(hi0, 0),
      i64x2.extract_lane(lo0, 1),
      i64x2.extract_lane(lo0, 0),
      dst,
    );
    modularReduction(
      i64x2.extract_lane(hi1, 1),
      i64x2.extract_lane(hi1, 0),
      i64x2.extract_lane(lo1, 1),
      i64x2.extract_lane(lo1, 0),
      dst + 16,
    );
  }
}

/**
 * One-shot HighwayHash-64 of [ptr, ptr + len) from the initial state at `init`, stored at OUT. (Returning it
 * as an i64 measured no faster: JS receives a signed BigInt, and making it unsigned costs a second BigInt
 * operation, where reading OUT through a BigUint64Array makes one unsigned BigInt.)
 */
export function hash64Out(init: usize, ptr: usize, len: usize): void {
  hashFrom(init, ptr, len, 64, OUT);
}

/** One-shot HighwayHash-`bits` (64, 128 or 256) of [ptr, ptr + len) from the initial state at `init`, at OUT. */
export function hashOut(init: usize, ptr: usize, len: usize, bits: u32): void {
  hashFrom(init, ptr, len, bits, OUT);
}

/**
 * A stream's digest: absorbs the pending 0..31 bytes at ptr into a copy of the streaming state and writes
 * the bits-bit result to OUT; the streaming state itself is not changed.
 */
export function digest(ptr: usize, size: usize, bits: u32): void {
  hashFrom(V0, ptr, size, bits, OUT);
}

/**
 * The batch form: key i is [buf + offs[i], buf + offs[i] + lens[i]) (offs, lens: u32 arrays), its hash from
 * the initial state at `init` goes to out + 8 i. Reads up to 32 bytes past each key.
 */
export function batch64(init: usize, buf: usize, offs: usize, lens: usize, n: u32, out: usize): void {
  for (let i: usize = 0; i < <usize>n; i++) {
    const p = buf + <usize>load<u32>(offs + (i << 2));
    hashFrom(init, p, <usize>load<u32>(lens + (i << 2)), 64, out + (i << 3));
  }
}
