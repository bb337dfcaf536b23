/**
 * SipHash-c-d (Aumasson and Bernstein, "SipHash: a fast short-input PRF", 2012) with a 128-bit key and a
 * 64-bit output, in u32 pairs (no BigInt while hashing). SipHash-2-4 is the paper's default; SipHash-1-3 is
 * the faster variant google/highwayhash also ships.
 */
import { kindOf } from '@strata/cli';
import { asBytes } from './hasher.js';

const st = new Uint32Array(8); // v0..v3 as (lo, hi)

function add(a: number, b: number): void {
  const lo = st[a]! + st[b]!;
  st[a] = lo >>> 0;
  st[a + 1] = (st[a + 1]! + st[b + 1]! + (lo > 0xffffffff ? 1 : 0)) >>> 0;
}

function rotl(a: number, n: number): void {
  const lo = st[a]!;
  const hi = st[a + 1]!;
  if (n === 32) {
    st[a] = hi;
    st[a + 1] = lo;
  } else if (n < 32) {
    st[a] = ((lo << n) | (hi >>> (32 - n))) >>> 0;
    st[a + 1] = ((hi << n) | (lo >>> (32 - n))) >>> 0;
  } else {
    const m = n - 32;
    st[a] = ((hi << m) | (lo >>> (32 - m))) >>> 0;
    st[a + 1] = ((lo << m) | (hi >>> (32 - m))) >>> 0;
  }
}

function xor(a: number, b: number): void {
  st[a] = (st[a]! ^ st[b]!) >>> 0;
  st[a + 1] = (st[a + 1]! ^ st[b + 1]!) >>> 0;
}

function round(): void {
  add(0, 2);
  rotl(2, 13);
  xor(2, 0);
  rotl(0, 32);
  add(4, 6);
  rotl(6, 16);
  xor(6, 4);
  add(0, 6);
  rotl(6, 21);
  xor(6, 0);
  add(4, 2);
  rotl(2, 17);
  xor(2, 4);
  rotl(4, 32);
}

function le32(b: Uint8Array, p: number): number {
  return (b[p]! | (b[p + 1]! << 8) | (b[p + 2]! << 16) | (b[p + 3]! << 24)) >>> 0;
}

function absorb(mlo: number, mhi: number, c: number): void {
  st[6] = (st[6]! ^ mlo) >>> 0;
  st[7] = (st[7]! ^ mhi) >>> 0;
  for (let i = 0; i < c; i++) round();
  st[0] = (st[0]! ^ mlo) >>> 0;
  st[1] = (st[1]! ^ mhi) >>> 0;
}

function sipHash(key: Uint8Array, data: unknown, c: number, d: number, name: string): bigint {
  if (!(key instanceof Uint8Array) || key.length !== 16)
    throw new TypeError(
      `${name} key: expected 16 bytes, got ${key instanceof Uint8Array ? `${key.length} bytes` : kindOf(key)}`,
    );
  const m = asBytes(data);
  const k0lo = le32(key, 0);
  const k0hi = le32(key, 4);
  const k1lo = le32(key, 8);
  const k1hi = le32(key, 12);
  // "somepseudorandomlygeneratedbytes" constants
  st[0] = (k0lo ^ 0x70736575) >>> 0;
  st[1] = (k0hi ^ 0x736f6d65) >>> 0;
  st[2] = (k1lo ^ 0x6e646f6d) >>> 0;
  st[3] = (k1hi ^ 0x646f7261) >>> 0;
  st[4] = (k0lo ^ 0x6e657261) >>> 0;
  st[5] = (k0hi ^ 0x6c796765) >>> 0;
  st[6] = (k1lo ^ 0x79746573) >>> 0;
  st[7] = (k1hi ^ 0x74656462) >>> 0;
  const whole = m.length & ~7;
  for (let p = 0; p < whole; p += 8) absorb(le32(m, p), le32(m, p + 4), c);
  // last word: remaining bytes little-endian, length mod 256 in the top byte
  let lo = 0;
  let hi = (m.length & 0xff) << 24;
  for (let i = 0; i < m.length - whole; i++) {
    if (i < 4) lo |= m[whole + i]! << (8 * i);
    else hi |= m[whole + i]! << (8 * (i - 4));
  }
  absorb(lo >>> 0, hi >>> 0, c);
  st[4] = (st[4]! ^ 0xff) >>> 0;
  for (let i = 0; i < d; i++) round();
  const rlo = (st[0]! ^ st[2]! ^ st[4]! ^ st[6]!) >>> 0;
  const rhi = (st[1]! ^ st[3]! ^ st[5]! ^ st[7]!) >>> 0;
  return (BigInt(rhi) << 32n) | BigInt(rlo);
}

/** SipHash-2-4 of `data` under a 16-byte key. */
export function sipHash24(key16: Uint8Array, data: Uint8Array): bigint {
  return sipHash(key16, data, 2, 4, 'sipHash24');
}

/** SipHash-1-3 of `data` under a 16-byte key. */
export function sipHash13(key16: Uint8Array, data: Uint8Array): bigint {
  return sipHash(key16, data, 1, 3, 'sipHash13');
}
